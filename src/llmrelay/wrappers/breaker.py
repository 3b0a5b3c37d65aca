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
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from .._errors import AllAttemptsFailed, LlmError

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
    ) -> None:
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
        cause = error.attempts[-1].error if isinstance(error, AllAttemptsFailed) and error.attempts else error
        if self._open_until is not None:
            if self._probing:
                self._open(cause.retry_after or self.cooldown)
            return
        if cause.kind in DEAD_KINDS or cause.status in DEAD_STATUSES:
            self._open(self.cooldown)
        elif cause.retry_after:
            self._open(cause.retry_after)
        else:
            self._add(failed=True)
            if len(self._outcomes) >= self.min_requests and self.observed_error_ratio >= self.error_ratio:
                self._open(self.cooldown)

    def release(self) -> None:
        """The request ended without a verdict (cancelled, or the caller's own error): free the probe."""
        if self._open_until is not None:
            self._probing = False

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
