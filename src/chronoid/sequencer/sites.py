"""Multi-site issuing: each of ``sites`` sites draws from its own disjoint range of values,
so sites keep issuing through a partition without ever handing out the same value."""

from __future__ import annotations

from chronoid.errors import InvalidArgument
from chronoid.sequencer.sequences import MAX_VALUE

__all__ = ["MAX_SITES", "first_value", "site_range"]

MAX_SITES = 1024
"""Most sites one sequence space is split into (each keeps 2**63 / 1024 values or more)."""


def site_range(site: int, sites: int) -> tuple[int, int]:
    """The values (first, last) site ``site`` of ``sites`` issues: disjoint equal ranges of
    ``1..MAX_VALUE``.

    Raises:
        InvalidArgument: ``sites`` outside 1..1024 or ``site`` outside 0..sites-1.
    """
    if not 1 <= sites <= MAX_SITES:
        raise InvalidArgument(f"sites must be in 1..{MAX_SITES}, got {sites}")
    if not 0 <= site < sites:
        raise InvalidArgument(f"site must be in 0..{sites - 1} for {sites} sites, got {site}")
    span = MAX_VALUE // sites
    return site * span + 1, (site + 1) * span


def first_value(initial: int | None, first: int, last: int) -> int:
    """The value the default sequence starts at when ``initial`` is counted from the start
    of the site's range ``first..last`` (1 is ``first``; None means 1), so one setting
    means the same on every site.

    Raises:
        InvalidArgument: ``initial`` outside 1..(last - first + 1).
    """
    given = 1 if initial is None else initial
    size = last - first + 1
    if not 1 <= given <= size:
        raise InvalidArgument(f"initial must be in 1..{size} (this site's range), got {given}")
    return first + given - 1
