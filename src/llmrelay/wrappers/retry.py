"""``Retrying``: the same request to the same provider again, after a backoff, for retryable errors only.

One attempt loop (``_run``) serves ``chat`` and ``chat_stream`` (``chat`` makes the first attempt in its
own frame and enters the loop only when it failed: one frame of ours for a call that succeeds at once,
see ``bench/README.md``). Before each retry it waits
``rng() * min(max_delay, base_delay * 2**n)`` (exponential backoff with full jitter; ``n`` counts the
retries before this one), or the error's ``retry_after`` when that is longer, never more than
``max_delay``. It retries only what ``llmrelay._policy.should_retry`` allows: a 400, an auth failure, a
content filter or a first-byte timeout (a silent upstream: move on, don't wait for it again) are not
retried. With ``deadline`` (seconds), no retry starts, and no backoff is slept, that would end after
``deadline`` from the first attempt (each attempt's own time is bounded by the provider's ``Timeouts``).

A stream is retried only before its first event reached the caller: an error on entering it, or a first
batch that is only ``Done(error)``. Once an event went out, a failure is the stream's error.

When it gives up after a single attempt, that attempt's error is raised unchanged (a 400 stays an
``InvalidRequestError``, so a ``Fallback`` around it decides on the real error); after several,
``AllAttemptsFailed`` with every attempt. Attempts that failed before a success are on the reply
(``ChatResponse.attempts``, ``stream.attempts``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._errors import Attempt, LlmError
from .._policy import should_retry
from .._provider import Capabilities, ChatStream, ModelInfo, Provider
from .._types import ChatRequest, ChatResponse
from ..profiles import ModelProfile
from ._attempt import Call, Finish, as_pair, call_chat, failure, open_stream, record, response_with, stream_of

__all__ = ["Retrying"]

T = TypeVar("T")
R = TypeVar("R")


class Retrying(Provider):
    """``provider`` with retries (see the module docstring); a ``Provider`` itself, so it composes."""

    def __init__(
        self,
        provider: Provider,
        *,
        max_attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        deadline: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.inner = provider
        self.name = provider.name
        self.model = provider.model
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    def __repr__(self) -> str:
        return f"Retrying({self.inner!r}, max_attempts={self.max_attempts})"

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def profile(self) -> ModelProfile:
        return self.inner.profile()

    async def list_models(self) -> list[ModelInfo]:
        return await self.inner.list_models()

    def delay(self, retry: int, error: LlmError) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first) after ``error``."""
        backoff = self._rng() * min(self.max_delay, self.base_delay * 2.0**retry)
        return min(max(backoff, error.retry_after or 0.0), self.max_delay)

    async def _run(
        self, request: ChatRequest, call: Call[T], finish: Finish[T, R], first: tuple[LlmError, float] | None = None
    ) -> R:
        """The attempt loop. ``first``: the first attempt already ran and failed (``chat``'s own try): its
        error and when it began; the loop goes on from the decision to retry it."""
        attempts: list[Attempt] = []
        model = request.model or self.inner.model
        if first is None:
            tries = 0
            start = self._clock()
        else:
            last, start = first
            tries = 1
            record(attempts, self.inner, model, last, self._clock() - start)
        while True:
            if tries:  # after a failure: give up, or wait and go again
                if tries >= self.max_attempts or not should_retry(last):
                    break
                wait = self.delay(tries - 1, last)
                if self.deadline is not None and self._clock() + wait - start >= self.deadline:
                    break
                await self._sleep(wait)
            began = self._clock() if tries else start
            tries += 1
            try:
                return finish(await call(self.inner, request), attempts)
            except LlmError as error:
                record(attempts, self.inner, model, error, self._clock() - began)
                last = error
        raise failure(attempts, last, tries=tries, provider=self.name)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        # The first attempt here, the loop only after it failed: a call that succeeds at once (nearly every
        # call) runs this one frame. On the wrapper benchmark (c=64) the loop's frame and its helpers cost
        # several times their hot cost, because their code is cold between calls (see bench/README.md).
        began = self._clock()
        try:
            return await self.inner.chat(request)
        except LlmError as error:
            failed = error
        return await self._run(request, call_chat, response_with, (failed, began))

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        return stream_of(
            lambda: self._run(request, open_stream, as_pair), provider=self.name, model=request.model or self.model
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
