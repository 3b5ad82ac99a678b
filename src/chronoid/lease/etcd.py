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

**The lease, written once** (:class:`EtcdLease`): a key created only if absent
(``create_revision == 0``) on a freshly granted etcd lease (whole seconds, rounded up; etcd
raises TTLs below its minimum, about 2 s); renewed by a transaction that checks the holder's
identity, with the caller's extra operations, then one keep-alive; released by a checked
delete, with the caller's operations, then a revoke. The identity is every part the holder
knows (create revision, etcd lease, value), one compare each. The create revision alone would
not do: an etcd that lost its data counts revisions from 1 again, while lease IDs (made from
the member ID and the time) and random values do not come back.

**Mode C**: ``<prefix>node/<n>`` holds the holder's random token; claims read and renewals and
releases write ``<prefix>last/<n>`` (a renewal only over the value its holder last saw, so a
timed-out one landing after a later one cannot lower it). The lock-delay's marker:
``<prefix>history/born`` (kept) and, for one TTL after it is made, ``<prefix>history/settling``
(on an etcd lease); a node acquired while ``settling`` exists waits one full TTL (a
``last`` record made in that time proves nothing). **Failover**: ``<prefix><cluster>/leader``
holds JSON ``{"member", "address"}``; its create revision is the term's fencing token (etcd's
revisions only grow, so each term's is larger, unless the cluster is rebuilt from an older
backup). ``wm/<name>`` holds a watermark; each ``reserve`` is one transaction fenced by the
term and by the mod revision this object last saw, so neither a deposed leader's write nor a
timed-out request still in flight inside etcd can land after a newer value. A store-side lease
longer than the member's term (etcd's minimum TTL) only delays failover.

**The format on etcd is unchanged** from before the lease was written once (keys, values and
their meaning), so that during a rolling upgrade processes of both versions on one etcd see
each other's keys as taken and there are never two holders of a node or two leaders; the
new compares only narrow what a new holder accepts as its own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    "EtcdLease",
    "EtcdRegistry",
    "EtcdTransport",
]

_API_PATH = "/v3/"
_MAX_CAS_TRIES = 4
_MAX_CLAIM_TRIES = 64
_TERMS_KEPT = 8
"""Terms an :class:`EtcdCoordinator` remembers: a caller names only its current term (and a
resignation the store did not hear yet); every term kept, a member that won a term a minute
for a year held half a million. An older term of its own is refused (its etcd lease, part
of its fence, is forgotten), its resignation a no-op."""


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

    def range_prefix(self, prefix: str, **options: Any) -> list[dict[str, Any]]:
        """Every key-value (etcd's JSON, base64) under ``prefix`` (``options``: etcd's own)."""
        body = {"key": b64(prefix), "range_end": prefix_end(prefix), **options}
        result = self.post("/kv/range", body)
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


def put_op(key: str, value: str, lease_id: int = 0) -> dict[str, Any]:
    """The transaction operation "set ``key`` to ``value``" (on etcd lease ``lease_id``)."""
    put: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease_id:
        put["lease"] = lease_id
    return {"request_put": put}


def range_op(key: str) -> dict[str, Any]:
    """The transaction operation "read ``key``"."""
    return {"request_range": {"key": b64(key)}}


