"""Every figure README.md and docs/modes.md quote equals what the command that made it prints.

Generated blocks are re-rendered by ``scripts/update_readme.py``'s own code (``chronoid
capacity``); figures in the prose are recomputed from the library that the command is a thin
layer over; figures from ``chronoid sim`` are compared with the report that run wrote
(``docs/report.md``), and the deterministic scenarios among them are re-run. Nothing here runs
the whole simulation.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from types import ModuleType

import pytest

from chronoid.capacity import (
    BUDGET_VARIANTS,
    DAY_S,
    YEAR_S,
    Arrivals,
    duplicate_probability,
    max_ids_per_second,
    max_ids_per_window,
)
from chronoid.sim.common import fmt_seconds
from chronoid.sim.model import Context
from chronoid.sim.runner import run
from chronoid.variants import get_layout

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MODES = ROOT / "docs" / "modes.md"
ERRATA = ROOT / "docs" / "errata.md"
POSTGRES = ROOT / "docs" / "postgres.md"
REPORT = ROOT / "docs" / "report.md"
TARGET = 1e-3


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "update_readme", ROOT / "scripts" / "update_readme.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flat(path: Path) -> str:
    """The file with every run of whitespace as one space (prose wraps anywhere)."""
    return re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))


def _random_rate(name: str, period_s: float) -> float:
    return max_ids_per_second(name, TARGET, period_s, Arrivals.RANDOM)


def _range_64(period_s: float) -> tuple[float, float]:
    rates = [_random_rate(n, period_s) for n in BUDGET_VARIANTS if get_layout(n).width == 64]
    return min(rates), max(rates)


@pytest.mark.parametrize("path", [README, MODES], ids=["README", "modes"])
def test_capacity_blocks_are_what_chronoid_capacity_prints(path: Path) -> None:
    script = _script()
    text = path.read_text(encoding="utf-8")
    names = {n for n in script.block_names(text) if n.startswith("capacity:")}
    assert "capacity:example" in names
    _, changed = script.render(text, names)
    assert changed == [], f"{path.name}: run .venv/bin/python scripts/update_readme.py"


def _capacity_prose() -> dict[Path, list[str]]:
    year_lo, year_hi = _range_64(YEAR_S)
    day_lo, day_hi = _range_64(DAY_S)
    signed = max_ids_per_window("chrono64s", TARGET)
    unsigned = max_ids_per_window("uchrono64s", TARGET)
    # At the per-window budget, the median number of windows to a first duplicate.
    p_window = duplicate_probability("chrono64s", signed, 1.0)
    half_life = math.log(0.5) / math.log1p(-p_window)
    # The old calculator: only the day's own IDs of a chrono64mo month, Poisson counts.
    space = 1 << get_layout("chrono64mo").suffix_bits
    old_day = math.sqrt(-2 * space * math.log1p(-TARGET)) / DAY_S
    old_factor = duplicate_probability("chrono64mo", old_day, DAY_S) / TARGET
    return {
        README: [
            f"about {_random_rate('chrono64s', YEAR_S):.2f} IDs/s *in total* on `chrono64s` "
            f"({year_lo:.2f}–{year_hi:.2f} on the 64-bit variants below)",
            f"per day, {day_lo:.1f}–{day_hi:.1f} IDs/s",
            f'"2,072 safe nodes" for `uchrono64s` are {unsigned:,} IDs per second',
            f"({signed:,} for signed `chrono64s`)",
        ],
        ERRATA: [
            f"allows {signed:,} IDs per second fleet-wide at 1-in-1,000 per window; "
            f"`uchrono64s` {unsigned:,}",
        ],
        MODES: [
            f"about **{year_lo:.2f} to {year_hi:.2f} IDs/s for the whole fleet**",
            f"({_random_rate('chrono64s', YEAR_S):.3g} IDs/s for `chrono64s`, "
            f"{_random_rate('uchrono64s', YEAR_S):.3g} for `uchrono64s`)",
            f"*per day* {day_lo:.1f} to {day_hi:.1f} IDs/s",
            f"month's earlier IDs: {_random_rate('chrono64mo', DAY_S):.3g})",
            f'"2,072 safe nodes" for `uchrono64s` is {unsigned:,} IDs per second',
            f"({signed:,} for signed `chrono64s`)",
            f"within about {round(half_life / 60)} minutes "
            f"(1 − {1 - TARGET:g}^{round(half_life)} = 50 %)",
            f"allowed {old_day:.1f} IDs/s per day on `chrono64mo` ({old_factor:.0f}× the target",
            f"the exact figure is {max_ids_per_second('chrono64mo', TARGET, DAY_S):.3g}",
            f"exactly {max_ids_per_window('chrono64us', TARGET)} IDs in a window give "
            f"{duplicate_probability('chrono64us', 2e6, 1e-6) * 100:.3f} %",
        ],
    }


@pytest.mark.parametrize("path", [README, MODES, ERRATA], ids=["README", "modes", "errata"])
def test_capacity_figures_in_the_prose(path: Path) -> None:
    text = _flat(path)
    for quoted in _capacity_prose()[path]:
        assert re.sub(r"\s+", " ", quoted) in text, f"{path.name} should say: {quoted}"


def _report_summary() -> dict[str, str]:
    """Scenario name -> its summary row in docs/report.md (verdict | headline)."""
    rows = {}
    for line in REPORT.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| \[.*?\]\(#([\w-]+)\) \| (.*) \|$", line)
        if match:
            rows[match[1]] = match[2]
    return rows


def test_readme_evidence_table_is_the_reports_summary() -> None:
    summary = _report_summary()
    assert len(summary) >= 26
    block = README.read_text(encoding="utf-8").split("<!-- BEGIN sim-summary -->")[1]
    block = block.split("<!-- END sim-summary -->")[0]
    readme_rows = {}
    for line in block.strip().splitlines()[2:]:
        match = re.match(r"\| \[.*?\]\((?:\S*/)?docs/report\.md#([\w-]+)\) \| (.*) \|$", line)
        assert match, line
        readme_rows[match[1]] = match[2]
    assert readme_rows == summary, "run: .venv/bin/chronoid sim --out docs --readme README.md"


def test_deterministic_headlines_repeat() -> None:
    """Scenarios without timings give the report's headline again for the default seed."""
    summary = _report_summary()
    for result in run(["epoch-bit", "boundaries", "causal-jitter"], Context(), show_progress=False):
        assert summary[result.name].endswith(f"| {result.headline}"), result.name


def test_mode_b_shared_node_figures_in_the_docs() -> None:
    text = _flat(MODES)
    # The spec's design: every rotation a fresh 1-in-2^N chance, mean 2^N rotations of 10 min.
    means = [
        fmt_seconds((1 << get_layout(n).node_bits) * 600)
        for n in ("chrono64s", "chrono64ms", "chrono64us")
    ]
    assert f"after {means[0]} on average for `s`, {means[1]} for `ms`, {means[2]} for `us`" in text
    # chronoid's design: the Monte Carlo figures of the report's run.
    report = REPORT.read_text(encoding="utf-8")
    section = report.split('<a id="mode-b-shared-node"></a>')[1].split("<a id=")[0]
    row = next(line for line in section.splitlines() if line.startswith("| `chrono64s` | 15 | "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    share, median = cells[3].split(" [")[0], cells[4].split(" [")[0]
    quoted = f"{share} of `chrono64s` pairs do within one walk of the node space"
    assert f"{quoted}, after a median {median}" in text
    pg = f"{share} of `chrono64s` pairs meet within one walk of the node space, after a median"
    assert f"{pg} {median}" in _flat(POSTGRES)
