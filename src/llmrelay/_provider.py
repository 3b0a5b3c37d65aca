"""The ``Provider`` interface and the ``ChatStream`` resource every provider and wrapper returns.

A provider is anything with ``chat`` and ``chat_stream``; wrappers (retry, fallback, rate limits,
metering) implement the same interface around another provider, so they compose by wrapping.

``chat_stream(request)`` returns a ``ChatStream`` that does nothing until entered::

    async with provider.chat_stream(request) as stream:   # sends; raises HTTP-level errors here
        async for event in stream:                        # TextDelta, ToolCallStart, ..., Done
            ...
        reply = stream.response()                         # the fold of what was streamed

Leaving the block early, or cancelling the task, closes the upstream connection at once.
When an error ends the stream after it began, the last event is ``Done(finish_reason=ERROR, error=e)``
and the next step of the iteration raises ``e``; ``stream.response()`` still holds the partial output.

Creating a stream never raises: every error (a bad request, a missing model, an unsupported setting)
surfaces on entering it. A wrapper (retry, fallback) uses the **commit point**: it enters an inner stream,
looks at ``await inner.first_batch()`` (read, not consumed), and either abandons it (``aclose``, which
closes its connection) or commits to it by making it the source of its own ``ChatStream``: a
``ChatStream`` is itself an ``EventSource`` whose ``read()`` passes batches through unfolded, so events
are folded once, by the outermost stream. ``provider``, ``model`` and ``attempts`` come from the source
that answered (an ``EventSource`` may carry ``provider`` and ``attempts``), not from the stream's builder.
"""

from __future__ import annotations

import warnings as _warnings
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from ._accumulate import Accumulator
from ._errors import Attempt, LlmError, UnsupportedCapability
from ._events import Done, StreamEvent
from ._types import CallWarning, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from .profiles import ModelProfile

__all__ = [
    "Capabilities",
    "ChatStream",
    "EventSource",
    "LlmRelayWarning",
    "ModelInfo",
    "Provider",
]


class LlmRelayWarning(UserWarning):
    """Category of the Python warnings llmrelay emits for settings a provider cannot honour."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider (for its configured model) can do; ``llmrelay.profiles`` holds them per model."""

    streaming: bool = True
    tools: bool = True
    parallel_tools: bool = True
    vision: bool = False
    json_schema: bool = False
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model a provider lists."""

    id: str
    provider: str
    owned_by: str | None = None
    created: int | None = None


class EventSource(Protocol):
    """What a ``ChatStream`` reads from once opened: batches of events, then an empty batch at the end.

    A source may also have ``provider`` (who answered, when not the stream's builder: a wrapper's inner
    provider) and ``attempts`` (the failed attempts before it, ``tuple[Attempt, ...]``); ``ChatStream``
    reads them when present.
    """

    @property
    def request_id(self) -> str | None:
        """The provider's id for this request, when it sent one."""
        ...

    @property
    def model(self) -> str | None:
        """The model that answered, once known."""
        ...

    async def read(self) -> Sequence[StreamEvent]:
        """The next events; an empty sequence once ``Done`` has been returned."""
        ...

    async def aclose(self) -> None:
        """Release the upstream (closing the connection if the stream was not read to the end)."""
        ...


