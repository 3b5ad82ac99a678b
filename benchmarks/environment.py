"""The line every benchmark table opens with: when, by which command, on what machine.

One format for every benchmark, so two result files can be compared at a glance and a
figure can be traced back to the command that made it. Benchmarks run as scripts
(``.venv/bin/python benchmarks/bench_x.py``), so they import this module by its bare name.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from datetime import UTC, datetime

__all__ = ["measured_line"]


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
