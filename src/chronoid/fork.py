"""The one at-fork hook: a forked child must never go on issuing its parent's IDs.

After ``os.fork()`` the child holds a copy of every generator, with the same tick, counter,
node or persona as the parent, and locks a parent thread may have held. Each generator
registers itself here once; in the child, right after the fork, each one's
``_after_fork_in_child`` resets what the parent still owns (locks, fast-path windows, state
files, leases), so the next call takes the slow path and decides there.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "reset_after_fork"]


class ForkAware(Protocol):
    """A generator that knows what to reset in a forked child."""

    def _after_fork_in_child(self) -> None: ...


_LIVE: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def reset_after_fork(generator: ForkAware) -> None:
    """Call ``generator._after_fork_in_child()`` in every child forked while it lives."""
    _LIVE.add(generator)


def _after_fork_in_child() -> None:
    for generator in list(_LIVE):
        generator._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
