"""Node leases in Redis: ``SET key token NX PX ttl``, renewed and released by Lua scripts.

Keys (``prefix`` default ``chronoid:``): ``<prefix>node:<n>`` holds the owner token and expires
with the lease; ``<prefix>last:<n>`` (no expiry) holds the previous holder's ``last_ns``;
``<prefix>registry`` (no expiry) the server time the namespace's history began (the
lock-delay's marker: a Redis that lost its data has none). The registry needs Redis's default
``maxmemory-policy noeviction``: an evicted key is a loss the marker cannot see. The
scripts compare the stored token with the caller's before touching anything, so a holder whose
lease expired and was taken cannot renew or release someone else's. Acquisition scans the
node range in one script (atomic, one round trip), starting at a random node; it names keys
it computes, so it needs a single Redis server (or a cluster hash tag in ``prefix``).
"""

from __future__ import annotations

import secrets
from typing import Any

import redis
import redis.exceptions

from chronoid.errors import InvalidArgument, NodeSpaceExhausted, RegistryUnavailable
from chronoid.lease.base import Lease, check_node_range, new_token, node_bounds
from chronoid.redact import redact_dsn

__all__ = ["RedisRegistry"]

# Two passes: first a free node whose previous holder's last_ns has passed, then any free node.
# The lock-delay: <prefix>registry holds the server time (ms) the namespace's history began;
# in a history younger than one TTL any node may have been held before a data loss, so its new
# holder waits until birth + ttl (records made since then prove nothing about that holder).
_ACQUIRE = """
local prefix, token, ttl = ARGV[1], ARGV[5], ARGV[6]
local lo, hi, start = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(ARGV[7])
local size = hi - lo + 1
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local birth = tonumber(redis.call('GET', prefix .. 'registry'))
if not birth then
  redis.call('SET', prefix .. 'registry', now_ms)
  birth = now_ms
end
for pass = 1, 2 do
  for i = 0, size - 1 do
    local node = lo + (start + i) % size
    local key = prefix .. 'node:' .. node
    if redis.call('EXISTS', key) == 0 then
      local last = redis.call('GET', prefix .. 'last:' .. node)
      if pass == 2 or not last or tonumber(last) <= now then
        if redis.call('SET', key, token, 'NX', 'PX', ttl) then
          -- Every node waits while the history is young: a record made inside it (this
          -- acquisition's, a release during a lock-delay) says nothing of a holder from
          -- before the loss.
          local settle = math.max(0, birth + tonumber(ttl) - now_ms)
          if not last then
            redis.call('SET', prefix .. 'last:' .. node, '0')
          end
          return {node, last or '0', settle}
        end
      end
    end
  end
end
return {-1, '0', 0}
"""

# last_ns is kept as the larger of the stored and the given value, compared as decimal strings
# (Lua numbers are doubles: 19-digit ns values would lose precision).
_KEEP_MAX = """
local function keep_max(key, value)
  local cur = redis.call('GET', key)
  if not cur or #cur < #value or (#cur == #value and cur < value) then
    redis.call('SET', key, value)
  end
end
"""

_RENEW = (
    _KEEP_MAX
    + """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  keep_max(KEYS[2], ARGV[3])
  return 1
end
return 0
"""
)

# Release sets last_ns (the holder's renewals recorded ahead of what it used; the caller
# passes at least what the previous holder recorded).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RedisRegistry:
    """Node leases in one Redis server.

    Args:
        url: a redis-py URL (``redis://host:port/db``).
        prefix: key prefix, so several fleets (or tests) share a server.
        node_range: hand out only nodes ``lo..hi`` (inclusive).
        timeout_s: socket timeout (s): a dead server fails a call after this long.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "chronoid:",
        node_range: tuple[int, int] | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument(f"prefix must be a non-empty str, got {prefix!r}")
        if not timeout_s > 0:
            raise InvalidArgument(f"timeout_s must be > 0, got {timeout_s!r}")
        self._range = check_node_range(node_range)
        self._prefix = prefix
        self._url = redact_dsn(url)  # for messages: never the password
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
        except ValueError as exc:
            raise InvalidArgument(f"bad Redis URL {self._url!r}: {exc}") from exc
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)

    def _keys(self, node: int) -> list[str]:
        return [f"{self._prefix}node:{node}", f"{self._prefix}last:{node}"]

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.exceptions.RedisError as exc:
            raise RegistryUnavailable(f"Redis registry {self._url}: {exc}") from exc

    def acquire(self, max_node: int, ttl_ms: int, now_ns: int) -> Lease:
        lo, hi = node_bounds(max_node, self._range)
        token = new_token()
        start = secrets.randbelow(hi - lo + 1)
        node, last, settle = self._call(
            self._acquire, [], [self._prefix, lo, hi, start, token, ttl_ms, now_ns]
        )
        if int(node) < 0:
            raise NodeSpaceExhausted(
                f"all {hi - lo + 1} nodes {lo}..{hi} under {self._prefix!r} in Redis "
                f"{self._url} are leased"
            )
        return Lease(int(node), token, ttl_ms, int(last), settle_ms=int(settle))

    def renew(self, lease: Lease, last_ns: int) -> bool:
        args = [lease.token, lease.ttl_ms, str(last_ns)]
        return bool(self._call(self._renew, self._keys(lease.node), args))

    def release(self, lease: Lease, last_ns: int) -> None:
        last = max(last_ns, lease.not_before_ns)
        self._call(self._release, self._keys(lease.node), [lease.token, str(last)])

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisRegistry({self._url!r}, prefix={self._prefix!r})"
