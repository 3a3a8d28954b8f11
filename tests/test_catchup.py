"""The catch-up policy: requests are rate-limited, summaries follow quiet and back off,
answers stay within their budget."""

from __future__ import annotations

from meshchat.catchup import Catchup, CatchupTimings
from meshchat.causal import MAX_WANTS

T = CatchupTimings()


def ids(n: int, start: int = 0) -> list[bytes]:
    return [i.to_bytes(16, "big") for i in range(start, start + n)]


def test_wants_are_rate_limited_per_conversation_and_capped() -> None:
    c = Catchup()
    assert c.wants("+g", ids(100), 0) == tuple(ids(MAX_WANTS))
    assert c.wants("+g", ids(3), T.want_every_ms - 1) == ()
    assert c.wants("#other", ids(3), 1) == tuple(ids(3))
    assert c.wants("+g", ids(3), T.want_every_ms) == tuple(ids(3))


def test_nothing_missing_asks_nothing_and_keeps_the_slot() -> None:
    c = Catchup()
    assert c.wants("+g", [], 0) == ()
    assert c.wants("+g", ids(1), 1) == tuple(ids(1))


def test_a_summary_follows_a_quiet_period_then_backs_off_then_stops() -> None:
    c = Catchup()
    c.activity("+g", 1_000)
    assert c.summaries_due(1_000 + T.quiet_ms - 1) == []
    now = 1_000 + T.quiet_ms
    assert c.summaries_due(now) == ["+g"]
    heads = tuple(ids(2))
    c.summarised("+g", heads, now)
    assert c.summaries_due(now + 1) == []
    for delay in T.repeat_ms:
        assert c.next_deadline() == now + delay
        assert c.summaries_due(now + delay - 1) == []
        now += delay
        assert c.summaries_due(now) == ["+g"]
        c.summarised("+g", heads, now)
    assert c.next_deadline() is None
    assert c.summaries_due(now + 10**9) == []
    c.activity("+g", now)  # something new: summarised again
    assert c.summaries_due(now + T.quiet_ms) == ["+g"]


def test_new_heads_restart_the_repeats() -> None:
    c = Catchup()
    c.activity("+g", 0)
    c.summarised("+g", tuple(ids(1)), T.quiet_ms)
    c.summarised("+g", tuple(ids(1)), T.quiet_ms + T.repeat_ms[0])
    c.summarised("+g", tuple(ids(1, 5)), 200_000)
    assert c.next_deadline() == 200_000 + T.repeat_ms[0]


def test_answers_stay_within_the_budget_and_never_repeat_a_message_quickly() -> None:
    c = Catchup()
    first = c.answerable("+g", ids(100), 0)
    assert first == ids(T.resend_budget)
    assert c.answerable("+g", ids(1, 200), 1) == []  # budget spent in this window
    later = T.resend_window_ms
    assert c.answerable("+g", ids(1), later) == (ids(1) if later >= T.resend_same_ms else [])
    assert c.answerable("+g", ids(1), later + 1) == []  # just resent
    assert c.answerable("+g", ids(1, 500), later + 2) == ids(1, 500)


def test_a_request_naming_one_id_many_times_costs_one_resend() -> None:
    c = Catchup()
    assert c.answerable("+g", ids(1) * 50, 0) == ids(1)


def test_forget_drops_a_conversation() -> None:
    c = Catchup()
    c.activity("+g", 0)
    c.forget("+g")
    assert c.summaries_due(10**9) == []


def test_may_ask_says_whether_a_request_would_go_without_using_the_slot() -> None:
    c = Catchup()
    assert c.may_ask("+g", 0)
    assert c.may_ask("+g", 0)  # asking whether uses nothing
    assert c.wants("+g", ids(1), 0)
    assert not c.may_ask("+g", T.want_every_ms - 1)
    assert c.may_ask("+g", T.want_every_ms)


def test_next_ask_is_when_the_request_slot_frees() -> None:
    c = Catchup()
    assert c.next_ask("+g") is None
    c.wants("+g", ids(1), 1_000)
    assert c.next_ask("+g") == 1_000 + T.want_every_ms
