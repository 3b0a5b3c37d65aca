"""``MemoryBackend``: the buckets in this process. Every operation runs without an await and under a
thread lock, so it is atomic for asyncio tasks and for event loops in several threads (the configuration
shares one backend per process). ``clock`` is injectable for tests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ._base import BucketSpec, Grant, LimitBackend

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
        # ``refunds_for`` and ``_give_back_now`` in one pass (this runs on every call).
        with self._lock:
            now = self._clock()
            levels = self._levels
            for bucket, amount in zip(grant.buckets, grant.amounts, strict=True):
                if bucket.kind == "concurrency":
                    held = self._leases.get(bucket.key)
                    if held is not None and grant.lease is not None:
                        held.discard(grant.lease)
                    continue
                if actual is None:
                    refund = amount if bucket.refundable else 0.0
                elif bucket.resource in actual:
                    used = actual[bucket.resource]
                    refund = amount - (used if used > 0.0 else 0.0)
                else:
                    continue
                if refund:
                    level = self._level(bucket, now) + refund
                    levels[bucket.key] = (bucket.limit if level > bucket.limit else level, now)
        return True

    def _acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        # One pass that checks every bucket (the amounts of ``amounts_for``, inlined: this runs on every
        # call), then one that consumes them: all or nothing.
        now = self._clock()  # one reading for the whole operation
        levels = self._levels
        wait = 0.0
        amounts: list[float] = []
        after: list[float] = []
        slots = False
        for bucket in buckets:
            if bucket.kind == "concurrency":
                slots = True
                amounts.append(1.0)
                after.append(0.0)
                if bucket.limit - len(self._leases.get(bucket.key, ())) + _EPSILON < 1.0:
                    wait = max(wait, self.poll)
                continue
            want = cost.get(bucket.resource, 0.0)
            amount = bucket.limit if want > bucket.limit else want if want > 0.0 else 0.0
            stored = levels.get(bucket.key)
            if stored is None:
                level = bucket.limit  # never drawn on, or refilled: full
            else:
                level = stored[0] + (now - stored[1] if now > stored[1] else 0.0) * bucket.limit / bucket.window
                if level > bucket.limit:
                    level = bucket.limit
            amounts.append(float(amount))
            after.append(level - amount)
            if level + _EPSILON < amount:  # float refill arithmetic: 61 - 1e-14 is 61
                wait = max(wait, (amount - level) * bucket.window / bucket.limit)
        if wait > 0:
            return wait
        lease = f"m{next(self._ids)}" if slots else None
        for bucket, left in zip(buckets, after, strict=True):
            if bucket.kind == "concurrency":
                assert lease is not None
                self._leases.setdefault(bucket.key, set()).add(lease)
            else:
                levels[bucket.key] = (left, now)
        return Grant(tuple(buckets), tuple(amounts), lease)

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
