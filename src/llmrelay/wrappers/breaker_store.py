"""``BreakerStore``: where a ``CircuitBreaker`` keeps the state it shares with other breakers of the same name.

A breaker without a store keeps everything in its own object (one process, one router). A breaker with a
store (``CircuitBreaker(name=..., store=...)``) keeps the shared part there, so every replica whose breaker
has the same name sees one state:

- the outcomes in the window, as counters per time slice (a tenth of the window each: the window slides
  one slice at a time, so an outcome is forgotten between ``0.9 * window`` and ``window`` after it);
- ``open_until``, on the store's own clock (no replica's clock matters), kept a while (``hold``) after the
  open period ends so that the breaker reads as ``half_open``, not ``closed``;
- the half-open probe, owned by exactly one caller at a time (across replicas): ``admit`` hands out a
  token to one caller only, and the ownership expires after ``probe_ttl`` seconds, so a replica that dies
  while probing does not keep the breaker half-open forever.

The store does no judging: which errors open a breaker, and when the error ratio is reached, is decided by
``CircuitBreaker`` (``llmrelay.wrappers.breaker``) from what the store answers. Each operation is atomic on
its own; two replicas that reach the ratio at once both open the breaker, which is the same thing twice.

``MemoryBreakerStore`` is the in-process implementation (breakers of one process sharing state by name;
the contract tests run against it and the Redis one alike); ``RedisBreakerStore``
(``llmrelay.limits.breaker_redis``, the ``redis`` extra) shares it between processes.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Admission", "BreakerStore", "Counts", "MemoryBreakerStore", "SLICES"]

SLICES = 10
"""The window is counted in this many time slices."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer to ``admit``.

    ``closed``: go; ``open``: refused for ``open_for`` more seconds; ``probe``: go, as the one probe (hold
    on to ``token``); ``busy``: half-open and another caller holds the probe."""

    verdict: Literal["closed", "open", "probe", "busy"]
    open_for: float = 0.0
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """The outcomes in the window after ``record_failure`` (``is_open``: the breaker was already open, and
    nothing was counted)."""

    total: int
    failures: int
    is_open: bool = False


class BreakerStore(ABC):
    """The shared state of circuit breakers, by name (see the module docstring). Times are in seconds."""

    @abstractmethod
    async def admit(self, name: str, *, window: float, successes: int = 0) -> Admission:
        """May a request go? Closed: first count ``successes`` (reported since the last call) in the window.
        Half-open: the probe to exactly one caller."""

    @abstractmethod
    async def record_failure(self, name: str, *, window: float, successes: int = 0) -> Counts:
        """Count ``successes`` and one failure in the window, unless the breaker is open; the totals."""

    @abstractmethod
    async def open(self, name: str, seconds: float, *, hold: float) -> None:
        """Open for ``seconds`` (kept ``hold`` more seconds as half-open); forget the window and the probe."""

    @abstractmethod
    async def close(self, name: str) -> None:
        """Close with an empty window (a probe succeeded)."""

    @abstractmethod
    async def release_probe(self, name: str, token: str) -> None:
        """The probe holding ``token`` ended without a verdict: another caller may probe."""

    async def aclose(self) -> None:
        """Release the store's connections."""


@dataclass
class _Shared:
    slices: dict[int, list[int]] = field(default_factory=dict)  # slice index -> [total, failures]
    open_until: float | None = None
    expires: float = 0.0  # when open_until is forgotten
    probe: str | None = None
    probe_expires: float = 0.0


class MemoryBreakerStore(BreakerStore):
    """Breaker state in this process, by name; ``clock`` is injectable for tests."""

    def __init__(self, *, probe_ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe_ttl = probe_ttl
        self._clock = clock
        self._state: dict[str, _Shared] = {}

    def _get(self, name: str) -> _Shared:
        s = self._state.setdefault(name, _Shared())
        now = self._clock()
        if s.open_until is not None and now >= s.expires:
            s.open_until = None
        if s.probe is not None and now >= s.probe_expires:
            s.probe = None
        return s

    def _add(self, s: _Shared, window: float, successes: int, failures: int) -> Counts:
        slice_ = window / SLICES
        index = int(self._clock() // slice_)
        if successes or failures:
            row = s.slices.setdefault(index, [0, 0])
            row[0] += successes + failures
            row[1] += failures
        for old in [i for i in s.slices if i <= index - SLICES]:
            del s.slices[old]
        return Counts(sum(r[0] for r in s.slices.values()), sum(r[1] for r in s.slices.values()))

    async def admit(self, name: str, *, window: float, successes: int = 0) -> Admission:
        s = self._get(name)
        if s.open_until is None:
            if successes:
                self._add(s, window, successes, 0)
            return Admission("closed")
        now = self._clock()
        if now < s.open_until:
            return Admission("open", s.open_until - now)
        if s.probe is None:
            s.probe, s.probe_expires = secrets.token_hex(8), now + self.probe_ttl
            return Admission("probe", token=s.probe)
        return Admission("busy")

    async def record_failure(self, name: str, *, window: float, successes: int = 0) -> Counts:
        s = self._get(name)
        if s.open_until is not None:
            return Counts(0, 0, is_open=True)
        return self._add(s, window, successes, 1)

    async def open(self, name: str, seconds: float, *, hold: float) -> None:
        s = self._get(name)
        now = self._clock()
        s.open_until, s.expires = now + seconds, now + seconds + hold
        s.probe = None
        s.slices.clear()

    async def close(self, name: str) -> None:
        self._state.pop(name, None)

    async def release_probe(self, name: str, token: str) -> None:
        s = self._get(name)
        if s.probe == token:
            s.probe = None
