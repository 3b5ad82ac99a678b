"""How likely is a duplicate in Mode A? The birthday product, counted exactly.

Uncoordinated (Mode A) generators draw their IDs' node+sequence suffix from the same
``D = 2^(N+S)`` values in every time window (one tick of the layout). What matters is how many
*IDs* the whole fleet makes in one window, not how many nodes it has: 2,000 nodes making one ID
each per window and 200 nodes making ten each run the same risk (errata 3 and 7 of
``docs/errata.md``). And the risk of a window adds up over the windows of a day or a
year (erratum 4): a one-in-a-thousand chance per one-second window is a certainty within hours.

The calculator is exact for each of two ways a fleet can spread its IDs over windows:

* :attr:`Arrivals.STEADY` (the default): exactly ``n = R * window`` IDs in every window (a
  fractional ``n`` means windows of ``floor(n)`` and ``floor(n) + 1`` IDs, in the proportion
  that gives the mean). A window's risk is the birthday product
  ``1 - prod_{i<n} (1 - i/D)``, summed as ``log1p`` terms (or an exact Stirling series for large
  ``n``) and returned through ``expm1``, so a 1e-15 risk does not round to 0.
* :attr:`Arrivals.RANDOM`: independent generators at random moments, so a window's count is
  Poisson with mean ``lam = R * window``. Averaging the birthday product over that count gives
  ``P(no duplicate) = exp(-lam) * (1 + lam/D)^D`` exactly. It is the larger risk (a Poisson
  count spreads: some windows get more), by ``1/n`` relative: +100 % at 2 IDs per window, below
  1 % only from about 100 IDs per window.

Windows are independent: over a period of ``q`` windows the logarithms of ``P(no duplicate)``
add up. A period shorter than a window (a day of a monthly layout) is taken where it is riskiest,
at the end of its window: its IDs can also equal the IDs made *earlier in the same window*, so
its risk is ``P(a duplicate appears during the period | none before it)`` = ``1 - P_none(all
IDs of the window up to the period's end) / P_none(those before it)``. The windows of a month
then multiply back to the month's risk. A period of ``q >= 1`` windows is ``floor(q)`` whole
windows and the last ``q - floor(q)`` of one more.

Mode A personas make distinct IDs within one persona, so both models slightly overstate the
risk for a single busy persona; across a fleet of light generators they are the figure to plan
with. The tests check both against a seeded Monte Carlo simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from chronoid.errors import InvalidArgument
from chronoid.layout import Layout
from chronoid.variants import get_layout

__all__ = [
    "BUDGET_VARIANTS",
    "DAY_S",
    "YEAR_S",
    "Arrivals",
    "CapacityReport",
    "birthday_count",
    "birthday_probability",
    "budget_markdown",
    "capacity",
    "duplicate_probability",
    "format_report",
    "log_no_duplicate",
    "max_ids_per_second",
    "max_ids_per_window",
    "window_seconds",
]

DAY_S = 86_400.0
"""Seconds in a day."""
YEAR_S = 365.2425 * DAY_S
"""Seconds in a mean Gregorian year (31,556,952 s)."""

# Below this count the product is summed term by term; above it a Stirling series is exact to
# better than 1e-16 absolute because D - n stays above it too (or lgamma takes over).
_DIRECT_TERMS = 512


class Arrivals(Enum):
    """How a fleet's IDs fall into windows (see the module docstring)."""

    STEADY = "steady"
    """Exactly R * window IDs in every window: the birthday product."""
    RANDOM = "random"
    """Independent generators at random moments: a Poisson count per window."""


def window_seconds(layout: Layout) -> float:
    """Length of one window (tick) in seconds; calendar units use the mean month."""
    return layout.mean_unit_ns / 1e9


def _check_space(space: int) -> None:
    if not isinstance(space, int) or isinstance(space, bool) or space < 1:
        raise InvalidArgument(f"space must be an int >= 1 (values), got {space!r}")


def _log_none_int(n: int, space: int) -> float:
    """ln prod_{i<n} (1 - i/space): ln P(n uniform draws from ``space`` values are distinct)."""
    if n <= 1:
        return 0.0
    if n > space:
        return -math.inf
    if n <= _DIRECT_TERMS:
        return math.fsum(math.log1p(-i / space) for i in range(1, n))
    if space - n < _DIRECT_TERMS:
        return math.lgamma(space + 1) - math.lgamma(space - n + 1) - n * math.log(space)
    # ln(D! / ((D-n)! D^n)) by Stirling: -(D-n+1/2) log1p(-x) - n + c(D) - c(D-n), x = n/D,
    # with the first two terms as a series when x is small (they cancel otherwise).
    d = float(space)
    x = n / d
    if x < 0.05:
        head = -n * math.fsum(x ** (k - 1) / (k * (k - 1)) for k in range(2, 24))
    else:
        head = -(d - n) * math.log1p(-x) - n

    def corr(z: float) -> float:
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5)

    return head - 0.5 * math.log1p(-x) + corr(d) - corr(d - n)


