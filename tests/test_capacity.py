"""The capacity calculator: exact birthday arithmetic, tiny probabilities, the fleet model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid.capacity import (
    DAY_S,
    YEAR_S,
    Arrivals,
    birthday_probability,
    budget_markdown,
    capacity,
    duplicate_probability,
    max_ids_per_second,
    max_ids_per_window,
    window_seconds,
)
from chronoid.errors import InvalidArgument
from chronoid.layout import Layout
from chronoid.variants import CHRONO_EPOCH, get_layout

# A layout of 64 suffix values with one-week windows: small enough to simulate exactly.
TINY_WEEK = Layout("tiny-week", "w", CHRONO_EPOCH, 2, 3, 3, width=8, signed=False)
# One-month windows (the calendar unit of chrono64mo) over 1,024 suffix values.
TINY_MONTH = Layout("tiny-month", "mo", CHRONO_EPOCH, 6, 5, 5, width=16, signed=False)


def _exact(n: int, space: int) -> Fraction:
    none = Fraction(1)
    for i in range(n):
        none *= Fraction(space - i, space)
    return 1 - none


@given(st.integers(0, 300), st.integers(1, 5000))
def test_birthday_matches_exact_rational_arithmetic(n: int, space: int) -> None:
    assert birthday_probability(n, space) == pytest.approx(float(_exact(n, space)), rel=1e-12)


@pytest.mark.parametrize("n", [2, 10, 1000, 200_000, 10**7])
def test_tiny_probabilities_do_not_round_to_zero(n: int) -> None:
    space = 1 << 62
    # For n << space: ln P(none) = -n(n-1)/(2 space) - O(n^3/space^2), negligible here.
    expected = -math.expm1(-n * (n - 1) / (2 * space))
    assert birthday_probability(n, space) == pytest.approx(expected, rel=1e-9)


def test_large_counts_use_the_stirling_branch_consistently() -> None:
    space = 1 << 40
    below = birthday_probability(100_000, space)  # summed term by term
    above = birthday_probability(100_001, space)  # Stirling series
    assert below < above < below * 1.0001
    assert birthday_probability(2_000_000, 1 << 30) == pytest.approx(1.0)
    assert birthday_probability(5, 4) == 1.0


def test_random_arrivals_agree_with_the_fixed_count_product_only_for_busy_windows() -> None:
    # chrono64s: one-second windows, 2^30 suffix values; 1,000 IDs per window.
    poisson = duplicate_probability("chrono64s", 1000, 1.0, Arrivals.RANDOM)
    fixed = birthday_probability(1000, 1 << 30)
    assert duplicate_probability("chrono64s", 1000, 1.0) == pytest.approx(fixed, rel=1e-12)
    assert poisson == pytest.approx(fixed, rel=2e-3)
    # At 2 IDs per window the Poisson figure is twice the exact one (the audit's +100 %).
    space = 1 << get_layout("chrono64us").suffix_bits
    rate = 2 / window_seconds(get_layout("chrono64us"))
    exact = duplicate_probability("chrono64us", rate, window_seconds(get_layout("chrono64us")))
    assert exact == pytest.approx(1 / space, rel=1e-9)
    assert max_ids_per_window("chrono64us", 1e-3) == 2  # exactly 2 give 0.098 %


def test_a_day_of_a_long_window_meets_the_ids_made_earlier_in_it() -> None:
    # The audit's figures: at the old per-day budget the last day of a month had P = 5.8 %.
    layout = get_layout("chrono64mo")
    space = 1 << layout.suffix_bits
    window = window_seconds(layout)
    rate = max_ids_per_second(layout, 1e-3, DAY_S)
    assert 3.1 < rate < 3.3  # the old calculator said 24.6
    assert max_ids_per_second("chrono32y", 1e-3, DAY_S) == pytest.approx(5.55e-5, rel=0.01)
    # Independent evaluation: sum log1p(-i/D) over the day's IDs, i from those made before.
    before = round(rate * (window - DAY_S))
    total = round(rate * window)
    direct = -np.expm1(np.log1p(-np.arange(before, total, dtype=np.float64) / space).sum())
    at_whole = duplicate_probability(layout, total / window, DAY_S)
    assert at_whole == pytest.approx(float(direct), rel=1e-3)
    # The last of 31 equal parts is the riskiest: it carries almost twice the mean share.
    per_window = duplicate_probability(layout, 2.0, window)
    last = duplicate_probability(layout, 2.0, window / 31)
    assert 1.9 * per_window / 31 < last < 2 * per_window / 31


def test_risk_accumulates_over_windows() -> None:
    per_window = duplicate_probability("chrono64s", 10, 1.0)
    per_day = duplicate_probability("chrono64s", 10, DAY_S)
    assert per_day == pytest.approx(-math.expm1(DAY_S * math.log1p(-per_window)), rel=1e-9)
    assert per_day > 80_000 * per_window


def test_the_throughput_bound_inverts_the_risk() -> None:
    for variant in ("chrono64s", "chrono64mo", "uchrono32y", "chrono64d"):
        for period in (1.0, DAY_S, YEAR_S):
            rate = max_ids_per_second(variant, 1e-3, period)
            assert duplicate_probability(variant, rate, period) == pytest.approx(1e-3, rel=1e-6)


def test_report_states_the_errata_numbers() -> None:
    # Erratum 3: signed chrono64s gives ~1,465 IDs per window at 1-in-1,000 per window.
    report = capacity("chrono64s", 100, target=1e-3)
    assert 1450 < report.max_rate_window < 1480
    # Erratum 7: about 0.26 IDs/s for the whole fleet at 1-in-1,000 per year (random moments);
    # a perfectly steady fleet may make about one ID per second (two in one window collide).
    assert 0.25 < report.random_max_rate_year < 0.27
    assert 1.0 < report.max_rate_year < 1.1
    assert report.per_window < report.per_day < report.per_year


def _simulate(rng: np.random.Generator, space: int, counts: np.ndarray, earlier: int = 0) -> int:
    """Trials (one per entry of ``counts``) whose ``count`` uniform draws repeat a value or hit
    one of ``earlier`` values made before them. Given that the earlier IDs are distinct, they
    are a uniformly random set; by symmetry it is {0, ..., earlier - 1}."""
    hits = 0
    for count in np.unique(counts):
        rows = int(np.count_nonzero(counts == count))
        draws = np.sort(rng.integers(0, space, size=(rows, int(count)), dtype=np.int64), axis=1)
        repeat = (draws[:, 1:] == draws[:, :-1]).any(axis=1)
        hits += int(np.count_nonzero(repeat | (draws < earlier).any(axis=1)))
    return hits


def _within(hits: int, trials: int, expected: float, sigmas: float = 4.0) -> bool:
    error = (expected * (1 - expected) / trials) ** 0.5
    return abs(hits / trials - expected) <= sigmas * error


@pytest.mark.parametrize("arrivals", list(Arrivals))
def test_monte_carlo_per_window(arrivals: Arrivals) -> None:
    """Seeded simulation of one window: chrono64s, chrono32y and a tiny layout."""
    rng = np.random.default_rng([15, 5, list(Arrivals).index(arrivals)])
    for layout, per_window, trials in (
        (get_layout("chrono64s"), 20_000, 1_500),
        (get_layout("chrono32y"), 3_000, 4_000),
        (TINY_WEEK, 7, 40_000),
        (TINY_WEEK, 2, 40_000),
    ):
        space = 1 << layout.suffix_bits
        window = window_seconds(layout)
        if arrivals is Arrivals.STEADY:
            counts = np.full(trials, per_window)
        else:
            counts = rng.poisson(per_window, size=trials)
        hits = _simulate(rng, space, counts)
        expected = duplicate_probability(layout, per_window / window, window, arrivals)
        assert _within(hits, trials, expected), (layout.name, hits / trials, expected)
    # The two models really differ at small counts: 1/64 against about 2/64 at 2 IDs.
    steady = duplicate_probability(TINY_WEEK, 2 / window_seconds(TINY_WEEK), 7 * DAY_S)
    rand = duplicate_probability(
        TINY_WEEK, 2 / window_seconds(TINY_WEEK), 7 * DAY_S, Arrivals.RANDOM
    )
    assert steady == pytest.approx(1 / 64) and rand > 1.9 * steady


def test_monte_carlo_last_day_of_long_windows() -> None:
    """A day's IDs also meet the IDs made earlier in the same window (chrono32y: a year;
    a month layout with chrono64mo's window and day lengths; a week)."""
    rng = np.random.default_rng([15, 5, 2])
    for layout, earlier, trials in (
        (get_layout("chrono32y"), 36_000, 20_000),
        (TINY_MONTH, 30, 40_000),
        (TINY_WEEK, 6, 40_000),
    ):
        space = 1 << layout.suffix_bits
        window = window_seconds(layout)
        rate = earlier / (window - DAY_S)  # a whole count of IDs before the last day
        day = rate * DAY_S
        # A fractional day count: floor(day) IDs, one more with probability frac(day).
        counts = np.floor(day).astype(np.int64) + (rng.random(trials) < day % 1)
        hits = _simulate(rng, space, counts, earlier)
        expected = duplicate_probability(layout, rate, DAY_S)
        assert _within(hits, trials, expected), (layout.name, hits / trials, expected)
        # The old model counted the day's own IDs only: far below the simulated risk.
        alone = birthday_probability(int(day), space)
        assert alone < expected / 5


