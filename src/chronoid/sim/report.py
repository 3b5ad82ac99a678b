"""Writing the evidence report: ``report.md`` and its PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from chronoid.sim.model import Plot, ScenarioResult, Table, Verdict

__all__ = [
    "NOT_COVERED",
    "README_BEGIN",
    "README_END",
    "draw_plot",
    "library_versions",
    "render_markdown",
    "summary_markdown",
    "update_readme",
    "write_report",
]

README_BEGIN = "<!-- BEGIN sim-summary -->"
README_END = "<!-- END sim-summary -->"
"""Markers of the README block that ``chronoid sim --readme README.md`` refreshes."""

NOT_COVERED: tuple[str, ...] = (
    "Mode C with a live registry (Redis, etcd, PostgreSQL): the rotation-routing scenario uses "
    "`chronoid.modes.LeaseGenerator` on the in-memory registry; leases against the real "
    "servers, their loss and their hand-over are tested in `tests/modes/test_lease.py`.",
    "WAL volume (§4.3) and 100M-row index footprints (Graph C's scale): the storage "
    "scenarios run at 1,000,000 rows by default and 5,000,000 with `--full`.",
)
"""Spec scenarios this suite does not measure, with the reason."""

_VERDICT_MARK = {
    Verdict.HOLDS: "holds",
    Verdict.PARTLY: "holds partly",
    Verdict.DOES_NOT_HOLD: "**does not hold**",
    Verdict.NOT_RUN: "not run",
}


def draw_plot(plot: Plot, directory: Path) -> Path:
    """Draw ``plot`` as a PNG in ``directory`` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100)
    if plot.kind == "bar":
        categories = [str(x) for x in plot.series[0].x]
        width = 0.8 / max(1, len(plot.series))
        for n, series in enumerate(plot.series):
            positions = [
                i + (n - (len(plot.series) - 1) / 2) * width for i in range(len(categories))
            ]
            bars = ax.bar(positions, list(series.y), width, label=series.label)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(categories)), categories, rotation=12, fontsize=8)
    else:
        for series in plot.series:
            ax.plot([float(x) for x in series.x], list(series.y), series.style, label=series.label)
    if plot.xlog:
        ax.set_xscale("log")
    if plot.ylog:
        ax.set_yscale("log")
    ax.set_title(plot.title, fontsize=10)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if plot.kind == "bar":
        # Below the axes: inside them the legend hid a bar label (Graph D).
        ax.legend(
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.22),
            ncol=min(3, len(plot.series)),
        )
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / plot.filename
    fig.savefig(path)
    plt.close(fig)
    return path


