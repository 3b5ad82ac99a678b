"""Leases in etcd, through its v3 JSON gateway (the ``etcd3gw`` client): one transport with
endpoint failover, the Mode C node registry and the sequencer's election store on it.

**Transport.** Every request goes to one endpoint with a timeout; on a connection error, a
timeout or an "unavailable" answer (no leader, leader changed) the same call tries the next
endpoint, so one call takes at most about ``timeout_s`` times the number of endpoints. Reads
are linearizable: a member cut off from its quorum holds them until its own request timeout
(about 5 s), so the client timeout is what bounds a call. etcd 3.4 serves the gateway at
``/v3/``; etcd3gw would discover that with one more request per client, so chronoid passes it.
The ``etcd3`` gRPC package is not used: it has not been released since 2020 and does not
import with protobuf 4 or later.

**Node leases (Mode C).** Each acquisition grants an etcd lease (TTL in whole seconds, rounded
up; etcd raises TTLs below its minimum, about 2 s) and claims ``<prefix>node/<n>`` in a
transaction that succeeds only if the key does not exist (``create_revision == 0``), attaching
the key to the lease. Renewal is a transaction that checks the stored token and records
``<prefix>last/<n>`` followed by a lease keep-alive; release checks the token, records
``last`` and deletes the key, then revokes the lease. The lock-delay's marker:
``<prefix>history/born`` (kept) and, for one TTL after it is made, ``<prefix>history/settling``
(on an etcd lease); a node acquired while ``settling`` exists waits one full TTL (a ``last``
record made in that time proves nothing).

**Leader lease (sequencer failover).** Keys ``<prefix><cluster>/...``: ``leader`` holds JSON
``{"member", "address"}`` of the current leader, attached to an etcd lease; a member becomes
leader by creating it in a transaction that succeeds only if the key does not exist. The key's
*create revision* is the term's fencing token: etcd's revision counter only grows, so every new
term gets a larger token than any earlier one (as long as the cluster is not rebuilt from an
older backup). An etcd that lost its data counts revisions from 1 again, so every fence also
compares the leader key's etcd lease with the one the term was won on (etcd makes lease IDs
from its member ID and the time, so they do not start again): a member paused across the loss
cannot take its successor's same-numbered term. ``wm/<name>`` holds the watermark of sequence
``name``; every ``reserve`` is one transaction that compares the leader key's create revision
(and lease) with the caller's term, so a deposed leader's write fails (:class:`LeadershipLost`)
instead of landing. Each ``reserve`` also compares the watermark key's mod revision with the
last one this object saw: a request that timed out may still be in flight inside etcd and could
otherwise land after a later ``reserve`` and lower the watermark; with the compare a stale
write fails, and ``reserve`` re-reads and retries its own write. A store-side lease longer than
the member's own term (etcd's minimum TTL) only delays failover, never overlaps two terms.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import secrets
import threading
from typing import Any

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import (
    ConnectionFailedError,
    ConnectionTimeoutError,
    Etcd3Exception,
    InternalServerError,
)

from chronoid.endpoints import check_host_port, format_host
from chronoid.errors import (
    InvalidArgument,
    LeadershipLost,
    LeaseStoreUnavailable,
    NodeSpaceExhausted,
)
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds

__all__ = [
    "EtcdCoordinator",
    "EtcdRegistry",
    "EtcdTransport",
]

_API_PATH = "/v3/"
_MAX_CAS_TRIES = 4
_MAX_CLAIM_TRIES = 64


def b64(text: str) -> str:
    """``text`` as etcd's JSON gateway carries keys and values (base64 of UTF-8)."""
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    """The inverse of :func:`b64`."""
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """The ``range_end`` (base64) that makes a range request cover every key under ``prefix``."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def lease_seconds(ttl_ms: int) -> int:
    """An etcd lease TTL (s) for ``ttl_ms``: etcd leases are whole seconds, rounded up."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or not ttl_ms > 0:
        raise InvalidArgument(f"ttl_ms must be an int > 0 ms, got {ttl_ms!r}")
    return math.ceil(ttl_ms / 1000)


