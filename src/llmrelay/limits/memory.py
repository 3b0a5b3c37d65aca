"""``MemoryBackend``: the buckets in this process. Every operation runs without an await and under a
thread lock, so it is atomic for asyncio tasks and for event loops in several threads (the configuration
shares one backend per process). ``clock`` is injectable for tests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ._base import BucketSpec, Grant, LimitBackend, amounts_for, refunds_for

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
        self._lock = threading.Lock()

    def level(self, bucket: BucketSpec) -> float:
        """The bucket's level now (units available; below zero after an overdraft)."""
        return self._level(bucket, self._clock())

    def _level(self, bucket: BucketSpec, now: float) -> float:
        if bucket.kind == "concurrency":
            return bucket.limit - len(self._leases.get(bucket.key, ()))
        stored = self._levels.get(bucket.key)
        if stored is None:
            return bucket.limit  # never drawn on, or refilled: full
        level, at = stored
        return min(bucket.limit, level + max(0.0, now - at) * bucket.limit / bucket.window)

    async def acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        with self._lock:
            return self._acquire(buckets, cost)

    def acquire_nowait(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        with self._lock:
            return self._acquire(buckets, cost)

    def settle_nowait(self, grant: Grant, actual: Mapping[str, float] | None) -> bool:
        with self._lock:
            self._give_back_now(grant, refunds_for(grant, actual))
        return True

    def _acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        amounts = amounts_for(buckets, cost)
        wait = 0.0
        now = self._clock()  # one reading for the whole operation
        levels: list[float] = []
        slots = False
        for bucket, amount in zip(buckets, amounts, strict=True):
            level = self._level(bucket, now)
            levels.append(level)
            concurrency = bucket.kind == "concurrency"
            slots = slots or concurrency
            if level + _EPSILON < amount:  # float refill arithmetic: 61 - 1e-14 is 61
                short = self.poll if concurrency else (amount - level) * bucket.window / bucket.limit
                wait = max(wait, short)
        if wait > 0:
            return wait
        lease = f"m{next(self._ids)}" if slots else None
        for bucket, amount, level in zip(buckets, amounts, levels, strict=True):
            if bucket.kind == "concurrency":
                assert lease is not None
                self._leases.setdefault(bucket.key, set()).add(lease)
            else:
                self._levels[bucket.key] = (level - amount, now)
        return Grant(tuple(buckets), amounts, lease)

    async def _give_back(self, grant: Grant, refunds: Sequence[float]) -> None:
        with self._lock:
            self._give_back_now(grant, refunds)

    def _give_back_now(self, grant: Grant, refunds: Sequence[float]) -> None:
        now = self._clock()
        for bucket, refund in zip(grant.buckets, refunds, strict=True):
            if bucket.kind == "concurrency":
                held = self._leases.get(bucket.key)
                if held is not None and grant.lease is not None:
                    held.discard(grant.lease)
            elif refund:
                self._levels[bucket.key] = (min(bucket.limit, self._level(bucket, now) + refund), now)
