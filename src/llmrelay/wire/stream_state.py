"""The shared half of every stream decoder: it turns "what the provider said" into events that obey the
stream laws (see ``llmrelay._events``), so each dialect only maps its wire shapes onto these calls.

- ``text`` / ``reasoning`` emit deltas (empty strings are dropped);
- ``tool_start`` / ``tool_delta`` / ``tool_end`` track calls by index; ``tool_end`` parses the collected
  arguments text (empty means ``{}``; anything that is not a complete JSON object gives
  ``arguments=None`` with the raw text kept);
- ``done`` closes every open call and emits the single ``Done``; ``fail`` does the same with an error;
- after ``Done`` everything is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .._errors import LlmError
from .._events import Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from .._types import FinishReason, ToolCall, Usage

__all__ = ["StreamState", "parse_arguments"]


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """Parse a tool call's arguments text: ``""`` is ``{}``; a non-object or broken JSON is ``None``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _OpenCall:
    __slots__ = ("id", "name", "parts")

    def __init__(self, id: str | None, name: str) -> None:
        self.id = id
        self.name = name
        self.parts: list[str] = []


class StreamState:
    """Accumulates a decoder's output events in ``out``; see the module docstring."""

    __slots__ = (
        "_map_finish",
        "_next_index",
        "_open",
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
        self._next_index = 0

    def take(self) -> list[StreamEvent]:
        """The events produced since the last call."""
        out = self.out
        self.out = []
        return out

    def text(self, text: str) -> None:
        if text and not self.finished:
            self.out.append(TextDelta(text))

    def reasoning(self, text: str, signature: str | None = None, redacted: str | None = None) -> None:
        if (text or signature or redacted) and not self.finished:
            self.out.append(ReasoningDelta(text, signature, redacted))

    def is_open(self, index: int) -> bool:
        return index in self._open

    def new_index(self) -> int:
        """An index not used yet in this stream (for dialects that do not number their calls)."""
        return self._next_index

    def tool_start(self, index: int, id: str | None, name: str) -> None:
        if self.finished or index in self._open:
            return
        self._open[index] = _OpenCall(id, name)
        self._next_index = max(self._next_index, index + 1)
        self.out.append(ToolCallStart(index, id, name))

    def tool_delta(self, index: int, text: str) -> None:
        call = self._open.get(index)
        if call is None or not text or self.finished:
            return
        call.parts.append(text)
        self.out.append(ToolCallDelta(index, text))

    def tool_end(self, index: int) -> None:
        call = self._open.pop(index, None)
        if call is None:
            return
        raw = "".join(call.parts)
        self.out.append(
            ToolCallEnd(index, ToolCall(id=call.id, name=call.name, arguments=parse_arguments(raw), arguments_raw=raw))
        )

    def tool_whole(self, index: int, id: str | None, name: str, arguments: Any) -> None:
        """A call that arrives complete (Gemini, Ollama): start, one delta with its JSON, end."""
        self.tool_start(index, id, name)
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
        self.tool_delta(index, raw)
        self.tool_end(index)

    def end_tools(self) -> None:
        for index in sorted(self._open):
            self.tool_end(index)

    def done(self, finish_reason: FinishReason | None = None) -> None:
        """Close open calls and emit the single ``Done``."""
        if self.finished:
            return
        self.end_tools()
        reason = finish_reason if finish_reason is not None else self._map_finish(self.finish_raw)
        self.out.append(
            Done(
                finish_reason=reason,
                finish_reason_raw=self.finish_raw,
                usage=self.usage,
                model=self.model,
                refusal="".join(self.refusal) or None,
            )
        )
        self.finished = True

    def fail(self, error: LlmError, raw: str | None = "error") -> None:
        """End the stream with an error: open calls are closed, ``Done`` carries the error.

        ``raw`` is the ``finish_reason_raw`` to report: ``"error"`` by default, or the provider's own value
        when a finish reason decided it (Cohere ``ERROR``/``TIMEOUT``, Gemini ``MALFORMED_FUNCTION_CALL``).
        """
        if self.finished:
            return
        self.end_tools()
        self.out.append(
            Done(
                finish_reason=FinishReason.ERROR,
                finish_reason_raw=raw,
                usage=self.usage,
                error=error,
                model=self.model,
                refusal="".join(self.refusal) or None,
            )
        )
        self.finished = True
