"""Sequencer failover on etcd: leader election with fencing tokens, and fenced watermarks.

Keys (``<prefix><cluster>/...``):

- ``leader``: JSON ``{"member", "address"}`` of the current leader, attached to an etcd lease.
  A member becomes leader by granting a lease and creating the key in a transaction that
  succeeds only if the key does not exist. The key's *create revision* is the term's fencing
  token: etcd's revision counter only grows, so every new term gets a larger token than any
  earlier one (as long as the cluster is not rebuilt from an older backup).
- ``wm/<name>``: the watermark of sequence ``name``, a decimal integer. Every ``reserve`` is one
  transaction that compares the leader key's create revision with the caller's token, so a
  deposed leader's write fails (:class:`LeadershipLost`) instead of landing.

Each ``reserve`` also compares the watermark key's mod revision with the last one this object
saw. A request that timed out may still be in flight inside etcd (a follower forwarding it to
the raft leader); without that compare it could land after a later ``reserve`` and lower the
watermark. With it, a stale write fails, and ``reserve`` re-reads and retries its own write.

etcd leases are whole seconds and etcd raises short ones to its minimum, 1.5 election timeouts
(2 s with the default 1 s election timeout); a store-side lease longer than the member's own
term only delays failover, never overlaps two terms. Every request goes to one endpoint with a
timeout; on a connection error, a timeout or an "unavailable" answer (no leader, leader
changed) the same call tries the next endpoint, so one call takes at most about ``timeout``
times the number of endpoints. Reads are linearizable: a member cut off from its quorum holds
them until its own request timeout (about 5 s), so the client timeout is what bounds a call.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import threading
from typing import Any

from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import (
    ConnectionFailedError,
    ConnectionTimeoutError,
    Etcd3Exception,
    InternalServerError,
)

from chronoid.errors import InvalidArgument, LeadershipLost, StoreUnavailable

__all__ = ["DEFAULT_PORT", "EtcdCoordinator", "parse_etcd_endpoints"]

DEFAULT_PORT = 2379
_API_PATH = "/v3/"
_MAX_CAS_TRIES = 4


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def _check_host_port(host: object, port: object, where: str) -> tuple[str, int]:
    if not isinstance(host, str) or not host or any(c in host for c in "/@?# ,"):
        raise InvalidArgument(f"{where}: host must be a host name or IP address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidArgument(f"{where}: port must be an int in 1..65535, got {port!r}")
    return host, port


def parse_etcd_endpoints(text: str) -> list[tuple[str, int]]:
    """Endpoints from ``"etcd://h1:2379,h2:2380"`` or ``"h1:2379,h2:2380"``.

    A missing port is etcd's client port, 2379; IPv6 addresses go in brackets
    (``[::1]:2379``); an item may also carry ``http://`` as etcd's own ``--endpoints`` do.

    Raises:
        InvalidArgument: an empty list, an empty item, a bad port, a path, TLS (``https://``,
            not supported) or an endpoint listed twice.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"etcd endpoints are a str, got {type(text).__name__}")
    body = text.strip()
    if body[:7].lower() == "etcd://":
        body = body[7:]
    if not body:
        raise InvalidArgument(
            f"no etcd endpoint in {text!r}: expected etcd://host:port[,host:port...]"
        )
    endpoints: list[tuple[str, int]] = []
    for raw in body.split(","):
        item = raw.strip()
        if item[:8].lower() == "https://":
            raise InvalidArgument(f"etcd endpoint {item!r}: TLS (https) is not supported")
        if item[:7].lower() == "http://":
            item = item[7:]
        item = item.rstrip("/")
        if not item:
            raise InvalidArgument(f"empty etcd endpoint in {text!r} (two commas, or a last one)")
        if any(c in item for c in "/?#"):
            raise InvalidArgument(
                f"etcd endpoint {item!r}: a path or query is not allowed; expected host:port"
            )
        if item.startswith("["):
            close = item.find("]")
            if close < 0:
                raise InvalidArgument(f"etcd endpoint {item!r}: IPv6 address without ']'")
            host, rest = item[1:close], item[close + 1 :]
            if rest and not rest.startswith(":"):
                raise InvalidArgument(f"etcd endpoint {item!r}: expected [address]:port")
            port_text = rest[1:] if rest else ""
        else:
            host, _, port_text = item.partition(":")
        if port_text:
            if not port_text.isdigit():
                raise InvalidArgument(
                    f"etcd endpoint {item!r}: port must be a number in 1..65535, got {port_text!r}"
                )
            port = int(port_text)
        else:
            port = DEFAULT_PORT
        endpoint = _check_host_port(host, port, f"etcd endpoint {item!r}")
        if endpoint in endpoints:
            raise InvalidArgument(f"etcd endpoint {item!r} is listed twice in {text!r}")
        endpoints.append(endpoint)
    return endpoints


