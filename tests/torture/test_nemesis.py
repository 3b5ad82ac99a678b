"""Fault schedules are functions of their seed; the named scenarios are well formed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid.errors import InvalidArgument
from chronoid.torture.nemesis import (
    ATTACH_FAULTS,
    CLOCK_STEP_S,
    HA_FAULTS,
    LEASE_FAULTS,
    SCENARIOS,
    SERVE_FAULTS,
    STORE_FAULTS,
    get_scenario,
    random_schedule,
)
from chronoid.torture.serve import (
    CLIENT_KINDS,
    CLIENT_LIBRARIES,
    Attach,
    HaSetup,
    allowed_faults,
    client_mix,
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


def test_a_clock_step_back_is_an_instant_fault_of_ninety_seconds() -> None:
    steps = random_schedule(1, 30.0, {"modeb-clock-back": ("mb0",)})
    assert steps and all(s.duration_s == CLOCK_STEP_S for s in steps)
    # The step is not a time the fault lasts: the schedule still fills the run.
    assert steps[-1].at_s > 20


def test_the_client_mix_covers_both_libraries_and_every_mode() -> None:
    assert client_mix(CLIENT_LIBRARIES, 4) == [
        ("redis-py", "single"),
        ("chronoid", "batched"),
        ("redis-py", "pipelined"),
        ("chronoid", "named"),
    ]
    assert {kind for kind in client_mix(CLIENT_LIBRARIES, 7)} == set(CLIENT_KINDS)
    assert client_mix(("chronoid",), 4) == [
        ("chronoid", "batched"),
        ("chronoid", "named"),
        ("chronoid", "single"),
        ("chronoid", "batched"),
    ]


def test_each_set_up_allows_only_the_faults_it_can_inject() -> None:
    assert allowed_faults(None, None, root=True) == SERVE_FAULTS
    assert "disk-full" not in allowed_faults(None, None, root=False)  # no tmpfs without root
    own = HaSetup("postgresql")
    assert allowed_faults(own, None, root=True) == (*HA_FAULTS, *STORE_FAULTS)
    external = HaSetup("postgresql://postgres@127.0.0.1/test")
    assert allowed_faults(external, None, root=True) == (*HA_FAULTS, "store-partition")
    attach = Attach.parse("127.0.0.1:1,localhost:2", None, None)
    assert attach.servers == (("127.0.0.1", 1), ("localhost", 2))
    assert allowed_faults(None, attach, root=True) == ATTACH_FAULTS == ("client-partition",)
