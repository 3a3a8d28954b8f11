"""The link code, the link messages and both sides' state machines (pure)."""

from __future__ import annotations

import contextlib
import dataclasses

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.account.link import (
    LINK_TTL_MS,
    MAX_BAD_REQUESTS,
    MAX_LIST_BYTES,
    LinkAccept,
    LinkCode,
    LinkNonce,
    LinkRefuse,
    LinkRequest,
    LinkReveal,
    RefuseReason,
    Transcript,
    decode_link,
)
from meshchat.account.linking import Inviter, Joiner, LinkState, answer_matches
from meshchat.errors import LinkError, LinkReason, PacketError
from meshchat.identity import Identity, PublicIdentity

E = Identity.generate().public
N = Identity.generate().public
M = Identity.generate().public
LIST = b"\x85signed device list"


def exchange(inviter: Inviter, joiner: Joiner, now: int = 0) -> tuple[str, str]:
    """Run request, nonce and reveal through both sides; the two strings shown."""
    request = decode_link(joiner.request(inviter.me).encode())
    assert isinstance(request, LinkRequest)
    nonce = decode_link(inviter.on_request(joiner.me, request, now).encode())
    assert isinstance(nonce, LinkNonce)
    reveal, joiner_string = joiner.on_nonce(inviter.me, nonce)
    inviter_string = inviter.on_reveal(joiner.me, reveal, now)
    return inviter_string, joiner_string


# -- the code -----------------------------------------------------------------------------------


def test_a_code_reads_back_typed_in_any_case_and_spacing() -> None:
    code = LinkCode.generate(E.node_id)
    text = code.to_text()
    assert len(text) == 29 and text.count("-") == 5
    assert LinkCode.parse(text) == code
    assert LinkCode.parse(text.lower().replace("-", " ")) == code
    assert LinkCode.parse(code.qr_text()) == code
    assert code.names(E.node_id) and not code.names(N.node_id)


def test_a_mistyped_code_is_refused_with_a_clear_reason() -> None:
    text = LinkCode.generate(E.node_id).to_text()
    wrong = ("A" if text[3] != "A" else "B").join((text[:3], text[4:]))
    with pytest.raises(LinkError) as caught:
        LinkCode.parse(wrong)
    assert caught.value.reason is LinkReason.BAD_CODE
    for junk in ("", "mc1:abc", "x" * 500, "ÄÄÄÄ-" * 5 + "ÄÄÄÄ"):
        with pytest.raises(LinkError):
            LinkCode.parse(junk)


@given(st.binary(min_size=5, max_size=5), st.binary(min_size=9, max_size=9))
def test_every_code_round_trips(prefix: bytes, secret: bytes) -> None:
    code = LinkCode(prefix, secret)
    assert LinkCode.parse(code.to_text()) == code


@given(st.text(max_size=60))
def test_parsing_any_text_gives_a_code_or_a_link_error(text: str) -> None:
    try:
        LinkCode.parse(text)
    except LinkError as exc:
        assert exc.reason is LinkReason.BAD_CODE


# -- the codec ----------------------------------------------------------------------------------


def sample_messages() -> list[object]:
    t = Transcript(b"s" * 9, E, N)
    request, commit = LinkRequest.make(t, "laptop", b"n" * 32)
    return [
        request,
        LinkNonce.make(t, commit, b"o" * 32),
        LinkReveal(b"n" * 32),
        LinkAccept.make(t, commit, b"n" * 32, b"o" * 32, b"x" * MAX_LIST_BYTES),
        LinkRefuse(RefuseReason.DECLINED),
    ]


