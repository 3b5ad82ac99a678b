"""Running the evidence scenarios in report order, with a progress line: what ``chronoid
sim`` and the tests that reproduce its figures share."""

from __future__ import annotations

import time

from chronoid.progress import ProgressLine
from chronoid.sim.model import Context, ScenarioResult

__all__ = ["run"]


def run(
    names: list[str] | None, ctx: Context, *, show_progress: bool = True
) -> list[ScenarioResult]:
    """Run the named scenarios (all when None) in report order; a progress line on stderr
    (redrawn on a terminal, plain lines in a log)."""
    from chronoid.sim.scenarios import SCENARIOS, get_scenario

    chosen = [get_scenario(n) for n in names] if names else list(SCENARIOS)
    results: list[ScenarioResult] = []
    for i, scenario in enumerate(chosen, 1):
        prefix = f"[{i}/{len(chosen)}] {scenario.name}"
        line = ProgressLine()
        if show_progress:
            ctx.progress = line.prefixed(prefix)
            ctx.progress("running")
        started_s = time.perf_counter()
        result = scenario.run(ctx)
        result.seconds = time.perf_counter() - started_s
        results.append(result)
        if show_progress:
            line.finish(f"{prefix}: {result.verdict.value} ({result.seconds:.1f} s)")
    return results
