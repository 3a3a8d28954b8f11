"""Goodput of the file-transfer core on a 20 MB file, beside raw libsodium AEAD of the same bytes.

What is measured (one process, no link: this is the half of the file benchmark that needs no
transport; the link half, a 20 MB transfer over loopback TCP and over a bumble GATT link
against raw TCP and raw GATT writes, comes with the node integration). The same 20 MB of
random bytes go through:

* **raw AEAD**: libsodium's XChaCha20-Poly1305 (IETF) through PyNaCl, sealing the file in
  1536-byte chunks and opening every chunk again: the least any chunked end-to-end
  encryption of these bytes costs in Python;
* **core**: what the sender and receiver do for a real transfer, minus the link: the sender
  reads the file from disk and prepares the announcement (seal every chunk, BLAKE2b leaves,
  the tree); the receiver's :class:`~meshchat.files.transfer.Download` asks for pieces, the
  sender's :class:`~meshchat.files.serve.Seeder` answers, the driver reads each chunk from
  disk and seals it again (:meth:`Seeder.seal`, which also checks it against the tree), every
  request and piece is encoded to its wire body and decoded again, the receiver checks each
  piece against the tree, opens it, and its :class:`~meshchat.files.sink.Sink` writes it to a
  partial file; at the end the sink checks the whole file against the root once more and
  links it under its name. The result is compared byte for byte with the source.

Goodput is file bytes per second of wall time. Both figures are CPU-bound and measured back to
back ``--runs`` times (median shown; the ratio is taken per run, so pairs cancel drift when
other processes share the CPU; the load average is printed). The core seals every chunk twice
(once to announce, once to serve), hashes it three times (tree, receiver's check, final check)
and opens it once; raw AEAD seals and opens once, so a ratio near 0.3 is what the crypto alone
allows; the rest is the cost of the state machines and wire bodies.

Target: the core must not be what limits a transfer on the fastest link it will feed soon, a
100 Mbit/s LAN: 12.5 MB/s of goodput (BLE, 10-100 kB/s, and relays are far slower). The ratio
to raw AEAD is printed too (it says how much of the work is crypto); the issue's link targets
(>= 0.6 of raw TCP, >= 0.8 of raw GATT) belong to the link half. Run
``python bench/files.py`` (about 15 s). The last line is::

    files_core_goodput_mb_s: 28.8 (target >= 12.5)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import nacl.bindings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshchat.files import (
    Downloads,
    FileKind,
    FileSource,
    Seeder,
    SentFile,
    Sink,
    decode_body,
    new_key,
    prepare_file,
)
from meshchat.files.effects import (
    Completed,
    Effect,
    KeepHashes,
    SendMissing,
    SendPiece,
    SendRequest,
    ServeChunk,
    WriteChunk,
)
from meshchat.files.manifest import DEFAULT_CHUNK_SIZE
from meshchat.files.serve import ServeLimits
from meshchat.files.wire import Request

SIZE = 20 * 1000 * 1000
GOODPUT_TARGET = 12.5  # MB/s: a 100 Mbit/s LAN


def raw_aead(data: bytes) -> float:
    """Seconds to seal and open ``data`` in 1536-byte chunks with bare libsodium."""
    key = new_key()
    seal = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    unseal = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt
    start = time.perf_counter()
    out = bytearray()
    for index, offset in enumerate(range(0, len(data), DEFAULT_CHUNK_SIZE)):
        nonce = index.to_bytes(24, "big")
        sealed = seal(data[offset : offset + DEFAULT_CHUNK_SIZE], b"", nonce, key)
        out += unseal(sealed, b"", nonce, key)
    elapsed = time.perf_counter() - start
    assert out == data
    return elapsed


def core(source_path: Path, folder: Path) -> tuple[float, float]:
    """Seconds for the whole core transfer of the file at ``source_path`` into ``folder``,
    and the seconds of that spent preparing the announcement."""
    start = time.perf_counter()
    manifest, tree = prepare_file(
        source_path, kind=FileKind.FILE, media_type="application/octet-stream", key=new_key()
    )
    prepared = time.perf_counter()
    # no rate limit in the way: this measures CPU, not the allowance
    seeder = Seeder(0, ServeLimits(rate=1e9, burst=1e9, total_rate=1e9, total_burst=1e9))
    seeder.add(SentFile(manifest, tree))
    source = FileSource(source_path, manifest)
    downloads = Downloads()
    sink = Sink.open(folder, manifest)
    queue: deque[Effect] = deque(downloads.offer(manifest, "sender", 0))
    final = None
    while queue:
        effect = queue.popleft()
        match effect:
            case SendRequest(_, body):
                request = decode_body(body.encode())
                assert isinstance(request, Request)
                queue += seeder.request("receiver", request, 0)
            case ServeChunk(_, root, index):
                piece = seeder.seal(root, index, source.read(index))
                body = decode_body(piece.encode())
                queue += downloads.receive("sender", body, 0)  # type: ignore[arg-type]
            case SendPiece(_, body) | SendMissing(_, body):
                queue += downloads.receive("sender", decode_body(body.encode()), 0)  # type: ignore[arg-type]
            case WriteChunk(_, _, offset, plaintext):
                sink.write(offset, plaintext)
            case KeepHashes(_, level, index, data):
                sink.keep_hashes(level, index, data)
            case Completed():
                final = sink.finish()
    source.close()
    elapsed = time.perf_counter() - start
    assert final is not None and final.read_bytes() == source_path.read_bytes()
    final.unlink()
    return elapsed, prepared - start


def main(runs: int) -> None:
    data = os.urandom(SIZE)
    raw_times: list[float] = []
    core_times: list[float] = []
    prepare_times: list[float] = []
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        source_path = Path(tmp) / "source.bin"
        source_path.write_bytes(data)
        folder = Path(tmp) / "downloads"
        for _ in range(runs):
            raw = raw_aead(data)
            spent, preparing = core(source_path, folder)
            raw_times.append(raw)
            core_times.append(spent)
            prepare_times.append(preparing)
            ratios.append(raw / spent)
    mb = SIZE / 1e6

    def rate(seconds: list[float]) -> float:
        return mb / statistics.median(seconds)

    chunks = -(-SIZE // DEFAULT_CHUNK_SIZE)
    print(f"file: {mb:.0f} MB in {chunks} chunks of {DEFAULT_CHUNK_SIZE} bytes; {runs} runs")
    print()
    print(f"{'path':<46} {'MB/s':>8} {'median s':>9}")
    print("-" * 65)
    print(f"{'raw AEAD: seal + open (libsodium)':<46} {rate(raw_times):>8.1f} "
          f"{statistics.median(raw_times):>9.3f}")  # fmt: skip
    print(f"{'core: prepare (read, seal, leaves, tree)':<46} {rate(prepare_times):>8.1f} "
          f"{statistics.median(prepare_times):>9.3f}")  # fmt: skip
    print(f"{'core: whole transfer (prepare .. final name)':<46} {rate(core_times):>8.1f} "
          f"{statistics.median(core_times):>9.3f}")  # fmt: skip
    print()
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(f"core / raw AEAD goodput (median of per-run ratios): {statistics.median(ratios):.3f}")
    print(f"files_core_goodput_mb_s: {rate(core_times):.1f} (target >= {GOODPUT_TARGET})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (median is shown)")
    main(parser.parse_args().runs)
