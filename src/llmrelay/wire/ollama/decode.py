"""Response decoding for Ollama's native API.

A stream (https://github.com/ollama/ollama/blob/main/docs/api/streaming.mdx) is NDJSON, one JSON object a
line, ``application/x-ndjson``. ``/api/chat`` objects carry ``message`` (``content``, ``thinking``,
``tool_calls``); ``/api/generate`` objects carry top-level ``response`` and ``thinking``. The two shapes
share no keys, so one decoder reads both. The last object has ``done: true`` with ``done_reason`` and the
token counts. What is handled:

- tool calls arrive whole, never in fragments: ``{"function": {"name", "arguments": {...}}}`` with the
  arguments as a JSON object; recent servers add an ``id`` (missing from the published schema), older
  ones none: such a call gets the synthetic id ``llmrelay_call_<index>`` (``wire.call_ids``), which the
  encoder recognises and does not send back. Each becomes ``ToolCallStart`` / one ``ToolCallDelta`` with
  its JSON / ``ToolCallEnd``;
- ``message.thinking`` / ``thinking`` (with ``think`` enabled) is reasoning;
- an error after the stream began arrives as a line ``{"error": "..."}`` while the status stays 200
  (docs/api/errors.mdx): it ends the stream with ``Done(finish_reason=ERROR)``;
- a body that ends without a ``done: true`` object (and without an error) was cut: ``ProtocolError``;
- bytes that are not valid UTF-8 become U+FFFD and decoding goes on (``ndjson``), as in every dialect.

A non-streaming body (``"stream": false``) is the same object with the whole message and ``done: true``;
it is turned into the same events and folded.
"""

from __future__ import annotations

import json
from typing import Any

from ..._accumulate import fold
from ..._errors import LlmError, ProtocolError
from ..._events import StreamEvent
from ..._types import ChatResponse
from ..json_text import loads
from ..ndjson import NdjsonDecoder, NdjsonError
from ..stream_state import StreamState
from .errors import error_from_payload
from .maps import map_finish_reason, parse_usage

__all__ = ["OllamaStreamDecoder", "apply_object", "decode_body", "events_from_body"]


def apply_object(state: StreamState, obj: Any) -> None:
    """Apply one response object (a stream line or a whole non-streaming body) to ``state``."""
    if not isinstance(obj, dict):
        state.fail(ProtocolError(f"an Ollama response object is not a JSON object: {str(obj)[:120]!r}"))
        return
    if obj.get("error"):
        state.fail(error_from_payload(obj, body=json.dumps(obj)[:500]))
        return
    model = obj.get("model")
    if isinstance(model, str) and model:
        state.model = model
    message = obj.get("message")
    if isinstance(message, dict):
        _chat_message(state, message)
    thinking = obj.get("thinking")
    if isinstance(thinking, str):
        state.reasoning(thinking)
    response = obj.get("response")
    if isinstance(response, str):
        state.text(response)
    if obj.get("done") is True:
        reason = obj.get("done_reason")
        state.finish_raw = reason if isinstance(reason, str) and reason else None
        usage = parse_usage(obj)
        if usage is not None:
            state.usage = usage
        state.done()


def _chat_message(state: StreamState, message: dict[str, Any]) -> None:
    thinking = message.get("thinking")
    if isinstance(thinking, str):
        state.reasoning(thinking)
    content = message.get("content")
    if isinstance(content, str):
        state.text(content)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                _tool_call(state, call)


def _tool_call(state: StreamState, call: dict[str, Any]) -> None:
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
    name = function.get("name")
    call_id = call.get("id")
    state.tool_whole(
        state.new_index(),
        call_id if isinstance(call_id, str) and call_id else None,
        name if isinstance(name, str) else "",
        function.get("arguments"),
    )


class OllamaStreamDecoder:
    """Incremental decoder of one Ollama NDJSON stream (``/api/chat`` or ``/api/generate``)."""

    __slots__ = ("_ndjson", "_state")

    def __init__(self) -> None:
        self._ndjson = NdjsonDecoder()
        self._state = StreamState(map_finish_reason)

    def feed(self, data: bytes) -> list[StreamEvent]:
        state = self._state
        if state.finished:
            return []
        try:
            objects = self._ndjson.feed(data)
        except NdjsonError as exc:
            # The objects before the malformed line still count, whatever the read boundaries were.
            self._apply(exc.values)
            state.fail(ProtocolError(str(exc)))
            return state.take()
        self._apply(objects)
        return state.take()

    def close(self) -> list[StreamEvent]:
        state = self._state
        if not state.finished:
            try:
                self._apply(self._ndjson.close())
            except NdjsonError as exc:
                state.fail(ProtocolError(str(exc)))
            state.fail(
                ProtocolError(
                    "the Ollama stream ended without its final `done: true` object; the connection was probably cut"
                )
            )
        return state.take()

    def fail(self, error: LlmError) -> list[StreamEvent]:
        self._state.fail(error)
        return self._state.take()

    def _apply(self, objects: list[Any]) -> None:
        state = self._state
        for obj in objects:
            apply_object(state, obj)
            if state.finished:
                break


def events_from_body(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming Ollama body stands for."""
    state = StreamState(map_finish_reason)
    try:
        payload = loads(body)
    except ValueError:
        state.fail(ProtocolError(f"the Ollama response body is not JSON: {body[:120]!r}"))
        return state.take()
    apply_object(state, payload)
    state.fail(ProtocolError("the Ollama response has no `done: true`; it is incomplete"))
    return state.take()


def decode_body(body: bytes) -> ChatResponse:
    """Decode a complete non-streaming body into a ``ChatResponse``."""
    return fold(events_from_body(body))
