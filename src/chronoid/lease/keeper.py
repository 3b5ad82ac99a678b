"""The holder's side of a lease: its local deadline, the one margin rule, its renewals.

One home for the rules of ``docs/leases.md`` that Mode C's node lease and the sequencer's
leader lease both follow. Pure (no threads, no I/O, an injected clock), so the rules are
tested with a manual clock; the caller talks to the store and reports what happened (or,
to give a lease back, hands :meth:`LeaseKeeper.give_back` the call and the sleep to retry with).
"""

from __future__ import annotations

from collections.abc import Callable

from chronoid import clock as clocks
from chronoid.errors import InvalidArgument, LeaseStoreUnavailable

__all__ = ["GIVE_BACK_MAX_NS", "MIN_TTL_MS", "LeaseKeeper", "margin_ms"]

GIVE_BACK_MAX_NS = 2_000_000_000
"""The longest a holder going away keeps resending its release (ns): long enough for a
store's blip (a dropped connection, an etcd leader election of about 1 s), short enough that
a stop never waits out a long lease (systemd's stop timeout, a worker's restart) when the
store is down; past it the lease expires by itself."""

MIN_TTL_MS = 100
"""The shortest lease TTL a keeper accepts (ms): below it a store round trip eats the lease."""


def margin_ms(ttl_ms: int) -> int:
    """How much earlier than its store a holder ends its lease (ms): ``min(1 s, ttl / 4)``.

    The one margin rule of every lease. The holder's deadline is *send time of its last
    confirmed acquisition or renewal + ttl - margin* on ``CLOCK_BOOTTIME``; the store's lease
    runs until *its own receipt + ttl*, later, so the margin only has to cover the two clocks'
    rate difference over one TTL (up to 25 % at short TTLs, 10 % at 10 s).
    """
    return min(1000, ttl_ms // 4)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class LeaseKeeper:
    """When a held lease ends locally (``deadline_ns``) and when it is renewed next
    (``renew_at_ns``), in ns on the lease clock. The caller reports each store answer:
    :meth:`confirmed`, :meth:`failed` (no answer: a lost reply never lengthens the lease) or
    :meth:`end` (the store refused, or the lease was given back).

    Args:
        ttl_ms: the lease length the store grants (ms, an int >= 100).
        renew_ms: time between renewals (ms, default ttl / 3), below ``ttl_ms -
            skew_margin_ms`` so a renewal is sent while the lease is still trusted.
        skew_margin_ms: how much earlier than the store the holder ends its lease (ms,
            default :func:`margin_ms`: ``min(1 s, ttl / 4)``).
        retry_ms: how soon a renewal the store did not answer is sent again (ms, default a
            quarter of ``renew_ms``), at most ``renew_ms``.
        clock_ns: the lease clock (default :func:`chronoid.clock.boottime_ns`,
            ``CLOCK_BOOTTIME``, which keeps counting through a suspend); it must read
            >= 0 ns, because deadline 0 stands for "nothing is trusted".

    Raises:
        InvalidArgument: a timing out of range; the message names the parameter.
    """

    __slots__ = (
        "_ended_ns",
        "_now",
        "deadline_ns",
        "renew_at_ns",
        "renew_ns",
        "retry_ns",
        "trusted_ns",
    )

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
        self.trusted_ns = (ttl_ms - skew_margin_ms) * 1_000_000  # how long after a send
        self.renew_ns = renew_ms * 1_000_000
        self.retry_ns = retry_ms * 1_000_000 if retry_ms is not None else self.renew_ns // 4
        # Read here, not bound as a default argument: the clock module is its one home.
        self._now: Callable[[], int] = clock_ns or clocks.boottime_ns
        reading = self._now()
        if not _is_int(reading) or reading < 0:
            # Deadline 0 is "nothing trusted" (here, after end(), and Mode C's empty hold): a
            # reading below it would count as inside every ended lease.
            raise InvalidArgument(f"clock_ns must read an int >= 0 ns, got {reading!r}")
        self._ended_ns = 0  # the last end(): a confirmation of an earlier send is stale
        self.deadline_ns = 0  # from this lease-clock reading on, nothing is trusted
        self.renew_at_ns = 0  # the next renewal (or acquisition) is due at this reading

    def confirmed(self, sent_ns: int) -> None:
        """The store granted or renewed the lease in a request sent at ``sent_ns``: trusted
        until *send + ttl - margin* (never earlier than before), renewed one period later.

        A request sent before the last :meth:`end` confirms nothing: the store renewed a
        lease that is already over here (refused, lost or given back)."""
        if sent_ns < self._ended_ns:
            return
        self.deadline_ns = max(self.deadline_ns, sent_ns + self.trusted_ns)
        self.renew_at_ns = sent_ns + self.renew_ns

    def failed(self) -> bool:
        """The store did not answer: retry soon. Whether the lease is still trusted."""
        now = self._now()
        self.renew_at_ns = now + self.retry_ns
        return now < self.deadline_ns

    def end(self) -> None:
        """The lease is over (refused, lost or given back): trust nothing, act at once."""
        self._ended_ns = self._now()
        self.deadline_ns = self.renew_at_ns = 0

    def live(self) -> bool:
        """Whether the lease is still trusted now."""
        return self._now() < self.deadline_ns

    def due_in_ns(self) -> int:
        """How long until the next renewal is due (ns, 0 if it is due now)."""
        return max(0, self.renew_at_ns - self._now())

    def give_back(self, send: Callable[[], object], sleep_s: Callable[[float], object]) -> None:
        """Hand the lease back with ``send`` (a release or a resignation) and keep sending it,
        every ``retry_ns``, while the store does not answer and the lease is still trusted,
        for at most :data:`GIVE_BACK_MAX_NS`.

        A store unreachable for a moment still hears it, so the next holder need not wait
        out the lease; a holder going away is never held up longer than its lease would have
        lasted anyway, nor longer than :data:`GIVE_BACK_MAX_NS` (after that it expires by
        itself). The waits asked of ``sleep_s`` (s) add up to at most the smaller of the two,
        whatever the lease clock reads.

        Raises:
            LeaseStoreUnavailable: the last attempt's, once the deadline has passed.
        """
        budget_ns = min(self.deadline_ns - self._now(), GIVE_BACK_MAX_NS)
        while True:
            try:
                send()
                return
            except LeaseStoreUnavailable:
                left_ns = min(self.deadline_ns - self._now(), budget_ns)
                if left_ns <= 0:
                    raise
            step_ns = min(self.retry_ns, left_ns)
            budget_ns -= step_ns
            sleep_s(step_ns / 1e9)
