"""Response decoding for Cohere's Chat API v2.

A stream (https://docs.cohere.com/reference/chat-stream, https://docs.cohere.com/docs/streaming and
"Streaming for tool use") is server-sent events; each ``data`` is a JSON object whose ``type`` repeats the
``event`` name. One small handler per event type, looked up in ``_HANDLERS``:

- ``message-start`` (``id``), ``content-end``, ``citation-start`` / ``citation-end`` (citations are not
  modelled), ``debug``: nothing to emit;
- ``content-start`` / ``content-delta``: ``delta.message.content.text`` is text and
  ``delta.message.content.thinking`` (reasoning models with ``thinking`` enabled) is reasoning;
- ``tool-plan-delta``: ``delta.message.tool_plan``, the model's plan before it calls tools. It is the
  model narrating its own next steps, not the answer, so it is decoded as **reasoning**
  (``ReasoningDelta``); the encoder sends reasoning back as ``tool_plan`` on assistant messages that carry
  tool calls, so the plan round-trips to the field it came from;
- ``tool-call-start`` (``index``, ``delta.message.tool_calls`` with ``id`` and ``function.name``),
  ``tool-call-delta`` (``function.arguments`` fragments), ``tool-call-end``: the call's start, fragments and
  end, keyed by ``index``;
- ``message-end``: ``delta.finish_reason`` and ``delta.usage``; ``ERROR`` / ``TIMEOUT`` or a
  ``delta.error`` message end the stream with ``Done(finish_reason=ERROR)``.

``message-end`` is both the finish and the terminator: a body that ends without it is truncated
(``ProtocolError``). A ``data: [DONE]`` line, which some proxies append, is ignored. An ``{"error": ...}``
object that is not a Cohere event (no ``type``, or type ``error``; in a ``data:`` line or written outside
SSE framing, as proxies do) ends the stream with that error (``errors.stream_error``).

Calls are keyed by the event's ``index``; a ``tool-call-start`` without one takes the next unused index.
An index whose call has ended and starts again is a new call with its own event index (``StreamState``),
never a restart of the ended one.

A non-streaming body (``{"id", "finish_reason", "message": {"content": [...], "tool_plan", "tool_calls"},
"usage"}``) is turned into the same events and folded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..._accumulate import fold
from ..._errors import LlmError, ProtocolError
from ..._events import StreamEvent
from ..._types import ChatResponse
from ..json_text import loads
from ..sse_stream import SseStreamDecoder
from ..stream_state import StreamState
from .errors import finish_error, stream_error
from .maps import ERROR_FINISHES, map_finish_reason, parse_usage

__all__ = ["CohereStreamDecoder", "decode_body", "events_from_body"]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message_delta(chunk: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(_dict(chunk.get("delta")).get("message"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _content(state: StreamState, content: Any) -> None:
    """A content item or content delta: ``thinking`` is reasoning, ``text`` is text."""
    if not isinstance(content, dict):
        return
    thinking = _str(content.get("thinking"))
    if thinking:
        state.reasoning(thinking)
    text = _str(content.get("text"))
    if text:
        state.text(text)


def _end(state: StreamState, finish: Any, usage: Any, error: Any) -> None:
    """``message-end`` (or the end of a body): finish reason, usage, and an error if the generation failed."""
    raw = _str(finish)
    state.finish_raw = raw
    parsed = parse_usage(usage)
    if parsed is not None:
        state.usage = parsed
    message = _str(error)
    if message or (raw is not None and raw.upper() in ERROR_FINISHES):
        state.fail(finish_error(raw, message))
    else:
        state.done()


class CohereStreamDecoder(SseStreamDecoder):
    """Incremental decoder of one Cohere v2 chat event stream."""

    __slots__ = ("_last_tool",)
    terminator = "message-end event"
    vendor = "Cohere "

    def __init__(self) -> None:
        super().__init__(StreamState(map_finish_reason))
        self._last_tool: int | None = None

    def _event(self, kind: str, data: str) -> None:
        if data.strip() == "[DONE]":
            return
        chunk = self._json_object(data)
        if chunk is None:
            return
        etype = _str(chunk.get("type")) or kind
        handler = _HANDLERS.get(etype)
        if handler is not None:
            handler(self, chunk)
        elif chunk.get("error") and (etype == "error" or not _str(chunk.get("type"))):
            self._state.fail(stream_error(chunk, data))

    def _error(self, payload: dict[str, Any], text: str) -> LlmError:
        return stream_error(payload, text)

    # --- one handler per event type ----------------------------------------------------------------

    def _content(self, chunk: dict[str, Any]) -> None:
        _content(self._state, _message_delta(chunk).get("content"))

    def _tool_plan(self, chunk: dict[str, Any]) -> None:
        plan = _str(_message_delta(chunk).get("tool_plan")) or _str(_dict(chunk.get("delta")).get("tool_plan"))
        if plan:
            self._state.reasoning(plan)

    def _index(self, chunk: dict[str, Any]) -> int | None:
        index = chunk.get("index")
        return index if isinstance(index, int) and not isinstance(index, bool) else self._last_tool

    @staticmethod
    def _call(chunk: dict[str, Any]) -> dict[str, Any]:
        calls = _message_delta(chunk).get("tool_calls")
        if isinstance(calls, list):
            calls = calls[0] if calls else None
        return _dict(calls)

    def _tool_start(self, chunk: dict[str, Any]) -> None:
        state = self._state
        index = chunk.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = state.new_index()
        call = self._call(chunk)
        function = _dict(call.get("function"))
        state.tool_start(index, _str(call.get("id")) or None, _str(function.get("name")) or "")
        state.tool_delta(index, _str(function.get("arguments")) or "")
        self._last_tool = index

    def _tool_delta(self, chunk: dict[str, Any]) -> None:
        index = self._index(chunk)
        if index is not None:
            arguments = _str(_dict(self._call(chunk).get("function")).get("arguments"))
            self._state.tool_delta(index, arguments or "")

    def _tool_end(self, chunk: dict[str, Any]) -> None:
        index = self._index(chunk)
        if index is not None:
            self._state.tool_end(index)

    def _message_end(self, chunk: dict[str, Any]) -> None:
        delta = _dict(chunk.get("delta"))
        _end(self._state, delta.get("finish_reason"), delta.get("usage"), delta.get("error"))


_HANDLERS: Mapping[str, Callable[[CohereStreamDecoder, dict[str, Any]], None]] = {
    "content-start": CohereStreamDecoder._content,
    "content-delta": CohereStreamDecoder._content,
    "tool-plan-delta": CohereStreamDecoder._tool_plan,
    "tool-call-start": CohereStreamDecoder._tool_start,
    "tool-call-delta": CohereStreamDecoder._tool_delta,
    "tool-call-end": CohereStreamDecoder._tool_end,
    "message-end": CohereStreamDecoder._message_end,
}


def events_from_body(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming ``/v2/chat`` body stands for."""
    state = StreamState(map_finish_reason)
    try:
        payload = loads(body)
    except ValueError:
        state.fail(ProtocolError(f"the Cohere response body is not JSON: {body[:120]!r}"))
        return state.take()
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
        state.fail(ProtocolError(f"the Cohere response has no message: {body[:120]!r}"))
        return state.take()
    message = payload["message"]
    content = message.get("content")
    if isinstance(content, str):
        state.text(content)
    elif isinstance(content, list):
        for item in content:
            _content(state, item)
    plan = _str(message.get("tool_plan"))
    if plan:
        state.reasoning(plan)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for i, call in enumerate(calls):
            if isinstance(call, dict):
                function = _dict(call.get("function"))
                state.tool_whole(
                    i, _str(call.get("id")) or None, _str(function.get("name")) or "", function.get("arguments") or ""
                )
    _end(state, payload.get("finish_reason"), payload.get("usage"), payload.get("error"))
    return state.take()


def decode_body(body: bytes) -> ChatResponse:
    """Decode a complete non-streaming body into a ``ChatResponse``."""
    return fold(events_from_body(body))
