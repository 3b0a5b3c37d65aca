"""The backend interface of ``RateLimited``: buckets, grants, and acquire / settle / release.

Every rate bucket is a **token bucket**: it holds up to ``limit`` units and refills continuously at
``limit / window`` units per second, so ``requests_per_minute=60`` lets a burst of 60 through and then
one a second. A token bucket (rather than a sliding window) is chosen because costs vary and are
corrected after the call: a reservation can be partly refunded (``settle`` with less than reserved) or
overdrawn (more than reserved: the bucket goes below zero and later calls wait until it refills). A
cost larger than the whole bucket is capped at ``limit``: such a call waits for a full bucket, it is
not refused forever.

A concurrency bucket counts leases: ``acquire`` takes one slot, ``settle`` / ``release`` give it back.
A lease expires after ``window`` seconds, so a crashed process cannot hold a slot forever (the Redis
backend; in memory a crash takes the budget with it).

``acquire`` checks every bucket and then consumes all of them or none: it returns a ``Grant``, or the
seconds to wait before asking again (the longest wait among the buckets that said no).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["BucketSpec", "Grant", "LimitBackend"]


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One bucket: ``key`` names it in the store (shared by everyone who uses the same key)."""

    key: str
    limit: float
    """The bucket's size: units per ``window`` for a rate bucket, slots for a concurrency bucket."""
    window: float = 60.0
    """Seconds to refill the whole bucket (rate), or a lease's lifetime (concurrency)."""
    resource: str = "requests"
    """Which entry of the cost mapping this bucket consumes (``requests``, ``tokens``)."""
    kind: Literal["rate", "concurrency"] = "rate"
    refundable: bool = False
    """Whether ``release`` (a failed or cancelled call) gives the reserved amount back; tokens are
    refunded, a request that was sent stays counted."""

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.window <= 0:
            raise ValueError(f"bucket {self.key!r}: limit and window must be positive")


class Grant:
    """What ``acquire`` consumed: the buckets, the amount taken from each, and the lease held (the lease
    id holding a slot in each concurrency bucket; ``None`` without one).

    A plain class with slots rather than a frozen dataclass: one is built on every call, and a frozen
    dataclass's ``__init__`` costs six times as much. Treat it as immutable."""

    __slots__ = ("amounts", "buckets", "lease")

    def __init__(self, buckets: tuple[BucketSpec, ...], amounts: Sequence[float], lease: str | None = None) -> None:
        self.buckets = buckets
        self.amounts = amounts
        self.lease = lease

    def __repr__(self) -> str:
        return f"Grant(buckets={self.buckets!r}, amounts={self.amounts!r}, lease={self.lease!r})"


def amounts_for(buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> tuple[float, ...]:
    """What each bucket takes for ``cost``: its resource's amount capped at its limit; a slot for a
    concurrency bucket."""
    return tuple(
        [1.0 if b.kind == "concurrency" else min(max(float(cost.get(b.resource, 0.0)), 0.0), b.limit) for b in buckets]
    )


def refunds_for(grant: Grant, actual: Mapping[str, float] | None) -> tuple[float, ...]:
    """Per bucket, the amount to give back to a rate bucket: ``reserved - actual`` for the resources in
    ``actual`` (negative when the call used more), everything refundable when ``actual`` is ``None``
    (``release``)."""
    out: list[float] = []
    for bucket, amount in zip(grant.buckets, grant.amounts, strict=True):
        if bucket.kind != "rate":
            out.append(0.0)
        elif actual is None:
            out.append(amount if bucket.refundable else 0.0)
        elif bucket.resource in actual:
            out.append(amount - max(float(actual[bucket.resource]), 0.0))
        else:
            out.append(0.0)
    return tuple(out)


class LimitBackend(ABC):
    """Where the buckets live; ``RateLimited`` calls it around every call."""

    @abstractmethod
    async def acquire(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float:
        """Consume ``cost`` from every bucket, all or nothing: a ``Grant``, or the seconds to wait."""

    def acquire_nowait(self, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> Grant | float | None:
        """``acquire`` answered at once, for a backend that needs no I/O to answer (``MemoryBackend``):
        a ``Grant`` or the seconds to wait; ``None`` (the default): ask ``acquire``."""
        return None

    def settle_nowait(self, grant: Grant, actual: Mapping[str, float] | None) -> bool:
        """``settle`` (``actual``) or ``release`` (``None``) done at once; ``False`` (the default): not done,
        await ``settle`` / ``release``. Saves a backend without I/O two coroutines per call."""
        return False

    async def settle(self, grant: Grant, actual: Mapping[str, float]) -> None:
        """The call ended: correct each rate bucket by what it really used (``actual``, by resource;
        resources not named keep their reservation) and free the concurrency slots."""
        await self._give_back(grant, refunds_for(grant, actual))

    async def release(self, grant: Grant) -> None:
        """The call failed or was cancelled: refund the refundable reservations, free the slots."""
        await self._give_back(grant, refunds_for(grant, None))

    @abstractmethod
    async def _give_back(self, grant: Grant, refunds: Sequence[float]) -> None:
        """Add ``refunds`` to the grant's rate buckets (capped at their limits) and free its slots."""

    async def aclose(self) -> None:
        """Release the backend's connections."""
