"""The timeline plot of a run: values over time, faults as bands and lines, violations marked.

matplotlib with the Agg backend (no display needed), from the ``sim`` extra.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from chronoid.extras import require_extra
from chronoid.torture.checker import Verdict
from chronoid.torture.history import History

__all__ = ["timeline"]

_MAX_POINTS = 20_000
"""Points drawn per key at most (a long run is thinned evenly)."""


def timeline(history: History, verdict: Verdict, path: Path, *, passed: bool | None = None) -> Path:
    """Write the timeline PNG of ``history`` to ``path`` and return ``path``.

    ``passed``: the run's outcome when more than the checks decide it (a worker that died of an
    error fails a run whose history passes); default ``verdict.ok``.

    Raises:
        MissingExtra: matplotlib is not installed.
    """
    require_extra("sim", "the chronoid torture timeline plot (or pass --no-plot)", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    started_ns = history.meta.started_ns
    figure, (values_ax, ops_ax) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    by_key: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for op in history.ops:
        if op.status == "ok" and op.complete_ns is not None:
            by_key[op.key].append(((op.complete_ns - started_ns) / 1e9, op.first))
    for key, points in sorted(by_key.items()):
        step = max(1, len(points) // _MAX_POINTS)
        shown = points[::step]
        values_ax.scatter(
            [t for t, _ in shown], [v for _, v in shown], s=2, label=f"{key} ({len(points)} ops)"
        )
    colours = plt.get_cmap("tab10")
    kinds = sorted({fault.kind for fault in history.faults})
    for number, kind in enumerate(kinds):
        colour = colours((number + 3) % 10)
        labelled = False
        for fault in history.faults:
            if fault.kind != kind:
                continue
            start_s = (fault.start_ns - started_ns) / 1e9
            label = None if labelled else kind
            labelled = True
            for ax in (values_ax, ops_ax):
                if fault.end_ns is not None and fault.end_ns - fault.start_ns > 50_000_000:
                    ax.axvspan(
                        start_s,
                        (fault.end_ns - started_ns) / 1e9,
                        color=colour,
                        alpha=0.2,
                        label=label,
                    )
                else:
                    ax.axvline(start_s, color=colour, linewidth=1, label=label)
                label = None
    marked = [v for v in verdict.violations if v.ops]
    if marked:
        values_ax.scatter(
            [(v.at_ns - started_ns) / 1e9 for v in marked],
            [v.ops[-1].first if v.ops[-1].ranges else 0 for v in marked],
            marker="x",
            s=60,
            color="red",
            label=f"violations (first {len(marked)})",
            zorder=5,
        )
    values_ax.set_ylabel("value (first of each operation)")
    title = f"chronoid torture {history.meta.target}"
    if history.meta.scenario:
        title += f", scenario {history.meta.scenario}"
    title += " - " + ("PASS" if (verdict.ok if passed is None else passed) else "FAIL")
    values_ax.set_title(title)
    values_ax.legend(loc="upper left", fontsize=7, markerscale=3)
    bins: dict[str, dict[int, int]] = {s: defaultdict(int) for s in ("ok", "fail", "info")}
    for op in history.ops:
        at_ns = op.complete_ns if op.complete_ns is not None else op.invoke_ns
        bins[op.status][int((at_ns - started_ns) / 1e8)] += 1
    last_bin = max((max(counts) for counts in bins.values() if counts), default=0)
    xs = list(range(last_bin + 1))
    for status, counts in bins.items():
        if counts:  # empty bins are zeros, so an outage shows as a drop, not a slope
            ops_ax.plot(
                [x / 10 for x in xs], [counts.get(x, 0) * 10 for x in xs], label=status, lw=1
            )
    ops_ax.set_ylabel("operations/s")
    ops_ax.set_xlabel("time since start (s)")
    ops_ax.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
