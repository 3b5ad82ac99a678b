"""Mode C, the managed registry (spec 002 §3.3): a leased node, exact uniqueness across a fleet.

The node is leased from a :class:`~chronoid.modes.registry.base.NodeRegistry` (Redis, etcd,
PostgreSQL or in-memory) and stays *plain*: a router reads the shard with one shift and a mask
(:meth:`LeaseGenerator.node_of`). IDs come from a :class:`~chronoid.generator.Generator` on
that node, which waits for the next tick when a tick's 2^S sequence values run out.

The lease lives for ``ttl_ms`` on the registry's clock. A background thread renews it every
``renew_ms``. Locally the generator trusts it until ``start of the last successful renewal +
ttl - skew_margin``: if the registry is unreachable, generation continues on the cached lease
until then and afterwards every call raises :class:`~chronoid.errors.LeaseLost` rather than
risk a duplicate with the node's next holder. The thread keeps trying: when the registry
answers again it renews the lease if it is still ours, or acquires a new node.

Handover: each holder records ``last_ns`` (the end of the last tick it used) on every renewal
and on release. A new holder whose clock reads earlier than that waits (up to
``max_wait_ms``) or fails with :class:`~chronoid.errors.ClockMovedBackwards`, so it cannot
repeat the previous holder's IDs. What is not covered: IDs a holder issued after its last
recorded renewal, if the registry lost its data (e.g. a Redis restart without persistence);
those are protected only by the margin, i.e. by clocks that disagree by less than
``skew_margin_ms``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable

from chronoid.clock import SYSTEM_CLOCK, Clock
from chronoid.errors import (
    ClockMovedBackwards,
    GeneratorForked,
    InvalidArgument,
    LeaseLost,
    RegistryUnavailable,
)
from chronoid.generator import Generator, Overflow
from chronoid.layout import Layout
from chronoid.modes.registry.base import Lease, NodeRegistry
from chronoid.variants import VariantName, get_layout

__all__ = ["Lease", "LeaseGenerator", "NodeRegistry"]

_LIVE: weakref.WeakSet[LeaseGenerator] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for generator in list(_LIVE):
        generator._forked = True
        generator._deadline = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


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
            default min(1 s, ttl/4)); cover the clock skew between hosts and the registry.
        max_wait_ms: longest wait for a tick (sequence overflow) or for the previous
            holder's ``last_ns`` (ms).
        monotonic_ns: the local clock lease deadlines are measured with.

    Raises:
        InvalidArgument: inconsistent timings. NodeSpaceExhausted, RegistryUnavailable: no
        lease could be acquired. ClockMovedBackwards: the clock is further behind the
        previous holder's ``last_ns`` than ``max_wait_ms``.
    """

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
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._layout = get_layout(layout)
        if registry is None or not isinstance(registry, NodeRegistry):
            raise InvalidArgument(
                f"registry must be a NodeRegistry (see parse_registry_url), got {registry!r}"
            )
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or not ttl_ms >= 100:
            raise InvalidArgument(f"ttl_ms must be an int >= 100 ms, got {ttl_ms!r}")
        if renew_ms is None:
            renew_ms = ttl_ms // 3
        if skew_margin_ms is None:
            skew_margin_ms = min(1000, ttl_ms // 4)
        if not isinstance(skew_margin_ms, int) or not 0 <= skew_margin_ms < ttl_ms:
            raise InvalidArgument(
                f"skew_margin_ms must be an int in 0..ttl_ms-1 ({ttl_ms - 1}), "
                f"got {skew_margin_ms!r}"
            )
        if not isinstance(renew_ms, int) or not 0 < renew_ms < ttl_ms - skew_margin_ms:
            raise InvalidArgument(
                f"renew_ms must be an int in 1..{ttl_ms - skew_margin_ms - 1} "
                f"(below ttl_ms - skew_margin_ms), got {renew_ms!r}"
            )
        if not max_wait_ms >= 0:
            raise InvalidArgument(f"max_wait_ms must be >= 0, got {max_wait_ms!r}")
        self._registry = registry
        self._clock = clock
        self._ttl_ns = ttl_ms * 1_000_000
        self._ttl_ms = ttl_ms
        self._renew_s = renew_ms / 1000
        self._margin_ns = skew_margin_ms * 1_000_000
        self._max_wait_ns = int(max_wait_ms * 1_000_000)
        self._monotonic = monotonic_ns
        self._forked = False
        self._swap = threading.Lock()
        self._stop = threading.Event()
        self.renewals = 0
        """Successful renewals so far."""
        self.renewal_failures = 0
        """Renewals (or re-acquisitions) that failed because the registry was unreachable."""
        self.last_error: str | None = None
        """The last registry error the renewal thread saw (None when it has seen none)."""
        self.acquisitions = 0
        """Leases acquired (1 after construction; more after a lease was lost)."""

        self._deadline = 0
        lease, deadline = self._acquire()
        self._generator = Generator(
            self._layout,
            lease.node,
            clock=clock,
            on_overflow=Overflow.WAIT,
            max_wait_ms=max_wait_ms,
        )
        self._lease: Lease | None = lease
        self._deadline = deadline
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"chronoid-lease-{lease.node}", daemon=True
        )
        _LIVE.add(self)
        self._thread.start()

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
        """How long the generator may still issue IDs without a renewal (ms, <= 0 if lost)."""
        return (self._deadline - self._monotonic()) / 1e6

    def node_of(self, value: int) -> int:
        """The node of an ID of this layout: one shift and a mask (shard routing)."""
        return self._layout.node_of(value)

    def next_id(self) -> int:
        """The next ID on the leased node.

        Raises:
            LeaseLost: the lease is past its local deadline (expiry minus skew margin).
        """
        if self._monotonic() >= self._deadline:
            raise self._lost()
        return self._generator.next_id()

    def next_ids(self, count: int) -> list[int]:
        """``count`` IDs in increasing order (see :meth:`Generator.next_ids`).

        Raises:
            LeaseLost: as :meth:`next_id`. InvalidArgument: a bad count.
        """
        if self._monotonic() >= self._deadline:
            raise self._lost()
        return self._generator.next_ids(count)

    def close(self) -> None:
        """Stop renewing and release the lease, recording this holder's ``last_ns``.

        If the registry is unreachable the lease simply expires; the error is kept in
        :attr:`last_error`.
        """
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._swap:
            lease, self._lease = self._lease, None
            self._deadline = 0
        if lease is not None and not self._forked:
            try:
                self._registry.release(lease, self._last_ns())
            except RegistryUnavailable as exc:
                self.last_error = str(exc)

    def __enter__(self) -> LeaseGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _lost(self) -> Exception:
        if self._forked:
            return GeneratorForked(
                "this Mode C generator was inherited through os.fork(); its lease belongs to "
                "the parent, so make a new LeaseGenerator in the child"
            )
        if self._stop.is_set():
            return LeaseLost(f"{self._layout.name}: this generator was closed")
        lease = self._lease
        where = f"node {lease.node}" if lease is not None else "no node"
        reason = f"; last registry error: {self.last_error}" if self.last_error else ""
        return LeaseLost(
            f"{self._layout.name}: the lease ({where}, ttl {self._ttl_ms} ms) is past its "
            f"deadline and could not be renewed; refusing to issue IDs that another holder of "
            f"the node could repeat{reason}"
        )

    def _last_ns(self) -> int:
        tick = self._generator.last_tick
        return self._layout.tick_start_ns(tick + 1) if tick >= 0 else 0

    def _acquire(self) -> tuple[Lease, int]:
        started = self._monotonic()
        lease = self._registry.acquire(self._layout.max_node, self._ttl_ms, self._clock.now_ns())
        self.acquisitions += 1
        behind = lease.not_before_ns - self._clock.now_ns()
        if behind > 0:
            if behind > self._max_wait_ns:
                with contextlib.suppress(RegistryUnavailable):
                    self._registry.release(lease, 0)
                raise ClockMovedBackwards(
                    behind,
                    f"node {lease.node}'s previous holder issued IDs until "
                    f"{lease.not_before_ns} ns, {behind / 1e6:.3f} ms ahead of this clock "
                    f"(more than max_wait_ms); refusing to repeat its IDs",
                )
            self._clock.sleep_ns(behind)
        return lease, started + self._ttl_ns - self._margin_ns

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._renew_s):
            try:
                self._renew_once()
            except RegistryUnavailable as exc:
                self.renewal_failures += 1
                self.last_error = str(exc)
            except Exception as exc:  # keep renewing whatever happens; report it
                self.renewal_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"

    def _renew_once(self) -> None:
        lease = self._lease
        if lease is not None:
            started = self._monotonic()
            if self._registry.renew(lease, self._last_ns()):
                with self._swap:
                    if self._lease is lease and not self._stop.is_set():
                        self._deadline = started + self._ttl_ns - self._margin_ns
                self.renewals += 1
                return
            # Not ours any more (expired on the registry, maybe taken): stop at once.
            with self._swap:
                if self._lease is lease:
                    self._deadline = 0
                    self._lease = None
        if self._stop.is_set():
            return
        new_lease, deadline = self._acquire()
        with self._swap:
            if self._stop.is_set():
                self._registry.release(new_lease, 0)
                return
            # The generator keeps its last tick, so IDs on the new node still increase.
            self._generator.reassign_node(new_lease.node)
            self._lease = new_lease
            self._deadline = deadline

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layout={self._layout.name!r}, node={self.node}, "
            f"registry={self._registry!r})"
        )
