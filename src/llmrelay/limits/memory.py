"""``MemoryBackend``: the buckets in this process. Every operation runs without an await and under a
thread lock, so it is atomic for asyncio tasks and for event loops in several threads (the configuration
shares one backend per process). ``clock`` is injectable for tests.

A rate bucket's stored level may sit above its limit: every read caps it (``min(limit, level + refill)``).
So a refund (or a draw put back) is added to the stored level as it is, without reading the clock:
``min(L, min(L, x + e) + r) == min(L, x + e + r)`` for ``r >= 0``, now and at every later read. Only an
overdraft (a negative correction) needs the level now, refill included, before it is subtracted.

This runs around every call, so its path is short: each bucket key has one mutable state (a rate
bucket's level and when it was read; a concurrency bucket's set of leases), and each tuple of buckets a
caller passes (``RateLimited`` passes the same tuple for a scope every time) is compiled once into a
``_Plan`` holding those states and the buckets' constants. A call then does no lookup per bucket, and
its grant carries the plan, so settling it does none either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ._base import BucketSpec, Grant, LimitBackend, refunds_for

__all__ = ["MemoryBackend"]

_EPSILON = 1e-9
_LEASE = "memory"
"""The ``lease`` of a grant holding slots here (the grant itself is the lease: see ``_Held``)."""
_MAX_PLANS = 4096
"""The most compiled bucket tuples kept; past it the cache starts over (the states live on, by key)."""


class _Level:
    """A rate bucket's state: its ``level`` when last read, at ``at`` (it refills from there)."""

    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class _Slots:
    """A concurrency bucket's state: the slots ``held`` now."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0


class _Plan:
    """A tuple of buckets, compiled: ``rates`` (per rate bucket: its state, resource, limit, refill per
    second and whether a release refunds it) then ``slots`` (per concurrency bucket: its state and
    limit). ``ordered`` is the buckets in that order (rates first): a grant's ``buckets``."""

    __slots__ = ("ones", "ordered", "owner", "rates", "slots", "source")

    def __init__(self, owner: MemoryBackend, source: Sequence[BucketSpec], now: float) -> None:
        self.owner = owner
        levels, slots = owner._levels, owner._slots
        self.source = source
        """The tuple compiled (held so that its ``id``, the cache key, is not reused)."""
        rate_buckets = [b for b in source if b.kind == "rate"]
        slot_buckets = [b for b in source if b.kind == "concurrency"]
        self.rates = tuple(
            (levels.setdefault(b.key, _Level(b.limit, now)), b.resource, b.limit, b.limit / b.window, b.refundable)
            for b in rate_buckets
        )
        self.slots = tuple((slots.setdefault(b.key, _Slots()), b.limit) for b in slot_buckets)
        self.ordered = (*rate_buckets, *slot_buckets)
        self.ones = (1.0,) * len(slot_buckets)
        """A concurrency bucket's amount: one slot each."""


class _Held(Grant):
    """A grant of this backend: it carries its plan, and whether it is still ``open`` (not yet settled or
    released: a second settle or release of the same grant does nothing)."""

    __slots__ = ("open", "plan")

    plan: _Plan
    open: bool


_new_grant = object.__new__
"""How ``acquire_nowait`` makes a ``_Held``: the instance alone, its slots then set in place."""


