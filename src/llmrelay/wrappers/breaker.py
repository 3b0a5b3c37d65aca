"""``CircuitBreaker``: a small state machine per deployment, ``closed`` -> ``open`` -> ``half_open`` -> ``closed``.

- **closed**: every request goes through; each outcome is kept for ``window`` seconds. Once the window holds
  at least ``min_requests`` outcomes and the share of failures reaches ``error_ratio``, it opens.
- It opens **at once** on a dead key or model (an error of kind ``auth`` or ``model_not_found``, or status
  401 / 403 / 404), for ``cooldown`` seconds, and on an error with a ``retry_after``, for that long.
- **open**: nothing goes through until the open period ends; then it is **half_open**: one request (the
  probe) goes through, the others are refused. The probe's success closes it (with an empty window); its
  failure opens it again.

Outcomes are reported by the caller: ``acquire()`` before a request (``False``: skip this deployment),
then exactly one of ``success()``, ``failure(error)`` or ``release()`` (cancelled, or an error that says
nothing about the deployment's health). Time comes from ``clock`` (injectable, so tests need no sleeps).
An ``AllAttemptsFailed`` from a wrapper inside the deployment is judged by its last attempt's error.

**Shared state.** With a ``store`` (a ``BreakerStore``, ``llmrelay.wrappers.breaker_store``) and a
``name``, the breaker keeps its state there, so every breaker of that name (every replica of a gateway, with
``RedisBreakerStore``) sees one state. The same rules decide; only the state moves. The ``Router`` then
calls the async forms, ``aacquire()``, ``asuccess()``, ``afailure(error)`` and ``arelease()`` (without a
store they are the plain methods). Consistency: ``aacquire`` reads the shared state (one round trip), except
that a ``closed`` answer is trusted for ``refresh`` seconds (default 0.1; 0: read on every request), so a
breaker opened by one replica is seen by every other replica within ``refresh`` seconds (at once by the
replica that opened it, and at once whenever this process's own view is not closed); a success in the closed
state is not written on its own but counted locally and sent with this breaker's next ``aacquire`` or
``afailure`` (successes only matter to the ratio, which is judged on a failure). ``state``, ``open_until``
and ``observed_error_ratio`` are this process's view: the shared state as last read, the ratio of this
process's own outcomes. ``release()`` (sync, used on cancellation) frees a shared probe in a background
task; if that never runs, the probe's ownership expires after the store's ``probe_ttl``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from .._errors import AllAttemptsFailed, LlmError

if TYPE_CHECKING:
    from .breaker_store import BreakerStore

__all__ = ["DEAD_KINDS", "DEAD_STATUSES", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]

DEAD_KINDS: frozenset[str] = frozenset({"auth", "model_not_found"})
"""Error kinds that open a breaker at once: the key or the model is dead, waiting for a ratio is pointless."""
DEAD_STATUSES: frozenset[int] = frozenset({401, 403, 404})
"""HTTP statuses that open a breaker at once, whatever the error's kind."""