def log_no_duplicate(ids: float, space: int, arrivals: Arrivals = Arrivals.STEADY) -> float:
    """ln P(no two of ``ids`` IDs in one window are equal), ``space`` suffix values.

    STEADY: ``ids`` is the count (a fraction mixes the two neighbouring counts, which is
    exact for windows of ``floor(ids)`` and ``floor(ids) + 1`` IDs in that proportion).
    RANDOM: ``ids`` is the mean of a Poisson count.

    Raises:
        InvalidArgument: a negative count or a space below 1.
    """
    _check_space(space)
    if isinstance(ids, bool) or not isinstance(ids, int | float) or not 0 <= ids < math.inf:
        raise InvalidArgument(f"ids must be a number >= 0 (IDs per window), got {ids!r}")
    if arrivals is Arrivals.RANDOM:
        y = ids / space
        if y >= 0.01:
            return space * (math.log1p(y) - y)
        # log1p(y) - y by its series: the direct form cancels to nothing for tiny y.
        return space * -math.fsum((-1) ** k * y**k / k for k in range(2, 14))
    whole = math.floor(ids)
    if whole >= space + 1:
        return -math.inf
    fraction = ids - whole
    base = _log_none_int(int(whole), space)
    if fraction == 0 or base == -math.inf:
        return base
    # L(k + f) = ln((1-f) P(k) + f P(k+1)) = L(k) + log1p(-f k / D), as P(k+1) = P(k)(1 - k/D).
    return base + math.log1p(-fraction * whole / space)


