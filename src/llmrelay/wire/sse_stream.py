"""The shared shell of every event-stream dialect decoder: SSE framing, the stream laws (through
``StreamState``), oversized lines, and the truncation rule (a body that ends before the dialect's
terminator ends in ``Done(error=ProtocolError)``). A dialect subclasses it and implements ``_event``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from .._errors import LlmError, ProtocolError
from .._events import StreamEvent
from .sse import SseDecoder, SseLineTooLong
from .stream_state import StreamState

__all__ = ["SseStreamDecoder"]


class SseStreamDecoder:
    """Base class: ``feed`` / ``close`` / ``fail`` over an ``SseDecoder`` and a ``StreamState``."""

    __slots__ = ("_sse", "_state")

    terminator: ClassVar[str] = "its terminator"
    """What a complete stream ends with, for the truncation error (``[DONE]``, ``message_stop``...)."""
    vendor: ClassVar[str] = ""
    """Named in protocol errors (``"Cohere "``), empty for the common dialect."""

    def __init__(self, state: StreamState) -> None:
        self._sse = SseDecoder()
        self._state = state

    def feed(self, data: bytes) -> list[StreamEvent]:
        state = self._state
        if state.finished:
            return []
        try:
            events = self._sse.feed(data)
        except SseLineTooLong as exc:
            state.fail(ProtocolError(str(exc)))
            return state.take()
        for event in events:
            self._event(event.event, event.data)
            if state.finished:
                break
        return state.take()

    def close(self) -> list[StreamEvent]:
        state = self._state
        if not state.finished:
            self._sse.close()
            what = "a partial event" if self._sse.discarded_partial else f"no {self.terminator}"
            state.fail(
                ProtocolError(
                    f"the {self.vendor}stream ended before it was complete ({what}); the connection was probably cut"
                )
            )
        return state.take()

    def fail(self, error: LlmError) -> list[StreamEvent]:
        self._state.fail(error)
        return self._state.take()

    def _event(self, kind: str, data: str) -> None:
        raise NotImplementedError

    def _json_object(self, data: str) -> dict[str, Any] | None:
        """The event's data as a JSON object; anything else ends the stream with a ``ProtocolError``."""
        try:
            value = json.loads(data)
        except ValueError:
            self._state.fail(ProtocolError(f"a {self.vendor}stream event is not JSON: {data[:120]!r}"))
            return None
        if not isinstance(value, dict):
            self._state.fail(ProtocolError(f"a {self.vendor}stream event is not a JSON object: {data[:120]!r}"))
            return None
        return value
