"""A tuple of buckets of ``MemoryBackend``, compiled: its ``acquire`` and ``settle`` written out as code.

``RateLimited`` passes the same tuple of buckets for a scope on every call, so ``MemoryBackend``
compiles each tuple once into a ``Plan``. Compiling writes out two functions for that tuple, one block
of statements per bucket, with the bucket's state and constants bound as names of the functions'
namespace (``dataclasses`` writes ``__init__`` the same way). The call path then has no loop over the
buckets, no tuple unpacking and no lookup per bucket: on the reference machine an acquire and its
settle (``RateLimited``'s three buckets, through ``acquire_nowait`` and ``settle_nowait``) take
1.27-1.35 us written out, against 1.65 us for the same steps as a loop over the buckets (``bench/README.md``,
"Where the c=64 overhead goes"). ``Plan.code`` holds the source, for reading.

What the code does is the loop it replaces, bucket by bucket in the tuple's order:

- ``acquire(cost)``, under the backend's lock: for each rate bucket, the amount (``cost[resource]``
  capped at the limit; below zero or NaN: zero), the level refilled to now and capped (a stored level
  may sit above the limit: see ``llmrelay.limits.memory``), a note of the wait when it falls short,
  and the draw; for each concurrency bucket, a note of ``poll`` when no slot is free. When any bucket
  said no, every draw is put back and the longest wait is returned (exact: a bucket drawn at ``now``
  and given the same amount back reads as if never drawn on, since its refill is linear and only capped
  at the top); else the slots are taken and a grant returned, its ``amounts`` one per bucket of
  ``Plan.ordered`` (the rate buckets, then the concurrency buckets at one slot each).
- ``settle(grant, actual)``, under the lock, once per grant: each rate bucket gets back
  ``reserved - used`` for its resource in ``actual`` (an overdraft is drawn from its level now), or,
  when ``actual`` is ``None`` (a release), its reservation if refundable; the slots are freed.

A bucket key named twice in one tuple shares one state, drawn on twice in turn, as in the loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import TYPE_CHECKING, Any

from ._base import BucketSpec, Grant

if TYPE_CHECKING:
    from .memory import MemoryBackend

__all__ = ["Held", "Level", "Plan", "Slots"]

EPSILON = 1e-9
"""Float refill arithmetic: 61 - 1e-14 is 61."""


class Level:
    """A rate bucket's state: its ``level`` when last read, at ``at`` (it refills from there)."""

    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class Slots:
    """A concurrency bucket's state: the slots ``held`` now."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0


class Held(Grant):
    """A grant of ``MemoryBackend``: it carries its plan, and whether it is still ``open`` (not yet settled
    or released: a second settle or release of the same grant does nothing)."""

    __slots__ = ("open", "plan")

    plan: Plan
    open: bool


def overdraw(state: Level, limit: float, per_second: float, refund: float, now: float) -> None:
    """Take ``-refund`` (a call used more than it reserved) from ``state``'s level at ``now``, refill included."""
    at = state.at
    level = state.level + (now - at) * per_second if now > at else state.level
    state.level = (limit if level > limit else level) + refund
    state.at = now


class Plan:
    """``source`` compiled for ``owner`` (see the module docstring). ``ordered`` is the buckets in the order
    of a grant's ``amounts``: the rate buckets, then the concurrency buckets."""

    __slots__ = ("acquire", "code", "ordered", "owner", "settle", "source")

    acquire: Callable[[Mapping[str, float]], Grant | float]
    """A grant, or the seconds to wait; takes the backend's lock."""
    settle: Callable[[Held, Mapping[str, float] | None], None]
    """Settle (``actual``) or release (``None``) one of this plan's grants; takes the backend's lock."""

    def __init__(self, owner: MemoryBackend, source: Sequence[BucketSpec], now: float) -> None:
        self.owner = owner
        self.source = source
        """The tuple compiled (held so that its ``id``, the backend's cache key, is not reused)."""
        rates = [b for b in source if b.kind == "rate"]
        slots = [b for b in source if b.kind == "concurrency"]
        self.ordered = (*rates, *slots)
        names: dict[str, Any] = {
            "EPSILON": EPSILON,
            "OWNER": owner,
            "PLAN": self,
            "ORDERED": self.ordered,
            "LEASE": "memory" if slots else None,
            "clock": owner._clock,
            "lock": owner._lock.acquire,
            "unlock": owner._lock.release,
            "new": object.__new__,
            "Held": Held,
            "overdraw": overdraw,
        }
        for i, b in enumerate(rates):
            names[f"S{i}"] = owner._levels.setdefault(b.key, Level(b.limit, now))
            names[f"R{i}"], names[f"L{i}"], names[f"P{i}"] = b.resource, b.limit, b.limit / b.window
        for j, b in enumerate(slots):
            names[f"C{j}"] = owner._slots.setdefault(b.key, Slots())
            names[f"M{j}"] = b.limit
        self.code, compiled = _compiled(len(rates), len(slots), tuple(b.refundable for b in rates))
        exec(compiled, names)  # defines the two functions over this plan's names
        self.acquire = names["acquire"]
        self.settle = names["settle"]


