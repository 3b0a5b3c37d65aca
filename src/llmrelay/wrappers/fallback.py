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
serves ``chat`` and ``chat_stream``; ``chat`` makes the first attempt in its own frame and enters the
loop only when it failed, so a call that succeeds at once runs one frame of ours.

``first_event_timeout`` (seconds, per candidate) bounds a stream's time to its commit point, the first
batch of events (the same point ``Hedged``'s ``threshold`` measures): a candidate whose stream has not
produced it in time is abandoned (its connection closed), recorded with a ``FirstEventTimeout``, and
the next one is tried. It covers everything before that point: connecting, the response headers, and
a stream that sends only keep-alive comments. For a nested wrapper (``Retrying``) it bounds the
candidate as a whole, retries included. ``chat`` is not bounded by it (a whole reply takes as long as
its answer is long): the provider's ``Timeouts`` bound each call.

Failed attempts are on the reply (``ChatResponse.attempts``, ``stream.attempts``); when every candidate
failed, ``AllAttemptsFailed`` carries them all (a nested wrapper's attempts flattened in), except that a
single attempt's error is raised unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .._errors import Attempt, FirstEventTimeout, LlmError
from .._policy import should_fail_over
from .._provider import ChatStream, Provider
from .._types import ChatRequest, ChatResponse
from ._attempt import (
    Call,
    Finish,
    OverCandidates,
    as_pair,
    bound,
    call_chat,
    failure,
    open_stream,
    record,
    response_with,
    stream_of,
    with_model,
)

__all__ = ["Candidate", "Fallback"]

T = TypeVar("T")
R = TypeVar("R")
Candidate = Provider | tuple[Provider, str | None]
"""A provider (with its default model) or a provider and the model to ask it for."""


def _asking(request: ChatRequest, provider: Provider, model: str | None) -> ChatRequest:
    """``request`` for one candidate: with the candidate's model; a request without a model, to a candidate
    that asks for its provider's default, as it is."""
    return request if request.model is None and model == provider.model else with_model(request, model)


class Fallback(OverCandidates):
    """Try ``candidates`` in order (see the module docstring); a ``Provider`` itself, so it composes."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        *,
        name: str = "fallback",
        first_event_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.candidates: tuple[tuple[Provider, str | None], ...] = bound(candidates)
        if not self.candidates:
            raise ValueError("a Fallback needs at least one candidate")
        if first_event_timeout is not None and not first_event_timeout > 0:
            raise ValueError(f"first_event_timeout must be positive seconds (or None), got {first_event_timeout}")
        self.name = name
        self.model = self.candidates[0][1]
        self.first_event_timeout = first_event_timeout
        """Seconds each candidate's stream has to produce its first batch of events (``None``: no limit)."""
        self._clock = clock

    def __repr__(self) -> str:
        inner = ", ".join(f"({p!r}, {m!r})" for p, m in self.candidates)
        return f"Fallback([{inner}], name={self.name!r})"

    async def _run(
        self, request: ChatRequest, call: Call[T], finish: Finish[T, R], first: tuple[LlmError, float] | None = None
    ) -> R:
        """The attempt loop. ``first``: the first candidate already ran and failed (``chat``'s own try): its
        error and when it began; the loop goes on from the decision to move on."""
        attempts: list[Attempt] = []
        candidates = iter(self.candidates)
        tries = 0
        if first is not None:
            provider, model = next(candidates)
            last, began = first
            tries = 1
            record(attempts, provider, model, last, self._clock() - began)
            if not should_fail_over(last):
                raise failure(attempts, last, tries=tries, provider=self.name)
        for provider, model in candidates:
            began = self._clock()
            tries += 1
            try:
                return finish(await call(provider, _asking(request, provider, model)), attempts)
            except LlmError as error:
                record(attempts, provider, model, error, self._clock() - began)
                last = error
            if not should_fail_over(last):
                break
        raise failure(attempts, last, tries=tries, provider=self.name)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        # The first candidate here, the loop only after it failed: a call that succeeds at once (nearly
        # every call) runs this one frame (see ``Retrying.chat``).
        provider, model = self.candidates[0]
        began = self._clock()
        try:
            # ``_asking``, inlined (one code object fewer on every call)
            asked = request if request.model is None and model == provider.model else with_model(request, model)
            return await provider.chat(asked)
        except LlmError as error:
            failed = error
        return await self._run(request, call_chat, response_with, (failed, began))

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        call = open_stream if self.first_event_timeout is None else self._open_in_time
        return stream_of(lambda: self._run(request, call, as_pair), provider=self.name, model=self.model)

    async def _open_in_time(self, provider: Provider, request: ChatRequest) -> ChatStream:
        """``open_stream`` within ``first_event_timeout``: when it runs out, the attempt is cancelled (which
        closes its stream and connection) and ends in ``FirstEventTimeout``."""
        limit = self.first_event_timeout
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                return await open_stream(provider, request)
        except TimeoutError:
            if not deadline.expired():
                raise
        raise FirstEventTimeout(
            f"no event from the stream within {limit}s (Fallback first_event_timeout); moved on",
            provider=provider.name,
        )
