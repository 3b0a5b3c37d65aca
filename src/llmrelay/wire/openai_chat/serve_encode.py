"""Response encoding for a served OpenAI Chat Completions endpoint: events -> ``chat.completion.chunk``
event stream, ``ChatResponse`` -> ``chat.completion`` body, ``LlmError`` -> error body.

The stream (https://platform.openai.com/docs/api-reference/chat-streaming): every chunk carries the same
``id`` (``chatcmpl-...``), ``created`` and ``model`` (the model that actually answered); the first chunk
is ``delta: {"role": "assistant", "content": ""}``; text is ``delta.content``; reasoning is
``delta.reasoning_content`` (DeepSeek's and vLLM's field: OpenAI's own API streams no reasoning text);
each tool call gets its own ``index`` (0, 1, ... in the order the calls started, so parallel calls never
share one), its first fragment carrying ``id``, ``type`` and ``function.name``, the next ones
``function.arguments`` text; a refusal is ``delta.refusal``. The last choice chunk has an empty delta
and the ``finish_reason``; with ``include_usage`` a chunk with ``choices: []`` and ``usage`` follows, then
``data: [DONE]``.

An error after the stream began is a ``data: {"error": {...}}`` event (what OpenAI sends when
generation fails mid-stream) and nothing after it: no ``[DONE]``, so no client reads the partial answer
as complete. When usage is known it is sent first, in the usage chunk.

What this dialect cannot say (the property tests normalise exactly these): reasoning signatures and
redacted reasoning (dropped); cache-write tokens (dropped); ``FinishReason.OTHER`` (sent as ``stop``); a
usage field that is unknown (sent as 0); a call without id (sent with its synthetic id); the end of each
call (the format has no end marker, so a client sees every call end at the finish chunk).

Finish reasons map back through ``FINISH_OUT``; a raw value that is itself one of OpenAI's four and means
the same is kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring
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
from .maps import map_finish_reason

__all__ = [
    "FINISH_OUT",
    "OpenAIChatStreamEncoder",
    "encode_error",
    "encode_response",
    "error_object",
    "error_reply",
    "finish_out",
    "usage_out",
]

FINISH_OUT: dict[FinishReason, str] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.OTHER: "stop",
    FinishReason.ERROR: "stop",
}
"""Our finish reasons as OpenAI's ``finish_reason`` (``ERROR`` never reaches it: it is an error event)."""

ERROR_TYPES: dict[str, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "upstream": "server_error",
    "overloaded": "server_error",
    "timeout": "server_error",
    "internal": "server_error",
}
"""Our error categories (``serve_errors``) as OpenAI error ``type`` values."""

_DEFAULT_CODES = {"authentication": "invalid_api_key", "not_found": "model_not_found"}

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_quote = encode_basestring
"""A str as a JSON string, as ``_dumps`` writes it, without the encoder's Python frame."""


def _utf8(text: str) -> bytes:
    # A lone surrogate can only sit inside a JSON string here; as "\udXXX" it is the JSON escape for itself.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def finish_out(reason: FinishReason, raw: str | None) -> str:
    """The ``finish_reason`` to send: ``raw`` when it is an OpenAI value meaning ``reason``, else the table's."""
    if raw in ("stop", "length", "tool_calls", "content_filter") and map_finish_reason(raw) is reason:
        return raw
    return FINISH_OUT[reason]


def usage_out(usage: Usage) -> dict[str, Any]:
    """``Usage`` as an OpenAI ``usage`` object (``prompt_tokens`` includes cached tokens, as ours does)."""
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.total_tokens if usage.total_tokens is not None else prompt + completion,
    }
    if usage.cache_read_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def error_object(answer: ErrorAnswer) -> dict[str, Any]:
    """The ``{"message", "type", "param", "code"}`` object of an error body or an in-stream error."""
    return {
        "message": answer.message,
        "type": ERROR_TYPES.get(answer.category, "server_error"),
        "param": answer.param,
        "code": answer.code or _DEFAULT_CODES.get(answer.category),
    }


