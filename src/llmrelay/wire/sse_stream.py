"""The shared shell of every event-stream dialect decoder.

``SseFrames`` reads an event stream into *frames*, in wire order: the SSE events, and JSON written into
the stream without SSE framing (``RawJson``). Servers and proxies do write such lines: Gemini appends a
pretty-printed ``{"error": ...}`` after its events when a model becomes overloaded mid-stream, and proxies
answer a streaming request with a bare ``{"error": ...}`` line and a ``text/event-stream`` type. The WHATWG
standard ignores lines whose field name it does not know, so the SSE decoder collects them
(``keep_stray_lines``), each with its place among the events, so frames keep the wire order; a stray
line starting with ``{`` or ``[`` opens a buffer that is parsed when its brackets close (more than 1 MiB
of such text, or text that still is not JSON after 32 tries, is a ``FramingError``).

``SseStreamDecoder`` is the base class of the dialects whose stream has a terminator (OpenAI ``[DONE]``,
Anthropic ``message_stop``, Cohere ``message-end``): SSE framing, the stream laws (through
``StreamState``), oversized lines, an error object in the stream in either form (decoded as the dialect's
own error, with the server's message), and the truncation rule: a body that ends before the dialect's
terminator ends in ``Done(error=ProtocolError)`` -- unless the dialect says the answer was already complete
(``_complete_at_eof``). A dialect subclasses it and implements ``_event``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import LlmError, ProtocolError
from .._events import StreamEvent
from .sse import SseDecoder, SseEvent, SseLineTooLong
from .stream_state import StreamState

__all__ = ["Frame", "FramingError", "RawJson", "SseFrames", "SseStreamDecoder"]

_MAX_RAW_JSON = 1024 * 1024
_MAX_RAW_TRIES = 32


@dataclass(frozen=True, slots=True)
class RawJson:
    """A JSON value written into the event stream without SSE framing."""

    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class FramingError:
    """The stream cannot be read further (an oversized line, too much raw text)."""

    message: str


Frame = SseEvent | RawJson | FramingError


class SseFrames:
    """SSE events and raw JSON values of one event stream, in wire order; see the module docstring."""

    __slots__ = ("_depth", "_raw", "_raw_size", "_sse", "_tries")

    def __init__(self) -> None:
        self._sse = SseDecoder(keep_stray_lines=True)
        self._raw: list[str] = []
        self._raw_size = 0
        self._depth = 0
        self._tries = 0

    @property
    def discarded_partial(self) -> bool:
        """True when an unfinished SSE event was pending at the end (checked after ``close``)."""
        return self._sse.discarded_partial

    @property
    def at_event_start(self) -> bool:
        """True between two events, with no raw JSON text buffered (``SseDecoder.at_event_start``)."""
        return not self._raw and self._sse.at_event_start

    @property
    def in_raw_json(self) -> bool:
        """True while raw JSON text is buffered whose brackets have not closed."""
        return bool(self._raw)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they complete. A ``FramingError`` is always the last frame."""
        try:
            events = self._sse.feed(data)
        except SseLineTooLong as exc:
            return self._merge(exc.events, FramingError(str(exc)))
        if not self._sse.stray_lines:
            return list(events)
        return self._merge(events, None)

    def close(self) -> list[Frame]:
        """End of stream: the frames a last unterminated line completes."""
        self._sse.close()
        return self._merge([], None)

    def _merge(self, events: list[SseEvent], error: FramingError | None) -> list[Frame]:
        """The events with the stray lines' raw JSON in between, where each line was in the stream."""
        out: list[Frame] = []
        done = 0
        stray = self._sse.stray_lines
        try:
            for line in stray:
                out.extend(events[done : line.before])
                done = line.before
                failed = self._raw_line(line.text, out)
                if failed is not None:
                    out.append(failed)
                    return out
        finally:
            stray.clear()
        out.extend(events[done:])
        if error is not None:
            out.append(error)
        return out

    def _raw_line(self, line: str, out: list[Frame]) -> FramingError | None:
        if not self._raw and not line.lstrip().startswith(("{", "[")):
            return None  # an unknown SSE field: ignored, as the standard says
        self._raw.append(line)
        self._raw_size += len(line) + 1
        # Parse only when the brackets (counted naively) have closed, and give up after a few failed tries,
        # so hostile text costs linear time, not a parse of the growing buffer at every line.
        self._depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
        if self._depth <= 0:
            text = "\n".join(self._raw)
            try:
                value = json.loads(text)
            except ValueError:
                self._tries += 1
                if self._tries >= _MAX_RAW_TRIES:
                    return FramingError("the event stream carries text that is neither SSE nor JSON")
            else:
                self._raw = []
                self._raw_size = self._depth = self._tries = 0
                out.append(RawJson(value, text))
                return None
        if self._raw_size > _MAX_RAW_JSON:
            return FramingError("the event stream carries more than 1 MiB of text that is not SSE")
        return None


class SseStreamDecoder:
    """Base class: ``feed`` / ``close`` / ``fail`` over ``SseFrames`` and a ``StreamState``."""

    __slots__ = ("_frames", "_state")

    terminator: ClassVar[str] = "its terminator"
    """What a complete stream ends with, for the truncation error (``[DONE]``, ``message_stop``...)."""
    vendor: ClassVar[str] = ""
    """Named in protocol errors (``"Cohere "``), empty for the common dialect."""

    def __init__(self, state: StreamState) -> None:
        self._frames = SseFrames()
        self._state = state

    def feed(self, data: bytes) -> list[StreamEvent]:
        state = self._state
        if state.finished:
            return []
        self._frames_in(self._frames.feed(data))
        return state.take()

    def close(self) -> list[StreamEvent]:
        state = self._state
        if not state.finished:
            self._frames_in(self._frames.close())
        if not state.finished:
            if self._frames.in_raw_json:
                state.fail(ProtocolError(f"the {self.vendor}stream ended inside a raw JSON object (an error report?)"))
            elif self._complete_at_eof():
                state.done()
            else:
                what = "a partial event" if self._frames.discarded_partial else f"no {self.terminator}"
                state.fail(
                    ProtocolError(
                        f"the {self.vendor}stream ended before it was complete ({what}); "
                        "the connection was probably cut"
                    )
                )
        return state.take()

    def fail(self, error: LlmError) -> list[StreamEvent]:
        self._state.fail(error)
        return self._state.take()

    def _frames_in(self, frames: list[Frame]) -> None:
        state = self._state
        for frame in frames:
            if type(frame) is SseEvent:
                self._event(frame.event, frame.data)
            elif isinstance(frame, RawJson):
                if isinstance(frame.value, dict) and frame.value.get("error"):
                    state.fail(self._error(frame.value, frame.text))
            elif isinstance(frame, FramingError):
                state.fail(ProtocolError(frame.message))
            if state.finished:
                break

    def _event(self, kind: str, data: str) -> None:
        raise NotImplementedError

    def _error(self, payload: dict[str, Any], text: str) -> LlmError:
        """The dialect's error for an error object found in the stream (``{"error": ...}``)."""
        raise NotImplementedError

    def _complete_at_eof(self) -> bool:
        """Whether a body that ends here, before the terminator, still holds the whole answer."""
        return False

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
