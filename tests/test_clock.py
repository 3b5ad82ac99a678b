"""Clocks that lie: before the epoch, bounded HLC lead, forward jumps, a raw libc fork."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from chronoid import (
    Backwards,
    ClockBeforeEpoch,
    ClockJumpedForward,
    Generator,
    ManualClock,
    hlc_generator,
)
from chronoid.errors import GeneratorForked

MS = 1_000_000
AT_2019 = int(datetime(2019, 6, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


def test_importing_chronoid_never_reads_the_clock() -> None:
    # 15.3: a host whose clock reads 2019 (a new VM, a dead RTC battery): every command used
    # to die at import with "epoch ... is in the future". Simulated in a fresh interpreter.
    code = f"""
import sys, time
time.time_ns = lambda: {AT_2019}
time.time = lambda: {AT_2019} / 1e9
import chronoid
from chronoid import ClockBeforeEpoch, Generator
try:
    Generator("snowflake", 1).next_id()
except ClockBeforeEpoch as exc:
    print(exc)
"""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "before the layout's epoch 2024-01-01T00:00:00+00:00" in run.stdout
    assert str(AT_2019) in run.stdout


@pytest.mark.parametrize("policy", [Backwards.WAIT, Backwards.RAISE, Backwards.HLC])
def test_a_clock_before_the_epoch_is_a_named_clock_error_under_every_policy(
    policy: Backwards,
) -> None:
    clock = ManualClock(AT_2019)
    gen = Generator("snowflake", 1, clock=clock, on_backwards=policy)
    with pytest.raises(ClockBeforeEpoch) as caught:
        gen.next_id()
    assert caught.value.now_ns == AT_2019
    assert caught.value.epoch_ns == gen.layout.epoch_ns
    with pytest.raises(ClockBeforeEpoch):
        gen.next_ids(10)


def test_an_hlc_generator_that_issued_before_keeps_going_before_the_epoch() -> None:
    clock = ManualClock()
    gen = hlc_generator(1, clock=clock)
    before = gen.next_ids(100)
    clock.set_ns(AT_2019)  # 2026 -> 2019: one more regression
    after = [gen.next_id() for _ in range(5000)] + gen.next_ids(100)
    ids = before + after
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_the_hlc_lead_stays_bounded_under_a_load_above_the_tick_capacity() -> None:
    # 15.4: 2,048 IDs per ms on a 1,024-per-ms layout: borrowing alone would lead by 300 ms
    # after 300 ms; the bound (max_lead_ms, 100 ms here) makes the generator wait instead.
    clock = ManualClock()
    gen = Generator("chrono64ms", 1, clock=clock, on_backwards=Backwards.HLC, max_lead_ms=100)
    worst = 0
    last = 0
    for _ in range(300):
        clock.advance_ms(1)
        ids = gen.next_ids(2048)
        assert ids[0] > last
        last = ids[-1]
        worst = max(worst, gen.lead_ns)
    assert worst <= 100 * MS + MS
    assert clock.sleeps  # it waited for the wall clock rather than run further ahead


def test_a_forward_jump_is_reported_and_raised_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    gen = Generator("snowflake", 1, clock=clock)
    gen.next_id()
    clock.advance_ms(5)  # time passing is no jump
    gen.next_id()
    with caplog.at_level(logging.WARNING, logger="chronoid"):
        clock.jump_ns(30 * 365 * 86_400 * 1_000_000_000)  # +30 years
        gen.next_id()
    assert gen.forward_jumps == 1
    assert "jumped" in caplog.text
    strict = Generator("snowflake", 2, clock=clock, on_forward_jump="raise")
    strict.next_id()
    clock.jump_ns(2_000 * MS)
    with pytest.raises(ClockJumpedForward) as caught:
        strict.next_id()
    assert caught.value.jump_ns == 2_000 * MS
    strict.next_id()  # raised once; the next call issues at the new time


_RAW_FORK = """
import ctypes, json, os
from chronoid import Generator, ManualClock
clock = ManualClock()
gen = Generator("chrono64ms", 1, clock=clock)
gen.next_id()
pid = ctypes.CDLL(None).fork()  # no at-fork hooks run
ids, error = [], None
for _ in range(2000):
    clock.advance_ms(1)
    try:
        ids.append(gen.next_id())
    except Exception as exc:
        error = type(exc).__name__
        break
print(json.dumps({"child": pid == 0, "ids": ids, "error": error}), flush=True)
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_raw_libc_fork_is_noticed_at_the_next_tick_change() -> None:
    # 14.4: 2,000 of 2,000 child IDs used to equal the parent's.
    run = subprocess.run(
        [sys.executable, "-c", _RAW_FORK], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    reports = {r["child"]: r for r in map(json.loads, run.stdout.split("\n")[:-1])}
    assert len(reports[False]["ids"]) == 2000
    assert reports[True]["ids"] == []
    assert reports[True]["error"] == GeneratorForked.__name__


@pytest.mark.parametrize("mode", ["A", "B"])
def test_modes_a_and_b_name_a_clock_before_the_epoch_too(mode: str) -> None:
    # 15.3 "under every policy": Mode A and Mode B raised TimestampOutOfRange here at
    # 5db92bb; a clock before the epoch is a clock error wherever IDs are made.
    from chronoid.errors import ClockBeforeEpoch
    from chronoid.modes import InstanceGenerator, PersonaGenerator

    clock = ManualClock(1_500_000_000_000_000_000)  # 2017, before chrono64s's 2020 epoch
    made: PersonaGenerator | InstanceGenerator = (
        PersonaGenerator("chrono64s", clock=clock)
        if mode == "A"
        else InstanceGenerator("chrono64s", clock=clock)
    )
    with pytest.raises(ClockBeforeEpoch, match="before the layout's epoch"):
        made.next_id()
    with pytest.raises(ClockBeforeEpoch):
        made.next_ids(10)
