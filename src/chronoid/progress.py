"""One progress line on a terminal, plain lines elsewhere: the CLI's terminal manners.

On a terminal a progress line redraws itself in place (``\\r`` and ``ESC [2K``, erase the
line). Anywhere else (a CI log, a file, a pipe) escape codes are noise: updates become plain
lines, at most one per :data:`PLAIN_INTERVAL_S`, and only when the caller asks for them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

__all__ = ["PLAIN_INTERVAL_S", "REDRAW_INTERVAL_S", "ProgressLine"]

REDRAW_INTERVAL_S = 0.1
"""Shortest time between two redraws on a terminal (s)."""

PLAIN_INTERVAL_S = 10.0
"""Shortest time between two plain progress lines off a terminal (s)."""

_ERASE = "\r\x1b[2K"


class ProgressLine:
    """A status line on ``stream`` (stderr by default).

    Args:
        stream: where to write.
        plain: off a terminal, also write updates as plain lines (else only :meth:`finish`
            lines appear there).
        delay_s: show nothing before this many seconds have passed since construction, so a
            quick command stays silent.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        plain: bool = True,
        delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self._stream.isatty()
        except (AttributeError, ValueError):  # a closed or odd stream is no terminal
            self.tty = False
        self._plain = plain
        self._clock = clock
        self._start_s = clock()
        self._delay_s = delay_s
        self._shown_at_s: float | None = None
        self._drawn = False

    def update(self, text: str) -> None:
        """Show ``text`` as the current state (throttled; may show nothing)."""
        now_s = self._clock()
        if now_s - self._start_s < self._delay_s:
            return
        interval_s = REDRAW_INTERVAL_S if self.tty else PLAIN_INTERVAL_S
        if self._shown_at_s is not None and now_s - self._shown_at_s < interval_s:
            return
        if not self.tty and not self._plain:
            return
        self._shown_at_s = now_s
        self._write(f"{_ERASE}{text}" if self.tty else f"{text}\n")
        self._drawn = self.tty

    def prefixed(self, prefix: str) -> Callable[[str], None]:
        """An ``update`` callback that shows ``prefix: text``."""
        return lambda text: self.update(f"{prefix}: {text}")

    def finish(self, text: str | None = None) -> None:
        """End the line: replace it with ``text`` (a plain line everywhere), or erase it."""
        if self._drawn:
            self._write(_ERASE)
            self._drawn = False
        if text is not None:
            self._write(f"{text}\n")

    def _write(self, data: str) -> None:
        self._stream.write(data)
        self._stream.flush()
