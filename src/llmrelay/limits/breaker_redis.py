"""``RedisBreakerStore``: circuit-breaker state in Redis, so every replica's breaker of one name shares it.

The contract is ``llmrelay.wrappers.breaker_store.BreakerStore``; this is its Redis side. One Lua script
(registered once, run with ``EVALSHA``) does each operation atomically on the server, on the server's clock
(``redis.call('TIME')``). Three keys per breaker, all with a ``PEXPIRE``:

- ``llmrelay:cb:v1:{NAME}:open``: ``open_until`` in server milliseconds; it lives ``hold`` ms past the end
  of the open period (the breaker reads as half-open until then, and as closed once it is gone);
- ``llmrelay:cb:v1:{NAME}:probe``: the probe's owner token, set with ``SET NX PX probe_ttl``: exactly one
  caller across all replicas probes, and a replica that dies while probing frees it after ``probe_ttl``;
- ``llmrelay:cb:v1:{NAME}:w``: a hash of counters per time slice of the window (``t<slice>`` outcomes,
  ``f<slice>`` failures), slices older than the window dropped on each count; it expires a window after
  its last write.

The names are versioned (``v1``, as ``llmrelay:rl:v1:`` for the rate limits): a release that changes the
layout moves to ``v2`` keys, and old and new processes never read each other's state. The braces make the
breaker's name a Redis Cluster hash tag, so its three keys sit in one slot (one script touches them all).

The hot path is one round trip per routed request (``admit``); successes are not written on their own:
``CircuitBreaker`` counts them locally and sends them with its next ``admit`` or ``record_failure``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from ..wrappers.breaker_store import SLICES, Admission, BreakerStore, Counts
from .redis import redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SCRIPT", "RedisBreakerStore"]

SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local openk, probek, wink = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local slices = tonumber(ARGV[2])
local function add(window, successes, failures)
  local slice = math.max(1, math.floor(window / slices))
  local idx = math.floor(now / slice)
  if successes + failures > 0 then
    redis.call('HINCRBY', wink, 't' .. idx, successes + failures)
    if failures > 0 then redis.call('HINCRBY', wink, 'f' .. idx, failures) end
    redis.call('PEXPIRE', wink, window + slice)
  end
  local h = redis.call('HGETALL', wink)
  local total, failed = 0, 0
  for i = 1, #h, 2 do
    local at = tonumber(string.sub(h[i], 2))
    if at <= idx - slices then
      redis.call('HDEL', wink, h[i])
    elseif string.sub(h[i], 1, 1) == 't' then
      total = total + tonumber(h[i + 1])
    else
      failed = failed + tonumber(h[i + 1])
    end
  end
  return total, failed
end
if op == 'admit' then
  local untl = tonumber(redis.call('GET', openk))
  if untl == nil then
    local successes = tonumber(ARGV[4])
    if successes > 0 then add(tonumber(ARGV[3]), successes, 0) end
    return {'closed', 0}
  end
  if now < untl then return {'open', untl - now} end
  if redis.call('SET', probek, ARGV[6], 'NX', 'PX', ARGV[5]) then return {'probe', 0} end
  return {'busy', 0}
elseif op == 'fail' then
  if redis.call('EXISTS', openk) == 1 then return {'open', 0, 0} end
  local total, failed = add(tonumber(ARGV[3]), tonumber(ARGV[4]), 1)
  return {'closed', total, failed}
elseif op == 'open' then
  local ms, hold = tonumber(ARGV[3]), tonumber(ARGV[4])
  redis.call('SET', openk, now + ms, 'PX', ms + hold)
  redis.call('DEL', probek, wink)
  return {'open', ms}
elseif op == 'close' then
  redis.call('DEL', openk, probek, wink)
  return {'closed', 0}
elseif op == 'release' then
  if redis.call('GET', probek) == ARGV[3] then redis.call('DEL', probek) end
  return {'released', 0}
end
return redis.error_reply('unknown breaker operation ' .. tostring(op))
"""


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


class RedisBreakerStore(BreakerStore):
    """Breaker state in Redis (see the module docstring).

    ``client`` is a ``redis.asyncio.Redis`` (for example a ``RedisBackend``'s, to share its connections);
    or pass ``url`` and the store makes one (and closes it in ``aclose``). ``probe_ttl``: how long a probe's
    ownership lasts if its verdict never comes.
    """

    VERSION = "v1"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = f"llmrelay:cb:{VERSION}:",
        probe_ttl: float = 30.0,
    ) -> None:
        self.client, self._owned = redis_client(url, client, "the Redis breaker store")
        self.prefix = prefix
        self.probe_ttl = probe_ttl
        self._script: Any = self.client.register_script(SCRIPT)

    def keys(self, name: str) -> list[str]:
        """The Redis keys of breaker ``name``: open-until, probe owner, window counters."""
        base = f"{self.prefix}{{{name}}}:"
        return [base + "open", base + "probe", base + "w"]

    async def _run(self, name: str, op: str, *args: str) -> list[Any]:
        reply = await self._script(keys=self.keys(name), args=[op, str(SLICES), *args])
        return [v.decode() if isinstance(v, bytes) else v for v in reply]

    async def admit(self, name: str, *, window: float, successes: int = 0) -> Admission:
        token = secrets.token_hex(8)
        verdict, open_ms = await self._run(name, "admit", _ms(window), str(successes), _ms(self.probe_ttl), token)
        match verdict:
            case "closed":
                return Admission("closed")
            case "open":
                return Admission("open", int(open_ms) / 1000.0)
            case "probe":
                return Admission("probe", token=token)
            case _:
                return Admission("busy")

    async def record_failure(self, name: str, *, window: float, successes: int = 0) -> Counts:
        verdict, total, failed = await self._run(name, "fail", _ms(window), str(successes))
        return Counts(int(total), int(failed), is_open=verdict == "open")

    async def open(self, name: str, seconds: float, *, hold: float) -> None:
        await self._run(name, "open", _ms(seconds), _ms(hold))

    async def close(self, name: str) -> None:
        await self._run(name, "close")

    async def release_probe(self, name: str, token: str) -> None:
        await self._run(name, "release", token)

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()
