"""The shared half of every stream decoder: it turns "what the provider said" into events that obey the
stream laws (see ``llmrelay._events``), so each dialect only maps its wire shapes onto these calls.

- ``text`` / ``reasoning`` emit deltas (empty strings are dropped). Every text channel (text, reasoning,
  each call's arguments) goes through a ``SurrogateJoiner``: a UTF-16 surrogate pair split across two
  deltas is joined, a lone surrogate becomes U+FFFD, so emitted text always encodes as UTF-8;
- ``tool_start`` / ``tool_delta`` / ``tool_end`` track calls by the *wire key* the dialect gives them (the
  provider's own ``index``, or ``new_index()`` for dialects that do not number their calls). Each call
  gets an *event index* unique in the stream: the wire key itself when it is free, else the next unused
  index. So a wire index that is reused after its call ended (Cohere), or a second call a server puts on
  an index that is still open (OpenAI-compatible servers that send every call with ``index: 0``), is a new
  call with its own event index, never a restart of an ended one;
- a call without an id gets ``synthetic_call_id(event index)`` (see ``call_ids``), so it can be answered
  with ``Message.tool``; ``open_wire_id`` tells what id the provider itself sent;
- ``tool_end`` parses the collected arguments text (empty means ``{}``; anything that is not a complete JSON
  object gives ``arguments=None`` with the raw text kept);
- ``done`` closes every open call and emits the single ``Done``; ``fail`` does the same with an error;
- a turn that made tool calls and ends with a finish reason that normalises to ``STOP`` (Gemini ``STOP``,
  Ollama ``stop``, a compatible server's ``stop``) is reported as ``TOOL_CALLS``, the raw value kept in
  ``finish_reason_raw``: ``FinishReason.TOOL_CALLS`` means "the model wants tool results" on every dialect;
- after ``Done`` everything is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .._builders import builder
from .._errors import LlmError
from .._events import Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from .._types import FinishReason, ToolCall, Usage
from .call_ids import synthetic_call_id
from .surrogates import SurrogateJoiner, clean_text

__all__ = ["StreamState", "parse_arguments"]


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """Parse a tool call's arguments text: ``""`` is ``{}``; a non-object or broken JSON is ``None``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        return None
    return value if isinstance(value, dict) else None


class _OpenCall:
    __slots__ = ("id", "joiner", "name", "parts", "wire_id")

    def __init__(self, id: str, wire_id: str | None, name: str) -> None:
        self.id = id
        self.wire_id = wire_id
        self.name = name
        self.parts: list[str] = []
        self.joiner = SurrogateJoiner()


_done = builder(Done, ("finish_reason", "finish_reason_raw", "usage", "model", "refusal"))
"""``Done(...)`` by position (``llmrelay._builders``): one per reply, every dialect's."""


