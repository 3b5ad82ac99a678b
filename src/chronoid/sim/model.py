"""The values a scenario returns: its claim, method, measured figures, verdict and plots.

A scenario is a function ``(Context) -> ScenarioResult``. Every number in a result comes
from the run that produced it; the spec's figures appear only inside quoted claims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "Context",
    "Plot",
    "ScenarioResult",
    "Series",
    "Table",
    "Verdict",
]


class Verdict(Enum):
    """How a spec claim fared against our measurement."""

    HOLDS = "holds"
    PARTLY = "holds partly"
    DOES_NOT_HOLD = "does not hold"
    NOT_RUN = "not run"


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or one group of bars) of a plot: ``x`` and ``y`` of equal length."""

    label: str
    x: Sequence[float | str]
    y: Sequence[float]
    style: str = "o-"


@dataclass(frozen=True, slots=True)
class Plot:
    """A chart the report draws to ``<out>/plots/<filename>`` (PNG, matplotlib Agg).

    ``kind`` is ``"line"`` (x numeric) or ``"bar"`` (x categorical, one bar group per x).
    """

    filename: str
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    kind: str = "line"
    xlog: bool = False
    ylog: bool = False
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """A Markdown table of measured values (cells already formatted)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass(slots=True)
class ScenarioResult:
    """What one scenario found.

    ``claim`` quotes the spec (its numbers are the spec's, not ours); ``method`` says what
    we ran; ``figures`` are the headline measurements (label, formatted value); ``reason``
    explains the verdict with the measured numbers. A result that times something repeats
    each timing (at least 5 runs) and reports median and min–max.
    """

    name: str
    title: str
    claim: str
    method: str
    verdict: Verdict
    reason: str
    headline: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    seconds: float = 0.0
    timing_spread: float = 0.0
    """Largest max / min over the repeated timings in this result (0: nothing timed)."""


@dataclass(slots=True)
class Context:
    """Run settings every scenario receives.

    ``seed`` makes every random draw reproducible; ``full`` selects the spec-sized runs
    (e.g. 1 billion IDs) instead of the scaled default; ``progress`` reports a step inside a
    long scenario (a short text) so the command line can show it.
    """

    seed: int = 20_260_101
    full: bool = False
    progress: Callable[[str], None] = field(default=lambda _text: None)
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"

    def scaled(self, default: int, full: int) -> int:
        """``full`` with ``--full``, else ``default`` (a count: IDs, trials, rows)."""
        return full if self.full else default