def kvs_of(result: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """The key-values read by operation ``index`` of the branch a transaction took."""
    kvs: list[dict[str, Any]] = result["responses"][index]["response_range"].get("kvs", [])
    return kvs


class NotHeld(Exception):
    """The key is no longer the claim: ``kvs`` is the key as it is now ([] when it is gone);
    ``expired``: it still was, but its etcd lease ran out before the keep-alive. Its two
    catchers turn it into ``False`` (Mode C) or :class:`LeadershipLost`; no caller sees it."""

    def __init__(self, kvs: list[dict[str, Any]], *, expired: bool = False) -> None:
        super().__init__("the key is no longer this claim")
        self.kvs = kvs
        self.expired = expired


@dataclass(frozen=True, slots=True)
class EtcdLease:
    """One key held on one etcd lease (see the module's docstring), identified by every part
    its holder knows: ``lease_id`` and ``create_revision`` are 0, and ``value`` None, where it
    does not (a term another object won, a Mode C :class:`Lease`, which keeps no revision).
    """

    key: str
    lease_id: int = 0
    create_revision: int = 0
    value: str | None = None

    @classmethod
    def claim(
        cls, etcd: EtcdTransport, key: str, value: str, lease_id: int, reads: Sequence[str] = ()
    ) -> tuple[EtcdLease | None, list[list[dict[str, Any]]]]:
        """Create ``key`` = ``value`` on etcd lease ``lease_id`` if absent: the claim (None if
        another holds it) and the key-values of ``reads``, read in the same transaction. A put
        whose answer was lost is known on the retry by its lease (no key left on an orphan)."""
        ops = [range_op(key), *map(range_op, reads)]
        result = etcd.txn([absent(key)], [put_op(key, value, lease_id), *ops], ops)
        first = 1 if result.get("succeeded") else 0
        kvs = kvs_of(result, first)
        read = [kvs_of(result, first + 1 + i) for i in range(len(reads))]
        if not kvs or int(kvs[0].get("lease", 0)) != lease_id:
            return None, read
        return cls(key, lease_id, int(kvs[0]["create_revision"]), value), read

    def _parts(self) -> list[tuple[str, str, str]]:
        """(compare target, field of a read key, expected value as etcd's JSON spells it) of
        each known part; 0, None (and an empty value, which chronoid never writes) are not."""
        value = "" if self.value is None else b64(self.value)
        parts = [("CREATE", "create_revision", str(self.create_revision or ""))]
        parts += [("LEASE", "lease", str(self.lease_id or "")), ("VALUE", "value", value)]
        return [part for part in parts if part[2]]

    def fences(self) -> list[dict[str, Any]]:
        """The compares "the key is still this claim", for any transaction under it."""
        key = b64(self.key)
        return [{"key": key, "result": "EQUAL", "target": t, f: v} for t, f, v in self._parts()]

    def holds(self, kvs: list[dict[str, Any]]) -> bool:
        """Whether ``kvs`` (a read of the key) is this claim: :meth:`fences`, checked here."""
        return bool(kvs) and all(str(kvs[0].get(f, "")) == v for _, f, v in self._parts())

    def write(
        self, etcd: EtcdTransport, ops: Sequence[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``ops`` in one fenced transaction: the key as it was (read first) and etcd's answers
        to ``ops``, or :class:`NotHeld`."""
        result = etcd.txn(self.fences(), [range_op(self.key), *ops], [range_op(self.key)])
        kvs = kvs_of(result, 0)
        if not result.get("succeeded"):
            raise NotHeld(kvs)
        return kvs[0], list(result["responses"][1:])

    def renew(
        self, etcd: EtcdTransport, ops: Sequence[dict[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """Check the claim (applying ``ops`` with the check), then refresh its etcd lease once:
        etcd's answers to ``ops``.

        Raises:
            NotHeld: the key is another's or gone, or its lease expired.
            LeaseStoreUnavailable: etcd could not be reached.
        """
        kv, answers = self.write(etcd, ops)
        if not etcd.keep_alive(self.lease_id or int(kv.get("lease", 0))):
            raise NotHeld([kv], expired=True)
        return answers

    def release(self, etcd: EtcdTransport, ops: Sequence[dict[str, Any]] = ()) -> bool:
        """Delete the key if it is still this claim (applying ``ops`` with it), then revoke its
        etcd lease: False if the claim had already ended.

        Raises:
            LeaseStoreUnavailable: etcd could not be reached (the lease then expires by itself).
        """
        delete = {"request_delete_range": {"key": b64(self.key)}}
        try:
            kv, _ = self.write(etcd, [*ops, delete])
        except NotHeld:
            kv = None
        lease_id = self.lease_id or int((kv or {}).get("lease", 0))
        if lease_id:  # ours alone: no other holder's key is on it
            etcd.revoke(lease_id)
        return kv is not None


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
        # (node, token) -> the value of last/<node> this holder last saw (None: no such key):
        # what a renewal's conditional write of it compares against.
        self._records: dict[tuple[int, str], str | None] = {}

    def _claim(self, lease: Lease) -> EtcdLease:
        # The token is random, so (token, etcd lease) names this holder even after a data loss.
        return EtcdLease(f"{self._prefix}node/{lease.node}", lease.handle, value=lease.token)

    def _last_put(self, lease: Lease, last_ns: int) -> dict[str, Any]:
        return put_op(f"{self._prefix}last/{lease.node}", str(last_ns))

    def _last_raise(self, lease: Lease, last_ns: int) -> dict[str, Any]:
        # Written only over the value this holder saw: its own renewal that timed out and lands
        # after a later one finds the record moved on, and writes nothing.
        key = f"{self._prefix}last/{lease.node}"
        seen = self._records.get((lease.node, lease.token))
        compare = (
            absent(key)
            if seen is None
            else {"key": b64(key), "result": "EQUAL", "target": "VALUE", "value": b64(seen)}
        )
        success = [put_op(key, str(last_ns))]
        return {
            "request_txn": {"compare": [compare], "success": success, "failure": [range_op(key)]}
        }

    def _range_of(self, sub: str) -> dict[str, bytes]:
        kvs = self._etcd.range_prefix(self._prefix + sub)
        return {unb64(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in kvs}

    def _history_is_young(self, ttl_ms: int) -> bool:
        # The lock-delay's marker: history/born exists as long as the data does; for one TTL
        # after it is made, history/settling (on an etcd lease) says the history is too young
        # to vouch for nodes it has no record of.
        history = self._range_of("history/")
        born, settling = f"{self._prefix}history/born", f"{self._prefix}history/settling"
        if born in history:
            return settling in history
        lease_id = self._etcd.grant(ttl_ms)
        self._etcd.txn([absent(born)], [put_op(born, "1"), put_op(settling, "1", lease_id)])
        return True

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        size = hi - lo + 1
        young = self._history_is_young(ttl_ms)
        held = self._range_of("node/")
        # Only this fleet's records: a fleet whose prefix lies under ours (<prefix>last/...)
        # has keys in the same range.
        records = f"{self._prefix}last/"
        lasts = {
            k: int(v or b"0")
            for k, v in self._range_of("last/").items()
            if k[len(records) :].isascii() and k[len(records) :].isdigit()
        }
        start = secrets.randbelow(size)
        free = [
            n
            for n in (lo + (start + i) % size for i in range(size))
            if f"{self._prefix}node/{n}" not in held
        ]
        if not free:
            raise NodeSpaceExhausted(
                f"all {size} nodes {lo}..{hi} under {self._prefix!r} in "
                f"{self._etcd.description} are leased"
            )
        free.sort(key=lambda n: lasts.get(f"{self._prefix}last/{n}", 0) > now_ns)  # stable
        lease_id = self._etcd.grant(ttl_ms)
        token = new_token()
        for node in free[:_MAX_CLAIM_TRIES]:
            key, last_key = f"{self._prefix}node/{node}", f"{self._prefix}last/{node}"
            claim, (kvs,) = EtcdLease.claim(self._etcd, key, token, lease_id, [last_key])
            if claim is None:
                continue
            seen = base64.b64decode(kvs[0].get("value", "")).decode() if kvs else "0"
            if not kvs:
                self._etcd.txn([absent(last_key)], [put_op(last_key, "0")])
            self._records[(node, token)] = seen
            last = int(seen or "0")
            # A young history vouches for no node, recorded or not: records made inside it
            # say nothing of a holder from before a loss.
            return Lease(node, token, ttl_ms, last, lease_id, ttl_ms if young else 0)
        self._etcd.revoke(lease_id)
        raise NodeSpaceExhausted(
            f"{self._etcd.description}: {_MAX_CLAIM_TRIES} free-looking nodes were all claimed "
            "by others first; try again"
        )

    def renew(self, lease: Lease, last_ns: int) -> bool:
        # The record is kept as the largest written: a holder's last_ns only grows, but its
        # requests need not land in the order it sent them (one timed out, still in flight,
        # lands after the next), and a lower record lets the next holder start inside ticks
        # this one may still issue. So the write is conditional on the value last seen, and
        # redone over a newer one while that is lower.
        claim = self._claim(lease)
        held = (lease.node, lease.token)
        seen = self._records.get(held)
        try:
            if last_ns <= lease.not_before_ns or (seen and int(seen) >= last_ns):
                claim.renew(self._etcd)
                return True
            answers = claim.renew(self._etcd, [self._last_raise(lease, last_ns)])
            for _ in range(_MAX_CAS_TRIES):
                nested = answers[0]["response_txn"]
                if nested.get("succeeded"):
                    self._records[held] = str(last_ns)
                    return True
                kvs = nested["responses"][0]["response_range"].get("kvs", [])
                now = base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None
                self._records[held] = now
                if now is not None and int(now or "0") >= last_ns:
                    return True
                _, answers = claim.write(self._etcd, [self._last_raise(lease, last_ns)])
        except NotHeld:
            self._records.pop(held, None)
            return False
        raise LeaseStoreUnavailable(
            f"{self._etcd.description}: the record of node {lease.node} changed under its "
            f"holder {_MAX_CAS_TRIES} times during one renewal; is another process using it?"
        )

    def release(self, lease: Lease, last_ns: int) -> None:
        # Set, not raised: the holder's renewals recorded ahead of what it used.
        last = max(last_ns, lease.not_before_ns)
        self._records.pop((lease.node, lease.token), None)
        self._claim(lease).release(self._etcd, [self._last_put(lease, last)])

    def after_fork(self) -> None:
        """New HTTP sessions for a child made by fork(); the inherited ones are left alone."""
        self._etcd.after_fork()

    def close(self) -> None:
        """Close the HTTP sessions."""
        self._etcd.close()

    def __repr__(self) -> str:
        return f"EtcdRegistry({self._etcd.description!r}, prefix={self._prefix!r})"


class EtcdCoordinator:
    """The :class:`~chronoid.lease.base.Coordinator` of a sequencer cluster, in etcd: its
    methods' documents say only what is etcd's. Safe to share between threads.

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
        # The terms this object won last, by token (:data:`_TERMS_KEPT`): a claim also names
        # the etcd lease, which a same-numbered term after a data loss cannot have (a
        # member's value is the same).
        self._terms: dict[int, EtcdLease] = {}
        self._forgotten = 0  # the newest term won here and dropped from _terms since

    def _term(self, token: int) -> EtcdLease:
        _check_token(token)
        term = self._terms.get(token)
        if term is not None:
            return term
        if token <= self._forgotten:
            # Possibly one of ours whose etcd lease is forgotten: fenced by its number alone,
            # a same-numbered term after a data loss would take its writes.
            raise LeadershipLost(
                f"{self.description}: term {token} is over here (this member has won "
                f"{_TERMS_KEPT} newer terms since)"
            )
        return EtcdLease(self._leader_key, create_revision=token)

    def _lost(self, token: int, exc: NotHeld, what: str) -> LeadershipLost:
        kvs = exc.kvs
        if exc.expired:
            lease_id = int(kvs[0].get("lease", 0))
            now = f"its lease {lease_id:x} has expired"
        elif not kvs:
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
        """:meth:`Coordinator.campaign`: the token is the leader key's create revision; an etcd
        lease that won nothing (or whose claim could not be sent) is revoked, best effort."""
        if not isinstance(member, str) or not member:
            raise InvalidArgument(f"member must be a non-empty str, got {member!r}")
        if not isinstance(address, str) or not address:
            raise InvalidArgument(f"address must be a non-empty str, got {address!r}")
        lease_id = self._etcd.grant(ttl_ms)
        value = json.dumps({"member": member, "address": address}, sort_keys=True)
        try:
            claim, _ = EtcdLease.claim(self._etcd, self._leader_key, value, lease_id)
        except LeaseStoreUnavailable:
            self._etcd.revoke_quietly(lease_id)
            raise
        if claim is None:
            self._etcd.revoke_quietly(lease_id)
            return None
        terms = self._terms
        terms[claim.create_revision] = replace(claim, value=None)
        if len(terms) > _TERMS_KEPT:  # only the newest terms are still named by a caller
            oldest = next(iter(terms))
            del terms[oldest]
            self._forgotten = max(self._forgotten, oldest)
        return claim.create_revision

    def renew(self, token: int, ttl_ms: int) -> None:
        """:meth:`Coordinator.renew`: one keep-alive, back to the TTL :meth:`campaign` granted
        (``ttl_ms`` is only checked); :class:`LeadershipLost` says who holds the key now."""
        term = self._term(token)
        lease_seconds(ttl_ms)
        try:
            term.renew(self._etcd)
        except NotHeld as exc:
            raise self._lost(token, exc, "renewal") from None

    def resign(self, token: int) -> None:
        """:meth:`Coordinator.resign`: a fenced delete and a revoke; a term already over is no
        error, and one etcd cannot hear about expires on its own."""
        try:
            term = self._term(token)
        except LeadershipLost:
            return  # over long ago (past _TERMS_KEPT newer terms): nothing to give back
        term.release(self._etcd)

    def leader(self) -> str | None:
        """:meth:`Coordinator.leader`; a key holding something else raises
        :class:`LeaseStoreUnavailable`."""
        result = self._etcd.post("/kv/range", {"key": b64(self._leader_key)})
        kvs: list[dict[str, Any]] = result.get("kvs", [])
        if not kvs:
            return None
        address = self._holder(kvs[0]).get("address")
        return address if isinstance(address, str) and address else None

    # -- watermarks -----------------------------------------------------------------------------

    def load(self, token: int) -> dict[str, int]:
        """:meth:`Coordinator.load`, fenced here all the same (one transaction)."""
        term = self._term(token)
        marks_range = {"key": b64(self._wm_prefix), "range_end": prefix_end(self._wm_prefix)}
        result = self._etcd.txn(
            term.fences(), [{"request_range": marks_range}], [range_op(self._leader_key)]
        )
        if not result.get("succeeded"):
            raise self._lost(token, NotHeld(kvs_of(result, 0)), "load")
        marks: dict[str, int] = {}
        revisions: dict[str, int] = {}
        for kv in kvs_of(result, 0):
            name = unb64(kv["key"])[len(self._wm_prefix) :]
            marks[name] = self._parse_mark(name, kv)
            revisions[name] = int(kv.get("mod_revision", 0))
        with self._lock:
            self._revisions = revisions
        return marks

    def holds_watermarks(self) -> bool:
        """:meth:`Coordinator.holds_watermarks`: one range read, keys only."""
        return bool(self._etcd.range_prefix(self._wm_prefix, limit=1, keys_only=True))

    def _parse_mark(self, name: str, kv: dict[str, Any]) -> int:
        raw = unb64(kv.get("value", ""))
        try:
            return int(raw)
        except ValueError:
            raise LeaseStoreUnavailable(
                f"{self.description}: watermark of {name!r} is {raw!r}, not an integer"
            ) from None

    def reserve(self, token: int, name: str, high: int) -> None:
        """:meth:`Coordinator.reserve`: one transaction, fenced by the term and by the mark's
        last mod revision seen here (a stale retry cannot land after a newer value); after
        :class:`LeaseStoreUnavailable` the write may or may not have landed."""
        term = self._term(token)
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"name must be a non-empty str, got {name!r}")
        if isinstance(high, bool) or not isinstance(high, int):
            raise InvalidArgument(f"high must be an int, got {high!r}")
        key, value = self._wm_prefix + name, str(high)
        with self._lock:
            expected = self._revisions.get(name, 0)
        for _ in range(_MAX_CAS_TRIES):
            unchanged = {
                "key": b64(key),
                "result": "EQUAL",
                "target": "MOD",
                "mod_revision": expected,
            }
            result = self._etcd.txn(
                [*term.fences(), unchanged],
                [put_op(key, value)],
                [range_op(self._leader_key), range_op(key)],
            )
            if result.get("succeeded"):
                self._saw(name, int(result["header"]["revision"]))
                return
            leader = kvs_of(result, 0)
            if not term.holds(leader):
                raise self._lost(token, NotHeld(leader), "reservation")
            marks = kvs_of(result, 1)
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
