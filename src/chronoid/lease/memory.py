"""An in-process node registry: for unit tests and for several generators in one process."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from chronoid.errors import InvalidArgument, NodeSpaceExhausted
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds

__all__ = ["MemoryRegistry"]


class MemoryRegistry:
    """Leases kept in a dict, expiring by ``now_ns`` (default: the monotonic clock, ns).

    Args:
        node_range: hand out only nodes ``lo..hi`` (inclusive); default every node.
        now_ns: the clock leases expire by; pass a ManualClock's ``now_ns`` in tests.
    """

    def __init__(
        self,
        *,
        node_range: tuple[int, int] | None = None,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._range = check_node_range(node_range)
        if not callable(now_ns):
            raise InvalidArgument(f"now_ns must be callable, got {now_ns!r}")
        self._now = now_ns
        self._lock = threading.Lock()
        self._holders: dict[int, tuple[str, int]] = {}  # node -> (token, expires at ns)
        self._last: dict[int, int] = {}

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        size = hi - lo + 1
        start = secrets.randbelow(size)
        with self._lock:
            now = self._now()
            free = [
                lo + (start + i) % size
                for i in range(size)
                if self._holders.get(lo + (start + i) % size, ("", -1))[1] <= now
            ]
            if not free:
                raise NodeSpaceExhausted(
                    f"all {size} nodes {lo}..{hi} of the in-memory registry are leased"
                )
            ready = [n for n in free if self._last.get(n, 0) <= now_ns]
            node = (ready or free)[0]
            token = new_token()
            self._holders[node] = (token, now + ttl_ms * 1_000_000)
            return Lease(node, token, ttl_ms, self._last.get(node, 0))

    def renew(self, lease: Lease, last_ns: int) -> bool:
        with self._lock:
            now = self._now()
            token, expires = self._holders.get(lease.node, ("", -1))
            if token != lease.token or expires <= now:
                return False
            self._holders[lease.node] = (token, now + lease.ttl_ms * 1_000_000)
            self._last[lease.node] = max(self._last.get(lease.node, 0), last_ns)
            return True

    def release(self, lease: Lease, last_ns: int) -> None:
        with self._lock:
            token, _ = self._holders.get(lease.node, ("", -1))
            if token == lease.token:
                del self._holders[lease.node]
                # Set, not raised: the holder's renewals recorded ahead of what it used.
                self._last[lease.node] = max(last_ns, lease.not_before_ns)

    def close(self) -> None:
        """Nothing to close."""

    def __repr__(self) -> str:
        return f"MemoryRegistry(node_range={self._range}, held={len(self._holders)})"
