"""Progress of a download: bytes, rate and time left, from the clock it is fed."""

from __future__ import annotations

import os

from files_pair import RECEIVER, Harness, make_file

from meshchat.files import Downloads
from meshchat.files.progress import RateMeter


def test_rate_and_eta_of_a_steady_stream() -> None:
    meter = RateMeter()
    assert meter.progress(0, 10_000, 0).eta_s is None  # no rate yet
    for t in range(0, 5_001, 100):  # 1000 bytes every 100 ms: 10 kB/s
        meter.add(1000, t)
    p = meter.progress(51_000, 100_000, 5_000)
    assert 9_000 < p.rate < 11_000
    assert p.eta_s is not None and 4.4 < p.eta_s < 5.5
    assert p.fraction == 0.51
    assert meter.progress(100_000, 100_000, 5_000).eta_s == 0.0


def test_the_rate_follows_a_slowdown() -> None:
    meter = RateMeter()
    for t in range(0, 3_001, 100):
        meter.add(1000, t)
    fast = meter.progress(0, 1, 3_000).rate
    for t in range(3_100, 13_001, 100):
        meter.add(100, t)
    slow = meter.progress(0, 1, 13_000).rate
    assert fast > 9_000 and slow < 1_500


def test_a_download_reports_its_progress() -> None:
    data = os.urandom(100_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    download = h.downloads.get(manifest.root)
    assert download is not None
    start = download.progress(0)
    assert (start.held, start.size, start.fraction) == (0, 100_000, 0.0)
    h.run(step_ms=20)  # one body every 20 ms: the chunks arrive over about 2.5 s
    done = download.progress(h.now_ms)
    assert done.held == 100_000 and done.fraction == 1.0 and done.eta_s == 0.0
    assert done.rate > 0
