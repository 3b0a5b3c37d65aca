"""Stream events: a closed union of small frozen classes.

Don't subclass these; match on them::

    match event:
        case TextDelta(text=t): ...
        case TextChunks(text=t): ...                  # only when asked for (see TextChunks)
        case ReasoningDelta(text=t): ...
        case ToolCallStart(index=i, id=id, name=name): ...
        case ToolCallDelta(index=i, arguments_delta=d): ...
        case ToolCallEnd(index=i, call=call): ...
        case Done(finish_reason=reason, usage=usage): ...
        case _: assert_never(event)

The laws every dialect's decoder obeys (checked centrally by ``check_stream_laws`` in the tests):

- exactly one ``Done``, and it is the last event;
- every ``ToolCallStart(index)`` is followed, before ``Done``, by exactly one ``ToolCallEnd(index)``, and
  every ``ToolCallDelta(index)`` falls between them;
- an error that ends the stream after output began arrives as ``Done(finish_reason=ERROR, error=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._types import FinishReason, ToolCall, Usage

if TYPE_CHECKING:
    from ._errors import LlmError

__all__ = [
    "Done",
    "ReasoningDelta",
    "StreamEvent",
    "TEXT_CHUNKS_OPTION",
    "TextChunks",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of the assistant's visible text."""

    text: str


TEXT_CHUNKS_OPTION = "llmrelay"
"""The ``ChatRequest.provider_options`` namespace of a stream's consumer: ``{"llmrelay": {"text_chunks":
DIALECT}}`` asks a provider that speaks ``DIALECT`` to deliver runs of plain text chunks as ``TextChunks``."""


@dataclass(frozen=True, slots=True)
class TextChunks:
    """Several consecutive text fragments, with the bytes the provider sent them as: only in a stream whose
    request asked for them (``provider_options={"llmrelay": {"text_chunks": "openai"}}``) from a provider
    speaking that dialect. A gateway serving the same dialect re-frames ``data`` without decoding each
    chunk; every other consumer reads it as ``TextDelta(text)``.

    ``bodies`` holds, per chunk, the body of its content string as the provider wrote it (the JSON text
    between the quotes, already checked to be a valid string with no ``\\uD800``-``\\uDFFF`` escape);
    ``text`` is their texts, joined.
    """

    text: str
    dialect: str
    bodies: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A fragment of reasoning ("thinking") text.

    ``signature`` carries the provider's opaque signature for the reasoning block (Anthropic); it arrives
    once, at the end of the block, with empty ``text``.
    """

    text: str
    signature: str | None = None
    redacted: str | None = None
    """Encrypted reasoning (Anthropic ``redacted_thinking``): a block of its own, to send back unchanged."""


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """The model began a tool call; ``index`` identifies it among this turn's calls (unique in a stream).

    ``id`` is the provider's call id; a provider that sends none (Gemini, older Ollama servers) gets the
    deterministic ``llmrelay_call_<index>``, so the call can still be answered with ``Message.tool``.
    """

    index: int
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call's JSON arguments text."""

    index: int
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    """A tool call is complete; ``call`` holds the assembled, parsed arguments."""

    index: int
    call: ToolCall


@dataclass(frozen=True, slots=True)
class Done:
    """The turn ended. Always exactly one, always last."""

    finish_reason: FinishReason
    finish_reason_raw: str | None = None
    usage: Usage | None = None
    error: LlmError | None = None
    """The error that ended the stream, when ``finish_reason`` is ``ERROR``."""
    model: str | None = None
    """The model the provider says answered, when it says so."""
    refusal: str | None = None
    """A refusal message (OpenAI ``refusal`` deltas), when the model refused."""


StreamEvent = TextDelta | TextChunks | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallEnd | Done
