"""The forward-secret cryptography of one message and its ack, both sides, on each library.

Measured in one run, interleaved, median of ``--reps`` runs of ``--turns`` turns each (CPU
time per turn). A *turn* is a message from A to B and B's ack back to A; each side saves its
session state after every step (as the node does before anything that depends on it leaves).
The ack carries a new ratchet key and so does the next message: one Diffie-Hellman ratchet
step each way per turn, on every row.

Rows:

* ``suite turn``: the whole direct-message crypto of the node as shipped,
  :class:`~meshchat.crypto.direct.DirectSuite` (``bench/pipeline.py``'s live turn): the ratchet
  step, the one-packet origin key, the sealed box, the signature, the verify and open on the
  other side, the sealed ack, each side's session record. This is ``crypto_floor_ms``.
* ``x3dh/doubleratchet``: the session layer alone on the pure-Python libraries
  (:class:`~meshchat.crypto.sessions.Session`: encrypt, decrypt, its CBOR encoding).
* ``vodozemac Olm``: the same on Olm (encrypt, decrypt, the session pickled and encrypted with
  a 32-byte store key after every step).
* ``vodozemac Megolm``: a group message, encrypt and decrypt (the outbound and inbound
  sessions each take one step; Megolm signs every message with Ed25519).
* ``sender keys``: the same on meshchat's group scheme (:mod:`meshchat.group.sender_keys`:
  chain step, header and body AEAD, Ed25519 signature and its check).

The sealing and signing around the session layer is ``suite turn`` minus ``x3dh/doubleratchet``;
``suite turn on Olm (projected)`` adds the Olm row to it. ``libsodium calls`` are the turn's
X25519, Ed25519 and sealed-box calls alone (its AES and HMAC left out): the floor under any
Python code of this design.

Run: ``python bench/crypto_floor.py`` (``bench/vs_lxmf.py`` prints its lines too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import vodozemac
from nacl.signing import SigningKey

sys.path.insert(0, str(Path(__file__).resolve().parent))

from meshchat.crypto.prekeys import PrekeyState
from meshchat.crypto.sessions import KIND_ACK, KIND_MESSAGE, Session, initiate, respond
from meshchat.group.sender_keys import (
    EpochKeys,
    SenderChain,
    open_body,
    open_header,
    seal_message,
)
from meshchat.identity import Identity

NOW_MS = 1_700_000_000_000
MESSAGE = b"\x85" + b"message text " * 4 + bytes(40)  # about a MessageBody's size
ACK = bytes(60)


@dataclass(frozen=True, slots=True)
class Floor:
    """Milliseconds per turn (median), one field per row."""

    suite: float
    ratchet: float
    olm: float
    megolm: float
    sender_keys: float
    libsodium: float

    @property
    def wrapping(self) -> float:
        return max(0.0, self.suite - self.ratchet)

    @property
    def projected(self) -> float:
        return self.wrapping + self.olm


def _ratchet_pair() -> tuple[Session, Session]:
    a, b = Identity.generate(), Identity.generate()
    pa, pb = PrekeyState(a), PrekeyState(b)
    pa.maintain(NOW_MS)
    pb.maintain(NOW_MS)
    own_a, own_b = pa.current, pb.current
    if own_a is None or own_b is None:
        raise SystemExit("no prekey")
    sa, first = initiate(a, own_a, b.public, own_b.signed, b"hello", KIND_MESSAGE)
    sb, _ = respond(b, own_b, a.public, sa.x3dh[0], first, KIND_MESSAGE)
    sa.decrypt(sb.encrypt(b"ack", KIND_ACK), KIND_ACK)
    return sa, sb


def ratchet_turns(turns: int) -> Callable[[], float]:
    sa, sb = _ratchet_pair()

    def run() -> float:
        start = time.process_time()
        for _ in range(turns):
            m = sa.encrypt(MESSAGE, KIND_MESSAGE)
            sa.encode()
            sb.decrypt(m, KIND_MESSAGE)
            sb.encode()
            r = sb.encrypt(ACK, KIND_ACK)
            sb.encode()
            sa.decrypt(r, KIND_ACK)
            sa.encode()
        return (time.process_time() - start) / turns

    return run


def _olm_pair() -> tuple[vodozemac.Session, vodozemac.Session]:
    a, b = vodozemac.Account(), vodozemac.Account()
    b.generate_fallback_key()
    fallback = next(iter(b.fallback_key.values()))
    sa = a.create_outbound_session(b.curve25519_key, fallback)
    first = sa.encrypt(b"hello").to_pre_key()
    if first is None:
        raise SystemExit("the first Olm message is not a pre-key message")
    sb, _ = b.create_inbound_session(a.curve25519_key, first)
    sa.decrypt(sb.encrypt(b"ack"))
    return sa, sb


def olm_turns(turns: int) -> Callable[[], float]:
    sa, sb = _olm_pair()
    key = os.urandom(32)

    def run() -> float:
        start = time.process_time()
        for _ in range(turns):
            m = sa.encrypt(MESSAGE)
            sa.pickle(key)
            sb.decrypt(m)
            sb.pickle(key)
            r = sb.encrypt(ACK)
            sb.pickle(key)
            sa.decrypt(r)
            sa.pickle(key)
        return (time.process_time() - start) / turns

    return run


def megolm_turns(turns: int) -> Callable[[], float]:
    out = vodozemac.GroupSession()
    inbound = vodozemac.InboundGroupSession(out.session_key)

    def run() -> float:
        start = time.process_time()
        for _ in range(turns):
            inbound.decrypt(out.encrypt(MESSAGE))
        return (time.process_time() - start) / turns

    return run


def sender_key_turns(turns: int) -> Callable[[], float]:
    keys = EpochKeys.generate()
    signer = SigningKey.generate()
    sign_public = bytes(signer.verify_key)
    node_id = bytes(16)
    state = {"out": SenderChain.generate()}
    state["in"] = state["out"]

    def run() -> float:
        start = time.process_time()
        for _ in range(turns):
            origin = os.urandom(32)
            payload, state["out"] = seal_message(
                keys, state["out"], signer, node_id, origin, MESSAGE
            )
            header = open_header(keys, origin, payload)
            key, state["in"] = state["in"].key_for(header.iteration)
            open_body(keys, key, sign_public, origin, header, payload)
        return (time.process_time() - start) / turns

    return run


def libsodium_turns(turns: int) -> Callable[[], float]:
    """The libsodium calls of a suite turn alone, on payloads of the turn's sizes: per side
    and direction, one DH ratchet step (two X25519, one public key), a one-packet signing
    key and its signature, a sealed box and its opening. What no Python around it can go
    under with this design."""
    import nacl.bindings as sodium

    box_pk, box_sk = sodium.crypto_box_keypair()
    payload = bytes(460)
    signed = bytes(560)

    def run() -> float:
        start = time.process_time()
        for _ in range(turns):
            for _side in range(2):
                priv = os.urandom(32)
                sodium.crypto_scalarmult(priv, box_pk)
                sodium.crypto_scalarmult(priv, box_pk)
                sodium.crypto_scalarmult_base(priv)
                _, sk = sodium.crypto_sign_seed_keypair(os.urandom(32))
                sodium.crypto_sign(signed, sk)
                sealed = sodium.crypto_box_seal(payload, box_pk)
                sodium.crypto_box_seal_open(sealed, box_pk, box_sk)
        return (time.process_time() - start) / turns

    return run


def suite_turns(turns: int) -> Callable[[], float]:
    from pipeline import build_ratchet_workload, run_ratchet_turns

    work = build_ratchet_workload(1, turns, 1)

    def run() -> float:
        return run_ratchet_turns(work) / len(work.frames)

    return run


def pickle_cost_ms(reps: int = 200) -> tuple[float, float, int]:
    """``(pickle ms, unpickle ms, pickle bytes)`` of an Olm session after a few turns."""
    sa, sb = _olm_pair()
    for _ in range(4):
        sb.decrypt(sa.encrypt(MESSAGE))
        sa.decrypt(sb.encrypt(ACK))
    key = os.urandom(32)
    start = time.process_time()
    for _ in range(reps):
        text = sa.pickle(key)
    mid = time.process_time()
    for _ in range(reps):
        vodozemac.Session.from_pickle(text, key)
    end = time.process_time()
    return (mid - start) / reps * 1000, (end - mid) / reps * 1000, len(text)


def measure(reps: int = 5, turns: int = 100) -> Floor:
    runners = {
        "suite": suite_turns(turns),
        "ratchet": ratchet_turns(turns),
        "olm": olm_turns(turns),
        "megolm": megolm_turns(turns),
        "sender_keys": sender_key_turns(turns),
        "libsodium": libsodium_turns(turns),
    }
    for run in runners.values():
        run()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(reps):
        for name, run in runners.items():
            samples[name].append(run())
    med = {name: statistics.median(v) * 1000 for name, v in samples.items()}
    return Floor(**med)


def lines(floor: Floor) -> list[str]:
    halved = floor.olm <= floor.ratchet / 2
    return [
        "forward-secret crypto, one message and its ack, both sides, ms CPU per turn (medians):",
        f"  suite turn (as shipped: ratchet + seal + sign + records)  {floor.suite:.3f}",
        f"  x3dh/doubleratchet session layer                          {floor.ratchet:.3f}",
        f"  vodozemac Olm session layer (+ encrypted pickles)         {floor.olm:.3f}",
        f"  sealing and signing around the session layer             {floor.wrapping:.3f}",
        f"  suite turn on Olm (projected)                             {floor.projected:.3f}",
        f"  libsodium calls of the suite turn alone (no Python)       {floor.libsodium:.3f}",
        "one group message, encrypt and decrypt (no state saved), ms CPU (medians):",
        f"  meshchat sender keys (libsodium)                          {floor.sender_keys:.3f}",
        f"  vodozemac Megolm                                          {floor.megolm:.3f}",
        f"olm_vs_ratchet_session_ratio: {floor.olm / floor.ratchet:.3f} "
        f"(halves the floor: {'yes' if halved else 'no'})",
        f"olm_vs_ratchet_turn_ratio_projected: {floor.projected / floor.suite:.3f}",
        f"megolm_vs_sender_keys_ratio: {floor.megolm / floor.sender_keys:.3f}",
        f"crypto_floor_ms: {floor.suite:.2f} (target <= 0.5)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--turns", type=int, default=100)
    args = parser.parse_args()
    floor = measure(args.reps, args.turns)
    pickle_ms, unpickle_ms, size = pickle_cost_ms()
    print(
        f"Olm session pickle (encrypted): {pickle_ms:.3f} ms, unpickle {unpickle_ms:.3f} ms, "
        f"{size} characters"
    )
    for line in lines(floor):
        print(line)


if __name__ == "__main__":
    main()
