"""``MemoryBackend``: the buckets in this process. Every operation runs without an await and under a
thread lock, so it is atomic for asyncio tasks and for event loops in several threads (the configuration
shares one backend per process). ``clock`` is injectable for tests.

A rate bucket's stored level may sit above its limit: every read caps it (``min(limit, level + refill)``).
So a refund (or a draw put back) is added to the stored level as it is, without reading the clock:
``min(L, min(L, x + e) + r) == min(L, x + e + r)`` for ``r >= 0``, now and at every later read. Only an
overdraft (a negative correction) needs the level now, refill included, before it is subtracted.

This runs around every call, so its path is short: each bucket key has one mutable state (a rate
bucket's level and when it was read; a concurrency bucket's count of slots held), and each tuple of
buckets a caller passes (``RateLimited`` passes the same tuple for a scope every time) is compiled once
into a ``Plan`` (``_memory_plan``): its acquire and settle written out as code over those states and the
buckets' constants. A call then does no lookup and no loop per bucket, and its grant carries the plan,
so settling it does none either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ._base import BucketSpec, Grant, LimitBackend, refunds_for
from ._memory_plan import Held, Level, Plan, Slots

__all__ = ["MemoryBackend"]

_MAX_PLANS = 4096
"""The most compiled bucket tuples kept; past it the cache starts over (the states live on, by key)."""


class MemoryBackend(LimitBackend):
    """In-process token buckets and concurrency counters (see ``llmrelay.limits._base``).

    ``poll`` is the wait reported when only a concurrency slot is missing (a slot frees at an unknown
    time, so the caller asks again after ``poll`` seconds).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, poll: float = 0.01) -> None:
        self._clock = clock
        self.poll = poll
        self._levels: dict[str, Level] = {}
        self._slots: dict[str, Slots] = {}
        self._plans: dict[int, Plan] = {}
        """``id(buckets)`` -> its plan."""
        self._lock = threading.Lock()

    def level(self, bucket: BucketSpec) -> float:
        """The bucket's level now (units available; below zero after an overdraft)."""
        with self._lock:
            if bucket.kind == "concurrency":
                slots = self._slots.get(bucket.key)
                return bucket.limit - (0 if slots is None else slots.held)
            state = self._levels.get(bucket.key)
            if state is None:
                return bucket.limit  # never drawn on: full
            return _refilled(state, bucket.limit, bucket.limit / bucket.window, self._clock())

    def _plan(self, buckets: Sequence[BucketSpec]) -> Plan:
        plan = self._plans.get(id(buckets))
        if plan is None or plan.source is not buckets:
            plan = Plan(self, buckets, self._clock())
            if isinstance(buckets, tuple):
                if len(self._plans) >= _MAX_PLANS:  # bounded: start over rather than grow
                    self._plans.clear()
                self._plans[id(buckets)] = plan
        return plan

    async def acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        return self.acquire_nowait(buckets, cost)

    def acquire_nowait(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        # The compiled plan of ``buckets`` does it all (see ``_memory_plan``): this runs on every call.
        plan = self._plans.get(id(buckets))  # ``_plan``, inlined
        if plan is None or plan.source is not buckets:
            plan = self._plan(buckets)
        return plan.acquire(cost)

    def settle_nowait(self, grant: Grant, actual: Mapping[str, float] | None) -> bool:
        if type(grant) is Held and grant.plan.owner is self:
            grant.plan.settle(grant, actual)
        else:  # not one of this backend's own grants
            self._give_back_now(grant, refunds_for(grant, actual))
        return True

    async def _give_back(self, grant: Grant, refunds: Sequence[float]) -> None:
        self._give_back_now(grant, refunds)

    def _give_back_now(self, grant: Grant, refunds: Sequence[float]) -> None:
        """By bucket key (any grant, in any bucket order): add ``refunds``, and free the slots of a grant of
        this backend (no other grant holds any here); a grant of this backend settled already: nothing."""
        with self._lock:
            now = self._clock()
            own = isinstance(grant, Held) and grant.plan.owner is self
            if isinstance(grant, Held) and own:
                if not grant.open:
                    return
                grant.open = False
            for bucket, refund in zip(grant.buckets, refunds, strict=True):
                if bucket.kind == "concurrency":
                    slots = self._slots.get(bucket.key)
                    if own and slots is not None:
                        slots.held -= 1
                elif refund:
                    state = self._levels.get(bucket.key)
                    if state is None:
                        continue  # never drawn on: full already
                    level = _refilled(state, bucket.limit, bucket.limit / bucket.window, now) + refund
                    state.level = bucket.limit if level > bucket.limit else level  # in place: plans hold it
                    state.at = now


def _refilled(state: Level, limit: float, per_second: float, now: float) -> float:
    """``state``'s level at ``now``: refilled at ``per_second`` since it was read, at most ``limit``."""
    level = state.level + (now - state.at) * per_second if now > state.at else state.level
    return limit if level > limit else level
