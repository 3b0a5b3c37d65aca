"""Response decoding for the Anthropic Messages API.

A stream (https://platform.claude.com/docs/en/build-with-claude/streaming) is a sequence of server-sent events,
each ``event: <type>`` with a JSON ``data`` whose ``type`` repeats the name:

- ``message_start``: the message shell: ``id``, ``model``, ``usage`` (input counts, a first ``output_tokens``);
- ``content_block_start`` / ``content_block_delta`` / ``content_block_stop``, one group per content block,
  keyed by the block's ``index``; a handler per block kind below;
- ``message_delta``: ``delta.stop_reason`` and the cumulative ``usage`` (merged field by field);
- ``message_stop``: the end (``Done``); ``ping``: keep-alive;
- ``error``: an error after the 200 status (``overloaded_error`` mid-stream), ending the stream with
  ``Done(finish_reason=ERROR)``. An error object without a ``type`` (a proxy's ``data: {"error": ...}``,
  or a bare ``{"error": ...}`` line outside SSE framing) is the same error.

Block kinds (https://platform.claude.com/docs/en/api/messages, ``content``):

- ``text`` with ``text_delta`` (``citations_delta`` is ignored);
- ``tool_use`` with ``input_json_delta`` fragments: a ``ToolCallStart`` at the block start, the fragments as
  ``ToolCallDelta``, ``ToolCallEnd`` at ``content_block_stop``. Calls are numbered 0, 1, ... in block order,
  whatever their block index. A call still open at the end (``max_tokens`` in the middle of the JSON) is
  closed with its raw text and ``arguments=None``, never a made-up dict;
- ``thinking`` with ``thinking_delta`` and one ``signature_delta`` at the end of the block
  (https://platform.claude.com/docs/en/build-with-claude/extended-thinking), the signature sent as
  ``ReasoningDelta("", signature=...)`` so the accumulator keeps the block for the next turn;
- ``redacted_thinking`` (encrypted ``data``): the event union cannot carry it yet, so it is skipped;
- server tools (``server_tool_use``, ``web_search_tool_result``, ...) run on Anthropic's side and are
  skipped; their ``input_json_delta`` fragments fall on no open call.

Unknown event and block types are ignored, as the streaming guide asks ("handle unknown event types
gracefully").

The end. The streaming guide's event flow ends with ``message_stop``, after "one or more
``message_delta`` events" that carry the top-level changes: ``stop_reason`` and the final cumulative
``usage``. The ``message_delta`` with a ``stop_reason`` comes after every ``content_block_stop``, so once it
has arrived the answer is complete and ``message_stop`` adds nothing: a body that ends after it ends
normally (the same rule as an OpenAI stream without ``[DONE]``). A body that ends before any
``stop_reason`` is truncated: ``ProtocolError``.

A non-streaming body (a ``message`` object) is turned into the same events through the same ``StreamState``
and folded, so ``chat()`` and ``chat_stream()`` share one accumulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..._accumulate import fold
from ..._errors import LlmError, ProtocolError
from ..._events import StreamEvent
from ..._types import ChatResponse
from ..json_text import loads
from ..sse_stream import SseStreamDecoder
from ..stream_state import StreamState
from .errors import error_from_payload
from .maps import map_finish_reason, merge_usage, parse_usage

__all__ = ["AnthropicStreamDecoder", "decode_body", "events_from_body"]


class _Message:
    """What one message's decoding shares between the stream and the body paths: the state, the usage seen
    so far, and which content block indexes are tool calls (block index -> call index)."""

    __slots__ = ("calls", "state", "usage")

    def __init__(self) -> None:
        self.state = StreamState(map_finish_reason)
        self.usage: dict[str, int] = {}
        self.calls: dict[int, int] = {}

    def add_usage(self, usage: Any) -> None:
        merge_usage(self.usage, usage)
        self.state.usage = parse_usage(self.usage)

    def set_model(self, model: Any) -> None:
        if isinstance(model, str) and model:
            self.state.model = model

    # --- one handler per block kind: start ---------------------------------------------------------

    def start_block(self, index: int, block: dict[str, Any]) -> None:
        handler = _BLOCK_STARTS.get(str(block.get("type")))
        if handler is not None:
            handler(self, index, block)

    def _start_text(self, index: int, block: dict[str, Any]) -> None:
        text = block.get("text")
        if isinstance(text, str):
            self.state.text(text)

    def _start_thinking(self, index: int, block: dict[str, Any]) -> None:
        thinking = block.get("thinking")
        if isinstance(thinking, str):
            self.state.reasoning(thinking)
        # A complete block (a non-streaming body) carries its signature; a streamed one starts with "".
        signature = block.get("signature")
        if isinstance(signature, str) and signature:
            self.state.reasoning("", signature=signature)

    def _start_tool_use(self, index: int, block: dict[str, Any]) -> None:
        call = self.state.new_index()
        self.calls[index] = call
        call_id = block.get("id")
        name = block.get("name")
        self.state.tool_start(
            call, call_id if isinstance(call_id, str) else None, name if isinstance(name, str) else ""
        )
        # Streams start with ``input: {}`` and send the JSON as fragments; a whole block carries it here.
        tool_input = block.get("input")
        if tool_input:
            self.state.tool_delta(call, tool_input if isinstance(tool_input, str) else json.dumps(tool_input))

    # --- deltas and stops ---------------------------------------------------------------------------

    def delta(self, index: int, delta: dict[str, Any]) -> None:
        state = self.state
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str):
                state.text(text)
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json")
            call = self.calls.get(index)
            if call is not None and isinstance(fragment, str):
                state.tool_delta(call, fragment)
        elif kind == "thinking_delta":
            thinking = delta.get("thinking")
            if isinstance(thinking, str):
                state.reasoning(thinking)
        elif kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str) and signature:
                state.reasoning("", signature=signature)

    def stop_block(self, index: int) -> None:
        call = self.calls.get(index)
        if call is not None:
            self.state.tool_end(call)

    def finish(self, stop_reason: Any) -> None:
        if isinstance(stop_reason, str) and stop_reason:
            self.state.finish_raw = stop_reason


_BLOCK_STARTS: dict[str, Callable[[_Message, int, dict[str, Any]], None]] = {
    "text": _Message._start_text,
    "thinking": _Message._start_thinking,
    "tool_use": _Message._start_tool_use,
    "redacted_thinking": lambda m, i, b: m.state.reasoning("", redacted=str(b.get("data", ""))),
}
"""Client-visible block kinds; everything else (server tools, their results) is skipped."""


def _index(payload: dict[str, Any]) -> int | None:
    index = payload.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


class AnthropicStreamDecoder(SseStreamDecoder):
    """Incremental decoder of one Messages API event stream."""

    __slots__ = ("_message",)
    terminator = "message_stop event"

    def __init__(self) -> None:
        message = _Message()
        super().__init__(message.state)
        self._message = message

    def _complete_at_eof(self) -> bool:
        return self._state.finish_raw is not None

    def _error(self, payload: dict[str, Any], text: str) -> LlmError:
        return error_from_payload(payload, body=text)

    def _event(self, name: str, data: str) -> None:
        message = self._message
        state = message.state
        try:
            payload = json.loads(data)
        except ValueError:
            if name == "error":
                # A proxy's plain-text error event is still the provider's error, not a framing fault.
                state.fail(error_from_payload({"error": {"message": data.strip()[:300]}}, body=data))
            else:
                state.fail(ProtocolError(f"a stream event is not JSON: {data[:120]!r}"))
            return
        if not isinstance(payload, dict):
            state.fail(ProtocolError(f"a stream event is not a JSON object: {data[:120]!r}"))
            return
        kind = payload.get("type")
        if not isinstance(kind, str):
            if payload.get("error"):
                state.fail(error_from_payload(payload, body=data))
                return
            kind = name
        if kind == "content_block_delta":
            index = _index(payload)
            delta = payload.get("delta")
            if index is not None and isinstance(delta, dict):
                message.delta(index, delta)
        elif kind == "content_block_start":
            index = _index(payload)
            block = payload.get("content_block")
            if index is not None and isinstance(block, dict):
                message.start_block(index, block)
        elif kind == "content_block_stop":
            index = _index(payload)
            if index is not None:
                message.stop_block(index)
        elif kind == "message_start":
            shell = payload.get("message")
            if isinstance(shell, dict):
                message.set_model(shell.get("model"))
                message.add_usage(shell.get("usage"))
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                message.finish(delta.get("stop_reason"))
            message.add_usage(payload.get("usage"))
        elif kind == "message_stop":
            state.done()
        elif kind == "error" or name == "error":
            state.fail(error_from_payload(payload, body=data))


def events_from_body(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming ``message`` body stands for."""
    message = _Message()
    state = message.state
    try:
        payload = loads(body)
    except ValueError:
        state.fail(ProtocolError(f"the response body is not JSON: {body[:120]!r}"))
        return state.take()
    if not isinstance(payload, dict):
        state.fail(ProtocolError("the response body is not a JSON object"))
        return state.take()
    if payload.get("type") == "error" or isinstance(payload.get("error"), dict):
        state.fail(error_from_payload(payload, body=body.decode("utf-8", "replace")))
        return state.take()
    content = payload.get("content")
    if not isinstance(content, list):
        state.fail(ProtocolError("the response body has no content list"))
        return state.take()
    message.set_model(payload.get("model"))
    message.add_usage(payload.get("usage"))
    for index, block in enumerate(content):
        if isinstance(block, dict):
            message.start_block(index, block)
            message.stop_block(index)
    message.finish(payload.get("stop_reason"))
    state.done()
    return state.take()


def decode_body(body: bytes) -> ChatResponse:
    """Decode a complete non-streaming body into a ``ChatResponse``."""
    return fold(events_from_body(body))
