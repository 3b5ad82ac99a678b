"""Mode C, the managed registry (spec 002 §3.3): a leased node, exact uniqueness across a fleet.

The node is leased from a :class:`~chronoid.lease.base.NodeRegistry` (Redis, etcd,
PostgreSQL or in-memory) and stays *plain*: a router reads the shard with one shift and a mask
(:meth:`LeaseGenerator.node_of`). IDs come from a :class:`~chronoid.generator.Generator` on
that node, which waits for the next tick when a tick's 2^S sequence values run out.

The guarantee: **an ID is handed out only if the moment it was made lies inside this holder's
lease**, by the rules every lease follows (``docs/leases.md``; the deadline and the renewal
schedule are kept by :class:`~chronoid.lease.keeper.LeaseKeeper`). Mode C's own parts are
written up in ``docs/modes.md`` (Mode C); in short:

* **Take, then check.** Every call makes its ID first, then checks the deadline and that the
  lease is still the one the ID was made under; past it the ID is discarded and the call
  raises :class:`~chronoid.errors.LeaseLost`. A batch is checked after every tick and at its
  end, and refused whole; waits sleep in slices that end inside the lease.
* **Renewal confirms our token**, every ``renew_ms`` from the last send by a background
  thread, which acquires a new node when the registry no longer knows the token.
* **Lock-delay.** A node from a registry that cannot vouch for its history (its marker is
  missing or younger than one TTL: new, or its data was lost) issues nothing until one TTL
  after the marker was made. Every holder of one namespace should use the same ``ttl_ms``.
* **Handover.** Each holder records ``last_ns`` *ahead* (the end of the tick its wall clock
  reaches one TTL later) and never enters a tick beyond its record; a new holder whose clock
  reads earlier waits (up to ``max_wait_ms``) or fails with
  :class:`~chronoid.errors.ClockMovedBackwards`, and starts above the previous holder's tick.
* **Fork.** A child made by ``os.fork()`` or a raw C ``fork()`` (noticed on the generator's
  slow path, see :mod:`chronoid.generator` for the window that remains) raises
  :class:`~chronoid.errors.GeneratorForked` (``on_fork="raise"``, default) or leases a node of
  its own on its first call (``on_fork="lease"``, the gunicorn ``--preload`` case).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import NoReturn, SupportsIndex, TypeVar

from chronoid import clock as clocks
from chronoid.clock import SYSTEM_CLOCK, Clock
from chronoid.errors import (
    ClockMovedBackwards,
    GeneratorForked,
    InvalidArgument,
    LeaseLost,
    RegistryUnavailable,
)
from chronoid.fork import reset_after_fork
from chronoid.generator import Generator, Overflow
from chronoid.layout import Layout
from chronoid.lease.base import Lease, NodeRegistry
from chronoid.lease.keeper import LeaseKeeper, margin_ms
from chronoid.variants import VariantName, get_layout

__all__ = ["Lease", "LeaseGenerator", "NodeRegistry"]

_T = TypeVar("_T")

_NO_HOLD: tuple[int, Lease | None] = (-(1 << 127), None)
"""What the hot path sees while no lease may issue: a deadline no clock reading is before
(not 0: an injected lease clock may read below 0, and then a closed generator issued)."""

_FORK_POLICIES = ("raise", "lease")


class LeaseGenerator:
    """Mode C: IDs on a node leased from a registry, renewed in the background.

    Call :meth:`close` (or use it in a ``with`` block) to release the node; otherwise its
    daemon thread renews the lease until the process exits. After a lost lease the thread may
    lease a *different* node: read :attr:`node` (or ``node_of(id)``) per ID when routing.

    Args:
        layout: a Layout or variant name (default ``chrono64s``).
        registry: where nodes are leased (see :func:`chronoid.modes.parse_registry_url`).
        clock: the wall clock IDs are stamped with (default: the system clock).
        ttl_ms: lease length (ms, default 10 s).
        renew_ms: time between renewals (ms, default ttl/3).
        skew_margin_ms: how much earlier than the lease's expiry the generator stops (ms,
            default min(1 s, ttl/4)); covers clock-rate differences between this host and
            the registry over one TTL.
        max_wait_ms: longest wait for a tick (sequence overflow) or for the previous
            holder's ``last_ns`` (ms); a wait never outlasts the lease either.
        max_clock_skew_ms: how far another holder's wall clock may run ahead of this one's
            (ms, default the margin, min(1 s, ttl/4)). Only a lock-delay uses it: a
            registry that lost its records cannot say which ticks a holder cut off from it
            used, so the newcomer waits this much longer and issues above them.
        lease_clock_ns: the local clock lease deadlines are measured with (default
            :func:`chronoid.clock.boottime_ns`, ``CLOCK_BOOTTIME``); tests inject one.
        on_fork: ``"raise"`` (a forked child raises GeneratorForked) or ``"lease"`` (a
            forked child leases a node of its own on its first call).

    Raises:
        InvalidArgument: inconsistent timings. NodeSpaceExhausted, RegistryUnavailable: no
        lease could be acquired. LeaseLost: the lease could not be kept through the
        lock-delay. ClockMovedBackwards: the clock is further behind the previous holder's
        ``last_ns`` than ``max_wait_ms``.
    """

    renewals: int = 0
    """Successful renewals so far."""
    renewal_failures: int = 0
    """Renewals (or re-acquisitions) that failed because the registry was unreachable."""
    last_error: str | None = None
    """The last registry error the renewal thread saw (None when it has seen none)."""
    acquisitions: int = 0
    """Leases acquired (1 after construction; more after a lease was lost)."""
    lock_delay_ms: float = 0.0
    """How long the last acquisition waited before its node could issue (ms): 0 unless the
    registry could not vouch for the node's history."""

    _swap: threading.Lock
    _stop: threading.Event
    _issuable: threading.Event
    _lease: Lease | None
    _thread: threading.Thread

    def __init__(
        self,
        layout: Layout | VariantName = "chrono64s",
        registry: NodeRegistry | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        ttl_ms: int = 10_000,
        renew_ms: int | None = None,
        skew_margin_ms: int | None = None,
        max_wait_ms: float = 1000.0,
        max_clock_skew_ms: int | None = None,
        lease_clock_ns: Callable[[], int] | None = None,
        on_fork: str = "raise",
    ) -> None:
        self._layout = get_layout(layout)
        if registry is None or not isinstance(registry, NodeRegistry):
            raise InvalidArgument(
                f"registry must be a NodeRegistry (see parse_registry_url), got {registry!r}"
            )
        self._lease_now = _own_lease_clock(lease_clock_ns)
        # The deadline and the renewal schedule (validates the timings; retries a quarter
        # period after a failure).
        self._keeper = LeaseKeeper(
            ttl_ms, renew_ms=renew_ms, skew_margin_ms=skew_margin_ms, clock_ns=self._lease_now
        )
        if not max_wait_ms >= 0:
            raise InvalidArgument(f"max_wait_ms must be >= 0, got {max_wait_ms!r}")
        if max_clock_skew_ms is None:
            max_clock_skew_ms = margin_ms(ttl_ms)
        if (
            not isinstance(max_clock_skew_ms, int)
            or isinstance(max_clock_skew_ms, bool)
            or not 0 <= max_clock_skew_ms <= 86_400_000
        ):
            raise InvalidArgument(
                f"max_clock_skew_ms must be an int in 0..86400000 (ms), got {max_clock_skew_ms!r}"
            )
        self._skew_ns = max_clock_skew_ms * 1_000_000
        if on_fork not in _FORK_POLICIES:
            raise InvalidArgument(f'on_fork must be "raise" or "lease", got {on_fork!r}')
        self._registry = registry
        self._clock = clock
        self._ttl_ns = ttl_ms * 1_000_000
        self._ttl_ms = ttl_ms
        self._max_wait_ns = int(max_wait_ms * 1_000_000)
        self._on_fork = on_fork
        self._forked = False
        self._pid = os.getpid()
        self._fork_lock = threading.Lock()
        self._hold: tuple[int, Lease | None] = _NO_HOLD
        self._start_keeping()
        lease = self._acquire()
        self._generator = Generator(
            self._layout,
            lease.node,
            clock=clock,
            on_overflow=Overflow.WAIT,
            max_wait_ms=max_wait_ms,
            lease_remaining_ns=self._lease_left_ns,
            tick_check=self._check_tick,
        )
        self._issue = self._generator.next_id
        self._fuse_next_id()
        self._take(lease)
        reset_after_fork(self)
        self._thread.start()
        self._wait_until_issuable()

    # -- public ----------------------------------------------------------------------------

    @property
    def layout(self) -> Layout:
        """The layout IDs are made in."""
        return self._layout

    @property
    def node(self) -> int:
        """The leased node (plain, unmixed: ``node_of(id)`` returns it)."""
        return self._generator.node

    @property
    def lease(self) -> Lease | None:
        """The current lease (None while a lost lease is being replaced)."""
        return self._lease

    @property
    def lease_remaining_ms(self) -> float:
        """How long the generator may still issue IDs without a renewal (ms): negative once
        the held lease is past its deadline (by how much), 0 while no lease may issue (closed,
        lost and being replaced, in its lock-delay, or inherited through fork).

        0, not None: it stays a number to graph and compare (``<= 0``: nothing may issue), and
        nothing held is nothing left, where the hot path's empty hold would read -1.7e32.
        """
        deadline_ns, lease = self._hold
        if lease is None:
            return 0.0
        return (deadline_ns - self._lease_now()) / 1e6

    def node_of(self, value: int) -> int:
        """The node of an ID of this layout: one shift and a mask (shard routing)."""
        return self._layout.node_of(value)

    def next_id(self) -> int:
        """The next ID on the leased node, made inside the lease.

        Raises:
            LeaseLost: the lease ended before the ID was made, or no lease is held.
            GeneratorForked: inherited through fork() with ``on_fork="raise"``.
        """
        hold = self._hold
        try:
            value = self._issue()
        except GeneratorForked:
            return self._in_child(self.next_id)
        # Take, then check: the ID was made before this reading, under the lease read above
        # (a renewal meanwhile replaced the tuple but kept the lease: the slow check says so).
        if self._lease_now() < hold[0] and (self._hold is hold or self._hold[1] is hold[1]):
            return value
        return self._refuse(self.next_id)

    def _fuse_next_id(self) -> None:
        # The hot path: the generator's fast path and the take-then-check in one frame (the
        # same reads in the same order as next_id above, which stays its slow path). Not
        # under a subclass that overrides next_id: the instance attribute would hide it.
        if type(self).next_id is LeaseGenerator.next_id:
            self.next_id = self._generator._next_id_within(  # type: ignore[method-assign]
                self, self._lease_now, functools.partial(LeaseGenerator.next_id, self)
            )

    def next_ids(self, count: int) -> list[int]:
        """``count`` IDs in increasing order (see :meth:`Generator.next_ids`), all made inside
        the lease, or none: the batch is refused whole if the lease ends before it is done.

        Raises:
            LeaseLost: as :meth:`next_id`. InvalidArgument: a bad count.
        """
        hold = self._hold
        if hold[1] is None:
            return self._refuse(functools.partial(self.next_ids, count))
        try:
            values = self._generator.next_ids(count)
        except GeneratorForked:
            return self._in_child(functools.partial(self.next_ids, count))
        if self._lease_now() < hold[0] and self._hold[1] is hold[1]:
            return values
        return self._refuse(functools.partial(self.next_ids, count))

    def close(self) -> None:
        """Stop renewing and release the lease, recording this holder's ``last_ns``.

        A release the registry does not hear (unreachable for a moment) is sent again every
        retry period (a quarter of ``renew_ms``) while the lease lasts, so the node is free
        for the next holder at once; close() never waits longer than the rest of the lease,
        nor more than 2 s. If the registry stays unreachable the lease simply expires; the
        error is kept in :attr:`last_error`.
        """
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._swap:
            lease, self._lease = self._lease, None
            self._hold = _NO_HOLD
        if lease is not None and not self._forked and self._pid == os.getpid():
            # The actual end of our ticks: lower than what the renewals recorded ahead.
            release = functools.partial(self._registry.release, lease, self._last_ns())
            try:
                self._keeper.give_back(release, time.sleep)
            except RegistryUnavailable as exc:
                self.last_error = str(exc)

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # copy, deepcopy and pickle all come here. A copy would carry a snapshot of the
        # lease that no renewal updates and no loss or release withdraws: it issued on the
        # node after the original released it.
        raise TypeError(
            f"a {type(self).__name__} holds a lease and cannot be copied or pickled; make a "
            "new one (in another process: a LeaseGenerator of its own)"
        )

    def __enter__(self) -> LeaseGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the lease -------------------------------------------------------------------------

    def _start_keeping(self) -> None:
        # Fresh per process: after a fork these may have been held by a thread that is gone.
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self._issuable = threading.Event()
        self._lease = None
        self._keeper.end()  # nothing confirmed in this process yet
        self._issue_from = 0  # lease clock: end of the lock-delay
        self._limit_tick = -1  # the last tick the registry's record covers (ticks)
        self._recorded_ns = 0  # that record: last_ns for the node's next holder
        self._settled_floor_ns = 0  # end of the tick an unknown previous holder may have used
        self._thread = threading.Thread(target=self._renew_loop, name="chronoid-lease", daemon=True)

    def _lease_left_ns(self) -> int:
        # The generator's guard: how long the lease still runs; raises once it is over.
        left = self._hold[0] - self._lease_now()
        if left <= 0:
            raise self._lost()
        return left

    def _refuse(self, retry: Callable[[], _T]) -> _T:
        if self._forked or self._pid != os.getpid():
            return self._in_child(retry)
        raise self._lost()

    def _in_child(self, retry: Callable[[], _T]) -> _T:
        if self._on_fork == "raise":
            raise GeneratorForked(
                "this Mode C generator was inherited through fork(); its lease belongs to "
                "the parent, so make a new LeaseGenerator in the child (or pass "
                'on_fork="lease")'
            )
        with self._fork_lock:
            if self._forked or self._pid != os.getpid():
                self._lease_in_child()
        return retry()

    def _after_fork_in_child(self) -> None:
        self._forked = True
        self._hold = _NO_HOLD

    def _lease_in_child(self) -> None:
        # The parent's renewal thread does not exist here and its lease is not ours: start
        # over with a node of our own, new registry connections and a renewal thread.
        self._pid = os.getpid()
        self._forked = False
        self._hold = _NO_HOLD
        reset = getattr(self._registry, "after_fork", None)
        if callable(reset):
            reset()
        self._start_keeping()
        lease = self._acquire()
        self._generator._mark_forked()  # a fresh lock, whatever the parent's threads held
        self._take(lease)
        reset_after_fork(self)
        self._thread.start()
        self._wait_until_issuable()

    def _lost(self) -> Exception:
        if self._stop.is_set():
            return LeaseLost(f"{self._layout.name}: this generator was closed")
        lease = self._lease
        where = f"node {lease.node}" if lease is not None else "no node"
        reason = f"; last registry error: {self.last_error}" if self.last_error else ""
        if lease is not None and self._lease_now() < self._issue_from:
            return LeaseLost(
                f"{self._layout.name}: {where} was just acquired and the registry cannot "
                f"vouch for its previous lease; it issues in "
                f"{(self._issue_from - self._lease_now()) / 1e6:,.0f} ms (lock-delay)"
            )
        return LeaseLost(
            f"{self._layout.name}: the lease ({where}, ttl {self._ttl_ms} ms) is past its "
            f"deadline and could not be renewed; refusing to issue IDs that another holder of "
            f"the node could repeat{reason}"
        )

    def _last_ns(self) -> int:
        tick = self._generator.last_tick
        return self._layout.tick_start_ns(tick + 1) if tick >= 0 else 0

    def _projection(self, lease: Lease) -> tuple[int, int]:
        # Record ahead: the last tick this holder may use until its next record (the one
        # holding the wall clock + one TTL, past its deadline) and the last_ns covering it.
        # A holder cut off after a record never issues a tick its successor does not wait
        # for, however far its wall clock runs ahead of the successor's.
        layout = self._layout
        ahead_ns = self._clock.now_ns() + self._ttl_ns - 1
        if ahead_ns < layout.epoch_ns:
            tick = -1
        elif ahead_ns >= layout.tick_start_ns(layout.max_timestamp + 1):
            tick = layout.max_timestamp
        else:
            tick = layout.tick_of_ns(ahead_ns)
        record = layout.tick_start_ns(tick + 1) if tick >= 0 else 0
        if lease is self._lease and record < self._recorded_ns:
            return self._limit_tick, self._recorded_ns  # the wall clock stepped back
        return tick, max(record, lease.not_before_ns)

    def _check_tick(self, tick: int) -> None:
        # The generator's guard on every tick change (slow path only).
        if tick > self._limit_tick:
            raise LeaseLost(
                f"{self._layout.name}: tick {tick} lies past the last tick the registry has "
                f"recorded for node {self.node}'s next holder ({self._limit_tick}): the wall "
                f"clock ran ahead of the lease (a step forward?); the next renewal records it"
            )

    def _acquire(self) -> Lease:
        sent = self._lease_now()
        lease = self._registry.acquire(self._layout.max_node, self._ttl_ms, self._clock.now_ns())
        received = self._lease_now()
        self.acquisitions += 1
        behind = lease.not_before_ns - self._clock.now_ns()
        if behind > 0:
            if behind > self._max_wait_ns:
                raise self._refuse_handover(
                    lease,
                    behind,
                    f"node {lease.node}'s previous holder issued IDs until "
                    f"{lease.not_before_ns} ns, {behind / 1e6:.3f} ms ahead of this clock",
                )
            self._clock.sleep_ns(behind)
        # The registry's delay counts from its grant, which is before our receipt.
        settle_ns = lease.settle_ms * 1_000_000
        self._settled_floor_ns = 0
        floor_ns = 0
        if settle_ns > 0:
            # The registry cannot vouch for the node, so a holder unknown to it may have
            # issued until the delay ends, in the tick the wall clock is in then: that whole
            # tick is its. Issuing starts in the next tick (found by chronoid torture lease:
            # a registry restarted without its data, chrono64s, a newcomer in the old
            # holder's tick after the delay).
            # The lost records were what kept a newcomer above the ticks of a holder cut off
            # from the registry; its wall clock may run up to max_clock_skew_ms ahead of ours
            # (558,228 repeats with a 3 s skew and no allowance, tests/lease/test_etcd.py).
            settle_ns += self._skew_ns
            now_ns = self._clock.now_ns()
            floor_tick = self._layout.tick_of_ns(now_ns + settle_ns)
            tick_end_ns = self._layout.tick_start_ns(floor_tick + 1)
            extra_ns = tick_end_ns - now_ns - settle_ns
            if extra_ns > self._max_wait_ns:
                raise self._refuse_handover(
                    lease,
                    extra_ns,
                    f"node {lease.node} comes from a registry that cannot vouch for its "
                    f"history; its unknown previous holder may have issued until the end of "
                    f"tick {floor_tick}, {extra_ns / 1e6:.3f} ms after the lock-delay",
                )
            settle_ns += extra_ns
            floor_ns = tick_end_ns
        # Record ahead before issuing anything (one more round trip at acquisition), the
        # lock-delay's floor included: a newcomer that dies inside its lock-delay must leave
        # the next holder (vouched for by then, no lock-delay) above the cut-off holder's
        # ticks too, not one TTL ahead only (1,034,512 repeats, tests/lease/test_etcd.py).
        limit, record = self._projection(lease)
        if not self._registry.renew(lease, max(record, floor_ns)):
            raise LeaseLost(f"{self._layout.name}: node {lease.node} was lost as it was acquired")
        self._limit_tick, self._recorded_ns = limit, record
        self._keeper.confirmed(sent)
        self._settled_floor_ns = floor_ns
        self._issue_from = received + settle_ns
        self.lock_delay_ms = settle_ns / 1e6
        return lease

    def _refuse_handover(self, lease: Lease, wait_ns: int, reason: str) -> ClockMovedBackwards:
        # A node whose previous holder's ticks lie further ahead than max_wait_ms: give it
        # back rather than wait that long or repeat its IDs.
        with contextlib.suppress(RegistryUnavailable):
            self._registry.release(lease, 0)
        return ClockMovedBackwards(
            wait_ns, f"{reason} (more than max_wait_ms); refusing to repeat its IDs"
        )

    def _take(self, lease: Lease) -> None:
        # Moves the generator to lease.node above the previous holder's last tick (a clock
        # step back after the handover must not reach it); issuing starts after the delay.
        after_ns = max(lease.not_before_ns, self._settled_floor_ns)
        self._generator.reassign_node(lease.node, after_ns=after_ns)
        self._lease = lease
        if self._lease_now() >= self._issue_from:
            self._publish(lease)

    def _publish(self, lease: Lease) -> None:
        self._hold = (self._keeper.deadline_ns, lease)
        self._issuable.set()

    def _wait_until_issuable(self) -> None:
        if self._issuable.is_set():
            return
        delay_ns = max(0, self._issue_from - self._lease_now())
        if not self._issuable.wait((delay_ns + self._ttl_ns) / 1e9):
            error = self._lost()
            self.close()
            raise error

    def _next_wake_ns(self) -> int:
        # The renewal (or, after a failure, its retry or the re-acquisition), unless the
        # lock-delay of a lease not yet published ends first.
        wake = self._keeper.renew_at_ns
        lease = self._lease
        if lease is not None and self._hold[1] is not lease and self._issue_from < wake:
            wake = self._issue_from
        return wake

    def _renew_loop(self) -> None:
        while not self._stop.wait(max(0, self._next_wake_ns() - self._lease_now()) / 1e9):
            try:
                self._renew_once()
            except Exception as exc:  # keep renewing whatever happens; report it
                self.renewal_failures += 1
                unreachable = isinstance(exc, RegistryUnavailable)
                self.last_error = str(exc) if unreachable else f"{type(exc).__name__}: {exc}"
                self._keeper.failed()  # retried soon, not a whole period later

    def _renew_once(self) -> None:
        lease = self._lease
        if lease is not None:
            if self._hold[1] is not lease and self._keeper.due_in_ns() > 0:
                # Woken at the end of the lock-delay, before the renewal is due.
                with self._swap:
                    if self._lease is lease and self._lease_now() >= self._issue_from:
                        self._publish(lease)
                return
            limit, record = self._projection(lease)
            sent = self._lease_now()
            if self._registry.renew(lease, record):
                with self._swap:
                    if self._lease is lease and not self._stop.is_set():
                        self._keeper.confirmed(sent)
                        self._limit_tick, self._recorded_ns = limit, record
                        if self._lease_now() >= self._issue_from:
                            self._publish(lease)
                self.renewals += 1
                return
            # The registry does not know our token (expired there, taken, or its data was
            # lost): stop issuing at once, then lease a node again.
            with self._swap:
                if self._lease is lease:
                    self._hold = _NO_HOLD
                    self._lease = None
                    self._keeper.end()
        if self._stop.is_set():
            return
        new_lease = self._acquire()
        with self._swap:
            if self._stop.is_set():
                self._registry.release(new_lease, 0)
                return
            # The generator keeps its last tick, so IDs on the new node still increase.
            self._take(new_lease)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self._layout.name!r}, node={self.node}, "
            f"registry={self._registry!r})"
        )


def _own_lease_clock(lease_clock_ns: Callable[[], int] | None) -> Callable[[], int]:
    """The lease clock, read at construction (not bound as a default argument, so the clock
    module stays its one home); a plain partial is copied: the fused ``next_id`` calls it
    unwrapped, and a copy of our own keeps every reading on one clock whatever is later done
    to the caller's object."""
    if lease_clock_ns is not None and not callable(lease_clock_ns):
        raise InvalidArgument(f"lease_clock_ns must be callable, got {lease_clock_ns!r}")
    lease_now = lease_clock_ns or clocks.boottime_ns
    if type(lease_now) is functools.partial:
        lease_now = functools.partial(lease_now.func, *lease_now.args, **lease_now.keywords)
    return lease_now