class StreamState:
    """Accumulates a decoder's output events in ``out``; see the module docstring."""

    __slots__ = (
        "_map_finish",
        "_next_index",
        "_open",
        "_reasoning",
        "_text",
        "_used",
        "_wire",
        "finish_raw",
        "finished",
        "model",
        "out",
        "refusal",
        "usage",
    )

    def __init__(self, map_finish: Callable[[str | None], FinishReason]) -> None:
        self.out: list[StreamEvent] = []
        self.finished = False
        self.usage: Usage | None = None
        self.model: str | None = None
        self.finish_raw: str | None = None
        self.refusal: list[str] = []
        self._map_finish = map_finish
        self._open: dict[int, _OpenCall] = {}
        """Open calls by event index."""
        self._wire: dict[int, int] = {}
        """Wire key -> event index of the call it named last."""
        self._used: set[int] = set()
        self._next_index = 0
        self._text = SurrogateJoiner()
        self._reasoning = SurrogateJoiner()

    def take(self) -> list[StreamEvent]:
        """The events produced since the last call."""
        out = self.out
        self.out = []
        return out

    @property
    def text_held(self) -> bool:
        """Whether the text channel holds back a high surrogate (the next text may complete its pair)."""
        return self._text.holding

    def text(self, text: str) -> None:
        if text and not self.finished:
            text = self._text.push(text)
            if text:
                self.out.append(TextDelta(text))

    def reasoning(self, text: str, signature: str | None = None, redacted: str | None = None) -> None:
        if self.finished:
            return
        if redacted:
            # An encrypted block of its own: what the plain block before it held back ends that block.
            self._flush_reasoning()
        if text:
            text = self._reasoning.push(text)
        if signature is not None:
            # The signature closes the block: nothing held back can be paired any more.
            text += self._reasoning.flush()
        if text or signature or redacted:
            self.out.append(ReasoningDelta(text, signature, redacted))

    def _flush_reasoning(self) -> None:
        tail = self._reasoning.flush()
        if tail:
            self.out.append(ReasoningDelta(tail))

    # --- tool calls ----------------------------------------------------------------------------------

    def is_open(self, key: int) -> bool:
        """Whether the call the wire key ``key`` names is open."""
        index = self._wire.get(key)
        return index is not None and index in self._open

    def was_used(self, key: int) -> bool:
        """Whether the wire key ``key`` has named a call in this stream (open or ended)."""
        return key in self._wire

    def open_wire_id(self, key: int) -> str | None:
        """The id the provider sent for the open call at wire key ``key`` (``None``: none, or not open)."""
        index = self._wire.get(key)
        call = self._open.get(index) if index is not None else None
        return call.wire_id if call is not None else None

    def new_index(self) -> int:
        """A wire key not used yet in this stream (for dialects that do not number their calls)."""
        return self._next_index

    def tool_start(self, key: int, id: str | None, name: str) -> None:
        if self.finished or self.is_open(key):
            return
        index = key if key not in self._used else self._next_index
        self._wire[key] = index
        self._used.add(index)
        self._next_index = max(self._next_index, index + 1)
        name = clean_text(name)
        call_id = clean_text(id) if id else synthetic_call_id(index)
        self._open[index] = _OpenCall(call_id, id or None, name)
        self.out.append(ToolCallStart(index, call_id, name))

    def tool_delta(self, key: int, text: str) -> None:
        if not text or self.finished:
            return
        index = self._wire.get(key)
        call = self._open.get(index) if index is not None else None
        if call is None or index is None:
            return
        text = call.joiner.push(text)
        if text:
            call.parts.append(text)
            self.out.append(ToolCallDelta(index, text))

    def tool_end(self, key: int) -> None:
        index = self._wire.get(key)
        if index is not None:
            self._end(index)

    def _end(self, index: int) -> None:
        call = self._open.pop(index, None)
        if call is None:
            return
        tail = call.joiner.flush()
        if tail:
            call.parts.append(tail)
            self.out.append(ToolCallDelta(index, tail))
        raw = "".join(call.parts)
        self.out.append(
            ToolCallEnd(index, ToolCall(id=call.id, name=call.name, arguments=parse_arguments(raw), arguments_raw=raw))
        )

    def tool_whole(self, key: int, id: str | None, name: str, arguments: Any) -> None:
        """A call that arrives complete (Gemini, Ollama): start, one delta with its JSON, end."""
        self.tool_start(key, id, name)
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
        self.tool_delta(key, raw)
        self.tool_end(key)

    def end_tools(self) -> None:
        for index in sorted(self._open):
            self._end(index)

    # --- the end -------------------------------------------------------------------------------------

    def _close_channels(self) -> None:
        tail = self._text.flush()
        if tail:
            self.out.append(TextDelta(tail))
        self._flush_reasoning()
        self.end_tools()

    def _refusal(self) -> str | None:
        return clean_text("".join(self.refusal)) or None

    def done(self, finish_reason: FinishReason | None = None) -> None:
        """Close open calls and emit the single ``Done``."""
        if self.finished:
            return
        self._close_channels()
        reason = finish_reason if finish_reason is not None else self._map_finish(self.finish_raw)
        if reason is FinishReason.STOP and self._used:
            reason = FinishReason.TOOL_CALLS
        self.out.append(_done(reason, self.finish_raw, self.usage, self.model, self._refusal()))
        self.finished = True

    def fail(self, error: LlmError, raw: str | None = "error") -> None:
        """End the stream with an error: open calls are closed, ``Done`` carries the error.

        ``raw`` is the ``finish_reason_raw`` to report: ``"error"`` by default, or the provider's own value
        when a finish reason decided it (Cohere ``ERROR``/``TIMEOUT``, Gemini ``MALFORMED_FUNCTION_CALL``).
        """
        if self.finished:
            return
        self._close_channels()
        self.out.append(
            Done(
                finish_reason=FinishReason.ERROR,
                finish_reason_raw=raw,
                usage=self.usage,
                error=error,
                model=self.model,
                refusal=self._refusal(),
            )
        )
        self.finished = True