def birthday_probability(n: int, space: int) -> float:
    """P(at least two of ``n`` IDs drawn uniformly from ``space`` values are equal).

    Exact: ``1 - prod_{i<n}(1 - i/space)``, accurate to a few ulps even when tiny.

    Raises:
        InvalidArgument: n < 0 or space < 1.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidArgument(f"n must be an int >= 0 (IDs), got {n!r}")
    _check_space(space)
    return 0.0 - math.expm1(_log_none_int(n, space))  # 0.0 - x: never -0.0


def _log_none_period(
    layout: Layout, ids_per_second: float, period_s: float, arrivals: Arrivals
) -> float:
    window_s = window_seconds(layout)
    space = 1 << layout.suffix_bits
    per_window = ids_per_second * window_s
    windows = period_s / window_s
    if abs(windows - round(windows)) < 1e-9 * max(1.0, windows):
        windows = float(round(windows))  # a year of months, a day of hours: whole windows
    whole = math.floor(windows)
    tail = windows - whole
    full = log_no_duplicate(per_window, space, arrivals)
    total = whole * full if whole else 0.0
    if tail > 0:
        # The last `tail` of a window, given no duplicate before it: its IDs meet those made
        # earlier in the same window too.
        before = log_no_duplicate(per_window * (1 - tail), space, arrivals)
        total += full - before if full != -math.inf else -math.inf
    return total


def _check_rate(ids_per_second: float) -> None:
    if (
        isinstance(ids_per_second, bool)
        or not isinstance(ids_per_second, int | float)
        or not 0 <= ids_per_second < 1e18
    ):
        raise InvalidArgument(
            f"ids_per_second must be a number in 0..1e18 (IDs/s, whole fleet), "
            f"got {ids_per_second!r}"
        )


def _check_target(target: float) -> None:
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        raise InvalidArgument(f"target must be a probability in (0, 1), got {target!r}")


def _check_period(period_s: float) -> None:
    if (
        isinstance(period_s, bool)
        or not isinstance(period_s, int | float)
        or not 0 < period_s < math.inf
    ):
        raise InvalidArgument(f"period_s must be a number of seconds > 0, got {period_s!r}")


def _check_arrivals(arrivals: Arrivals) -> None:
    if not isinstance(arrivals, Arrivals):
        raise InvalidArgument(f"arrivals must be an Arrivals value, got {arrivals!r}")


def duplicate_probability(
    layout: Layout | str,
    ids_per_second: float,
    period_s: float,
    arrivals: Arrivals = Arrivals.STEADY,
) -> float:
    """P(at least one duplicate ID among those a Mode A fleet makes in ``period_s`` seconds).

    ``ids_per_second`` is the fleet's total (IDs/s). Windows are independent; a period that
    ends inside a window is placed at the window's end, where its IDs also meet the IDs made
    earlier in that window (see the module docstring).

    Raises:
        InvalidArgument: a negative rate or period. UnknownVariant: unknown layout name.
    """
    resolved = get_layout(layout)
    _check_rate(ids_per_second)
    _check_period(period_s)
    _check_arrivals(arrivals)
    log_none = _log_none_period(resolved, float(ids_per_second), float(period_s), arrivals)
    return 0.0 - math.expm1(log_none)  # 0.0 - x: never -0.0


def max_ids_per_second(
    layout: Layout | str,
    target: float,
    period_s: float,
    arrivals: Arrivals = Arrivals.STEADY,
) -> float:
    """The largest fleet throughput (IDs/s, all generators) whose duplicate risk per
    ``period_s`` is at most ``target``; any lower rate is safer.

    Raises:
        InvalidArgument: target outside (0, 1) or a non-positive period.
    """
    resolved = get_layout(layout)
    _check_target(target)
    _check_period(period_s)
    _check_arrivals(arrivals)
    goal = math.log1p(-target)
    period_s = float(period_s)  # an int is accepted too
    lo, hi = -80.0, 60.0  # log10 of IDs/s: bisection on a monotone risk
    for _ in range(160):
        mid = (lo + hi) / 2
        if _log_none_period(resolved, 10.0**mid, period_s, arrivals) >= goal:
            lo = mid
        else:
            hi = mid
    return float(10.0**lo)


def max_ids_per_window(layout: Layout | str, target: float) -> int:
    """The largest whole number of IDs in one window whose duplicate risk is at most
    ``target`` (exact birthday product; at least 1: one ID cannot collide).

    Raises:
        InvalidArgument: target outside (0, 1).
    """
    return birthday_count(1 << get_layout(layout).suffix_bits, target)


def birthday_count(space: int, target: float) -> int:
    """The largest whole number of draws from ``space`` values whose chance of a repeat is at
    most ``target`` (exact birthday product; at least 1).

    Raises:
        InvalidArgument: target outside (0, 1) or a space below 1.
    """
    _check_space(space)
    _check_target(target)
    goal = math.log1p(-target)
    lo, hi = 1, space + 1  # P(lo) <= target < P(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _log_none_int(mid, space) >= goal:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True, slots=True)
class CapacityReport:
    """The duplicate risk of a Mode A fleet and the throughput that keeps it under a target.

    Probabilities are of at least one duplicate ID; rates are IDs/s for the whole fleet.
    Plain fields assume steady counts (the birthday product); ``random_*`` fields assume
    independent generators at random moments (Poisson counts). ``per_day`` of a layout whose
    window is longer than a day is its riskiest day, the last of the window.
    """

    layout: Layout
    ids_per_second: float
    target: float
    window_s: float
    space: int
    ids_per_window: float
    per_window: float
    per_day: float
    per_year: float
    random_per_window: float
    random_per_day: float
    random_per_year: float
    max_ids_per_window: int
    max_rate_window: float
    max_rate_day: float
    max_rate_year: float
    random_max_rate_window: float
    random_max_rate_day: float
    random_max_rate_year: float


def capacity(layout: Layout | str, ids_per_second: float, target: float = 1e-3) -> CapacityReport:
    """The Mode A risk for a fleet making ``ids_per_second`` IDs/s in total.

    Raises:
        InvalidArgument: a negative rate or a target outside (0, 1).
    """
    resolved = get_layout(layout)
    _check_rate(ids_per_second)
    _check_target(target)
    window_s = window_seconds(resolved)
    rate = float(ids_per_second)
    steady, rand = Arrivals.STEADY, Arrivals.RANDOM
    return CapacityReport(
        layout=resolved,
        ids_per_second=rate,
        target=float(target),
        window_s=window_s,
        space=1 << resolved.suffix_bits,
        ids_per_window=rate * window_s,
        per_window=duplicate_probability(resolved, rate, window_s, steady),
        per_day=duplicate_probability(resolved, rate, DAY_S, steady),
        per_year=duplicate_probability(resolved, rate, YEAR_S, steady),
        random_per_window=duplicate_probability(resolved, rate, window_s, rand),
        random_per_day=duplicate_probability(resolved, rate, DAY_S, rand),
        random_per_year=duplicate_probability(resolved, rate, YEAR_S, rand),
        max_ids_per_window=max_ids_per_window(resolved, target),
        max_rate_window=max_ids_per_second(resolved, target, window_s, steady),
        max_rate_day=max_ids_per_second(resolved, target, DAY_S, steady),
        max_rate_year=max_ids_per_second(resolved, target, YEAR_S, steady),
        random_max_rate_window=max_ids_per_second(resolved, target, window_s, rand),
        random_max_rate_day=max_ids_per_second(resolved, target, DAY_S, rand),
        random_max_rate_year=max_ids_per_second(resolved, target, YEAR_S, rand),
    )


def _odds(p: float) -> str:
    if p <= 0:
        return "never (0)"
    if p >= 0.5:
        return f"{p:.4g}" if p < 1 else "1 (certain)"
    return f"{p:.3g} (1 in {1 / p:,.0f})"


def _rate(r: float) -> str:
    """An IDs/s figure with three significant digits (what the tables quote)."""
    return f"{r:,.0f}" if r >= 1000 else f"{r:.3g}"


def format_report(report: CapacityReport) -> str:
    """The report as text (what ``chronoid capacity`` prints)."""
    lay = report.layout
    day_note = " (the last day of a window)" if report.window_s > DAY_S else ""
    width = 26
    lines = [
        f"{lay.name} ({lay.bits_label()}): one window = one {lay.unit.description} "
        f"({report.window_s:g} s); {lay.suffix_bits} node+sequence bits = "
        f"{report.space:,} suffix values per window",
        f"fleet: {report.ids_per_second:g} IDs/s in total = {report.ids_per_window:,.4g} IDs "
        "per window, all generators together",
        "",
        "probability of at least one duplicate ID in Mode A:",
        f"  {'':<12}{'steady (n per window)':<{width}}random moments (Poisson)",
        f"  {'per window':<12}{_odds(report.per_window):<{width}}{_odds(report.random_per_window)}",
        f"  {'per day':<12}{_odds(report.per_day):<{width}}{_odds(report.random_per_day)}"
        + day_note,
        f"  {'per year':<12}{_odds(report.per_year):<{width}}{_odds(report.random_per_year)}",
        "",
        f"fleet throughput that keeps the risk under {report.target:g} (IDs/s, all generators):",
        f"  {'':<12}{'steady':<{width}}random moments",
        f"  {'per window':<12}{_rate(report.max_rate_window):<{width}}"
        f"{_rate(report.random_max_rate_window)}"
        f"  ({report.max_ids_per_window:,} IDs in one window)",
        f"  {'per day':<12}{_rate(report.max_rate_day):<{width}}"
        f"{_rate(report.random_max_rate_day)}",
        f"  {'per year':<12}{_rate(report.max_rate_year):<{width}}"
        f"{_rate(report.random_max_rate_year)}",
        "",
        "This counts IDs, not nodes: the birthday bound applies to every ID the whole fleet",
        "makes in one window, so 1,000 nodes x 1 ID and 100 nodes x 10 IDs carry the same",
        "risk, and the risk adds up window after window. Independent generators make IDs at",
        "random moments: plan with that column. Where a duplicate is not acceptable, use",
        "Mode B (one instance) or Mode C (nodes leased from a registry): both are exact.",
    ]
    return "\n".join(lines)


BUDGET_VARIANTS: tuple[str, ...] = (
    "chrono64mo",
    "chrono64w",
    "chrono64d",
    "chrono64h",
    "chrono64m",
    "chrono64s",
    "uchrono64s",
    "chrono64ds",
    "chrono64cs",
    "chrono64ms",
    "chrono64us",
    "chrono32y",
    "chrono32hy",
    "chrono32q",
    "uchrono32mo",
)
"""The layouts of the README's budget table (``chronoid capacity --budget-table``)."""


