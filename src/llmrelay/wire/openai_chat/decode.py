"""Response decoding for OpenAI Chat Completions and compatible servers.

Streams (https://platform.openai.com/docs/api-reference/chat-streaming) are server-sent events whose
``data`` is a ``chat.completion.chunk`` and whose last event is ``data: [DONE]``. What compatible servers
add, and how it is handled:

- tool calls arrive as fragments keyed by ``index``; the first fragment of a call carries ``id`` and
  ``function.name``; several calls may be open at once (parallel tool calls). A server that omits
  ``index`` gets one assigned by ``id``. A fragment whose ``id`` differs from the id of the call open at
  its ``index`` starts a new call (the open one ends): Ollama's ``/v1`` and LiteLLM send each of several
  parallel calls whole, all with ``index: 0``. Each call gets its own event index (``StreamState``);
  a fragment with neither ``id`` nor ``name`` for an index whose call has ended is dropped;
- ``delta.reasoning_content`` (DeepSeek, vLLM, DashScope) and ``delta.reasoning`` (OpenRouter, Groq,
  newer vLLM) are reasoning text;
- ``delta.refusal`` is collected into ``Done.refusal``;
- Azure sends a first chunk with ``choices: []`` and ``prompt_filter_results``; with
  ``stream_options.include_usage`` the last chunk has ``choices: []`` and ``usage`` (DeepSeek puts usage in
  the finish chunk instead); either way the last usage seen wins;
- an error may arrive inside a 200 stream: as a chunk with a top-level ``error`` (OpenRouter), or as an
  ``event: error`` event (Groq). It ends the stream with ``Done(finish_reason=ERROR)``, whatever finish
  reason came before;
- an error object written into the stream without SSE framing (a proxy's bare ``{"error": ...}`` line)
  is the same error (``SseStreamDecoder``);
- the end: ``[DONE]``. Several compatible servers omit it, so a body that ends after the finish chunk
  (``finish_reason`` set on choice 0) is complete too, usage or not (a usage chunk may follow the finish
  chunk, so a usage that never came stays ``None``). A body that ends before any finish reason (and
  without an error) is truncated: ``ProtocolError``.

Only choice ``index`` 0 is decoded (``n > 1`` is warned about when encoding).

A non-streaming body (``chat.completion``) is turned into the same events and folded, so both paths share
one accumulator.
"""

from __future__ import annotations

import json
from typing import Any

from ..._accumulate import fold
from ..._errors import LlmError, ProtocolError
from ..._events import StreamEvent
from ..._types import ChatResponse
from ..json_text import loads
from ..sse_stream import SseStreamDecoder
from ..stream_state import StreamState
from .errors import error_from_payload
from .maps import map_finish_reason, parse_usage
from .text_template import TextTemplate

__all__ = ["OpenAIChatStreamDecoder", "decode_body", "events_from_body"]

_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, not in typeshed


