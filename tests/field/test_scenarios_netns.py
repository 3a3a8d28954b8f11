"""Short versions of the field-test scenarios, on namespace hosts running real daemons.

Each prints its report (delivery, duplicates, transmissions, hops, latency) into the test
output and asserts that every message arrived.
"""

from __future__ import annotations

import pytest
import scenarios

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def _check(report: scenarios.Report, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print()
        report.print()
    assert report.expected > 0
    assert report.delivered == report.expected


def test_chain_of_ten(capsys: pytest.CaptureFixture[str]) -> None:
    report = scenarios.chain(10, 2)
    _check(report, capsys)
    assert max(report.hops) == 9  # the far end is nine hops away


def test_grid(capsys: pytest.CaptureFixture[str]) -> None:
    report = scenarios.grid(3, 2)
    _check(report, capsys)
    assert max(report.hops) >= 4  # the far corner is four hops away; a detour may be longer


def test_two_islands_joined_by_one_bridge(capsys: pytest.CaptureFixture[str]) -> None:
    _check(scenarios.islands(2), capsys)


def test_churn(capsys: pytest.CaptureFixture[str]) -> None:
    _check(scenarios.churn(3, 6), capsys)
