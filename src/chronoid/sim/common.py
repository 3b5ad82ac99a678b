"""Helpers shared by the scenarios: number formatting, intervals, vectorised mixing.

The numpy helpers reproduce :func:`chronoid.mix.compose` on whole arrays (uint64, wrapping
multiplication is exact modulo 2^64, and every field is narrower than 64 bits); each
scenario that uses them checks a sample against ``compose`` itself and reports the result.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from chronoid.capacity import birthday_count, birthday_probability, window_seconds
from chronoid.layout import Layout
from chronoid.mix import BASKET_SIZE, compose, multiplier, weyl_step_constant
from chronoid.sim.model import Context

__all__ = [
    "F64",
    "SECONDS_PER_YEAR",
    "U64",
    "birthday_k",
    "birthday_p",
    "compose_np",
    "count_duplicate_trials",
    "fmt_int",
    "fmt_p",
    "fmt_ratio",
    "fmt_seconds",
    "fmt_share_ci",
    "fmt_timing",
    "mean_interval",
    "median_interval",
    "mode_b_np",
    "parity_note",
    "parity_with_compose",
    "ratio_interval",
    "scenario_rng",
    "timing_spread",
    "wilson",
    "window_seconds",
]

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

SECONDS_PER_YEAR = 365.25 * 86_400


def fmt_int(value: float) -> str:
    """``1234567`` → ``1,234,567`` (rounded to an int)."""
    return f"{round(value):,}"


def fmt_p(value: float) -> str:
    """A probability as a percentage with sensible precision (``0.1 %``, ``1.2e-5 %``)."""
    pct = value * 100
    if value == 0:
        return "0 %"
    if pct >= 99.95 and value < 1:  # never round a non-certainty up to 100.0 %
        return f"{pct:.4f} %"
    if pct >= 1:
        return f"{pct:.1f} %"
    if pct >= 0.01:
        return f"{pct:.3f} %"
    return f"{pct:.2e} %"


def fmt_ratio(value: float) -> str:
    """A speed or size ratio: ``1.96×``."""
    return f"{value:.2f}×"


def fmt_seconds(value: float) -> str:
    """A duration in the largest unit that keeps it readable (ns ... years)."""
    if value < 1e-6:
        return f"{value * 1e9:.0f} ns"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7_200:
        return f"{value / 60:.1f} min"
    if value < 2 * 86_400:
        return f"{value / 3_600:.1f} h"
    if value < SECONDS_PER_YEAR:
        return f"{value / 86_400:.1f} days"
    return f"{value / SECONDS_PER_YEAR:.1f} years"


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a measured proportion."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def birthday_p(space_bits: int, k: float) -> float:
    """Birthday product: chance of at least one duplicate among ``k`` uniform draws (exact,
    :func:`chronoid.capacity.birthday_probability`; ``k`` is rounded to whole draws)."""
    return birthday_probability(round(k), 1 << space_bits)


def birthday_k(space_bits: int, p: float) -> int:
    """The most draws (IDs per window) whose exact duplicate risk stays at or under ``p``."""
    return birthday_count(1 << space_bits, p)


def ratio_interval(
    hits_a: int, trials_a: int, hits_b: int, trials_b: int, z: float = 1.96
) -> tuple[float, float, float]:
    """(ratio, low, high): the ratio of two measured proportions with its 95 % interval
    (log method, Katz et al.); ``inf`` bounds when a side has no hits."""
    if hits_a == 0 or hits_b == 0:
        return (math.nan, 0.0, math.inf)
    pa, pb = hits_a / trials_a, hits_b / trials_b
    ratio = pa / pb
    half = z * math.sqrt((1 - pa) / hits_a + (1 - pb) / hits_b)
    return (ratio, ratio * math.exp(-half), ratio * math.exp(half))


def mean_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """(mean, low, high): the sample mean with a normal 95 % interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return (mean, mean, mean)
    half = z * statistics.stdev(values) / math.sqrt(len(values))
    return (mean, mean - half, mean + half)


def median_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """(median, low, high): the sample median with a distribution-free 95 % interval from
    order statistics (ranks n/2 -+ z·sqrt(n)/2)."""
    ordered = sorted(values)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    centre = (n - 1) / 2  # 0-based rank of the median
    lo = max(0, math.floor(centre - half))
    hi = min(n - 1, math.ceil(centre + half))
    return (statistics.median(ordered), ordered[lo], ordered[hi])


def fmt_share_ci(hits: int, trials: int) -> str:
    """A measured proportion with its Wilson interval: ``5.6 % [4.6, 6.7]``."""
    lo, hi = wilson(hits, trials)
    return f"{fmt_p(hits / trials)} [{fmt_p(lo)}, {fmt_p(hi)}]"


def fmt_timing(times_s: Sequence[float]) -> str:
    """Repeated timings as ``median (min–max, n runs)``."""
    return (
        f"{fmt_seconds(statistics.median(times_s))} "
        f"({fmt_seconds(min(times_s))}–{fmt_seconds(max(times_s))}, {len(times_s)} runs)"
    )


