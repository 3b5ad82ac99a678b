"""Fault schedules are functions of their seed; the named scenarios are well formed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid.errors import InvalidArgument
from chronoid.torture.nemesis import (
    HA_FAULTS,
    LEASE_FAULTS,
    SCENARIOS,
    SERVE_FAULTS,
    STORE_FAULTS,
    get_scenario,
    random_schedule,
)

TARGETS = {"kill9": ("server",), "pause": ("server",), "intruder": ("server",)}


@given(st.integers(0, 2**32), st.floats(3, 600))
def test_a_schedule_is_a_function_of_its_seed_and_stays_inside_the_run(
    seed: int, duration_s: float
) -> None:
    steps = random_schedule(seed, duration_s, TARGETS)
    assert steps == random_schedule(seed, duration_s, TARGETS)
    previous_end = 0.0
    for step in steps:
        assert step.kind in TARGETS and step.target == "server"
        assert step.at_s >= 1.0 and step.at_s >= previous_end
        assert step.at_s + step.duration_s <= duration_s - 1.0
        assert 0.5 <= step.duration_s <= 3.0 if step.kind != "kill9" else step.duration_s == 0
        previous_end = step.at_s + step.duration_s


def test_a_ten_minute_schedule_has_at_least_100_faults() -> None:
    for kinds in (SERVE_FAULTS, LEASE_FAULTS, HA_FAULTS + STORE_FAULTS):
        steps = random_schedule(2026, 600, {kind: ("x",) for kind in kinds})
        assert len(steps) >= 100
        assert {step.kind for step in steps} == set(kinds)


def test_different_seeds_give_different_schedules() -> None:
    assert random_schedule(1, 60, TARGETS) != random_schedule(2, 60, TARGETS)


def test_no_targets_no_faults() -> None:
    assert random_schedule(1, 60, {}) == []


def test_scenarios_use_their_targets_fault_kinds() -> None:
    assert {"shared-data-dir", "zombie-lease", "mode-b-crash"} <= set(SCENARIOS)
    for scenario in SCENARIOS.values():
        kinds = SERVE_FAULTS if scenario.target == "serve" else LEASE_FAULTS
        assert scenario.steps
        for step in scenario.steps:
            assert step.kind in kinds
            assert step.at_s + step.duration_s < scenario.duration_s
        assert get_scenario(scenario.name, scenario.target) is scenario


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="known: zombie-lease, lease-partition"):
        get_scenario("nope", "lease")