def budget_markdown(target: float = 1e-3, variants: tuple[str, ...] = BUDGET_VARIANTS) -> str:
    """A Markdown table of the fleet throughput (IDs/s) that keeps the risk under ``target``
    per window, per day and per year, under both arrival models (what
    ``chronoid capacity --budget-table`` prints and the README quotes).

    Raises:
        InvalidArgument: target outside (0, 1). UnknownVariant: an unknown layout name.
    """
    _check_target(target)
    lines = [
        f"Mode A fleet throughput (IDs/s, all generators together) that keeps the probability "
        f"of at least one duplicate at or under {target:g} (`chronoid capacity --budget-table`; "
        "steady = the same count in every window, random = independent generators at random "
        "moments; a day of a longer window is its last day):",
        "",
        "| variant | window | suffix bits | IDs per window | per window | per day, steady | "
        "per day, random | per year, steady | per year, random |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in variants:
        layout = get_layout(name)
        window_s = window_seconds(layout)
        cells = [
            f"{max_ids_per_window(layout, target):,}",
            _rate(max_ids_per_second(layout, target, window_s)),
            _rate(max_ids_per_second(layout, target, DAY_S)),
            _rate(max_ids_per_second(layout, target, DAY_S, Arrivals.RANDOM)),
            _rate(max_ids_per_second(layout, target, YEAR_S)),
            _rate(max_ids_per_second(layout, target, YEAR_S, Arrivals.RANDOM)),
        ]
        lines.append(
            f"| `{name}` | {layout.unit.description} | {layout.suffix_bits} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"
