"""How likely is a duplicate in Mode A? The birthday bound, counted honestly.

Uncoordinated (Mode A) generators draw their IDs' node+sequence suffix from the same
``D = 2^(N+S)`` values in every time window (one tick of the layout). What matters is how many
*IDs* the whole fleet makes in one window, not how many nodes it has: 2,000 nodes making one ID
each per window and 200 nodes making ten each run the same risk (errata 3 and 7 of
``shared/seeds/README.md``). And the risk of a window adds up over the windows of a day or a
year (erratum 4): a one-in-a-thousand chance per one-second window is a certainty within hours.

Two models, both exact for what they assume:

* :func:`birthday_probability` -- exactly ``n`` IDs drawn uniformly from ``D`` values:
  ``1 - prod_{i<n} (1 - i/D)``, summed as ``log1p`` terms (or an exact Stirling series for
  large ``n``) and returned as ``-expm1(...)``, so a 1e-15 risk does not round to 0.
* the fleet calculator (:func:`capacity`) -- IDs made at random moments at a total rate of R per
  second, so a window's count is Poisson with mean ``lam = R * window``. Then every suffix
  value independently receives a Poisson(lam/D) number of IDs, and
  ``P(no duplicate) = ((1 + lam/D) * exp(-lam/D))^D``: ``ln P = D * (log1p(y) - y)``, y = lam/D.
  It is continuous in R (a fleet making 0.3 IDs per window has a risk too) and agrees with the
  fixed-count product within about 1/lam relative.

Mode A personas make distinct IDs within one persona, so both models slightly overstate the
risk for a single busy persona; across a fleet they are the figure to plan with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chronoid.errors import InvalidArgument
from chronoid.layout import Layout
from chronoid.variants import get_layout

__all__ = [
    "DAY_S",
    "YEAR_S",
    "CapacityReport",
    "birthday_probability",
    "capacity",
    "duplicate_probability",
    "format_report",
    "max_ids_per_second",
    "window_seconds",
]

DAY_S = 86_400.0
"""Seconds in a day."""
YEAR_S = 365.2425 * DAY_S
"""Seconds in a mean Gregorian year (31,556,952 s)."""
_MONTH_S = YEAR_S / 12


def window_seconds(layout: Layout) -> float:
    """Length of one window (tick) in seconds; calendar units use the mean month."""
    if layout.unit_ns is not None:
        return layout.unit_ns / 1e9
    assert layout.unit.months is not None
    return layout.unit.months * _MONTH_S


def birthday_probability(n: int, space: int) -> float:
    """P(at least two of ``n`` IDs drawn uniformly from ``space`` values are equal).

    Exact: ``1 - prod_{i<n}(1 - i/space)``, accurate to a few ulps even when tiny.

    Raises:
        InvalidArgument: n < 0 or space < 1.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidArgument(f"n must be an int >= 0 (IDs), got {n!r}")
    if not isinstance(space, int) or isinstance(space, bool) or space < 1:
        raise InvalidArgument(f"space must be an int >= 1 (values), got {space!r}")
    if n <= 1:
        return 0.0
    if n > space:
        return 1.0
    if n <= 100_000:
        log_none = math.fsum(math.log1p(-i / space) for i in range(1, n))
    elif space - n < 1_000:
        log_none = math.lgamma(space + 1) - math.lgamma(space - n + 1) - n * math.log(space)
    else:
        # ln(D! / ((D-n)! D^n)) by Stirling: -(D-n+1/2) log1p(-x) - n + c(D) - c(D-n), x = n/D,
        # with the first two terms as a series when x is small (they cancel otherwise).
        d = float(space)
        x = n / d
        if x < 0.05:
            head = -n * math.fsum(x ** (k - 1) / (k * (k - 1)) for k in range(2, 24))
        else:
            head = -(d - n) * math.log1p(-x) - n
        rest = d - n

        def corr(z: float) -> float:
            return 1 / (12 * z) - 1 / (360 * z**3)

        log_none = head - 0.5 * math.log1p(-x) + corr(d) - corr(rest)
    return -math.expm1(log_none)


def _log_none_poisson(mean_ids: float, space: int) -> float:
    """ln P(no duplicate) for a Poisson(mean_ids) count of IDs over ``space`` values."""
    y = mean_ids / space
    if y >= 0.01:
        return space * (math.log1p(y) - y)
    # log1p(y) - y by its series: the direct form cancels to nothing for tiny y.
    return space * -math.fsum((-1) ** k * y**k / k for k in range(2, 14))


def _log_none(layout: Layout, ids_per_second: float, period_s: float) -> float:
    window = window_seconds(layout)
    space = 1 << layout.suffix_bits
    if period_s >= window:
        return (period_s / window) * _log_none_poisson(ids_per_second * window, space)
    return _log_none_poisson(ids_per_second * period_s, space)


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


