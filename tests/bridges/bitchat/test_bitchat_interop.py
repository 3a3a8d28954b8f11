"""meshchat's bitchat codec against two implementations nobody here wrote: the PyPI packages
``bitchat-protocol`` (0.2.0) and ``bitchat-cli`` (0.2.3).

Both are unofficial and partly stale against upstream (permissionlesstech/bitchat); where they
differ the tests follow upstream and say so:
- bitchat-protocol compresses only above 256 bytes with no distinct-bytes check (upstream: at
  least 100 bytes and under 90% distinct), pads to 32..4096-byte blocks (upstream 256..2048),
  and has no signing code.
- bitchat-cli never compresses, and its signing preimage ignores compression, so it cannot
  verify a compressed packet from anyone; it derives no peer id from its Noise key (a random
  one), so upstream and meshchat refuse its announces; it does not verify signatures it
  receives.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import bitchat_protocol as bp
import pytest
from bitchat_cli import protocol as cli
from bitchat_cli.ble_service import BLEService
from bitchat_cli.identity import IdentityKeys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from meshchat.bridges.bitchat.announce import verify_announce
from meshchat.bridges.bitchat.fragments import Reassembler, split
from meshchat.bridges.bitchat.packet import decode, encode
from meshchat.bridges.bitchat.public import BitchatIdentity, verify_message
from meshchat.errors import BridgeError, BridgeReason

NOW = 1_800_000_000_000
SHORT = "hello from meshchat"  # under 100 bytes: never compressed
LONG = "a message long enough to be compressed, " * 4  # >= 100 bytes, few distinct bytes
VARIED = "".join(map(chr, range(0x21, 0x7F))) + "abcdef"  # 100 bytes, 94% distinct: kept raw


def _upstream_preimage(wire: bytes) -> bytes:
    """Upstream's signing preimage derived from the bytes as received (Android's rule: the
    originator's payload bytes are reused): ttl 0, signature flag and signature removed,
    padded with bitchat-cli's copy of MessagePadding. Like Android's ``BinaryProtocol.decode``
    the frame is taken as it is when it parses so (it is unpadded only when it does not):
    unpadding first would eat the signature's last bytes whenever they look like a pad."""
    body = bytearray(wire if bp.decode(wire) is not None else cli.MessagePadding.unpad(wire))
    body[2] = 0
    body[11] &= ~0x02 & ~0x10
    unsigned = bytes(body[:-64])
    return cli.MessagePadding.pad(unsigned, cli.MessagePadding.optimal_block_size(len(unsigned)))


def _ed25519_ok(key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, data)
    except InvalidSignature:
        return False
    return True


@pytest.mark.parametrize("text", [SHORT, LONG, VARIED])
def test_our_public_messages_decode_and_verify_with_theirs(text: str) -> None:
    me = BitchatIdentity.generate()
    wire = encode(me.message(text, NOW))
    compressed = bool(wire[11] & 0x04)
    assert compressed == (text == LONG)

    theirs = bp.decode(wire)
    assert theirs is not None
    assert (theirs.type, theirs.ttl, theirs.timestamp) == (2, 7, NOW)
    assert theirs.sender_id == me.peer_id and theirs.recipient_id is None
    assert theirs.payload.decode() == text and theirs.signature is not None
    assert bp.peer_id_from_noise_key(me.noise_key) == me.peer_id.hex()

    cli_packet = cli.BitchatPacket.decode(wire)
    assert cli_packet is not None and cli_packet.payload.decode() == text
    assert _ed25519_ok(me.signing_key, theirs.signature, _upstream_preimage(wire))
    # bitchat-cli's own preimage agrees when nothing is compressed, and is stale otherwise
    assert _ed25519_ok(me.signing_key, theirs.signature, cli_packet.data_for_signing()) == (
        not compressed
    )


def test_a_signature_that_ends_like_a_pad_still_verifies() -> None:
    """An unpadded frame whose signature ends in 0x01 (one frame in 256) looks padded."""
    for _ in range(5000):
        me = BitchatIdentity.generate()
        wire = encode(me.message(SHORT, NOW))
        if wire[-1] == 0x01:
            break
    else:
        pytest.fail("no signature ending in 0x01 in 5000 tries")
    theirs = bp.decode(wire)
    assert theirs is not None and theirs.signature is not None
    assert _ed25519_ok(me.signing_key, theirs.signature, _upstream_preimage(wire))
    assert verify_message(decode(wire), me.signing_key, NOW) == SHORT


