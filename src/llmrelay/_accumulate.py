"""Fold a stream of events into a ``ChatResponse``.

This is the one place a response is assembled: streaming calls fold their events here, and each dialect
decodes a non-streaming body by turning it into the same events and folding them, so ``chat()`` and
``chat_stream()`` cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, assert_never

from ._builders import builder
from ._events import Done, ReasoningDelta, StreamEvent, TextChunks, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from ._types import CallWarning, ChatResponse, FinishReason, ReasoningPart, ToolCall

if TYPE_CHECKING:
    from ._errors import Attempt

__all__ = ["Accumulator", "events_for", "fold"]


class Accumulator:
    """Collects events one at a time; ``response()`` builds the ``ChatResponse`` so far."""

    __slots__ = ("_block_text", "_blocks", "_calls", "_reasoning", "_text", "done")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._block_text: list[str] = []
        self._blocks: list[ReasoningPart] = []
        self._calls: dict[int, ToolCall] = {}
        self.done: Done | None = None

    def add(self, event: StreamEvent) -> None:
        # The two events every reply has, first; the rest by pattern.
        if isinstance(event, TextDelta):
            self._text.append(event.text)
            return
        if isinstance(event, Done):
            self.done = event
            return
        match event:
            case TextChunks(text=text):
                self._text.append(text)
            case ReasoningDelta(redacted=str(redacted)):
                if any(self._block_text):
                    self._end_reasoning_block(None)
                self._blocks.append(ReasoningPart(text="", redacted=redacted))
            case ReasoningDelta(text=text, signature=signature):
                self._reasoning.append(text)
                self._block_text.append(text)
                if signature is not None:
                    self._end_reasoning_block(signature)
            case ToolCallStart() | ToolCallDelta():
                pass
            case ToolCallEnd(index=index, call=call):
                self._calls[index] = call
            case _:
                assert_never(event)

    def _end_reasoning_block(self, signature: str | None) -> None:
        self._blocks.append(ReasoningPart(text="".join(self._block_text), signature=signature))
        self._block_text = []

    def response(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        warnings: Iterable[CallWarning] = (),
        attempts: tuple[Attempt, ...] = (),
    ) -> ChatResponse:
        done = self.done
        blocks = self._blocks  # copied by ``tuple`` below, never changed here
        if self._block_text and any(self._block_text):
            blocks = [*blocks, ReasoningPart(text="".join(self._block_text))]
        calls = self._calls
        # The guards skip building generators for what most replies lack (tools, reasoning blocks).
        return _response(
            "".join(self._text),
            "".join(self._reasoning) if self._reasoning else "",
            tuple([calls[i] for i in sorted(calls)]) if calls else (),
            done.finish_reason if done else FinishReason.OTHER,
            done.finish_reason_raw if done else None,
            done.usage if done else None,
            done.model if done and done.model else model,
            provider,
            request_id,
            tuple(warnings),
            done.refusal if done else None,
            tuple(blocks) if blocks and any(b.signature or b.redacted for b in blocks) else (),
            done.error if done else None,
            attempts,
        )


_response = builder(
    ChatResponse,
    (
        "text",
        "reasoning",
        "tool_calls",
        "finish_reason",
        "finish_reason_raw",
        "usage",
        "model",
        "provider",
        "request_id",
        "warnings",
        "refusal",
        "reasoning_parts",
        "error",
        "attempts",
    ),
)
"""``ChatResponse(...)`` by position, every field given (``llmrelay._builders``): one is built per reply."""


def fold(
    events: Iterable[StreamEvent],
    *,
    provider: str | None = None,
    model: str | None = None,
    request_id: str | None = None,
    warnings: Iterable[CallWarning] = (),
) -> ChatResponse:
    """Fold a complete event sequence into a ``ChatResponse``."""
    acc = Accumulator()
    for event in events:
        acc.add(event)
    return acc.response(provider=provider, model=model, request_id=request_id, warnings=warnings)


def events_for(response: ChatResponse) -> list[StreamEvent]:
    """The event sequence a provider would stream for ``response``."""
    events: list[StreamEvent] = []
    if response.reasoning_parts:
        for part in response.reasoning_parts:
            if part.redacted is not None:
                events.append(ReasoningDelta("", redacted=part.redacted))
                continue
            events.append(ReasoningDelta(part.text))
            if part.signature:
                events.append(ReasoningDelta("", signature=part.signature))
    elif response.reasoning:
        events.append(ReasoningDelta(response.reasoning))
    if response.text:
        events.append(TextDelta(response.text))
    for index, call in enumerate(response.tool_calls):
        raw = call.arguments_raw or json.dumps(dict(call.arguments or {}))
        events += [ToolCallStart(index, call.id, call.name), ToolCallDelta(index, raw), ToolCallEnd(index, call)]
    events.append(
        Done(
            finish_reason=response.finish_reason,
            finish_reason_raw=response.finish_reason_raw,
            usage=response.usage,
            error=response.error,
            model=response.model,
            refusal=response.refusal,
        )
    )
    return events
