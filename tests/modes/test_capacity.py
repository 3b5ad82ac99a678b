"""The capacity calculator: exact birthday arithmetic, tiny probabilities, the fleet model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid.capacity import (
    DAY_S,
    YEAR_S,
    birthday_probability,
    capacity,
    duplicate_probability,
    max_ids_per_second,
)
from chronoid.errors import InvalidArgument


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


def test_fleet_model_agrees_with_the_fixed_count_product_for_busy_windows() -> None:
    # chrono64s: one-second windows, 2^30 suffix values; 1,000 IDs per window.
    poisson = duplicate_probability("chrono64s", 1000, 1.0)
    fixed = birthday_probability(1000, 1 << 30)
    assert poisson == pytest.approx(fixed, rel=2e-3)


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
    # Erratum 7: about 0.26 IDs/s for the whole fleet at 1-in-1,000 per year.
    assert 0.25 < report.max_rate_year < 0.27
    assert report.per_window < report.per_day < report.per_year


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