def test_every_message_round_trips() -> None:
    for message in sample_messages():
        assert decode_link(message.encode()) == message  # type: ignore[attr-defined]


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decoding_any_bytes_gives_a_message_or_a_packet_error(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode_link(data)


@given(st.lists(st.one_of(st.integers(-5, 30), st.binary(max_size=40), st.text(max_size=70))))
def test_decoding_any_array_gives_a_message_or_a_packet_error(items: list[object]) -> None:
    with contextlib.suppress(PacketError):
        decode_link(cbor2.dumps(items, canonical=True))


def test_malformed_messages_are_refused() -> None:
    request = sample_messages()[0]
    assert isinstance(request, LinkRequest)
    fields = cbor2.loads(request.encode())
    bad = [
        [*fields[:3], "tab\there", *fields[4:]],  # a name that is not clean
        [*fields[:3], "x" * 65, *fields[4:]],  # a name too long
        [fields[0], fields[1][:31], *fields[2:]],  # a short key
        [*fields, b"extra"],
        [21],
        [99, b"x"],
        [23, 9],  # no such refuse reason
        [22, b"", b"m" * 32],  # an empty list
        [22, b"x" * (MAX_LIST_BYTES + 1), b"m" * 32],
    ]
    for value in bad:
        with pytest.raises(PacketError):
            decode_link(cbor2.dumps(value, canonical=True))
    with pytest.raises(PacketError):
        decode_link(request.encode() + b"\x00")


# -- the exchange -------------------------------------------------------------------------------


def test_both_devices_show_the_same_string_and_the_list_arrives() -> None:
    inviter = Inviter.start(E, 1000)
    joiner = Joiner(N, "laptop", LinkCode.parse(inviter.code.to_text()), 1000)
    shown_e, shown_n = exchange(inviter, joiner, 1000)
    assert shown_e == shown_n and len(shown_e.replace(" ", "")) == 6
    assert inviter.peer == N and inviter.peer_name == "laptop"
    accept = decode_link(inviter.accept(LIST, 2000).encode())
    assert isinstance(accept, LinkAccept)
    assert joiner.on_accept(E, accept) is None  # the person has not answered yet
    assert joiner.confirm(shown_e) == (LIST, None)
    assert inviter.state is LinkState.ACCEPTED


def test_a_mitm_who_knows_the_code_shows_different_strings() -> None:
    """M learnt the code and sits between the two: one exchange with each side."""
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    # towards N, M poses as the device that made the code (same secret, M's own keys; a
    # node id with the code's prefix is assumed found)
    fake_code = dataclasses.replace(inviter.code, device_prefix=M.node_id[:5])
    fake_inviter = Inviter(M, fake_code, 0)
    joiner.code = fake_code
    fake_joiner = Joiner(M, "laptop", inviter.code, 0)
    strings_e, _ = exchange(inviter, fake_joiner)
    _, strings_n = exchange(fake_inviter, joiner)
    assert strings_e != strings_n


def test_mitm_strings_differ_across_many_runs() -> None:
    same = 0
    for _ in range(200):
        inviter = Inviter.start(E, 0)
        a, _ = exchange(inviter, Joiner(M, "x", inviter.code, 0))
        fake = Inviter(M, LinkCode(M.node_id[:5], inviter.code.secret), 0)
        _, b = exchange(fake, Joiner(N, "x", fake.code, 0))
        same += a == b
    assert same == 0


def test_a_code_used_twice_is_refused() -> None:
    inviter = Inviter.start(E, 0)
    exchange(inviter, Joiner(N, "laptop", inviter.code, 0))
    again = Joiner(M, "tablet", inviter.code, 0)
    with pytest.raises(LinkError) as caught:
        inviter.on_request(M, again.request(E), 10)
    assert caught.value.reason is LinkReason.USED
    assert inviter.peer == N  # the first device's exchange is untouched


def test_a_code_past_its_time_is_refused() -> None:
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    with pytest.raises(LinkError) as caught:
        inviter.on_request(N, joiner.request(E), LINK_TTL_MS)
    assert caught.value.reason is LinkReason.EXPIRED
    with pytest.raises(LinkError) as caught:  # and stays ended, even for an earlier clock
        inviter.on_request(N, joiner_request(N), 1)
    assert caught.value.reason is LinkReason.EXPIRED


def joiner_request(who: PublicIdentity, secret: bytes = b"") -> LinkRequest:
    t = Transcript(secret or b"z" * 9, E, who)
    return LinkRequest.make(t, "x", b"n" * 32)[0]


def test_an_accept_past_the_time_is_not_sent() -> None:
    inviter = Inviter.start(E, 0)
    exchange(inviter, Joiner(N, "laptop", inviter.code, 0))
    with pytest.raises(LinkError) as caught:
        inviter.accept(LIST, LINK_TTL_MS + 1)
    assert caught.value.reason is LinkReason.EXPIRED


def test_a_request_with_a_wrong_secret_is_refused_then_the_code_withdrawn() -> None:
    inviter = Inviter.start(E, 0)
    for attempt in range(MAX_BAD_REQUESTS):
        with pytest.raises(LinkError) as caught:
            inviter.on_request(M, joiner_request(M, b"w" * 9), 1)
        last = attempt == MAX_BAD_REQUESTS - 1
        assert caught.value.reason is (LinkReason.WITHDRAWN if last else LinkReason.BAD_MAC)
    real = Joiner(N, "laptop", inviter.code, 0)
    with pytest.raises(LinkError) as caught:
        inviter.on_request(N, real.request(E), 2)
    assert caught.value.reason is LinkReason.WITHDRAWN


def test_a_request_whose_keys_are_not_its_senders_is_refused() -> None:
    inviter = Inviter.start(E, 0)
    request = Joiner(N, "laptop", inviter.code, 0).request(E)
    with pytest.raises(LinkError) as caught:
        inviter.on_request(M, request, 1)  # M forwards N's request under its own session
    assert caught.value.reason is LinkReason.BAD_MAC
    assert inviter.state is LinkState.WAITING


def test_a_nonce_or_accept_without_the_secret_is_refused_by_the_new_device() -> None:
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    joiner.request(E)
    forged = LinkNonce.make(Transcript(b"w" * 9, E, N), joiner.commit, b"o" * 32)
    with pytest.raises(LinkError) as caught:
        joiner.on_nonce(E, forged)
    assert caught.value.reason is LinkReason.BAD_MAC
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    exchange(inviter, joiner)
    bad = LinkAccept(LIST, b"m" * 32)
    with pytest.raises(LinkError) as caught:
        joiner.on_accept(E, bad)
    assert caught.value.reason is LinkReason.BAD_MAC
    assert joiner.device_list is None


def test_a_reveal_that_does_not_open_the_commitment_ends_it() -> None:
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    inviter.on_request(N, joiner.request(E), 0)
    with pytest.raises(LinkError) as caught:
        inviter.on_reveal(N, LinkReveal(b"q" * 32), 0)
    assert caught.value.reason is LinkReason.BAD_COMMITMENT
    assert inviter.state is LinkState.ENDED


def test_a_wrong_confirmation_string_refuses_and_adopts_nothing() -> None:
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    shown, _ = exchange(inviter, joiner)
    wrong = "000 000" if shown != "000 000" else "111 111"
    joiner.on_accept(E, inviter.accept(LIST, 1))
    listed, refuse = joiner.confirm(wrong)
    assert listed is None and refuse == LinkRefuse(RefuseReason.DECLINED)
    assert joiner.ended is LinkReason.MISMATCH and joiner.ready() is None
    assert inviter.on_refuse(N, refuse) is LinkReason.DECLINED


def test_out_of_order_and_foreign_messages_change_nothing() -> None:
    inviter = Inviter.start(E, 0)
    joiner = Joiner(N, "laptop", inviter.code, 0)
    with pytest.raises(LinkError):
        inviter.on_reveal(N, LinkReveal(b"n" * 32), 0)
    with pytest.raises(LinkError):
        inviter.accept(LIST, 0)
    inviter.on_request(N, joiner.request(E), 0)
    with pytest.raises(LinkError):
        inviter.on_reveal(M, LinkReveal(joiner.nonce), 0)  # not the requester
    with pytest.raises(LinkError):
        joiner.on_accept(E, LinkAccept(LIST, b"m" * 32))  # before the nonce
    assert inviter.state is LinkState.NONCE_SENT and joiner.state is LinkState.REQUESTED


def test_answers() -> None:
    assert answer_matches("123 456", "y") and answer_matches("123 456", "YES ")
    assert answer_matches("123 456", "123-456") and answer_matches("123 456", "123456")
    assert not answer_matches("123 456", "123 457")
    assert not answer_matches("123 456", "n") and not answer_matches("123 456", "")
