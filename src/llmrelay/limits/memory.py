"""``MemoryBackend``: the buckets in this process (one event loop; every operation is synchronous
between awaits, so it is atomic for asyncio tasks). ``clock`` is injectable for tests."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence

from ._base import BucketSpec, Grant, LimitBackend, amounts_for

__all__ = ["MemoryBackend"]

_EPSILON = 1e-9


class MemoryBackend(LimitBackend):
    """In-process token buckets and concurrency counters (see ``llmrelay.limits._base``).

    ``poll`` is the wait reported when only a concurrency slot is missing (a slot frees at an unknown
    time, so the caller asks again after ``poll`` seconds).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, poll: float = 0.01) -> None:
        self._clock = clock
        self.poll = poll
        self._levels: dict[str, tuple[float, float]] = {}  # key -> (level, at)
        self._leases: dict[str, set[str]] = {}
        self._ids = itertools.count(1)

    def level(self, bucket: BucketSpec) -> float:
        """The bucket's level now (units available; below zero after an overdraft)."""
        if bucket.kind == "concurrency":
            return bucket.limit - len(self._leases.get(bucket.key, ()))
        now = self._clock()
        level, at = self._levels.get(bucket.key, (bucket.limit, now))
        return min(bucket.limit, level + max(0.0, now - at) * bucket.limit / bucket.window)

    async def acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        amounts = amounts_for(buckets, cost)
        wait = 0.0
        levels = [self.level(b) for b in buckets]
        for bucket, amount, level in zip(buckets, amounts, levels, strict=True):
            if level + _EPSILON < amount:  # float refill arithmetic: 61 - 1e-14 is 61
                short = self.poll if bucket.kind == "concurrency" else (amount - level) * bucket.window / bucket.limit
                wait = max(wait, short)
        if wait > 0:
            return wait
        now = self._clock()
        lease = f"m{next(self._ids)}" if any(b.kind == "concurrency" for b in buckets) else None
        for bucket, amount, level in zip(buckets, amounts, levels, strict=True):
            if bucket.kind == "concurrency":
                assert lease is not None
                self._leases.setdefault(bucket.key, set()).add(lease)
            else:
                self._levels[bucket.key] = (level - amount, now)
        return Grant(tuple(buckets), amounts, lease)

    async def _give_back(self, grant: Grant, refunds: Sequence[float]) -> None:
        now = self._clock()
        for bucket, refund in zip(grant.buckets, refunds, strict=True):
            if bucket.kind == "concurrency":
                held = self._leases.get(bucket.key)
                if held is not None and grant.lease is not None:
                    held.discard(grant.lease)
            elif refund:
                self._levels[bucket.key] = (min(bucket.limit, self.level(bucket) + refund), now)
