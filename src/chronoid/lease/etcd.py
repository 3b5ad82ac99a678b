"""Node leases in etcd, through its v3 JSON gateway (the ``etcd3gw`` client).

Each acquisition grants an etcd lease (TTL in whole seconds, rounded up; etcd raises TTLs below
its minimum, about 2 s) and claims ``<prefix>node/<n>`` in a transaction that succeeds only if
the key does not exist (``create_revision == 0``), attaching the key to the lease. Renewal is a
transaction that checks the stored token and records ``<prefix>last/<n>`` followed by a lease
keep-alive; release checks the token, records ``last`` and deletes the key, then revokes the
lease. The lock-delay's marker: ``<prefix>history/born`` (kept) and, for one TTL after it
is made, ``<prefix>history/settling`` (on an etcd lease); a node acquired while ``settling``
exists waits one full TTL (a ``last`` record made in that time proves nothing).

etcd 3.4 serves the gateway at ``/v3/``; etcd3gw would discover that with one more
request per client, so chronoid passes ``api_path='/v3/'``.

The ``etcd3`` gRPC package is not used: it has not been released since 2020 and does not import
with protobuf 4 or later.
"""

from __future__ import annotations

import base64
import secrets
import threading
from typing import Any

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception

from chronoid.errors import InvalidArgument, NodeSpaceExhausted, RegistryUnavailable
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds

__all__ = ["EtcdRegistry"]

_MAX_CLAIM_TRIES = 64


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