def encode_error(error: LlmError) -> ErrorReply:
    """An error as an HTTP status and OpenAI's ``{"error": {...}}`` body (see ``wire.serve_errors``)."""
    answer = answer_for(error)
    return ErrorReply(answer.status, {"error": error_object(answer)}, retry_headers(answer))


def error_reply(status: int, message: str, *, param: str | None = None, code: str | None = None) -> ErrorReply:
    """The gateway's own refusal (401 for a missing key, 413 for an oversized body, ...) in OpenAI's shape."""
    answer = answer_for_status(status, message, param=param, code=code)
    return ErrorReply(status, {"error": error_object(answer)}, retry_headers(answer))


def _call_out(call: ToolCall) -> dict[str, Any]:
    raw = call.arguments_raw or json.dumps(dict(call.arguments) if call.arguments is not None else {})
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": raw}}


def encode_response(
    response: ChatResponse, *, model: str, created: int, response_id: str | None = None
) -> dict[str, Any]:
    """A complete answer as a ``chat.completion`` body. A response that ended in an error is answered
    with ``encode_error`` instead (``ValueError`` here, so it cannot pass for a success)."""
    if response.error is not None or response.finish_reason is FinishReason.ERROR:
        raise ValueError("a response that ended in an error is answered with encode_error, not encode_response")
    message: dict[str, Any] = {"role": "assistant", "content": response.text or (None if response.tool_calls else "")}
    message["refusal"] = response.refusal
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    if response.tool_calls:
        message["tool_calls"] = [
            _call_out(
                call if call.id else ToolCall(synthetic_call_id(i), call.name, call.arguments, call.arguments_raw)
            )
            for i, call in enumerate(response.tool_calls)
        ]
    body: dict[str, Any] = {
        "id": response_id or new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_out(response.finish_reason, response.finish_reason_raw),
            }
        ],
    }
    if response.usage is not None:
        body["usage"] = usage_out(response.usage)
    return body