def _format_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


class EtcdCoordinator:
    """Leader election and fenced watermarks for a sequencer cluster, in etcd (v3 JSON API).

    Safe to share between threads: each thread gets its own HTTP session per endpoint.

    Args:
        endpoints: the etcd members' client endpoints, ``[(host, port), ...]``; calls start at
            the last endpoint that answered and move on when one does not.
        cluster: the sequencer cluster's name; clusters with different names share nothing.
        timeout: per-request timeout (s); a call gives up after one try per endpoint.
        prefix: key prefix, so several deployments (or tests) share an etcd cluster.
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        cluster: str = "default",
        *,
        timeout: float = 1.0,
        prefix: str = "/chronoid/sequencer/",
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
            checked.append(_check_host_port(endpoint[0], endpoint[1], f"endpoint {endpoint!r}"))
        if len(set(checked)) != len(checked):
            raise InvalidArgument(f"an endpoint is listed twice in {checked!r}")
        if not isinstance(cluster, str) or not cluster or "/" in cluster:
            raise InvalidArgument(f"cluster must be a non-empty str without '/', got {cluster!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < math.inf
        ):
            raise InvalidArgument(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"prefix must be a non-empty str, got {prefix!r}")
        self.endpoints = checked
        self.cluster = cluster
        self.timeout = float(timeout)
        self.prefix = prefix
        self.description = (
            f"etcd {','.join(_format_host(h, p) for h, p in checked)} cluster {cluster!r}"
        )
        self._leader_key = f"{prefix}{cluster}/leader"
        self._wm_prefix = f"{prefix}{cluster}/wm/"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Etcd3Client] = []  # every thread's, to close them
        self._closed = False
        self._next = 0  # index of the endpoint to try first
        self._revisions: dict[str, int] = {}  # watermark name -> last mod revision seen

    # -- transport ------------------------------------------------------------------------------

    def _thread_clients(self) -> list[Etcd3Client]:
        # requests.Session is not documented as thread-safe: one set of sessions per thread.
        clients: list[Etcd3Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            with self._lock:
                if self._closed:
                    raise StoreUnavailable(f"{self.description}: the coordinator is closed")
                clients = [
                    Etcd3Client(host=h, port=p, timeout=self.timeout, api_path=_API_PATH)
                    for h, p in self.endpoints
                ]
                self._clients.extend(clients)
            self._local.clients = clients
        return clients

    def _post(self, path: str, body: dict[str, Any], *, missing_ok: bool = False) -> Any:
        """POST to the first endpoint that answers; ``None`` for "not found" if ``missing_ok``.

        Raises:
            StoreUnavailable: no endpoint answered, or etcd refused the request.
        """
        if self._closed:
            raise StoreUnavailable(f"{self.description}: the coordinator is closed")
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
                failures.append(f"{_format_host(client.host, client.port)}: {exc.reason}")
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
        raise StoreUnavailable(
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
                reason = f"no answer within {self.timeout:g} s"
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
            raise StoreUnavailable(f"{self.description}: etcd refused {path}: {message}") from exc
        except ValueError as exc:  # not JSON: something other than etcd on that port
            raise _Unreachable(f"answer is not JSON ({exc})") from exc

    def _txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]],
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._post(
            "/kv/txn", {"compare": compare, "success": success, "failure": failure}
        )
        return result

    def _fence(self, token: int) -> dict[str, Any]:
        return {
            "key": _b64(self._leader_key),
            "result": "EQUAL",
            "target": "CREATE",
            "create_revision": token,
        }

    def _range_leader(self) -> dict[str, Any]:
        return {"request_range": {"key": _b64(self._leader_key)}}

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
            except StoreUnavailable:
                holder = {}
            now = (
                f"member {holder.get('member')!r} at {holder.get('address')!r} holds term "
                f"{int(kvs[0].get('create_revision', 0))} now"
            )
        return LeadershipLost(f"{self.description}: {what} refused for term {token}: {now}")

    def _holder(self, kv: dict[str, Any]) -> dict[str, Any]:
        raw = _unb64(kv.get("value", ""))
        try:
            holder = json.loads(raw)
        except ValueError:
            holder = None
        if not isinstance(holder, dict):
            raise StoreUnavailable(
                f"{self.description}: {self._leader_key!r} holds {raw!r}, not the JSON "
                "{member, address} chronoid writes; is another program using this prefix?"
            )
        return holder

    # -- election -------------------------------------------------------------------------------

    def campaign(self, member: str, address: str, ttl: float) -> int | None:
        """Become leader if no member is: return the fencing token, or ``None`` if one is.

        Grants an etcd lease of ``ceil(ttl)`` s (etcd may raise it to its minimum) and creates
        the leader key on it, holding ``{"member", "address"}``. The token is the key's create
        revision, larger than every earlier term's.

        Raises:
            InvalidArgument: an empty ``member`` or ``address``, a ``ttl`` that is not > 0 s.
            StoreUnavailable: etcd could not be reached (the new lease is revoked, best effort).
        """
        if not isinstance(member, str) or not member:
            raise InvalidArgument(f"member must be a non-empty str, got {member!r}")
        if not isinstance(address, str) or not address:
            raise InvalidArgument(f"address must be a non-empty str, got {address!r}")
        lease_s = _lease_seconds(ttl)
        grant = self._post("/lease/grant", {"TTL": lease_s, "ID": 0})
        lease_id = int(grant["ID"])
        key = _b64(self._leader_key)
        value = _b64(json.dumps({"member": member, "address": address}, sort_keys=True))
        try:
            result = self._txn(
                [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
                [
                    {"request_put": {"key": key, "value": value, "lease": lease_id}},
                    self._range_leader(),
                ],
                [self._range_leader()],
            )
        except StoreUnavailable:
            self._revoke_quietly(lease_id)
            raise
        if result.get("succeeded"):
            kvs = self._kvs(result, 1)
            return int(kvs[0]["create_revision"])
        kvs = self._kvs(result, 0)
        if kvs and int(kvs[0].get("lease", 0)) == lease_id:
            # Our own put, applied by an attempt whose answer was lost before the retry.
            return int(kvs[0]["create_revision"])
        self._revoke_quietly(lease_id)
        return None

    def renew(self, token: int, ttl: float) -> None:
        """Check that term ``token`` is still current and refresh its lease (one keep-alive).

        The lease returns to the TTL granted by :meth:`campaign`; ``ttl`` is only checked.

        Raises:
            LeadershipLost: the leader key is gone or belongs to a newer term, or its lease
                expired.
            StoreUnavailable: etcd could not be reached or has no quorum.
        """
        _check_token(token)
        _lease_seconds(ttl)
        result = self._post("/kv/range", {"key": _b64(self._leader_key)})
        kvs: list[dict[str, Any]] = result.get("kvs", [])
        if not kvs or int(kvs[0].get("create_revision", 0)) != token:
            raise self._lost(token, kvs, "renewal")
        lease_id = int(kvs[0].get("lease", 0))
        answer = self._post("/lease/keepalive", {"ID": lease_id}) if lease_id else {}
        if int(answer.get("result", {}).get("TTL", 0)) <= 0:
            raise LeadershipLost(
                f"{self.description}: renewal refused for term {token}: its lease "
                f"{lease_id:x} has expired"
            )

    def resign(self, token: int) -> None:
        """End term ``token`` now (delete the leader key if still ours, revoke its lease).

        Nothing happens if the term is already over.

        Raises:
            StoreUnavailable: etcd could not be reached (the lease then expires on its own).
        """
        _check_token(token)
        key = _b64(self._leader_key)
        result = self._txn(
            [self._fence(token)],
            [self._range_leader(), {"request_delete_range": {"key": key}}],
            [],
        )
        if result.get("succeeded"):
            kvs = self._kvs(result, 0)
            lease_id = int(kvs[0].get("lease", 0)) if kvs else 0
            if lease_id:
                self._post("/lease/revoke", {"ID": lease_id}, missing_ok=True)

    def leader(self) -> str | None:
        """The advertised address of the current leader, or ``None`` if there is none.

        Raises:
            StoreUnavailable: etcd could not be reached, or the key holds something else.
        """
        result = self._post("/kv/range", {"key": _b64(self._leader_key)})
        kvs: list[dict[str, Any]] = result.get("kvs", [])
        if not kvs:
            return None
        address = self._holder(kvs[0]).get("address")
        return address if isinstance(address, str) and address else None

    def _revoke_quietly(self, lease_id: int) -> None:
        # Only tidiness: an unused lease holds no key and expires by itself.
        with contextlib.suppress(StoreUnavailable):
            self._post("/lease/revoke", {"ID": lease_id}, missing_ok=True)

    # -- watermarks -----------------------------------------------------------------------------

    def load(self, token: int) -> dict[str, int]:
        """Every watermark of the cluster, ``{name: high}``, read under term ``token``.

        Raises:
            LeadershipLost: ``token`` is not the current term.
            StoreUnavailable: etcd could not be reached, or a value is not an integer.
        """
        _check_token(token)
        result = self._txn(
            [self._fence(token)],
            [
                {
                    "request_range": {
                        "key": _b64(self._wm_prefix),
                        "range_end": _prefix_end(self._wm_prefix),
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
            name = _unb64(kv["key"])[len(self._wm_prefix) :]
            marks[name] = self._parse_mark(name, kv)
            revisions[name] = int(kv.get("mod_revision", 0))
        with self._lock:
            self._revisions = revisions
        return marks

    def _parse_mark(self, name: str, kv: dict[str, Any]) -> int:
        raw = _unb64(kv.get("value", ""))
        try:
            return int(raw)
        except ValueError:
            raise StoreUnavailable(
                f"{self.description}: watermark of {name!r} is {raw!r}, not an integer"
            ) from None

    def reserve(self, token: int, name: str, high: int) -> None:
        """Store ``high`` as the watermark of ``name``, only if term ``token`` is current.

        One etcd transaction, linearizable, that also checks the watermark has not changed
        since this object last saw it (so a stale retry cannot land after a newer value).

        Raises:
            InvalidArgument: an empty ``name`` or a ``high`` that is not an int.
            LeadershipLost: a newer term exists or this one expired; nothing was written.
            StoreUnavailable: etcd could not be reached; the write may or may not have landed.
        """
        _check_token(token)
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"name must be a non-empty str, got {name!r}")
        if isinstance(high, bool) or not isinstance(high, int):
            raise InvalidArgument(f"high must be an int, got {high!r}")
        key = _b64(self._wm_prefix + name)
        value = str(high)
        with self._lock:
            expected = self._revisions.get(name, 0)
        for _ in range(_MAX_CAS_TRIES):
            result = self._txn(
                [
                    self._fence(token),
                    {"key": key, "result": "EQUAL", "target": "MOD", "mod_revision": expected},
                ],
                [{"request_put": {"key": key, "value": _b64(value)}}],
                [self._range_leader(), {"request_range": {"key": key}}],
            )
            if result.get("succeeded"):
                self._saw(name, int(result["header"]["revision"]))
                return
            leader = self._kvs(result, 0)
            if not leader or int(leader[0].get("create_revision", 0)) != token:
                raise self._lost(token, leader, "reservation")
            marks = self._kvs(result, 1)
            expected = int(marks[0].get("mod_revision", 0)) if marks else 0
            if marks and _unb64(marks[0].get("value", "")) == value:
                self._saw(name, expected)  # an earlier attempt of this call landed
                return
        raise StoreUnavailable(
            f"{self.description}: the watermark of {name!r} changed under term {token} "
            f"{_MAX_CAS_TRIES} times during one reservation; is another process using it?"
        )

    def _saw(self, name: str, revision: int) -> None:
        with self._lock:
            if revision > self._revisions.get(name, 0):
                self._revisions[name] = revision

    def close(self) -> None:
        """Close every HTTP session; later calls raise :class:`StoreUnavailable`."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.session.close()

    def __repr__(self) -> str:
        return f"EtcdCoordinator({self.description!r}, prefix={self.prefix!r})"


def _lease_seconds(ttl: float) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
        raise InvalidArgument(f"ttl must be a number of seconds > 0, got {ttl!r}")
    return max(1, math.ceil(ttl))


def _check_token(token: int) -> None:
    if isinstance(token, bool) or not isinstance(token, int) or token <= 0:
        raise InvalidArgument(
            f"token must be a fencing token from campaign() (an int > 0), got {token!r}"
        )
