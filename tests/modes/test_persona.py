"""Mode A: personas, rotation, refusal of unsafe layouts, duplicate rate vs the calculator."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from chronoid.capacity import birthday_probability
from chronoid.clock import ManualClock
from chronoid.errors import InvalidArgument, UnsafeForModeA
from chronoid.layout import Layout
from chronoid.mix import compose, unmix
from chronoid.modes import PersonaGenerator, check_mode_a_layout
from chronoid.variants import VARIANTS

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _seeded(seed: int) -> Any:
    return random.Random(seed).getrandbits


@pytest.mark.parametrize(
    "name",
    ["chrono64ms", "uchrono64ms", "chrono64us", "uchrono64us"]
    + [f"{p}chrono32{u}" for p in ("", "u") for u in ("h", "tm", "m", "bs")],
)
def test_unsafe_variants_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(UnsafeForModeA, match="unsafe for Mode A.*duplicates a day.*force=True"):
        PersonaGenerator(name)
    PersonaGenerator(name, force=True).next_id()  # forcing accepts it


def test_the_identity_variants_are_accepted() -> None:
    refused = {
        name
        for name in VARIANTS
        if name != "snowflake"
        and (name.endswith(("ms", "us")) or name[-2:] in ("2h", "tm", "2m", "bs"))
    }
    for name, layout in VARIANTS.items():
        if name not in refused and name != "snowflake":
            assert check_mode_a_layout(layout) is layout, name
    with pytest.raises(UnsafeForModeA, match="millisecond"):
        check_mode_a_layout("snowflake")


def test_ids_match_compose_and_a_window_never_repeats() -> None:
    clock = ManualClock()
    gen = PersonaGenerator("chrono64s", clock=clock, randbits=_seeded(1))
    layout = gen.layout
    ids = [gen.next_id() for _ in range(500)] + gen.next_ids(500)
    assert len(set(ids)) == len(ids)
    tick = layout.tick_of_ns(clock.now_ns())
    s_bits = layout.sequence_bits
    sequences = []
    for value in ids:
        sequence = unmix(layout.unpack(value).sequence, s_bits, gen.index, gen.salt)
        assert compose(layout, tick, gen.node, sequence, gen.salt, gen.index) == value
        sequences.append(sequence)
    # One persona counts from a random offset, one step per ID (mod 2^S).
    assert all((b - a) % layout.ids_per_tick == 1 for a, b in itertools.pairwise(sequences))


def test_burst_rotation_rerolls_the_persona_and_never_blocks() -> None:
    clock = ManualClock()
    tiny = Layout("tiny", "s", EPOCH, 50, 5, 8)  # 256 IDs per persona per window
    gen = PersonaGenerator(tiny, clock=clock, force=True, randbits=_seeded(2))
    ids = gen.next_ids(256 * 5 + 3)
    assert gen.burst_rotations == 5 and gen.rotations == 6
    assert clock.sleeps == []  # never waited
    assert {tiny.unpack(i).timestamp for i in ids} == {tiny.tick_of_ns(clock.now_ns())}


def test_timed_rotation_every_rotation_s() -> None:
    clock = ManualClock()
    gen = PersonaGenerator("chrono64s", clock=clock, rotation_s=60, randbits=_seeded(3))
    gen.next_id()
    persona = (gen.node, gen.salt, gen.index)
    clock.advance_ms(59_000)
    gen.next_id()
    assert (gen.node, gen.salt, gen.index) == persona and gen.rotations == 1
    clock.advance_ms(1_000)
    gen.next_id()
    assert (gen.node, gen.salt, gen.index) != persona and gen.rotations == 2


def test_clock_going_back_rerolls_instead_of_blocking() -> None:
    clock = ManualClock()
    gen = PersonaGenerator("chrono64s", clock=clock, randbits=_seeded(4))
    gen.next_id()
    clock.advance_ms(-5_000)
    gen.next_id()
    assert gen.rotations == 2 and clock.sleeps == []


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="rotation_s"):
        PersonaGenerator(rotation_s=0)
    with pytest.raises(InvalidArgument, match="force"):
        PersonaGenerator(force="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="count"):
        PersonaGenerator().next_ids(0)


def _child_persona(gen: PersonaGenerator, out: Any) -> None:
    gen.next_id()
    out.put((gen.node, gen.salt, gen.index))


def test_a_forked_child_rerolls_its_persona() -> None:
    gen = PersonaGenerator("chrono64s", randbits=_seeded(5))
    gen.next_id()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_persona, args=(gen, out))
    child.start()
    persona = out.get(timeout=30)
    child.join(timeout=30)
    assert persona != (gen.node, gen.salt, gen.index)


@pytest.mark.parametrize(("personas", "per_persona"), [(48, 2), (64, 1)])
def test_simulated_duplicate_rate_matches_the_birthday_bound(
    personas: int, per_persona: int
) -> None:
    """k personas x m IDs per window over a 2^12 suffix: measured vs predicted, fixed seed.

    Each window gets fresh personas (rotation = one window), so windows are independent
    trials; the prediction counts IDs (k*m), not personas.
    """
    layout = Layout("sim12", "s", EPOCH, 51, 6, 6)  # 2^12 suffix values per window
    clock = ManualClock()
    gens = [
        PersonaGenerator(layout, clock=clock, rotation_s=1, force=True, randbits=_seeded(100 + i))
        for i in range(personas)
    ]
    trials = 3000
    hits = 0
    for _ in range(trials):
        clock.advance_ns(1_000_000_000)
        ids = [i for g in gens for i in g.next_ids(per_persona)]
        hits += len(set(ids)) < len(ids)
    measured = hits / trials
    predicted = birthday_probability(personas * per_persona, 1 << layout.suffix_bits)
    sigma = math.sqrt(predicted * (1 - predicted) / trials)
    assert abs(measured - predicted) < 4 * sigma, (measured, predicted, sigma)


def test_few_busy_personas_stay_under_the_id_count_bound() -> None:
    """With m close to 2^S a persona's own IDs cannot collide with each other, so the
    ID-count birthday bound overstates the risk: it is an upper bound, not an estimate."""
    layout = Layout("sim12", "s", EPOCH, 51, 6, 6)
    clock = ManualClock()
    gens = [
        PersonaGenerator(layout, clock=clock, rotation_s=1, force=True, randbits=_seeded(200 + i))
        for i in range(6)
    ]
    trials = 2000
    hits = 0
    for _ in range(trials):
        clock.advance_ns(1_000_000_000)
        ids = [i for g in gens for i in g.next_ids(16)]
        hits += len(set(ids)) < len(ids)
    bound = birthday_probability(96, 1 << layout.suffix_bits)
    assert hits / trials < bound - 4 * math.sqrt(bound * (1 - bound) / trials)