class OpenAIChatStreamEncoder:
    """Encodes one answer as a Chat Completions event stream; see the module docstring."""

    __slots__ = (
        "_chunk_between",
        "_chunk_head",
        "_chunk_tail",
        "_ended",
        "_finished",
        "_head",
        "_include_usage",
        "_sent",
        "_started",
        "_tail",
        "_text_head",
        "_text_tail",
        "_wire",
    )

    def __init__(self, *, model: str, created: int, include_usage: bool = True, response_id: str | None = None) -> None:
        rid = response_id or new_id("chatcmpl-")
        self._head = (
            f'{{"id":{_dumps(rid)},"object":"chat.completion.chunk","created":{int(created)},"model":{_dumps(model)},'
        )
        self._tail = ',"logprobs":null,"finish_reason":null}]}\n\n'
        self._text_head = f'data: {self._head}"choices":[{{"index":0,"delta":{{"content":'
        self._text_tail = "}" + self._tail
        self._chunk_head = _utf8(self._text_head + '"')
        self._chunk_tail = _utf8('"' + self._text_tail)
        self._chunk_between = self._chunk_tail + self._chunk_head
        """A text chunk's bytes before its content string's body, and after it up to the next one's
        (``TextChunks`` re-framed: ``head + between.join(bodies) + tail``)."""
        self._include_usage = include_usage
        self._started = False
        self._finished = False
        self._wire: dict[int, int] = {}
        """Event index -> the ``index`` sent for that call."""
        self._sent: dict[int, list[str]] = {}
        """Event index -> the argument fragments sent for that call."""
        self._ended: set[int] = set()

    @property
    def finished(self) -> bool:
        return self._finished

    def _delta(self, delta: str) -> bytes:
        start = b"" if self._started else self._first()
        return start + _utf8(f'data: {self._head}"choices":[{{"index":0,"delta":{delta}{self._tail}')

    def _first(self) -> bytes:
        self._started = True
        return _utf8(
            f'data: {self._head}"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}}{self._tail}'
        )

    def encode(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        match event:
            case TextDelta(text=text):
                return self._delta(f'{{"content":{_quote(text)}}}') if text else b""
            case TextChunks():
                return self.encode_batch((event,))
            case ReasoningDelta(text=text):
                return self._delta(f'{{"reasoning_content":{_dumps(text)}}}') if text else b""
            case ToolCallStart(index=index, id=call_id, name=name):
                return self._start_call(index, call_id, name)
            case ToolCallDelta(index=index, arguments_delta=fragment):
                return self._arguments(index, fragment)
            case ToolCallEnd(index=index, call=call):
                return self._end_call(index, call)
            case Done():
                return self._done(event)
            case _:
                assert_never(event)

    def encode_batch(self, events: Sequence[StreamEvent]) -> bytes:
        """The bytes for ``events`` in order: ``encode`` of each, joined, with text deltas (nearly every event
        of a stream) written straight from the chunk template, and the whole run encoded to UTF-8 once.

        ``TextChunks`` of this dialect (an upstream's text chunks) are re-framed: this stream's chunk around
        each content string's body as the upstream wrote it (the same text; its escapes may differ from
        ``_quote``'s, as JSON allows)."""
        out: list[bytes] = []
        texts: list[str] = []
        head, tail = self._text_head, self._text_tail
        for event in events:
            if type(event) is TextDelta and self._started and not self._finished:
                if event.text:
                    texts.append(f"{head}{_quote(event.text)}{tail}")
                continue
            if texts:
                out.append(_utf8("".join(texts)))
                texts.clear()
            if type(event) is TextChunks and not self._finished:
                if not self._started:
                    out.append(self._first())
                if event.dialect == "openai":
                    out.append(self._chunk_head + self._chunk_between.join(event.bodies) + self._chunk_tail)
                elif event.text:
                    out.append(self._delta(f'{{"content":{_quote(event.text)}}}'))
                continue
            out.append(self.encode(event))
        if texts:
            out.append(_utf8("".join(texts)))
        return b"".join(out)

    def _start_call(self, index: int, call_id: str | None, name: str) -> bytes:
        if index in self._wire:
            return b""
        wire = self._wire[index] = len(self._wire)
        self._sent[index] = []
        call = {
            "index": wire,
            "id": call_id or synthetic_call_id(index),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self._delta(_dumps({"tool_calls": [call]}))

    def _arguments(self, index: int, fragment: str) -> bytes:
        wire = self._wire.get(index)
        if wire is None or not fragment or index in self._ended:
            return b""
        self._sent[index].append(fragment)
        return self._delta(f'{{"tool_calls":[{{"index":{wire},"function":{{"arguments":{_dumps(fragment)}}}}}]}}')

    def _end_call(self, index: int, call: ToolCall) -> bytes:
        """Nothing to send, unless the arguments never came as fragments (a call given whole)."""
        if index in self._ended:
            return b""
        out = self._start_call(index, call.id, call.name)
        sent = "".join(self._sent[index])
        raw = call.arguments_raw or (json.dumps(dict(call.arguments)) if call.arguments and not sent else "")
        if len(raw) > len(sent) and raw.startswith(sent):
            out += self._arguments(index, raw[len(sent) :])
        self._ended.add(index)
        return out

    def _usage_chunk(self, usage: Usage | None) -> bytes:
        if not self._include_usage or usage is None:
            return b""
        return _utf8(f'data: {self._head}"choices":[],"usage":{_dumps(usage_out(usage))}}}\n\n')

    def _done(self, done: Done) -> bytes:
        if done.finish_reason is FinishReason.ERROR:
            error = done.error or ProviderError("the upstream stream ended with an error")
            return self._fail(error, done.usage)
        out = b""
        if done.refusal:
            out += self._delta(_dumps({"refusal": done.refusal}))
        finish = finish_out(done.finish_reason, done.finish_reason_raw)
        start = b"" if self._started else self._first()
        out += start + _utf8(
            f'data: {self._head}"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{finish}"}}]}}\n\n'
        )
        out += self._usage_chunk(done.usage) + b"data: [DONE]\n\n"
        self._finished = True
        return out

    def fail(self, error: LlmError) -> bytes:
        return b"" if self._finished else self._fail(error, None)

    def _fail(self, error: LlmError, usage: Usage | None) -> bytes:
        self._finished = True
        payload = {"error": error_object(answer_for(error))}
        return self._usage_chunk(usage) + _utf8(f"data: {_dumps(payload)}\n\n")