def timing_spread(times_s: Sequence[float]) -> float:
    """max / min of repeated timings: how much a timing row varies (1.0: not at all)."""
    fastest = min(times_s)
    return max(times_s) / fastest if fastest > 0 else 1.0


def count_duplicate_trials(
    rng: np.random.Generator, space_bits: int, k: int, trials: int, budget: int = 4_000_000
) -> int:
    """Trials (of ``k`` uniform draws from 2^space_bits values) with at least one duplicate."""
    chunk = max(1, budget // max(k, 1))
    hits = 0
    done = 0
    while done < trials:
        rows = min(chunk, trials - done)
        draws = rng.integers(0, 1 << space_bits, size=(rows, k), dtype=np.uint64)
        draws.sort(axis=1)
        hits += int(np.count_nonzero((draws[:, 1:] == draws[:, :-1]).any(axis=1)))
        done += rows
    return hits


_MULTIPLIERS: dict[int, U64] = {}


def multipliers_np(bits: int) -> U64:
    """The 64 basket multipliers truncated to ``bits`` bits, as a uint64 array."""
    table = _MULTIPLIERS.get(bits)
    if table is None:
        table = np.array([multiplier(bits, i) for i in range(BASKET_SIZE)], dtype=np.uint64)
        _MULTIPLIERS[bits] = table
    return table


def compose_np(
    layout: Layout,
    timestamp: int | U64,
    node: U64,
    sequence: U64,
    salt: U64,
    index: npt.NDArray[np.int64],
    *,
    mix_node: bool = True,
) -> U64:
    """:func:`chronoid.mix.compose` on arrays (no range checks: callers draw in range)."""
    s_bits, n_bits = layout.sequence_bits, layout.node_bits
    s_mask = np.uint64((1 << s_bits) - 1)
    n_mask = np.uint64((1 << n_bits) - 1)
    seq = ((sequence * multipliers_np(s_bits)[index]) ^ salt) & s_mask
    if mix_node:
        node_field = ((node * multipliers_np(n_bits)[index]) ^ (salt >> np.uint64(s_bits))) & n_mask
    else:
        node_field = node & n_mask
    ts = np.asarray(timestamp, dtype=np.uint64)
    out: U64 = (
        (ts << np.uint64(n_bits + s_bits)) | (node_field << np.uint64(s_bits)) | seq
    ).astype(np.uint64)
    return out


def parity_with_compose(layout: Layout, seed: int, samples: int = 1_000) -> tuple[int, int]:
    """(matching, samples): :func:`compose_np` against ``compose`` on random inputs."""
    rnd = random.Random(seed)
    ts = [rnd.randrange(layout.max_timestamp + 1) for _ in range(samples)]
    nodes = [rnd.randrange(layout.max_node + 1) for _ in range(samples)]
    seqs = [rnd.randrange(layout.max_sequence + 1) for _ in range(samples)]
    salts = [rnd.getrandbits(layout.suffix_bits) if layout.suffix_bits else 0 for _ in ts]
    idx = [rnd.randrange(BASKET_SIZE) for _ in range(samples)]
    got = compose_np(
        layout,
        np.array(ts, dtype=np.uint64),
        np.array(nodes, dtype=np.uint64),
        np.array(seqs, dtype=np.uint64),
        np.array(salts, dtype=np.uint64),
        np.array(idx, dtype=np.int64),
    )
    want = [compose(layout, *args) for args in zip(ts, nodes, seqs, salts, idx, strict=True)]
    return sum(int(g) == w for g, w in zip(got.tolist(), want, strict=True)), samples


def mode_b_np(
    layout: Layout, timestamp: int | U64, counters: U64, base_node: int, salt: int, index: int
) -> U64:
    """Mode B IDs for counter values (see ``chronoid.modes.instance.mode_b_id``)."""
    s_bits = np.uint64(layout.sequence_bits)
    step = np.uint64(weyl_step_constant(layout.node_bits))
    node = (np.uint64(base_node) + (counters >> s_bits) * step) & np.uint64(layout.max_node)
    seq = counters & np.uint64(layout.max_sequence)
    size = counters.shape
    return compose_np(
        layout,
        timestamp,
        node,
        seq,
        np.full(size, salt, dtype=np.uint64),
        np.full(size, index, dtype=np.int64),
    )


def scenario_rng(ctx: Context, salt: int) -> np.random.Generator:
    """The random stream of one scenario (``salt`` is the scenario's own number)."""
    # One independent stream per scenario: adding a scenario never shifts another's draws.
    return np.random.default_rng([ctx.seed, salt])


def parity_note(layout: Layout, seed: int) -> str:
    """A sentence on how the vectorised model matched ``compose`` on a random sample."""
    ok, n = parity_with_compose(layout, seed)
    return f"{ok:,}/{n:,} sampled IDs bit-identical to `chronoid.mix.compose`"
