"""The holder's side of a lease: its local deadline and its renewal schedule.

One home for the rules of ``docs/leases.md`` that Mode C's node lease and the sequencer's
leader lease both follow. Pure (no threads, no I/O, an injected clock), so the rules are
tested with a manual clock; the caller talks to the store and reports what happened.
"""

from __future__ import annotations

from collections.abc import Callable

from chronoid import clock as clocks
from chronoid.errors import InvalidArgument
from chronoid.lease.base import margin_ms

__all__ = ["MIN_TTL_MS", "LeaseKeeper"]

MIN_TTL_MS = 100
"""The shortest lease TTL a keeper accepts (ms): below it a store round trip eats the lease."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class LeaseKeeper:
    """When a held lease ends locally and when it is renewed next (ns on the lease clock).

    * :meth:`confirmed` after the store granted or renewed the lease: the deadline becomes
      *send time + ttl - margin* (never earlier than it was: a lost reply can shorten a lease,
      never lengthen it) and the next renewal is due one renewal period after the send.
    * :meth:`failed` after the store did not answer: the renewal is retried ``retry_ms``
      later; the lease stays trusted until its deadline.
    * :meth:`end` after the store refused (the token is unknown) or the lease was given
      back: nothing is trusted any more.

    Args:
        ttl_ms: the lease length the store grants (ms, an int >= 100).
        renew_ms: time between renewals (ms, default ttl / 3), below ``ttl_ms -
            skew_margin_ms`` so a renewal is sent while the lease is still trusted.
        skew_margin_ms: how much earlier than the store the holder ends its lease (ms,
            default :func:`~chronoid.lease.base.margin_ms`: ``min(1 s, ttl / 4)``).
        retry_ms: how soon a renewal the store did not answer is sent again (ms, default a
            quarter of ``renew_ms``), at most ``renew_ms``.
        clock_ns: the lease clock (default :func:`chronoid.clock.boottime_ns`,
            ``CLOCK_BOOTTIME``, which keeps counting through a suspend).

    Raises:
        InvalidArgument: a timing out of range; the message names the parameter.
    """

    __slots__ = ("_now", "deadline_ns", "renew_at_ns", "renew_ns", "retry_ns", "trusted_ns")

    def __init__(
        self,
        ttl_ms: int,
        *,
        renew_ms: int | None = None,
        skew_margin_ms: int | None = None,
        retry_ms: int | None = None,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        if not _is_int(ttl_ms) or not ttl_ms >= MIN_TTL_MS:
            raise InvalidArgument(f"ttl_ms must be an int >= {MIN_TTL_MS} ms, got {ttl_ms!r}")
        if skew_margin_ms is None:
            skew_margin_ms = margin_ms(ttl_ms)
        if not _is_int(skew_margin_ms) or not 0 <= skew_margin_ms < ttl_ms:
            raise InvalidArgument(
                f"skew_margin_ms must be an int in 0..ttl_ms-1 ({ttl_ms - 1}), "
                f"got {skew_margin_ms!r}"
            )
        if renew_ms is None:
            renew_ms = ttl_ms // 3
        if not _is_int(renew_ms) or not 0 < renew_ms < ttl_ms - skew_margin_ms:
            raise InvalidArgument(
                f"renew_ms must be an int in 1..{ttl_ms - skew_margin_ms - 1} "
                f"(below ttl_ms - skew_margin_ms), got {renew_ms!r}"
            )
        if retry_ms is not None and (not _is_int(retry_ms) or not 0 < retry_ms <= renew_ms):
            raise InvalidArgument(
                f"retry_ms must be an int in 1..renew_ms ({renew_ms}), got {retry_ms!r}"
            )
        if clock_ns is not None and not callable(clock_ns):
            raise InvalidArgument(f"clock_ns must be callable, got {clock_ns!r}")
        self.trusted_ns = (ttl_ms - skew_margin_ms) * 1_000_000
        """How long after a confirmed send the lease is trusted (ns): ttl - margin."""
        self.renew_ns = renew_ms * 1_000_000
        """Time between renewals (ns)."""
        self.retry_ns = retry_ms * 1_000_000 if retry_ms is not None else self.renew_ns // 4
        """How soon a renewal the store did not answer is sent again (ns)."""
        # Read at construction (not bound as a default argument), so the clock module stays
        # the one home of the lease clock.
        self._now: Callable[[], int] = clock_ns or clocks.boottime_ns
        self.deadline_ns = 0
        """The lease clock's reading from which the lease is no longer trusted (0: none held)."""
        self.renew_at_ns = 0
        """The lease clock's reading at which the next renewal (or acquisition) is due."""

    def now_ns(self) -> int:
        """The lease clock (ns): read it just before a request is sent, for :meth:`confirmed`."""
        return self._now()

    def confirmed(self, sent_ns: int) -> None:
        """The store granted or renewed the lease in a request sent at ``sent_ns``."""
        self.deadline_ns = max(self.deadline_ns, sent_ns + self.trusted_ns)
        self.renew_at_ns = sent_ns + self.renew_ns

    def failed(self) -> bool:
        """The store did not answer: retry soon. Whether the lease is still trusted."""
        now = self._now()
        self.renew_at_ns = now + self.retry_ns
        return now < self.deadline_ns

    def end(self) -> None:
        """The lease is over (refused, lost or given back): trust nothing, act at once."""
        self.deadline_ns = 0
        self.renew_at_ns = 0

    def live(self) -> bool:
        """Whether the lease is still trusted now."""
        return self._now() < self.deadline_ns

    def left_ns(self) -> int:
        """How long the lease is still trusted (ns, <= 0 once it is not)."""
        return self.deadline_ns - self._now()

    def due_in_ns(self) -> int:
        """How long until the next renewal is due (ns, 0 if it is due now)."""
        return max(0, self.renew_at_ns - self._now())

    def __repr__(self) -> str:
        return (
            f"LeaseKeeper(trusted_ns={self.trusted_ns}, renew_ns={self.renew_ns}, "
            f"deadline_ns={self.deadline_ns}, renew_at_ns={self.renew_at_ns})"
        )
