"""The lease value and the two store protocols (Mode C's node registry, the sequencer's
election store)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chronoid.errors import InvalidArgument, NodeSpaceExhausted

__all__ = [
    "Coordinator",
    "Lease",
    "NodeRegistry",
    "check_node_range",
    "new_token",
    "node_bounds",
]


@dataclass(frozen=True, slots=True)
class Lease:
    """A node held by one generator until its lease expires.

    ``token`` proves ownership to the registry; ``ttl_ms`` is the lease length granted (ms);
    ``not_before_ns`` is what the previous holder recorded: the first instant (ns since the
    Unix epoch) at which this holder may issue IDs (0 when the node was never used);
    ``handle`` is backend data (the etcd lease ID); ``settle_ms`` is the lock-delay: how long
    after the grant this holder must wait before issuing (ms), 0 when the registry vouches
    for the node's history (its own history is older than one TTL), up to ``ttl_ms`` when it
    cannot (it is new or lost its data; a node record made since then proves nothing).
    """

    node: int
    token: str
    ttl_ms: int
    not_before_ns: int = 0
    handle: int = 0
    settle_ms: int = 0


@runtime_checkable
class NodeRegistry(Protocol):
    """A place that hands out each node to at most one live holder at a time.

    Transport failures raise :class:`~chronoid.errors.RegistryUnavailable`; a full node
    space raises :class:`~chronoid.errors.NodeSpaceExhausted`.
    """

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        """Lease a free node in 0..max_node (and the registry's range) for ``ttl_ms`` ms.

        ``now_ns`` (the caller's wall clock) lets the registry prefer nodes whose previous
        holder's ``last_ns`` has passed, so the new holder need not wait.
        """
        ...

    def renew(self, lease: Lease, last_ns: int) -> bool:
        """Extend the lease by its TTL and record ``last_ns`` (kept as the largest recorded);
        False if it is no longer ours."""
        ...

    def release(self, lease: Lease, last_ns: int) -> None:
        """Give the node back, setting ``last_ns`` for the next holder (at least the lease's
        ``not_before_ns``; lower than what renewals recorded ahead, when the holder used less)."""
        ...

    def close(self) -> None:
        """Close connections (the registry's leases stay as they are)."""
        ...

    # Optional: ``after_fork()`` drops connections inherited through fork() without closing
    # them (closing could end the parent's session), so a child can lease a node of its own.


class Coordinator(Protocol):
    """The sequencer's election store: one leader lease per cluster, with a fencing token,
    and the watermarks written under it.

    Every method blocks and may be called from several threads at once. Methods raise
    :class:`~chronoid.errors.LeaseStoreUnavailable` when the store cannot be reached within
    its timeout and :class:`~chronoid.errors.LeadershipLost` when it refuses because the term
    ``token`` is over.
    """

    description: str
    """What the store is, for logs (no passwords)."""

    def campaign(self, member: str, address: str, ttl_ms: int) -> int | None:
        """Take the lease for ``ttl_ms`` ms (store clock) if no live one exists: the new
        term's fencing token, else None."""
        ...

    def renew(self, token: int, ttl_ms: int) -> None:
        """Extend term ``token``'s lease to ``ttl_ms`` ms from now (store clock)."""
        ...

    def resign(self, token: int) -> None:
        """End term ``token`` now so a standby takes over at once (best effort)."""
        ...

    def leader(self) -> str | None:
        """The advertised ``host:port`` of the member holding a live lease, or None."""
        ...

    def load(self, token: int) -> dict[str, int]:
        """Every stored watermark of the cluster by sequence name.

        Not fenced (a store may ignore ``token``): a stale read costs nothing, because no value
        is issued before the term's first fenced :meth:`reserve` succeeds.
        """
        ...

    def reserve(self, token: int, name: str, high: int) -> None:
        """Store watermark ``high`` of ``name`` only if term ``token`` is still live."""
        ...

    def holds_watermarks(self) -> bool:
        """Whether the store holds any watermark of the cluster (an unfenced read, for
        standbys: the evidence that this cluster's store held state before)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def new_token() -> str:
    """A fresh random owner token (128 bits, hex)."""
    return secrets.token_hex(16)


def check_node_range(node_range: tuple[int, int] | None) -> tuple[int, int] | None:
    """Validate a ``(lo, hi)`` node range (inclusive), or None for every node.

    Raises:
        InvalidArgument: not two ints with 0 <= lo <= hi.
    """
    if node_range is None:
        return None
    ok = (
        isinstance(node_range, tuple)
        and len(node_range) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in node_range)
        and 0 <= node_range[0] <= node_range[1]
    )
    if not ok:
        raise InvalidArgument(f"node_range must be (lo, hi) with 0 <= lo <= hi, got {node_range!r}")
    return node_range


def node_bounds(max_node: int, node_range: tuple[int, int] | None) -> tuple[int, int]:
    """The nodes a registry may hand out for a layout with ``max_node``: ``(lo, hi)``.

    Raises:
        NodeSpaceExhausted: the registry's range lies outside the layout's node field.
    """
    lo, hi = node_range if node_range is not None else (0, max_node)
    hi = min(hi, max_node)
    if lo > hi:
        raise NodeSpaceExhausted(
            f"the registry hands out nodes {node_range}, but the layout's nodes are 0..{max_node}"
        )
    return lo, hi