def duplicate_probability(layout: Layout | str, ids_per_second: float, period_s: float) -> float:
    """P(at least one duplicate ID among those a Mode A fleet makes in ``period_s`` seconds).

    ``ids_per_second`` is the fleet's total (IDs/s). For a period of at least one window the
    windows are independent: ``1 - P(no duplicate in a window)^(period/window)``. For a
    shorter period, only the IDs made within it count.

    Raises:
        InvalidArgument: a negative rate or period. UnknownVariant: unknown layout name.
    """
    resolved = get_layout(layout)
    _check_rate(ids_per_second)
    if isinstance(period_s, bool) or not isinstance(period_s, int | float) or not period_s > 0:
        raise InvalidArgument(f"period_s must be a number of seconds > 0, got {period_s!r}")
    return -math.expm1(_log_none(resolved, float(ids_per_second), float(period_s)))


def max_ids_per_second(layout: Layout | str, target: float, period_s: float) -> float:
    """The fleet throughput (IDs/s, all generators) whose duplicate risk per ``period_s`` is
    ``target``; any lower rate is safer.

    Raises:
        InvalidArgument: target outside (0, 1) or a non-positive period.
    """
    resolved = get_layout(layout)
    _check_target(target)
    if isinstance(period_s, bool) or not isinstance(period_s, int | float) or not period_s > 0:
        raise InvalidArgument(f"period_s must be a number of seconds > 0, got {period_s!r}")
    goal = math.log1p(-target)
    lo, hi = -80.0, 60.0  # log10 of IDs/s: bisection on a monotone risk
    for _ in range(200):
        mid = (lo + hi) / 2
        if _log_none(resolved, 10.0**mid, float(period_s)) >= goal:
            lo = mid
        else:
            hi = mid
    return float(10.0**lo)


@dataclass(frozen=True, slots=True)
class CapacityReport:
    """The duplicate risk of a Mode A fleet and the throughput that keeps it under a target.

    Probabilities are of at least one duplicate ID; rates are IDs/s for the whole fleet.
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
    max_rate_window: float
    max_rate_day: float
    max_rate_year: float


def capacity(layout: Layout | str, ids_per_second: float, target: float = 1e-3) -> CapacityReport:
    """The Mode A risk for a fleet making ``ids_per_second`` IDs/s in total.

    Raises:
        InvalidArgument: a negative rate or a target outside (0, 1).
    """
    resolved = get_layout(layout)
    _check_rate(ids_per_second)
    _check_target(target)
    window = window_seconds(resolved)
    return CapacityReport(
        layout=resolved,
        ids_per_second=float(ids_per_second),
        target=float(target),
        window_s=window,
        space=1 << resolved.suffix_bits,
        ids_per_window=ids_per_second * window,
        per_window=duplicate_probability(resolved, ids_per_second, window),
        per_day=duplicate_probability(resolved, ids_per_second, DAY_S),
        per_year=duplicate_probability(resolved, ids_per_second, YEAR_S),
        max_rate_window=max_ids_per_second(resolved, target, window),
        max_rate_day=max_ids_per_second(resolved, target, DAY_S),
        max_rate_year=max_ids_per_second(resolved, target, YEAR_S),
    )


def _odds(p: float) -> str:
    if p <= 0:
        return "never (0)"
    if p >= 0.5:
        return f"{p:.4g}" if p < 1 else "1 (certain)"
    return f"{p:.3g} (1 in {1 / p:,.0f})"


def _rate(r: float) -> str:
    return f"{r:,.3f}" if r < 1000 else f"{r:,.0f}"


def format_report(report: CapacityReport) -> str:
    """The report as text (what ``chronoid capacity`` prints)."""
    lay = report.layout
    lines = [
        f"{lay.name} ({lay.bits_label()}): one window = one {lay.unit.description} "
        f"({report.window_s:g} s); {lay.suffix_bits} node+sequence bits = "
        f"{report.space:,} suffix values per window",
        f"fleet: {report.ids_per_second:g} IDs/s in total = {report.ids_per_window:,.4g} IDs "
        "per window, all generators together",
        "",
        "probability of at least one duplicate ID in Mode A:",
        f"  per window  {_odds(report.per_window)}",
        f"  per day     {_odds(report.per_day)}",
        f"  per year    {_odds(report.per_year)}",
        "",
        f"fleet throughput that keeps the risk under {report.target:g} (IDs/s, all generators):",
        f"  per window  {_rate(report.max_rate_window)}",
        f"  per day     {_rate(report.max_rate_day)}",
        f"  per year    {_rate(report.max_rate_year)}",
        "",
        "This counts IDs, not nodes: the birthday bound applies to every ID the whole fleet",
        "makes in one window, so 1,000 nodes x 1 ID and 100 nodes x 10 IDs carry the same",
        "risk, and the risk adds up window after window. Where a duplicate is not acceptable,",
        "use Mode B (one instance) or Mode C (nodes leased from a registry): both are exact.",
    ]
    return "\n".join(lines)
