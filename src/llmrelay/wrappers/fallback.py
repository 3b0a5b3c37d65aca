"""``Fallback``: an ordered list of candidates, each a provider or a ``(provider, model)`` pair.

Each attempt sends the request with the candidate's own model (``dataclasses.replace(request,
model=...)``; a bare provider's is its default model), so vendor A's model name never reaches vendor
B; the request's own ``model`` is not used. It moves on when ``llmrelay._policy.should_fail_over`` says
so (retryable errors, quota, auth of that provider, first-byte and other timeouts, model not found,
unsupported, a nested wrapper that ran out, ...), and stops with the error otherwise (a 400 fails
everywhere).

For a stream it moves on only before the first event reached the caller (an error on entering, or a
first batch that is only ``Done(error)``), closing the abandoned stream's connection at once; after it,
a failure is the stream's typed error: no silent switch, no mixed text. One attempt loop (``_run``)
serves ``chat`` and ``chat_stream``.

Failed attempts are on the reply (``ChatResponse.attempts``, ``stream.attempts``); when every candidate
failed, ``AllAttemptsFailed`` carries them all (a nested wrapper's attempts flattened in), except that a
single attempt's error is raised unchanged.
"""

from __future__ import annotations

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

__all__ = ["Candidate", "Fallback"]

T = TypeVar("T")
Candidate = Provider | tuple[Provider, str | None]
"""A provider (with its default model) or a provider and the model to ask it for."""


class Fallback(OverCandidates):
    """Try ``candidates`` in order (see the module docstring); a ``Provider`` itself, so it composes."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        *,
        name: str = "fallback",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.candidates: tuple[tuple[Provider, str | None], ...] = bound(candidates)
        if not self.candidates:
            raise ValueError("a Fallback needs at least one candidate")
        self.name = name
        self.model = self.candidates[0][1]
        self._clock = clock

    def __repr__(self) -> str:
        inner = ", ".join(f"({p!r}, {m!r})" for p, m in self.candidates)
        return f"Fallback([{inner}], name={self.name!r})"

    async def _run(self, request: ChatRequest, call: Call[T]) -> tuple[T, list[Attempt]]:
        attempts: list[Attempt] = []
        tries = 0
        for provider, model in self.candidates:
            began = self._clock()
            tries += 1
            try:
                return await call(provider, dataclasses.replace(request, model=model)), attempts
            except LlmError as error:
                record(attempts, provider, model, error, self._clock() - began)
                last = error
            if not should_fail_over(last):
                break
        raise failure(attempts, last, tries=tries, provider=self.name)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response, attempts = await self._run(request, call_chat)
        return response_with(response, attempts)

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        return stream_of(lambda: self._run(request, open_stream), provider=self.name, model=self.model)