def library_versions() -> str:
    """The versions a seeded run depends on besides Python: ``numpy 2.1.3, matplotlib 3.9.2``."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("numpy", "matplotlib"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def _table_md(table: Table) -> list[str]:
    lines = [
        "| " + " | ".join(table.headers) + " |",
        "| " + " | ".join("---" for _ in table.headers) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"_{table.caption}_"]
    return [*lines, ""]


def summary_markdown(results: Sequence[ScenarioResult], report_link: str) -> str:
    """The verdict table for the README: one row per scenario, linking into the report."""
    lines = ["| claim tested | verdict | our measurement |", "| --- | --- | --- |"]
    for r in results:
        lines.append(
            f"| [{r.title}]({report_link}#{r.name}) | {_VERDICT_MARK[r.verdict]} | {r.headline} |"
        )
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, summary: str) -> None:
    """Replace the text between :data:`README_BEGIN` and :data:`README_END` in ``readme``.

    Raises:
        InvalidArgument: the file lacks the markers.
    """
    from chronoid.errors import InvalidArgument

    text = readme.read_text(encoding="utf-8")
    start = text.find(README_BEGIN)
    end = text.find(README_END)
    if start < 0 or end < start:
        raise InvalidArgument(f"{readme} has no {README_BEGIN} ... {README_END} block to refresh")
    head = text[: start + len(README_BEGIN)]
    readme.write_text(head + "\n" + summary + text[end:], encoding="utf-8")


def render_markdown(
    results: Sequence[ScenarioResult], *, seed: int, full: bool, seconds: float, command: str
) -> str:
    """The report text: a verdict summary, one section per scenario, what is not covered."""
    counts = {v: sum(1 for r in results if r.verdict is v) for v in Verdict}
    timed = [r for r in results if r.timing_spread > 0]
    widest = max(timed, key=lambda r: r.timing_spread, default=None)
    variation = (
        "Simulated figures (Monte Carlo, counts, sizes) are deterministic for the seed and "
        "these versions; timing rows are not: each timing is repeated (at least 5 runs, "
        "median and min–max shown) and varies from run to run"
        + (
            f" (in this run the slowest repeat of a timing took up to "
            f"{widest.timing_spread:.1f}× its fastest, in {widest.name})."
            if widest is not None
            else "."
        )
    )
    out = [
        "# chronoid evidence report: spec 002's claims, measured",
        "",
        "Generated by `chronoid sim` — do not edit by hand. Regenerate with:",
        "",
        "```",
        command,
        "```",
        "",
        f"Run: seed {seed}, {'full' if full else 'default (scaled)'} sizes, "
        f"{seconds:.0f} s on {platform.machine()} ({os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end) with Python {platform.python_version()}, "
        f"{library_versions()} ({datetime.now(UTC).strftime('%Y-%m-%d')}). Every number below "
        "comes from this run; the spec's own figures appear only in the quoted claims. Timings "
        "and sizes depend on the machine and set-up; ratios matter more than absolute values.",
        "",
        variation,
        "",
        f"Verdicts: {counts[Verdict.HOLDS]} hold, {counts[Verdict.PARTLY]} hold partly, "
        f"{counts[Verdict.DOES_NOT_HOLD]} do not hold, {counts[Verdict.NOT_RUN]} not run.",
        "",
        "## Summary",
        "",
        "| scenario | verdict | measured |",
        "| --- | --- | --- |",
    ]
    for r in results:
        anchor = r.name
        out.append(f"| [{r.title}](#{anchor}) | {_VERDICT_MARK[r.verdict]} | {r.headline} |")
    out.append("")
    for r in results:
        out += [
            f'<a id="{r.name}"></a>',
            "",
            f"## {r.title}",
            "",
            f"`chronoid sim --scenario {r.name}` · {r.seconds:.1f} s",
            "",
            f"**Claim (spec 002).** {r.claim}",
            "",
            f"**Method.** {r.method}",
            "",
            f"**Verdict: {r.verdict.value}.** {r.reason}",
            "",
        ]
        if r.figures:
            out += ["| measured | value |", "| --- | --- |"]
            out += [f"| {label} | {value} |" for label, value in r.figures]
            out.append("")
        for table in r.tables:
            out += _table_md(table)
        for plot in r.plots:
            out += [f"![{plot.title}](plots/{plot.filename})", ""]
            if plot.caption:
                out += [f"_{plot.caption}_", ""]
    out += ["## Not covered", ""]
    out += [f"- {item}" for item in NOT_COVERED]
    out.append("")
    return "\n".join(out)


def write_report(
    results: Sequence[ScenarioResult],
    out_dir: Path,
    *,
    seed: int,
    full: bool,
    seconds: float,
    command: str | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and ``out_dir/plots/*.png``; returns the report's path.

    ``command`` is the command line quoted as the way to regenerate the report (default:
    built from ``out_dir``, ``full`` and ``seed``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in results:
        for plot in r.plots:
            draw_plot(plot, out_dir / "plots")
    if command is None:
        command = "chronoid sim --out " + str(out_dir) + (" --full" if full else "")
        if seed != _default_seed():
            command += f" --seed {seed}"
    text = render_markdown(results, seed=seed, full=full, seconds=seconds, command=command)
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def _default_seed() -> int:
    from chronoid.sim.model import Context

    return Context().seed