class MemoryBackend(LimitBackend):
    """In-process token buckets and concurrency counters (see ``llmrelay.limits._base``).

    ``poll`` is the wait reported when only a concurrency slot is missing (a slot frees at an unknown
    time, so the caller asks again after ``poll`` seconds).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, poll: float = 0.01) -> None:
        self._clock = clock
        self.poll = poll
        self._levels: dict[str, _Level] = {}
        self._slots: dict[str, _Slots] = {}
        self._plans: dict[int, _Plan] = {}
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

    def _plan(self, buckets: Sequence[BucketSpec]) -> _Plan:
        plan = self._plans.get(id(buckets))
        if plan is None or plan.source is not buckets:
            plan = _Plan(self, buckets, self._clock())
            if isinstance(buckets, tuple):
                if len(self._plans) >= _MAX_PLANS:  # bounded: start over rather than grow
                    self._plans.clear()
                self._plans[id(buckets)] = plan
        return plan

    async def acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        return self.acquire_nowait(buckets, cost)

    def acquire_nowait(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        # One pass (this runs on every call: the amounts of ``amounts_for`` and the refill of ``_refilled``
        # are inlined) that draws on every rate bucket and notes the longest wait; when any bucket says
        # no, the draws are put back. That is exact: a bucket drawn at ``now`` and refilled by the same
        # amount at ``now`` reads as if never drawn on (its refill is linear and only capped at the top).
        lock = self._lock
        lock.acquire()
        try:
            plan = self._plans.get(id(buckets))  # ``_plan``, inlined
            if plan is None or plan.source is not buckets:
                plan = self._plan(buckets)
            now = self._clock()  # one reading for the whole operation
            wait = 0.0
            amounts: list[float] = []
            for state, resource, limit, per_second, _ in plan.rates:
                amount = cost.get(resource, 0.0)
                if amount > limit:
                    amount = limit
                elif not amount > 0.0:  # negative, or NaN
                    amount = 0.0
                level = state.level
                if now > state.at:
                    level += (now - state.at) * per_second
                if level > limit:  # a stored level may sit above it: see the module docstring
                    level = limit
                if level + _EPSILON < amount:  # float refill arithmetic: 61 - 1e-14 is 61
                    short = (amount - level) / per_second
                    if short > wait:
                        wait = short
                state.level = level - amount
                state.at = now
                amounts.append(amount)
            for slots, limit in plan.slots:
                if limit - slots.held + _EPSILON < 1.0 and self.poll > wait:
                    wait = self.poll
            if wait > 0.0:
                for (state, _, _, _, _), amount in zip(plan.rates, amounts, strict=True):
                    state.level += amount  # put back: all or nothing
                return wait
            held = _new_grant(_Held)  # its slots filled here: no ``__init__`` frame on every call
            if plan.slots:
                for slots, _ in plan.slots:
                    slots.held += 1
                amounts += plan.ones
                held.lease = _LEASE
            else:
                held.lease = None
            held.buckets, held.amounts, held.plan, held.open = plan.ordered, amounts, plan, True
            return held
        finally:
            lock.release()

    def settle_nowait(self, grant: Grant, actual: Mapping[str, float] | None) -> bool:
        # ``refunds_for`` and ``_give_back`` in one pass (this runs on every call).
        if grant.__class__ is not _Held or grant.plan.owner is not self:
            self._give_back_now(grant, refunds_for(grant, actual))  # not one of this backend's own grants
            return True
        plan = grant.plan
        lock = self._lock
        lock.acquire()
        try:
            if not grant.open:
                return True  # settled already
            grant.open = False
            # ``amounts`` has the rate buckets' amounts (then the slots' ones), indexed: no ``zip`` call.
            amounts = grant.amounts
            i = -1
            for state, resource, limit, per_second, refundable in plan.rates:
                i += 1
                if actual is None:
                    refund = amounts[i] if refundable else 0.0
                else:
                    used = actual.get(resource)
                    refund = 0.0 if used is None else amounts[i] - (used if used > 0.0 else 0.0)
                if refund > 0.0:
                    state.level += refund  # no clock needed: see the module docstring
                elif refund < 0.0:  # an overdraft: drawn from the level now, refill included
                    now = self._clock()
                    at = state.at
                    level = state.level + (now - at) * per_second if now > at else state.level
                    state.level = (limit if level > limit else level) + refund
                    state.at = now
            for slots, _ in plan.slots:
                slots.held -= 1
        finally:
            lock.release()
        return True

    async def _give_back(self, grant: Grant, refunds: Sequence[float]) -> None:
        self._give_back_now(grant, refunds)

    def _give_back_now(self, grant: Grant, refunds: Sequence[float]) -> None:
        """By bucket key (any grant, in any bucket order): add ``refunds``, and free the slots of a grant of
        this backend (no other grant holds any here); a grant of this backend settled already: nothing."""
        with self._lock:
            now = self._clock()
            own = isinstance(grant, _Held) and grant.plan.owner is self
            if isinstance(grant, _Held) and own:
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


def _refilled(state: _Level, limit: float, per_second: float, now: float) -> float:
    """``state``'s level at ``now``: refilled at ``per_second`` since it was read, at most ``limit``."""
    level = state.level + (now - state.at) * per_second if now > state.at else state.level
    return limit if level > limit else level
