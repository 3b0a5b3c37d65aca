"""``MemoryBackend`` against a plain reference model, on random sequences of operations.

The backend takes shortcuts for speed (a plan compiled per bucket tuple, draws put back
when a bucket says no, refunds added to the stored level without reading the clock). The model below
does none of that: on every operation it refills every bucket to ``now``, caps it, then checks and
draws, refunds or frees. Both must grant and refuse the same calls, report the same waits and end with
the same levels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.limits import BucketSpec, Grant, MemoryBackend

POOL = (
    BucketSpec("{s}:requests", 5, 60.0, "requests"),
    BucketSpec("{s}:tokens", 300, 60.0, "tokens", refundable=True),
    BucketSpec("{s}:concurrency", 3, 600.0, "slots", "concurrency"),
    BucketSpec("{t}:tokens", 200, 30.0, "tokens"),
    BucketSpec("{t}:concurrency", 1, 600.0, "slots", "concurrency"),
)
"""Every bucket a test draws its tuples from: two scopes that share the ``tokens`` resource."""
BUCKETS = POOL[:3]
"""The tuple ``RateLimited`` builds for one scope with all three limits."""


def _amount(bucket: BucketSpec, cost: Mapping[str, float]) -> float:
    return min(max(cost.get(bucket.resource, 0.0), 0.0), bucket.limit)


@dataclass
class Model:
    """Token buckets refilled eagerly; slots counted by the set of open grants holding each."""

    now: float = 0.0
    levels: dict[str, float] = field(default_factory=lambda: {b.key: b.limit for b in POOL})
    at: dict[str, float] = field(default_factory=lambda: {b.key: 0.0 for b in POOL})
    held: dict[str, set[int]] = field(default_factory=lambda: {b.key: set() for b in POOL})

    def _refill(self) -> None:
        for b in POOL:
            if b.kind == "rate":
                elapsed = max(0.0, self.now - self.at[b.key])
                self.levels[b.key] = min(b.limit, self.levels[b.key] + elapsed * b.limit / b.window)
                self.at[b.key] = self.now

    def acquire(self, ident: int, buckets: Sequence[BucketSpec], cost: Mapping[str, float]) -> tuple[bool, float]:
        self._refill()
        wait = 0.0
        for b in buckets:
            if b.kind == "concurrency":
                if b.limit - len(self.held[b.key]) < 1.0:
                    wait = max(wait, 0.01)
                continue
            amount = _amount(b, cost)
            if self.levels[b.key] + 1e-9 < amount:
                wait = max(wait, (amount - self.levels[b.key]) * b.window / b.limit)
        if wait > 0:
            return False, wait
        for b in buckets:
            if b.kind == "rate":
                self.levels[b.key] -= _amount(b, cost)
            else:
                self.held[b.key].add(ident)
        return True, 0.0

    def give_back(
        self, ident: int, buckets: Sequence[BucketSpec], cost: Mapping[str, float], actual: Mapping[str, float] | None
    ) -> None:
        self._refill()
        for b in buckets:
            if b.kind != "rate":
                self.held[b.key].discard(ident)
                continue
            amount = _amount(b, cost)
            if actual is None:
                refund = amount if b.refundable else 0.0
            elif b.resource in actual:
                refund = amount - max(actual[b.resource], 0.0)
            else:
                refund = 0.0
            self.levels[b.key] = min(b.limit, self.levels[b.key] + refund)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0.0, 30.0)),
        st.tuples(st.just("acquire"), st.integers(0, 400), st.integers(0, 2)),
        st.tuples(st.just("settle"), st.integers(0, 50), st.integers(0, 500)),
        st.tuples(st.just("release"), st.integers(0, 50)),
    ),
    max_size=60,
)
plans = st.lists(
    st.permutations(POOL).flatmap(lambda p: st.integers(0, len(p)).map(lambda n: tuple(p[:n]))), min_size=1, max_size=3
)
"""One to three tuples of buckets, each some of ``POOL`` in any order (the empty tuple included)."""


def _run(tuples: Sequence[tuple[BucketSpec, ...]], sequence: Sequence[tuple[object, ...]]) -> None:
    model = Model()
    clock = [0.0]
    backend = MemoryBackend(clock=lambda: clock[0], poll=0.01)
    grants: list[tuple[int, Grant, tuple[BucketSpec, ...], dict[str, float]]] = []
    for n, op in enumerate(sequence):
        if op[0] == "advance":
            clock[0] += float(op[1])  # type: ignore[arg-type]
            model.now = clock[0]
        elif op[0] == "acquire":
            buckets = tuples[int(op[2]) % len(tuples)]  # type: ignore[call-overload]
            cost = {"requests": 1.0, "tokens": float(op[1])}  # type: ignore[arg-type]
            got = backend.acquire_nowait(buckets, cost)
            ok, wait = model.acquire(n, buckets, cost)
            assert isinstance(got, Grant) is ok, (n, op)
            if isinstance(got, Grant):
                assert sorted(got.buckets, key=repr) == sorted(buckets, key=repr)
                grants.append((n, got, buckets, cost))
            else:
                assert math.isclose(got, wait, rel_tol=1e-9, abs_tol=1e-9)
        elif grants:
            index = int(op[1]) % len(grants)  # type: ignore[call-overload]
            ident, grant, buckets, cost = grants.pop(index)
            actual = {"tokens": float(op[2])} if op[0] == "settle" else None  # type: ignore[misc]
            assert backend.settle_nowait(grant, actual)
            model.give_back(ident, buckets, cost, actual)
            assert backend.settle_nowait(grant, None)  # a second settle frees nothing more
        model._refill()
        for b in POOL:
            want = model.levels[b.key] if b.kind == "rate" else b.limit - len(model.held[b.key])
            assert math.isclose(backend.level(b), want, rel_tol=1e-9, abs_tol=1e-6), (b.key, n, op)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_the_backend_matches_the_reference_model(sequence: Sequence[tuple[object, ...]]) -> None:
    _run([BUCKETS], sequence)


@settings(max_examples=300, deadline=None)
@given(plans, ops)
def test_any_tuples_of_buckets_sharing_keys_match_the_model(
    tuples: list[tuple[BucketSpec, ...]], sequence: Sequence[tuple[object, ...]]
) -> None:
    """Tuples of any shape and order (each compiled into its own plan), drawing on shared keys in turn."""
    _run(tuples, sequence)