@functools.lru_cache(maxsize=256)
def _compiled(rates: int, slots: int, refundable: tuple[bool, ...]) -> tuple[str, CodeType]:
    """The source of the two functions for a shape (``_source``), and its code: compiled once per shape
    (about 0.4 ms), while a plan built from it takes microseconds."""
    source = _source(rates, slots, refundable)
    return source, compile(source, f"<llmrelay.limits plan: {rates} rate, {slots} concurrency>", "exec")


def _source(rates: int, slots: int, refundable: tuple[bool, ...]) -> str:
    """The two functions for ``rates`` rate buckets and ``slots`` concurrency buckets (see ``Plan``),
    written from the shape alone: no value is spliced into the source, the plan binds them as names."""
    out = ["def acquire(cost):", "    lock()", "    try:", "        now = clock()", "        wait = 0.0"]
    for i in range(rates):
        out += [
            f"        a{i} = cost.get(R{i}, 0.0)",
            f"        if a{i} > L{i}:",
            f"            a{i} = L{i}",
            f"        elif not a{i} > 0.0:",
            f"            a{i} = 0.0",
            f"        level = S{i}.level",
            f"        if now > S{i}.at:",
            f"            level += (now - S{i}.at) * P{i}",
            f"        if level > L{i}:",
            f"            level = L{i}",
            f"        if level + EPSILON < a{i}:",
            f"            short = (a{i} - level) / P{i}",
            "            if short > wait:",
            "                wait = short",
            f"        S{i}.level = level - a{i}",
            f"        S{i}.at = now",
        ]
    for j in range(slots):
        out += [f"        if M{j} - C{j}.held + EPSILON < 1.0 and OWNER.poll > wait:", "            wait = OWNER.poll"]
    out += ["        if wait > 0.0:"]
    out += [f"            S{i}.level += a{i}" for i in range(rates)]
    out += ["            return wait"]
    out += [f"        C{j}.held += 1" for j in range(slots)]
    amounts = [f"a{i}" for i in range(rates)] + ["1.0"] * slots
    out += [
        "        grant = new(Held)",
        "        grant.buckets = ORDERED",
        f"        grant.amounts = ({', '.join(amounts)}{',' if len(amounts) == 1 else ''})",
        "        grant.lease = LEASE",
        "        grant.plan = PLAN",
        "        grant.open = True",
        "        return grant",
        "    finally:",
        "        unlock()",
        "",
        "def settle(grant, actual):",
        "    lock()",
        "    try:",
        "        if not grant.open:",
        "            return",
        "        grant.open = False",
        "        amounts = grant.amounts",
        "        if actual is None:",
    ]
    refunds = [f"            S{i}.level += amounts[{i}]" for i in range(rates) if refundable[i]]
    out += refunds or ["            pass"]
    out += ["        else:"]
    for i in range(rates):
        out += [
            f"            used = actual.get(R{i})",
            "            if used is not None:",
            f"                refund = amounts[{i}] - (used if used > 0.0 else 0.0)",
            "                if refund > 0.0:",
            f"                    S{i}.level += refund",
            "                elif refund < 0.0:",
            f"                    overdraw(S{i}, L{i}, P{i}, refund, clock())",
        ]
    if not rates:
        out += ["            pass"]
    out += [f"        C{j}.held -= 1" for j in range(slots)]
    out += ["    finally:", "        unlock()", ""]
    return "\n".join(out)
