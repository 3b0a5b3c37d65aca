"""``RedisBackend``: the buckets in Redis, so every process using the same server shares one budget.

One Lua script (registered once per backend, run with ``EVALSHA``) does every operation atomically on
the server:

- ``acquire`` reads every bucket, refilled to the server's own clock (``redis.call('TIME')``: no
  process's clock matters), and consumes all of them or none; it answers the milliseconds to wait when
  any bucket says no.
- ``give`` adds refunds back to rate buckets (capped at their limits; a negative refund is an overdraft)
  and removes the grant's lease from concurrency buckets.

Every key written gets a ``PEXPIRE``: a rate bucket lives until it would have refilled (an absent bucket
reads as full, so expiry changes nothing), a concurrency set until its newest lease expires. A lease is a
member of a sorted set scored by its expiry; expired leases are dropped before counting, so a crashed
process's slot comes back after the bucket's ``window`` (the lease lifetime).

Key names are versioned, ``llmrelay:rl:v1:{scope}:resource`` (the ``prefix``): a release that changes the
script or the stored layout moves to ``v2`` keys, so during a rolling upgrade old and new processes never
read each other's state (each version enforces its own budget until the old processes are gone). The
braces make ``{scope}`` a Redis Cluster hash tag: the buckets of one call live in one slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._base import BucketSpec, Grant, LimitBackend, amounts_for

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SCRIPT", "RedisBackend"]

SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local lease = ARGV[2]
local n = #KEYS
local function level(i, limit, window)
  local h = redis.call('HMGET', KEYS[i], 'v', 't')
  local v = tonumber(h[1])
  if v == nil then return limit end
  local at = tonumber(h[2]) or now
  return math.min(limit, v + math.max(0, now - at) * limit / window)
end
local function store(i, v, limit, window)
  redis.call('HSET', KEYS[i], 'v', tostring(v), 't', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil((limit - v) * window / limit) + 1000)
end
if op == 'acquire' then
  local wait = 0
  local levels = {}
  for i = 1, n do
    local b = 3 + (i - 1) * 4
    local kind, limit, window, amount = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
    if kind == 'c' then
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
      local free = limit - redis.call('ZCARD', KEYS[i])
      levels[i] = free
      if free < amount then wait = math.max(wait, tonumber(ARGV[#ARGV])) end
    else
      local v = level(i, limit, window)
      levels[i] = v
      if v < amount then wait = math.max(wait, math.ceil((amount - v) * window / limit)) end
    end
  end
  if wait > 0 then return wait end
  for i = 1, n do
    local b = 3 + (i - 1) * 4
    local kind, limit, window, amount = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
    if kind == 'c' then
      redis.call('ZADD', KEYS[i], now + window, lease)
      redis.call('PEXPIRE', KEYS[i], window + 1000)
    else
      store(i, levels[i] - amount, limit, window)
    end
  end
  return 0
end
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local kind, limit, window, amount = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  if kind == 'c' then
    redis.call('ZREM', KEYS[i], lease)
  elseif amount ~= 0 then
    store(i, math.min(limit, level(i, limit, window) + amount), limit, window)
  end
end
return 0
"""


def redis_client(url: str | None, client: Redis | None, what: str) -> tuple[Redis, bool]:
    """``client`` as given (not owned), or a new one for ``url`` (owned: the caller closes it); ``what``
    names the caller in the errors."""
    if client is not None:
        return client, False
    if url is None:
        raise ValueError(f"{what} needs a url or a client")
    try:
        from redis.asyncio import Redis as _Redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs redis-py: pip install 'llmrelay[redis]'") from exc
    return _Redis.from_url(url), True


class RedisBackend(LimitBackend):
    """Token buckets and concurrency leases in Redis (see the module docstring).

    ``client`` is a ``redis.asyncio.Redis``; or pass ``url`` (``redis://HOST:PORT/DB``) and the backend
    makes one (and closes it in ``aclose``). ``prefix`` is put before every bucket key. ``poll`` is the
    wait reported when only a concurrency slot is missing.
    """

    VERSION = "v1"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = f"llmrelay:rl:{VERSION}:",
        poll: float = 0.05,
    ) -> None:
        self.client, self._owned = redis_client(url, client, "the Redis rate-limit backend")
        self.prefix = prefix
        self.poll = poll
        self._script: Any = self.client.register_script(SCRIPT)

    def key(self, bucket: BucketSpec) -> str:
        """The Redis key of ``bucket``."""
        return self.prefix + bucket.key

    def _args(self, buckets: Sequence[BucketSpec], amounts: Sequence[float]) -> list[str]:
        args: list[str] = []
        for bucket, amount in zip(buckets, amounts, strict=True):
            args += ["c" if bucket.kind == "concurrency" else "r", repr(bucket.limit)]
            args += [str(max(1, round(bucket.window * 1000))), repr(float(amount))]
        return args

    async def acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        amounts = amounts_for(buckets, cost)
        lease = uuid.uuid4().hex if any(b.kind == "concurrency" for b in buckets) else None
        args = ["acquire", lease or "", *self._args(buckets, amounts), str(max(1, round(self.poll * 1000)))]
        wait_ms = int(await self._script(keys=[self.key(b) for b in buckets], args=args))
        if wait_ms > 0:
            return wait_ms / 1000.0
        return Grant(tuple(buckets), amounts, lease)

    async def _give_back(self, grant: Grant, refunds: Sequence[float]) -> None:
        args = ["give", grant.lease or "", *self._args(grant.buckets, refunds)]
        await self._script(keys=[self.key(b) for b in grant.buckets], args=args)

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()