class CircuitBreaker:
    """One deployment's breaker (see the module docstring)."""

    def __init__(
        self,
        *,
        error_ratio: float = 0.5,
        min_requests: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        store: BreakerStore | None = None,
        refresh: float = 0.1,
    ) -> None:
        if store is not None and not name:
            raise ValueError("a CircuitBreaker with a shared store needs a name (its key in the store)")
        if not 0.0 < error_ratio <= 1.0:
            raise ValueError(f"error_ratio must be in (0, 1], got {error_ratio}")
        if min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {min_requests}")
        self.error_ratio = error_ratio
        self.min_requests = min_requests
        self.window = window
        self.cooldown = cooldown
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, failed)
        self._open_until: float | None = None
        self._probing = False
        self.name = name
        self.store = store
        self._token: str | None = None  # the shared probe this process holds
        self._successes = 0  # successes not yet sent to the store
        self.refresh = refresh
        self._fresh_until = float("-inf")  # until when the store's last "closed" is trusted
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, error_ratio={self.observed_error_ratio:.2f})"

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open``, or ``half_open`` once an open period has ended."""
        if self._open_until is None:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"

    @property
    def open_until(self) -> float | None:
        """When (on ``clock``) the open period ends; ``None`` when closed."""
        return self._open_until

    @property
    def observed_error_ratio(self) -> float:
        """The share of failures among the outcomes in the window (0 when it is empty)."""
        self._prune()
        if not self._outcomes:
            return 0.0
        return sum(failed for _, failed in self._outcomes) / len(self._outcomes)

    def acquire(self) -> bool:
        """Whether a request may go to this deployment now; in ``half_open``, only one (the probe) may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """The request answered: a probe's success closes the breaker."""
        if self._open_until is not None:
            if not self._probing:
                return  # a request from before it opened: says nothing about now
            self._close()
            return
        self._add(failed=False)

    def failure(self, error: LlmError) -> None:
        """The request failed because of the deployment: count it, and open when the rule says so."""
        cause = _cause(error)
        if self._open_until is not None:
            if self._probing:
                self._open(cause.retry_after or self.cooldown)
            return
        seconds = self._opens_for(cause)
        if seconds is not None:
            self._open(seconds)
        else:
            self._add(failed=True)
            if self._trips(len(self._outcomes), self.observed_error_ratio):
                self._open(self.cooldown)

    def release(self) -> None:
        """The request ended without a verdict (cancelled, or the caller's own error): free the probe."""
        if self._open_until is not None:
            self._probing = False
        token, self._token = self._token, None
        if token is not None and self.store is not None:
            try:
                task = asyncio.get_running_loop().create_task(self.store.release_probe(self.name, token))
            except RuntimeError:  # no loop: the probe's ownership expires on its own
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _opens_for(self, cause: LlmError) -> float | None:
        """How long ``cause`` opens a closed breaker at once (a dead key or model; a retry-after), or ``None``:
        count it."""
        if cause.kind in DEAD_KINDS or cause.status in DEAD_STATUSES:
            return self.cooldown
        return cause.retry_after or None

    def _trips(self, total: int, ratio: float) -> bool:
        return total >= self.min_requests and ratio >= self.error_ratio

    # --- the shared form (a ``store``): the same rules, the state in the store ----------------------------

    async def aacquire(self) -> bool:
        """``acquire()``, asked of the shared store when there is one."""
        if self.store is None:
            return self.acquire()
        if self._open_until is None and self._clock() < self._fresh_until:
            return True
        successes, self._successes = self._successes, 0
        admission = await self.store.admit(self.name, window=self.window, successes=successes)
        now = self._clock()
        self._fresh_until = float("-inf")
        match admission.verdict:
            case "closed":
                self._open_until, self._probing = None, False
                self._fresh_until = now + self.refresh
                return True
            case "open":
                self._open_until, self._probing = now + admission.open_for, False
                return False
            case "probe":
                self._open_until, self._probing, self._token = now, True, admission.token
                return True
            case _:
                self._open_until = min(self._open_until or now, now)
                return False

    async def asuccess(self) -> None:
        """``success()``, told to the shared store when there is one (a probe's success closes it there)."""
        if self.store is None:
            self.success()
            return
        if self._token is not None:
            self._token = None
            self._close()
            await self.store.close(self.name)
        elif self._open_until is None:
            self._add(failed=False)
            self._successes += 1

    async def afailure(self, error: LlmError) -> None:
        """``failure(error)``, judged here, counted in and opened through the shared store when there is one."""
        store = self.store
        if store is None:
            self.failure(error)
            return
        cause = _cause(error)
        if self._token is not None:
            self._token = None
            await self._aopen(store, cause.retry_after or self.cooldown)
            return
        seconds = self._opens_for(cause)
        if seconds is not None:
            await self._aopen(store, seconds)
            return
        self._add(failed=True)
        successes, self._successes = self._successes, 0
        counts = await store.record_failure(self.name, window=self.window, successes=successes)
        if not counts.is_open and counts.total and self._trips(counts.total, counts.failures / counts.total):
            await self._aopen(store, self.cooldown)

    async def arelease(self) -> None:
        """``release()``, freeing the shared probe before it returns."""
        token, self._token = self._token, None
        self.release()
        if token is not None and self.store is not None:
            await self.store.release_probe(self.name, token)

    async def _aopen(self, store: BreakerStore, seconds: float) -> None:
        self._open(seconds)
        await store.open(self.name, seconds, hold=max(self.window, self.cooldown))

    def _add(self, *, failed: bool) -> None:
        self._outcomes.append((self._clock(), failed))
        self._prune()

    def _prune(self) -> None:
        horizon = self._clock() - self.window
        while self._outcomes and self._outcomes[0][0] <= horizon:
            self._outcomes.popleft()

    def _open(self, seconds: float) -> None:
        self._open_until = self._clock() + seconds
        self._probing = False
        self._outcomes.clear()

    def _close(self) -> None:
        self._open_until = None
        self._probing = False
        self._outcomes.clear()


def _cause(error: LlmError) -> LlmError:
    """The error to judge: an ``AllAttemptsFailed``'s last attempt's."""
    return error.attempts[-1].error if isinstance(error, AllAttemptsFailed) and error.attempts else error
