"""The line every benchmark table opens with (when, by which command, on what machine) and
the tables themselves.

One format for every benchmark, so two result files can be compared at a glance and a
figure can be traced back to the command that made it. Benchmarks run as scripts
(``.venv/bin/python benchmarks/bench_x.py``), so they import this module by its bare name.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

__all__ = ["markdown_table", "measured_line"]


def measured_line(
    script: str, flags: Iterable[str] = (), details: str = "", *, at: datetime | None = None
) -> str:
    """``Measured <UTC time> by `.venv/bin/python benchmarks/<script> <flags>` on <machine>,
    <n> CPUs, Python <version>``, then ``; <details>`` (what was measured, how often) if given.

    ``at``: when the measurement started (default: now).
    """
    when = (at or datetime.now(UTC)).astimezone(UTC)
    command = " ".join([".venv/bin/python", f"benchmarks/{script}", *flags])
    line = (
        f"Measured {when:%Y-%m-%d %H:%M} UTC by `{command}` on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    return f"{line}; {details}" if details else line


def markdown_table(
    header: str | Sequence[str], rows: Iterable[Sequence[object]], align: str = ""
) -> list[str]:
    """The lines of a Markdown table: ``header``, the alignment row, a line per row.

    ``header``: the column names, or one string of them as the table shows them
    (``"store | max s"``). ``align``: a letter per column, ``l`` (text) or ``r`` (numbers);
    default: the first column ``l``, every other ``r``. Cells are written with ``str``:
    format numbers first.

    Raises:
        ValueError: ``align`` or a row does not have one entry per column.
    """
    if isinstance(header, str):
        header = [name.strip() for name in header.split("|")]
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align needs l or r for each of {len(header)} columns, got {align!r}")
    lines = [_row(header), _row("---" if a == "l" else "---:" for a in align)]
    for row in rows:
        cells = list(row)
        if len(cells) != len(header):
            raise ValueError(f"a row has {len(cells)} cells for {len(header)} columns: {cells}")
        lines.append(_row(cells))
    return lines


def _row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