class _Unreachable(Exception):
    """One endpoint did not answer usefully; the caller tries the next one.

    ``quorum_suspect``: a timeout or "no leader", the signs of a member without its quorum.
    """

    def __init__(self, reason: str, *, quorum_suspect: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.quorum_suspect = quorum_suspect


def _suspects_quorum(message: str) -> bool:
    return any(sign in message for sign in ("timed out", "deadline", "no leader"))


def _etcd_message(exc: Etcd3Exception) -> str:
    """etcd's own words from an HTTP error answer, else the exception's text."""
    detail = exc.detail_text or ""
    try:
        body = json.loads(detail)
    except ValueError:
        return detail.strip() or str(exc) or type(exc).__name__
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # streaming calls (lease keep-alive) nest it
            return str(error.get("message", error))
        return str(body.get("message") or error or body)
    return detail.strip()


class EtcdTransport:
    """POSTs to the first of ``endpoints`` that answers, starting at the last one that did.

    Safe to share between threads: each thread gets its own HTTP session per endpoint
    (``requests.Session`` is not documented as thread-safe). :attr:`description`, the
    endpoints and ``what`` (no passwords), starts every error message. Failures raise
    :class:`~chronoid.errors.LeaseStoreUnavailable`.
    """

    def __init__(
        self, endpoints: list[tuple[str, int]], *, timeout_s: float, what: str = ""
    ) -> None:
        if isinstance(endpoints, str | bytes) or not isinstance(endpoints, list | tuple):
            raise InvalidArgument(
                f"endpoints must be a list of (host, port) pairs, got {endpoints!r} "
                "(parse a string with parse_etcd_endpoints)"
            )
        if not endpoints:
            raise InvalidArgument("endpoints is empty: give at least one etcd (host, port)")
        checked: list[tuple[str, int]] = []
        for endpoint in endpoints:
            if not isinstance(endpoint, tuple | list) or len(endpoint) != 2:
                raise InvalidArgument(
                    f"each endpoint must be a (host, port) pair, got {endpoint!r}"
                )
            checked.append(check_host_port(endpoint[0], endpoint[1], f"endpoint {endpoint!r}"))
        if len(set(checked)) != len(checked):
            raise InvalidArgument(f"an endpoint is listed twice in {checked!r}")
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s < math.inf
        ):
            raise InvalidArgument(f"timeout must be a number of seconds > 0, got {timeout_s!r}")
        self.endpoints = checked
        self.timeout_s = float(timeout_s)
        self.description = f"etcd {','.join(format_host(h, p) for h, p in checked)}{what}"
        self.closed = False
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Etcd3Client] = []  # every thread's, to close them
        self._inherited: list[Etcd3Client] = []  # a fork's parent's, never closed here
        self._next = 0  # index of the endpoint to try first

    def _thread_clients(self) -> list[Etcd3Client]:
        clients: list[Etcd3Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            with self._lock:
                if self.closed:
                    raise LeaseStoreUnavailable(f"{self.description}: the client is closed")
                clients = [
                    Etcd3Client(host=h, port=p, timeout=self.timeout_s, api_path=_API_PATH)
                    for h, p in self.endpoints
                ]
                self._clients.extend(clients)
            self._local.clients = clients
        return clients

    def post(self, path: str, body: dict[str, Any], *, missing_ok: bool = False) -> Any:
        """POST to the first endpoint that answers; ``None`` for "not found" if ``missing_ok``.

        Raises:
            LeaseStoreUnavailable: no endpoint answered, or etcd refused the request.
        """
        if self.closed:
            raise LeaseStoreUnavailable(f"{self.description}: the client is closed")
        clients = self._thread_clients()
        first = self._next
        failures: list[str] = []
        quorum_suspect = False
        for step in range(len(clients)):
            index = (first + step) % len(clients)
            client = clients[index]
            try:
                result = self._post_one(client, path, body, missing_ok)
            except _Unreachable as exc:
                failures.append(f"{format_host(client.host, client.port)}: {exc.reason}")
                quorum_suspect = quorum_suspect or exc.quorum_suspect
                continue
            self._next = index
            return result
        hint = (
            "; a member that has lost its quorum (a majority of members up and connected) "
            "holds every request, so check that most etcd members are running"
            if quorum_suspect
            else ""
        )
        raise LeaseStoreUnavailable(
            f"{self.description}: no etcd endpoint answered {path}: {'; '.join(failures)}{hint}"
        )

    def _post_one(
        self, client: Etcd3Client, path: str, body: dict[str, Any], missing_ok: bool
    ) -> Any:
        try:
            return client.post(client.get_url(path), json=body)
        except ConnectionTimeoutError as exc:
            detail = exc.detail_text or ""
            if not detail.lstrip().startswith("{"):  # our own timeout, not an HTTP 408/504
                reason = f"no answer within {self.timeout_s:g} s"
                raise _Unreachable(reason, quorum_suspect=True) from exc
            raise _Unreachable(_etcd_message(exc), quorum_suspect=True) from exc
        except ConnectionFailedError as exc:
            detail = exc.detail_text or ""
            if detail.lstrip().startswith("{"):  # HTTP 503: no leader, leader changed, ...
                message = _etcd_message(exc)
                raise _Unreachable(message, quorum_suspect=_suspects_quorum(message)) from exc
            if "Connection refused" in detail:
                raise _Unreachable("connection refused") from exc
            raise _Unreachable(detail[:200] or type(exc).__name__) from exc
        except InternalServerError as exc:
            # "context deadline exceeded": the member could not commit in time (no quorum).
            message = _etcd_message(exc)
            raise _Unreachable(message, quorum_suspect=_suspects_quorum(message)) from exc
        except Etcd3Exception as exc:
            message = _etcd_message(exc)
            if missing_ok and "not found" in message:
                return None
            raise LeaseStoreUnavailable(
                f"{self.description}: etcd refused {path}: {message}"
            ) from exc
        except requests.RequestException as exc:  # any other transport failure
            raise _Unreachable(f"{type(exc).__name__}: {exc}"[:200]) from exc
        except ValueError as exc:  # not JSON: something other than etcd on that port
            raise _Unreachable(f"answer is not JSON ({exc})") from exc

    def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One transaction: ``success`` if every ``compare`` holds, else ``failure``."""
        body = {"compare": compare, "success": success, "failure": failure or []}
        result: dict[str, Any] = self.post("/kv/txn", body)
        return result

    def range_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Every key-value (etcd's JSON, base64) under ``prefix``."""
        result = self.post("/kv/range", {"key": b64(prefix), "range_end": prefix_end(prefix)})
        kvs: list[dict[str, Any]] = result.get("kvs", [])
        return kvs

    def grant(self, ttl_ms: int) -> int:
        """A new etcd lease of ``ttl_ms`` (rounded up to whole seconds): its ID."""
        return int(self.post("/lease/grant", {"TTL": lease_seconds(ttl_ms), "ID": 0})["ID"])

    def keep_alive(self, lease_id: int) -> bool:
        """Refresh etcd lease ``lease_id`` once: False if it has expired."""
        answer = self.post("/lease/keepalive", {"ID": lease_id}) if lease_id else {}
        return int(answer.get("result", {}).get("TTL", 0)) > 0

    def revoke(self, lease_id: int) -> None:
        """Revoke etcd lease ``lease_id`` (and the keys on it); an unknown one is no error."""
        self.post("/lease/revoke", {"ID": lease_id}, missing_ok=True)

    def revoke_quietly(self, lease_id: int) -> None:
        """:meth:`revoke`, best effort: an unused lease holds no key and expires by itself."""
        with contextlib.suppress(LeaseStoreUnavailable):
            self.revoke(lease_id)

    def after_fork(self) -> None:
        """New HTTP sessions for a child made by fork(); the inherited ones are left alone."""
        self._inherited.extend(self._clients)
        self._clients = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every HTTP session; later calls raise :class:`LeaseStoreUnavailable`."""
        with self._lock:
            self.closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.session.close()


def absent(key: str) -> dict[str, Any]:
    """The transaction compare "``key`` does not exist"."""
    return {"key": b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": 0}


class EtcdRegistry:
    """Node leases in etcd (v3 API over HTTP/JSON).

    Args:
        endpoints: the etcd members' client endpoints, ``[(host, port), ...]`` (see
            :func:`parse_etcd_endpoints`); a call moves on when one does not answer.
        prefix: key prefix, so several fleets (or tests) share a cluster.
        node_range: hand out only nodes ``lo..hi`` (inclusive).
        timeout_s: HTTP timeout per request (s).
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        *,
        prefix: str = "/chronoid/",
        node_range: tuple[int, int] | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"prefix must be a non-empty str, got {prefix!r}")
        self._range = check_node_range(node_range)
        self._prefix = prefix
        self._etcd = EtcdTransport(endpoints, timeout_s=timeout_s)

    def _node_key(self, node: int) -> str:
        return f"{self._prefix}node/{node}"

    def _last_key(self, node: int) -> str:
        return f"{self._prefix}last/{node}"

    def _range_of(self, sub: str) -> dict[str, bytes]:
        kvs = self._etcd.range_prefix(self._prefix + sub)
        return {unb64(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in kvs}

    def _history_is_young(self, ttl_ms: int) -> bool:
        # The lock-delay's marker: history/born exists as long as the data does; for one TTL
        # after it is made, history/settling (on an etcd lease) says the history is too young
        # to vouch for nodes it has no record of.
        history = self._range_of("history/")
        born = f"{self._prefix}history/born"
        if born in history:
            return f"{self._prefix}history/settling" in history
        settling = self._etcd.grant(ttl_ms)
        self._etcd.txn(
            [absent(born)],
            [
                {"request_put": {"key": b64(born), "value": b64("1")}},
                {
                    "request_put": {
                        "key": b64(f"{self._prefix}history/settling"),
                        "value": b64("1"),
                        "lease": settling,
                    }
                },
            ],
        )
        return True

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        size = hi - lo + 1
        young = self._history_is_young(ttl_ms)
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
                f"all {size} nodes {lo}..{hi} under {self._prefix!r} in "
                f"{self._etcd.description} are leased"
            )
        free.sort(key=lambda n: lasts.get(self._last_key(n), 0) > now_ns)  # stable
        lease_id = self._etcd.grant(ttl_ms)
        token = new_token()
        for node in free[:_MAX_CLAIM_TRIES]:
            key, last_key = self._node_key(node), self._last_key(node)
            result = self._etcd.txn(
                [absent(key)],
                [
                    {"request_put": {"key": b64(key), "value": b64(token), "lease": lease_id}},
                    {"request_range": {"key": b64(last_key)}},
                ],
            )
            if result.get("succeeded"):
                kvs = result["responses"][1]["response_range"].get("kvs", [])
                last = int(base64.b64decode(kvs[0].get("value", "")) or b"0") if kvs else 0
                if not kvs:
                    put = {"request_put": {"key": b64(last_key), "value": b64("0")}}
                    self._etcd.txn([absent(last_key)], [put])
                # A young history vouches for no node, recorded or not: records made inside
                # it say nothing of a holder from before a loss.
                settle = ttl_ms if young else 0
                return Lease(node, token, ttl_ms, last, lease_id, settle)
        self._etcd.revoke(lease_id)
        raise NodeSpaceExhausted(
            f"{self._etcd.description}: {_MAX_CLAIM_TRIES} free-looking nodes were all claimed "
            "by others first; try again"
        )

    def _token_txn(self, lease: Lease, ops: list[dict[str, Any]]) -> bool:
        key = b64(self._node_key(lease.node))
        mine = {"key": key, "result": "EQUAL", "target": "VALUE", "value": b64(lease.token)}
        return bool(self._etcd.txn([mine], ops).get("succeeded"))

    def _last_put(self, lease: Lease, last_ns: int) -> dict[str, Any]:
        return {"request_put": {"key": b64(self._last_key(lease.node)), "value": b64(str(last_ns))}}

    def renew(self, lease: Lease, last_ns: int) -> bool:
        # A holder's own last_ns only grows, and it starts above the previous holder's (it
        # waited for it), so writing it when it is larger keeps the recorded maximum.
        if last_ns > lease.not_before_ns:
            ops = [self._last_put(lease, last_ns)]
        else:
            ops = [{"request_range": {"key": b64(self._node_key(lease.node))}}]
        return self._token_txn(lease, ops) and self._etcd.keep_alive(lease.handle)

    def release(self, lease: Lease, last_ns: int) -> None:
        # Set, not raised: the holder's renewals recorded ahead of what it used.
        last = max(last_ns, lease.not_before_ns)
        delete = {"request_delete_range": {"key": b64(self._node_key(lease.node))}}
        self._token_txn(lease, [self._last_put(lease, last), delete])
        self._etcd.revoke(lease.handle)

    def after_fork(self) -> None:
        """New HTTP sessions for a child made by fork(); the inherited ones are left alone."""
        self._etcd.after_fork()

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._etcd.close()

    def __repr__(self) -> str:
        return f"EtcdRegistry({self._etcd.description!r}, prefix={self._prefix!r})"


