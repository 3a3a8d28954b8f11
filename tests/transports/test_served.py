"""The served-mailbox bookkeeping the relay and the DHT share."""

from __future__ import annotations

from pathlib import Path

from meshchat.transports.served import ServedMailboxes

OWN = b"\x00" * 16


class Host:
    def __init__(self) -> None:
        self.heard: dict[bytes, int] = {}

    def local_nodes(self, since_ms: int) -> list[bytes]:
        return [n for n, t in self.heard.items() if t >= since_ms]

    def bridge_ids(self, names: frozenset[str]) -> set[bytes]:
        return set()


async def test_served_mailboxes_rank_expire_and_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "relay-state.json"
    host = Host()
    served = ServedMailboxes(OWN, local_window_s=10, serve_window_s=100, most=3, state_path=state)
    host.heard = {bytes([1]) * 16: 1_000, bytes([2]) * 16: 50_000, bytes([3]) * 16: 90_000}
    served.refresh(host, 95_000)
    assert served.local == {bytes([3]) * 16}  # heard within 10 s
    assert served.mailboxes()[0] == OWN and len(served.mailboxes()) == 3
    await served.save()
    assert state.exists()
    again = ServedMailboxes(OWN, local_window_s=10, serve_window_s=100, most=3, state_path=state)
    await again.load()
    assert len(again) == 3
    again.refresh(None, 200_000)  # nothing heard for longer than the window
    assert again.mailboxes() == [OWN] and len(again) == 0


async def test_an_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "relay-state.json"
    state.write_bytes(b"\xff not json")
    served = ServedMailboxes(OWN, local_window_s=1, serve_window_s=1, most=1, state_path=state)
    await served.load()
    assert served.mailboxes() == [OWN]
