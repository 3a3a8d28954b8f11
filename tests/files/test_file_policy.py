"""Which files are taken: limits by medium, auto-accept from verified contacts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshchat.files.manifest import FileKind, FileManifest
from meshchat.files.policy import FilePolicy, Verdict

M = FileManifest(FileKind.IMAGE, "a.jpg", 500_000, "image/jpeg", 1536, b"\x01" * 32, bytes(32))


def test_small_from_a_verified_contact_is_taken_at_once() -> None:
    d = FilePolicy().decide(M, verified=True, media=["ble"])
    assert d.verdict is Verdict.ACCEPT and d.limit == 1 << 20


def test_unverified_or_large_asks() -> None:
    assert FilePolicy().decide(M, verified=False, media=["ble"]).verdict is Verdict.ASK
    big = replace(M, size=50 << 20)
    assert FilePolicy().decide(big, verified=True, media=["lan"]).verdict is Verdict.ASK


def test_over_the_limit_of_every_link_is_refused() -> None:
    two_mib = replace(M, size=2 << 20)
    d = FilePolicy().decide(two_mib, verified=True, media=["ble"])
    assert d.verdict is Verdict.REFUSE and "limit" in d.why
    # the same file when a LAN link also reaches the sender
    assert FilePolicy().decide(two_mib, verified=True, media=["ble", "lan"]).verdict is (
        Verdict.ACCEPT
    )
    assert FilePolicy().decide(M, verified=True, media=[]).verdict is Verdict.REFUSE
    assert FilePolicy().limit(["relay", "carrier-pigeon"]) == 16 << 20


@pytest.mark.parametrize("field", ["ble", "lan", "auto_accept"])
def test_limits_refuse_nonsense(field: str) -> None:
    with pytest.raises(ValueError):
        FilePolicy(**{field: -1})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FilePolicy(**{field: 2**40})  # type: ignore[arg-type]
