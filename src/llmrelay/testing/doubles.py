"""Providers for users' own tests: no network, real ``Provider`` semantics (``ChatStream``, the stream
laws, errors raised on entering the stream).

- ``ScriptedProvider``: answers each call with the next scripted item -- a text, a ``ChatResponse``, a
  list of events, or an ``LlmError`` to raise -- optionally pausing between events; records requests.
- ``FunctionProvider``: a function of the request computes the reply (sync or async; it may return any
  scripted item, or an async iterator of events for true streaming).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from .._accumulate import events_for
from .._errors import InvalidRequestError, LlmError
from .._events import Done, StreamEvent
from .._provider import Capabilities, ChatStream, Provider
from .._types import ChatRequest, ChatResponse, FinishReason

__all__ = ["FunctionProvider", "ScriptItem", "ScriptedProvider", "events_for"]

ScriptItem = str | ChatResponse | Sequence[StreamEvent] | LlmError


def _to_events(item: str | ChatResponse | Sequence[StreamEvent]) -> list[StreamEvent]:
    if isinstance(item, str):
        return events_for(ChatResponse(text=item, finish_reason=FinishReason.STOP, finish_reason_raw="stop"))
    if isinstance(item, ChatResponse):
        return events_for(item)
    events = list(item)
    if not events or not isinstance(events[-1], Done):
        events.append(Done(FinishReason.STOP, "stop"))
    return events


class _ListSource:
    """An ``EventSource`` over a list or an async iterator of events, with an optional pause per event."""

    def __init__(
        self, events: Iterable[StreamEvent] | AsyncIterator[StreamEvent], delay: float, model: str | None
    ) -> None:
        self._events = events
        self._iter: AsyncIterator[StreamEvent] | None = events if isinstance(events, AsyncIterator) else None
        self._pending = deque(events) if not isinstance(events, AsyncIterator) else deque()
        self._delay = delay
        self.request_id: str | None = None
        self.model = model
        self._done = False
        self.closed = False

    async def read(self) -> Sequence[StreamEvent]:
        if self._done:
            return ()
        if self._iter is not None:
            try:
                event = await anext(self._iter)
            except StopAsyncIteration:
                self._done = True
                return [Done(FinishReason.STOP, "stop")]
        elif self._pending:
            event = self._pending.popleft()
        else:
            self._done = True
            return [Done(FinishReason.STOP, "stop")]
        if self._delay:
            await asyncio.sleep(self._delay)
        if isinstance(event, Done):
            self._done = True
        return [event]

    async def aclose(self) -> None:
        self.closed = True
        if self._iter is not None and hasattr(self._iter, "aclose"):
            await self._iter.aclose()


class ScriptedProvider(Provider):
    """Replays a script, one item per call, in order. Running out of items is an error that says so."""

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        name: str = "scripted",
        model: str | None = "scripted-model",
        delay: float = 0.0,
        capabilities: Capabilities | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self._script: deque[ScriptItem] = deque(script)
        self.delay = delay
        self.requests: list[ChatRequest] = []
        self._capabilities = capabilities or Capabilities(vision=True, json_schema=True, reasoning=True)

    def add(self, *items: ScriptItem) -> ScriptedProvider:
        self._script.extend(items)
        return self

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def _next(self, request: ChatRequest) -> ScriptItem:
        self.requests.append(request)
        if not self._script:
            raise InvalidRequestError(
                f"{self.name}: the script is exhausted after {len(self.requests) - 1} calls; add more items",
                provider=self.name,
            )
        return self._script.popleft()

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def open_source() -> _ListSource:
            item = self._next(request)
            if isinstance(item, LlmError):
                raise item
            return _ListSource(_to_events(item), self.delay, request.model or self.model)

        return ChatStream(open_source, provider=self.name, model=request.model or self.model)


Reply = ScriptItem | AsyncIterator[StreamEvent]


class FunctionProvider(Provider):
    """Computes each reply with ``function(request)``; see the module docstring."""

    def __init__(
        self,
        function: Callable[[ChatRequest], Reply | Awaitable[Reply]],
        *,
        name: str = "function",
        model: str | None = "function-model",
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.model = model
        self._function = function
        self.delay = delay
        self.requests: list[ChatRequest] = []

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def open_source() -> _ListSource:
            self.requests.append(request)
            result = self._function(request)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, LlmError):
                raise result
            if isinstance(result, AsyncIterator):
                return _ListSource(result, self.delay, request.model or self.model)
            return _ListSource(_to_events(result), self.delay, request.model or self.model)

        return ChatStream(open_source, provider=self.name, model=request.model or self.model)
