"""The security commands end to end, in process: contacts and key changes, verify, share, panic.

Each test runs ``meshchat`` commands (``main(argv)``) against real homes in a temporary folder,
with the passphrase in ``$MESHCHAT_PASSPHRASE`` as scripts give it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshchat.cli.main import main
from meshchat.identity import ContactCard, Identity
from meshchat.qr import qr_png
from meshchat.safety import qr_payload

PASS = "cli test passphrase"


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHCHAT_PASSPHRASE", PASS)
    monkeypatch.delenv("MESHCHAT_HOME", raising=False)


class Cli:
    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home = home
        self.capsys = capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--home", str(self.home), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert code == 0, err
        return out

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--json"))

    def card(self) -> str:
        data = self.json("id")
        assert isinstance(data, dict)
        return str(data["card"])


@pytest.fixture
def people(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Cli, Cli]:
    alice, bob = Cli(tmp_path / "alice", capsys), Cli(tmp_path / "bob", capsys)
    for cli, name in ((alice, "alice"), (bob, "bob")):
        cli.ok("init", "--name", name, "--kdf", "interactive")
    alice.ok("contacts", "add", bob.card())
    bob.ok("contacts", "add", alice.card())
    return alice, bob


def contacts(cli: Cli) -> list[dict[str, object]]:
    data = cli.json("contacts", "list")
    assert isinstance(data, list)
    return data


def test_contacts_start_unverified_and_both_sides_see_one_safety_number(
    people: tuple[Cli, Cli],
) -> None:
    alice, bob = people
    (bob_entry,) = contacts(alice)
    (alice_entry,) = contacts(bob)
    assert bob_entry["trust"] == alice_entry["trust"] == "unverified"
    assert bob_entry["safety_number"] == alice_entry["safety_number"]
    shown = alice.ok("verify", "bob", "--yes")
    assert str(bob_entry["safety_number"])[:35] in shown
    assert "\u2580" in shown or "\u2584" in shown or "\u2588" in shown  # a QR code was drawn
    assert "bob is now verified" in shown
    assert contacts(alice)[0]["trust"] == "verified"
    assert contacts(bob)[0]["trust"] == "unverified"  # each side verifies for itself


def test_verify_needs_a_confirmation_without_a_terminal(people: tuple[Cli, Cli]) -> None:
    alice, _ = people
    code, _, err = alice.run("verify", "bob")
    assert code == 1
    assert "--yes" in err
    assert contacts(alice)[0]["trust"] == "unverified"


def test_verify_by_the_qr_codes_text(people: tuple[Cli, Cli]) -> None:
    alice, bob = people
    a_pub = ContactCard.from_text(alice.card()).identity
    b_pub = ContactCard.from_text(bob.card()).identity
    # A code for another pair: refused loudly, nothing changes.
    other = qr_payload(a_pub, Identity.generate().public)
    code, _, err = alice.run("verify", "bob", "--payload", other)
    assert code == 1
    assert "SAFETY NUMBERS DIFFER" in err
    assert contacts(alice)[0]["trust"] == "unverified"
    # Bob's screen shows the code; alice scans it.
    out = alice.ok("verify", "bob", "--payload", qr_payload(b_pub, a_pub))
    assert "safety numbers match" in out
    assert contacts(alice)[0]["trust"] == "verified"


def test_verify_by_a_photo_of_the_qr_code(people: tuple[Cli, Cli], tmp_path: Path) -> None:
    pytest.importorskip("zxingcpp", reason="reading QR images needs meshchat[qr]")
    alice, bob = people
    a_pub = ContactCard.from_text(alice.card()).identity
    b_pub = ContactCard.from_text(bob.card()).identity
    # Alice's screen shows the code; bob photographs it.
    picture = tmp_path / "alice-screen.png"
    picture.write_bytes(qr_png(qr_payload(a_pub, b_pub)))
    result = bob.json("verify", "alice", "--scan", str(picture))
    assert isinstance(result, dict)
    assert result["matched"] is True
    assert result["trust"] == "verified"
    # A picture of a contact card is not a safety number.
    card_picture = tmp_path / "card.png"
    card_picture.write_bytes(qr_png(alice.card()))
    code, _, err = bob.run("verify", "alice", "--scan", str(card_picture))
    assert code == 1
    assert "contact card" in err
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    code, _, err = bob.run("verify", "alice", "--scan", str(garbage))
    assert code == 1
    assert "not an image" in err


def test_a_key_change_is_refused_loudly_then_replaced_on_request(people: tuple[Cli, Cli]) -> None:
    alice, _ = people
    alice.ok("verify", "bob", "--yes")
    impostor = Identity.generate().card("bob").to_text()
    code, out, err = alice.run("contacts", "add", impostor)
    assert code == 1
    assert "KEY CHANGE" in err
    assert "--replace" in err
    assert [c["trust"] for c in contacts(alice)] == ["verified"]
    out = alice.ok("contacts", "add", impostor, "--replace")
    assert "added bob" in out
    listed = contacts(alice)
    assert sorted(str(c["trust"]) for c in listed) == ["compromised", "unverified"]
    code, text, err = alice.run("contacts", "list")
    assert code == 0
    assert "!! COMPROMISED !!" in text
    assert "COMPROMISED keys" in err
    # The retired contact cannot be verified back into use.
    old = next(c for c in listed if c["trust"] == "compromised")
    code, _, err = alice.run("verify", str(old["node_id"])[:8], "--yes")
    assert code == 1
    assert "COMPROMISED" in err


def test_a_forged_card_is_refused(people: tuple[Cli, Cli]) -> None:
    alice, bob = people
    card = bob.card()
    forged = card[:-6] + ("A" if card[-6] != "A" else "B") + card[-5:]
    code, _, err = alice.run("contacts", "add", forged, "--replace")
    assert code == 1
    assert "error" in err
    assert len(contacts(alice)) == 1


def test_share_passes_the_signed_card_and_the_receiver_starts_unverified(
    people: tuple[Cli, Cli], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = people
    alice.ok("verify", "bob", "--yes")
    shared = alice.ok("contacts", "share", "bob").strip()
    assert shared == bob.card()
    carol = Cli(tmp_path / "carol", capsys)
    carol.ok("init", "--name", "carol", "--kdf", "interactive")
    carol.ok("contacts", "add", shared)
    assert [(c["name"], c["trust"]) for c in contacts(carol)] == [("bob", "unverified")]


def test_distrust_marks_a_contact_compromised(people: tuple[Cli, Cli]) -> None:
    alice, _ = people
    code, _, err = alice.run("contacts", "distrust", "bob")
    assert code == 1 and "--yes" in err
    alice.ok("contacts", "distrust", "bob", "--yes")
    assert contacts(alice)[0]["trust"] == "compromised"
    code, _, err = alice.run("send", "bob", "hello?")
    assert code == 1
    assert "compromised" in err


def test_offline_send_and_log_ask_the_passphrase_and_leave_no_plaintext(
    people: tuple[Cli, Cli], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = people
    text = "Offline note about the walrus tunnel"
    sent = alice.json("send", "bob", text)
    assert isinstance(sent, dict) and sent["state"] == "queued"
    log = alice.json("log", "bob")
    assert isinstance(log, dict)
    assert [m["text"] for m in log["messages"]] == [text]
    data = b"".join(
        p.read_bytes() for p in alice.home.iterdir() if p.name.startswith("meshchat.db")
    )
    for secret in (text, "bob"):
        assert secret.encode() not in data
    monkeypatch.setenv("MESHCHAT_PASSPHRASE", "wrong")
    code, _, err = alice.run("log", "bob")
    assert code == 1
    assert "wrong passphrase" in err


def test_panic_without_a_node_erases_everything(people: tuple[Cli, Cli]) -> None:
    alice, _ = people
    alice.ok("send", "bob", "to be erased")
    code, _, err = alice.run("panic")
    assert code == 1 and "--yes" in err
    assert (alice.home / "keystore").exists()
    result = alice.json("panic", "--yes")
    assert isinstance(result, dict)
    assert result["node_stopped"] is False
    assert result["failed"] == []
    assert Path(result["erased"][0]).name == "keystore"
    assert not alice.home.exists()
    code, _, err = alice.run("contacts", "list")
    assert code == 1 and "init" in err
