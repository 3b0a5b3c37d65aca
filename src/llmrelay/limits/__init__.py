"""Rate-limit backends for ``RateLimited``: one interface (``LimitBackend``), two stores.

``MemoryBackend`` keeps the buckets in this process; ``RedisBackend`` (``llmrelay.limits.redis``, needs the
``redis`` extra) keeps them in Redis so that every process sharing the server shares one budget.
``RedisBreakerStore`` (``llmrelay.limits.breaker_redis``) does the same for routers' circuit breakers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import BucketSpec, Grant, LimitBackend
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .breaker_redis import RedisBreakerStore
    from .redis import RedisBackend

__all__ = ["BucketSpec", "Grant", "LimitBackend", "MemoryBackend", "RedisBackend", "RedisBreakerStore"]


def __getattr__(name: str) -> object:
    # RedisBackend loads on first use, so importing llmrelay.limits never imports redis.
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    if name == "RedisBreakerStore":
        from .breaker_redis import RedisBreakerStore

        return RedisBreakerStore
    raise AttributeError(f"module 'llmrelay.limits' has no attribute {name!r}")
