"""Response encoding for a served Anthropic Messages endpoint: events -> the Messages event stream,
``ChatResponse`` -> ``message`` body, ``LlmError`` -> error body.

The stream (https://platform.claude.com/docs/en/build-with-claude/streaming) is ``message_start`` (the
shell: ``id`` ``msg_...``, the model that actually answered, zero usage), then one group of
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` per block, numbered 0, 1, ...,
then ``message_delta`` (``stop_reason`` and the whole usage: Anthropic's uncached ``input_tokens`` and the
two cache counts, newer models send input counts here too and the SDKs read them) and ``message_stop``.

Blocks are made from the events: a run of ``TextDelta`` is a ``text`` block, a run of reasoning a
``thinking`` block closed by its ``signature_delta`` (when the reasoning has a signature), a redacted
reasoning a ``redacted_thinking`` block, each tool call a ``tool_use`` block whose ``input_json_delta``
fragments are the call's argument fragments. Blocks never interleave: while a tool call is open, events
of other blocks (text, another call started in parallel) are held and sent, in order, once it ends.

An error after the stream began is ``event: error`` with ``{"type": "error", "error": {...}}`` and nothing
after it (no ``message_stop``); when usage is known a ``message_delta`` with a null ``stop_reason`` carries
it first.

What this dialect cannot say (the property tests normalise exactly these): reasoning-token counts
(dropped); unknown usage (sent as 0); a refusal text (sent as a text block: Messages has no refusal
field); ``FinishReason.OTHER`` (``end_turn``, unless the raw value is Anthropic's own ``pause_turn``);
the order of events of interleaved blocks (serialised as above); a call without id (sent with its
synthetic id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, assert_never

from ..._errors import LlmError, ProviderError
from ..._events import (
    Done,
    ReasoningDelta,
    StreamEvent,
    TextChunks,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from ..._types import ChatResponse, FinishReason, ToolCall, Usage
from ..call_ids import synthetic_call_id
from ..serve import ErrorReply, new_id
from ..serve_errors import ErrorAnswer, answer_for, answer_for_status, retry_headers
from .maps import FINISH_REASONS

__all__ = [
    "STOP_OUT",
    "AnthropicStreamEncoder",
    "encode_error",
    "encode_response",
    "error_object",
    "error_reply",
    "stop_out",
    "usage_out",
]

STOP_OUT: dict[FinishReason, str] = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
    FinishReason.OTHER: "end_turn",
    FinishReason.ERROR: "end_turn",
}
"""Our finish reasons as a ``stop_reason`` (``ERROR`` never reaches it: it is an error event)."""

ERROR_TYPES: dict[str, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "upstream": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
    "internal": "api_error",
}
"""Our error categories (``serve_errors``) as Anthropic error ``type`` values (https://platform.claude.com/docs/en/api/errors)."""

_STATUS = {"overloaded": 529}
"""Where Anthropic's status differs from the common table: an overloaded upstream is its 529."""

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def stop_out(reason: FinishReason, raw: str | None) -> str:
    """The ``stop_reason`` to send: ``raw`` when it is Anthropic's and means ``reason``, else the table's."""
    if raw is not None and FINISH_REASONS.get(raw) is reason:
        return raw
    return STOP_OUT[reason]


def usage_out(usage: Usage | None) -> dict[str, Any]:
    """``Usage`` as Anthropic's ``usage``: ``input_tokens`` is the uncached part only (see ``maps``)."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    out: dict[str, Any] = {"input_tokens": max(0, (usage.input_tokens or 0) - (read or 0) - (write or 0))}
    if write is not None:
        out["cache_creation_input_tokens"] = write
    if read is not None:
        out["cache_read_input_tokens"] = read
    out["output_tokens"] = usage.output_tokens or 0
    return out


def error_object(answer: ErrorAnswer) -> dict[str, Any]:
    """The ``{"type": "error", "error": {...}}`` object of an error body or an ``error`` event."""
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(answer.category, "api_error"), "message": answer.message},
    }


def encode_error(error: LlmError) -> ErrorReply:
    """An error as an HTTP status and Anthropic's error body (see ``wire.serve_errors``)."""
    answer = answer_for(error)
    return ErrorReply(_STATUS.get(answer.category, answer.status), error_object(answer), retry_headers(answer))


def error_reply(status: int, message: str, *, param: str | None = None, code: str | None = None) -> ErrorReply:
    """The gateway's own refusal (401 for a missing key, 413 for an oversized body, ...) in Anthropic's shape."""
    answer = answer_for_status(status, f"{param}: {message}" if param and param not in message else message)
    return ErrorReply(status, error_object(answer), retry_headers(answer))


def _input(call: ToolCall) -> dict[str, Any]:
    if call.arguments is not None:
        return dict(call.arguments)
    try:
        value = json.loads(call.arguments_raw) if call.arguments_raw.strip() else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def encode_response(
    response: ChatResponse, *, model: str, created: int = 0, response_id: str | None = None
) -> dict[str, Any]:
    """A complete answer as a ``message`` body (``created`` is unused: the Messages API has none). A
    ``tool_use`` block's ``input`` is an object, so arguments that are not one (a call cut by ``max_tokens``)
    go as ``{}``. A response that ended in an error is answered with ``encode_error`` instead
    (``ValueError`` here)."""
    if response.error is not None or response.finish_reason is FinishReason.ERROR:
        raise ValueError("a response that ended in an error is answered with encode_error, not encode_response")
    content: list[dict[str, Any]] = []
    for part in response.reasoning_parts:
        if part.redacted is not None:
            content.append({"type": "redacted_thinking", "data": part.redacted})
        else:
            content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
    if response.reasoning and not response.reasoning_parts:
        content.append({"type": "thinking", "thinking": response.reasoning, "signature": ""})
    text = response.text + (response.refusal or "")
    if text:
        content.append({"type": "text", "text": text})
    for i, call in enumerate(response.tool_calls):
        content.append(
            {"type": "tool_use", "id": call.id or synthetic_call_id(i), "name": call.name, "input": _input(call)}
        )
    return {
        "id": response_id or new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_out(response.finish_reason, response.finish_reason_raw),
        "stop_sequence": None,
        "usage": usage_out(response.usage),
    }


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return _utf8(f"event: {kind}\ndata: {_dumps(payload)}\n\n")


class AnthropicStreamEncoder:
    """Encodes one answer as a Messages event stream; see the module docstring."""

    __slots__ = ("_block", "_call", "_ended", "_finished", "_id", "_model", "_next", "_pending", "_sent", "_started")

    def __init__(
        self, *, model: str, created: int = 0, include_usage: bool = True, response_id: str | None = None
    ) -> None:
        self._id = response_id or new_id("msg_")
        self._model = model
        self._started = False
        self._finished = False
        self._block: str | None = None
        """The kind of the open block (``text``, ``thinking``, ``tool_use``), or ``None``."""
        self._call: int | None = None
        """The event index of the call whose ``tool_use`` block is open."""
        self._next = 0
        self._pending: list[StreamEvent] = []
        self._sent: list[str] = []
        self._ended: set[int] = set()

    @property
    def finished(self) -> bool:
        return self._finished

    def _start(self) -> bytes:
        self._started = True
        shell: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_out(None),
        }
        return _event("message_start", {"type": "message_start", "message": shell})

    def encode(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        start = b"" if self._started else self._start()
        if isinstance(event, Done):
            return start + self._done(event)
        return start + self._handle(event)

    def encode_batch(self, events: Sequence[StreamEvent]) -> bytes:
        """``encode`` of each of ``events``, joined."""
        return b"".join([self.encode(event) for event in events])

    # --- blocks ---------------------------------------------------------------------------------------

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._block = kind
        return out + _event(
            "content_block_start", {"type": "content_block_start", "index": self._next, "content_block": block}
        )

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        index, self._next = self._next, self._next + 1
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self._next, "delta": delta})

    def _handle(self, event: StreamEvent) -> bytes:
        if self._call is not None and not (
            isinstance(event, ToolCallDelta | ToolCallEnd) and event.index == self._call
        ):
            self._pending.append(event)  # another block's event while a call is open: held until it ends
            return b""
        match event:
            case TextDelta(text=text) | TextChunks(text=text):
                if not text:
                    return b""
                out = b"" if self._block == "text" else self._open("text", {"type": "text", "text": ""})
                # The hot path, written directly: the same bytes as _delta({"type": "text_delta", ...}).
                return out + _utf8(
                    'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                    f'{self._next},"delta":{{"type":"text_delta","text":{_dumps(text)}}}}}\n\n'
                )
            case ReasoningDelta(text=text, signature=signature, redacted=redacted):
                return self._reasoning(text, signature, redacted)
            case ToolCallStart(index=index, id=call_id, name=name):
                return self._start_call(index, call_id, name)
            case ToolCallDelta(index=index, arguments_delta=fragment):
                if index == self._call and fragment:
                    self._sent.append(fragment)
                    return self._delta({"type": "input_json_delta", "partial_json": fragment})
                return b""
            case ToolCallEnd(index=index, call=call):
                return self._end_call(index, call)
            case Done():
                return self._done(event)
            case _:
                assert_never(event)

    def _reasoning(self, text: str, signature: str | None, redacted: str | None) -> bytes:
        if redacted:
            out = self._open("redacted_thinking", {"type": "redacted_thinking", "data": redacted})
            return out + self._close()
        out = b""
        if text or signature:
            if self._block != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if text:
                out += self._delta({"type": "thinking_delta", "thinking": text})
        if signature:
            out += self._delta({"type": "signature_delta", "signature": signature}) + self._close()
        return out

    def _start_call(self, index: int, call_id: str | None, name: str) -> bytes:
        if index in self._ended:
            return b""
        self._call, self._sent = index, []
        block = {"type": "tool_use", "id": call_id or synthetic_call_id(index), "name": name, "input": {}}
        return self._open("tool_use", block)

    def _end_call(self, index: int, call: ToolCall) -> bytes:
        out = b""
        if self._call != index:
            if index in self._ended:
                return b""
            out += self._start_call(index, call.id, call.name)  # a call given whole
        sent = "".join(self._sent)
        raw = call.arguments_raw or (json.dumps(dict(call.arguments)) if call.arguments and not sent else "")
        if len(raw) > len(sent) and raw.startswith(sent):
            out += self._delta({"type": "input_json_delta", "partial_json": raw[len(sent) :]})
        self._ended.add(index)
        self._call = None
        return out + self._close() + self._replay()

    def _replay(self) -> bytes:
        out = b""
        while self._pending and self._call is None:
            pending, self._pending = self._pending, []
            for event in pending:
                out += self._handle(event)
        return out

    # --- the end ---------------------------------------------------------------------------------------

    def _flush(self) -> bytes:
        """Close whatever is open, calls that never ended included (then send what they held back)."""
        out = b""
        while self._call is not None:
            self._call = None
            out += self._close() + self._replay()
        return out + self._close()

    def _done(self, done: Done) -> bytes:
        out = self._flush()
        if done.finish_reason is FinishReason.ERROR:
            return out + self._fail(done.error or ProviderError("the upstream stream ended with an error"), done.usage)
        if done.refusal:
            out += self._open("text", {"type": "text", "text": ""})
            out += self._delta({"type": "text_delta", "text": done.refusal}) + self._close()
        delta = {"stop_reason": stop_out(done.finish_reason, done.finish_reason_raw), "stop_sequence": None}
        out += _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_out(done.usage)})
        self._finished = True
        return out + _event("message_stop", {"type": "message_stop"})

    def fail(self, error: LlmError) -> bytes:
        return b"" if self._finished else self._fail(error, None)

    def _fail(self, error: LlmError, usage: Usage | None) -> bytes:
        out = b""
        if usage is not None and self._started:
            delta = {"stop_reason": None, "stop_sequence": None}
            out = _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_out(usage)})
        self._finished = True
        return out + _event("error", error_object(answer_for(error)))
