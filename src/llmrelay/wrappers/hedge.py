"""``Hedged``: when the first candidate is slow to answer, start the next one too; the first to answer wins.

Candidates are those of ``Fallback`` (a provider, or a ``(provider, model)`` pair; each attempt asks for its
own model). The first candidate starts at once; each time ``threshold`` seconds pass with no answer, the
next one starts as well, so several may run side by side. "An answer" is the commit point: for
``chat_stream`` the first batch of events (``open_stream``), for ``chat`` the whole reply (``call_chat``);
one attempt loop (``_run``) serves both. The first attempt to answer wins; every other one still running is
cancelled **and awaited**, so its connection is closed and no task is left behind, before the winner is
handed to the caller. Cancelling the caller (or leaving the stream) does the same to every attempt.

An attempt that fails before answering is recorded and, when ``llmrelay._policy.should_fail_over`` allows,
the next candidate starts at once (no need to wait for the threshold); an error that does not fail over (a
400) cancels the others and is raised. When every candidate failed, ``AllAttemptsFailed`` carries them all
(a single attempt's error is raised unchanged, as in ``Fallback``).

**The loser is recorded as cancelled, not as a failure**: its ``Attempt`` has an error whose ``kind`` is
``"cancelled"`` (``CANCELLED``; an ``LlmError`` that is never raised, not retryable, and keeps its kind
through JSON). It sits with the failed attempts on the reply (``ChatResponse.attempts``,
``stream.attempts``), in the order the attempts ended; ``is_cancelled(attempt)`` tells the two apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .._errors import Attempt, LlmError
from .._policy import should_fail_over
from .._provider import ChatStream, Provider
from .._types import ChatRequest, ChatResponse
from ._attempt import (
    Call,
    OverCandidates,
    bound,
    call_chat,
    failure,
    open_stream,
    record,
    response_with,
    stream_of,
)
from .fallback import Candidate

__all__ = ["CANCELLED", "Hedged", "is_cancelled"]

T = TypeVar("T")

CANCELLED = "cancelled"
"""The ``kind`` of the error on a hedge loser's ``Attempt``: cancelled because another candidate won."""


def is_cancelled(attempt: Attempt) -> bool:
    """Whether ``attempt`` is a hedge loser (cancelled because another answered first), not a failure."""
    return attempt.error.kind == CANCELLED


def _cancelled(provider: str) -> LlmError:
    error = LlmError("cancelled: another candidate answered first", provider=provider, retryable=False)
    error.kind = CANCELLED
    return error


async def _attempt(call: Call[T], provider: Provider, request: ChatRequest) -> T:
    return await call(provider, request)


class Hedged(OverCandidates):
    """Race ``candidates``, starting the next after ``threshold`` seconds without an answer (see the
    module docstring); a ``Provider`` itself, so it composes."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        *,
        threshold: float,
        name: str = "hedged",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.candidates = bound(candidates)
        if not self.candidates:
            raise ValueError("a Hedged needs at least one candidate")
        if threshold < 0:
            raise ValueError(f"threshold must not be negative, got {threshold}")
        self.threshold = threshold
        self.name = name
        self.model = self.candidates[0][1]
        self._clock = clock

    def __repr__(self) -> str:
        inner = ", ".join(f"({p!r}, {m!r})" for p, m in self.candidates)
        return f"Hedged([{inner}], threshold={self.threshold!r}, name={self.name!r})"

    async def _run(self, request: ChatRequest, call: Call[T]) -> tuple[T, list[Attempt]]:
        attempts: list[Attempt] = []
        running: dict[asyncio.Task[T], tuple[Provider, str | None, float]] = {}
        waiting = list(reversed(self.candidates))
        failed = 0
        last: LlmError | None = None

        def start() -> None:
            provider, model = waiting.pop()
            task = asyncio.create_task(_attempt(call, provider, dataclasses.replace(request, model=model)))
            running[task] = (provider, model, self._clock())

        try:
            start()
            while running:
                timeout = self.threshold if waiting else None
                done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    start()  # no answer within the threshold: hedge
                    continue
                stop = False
                for task in sorted(done, key=lambda t: running[t][2]):  # the earliest started first
                    provider, model, began = running.pop(task)
                    error = task.exception()
                    if error is None:
                        await self._cancel(running, attempts)
                        return task.result(), attempts
                    if not isinstance(error, LlmError):
                        raise error
                    record(attempts, provider, model, error, self._clock() - began)
                    failed += 1
                    last = error
                    stop = stop or not should_fail_over(error)
                if stop:
                    break
                if not running and waiting:
                    start()  # every running attempt failed: the next one starts at once
        finally:
            await self._cancel(running, attempts)
        assert last is not None
        raise failure(attempts, last, tries=failed, provider=self.name)

    async def _cancel(
        self, running: dict[asyncio.Task[T], tuple[Provider, str | None, float]], attempts: list[Attempt] | None
    ) -> None:
        """Cancel and await every attempt still running (closing what it opened); with ``attempts``,
        record each as cancelled."""
        if not running:
            return
        for task in running:
            task.cancel()
        results = await asyncio.gather(*running, return_exceptions=True)
        for (provider, model, began), result in zip(running.values(), results, strict=True):
            if isinstance(result, ChatStream):  # it answered in the same instant as the winner
                await result.aclose()
            if attempts is not None:
                attempts.append(Attempt(provider.name, model, _cancelled(provider.name), self._clock() - began))
        running.clear()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response, attempts = await self._run(request, call_chat)
        return response_with(response, attempts)

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        return stream_of(lambda: self._run(request, open_stream), provider=self.name, model=self.model)