class OpenAIChatStreamDecoder(SseStreamDecoder):
    """Incremental decoder of one Chat Completions event stream."""

    __slots__ = ("_index_by_id", "_template")
    terminator = "[DONE] terminator"

    def __init__(self) -> None:
        super().__init__(StreamState(map_finish_reason))
        self._index_by_id: dict[str, int] = {}
        self._template: TextTemplate | None = None
        """The last event, when the full path read it as a plain text chunk (see ``text_template``)."""

    def _complete_at_eof(self) -> bool:
        return self._state.finish_raw is not None

    def _error(self, payload: dict[str, Any], text: str) -> LlmError:
        return error_from_payload(payload, body=text)

    def _event(self, kind: str, data: str) -> None:
        state = self._state
        template = self._template
        if template is not None and kind != "error" and data.startswith(template.head):
            text = template.text_of(data)
            if text is not None:
                state.text(text)  # the same chunk as the template's, with other text: nothing else changes
                return
        self._template = None
        if data == "[DONE]":
            state.done()
            return
        try:
            # The C scanner directly: json.loads would also run two whitespace regexes per event.
            chunk, end = _scan(data, 0)
            if end != len(data) or type(chunk) is not dict:
                raise ValueError
        except (StopIteration, ValueError):
            chunk = self._json_object(data)
            if chunk is None:
                return
        usage = chunk.get("usage")
        if usage:
            state.usage = parse_usage(usage) or state.usage
        if kind == "error" or chunk.get("error"):
            state.fail(error_from_payload(chunk, body=data))
            return
        model = chunk.get("model")
        if model and isinstance(model, str):
            state.model = model
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list):
            return
        for choice in choices:
            if type(choice) is dict and choice.get("index", 0) == 0:
                delta = choice.get("delta")
                # The hot path: a bare text delta ({"content": "..."}, maybe with a role).
                if (
                    type(delta) is dict
                    and type(content := delta.get("content")) is str
                    and len(delta) <= 2
                    and (len(delta) == 1 or "role" in delta)
                    and not choice.get("finish_reason")
                ):
                    state.text(content)
                    if len(choices) == 1 and not usage:
                        self._template = TextTemplate.of(data, chunk, content, template)
                else:
                    self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        state = self._state
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                state.reasoning(reasoning)
            content = delta.get("content")
            if isinstance(content, str):
                state.text(content)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                state.refusal.append(refusal)
            calls = delta.get("tool_calls")
            if calls and isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        self._tool_call(call)
        finish = choice.get("finish_reason")
        if finish and isinstance(finish, str):
            state.finish_raw = finish
            state.end_tools()

    def _tool_call(self, call: dict[str, Any]) -> None:
        state = self._state
        call_id = call.get("id") if isinstance(call.get("id"), str) else None
        index = call.get("index")
        if not isinstance(index, int):
            if call_id is not None and call_id in self._index_by_id:
                index = self._index_by_id[call_id]
            elif call_id is None and self._index_by_id:
                index = max(self._index_by_id.values())
            else:
                index = state.new_index()
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        name = function.get("name")
        name = name if isinstance(name, str) else ""
        if call_id is not None and state.is_open(index):
            open_id = state.open_wire_id(index)
            if open_id is not None and open_id != call_id:
                state.tool_end(index)  # a second call on the same index: the first one is complete
        if not state.is_open(index):
            if state.was_used(index) and call_id is None and not name:
                return  # a stray fragment of a call that has ended
            state.tool_start(index, call_id, name)
            if call_id is not None:
                self._index_by_id[call_id] = index
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            state.tool_delta(index, arguments)
        elif isinstance(arguments, dict):
            state.tool_delta(index, json.dumps(arguments))


def events_from_body(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming ``chat.completion`` body stands for."""
    state = StreamState(map_finish_reason)
    try:
        payload = loads(body)
    except ValueError:
        state.fail(ProtocolError(f"the response body is not JSON: {body[:120]!r}"))
        return state.take()
    if not isinstance(payload, dict):
        state.fail(ProtocolError("the response body is not a JSON object"))
        return state.take()
    state.usage = parse_usage(payload.get("usage"))
    model = payload.get("model")
    state.model = model if isinstance(model, str) and model else None
    if payload.get("error"):
        state.fail(error_from_payload(payload, body=body.decode("utf-8", "replace")))
        return state.take()
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and type(first := choices[0]) is dict and first.get("index", 0) == 0:
        choice: dict[str, Any] | None = first  # the usual body: choice 0 first
    elif isinstance(choices, list):
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
    else:
        choice = None
    if choice is None:
        state.fail(ProtocolError("the response has no choices"))
        return state.take()
    message = choice.get("message")
    if isinstance(message, dict):
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str):
            state.reasoning(reasoning)
        content = message.get("content")
        if isinstance(content, str):
            state.text(content)
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            state.refusal.append(refusal)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for i, call in enumerate(calls):
                if not isinstance(call, dict):
                    continue
                function = call.get("function")
                if not isinstance(function, dict):
                    function = {}
                name = function.get("name")
                call_id = call.get("id")
                state.tool_whole(
                    i,
                    call_id if isinstance(call_id, str) else None,
                    name if isinstance(name, str) else "",
                    function.get("arguments", ""),
                )
    finish = choice.get("finish_reason")
    state.finish_raw = finish if isinstance(finish, str) else None
    state.done()
    return state.take()


def decode_body(body: bytes) -> ChatResponse:
    """Decode a complete non-streaming body into a ``ChatResponse``."""
    return fold(events_from_body(body))
