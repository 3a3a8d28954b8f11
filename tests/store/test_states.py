"""The outgoing-message state machine: its table, and the store never moving a state back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.store import MessageState, Store
from meshchat.store.states import OUTBOX_ENDING, RANK, advance

from .helpers import KEY, ME

Q, S, D, F, R = (
    MessageState.QUEUED,
    MessageState.SENT,
    MessageState.DELIVERED,
    MessageState.FAILED,
    MessageState.RECEIVED,
)


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        (Q, S, S), (Q, D, D), (Q, F, F), (Q, Q, None),
        (S, D, D), (S, F, F), (S, S, None), (S, Q, None),
        (F, D, D), (F, S, None), (F, Q, None), (F, F, None),
        (D, S, None), (D, F, None), (D, Q, None), (D, D, None),
        (R, D, None), (R, F, None),
    ],
)  # fmt: skip
def test_transition_table(
    current: MessageState, reported: MessageState, expected: MessageState | None
) -> None:
    assert advance(current, reported) == expected


def test_every_accepted_transition_goes_up_the_ranking() -> None:
    for current, reported in itertools.product(RANK, RANK):
        new = advance(current, reported)
        if new is not None:
            assert RANK[new] > RANK[current]
    assert {D, F} == OUTBOX_ENDING


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store.open(tmp_path_factory.mktemp("states") / "states.db", key=KEY) as store:
        yield store


_ids = itertools.count()
_reports = st.sampled_from([Q, S, D, F]).map(lambda s: ("state", s)) | st.just(("expire", None))


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_reports, max_size=12))
def test_random_reports_never_move_a_state_backwards(
    shared_store: Store, steps: list[tuple[str, MessageState | None]]
) -> None:
    store = shared_store
    msg_id = next(_ids).to_bytes(16, "big")
    # Every message of this test expires at 5000; "expire" runs at 5000 + step.
    store.add_outgoing("prop", msg_id, b"d" * 16, ME, "me", "x", 1000, 5000)
    state = Q
    for now, (kind, reported) in enumerate(steps, start=5000):
        if kind == "expire":
            # Rows left by earlier examples may expire too; only this message is judged.
            expired = store.expire_outbox(now)
            assert (msg_id in expired) == (state in (Q, S))
        else:
            assert reported is not None
            changed = store.set_state(msg_id, reported, now)
            assert changed == (advance(state, reported) is not None)
        got = store.get_message(msg_id)
        assert got is not None
        assert RANK[got.state] >= RANK[state]
        state = got.state
        in_outbox = any(e.msg_id == msg_id for e in store.pending_outbox(0))
        assert in_outbox == (state in (Q, S))