class ChatStream:
    """An async context manager and async iterator of ``StreamEvent``; see the module docstring.

    It is also an ``EventSource`` (``read``, ``aclose``, ``request_id``, ``model``, plus ``provider``
    and ``attempts``), so a wrapper can hand an entered inner stream to its own ``ChatStream`` and the
    events pass through unchanged, folded only by the outer one.
    """

    __slots__ = (
        "_acc",
        "_batch",
        "_error",
        "_finished",
        "_model",
        "_opener",
        "_pos",
        "_provider",
        "_source",
        "warnings",
    )

    def __init__(
        self,
        opener: Callable[[], Awaitable[EventSource]],
        *,
        provider: str | None = None,
        model: str | None = None,
        warnings: Sequence[CallWarning] = (),
    ) -> None:
        self._opener = opener
        self._source: EventSource | None = None
        self._batch: Sequence[StreamEvent] = ()
        self._pos = 0
        self._acc = Accumulator()
        self._error: LlmError | None = None
        self._finished = False
        self._provider = provider
        self._model = model
        self.warnings: list[CallWarning] = list(warnings)
        """Settings the provider could not honour for this request (known once the stream is entered)."""

    async def __aenter__(self) -> Self:
        if self._source is not None:
            raise RuntimeError("a ChatStream can be entered only once")
        self._source = await self._opener()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the upstream now (idempotent)."""
        self._finished = True
        source = self._source
        if source is not None:
            await source.aclose()

    @property
    def request_id(self) -> str | None:
        """The provider's id for this request, when it sent one."""
        return self._source.request_id if self._source is not None else None

    @property
    def provider(self) -> str | None:
        """Who answered: the source's provider when it names one (a wrapper's inner provider), else the
        provider that built this stream."""
        provider: str | None = getattr(self._source, "provider", None)
        return provider or self._provider

    @property
    def model(self) -> str | None:
        """The model that answered when the source says so, else the one asked for."""
        source = self._source
        return source.model if source is not None and source.model else self._model

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """The failed attempts a wrapper made before the one that answered (empty without wrappers)."""
        attempts: tuple[Attempt, ...] = getattr(self._source, "attempts", ())
        return attempts

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        while True:
            pos = self._pos
            if pos < len(self._batch):
                event = self._batch[pos]
                self._pos = pos + 1
                self._acc.add(event)
                if type(event) is Done:
                    self._error = event.error
                return event
            if self._acc.done is not None or self._finished:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            source = self._source
            if source is None:
                raise RuntimeError("enter the stream first: `async with provider.chat_stream(request) as stream:`")
            self._batch = await source.read()
            self._pos = 0
            if not self._batch:
                self._finished = True

    async def first_batch(self) -> Sequence[StreamEvent]:
        """The commit point: the first non-empty batch of events (empty if the source ended with none),
        read without consuming it, so iteration (or ``read``) yields it next. Call it after entering."""
        source = self._source
        if source is None:
            raise RuntimeError("enter the stream first: `async with provider.chat_stream(request) as stream:`")
        while self._pos >= len(self._batch) and not self._finished:
            self._batch = await source.read()
            self._pos = 0
            if not self._batch:
                self._finished = True
        return self._batch[self._pos :]

    async def read(self) -> Sequence[StreamEvent]:
        """The next batch, passed through unfolded (``EventSource.read``): for a wrapper's ``ChatStream``
        reading this one. Don't mix it with iterating this stream."""
        batch, pos = self._batch, self._pos
        if pos < len(batch):
            self._batch, self._pos = (), 0
            return batch[pos:] if pos else batch
        source = self._source
        if self._finished or source is None:
            return ()
        batch = await source.read()
        if not batch:
            self._finished = True
        return batch

    def response(self) -> ChatResponse:
        """Fold what has been streamed so far into a ``ChatResponse``."""
        return self._acc.response(
            provider=self.provider,
            model=self.model,
            request_id=self.request_id,
            warnings=self.warnings,
            attempts=self.attempts,
        )

    async def until_done(self) -> ChatResponse:
        """Consume the rest of the stream and return the whole response (errors are raised)."""
        async for _ in self:
            pass
        return self.response()


class Provider(ABC):
    """One model endpoint behind the common interface. Use as ``async with`` or ``await p.aclose()``."""

    name: str
    """The provider's name in model strings and errors (``openai``, ``groq``, ...)."""
    model: str | None
    """The default model, used when a request names none."""

    def capabilities(self) -> Capabilities:
        """What this provider can do with its default model: its profile's flags (see ``profile``)."""
        return self.profile().capabilities()

    def profile(self) -> ModelProfile:
        """The default model's profile (context window, output limit, capabilities) from the table in
        ``llmrelay.profiles``, looked up by this provider's name and model."""
        from .profiles import profile_for

        return profile_for(self.name, self.model)

    async def list_models(self) -> list[ModelInfo]:
        """The models the provider offers, where it can list them."""
        raise UnsupportedCapability(f"{self.name} cannot list its models", provider=self.name)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """One complete reply. The default folds ``chat_stream``; HTTP providers use their non-stream API."""
        async with self.chat_stream(request) as stream:
            return await stream.until_done()

    @abstractmethod
    def chat_stream(self, request: ChatRequest) -> ChatStream:
        """A stream of events for one reply; see ``ChatStream``."""

    async def aclose(self) -> None:
        """Release pooled connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def emit_warnings(provider: str, warnings: Sequence[CallWarning]) -> None:
    """Make unsupported settings visible as Python warnings too (filterable by ``LlmRelayWarning``)."""
    for w in warnings:
        _warnings.warn(f"{provider}: {w}", LlmRelayWarning, stacklevel=4)
