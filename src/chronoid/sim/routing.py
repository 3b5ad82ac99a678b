"""Mode C and shard routing: spin-wait on overflow, rotation safety of the routing bits,
bit shift against a dictionary lookup.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time

import numpy as np

from chronoid.clock import ManualClock
from chronoid.generator import Generator
from chronoid.mix import BASKET_SIZE
from chronoid.sim.common import (
    compose_np,
    fmt_int,
    fmt_p,
    fmt_ratio,
    fmt_seconds,
    fmt_share_ci,
    fmt_timing,
    parity_note,
    scenario_rng,
    timing_spread,
)
from chronoid.sim.model import Context, Plot, ScenarioResult, Series, Table, Verdict
from chronoid.variants import VARIANTS

__all__ = ["rotation_routing", "routing", "spin_wait"]


# -- 12b. Mode C spin-wait and shard isolation (Scenario 14, §3.3.1) -------------------------


def spin_wait(ctx: Context) -> ScenarioResult:
    """A node that overflows its tick waits for the next one; shards never mix."""
    del ctx
    layout = VARIANTS["chrono64us"]
    count = 100_000
    clock = ManualClock()
    start_ns = clock.now_ns()
    gen = Generator(layout, 1, clock=clock)
    ids = [gen.next_id() for _ in range(count)]
    virtual_ns = clock.now_ns() - start_ns
    floor_ns = (count // layout.ids_per_tick - 1) * (layout.unit_ns or 1)
    ok_manual = (
        len(set(ids)) == count
        and all(b > a for a, b in itertools.pairwise(ids))
        and {layout.node_of(i) for i in ids} == {1}
    )
    walls_s: list[float] = []
    ok_real = True
    for node in range(2, 7):  # five runs on the system clock, a fresh node each
        real = Generator(layout, node)
        make = real.next_id
        t0_s = time.perf_counter()
        real_ids = [make() for _ in range(count)]
        walls_s.append(time.perf_counter() - t0_s)
        ok_real = ok_real and len(set(real_ids)) == count
    # Parallel isolation: four shards, one million IDs each, routed by one shift and mask.
    shard_layout = VARIANTS["chrono64ms"]
    misrouted = made = 0
    shard_clock = ManualClock()
    for shard in (1, 2, 3, 31):
        shard_gen = Generator(shard_layout, shard, clock=shard_clock)
        per_call = shard_layout.ids_per_tick  # next_ids is slow for batches beyond one tick
        for _ in range(1_000_000 // per_call):
            batch = shard_gen.next_ids(per_call)
            misrouted += sum(1 for i in batch if shard_layout.node_of(i) != shard)
        made += (1_000_000 // per_call) * per_call
    ok = ok_manual and ok_real and misrouted == 0 and virtual_ns >= floor_ns
    # The spec's ~3.1 ms is the 32-IDs-per-µs floor; a real run that is much slower only
    # shows the waiting behaviour, not the timing.
    real_fast = statistics.median(walls_s) <= 2 * floor_ns / 1e9
    return ScenarioResult(
        name="spin-wait",
        title="Mode C spin-wait on overflow and shard isolation (Scenario 14, §3.3.1)",
        claim='§3.3.1: "Scenario 14 forced a sequence overflow and confirmed the generator '
        "correctly paused for the time-boundary reset. (100k IDs at 32/us correctly took "
        '~3.1ms)"; "4 concurrent shards (IDs 1, 2, 3, 31) generating 1,000,000 IDs each. Zero '
        'cross-shard routing errors".',
        method=f"{count:,} IDs from one `chrono64us` node (32 IDs per µs) with the WAIT overflow "
        "policy, first on a `ManualClock` (every wait advances it, so the simulated time is "
        "exact), then on the system clock (wall time, 5 runs); then four `chrono64ms` nodes "
        "(1, 2, 3, 31) make about 1,000,000 IDs each (in one-tick batches) and every ID is "
        "routed back with `node_of`.",
        verdict=(Verdict.HOLDS if real_fast else Verdict.PARTLY) if ok else Verdict.DOES_NOT_HOLD,
        reason=f"The generator waited {len(clock.sleeps):,} times for the next µs: "
        f"{count:,} IDs took {virtual_ns / 1e6:.3f} ms of simulated time (the minimum for 32 "
        f"IDs per µs is {count // layout.ids_per_tick - 1:,} µs of waiting: "
        f"{count // layout.ids_per_tick:,} ticks, the first one free), all unique, increasing and "
        f"on their node. That figure is simulated-clock arithmetic, (100,000 / 32 − 1) µs, not "
        f"a measurement. On the real clock the same {count:,} IDs took {fmt_timing(walls_s)}: "
        f"Python makes fewer than 32 IDs per µs, so it, not the spin-wait, sets the pace. "
        f"{misrouted} of {made:,} shard IDs were misrouted.",
        headline=f"{count:,} IDs: real clock {fmt_timing(walls_s)}; "
        f"{virtual_ns / 1e6:.3f} ms is the simulated-clock floor; {misrouted} misrouted of "
        f"{made:,}",
        timing_spread=timing_spread(walls_s),
    )


# -- 12e. rotation safety of the routing bits (Scenario 5) --------------------------------------


def rotation_routing(ctx: Context) -> ScenarioResult:
    """Entropy rotation (salt, multiplier) must never move the routing (node) bits."""
    from chronoid.lease.url import parse_registry_url
    from chronoid.modes.lease import LeaseGenerator

    rng = scenario_rng(ctx, 43)
    layout = VARIANTS["chrono64s"]
    n = ctx.scaled(200_000, 2_000_000)
    node = rng.integers(0, layout.max_node + 1, size=n, dtype=np.uint64)
    seq = rng.integers(0, layout.max_sequence + 1, size=n, dtype=np.uint64)
    tick = layout.tick_of_ns(1_767_225_600 * 10**9)
    # Two rotations of the entropy: independent salts and multiplier indices per ID.
    salts = [rng.integers(0, 1 << layout.suffix_bits, size=n, dtype=np.uint64) for _ in range(2)]
    indices = [rng.integers(0, BASKET_SIZE, size=n, dtype=np.int64) for _ in range(2)]
    s_shift = np.uint64(layout.sequence_bits)
    node_mask = np.uint64(layout.max_node)
    rows: list[list[str]] = []
    moved: dict[bool, int] = {}
    for mix_node in (False, True):
        before, after = (
            compose_np(layout, tick, node, seq, salts[i], indices[i], mix_node=mix_node)
            for i in range(2)
        )
        node_before = (before >> s_shift) & node_mask
        node_after = (after >> s_shift) & node_mask
        moved[mix_node] = int(np.count_nonzero(node_before != node_after))
        wrong = int(np.count_nonzero(node_before != node)) if not mix_node else -1
        rows.append(
            [
                "node mixed (Mode A, Mode B)" if mix_node else "node plain (Mode C)",
                fmt_int(n),
                fmt_share_ci(moved[mix_node], n),
                "—" if wrong < 0 else fmt_int(wrong),
            ]
        )
    # The library's Mode C generator on an in-memory registry: every ID routes to its node.
    with LeaseGenerator(layout, parse_registry_url("memory://sim-rotation")) as leased:
        lease_ids: list[int] = []
        for _ in range(ctx.scaled(20, 200)):
            lease_ids.extend(leased.next_ids(10_000))
        lease_node = leased.node
        misrouted = sum(1 for i in lease_ids if leased.node_of(i) != lease_node)
    parity = parity_note(layout, ctx.seed + 5)
    ok = moved[False] == 0 and misrouted == 0
    return ScenarioResult(
        name="rotation-routing",
        title="Rotation safety of the routing bits (Scenario 5, §3.3.1)",
        claim='§3.3.1: "Confirmed that entropy rotation (salt/multiplier updates) does not '
        'impact the stability of the routing bits."',
        method=f"{fmt_int(n)} random (node, sequence) pairs composed twice with independent "
        f"salts and multiplier indices (two rotations), with the node field plain (as Mode C "
        f"keeps it) and mixed (as Modes A and B do), vectorised ({parity}); we count IDs whose "
        f"node field differs between the rotations. Then {fmt_int(len(lease_ids))} IDs from "
        "`chronoid.modes.LeaseGenerator` on an in-memory registry, each routed back with "
        "`node_of`.",
        verdict=Verdict.HOLDS if ok else Verdict.DOES_NOT_HOLD,
        reason=f"With a plain node the salt and multiplier touch only the sequence bits: "
        f"{moved[False]} of {fmt_int(n)} node fields moved, and {misrouted} of "
        f"{fmt_int(len(lease_ids))} `LeaseGenerator` IDs routed elsewhere. This holds because "
        "Mode C never mixes its node; in Modes A and B the node field is mixed, and a rotation "
        f"moves it for {fmt_p(moved[True] / n)} of IDs, so their node bits cannot route.",
        headline=f"plain node: {moved[False]} of {fmt_int(n)} moved by rotation, {misrouted} "
        f"misrouted; mixed node (A/B): {fmt_p(moved[True] / n)} moved",
        tables=[
            Table(
                [
                    "node field",
                    "IDs",
                    "node field changed by a rotation [95 % CI]",
                    "node field ≠ the node",
                ],
                rows,
            )
        ],
    )


# -- 12. shard routing ------------------------------------------------------------------------


def routing(ctx: Context) -> ScenarioResult:
    """Shard routing by one shift and mask vs a dictionary lookup, by request count."""
    rnd = random.Random(ctx.seed + 12)
    layout = VARIANTS["chrono64s"]
    counts = [1_000, 10_000, 100_000, 1_000_000] + ([10_000_000] if ctx.full else [])
    s_bits, mask = layout.sequence_bits, layout.max_node
    keys_n = 100_000
    tick = layout.tick_of_ns(1_767_225_600 * 10**9)
    keys = [
        layout.pack(tick + rnd.randrange(86_400), rnd.randrange(64), rnd.randrange(1 << s_bits))
        for _ in range(keys_n)
    ]
    table = {k: layout.node_of(k) for k in keys}
    rows: list[list[str]] = []
    shift_s: list[float] = []
    dict_s: list[float] = []
    numpy_s: list[float] = []
    agree = True
    reps = 5
    spread = 1.0
    for n in counts:
        ctx.progress(f"{n:,} requests")
        requests = [keys[rnd.randrange(keys_n)] for _ in range(n)]
        arr = np.array(requests, dtype=np.uint64)
        runs: list[list[float]] = [[], [], []]
        for _ in range(reps):
            t0_s = time.perf_counter()
            by_shift = [(r >> s_bits) & mask for r in requests]
            t1_s = time.perf_counter()
            by_dict = [table[r] for r in requests]
            t2_s = time.perf_counter()
            by_np = (arr >> np.uint64(s_bits)) & np.uint64(mask)
            t3_s = time.perf_counter()
            for slot, value in enumerate((t1_s - t0_s, t2_s - t1_s, t3_s - t2_s)):
                runs[slot].append(value)
        agree = agree and by_shift == by_dict and by_np.tolist() == by_shift
        middle = [statistics.median(r) for r in runs]
        spread = max(spread, *(timing_spread(r) for r in runs))
        shift_s.append(middle[0])
        dict_s.append(middle[1])
        numpy_s.append(middle[2])
        rows.append(
            [
                fmt_int(n),
                fmt_timing(runs[0]),
                fmt_timing(runs[1]),
                fmt_timing(runs[2]),
                f"{middle[0] / n * 1e9:.0f} / {middle[1] / n * 1e9:.0f} / "
                f"{middle[2] / n * 1e9:.1f}",
                fmt_ratio(middle[1] / middle[0]),
            ]
        )
    ratios = [d / sh for d, sh in zip(dict_s, shift_s, strict=True)]
    per_shift = shift_s[-1] / counts[-1]
    per_dict = dict_s[-1] / counts[-1]
    per_np = numpy_s[-1] / counts[-1]
    lo_n, hi_n = counts[ratios.index(min(ratios))], counts[ratios.index(max(ratios))]
    return ScenarioResult(
        name="routing",
        title="Shard routing: bit shift vs dictionary lookup (Graph E, Scenario 26)",
        claim='§3.3: routing by one bit shift "eliminates the User-to-Shard lookup hop"; §8: '
        '"constant-time O(1) routing that remains sub-millisecond (0.005ms) at 1B scale".',
        method=f"Requests are `chrono64s` Mode C IDs (plain node = shard, 64 shards) drawn from "
        f"{keys_n:,} keys; routing by `(id >> {s_bits}) & {mask}` in a Python loop and in "
        f"numpy, against a dict from every key to its shard; {reps} runs per count, medians "
        "(min–max beside them).",
        verdict=Verdict.PARTLY if agree else Verdict.DOES_NOT_HOLD,
        reason=f"Both are O(1) per request and agree on every shard, and the shift needs no "
        f"table. Which is faster depends on the count: dict/shift is {min(ratios):.2f}× at "
        f"{fmt_int(lo_n)} requests and {max(ratios):.2f}× at {fmt_int(hi_n)} (a small, "
        f"cache-resident dict is as fast or faster). At {fmt_int(counts[-1])} requests the "
        f"shift costs {per_shift * 1e9:.0f} ns per request in Python ({per_np * 1e9:.1f} ns in "
        f"numpy) against {per_dict * 1e9:.0f} ns for the dict. 1 billion requests take about "
        f"{fmt_seconds(per_shift * 1e9)} in Python ({fmt_seconds(per_np * 1e9)} in numpy), not "
        "0.005 ms: total cost grows linearly with the request count. Timings vary from run to "
        f"run: the slowest of a row's runs took up to {spread:.1f}× its fastest.",
        headline=f"dict/shift {min(ratios):.2f}×–{max(ratios):.2f}× over "
        f"{fmt_int(counts[0])}–{fmt_int(counts[-1])} requests; 1B requests ≈ "
        f"{fmt_seconds(per_shift * 1e9)} (Python)",
        timing_spread=spread,
        tables=[
            Table(
                [
                    "requests",
                    "shift (Python)",
                    "dict lookup",
                    "shift (numpy)",
                    "ns per request: shift / dict / numpy (medians)",
                    "dict / shift",
                ],
                rows,
            )
        ],
        plots=[
            Plot(
                "graph_e_routing.png",
                "Graph E: total routing time vs request count (measured)",
                "requests (log)",
                "total time (s, log)",
                [
                    Series("bit shift, Python loop", counts, shift_s, "o-"),
                    Series("dict lookup, Python loop", counts, dict_s, "s-"),
                    Series("bit shift, numpy", counts, numpy_s, "^-"),
                ],
                xlog=True,
                ylog=True,
            )
        ],
    )