class EtcdCoordinator:
    """Leader election and fenced watermarks for a sequencer cluster, in etcd (v3 JSON API).

    Safe to share between threads (see :class:`EtcdTransport`).

    Args:
        endpoints: the etcd members' client endpoints, ``[(host, port), ...]``; calls start at
            the last endpoint that answered and move on when one does not.
        cluster: the sequencer cluster's name; clusters with different names share nothing.
        timeout_s: per-request timeout (s); a call gives up after one try per endpoint.
        prefix: key prefix, so several deployments (or tests) share an etcd cluster.
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        cluster: str = "default",
        *,
        timeout_s: float = 1.0,
        prefix: str = "/chronoid/sequencer/",
    ) -> None:
        if not isinstance(cluster, str) or not cluster or "/" in cluster:
            raise InvalidArgument(f"cluster must be a non-empty str without '/', got {cluster!r}")
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"prefix must be a non-empty str, got {prefix!r}")
        self._etcd = EtcdTransport(endpoints, timeout_s=timeout_s, what=f" cluster {cluster!r}")
        self.cluster = cluster
        self.prefix = prefix
        self.description = self._etcd.description
        self._leader_key = f"{prefix}{cluster}/leader"
        self._wm_prefix = f"{prefix}{cluster}/wm/"
        self._lock = threading.Lock()
        self._revisions: dict[str, int] = {}  # watermark name -> last mod revision seen
        # The etcd lease of every term this object won, by token: create revisions start again
        # at 1 in an etcd that lost its data, so a token alone could name a successor's term.
        self._term_leases: dict[int, int] = {}

    def _fences(self, token: int) -> list[dict[str, Any]]:
        """The compares "term ``token`` is live": the leader key's create revision and, for a
        term this object won, its etcd lease (lease IDs do not start again after a data loss)."""
        key = b64(self._leader_key)
        fences = [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": token}]
        lease_id = self._term_leases.get(token)
        if lease_id is not None:
            fences.append({"key": key, "result": "EQUAL", "target": "LEASE", "lease": lease_id})
        return fences

    def _is_term(self, token: int, kvs: list[dict[str, Any]]) -> bool:
        """Whether the leader key in ``kvs`` is term ``token`` (the one this object won)."""
        if not kvs or int(kvs[0].get("create_revision", 0)) != token:
            return False
        lease_id = self._term_leases.get(token)
        return lease_id is None or int(kvs[0].get("lease", 0)) == lease_id

    def _won(self, token: int, lease_id: int) -> int:
        self._term_leases[token] = lease_id
        return token

    def _range_leader(self) -> dict[str, Any]:
        return {"request_range": {"key": b64(self._leader_key)}}

    @staticmethod
    def _kvs(result: dict[str, Any], index: int) -> list[dict[str, Any]]:
        responses = result.get("responses", [])
        kvs: list[dict[str, Any]] = responses[index]["response_range"].get("kvs", [])
        return kvs

    def _lost(self, token: int, kvs: list[dict[str, Any]], what: str) -> LeadershipLost:
        if not kvs:
            now = "no member is leader now (the lease expired or the leader resigned)"
        else:
            try:
                holder = self._holder(kvs[0])
            except LeaseStoreUnavailable:
                holder = {}
            now = (
                f"member {holder.get('member')!r} at {holder.get('address')!r} holds term "
                f"{int(kvs[0].get('create_revision', 0))} now"
            )
            if int(kvs[0].get("create_revision", 0)) == token:
                now += " (a term of the same number on another etcd lease: etcd lost its data)"
        return LeadershipLost(f"{self.description}: {what} refused for term {token}: {now}")

    def _holder(self, kv: dict[str, Any]) -> dict[str, Any]:
        raw = unb64(kv.get("value", ""))
        try:
            holder = json.loads(raw)
        except ValueError:
            holder = None
        if not isinstance(holder, dict):
            raise LeaseStoreUnavailable(
                f"{self.description}: {self._leader_key!r} holds {raw!r}, not the JSON "
                "{member, address} chronoid writes; is another program using this prefix?"
            )
        return holder

    # -- election -------------------------------------------------------------------------------

    def campaign(self, member: str, address: str, ttl_ms: int) -> int | None:
        """Become leader if no member is: return the fencing token, or ``None`` if one is.

        Grants an etcd lease of ``ttl_ms`` rounded up to whole seconds (etcd may raise it to
        its minimum) and creates the leader key on it, holding ``{"member", "address"}``. The
        token is the key's create revision, larger than every earlier term's.

        Raises:
            InvalidArgument: an empty ``member`` or ``address``, a ``ttl_ms`` that is not > 0.
            LeaseStoreUnavailable: etcd could not be reached (the new lease is revoked, best
                effort).
        """
        if not isinstance(member, str) or not member:
            raise InvalidArgument(f"member must be a non-empty str, got {member!r}")
        if not isinstance(address, str) or not address:
            raise InvalidArgument(f"address must be a non-empty str, got {address!r}")
        lease_id = self._etcd.grant(ttl_ms)
        key = b64(self._leader_key)
        value = b64(json.dumps({"member": member, "address": address}, sort_keys=True))
        try:
            result = self._etcd.txn(
                [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
                [
                    {"request_put": {"key": key, "value": value, "lease": lease_id}},
                    self._range_leader(),
                ],
                [self._range_leader()],
            )
        except LeaseStoreUnavailable:
            self._etcd.revoke_quietly(lease_id)
            raise
        if result.get("succeeded"):
            kvs = self._kvs(result, 1)
            return self._won(int(kvs[0]["create_revision"]), lease_id)
        kvs = self._kvs(result, 0)
        if kvs and int(kvs[0].get("lease", 0)) == lease_id:
            # Our own put, applied by an attempt whose answer was lost before the retry.
            return self._won(int(kvs[0]["create_revision"]), lease_id)
        self._etcd.revoke_quietly(lease_id)
        return None

    def renew(self, token: int, ttl_ms: int) -> None:
        """Check that term ``token`` is still current and refresh its lease (one keep-alive).

        The lease returns to the TTL granted by :meth:`campaign`; ``ttl_ms`` is only checked.

        Raises:
            LeadershipLost: the leader key is gone or belongs to a newer term, or its lease
                expired.
            LeaseStoreUnavailable: etcd could not be reached or has no quorum.
        """
        _check_token(token)
        lease_seconds(ttl_ms)
        result = self._etcd.post("/kv/range", {"key": b64(self._leader_key)})
        kvs: list[dict[str, Any]] = result.get("kvs", [])
        if not self._is_term(token, kvs):
            raise self._lost(token, kvs, "renewal")
        lease_id = int(kvs[0].get("lease", 0))
        if not self._etcd.keep_alive(lease_id):
            raise LeadershipLost(
                f"{self.description}: renewal refused for term {token}: its lease "
                f"{lease_id:x} has expired"
            )

    def resign(self, token: int) -> None:
        """End term ``token`` now (delete the leader key if still ours, revoke its lease).

        Nothing happens if the term is already over.

        Raises:
            LeaseStoreUnavailable: etcd could not be reached (the lease then expires on its own).
        """
        _check_token(token)
        key = b64(self._leader_key)
        result = self._etcd.txn(
            self._fences(token),
            [self._range_leader(), {"request_delete_range": {"key": key}}],
            [],
        )
        if result.get("succeeded"):
            kvs = self._kvs(result, 0)
            lease_id = int(kvs[0].get("lease", 0)) if kvs else 0
            if lease_id:
                self._etcd.revoke(lease_id)

    def leader(self) -> str | None:
        """The advertised address of the current leader, or ``None`` if there is none.

        Raises:
            LeaseStoreUnavailable: etcd could not be reached, or the key holds something else.
        """
        result = self._etcd.post("/kv/range", {"key": b64(self._leader_key)})
        kvs: list[dict[str, Any]] = result.get("kvs", [])
        if not kvs:
            return None
        address = self._holder(kvs[0]).get("address")
        return address if isinstance(address, str) and address else None

    # -- watermarks -----------------------------------------------------------------------------

    def load(self, token: int) -> dict[str, int]:
        """Every watermark of the cluster, ``{name: high}``, read under term ``token``.

        Raises:
            LeadershipLost: ``token`` is not the current term.
            LeaseStoreUnavailable: etcd could not be reached, or a value is not an integer.
        """
        _check_token(token)
        result = self._etcd.txn(
            self._fences(token),
            [
                {
                    "request_range": {
                        "key": b64(self._wm_prefix),
                        "range_end": prefix_end(self._wm_prefix),
                    }
                }
            ],
            [self._range_leader()],
        )
        if not result.get("succeeded"):
            raise self._lost(token, self._kvs(result, 0), "load")
        marks: dict[str, int] = {}
        revisions: dict[str, int] = {}
        for kv in self._kvs(result, 0):
            name = unb64(kv["key"])[len(self._wm_prefix) :]
            marks[name] = self._parse_mark(name, kv)
            revisions[name] = int(kv.get("mod_revision", 0))
        with self._lock:
            self._revisions = revisions
        return marks

    def holds_watermarks(self) -> bool:
        """Whether any watermark key of the cluster exists (one range read, keys only).

        Raises:
            LeaseStoreUnavailable: etcd could not be reached.
        """
        body = {
            "key": b64(self._wm_prefix),
            "range_end": prefix_end(self._wm_prefix),
            "limit": 1,
            "keys_only": True,
        }
        result = self._etcd.post("/kv/range", body)
        return bool(result.get("kvs"))

    def _parse_mark(self, name: str, kv: dict[str, Any]) -> int:
        raw = unb64(kv.get("value", ""))
        try:
            return int(raw)
        except ValueError:
            raise LeaseStoreUnavailable(
                f"{self.description}: watermark of {name!r} is {raw!r}, not an integer"
            ) from None

    def reserve(self, token: int, name: str, high: int) -> None:
        """Store ``high`` as the watermark of ``name``, only if term ``token`` is current.

        One etcd transaction, linearizable, that also checks the watermark has not changed
        since this object last saw it (so a stale retry cannot land after a newer value).

        Raises:
            InvalidArgument: an empty ``name`` or a ``high`` that is not an int.
            LeadershipLost: a newer term exists or this one expired; nothing was written.
            LeaseStoreUnavailable: etcd could not be reached; the write may or may not have landed.
        """
        _check_token(token)
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"name must be a non-empty str, got {name!r}")
        if isinstance(high, bool) or not isinstance(high, int):
            raise InvalidArgument(f"high must be an int, got {high!r}")
        key = b64(self._wm_prefix + name)
        value = str(high)
        with self._lock:
            expected = self._revisions.get(name, 0)
        for _ in range(_MAX_CAS_TRIES):
            result = self._etcd.txn(
                [
                    *self._fences(token),
                    {"key": key, "result": "EQUAL", "target": "MOD", "mod_revision": expected},
                ],
                [{"request_put": {"key": key, "value": b64(value)}}],
                [self._range_leader(), {"request_range": {"key": key}}],
            )
            if result.get("succeeded"):
                self._saw(name, int(result["header"]["revision"]))
                return
            leader = self._kvs(result, 0)
            if not self._is_term(token, leader):
                raise self._lost(token, leader, "reservation")
            marks = self._kvs(result, 1)
            expected = int(marks[0].get("mod_revision", 0)) if marks else 0
            if marks and unb64(marks[0].get("value", "")) == value:
                self._saw(name, expected)  # an earlier attempt of this call landed
                return
        raise LeaseStoreUnavailable(
            f"{self.description}: the watermark of {name!r} changed under term {token} "
            f"{_MAX_CAS_TRIES} times during one reservation; is another process using it?"
        )

    def _saw(self, name: str, revision: int) -> None:
        with self._lock:
            if revision > self._revisions.get(name, 0):
                self._revisions[name] = revision

    def close(self) -> None:
        """Close every HTTP session; later calls raise :class:`LeaseStoreUnavailable`."""
        self._etcd.close()

    def __repr__(self) -> str:
        return f"EtcdCoordinator({self.description!r}, prefix={self.prefix!r})"


def _check_token(token: int) -> None:
    if isinstance(token, bool) or not isinstance(token, int) or token <= 0:
        raise InvalidArgument(
            f"token must be a fencing token from campaign() (an int > 0), got {token!r}"
        )