def test_monte_carlo_across_windows() -> None:
    """Three whole windows of the tiny layout, and random counts across them."""
    rng = np.random.default_rng([15, 5, 3])
    space, window, trials = 64, window_seconds(TINY_WEEK), 30_000
    for arrivals in Arrivals:
        per_window = 4
        counts = (
            np.full((trials, 3), per_window)
            if arrivals is Arrivals.STEADY
            else rng.poisson(per_window, size=(trials, 3))
        )
        any_hit = np.zeros(trials, dtype=bool)
        for w in range(3):
            for count in np.unique(counts[:, w]):
                rows = np.nonzero(counts[:, w] == count)[0]
                draws = np.sort(rng.integers(0, space, size=(rows.size, int(count))), axis=1)
                any_hit[rows] |= (draws[:, 1:] == draws[:, :-1]).any(axis=1)
        expected = duplicate_probability(TINY_WEEK, per_window / window, 3 * window, arrivals)
        assert _within(int(any_hit.sum()), trials, expected), (arrivals, expected)


def test_budget_table_is_consistent_with_the_calculator() -> None:
    table = budget_markdown()
    assert "| `chrono64us` | microsecond | 10 | 2 |" in table
    row = next(line for line in table.splitlines() if line.startswith("| `chrono64mo`"))
    assert "| 3.18 |" in row


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="ids_per_second"):
        capacity("chrono64s", -1)
    with pytest.raises(InvalidArgument, match="target"):
        capacity("chrono64s", 1, target=1.5)
    with pytest.raises(InvalidArgument, match="space"):
        birthday_probability(3, 0)
    with pytest.raises(InvalidArgument, match="period_s"):
        duplicate_probability("chrono64s", 1, 0)


def test_capacity_command() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronoid",
            "capacity",
            "--variant",
            "chrono64s",
            "--ids-per-second",
            "1000",
            "--target",
            "1e-6",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "per window" in run.stdout and "per year" in run.stdout
    assert "This counts IDs, not nodes" in run.stdout
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronoid",
            "capacity",
            "--variant",
            "chrono64s",
            "--ids-per-second",
            "1000",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    fields = json.loads(as_json.stdout)
    assert fields["layout"] == "chrono64s" and 0 < fields["per_window"] < 1e-3
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronoid",
            "capacity",
            "--variant",
            "chrono64s",
            "--ids-per-second",
            "-5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "ids_per_second" in bad.stderr
    table = subprocess.run(
        [sys.executable, "-m", "chronoid", "capacity", "--budget-table"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert table.stdout == budget_markdown()
    missing = subprocess.run(
        [sys.executable, "-m", "chronoid", "capacity", "--variant", "chrono64s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "--ids-per-second" in missing.stderr
    assert "Traceback" not in missing.stderr