class EtcdRegistry:
    """Node leases in etcd (v3 API over HTTP/JSON).

    Args:
        host, port: the etcd client endpoint.
        prefix: key prefix, so several fleets (or tests) share a cluster.
        node_range: hand out only nodes ``lo..hi`` (inclusive).
        timeout_s: HTTP timeout per request (s).
        api_path: the gateway's path (``/v3/`` for etcd 3.4 and later).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2379,
        *,
        prefix: str = "/chronoid/",
        node_range: tuple[int, int] | None = None,
        timeout_s: float = 2.0,
        api_path: str = "/v3/",
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"prefix must be a non-empty str, got {prefix!r}")
        if not timeout_s > 0:
            raise InvalidArgument(f"timeout_s must be > 0, got {timeout_s!r}")
        self._range = check_node_range(node_range)
        self._prefix = prefix
        self._where = f"etcd {host}:{port}"
        self._host, self._port, self._timeout_s, self._api_path = host, port, timeout_s, api_path
        self._client = Etcd3Client(host=host, port=port, timeout=timeout_s, api_path=api_path)
        self._inherited: Etcd3Client | None = None
        # requests.Session is not documented as thread-safe: one call at a time.
        self._lock = threading.Lock()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            with self._lock:
                return self._client.post(self._client.get_url(path), json=body)
        except (Etcd3Exception, requests.RequestException, ValueError) as exc:
            raise RegistryUnavailable(f"{self._where}: {type(exc).__name__}: {exc}") from exc

    def _node_key(self, node: int) -> str:
        return f"{self._prefix}node/{node}"

    def _last_key(self, node: int) -> str:
        return f"{self._prefix}last/{node}"

    def _range_of(self, sub: str) -> dict[str, bytes]:
        start = self._prefix + sub
        result = self._post("/kv/range", {"key": _b64(start), "range_end": _prefix_end(start)})
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in result.get("kvs", [])
        }

    def _history_is_young(self, ttl_s: int) -> bool:
        # The lock-delay's marker: history/born exists as long as the data does; for one TTL
        # after it is made, history/settling (on an etcd lease) says the history is too young
        # to vouch for nodes it has no record of.
        history = self._range_of("history/")
        if f"{self._prefix}history/born" in history:
            return f"{self._prefix}history/settling" in history
        grant = self._post("/lease/grant", {"TTL": ttl_s, "ID": 0})
        born = _b64(f"{self._prefix}history/born")
        txn = {
            "compare": [{"key": born, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
            "success": [
                {"request_put": {"key": born, "value": _b64("1")}},
                {
                    "request_put": {
                        "key": _b64(f"{self._prefix}history/settling"),
                        "value": _b64("1"),
                        "lease": int(grant["ID"]),
                    }
                },
            ],
            "failure": [],
        }
        self._post("/kv/txn", txn)
        return True

    def _create_record(self, node: int) -> None:
        key = _b64(self._last_key(node))
        txn = {
            "compare": [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
            "success": [{"request_put": {"key": key, "value": _b64("0")}}],
            "failure": [],
        }
        self._post("/kv/txn", txn)

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        size = hi - lo + 1
        young = self._history_is_young(max(1, -(-ttl_ms // 1000)))
        held = self._range_of("node/")
        lasts = {k: int(v or b"0") for k, v in self._range_of("last/").items()}
        start = secrets.randbelow(size)
        free = [
            n
            for n in (lo + (start + i) % size for i in range(size))
            if self._node_key(n) not in held
        ]
        if not free:
            raise NodeSpaceExhausted(
                f"all {size} nodes {lo}..{hi} under {self._prefix!r} in {self._where} are leased"
            )
        free.sort(key=lambda n: lasts.get(self._last_key(n), 0) > now_ns)  # stable
        ttl_s = max(1, -(-ttl_ms // 1000))
        grant = self._post("/lease/grant", {"TTL": ttl_s, "ID": 0})
        lease_id = int(grant["ID"])
        token = new_token()
        for node in free[:_MAX_CLAIM_TRIES]:
            key = _b64(self._node_key(node))
            txn = {
                "compare": [
                    {"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}
                ],
                "success": [
                    {"request_put": {"key": key, "value": _b64(token), "lease": lease_id}},
                    {"request_range": {"key": _b64(self._last_key(node))}},
                ],
                "failure": [],
            }
            result = self._post("/kv/txn", txn)
            if result.get("succeeded"):
                kvs = result["responses"][1]["response_range"].get("kvs", [])
                last = int(base64.b64decode(kvs[0].get("value", "")) or b"0") if kvs else 0
                if not kvs:
                    self._create_record(node)
                # A young history vouches for no node, recorded or not: records made inside
                # it say nothing of a holder from before a loss.
                settle = ttl_ms if young else 0
                return Lease(node, token, ttl_ms, last, lease_id, settle)
        self._revoke(lease_id)
        raise NodeSpaceExhausted(
            f"{self._where}: {_MAX_CLAIM_TRIES} free-looking nodes were all claimed by others "
            "first; try again"
        )

    def _token_txn(self, lease: Lease, ops: list[dict[str, Any]]) -> bool:
        key = _b64(self._node_key(lease.node))
        txn = {
            "compare": [
                {"key": key, "result": "EQUAL", "target": "VALUE", "value": _b64(lease.token)}
            ],
            "success": ops,
            "failure": [],
        }
        return bool(self._post("/kv/txn", txn).get("succeeded"))

    def _last_ops(self, lease: Lease, last_ns: int) -> list[dict[str, Any]]:
        # A holder's own last_ns only grows, and it starts above the previous holder's (it
        # waited for it), so writing it when it is larger keeps the recorded maximum.
        if last_ns <= lease.not_before_ns:
            return []
        return [
            {"request_put": {"key": _b64(self._last_key(lease.node)), "value": _b64(str(last_ns))}}
        ]

    def renew(self, lease: Lease, last_ns: int) -> bool:
        ops = self._last_ops(lease, last_ns)
        probe = [{"request_range": {"key": _b64(self._node_key(lease.node))}}]
        if not self._token_txn(lease, ops or probe):
            return False
        result = self._post("/lease/keepalive", {"ID": lease.handle})
        return int(result.get("result", {}).get("TTL", -1)) > 0

    def release(self, lease: Lease, last_ns: int) -> None:
        # Set, not raised: the holder's renewals recorded ahead of what it used.
        last = max(last_ns, lease.not_before_ns)
        ops = [
            {"request_put": {"key": _b64(self._last_key(lease.node)), "value": _b64(str(last))}},
            {"request_delete_range": {"key": _b64(self._node_key(lease.node))}},
        ]
        self._token_txn(lease, ops)
        self._revoke(lease.handle)

    def after_fork(self) -> None:
        """A new HTTP session for a child made by fork(); the inherited one is left alone."""
        self._inherited = self._client
        self._client = Etcd3Client(
            host=self._host, port=self._port, timeout=self._timeout_s, api_path=self._api_path
        )
        self._lock = threading.Lock()

    def _revoke(self, lease_id: int) -> None:
        self._post("/kv/lease/revoke", {"ID": lease_id})

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.session.close()

    def __repr__(self) -> str:
        return f"EtcdRegistry({self._where!r}, prefix={self._prefix!r})"
