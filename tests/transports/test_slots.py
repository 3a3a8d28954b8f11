"""The slot policy: who is evicted when strangers crowd a node's links and handshakes."""

from __future__ import annotations

import pytest

from meshchat.transports.slots import LinkClass, PendingView, SlotPolicy, SlotView

POLICY = SlotPolicy(max_links=4, soft_links=2, max_pending=4, max_pending_per_address=2)


def _links(*views: SlotView) -> list[SlotView]:
    return list(views)


def test_classes() -> None:
    now = 1000.0
    assert POLICY.classify(SlotView("c", True, 0.0), now) is LinkClass.CONTACT
    assert POLICY.classify(SlotView("a", False, 0.0, now - 5), now) is LinkClass.ACTIVE
    assert POLICY.classify(SlotView("o", False, 0.0, now - 601), now) is LinkClass.IDLE
    assert POLICY.classify(SlotView("i", False, 0.0), now) is LinkClass.IDLE


def test_a_contact_evicts_the_weakest_stranger_and_never_a_contact() -> None:
    now = 100.0
    links = _links(
        SlotView("contact", True, 0.0),
        SlotView("active", False, 0.0, 99.0),
        SlotView("idle-old", False, 10.0),
        SlotView("idle-new", False, 99.5),
    )
    assert POLICY.victim(links, True, now) == "idle-old"
    # even a brand-new idle link yields to a contact (no grace against contacts)
    assert POLICY.victim(links[:2] + links[3:], True, now) == "idle-new"
    # with only contacts and active links, the active one least recently useful goes
    actives = _links(
        SlotView("c", True, 0.0), SlotView("a1", False, 0, 90.0), SlotView("a2", False, 0, 80.0)
    )
    assert POLICY.victim(actives, True, now) == "a2"
    assert (
        POLICY.victim(_links(SlotView("c1", True, 0.0), SlotView("c2", True, 0.0)), True, now)
        is None
    )


def test_a_stranger_evicts_only_an_idle_stranger_past_its_grace() -> None:
    now = 100.0
    young = _links(SlotView("c", True, 0.0), SlotView("idle-young", False, 95.0))
    assert POLICY.victim(young, False, now) is None
    old = _links(SlotView("c", True, 0.0), SlotView("idle-old", False, 50.0))
    assert POLICY.victim(old, False, now) == "idle-old"
    active = _links(SlotView("c", True, 0.0), SlotView("a", False, 0.0, 99.0))
    assert POLICY.victim(active, False, now) is None
    assert POLICY.victim([], False, now) is None


def test_idle_sweep_only_above_the_soft_limit_and_only_stale_strangers() -> None:
    now = 1000.0
    links = _links(
        SlotView("contact", True, 0.0),
        SlotView("stale1", False, 0.0),
        SlotView("stale2", False, 100.0),
        SlotView("fresh", False, 990.0),
        SlotView("useful", False, 0.0, 995.0),
    )
    # five links, soft limit two: up to three may go, but only the two stale strangers qualify
    assert POLICY.idle(links, now) == ["stale1", "stale2"]
    assert POLICY.idle(links[:2], now) == []


def test_pending_bounds_per_address_then_overall() -> None:
    pending = [PendingView("x1", "10.0.0.9", 1.0), PendingView("x2", "10.0.0.9", 2.0)]
    # a third from the same address evicts that address's oldest
    assert POLICY.pending_victim(pending, "10.0.0.9") == "x1"
    # someone else fits while there is room overall
    assert POLICY.pending_victim(pending, "10.0.0.5") is None
    full = [*pending, PendingView("y1", "10.0.0.7", 0.5), PendingView("z1", "10.0.0.8", 0.1)]
    # full overall: the busiest address loses its oldest, not the other hosts
    assert POLICY.pending_victim(full, "10.0.0.5") == "x1"


@pytest.mark.parametrize(
    "kwargs",
    [{"soft_links": 0}, {"soft_links": 200}, {"max_pending_per_address": 0}, {"grace": -1.0}],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SlotPolicy(**kwargs)  # type: ignore[arg-type]
