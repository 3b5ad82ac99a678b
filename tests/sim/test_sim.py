"""The evidence suite: scenarios run, the report and plots are written, results repeat."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chronoid.errors import InvalidArgument
from chronoid.modes.instance import mode_b_id
from chronoid.sim.common import (
    count_duplicate_trials,
    fmt_p,
    fmt_share_ci,
    fmt_timing,
    mean_interval,
    median_interval,
    mode_b_np,
    parity_with_compose,
    ratio_interval,
)
from chronoid.sim.model import Context, Verdict
from chronoid.sim.report import (
    README_BEGIN,
    README_END,
    summary_markdown,
    update_readme,
    write_report,
)
from chronoid.sim.runner import run
from chronoid.sim.scenarios import SCENARIOS, get_scenario
from chronoid.sim.storage import postgres_btree
from chronoid.variants import VARIANTS

FAST = ["divergence", "chrono32h-tie", "boundaries"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_fast_scenarios_write_report_and_plots(tmp_path: Path) -> None:
    results = run(FAST, Context(seed=7), show_progress=False)
    assert [r.name for r in results] == FAST
    path = write_report(results, tmp_path, seed=7, full=False, seconds=1.0)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# chronoid evidence report")
    for r in results:
        assert f"## {r.title}" in text
        assert f"**Verdict: {r.verdict.value}.**" in text
        assert r.claim in text
    assert "## Not covered" in text
    assert "--seed 7" in text  # a non-default seed is part of the regeneration command
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["chrono32h_tie.png", "divergence.png"]
    for name in pngs:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG_MAGIC)
    by_name = {r.name: r for r in results}
    assert by_name["boundaries"].verdict is Verdict.HOLDS
    # Theorem 2 fails for narrow fields: 2 distinct multipliers at 2 bits give about 50 %.
    two_bits = next(row for row in by_name["divergence"].tables[0].rows if row[0] == "2")
    assert two_bits[2] == "2"
    assert two_bits[4].startswith(("49.", "50."))


def test_same_seed_same_numbers() -> None:
    first = run(["divergence", "chrono32h-tie"], Context(seed=3), show_progress=False)
    again = run(["divergence", "chrono32h-tie"], Context(seed=3), show_progress=False)
    assert [r.tables for r in first] == [r.tables for r in again]
    assert [r.reason for r in first] == [r.reason for r in again]
    other = run(["divergence"], Context(seed=4), show_progress=False)
    assert other[0].tables != first[0].tables


def test_vectorised_models_match_the_library() -> None:
    for name in ("chrono64s", "uchrono64s", "chrono32y", "chrono64us", "uchrono32bs"):
        ok, n = parity_with_compose(VARIANTS[name], seed=11, samples=300)
        assert ok == n, name
    layout = VARIANTS["uchrono32y"]
    counters = [0, 1, 2_047, 2_048, 123_456, (1 << 24) - 1, 1 << 24]
    got = mode_b_np(layout, 6, np.array(counters, dtype=np.uint64), 77, 0xABCDE, 5).tolist()
    assert got == [mode_b_id(layout, 6, c, 77, 0xABCDE, 5) for c in counters]


def test_duplicate_counter_extremes() -> None:
    rng = np.random.default_rng(1)
    assert count_duplicate_trials(rng, 1, 3, 50) == 50  # 3 draws from 2 values: pigeonhole
    assert count_duplicate_trials(rng, 20, 1, 50) == 0


def test_postgres_down_is_reported_not_hidden() -> None:
    result = postgres_btree(Context(pg_dsn="postgresql://postgres@127.0.0.1:1/test"))
    assert result.verdict is Verdict.NOT_RUN
    assert "not reachable at postgresql://postgres@127.0.0.1:1/test" in result.reason


def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(InvalidArgument, match="choose from: capacity"):
        get_scenario("capacityy")


def test_cli_list_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chronoid", "sim", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines()]
    assert listed == [s.name for s in SCENARIOS]


def test_cli_run_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronoid",
            "sim",
            "--scenario",
            "boundaries",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "boundaries: holds" in proc.stderr  # the progress line
    assert f"wrote {tmp_path / 'report.md'}" in proc.stdout
    assert "Min/max boundary saturation" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_cli_unknown_scenario_fails_before_running(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chronoid", "sim", "--scenario", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "unknown scenario 'nope'" in proc.stderr
    assert not (tmp_path / "report.md").exists()


def test_readme_block_is_replaced_and_markers_required(tmp_path: Path) -> None:
    results = run(["boundaries"], Context(), show_progress=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nstale\n{README_END}\n\n## next\n")
    update_readme(readme, summary_markdown(results, "docs/report.md"))
    text = readme.read_text()
    assert "stale" not in text
    assert (
        "| [Min/max boundary saturation (Scenario 23)](docs/report.md#boundaries) | holds |" in text
    )
    assert text.endswith(f"{README_END}\n\n## next\n")
    bare = tmp_path / "bare.md"
    bare.write_text("# no markers\n")
    with pytest.raises(InvalidArgument, match="no <!-- BEGIN sim-summary -->"):
        update_readme(bare, "x")


def test_corrected_verdicts_of_the_audit() -> None:
    """Issue 19: epoch-bit compares both placements, causal-jitter says where ±1 unit fails,
    clock-rollback runs what its method says and adds Mode B with a state file."""
    by_name = {
        r.name: r
        for r in run(
            ["epoch-bit", "causal-jitter", "clock-rollback"], Context(), show_progress=False
        )
    }
    epoch = by_name["epoch-bit"]
    assert epoch.verdict is Verdict.PARTLY
    placements = {row[0]: row for row in epoch.tables[0].rows}
    from_node = placements["bit from the node budget, placed above the timestamp"]
    assert from_node[1:] == ["0.0 %", "272 years", "2^14 nodes"]
    assert placements["bit from the timestamp, above it"][2] == "136 years"
    jitter = by_name["causal-jitter"]
    assert jitter.verdict is Verdict.PARTLY and "±1 unit fails for `ms`" in jitter.headline
    rollback = by_name["clock-rollback"]
    assert "1 % of them backward jumps of up to two ticks" in rollback.method
    assert "10 s bound" in rollback.method and "20 %" not in rollback.method
    mode_b = rollback.tables[1].rows
    assert len(mode_b) == 5 and all(row[3] == "0" for row in mode_b)


def test_new_scenarios_are_registered() -> None:
    names = [s.name for s in SCENARIOS]
    for name in ("signed-risk", "strict-monotonic", "rotation-routing", "sql-parity"):
        assert name in names


def test_sql_parity_says_when_no_database_is_given() -> None:
    result = get_scenario("sql-parity").run(Context(pg_dsn="postgresql://postgres@127.0.0.1:1/x"))
    assert result.verdict is Verdict.NOT_RUN
    assert result.headline.startswith(
        "not run: no PostgreSQL at postgresql://postgres@127.0.0.1:1/x"
    )


def test_intervals() -> None:
    ratio, lo, hi = ratio_interval(200, 100_000, 100, 100_000)
    assert ratio == pytest.approx(2.0) and 1.5 < lo < 2.0 < hi < 2.6
    median, m_lo, m_hi = median_interval(list(range(101)))
    assert median == 50 and 40 <= m_lo < 50 < m_hi <= 60
    mean, a_lo, a_hi = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and a_lo < 2.5 < a_hi
    assert fmt_share_ci(56, 1_000).startswith("5.6 % [")
    assert fmt_p(0.99996) != "100.0 %"  # a near-certainty is not rounded up to one
    assert "5 runs" in fmt_timing([0.1, 0.2, 0.3, 0.4, 0.5])


def test_report_records_library_versions_and_timing_spread(tmp_path: Path) -> None:
    import matplotlib
    import numpy

    results = run(["boundaries"], Context(), show_progress=False)
    results[0].timing_spread = 3.25
    text = write_report(results, tmp_path, seed=1, full=False, seconds=1.0).read_text()
    assert f"numpy {numpy.__version__}, matplotlib {matplotlib.__version__}" in text
    assert "timing rows are not" in text and "3.2× its fastest, in boundaries" in text