def test_our_announce_decodes_and_verifies_with_theirs() -> None:
    me = BitchatIdentity.generate()
    wire = encode(me.announce("meshchat-alice", NOW))
    theirs = bp.decode(wire)
    assert theirs is not None and theirs.signature is not None
    announcement = bp.decode_announcement(theirs.payload)
    assert announcement is not None and announcement.nickname == "meshchat-alice"
    assert bp.peer_id_from_noise_key(announcement.noise_public_key) == theirs.sender_id.hex()
    cli_announce = cli.AnnouncementPacket.decode(theirs.payload)
    assert cli_announce is not None and cli_announce.signing_public_key == me.signing_key
    cli_packet = cli.BitchatPacket.decode(wire)
    assert cli_packet is not None
    assert _ed25519_ok(me.signing_key, theirs.signature, cli_packet.data_for_signing())


def _cli_peer(upstream_peer_id: bool) -> tuple[IdentityKeys, bytes]:
    keys = IdentityKeys()
    if upstream_peer_id:
        return keys, hashlib.sha256(keys.noise_public_key_bytes()).digest()[:8]
    return keys, bytes(8)  # bitchat-cli's main() uses os.urandom(8)


def _cli_signed(keys: IdentityKeys, packet: cli.BitchatPacket) -> bytes:
    packet.signature = keys.sign(packet.data_for_signing())  # as BLEService._sign
    return packet.encode()  # as BLEService._broadcast: padded


def test_bitchat_cli_announce_verifies_only_with_an_upstream_peer_id() -> None:
    for upstream_id in (True, False):
        keys, peer = _cli_peer(upstream_id)
        body = cli.AnnouncementPacket(
            "cli-bob", keys.noise_public_key_bytes(), keys.signing_public_key_bytes()
        ).encode()
        assert body is not None
        packet = cli.BitchatPacket(type=1, sender_id=peer, payload=body, ttl=7, timestamp=NOW)
        ours = decode(_cli_signed(keys, packet))
        if upstream_id:
            assert verify_announce(ours, NOW).nickname == "cli-bob"
        else:
            with pytest.raises(BridgeError) as caught:
                verify_announce(ours, NOW)
            assert caught.value.reason is BridgeReason.SENDER_MISMATCH


@pytest.mark.parametrize("text", [SHORT, LONG, VARIED])
def test_bitchat_cli_public_messages_verify_in_meshchat(text: str) -> None:
    keys, peer = _cli_peer(True)
    packet = cli.BitchatPacket(type=2, sender_id=peer, payload=text.encode(), ttl=7, timestamp=NOW)
    ours = decode(_cli_signed(keys, packet))
    assert ours.wire_payload is None  # bitchat-cli sends uncompressed; we verify that form
    assert verify_message(ours, keys.signing_public_key_bytes(), NOW) == text


@pytest.mark.parametrize("text", [SHORT, LONG * 3])
def test_bitchat_protocol_packets_verify_in_meshchat(text: str) -> None:
    """bitchat-protocol's encoder builds the bytes (compressing with its own deflate above 256
    bytes); the signature covers them under upstream's rule; meshchat must reuse their
    compressed bytes to verify."""
    me = BitchatIdentity.generate()
    unsigned = bp.BitchatPacket(
        version=1, type=2, ttl=7, timestamp=NOW, flags=0, sender_id=me.peer_id,
        payload=text.encode(),
    )  # fmt: skip
    raw = bp.encode(unsigned)
    preimage = bytearray(raw)
    preimage[2] = 0
    signature = me.signing_private.sign(
        cli.MessagePadding.pad(bytes(preimage), cli.MessagePadding.optimal_block_size(len(raw)))
    )
    signed = bp.BitchatPacket(
        version=1, type=2, ttl=7, timestamp=NOW, flags=0, sender_id=me.peer_id,
        payload=text.encode(), signature=signature,
    )  # fmt: skip
    wire = bp.encode(signed, padding=True)
    ours = decode(wire)
    assert (ours.wire_payload is not None) == (len(text) > 256)
    assert verify_message(ours, me.signing_key, NOW) == text


def test_fragments_cross_both_ways() -> None:
    me = BitchatIdentity.generate()
    big = me.message("x" * 40 + "".join(chr(0x400 + i) for i in range(600)), NOW)
    ours = split(big)
    assert len(ours) > 1 and all(len(encode(f)) <= 469 + 22 + 13 for f in ours)
    theirs = cli.FragmentReassembler()
    whole = None
    for fragment in ours:
        whole = theirs.add(cli.BitchatPacket.decode(encode(fragment)))  # type: ignore[arg-type]
    assert whole == encode(big)

    fake = SimpleNamespace(state=SimpleNamespace(my_peer_id=me.peer_id))
    frames = BLEService._fragment(fake, encode(big), 2)  # type: ignore[arg-type]
    reassembler = Reassembler()
    results = [reassembler.add(decode(frame), NOW) for frame in frames]
    assert results[-1] == encode(big) and results[:-1] == [None] * (len(frames) - 1)
    assert verify_message(decode(results[-1]), me.signing_key, NOW).endswith("\u0657")
