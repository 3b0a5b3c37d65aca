"""What ``Retrying`` and ``Fallback`` share: one attempt of a call, for ``chat`` or ``chat_stream``.

A wrapper writes its policy once, as a loop over attempts; the loop calls a ``Call``, which is either
``call_chat`` (one whole reply) or ``open_stream`` (a stream entered up to its commit point). The result
carries the attempts that failed before it (``response_with``, ``stream_of``), so one loop serves both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .._errors import AllAttemptsFailed, Attempt, LlmError
from .._events import Done, StreamEvent
from .._provider import Capabilities, ChatStream, ModelInfo, Provider
from .._types import ChatRequest, ChatResponse
from ..profiles import ModelProfile

__all__ = [
    "Call",
    "Committed",
    "Finish",
    "OverCandidates",
    "PassThrough",
    "as_pair",
    "bound",
    "call_chat",
    "close_each",
    "failure",
    "open_stream",
    "record",
    "response_with",
    "stream_of",
    "with_model",
]

T = TypeVar("T")
R = TypeVar("R")
Call = Callable[[Provider, ChatRequest], Awaitable[T]]
"""One attempt: ``call_chat`` or ``open_stream``."""
Finish = Callable[[T, list[Attempt]], R]
"""What an attempt loop returns, from the result and the attempts that failed before it:
``response_with`` for ``chat`` (so ``chat`` can return the loop's coroutine itself, one frame fewer on
every call), ``as_pair`` for a stream (``stream_of`` takes the pair)."""


_FIELDS: dict[type[ChatRequest], tuple[str, ...]] = {}


def with_model(request: ChatRequest, model: str | None) -> ChatRequest:
    """``dataclasses.replace(request, model=model)`` at under half its cost (a wrapper does it on every
    call): ``request`` itself when it already asks for ``model``, else a copy of its fields with the new
    model (already normalised by ``__post_init__`` when ``request`` was built, so copied as they are)."""
    if request.model == model:
        return request
    cls = type(request)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name != "model")
    copy = object.__new__(cls)
    put = object.__setattr__  # the class is frozen
    for name in names:
        put(copy, name, getattr(request, name))
    put(copy, "model", model)
    return copy


def call_chat(provider: Provider, request: ChatRequest) -> Awaitable[ChatResponse]:
    """One whole reply: nothing reached the caller until it returns, so any error may be retried.

    A plain function returning ``provider.chat``'s coroutine (not an ``async def`` awaiting it): one
    coroutine frame fewer per wrapper layer on every call."""
    return provider.chat(request)


async def open_stream(provider: Provider, request: ChatRequest) -> ChatStream:
    """Enter ``provider``'s stream and read up to its commit point (the first batch of events).

    An error on entering, or a first batch that is only ``Done(error)``, raises that error after closing
    the stream: nothing was delivered, so the caller's wrapper may try again. A first batch with any
    other event commits: the stream is returned, its first batch not yet consumed.
    """
    stream = provider.chat_stream(request)
    try:
        await stream.__aenter__()
        batch = await stream.first_batch()
    except BaseException:
        await stream.aclose()
        raise
    if batch and type(batch[0]) is Done and batch[0].error is not None:
        await stream.aclose()
        raise batch[0].error
    return stream


class PassThrough:
    """An ``EventSource`` that serves an entered inner stream unchanged (the base of every wrapper's
    source); subclasses add what they do around ``read`` and ``aclose``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: ChatStream) -> None:
        self._inner = inner

    @property
    def request_id(self) -> str | None:
        return self._inner.request_id

    @property
    def model(self) -> str | None:
        return self._inner.model

    @property
    def provider(self) -> str | None:
        return self._inner.provider

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self._inner.attempts

    async def read(self) -> Sequence[StreamEvent]:
        return await self._inner.read()

    async def aclose(self) -> None:
        await self._inner.aclose()


class Committed(PassThrough):
    """The ``EventSource`` of a wrapper's stream: the inner stream it committed to, passed through
    unchanged, with the attempts that failed before it."""

    __slots__ = ("_attempts",)

    def __init__(self, inner: ChatStream, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(inner)
        self._attempts = attempts

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self._attempts


def as_pair(result: T, attempts: list[Attempt]) -> tuple[T, list[Attempt]]:
    """The ``Finish`` of a stream's attempt loop: the result and the attempts, as they are."""
    return result, attempts


def response_with(response: ChatResponse, attempts: Sequence[Attempt]) -> ChatResponse:
    """``response`` carrying the failed ``attempts`` before its own."""
    if not attempts:
        return response
    return dataclasses.replace(response, attempts=(*attempts, *response.attempts))


def stream_of(
    run: Callable[[], Awaitable[tuple[ChatStream, list[Attempt]]]], *, provider: str, model: str | None
) -> ChatStream:
    """A wrapper's stream: entering it runs the wrapper's attempt loop (``run``, with ``open_stream``) and
    reads from the inner stream it committed to; events pass through and are folded once, here."""

    async def opener() -> Committed:
        inner, attempts = await run()
        outer.warnings.extend(inner.warnings)
        return Committed(inner, (*attempts, *inner.attempts))

    outer = ChatStream(opener, provider=provider, model=model)
    return outer


def record(attempts: list[Attempt], provider: Provider, model: str | None, error: LlmError, elapsed: float) -> None:
    """Add the failed attempt(s) behind ``error``: a nested wrapper's ``AllAttemptsFailed`` is flattened."""
    if isinstance(error, AllAttemptsFailed) and error.attempts:
        attempts.extend(error.attempts)
    else:
        attempts.append(Attempt(provider.name, model, error, elapsed))


def failure(attempts: Sequence[Attempt], last: LlmError, *, tries: int, provider: str) -> LlmError:
    """The error a wrapper raises when it gives up: ``last`` unchanged after a single try (a 400 stays an
    ``InvalidRequestError``), else ``AllAttemptsFailed`` with every attempt."""
    if tries == 1:
        return last
    return AllAttemptsFailed(attempts, provider=provider)


def bound(candidates: Sequence[Provider | tuple[Provider, str | None]]) -> tuple[tuple[Provider, str | None], ...]:
    """Each candidate as ``(provider, model)``: a bare provider (or a ``None`` model) asks for its default."""
    pairs = [c if isinstance(c, tuple) else (c, c.model) for c in candidates]
    return tuple((p, m or p.model) for p, m in pairs)


async def close_each(providers: Sequence[Provider]) -> None:
    """``aclose`` every distinct provider once (the same one may stand in several candidates)."""
    closed: set[int] = set()
    for provider in providers:
        if id(provider) not in closed:
            closed.add(id(provider))
            await provider.aclose()


class OverCandidates(Provider):
    """Base of the wrappers over ordered ``(provider, model)`` candidates (``Fallback``, ``Hedged``): what
    they are asked about themselves is the first candidate's, and closing closes each candidate once."""

    candidates: tuple[tuple[Provider, str | None], ...]

    def capabilities(self) -> Capabilities:
        return self.candidates[0][0].capabilities()

    def profile(self) -> ModelProfile:
        return self.candidates[0][0].profile()

    async def list_models(self) -> list[ModelInfo]:
        return await self.candidates[0][0].list_models()

    async def aclose(self) -> None:
        await close_each([provider for provider, _ in self.candidates])
