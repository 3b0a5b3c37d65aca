"""The provider-neutral data model: messages, requests, responses, usage.

Every type here is a frozen, slotted dataclass: immutable, keyword-constructible, comparable with ``==``
and hashable where its fields are. Nothing here does I/O or knows any vendor's wire format; the dialect
codecs in ``llmrelay.wire`` translate to and from these types.

Unknown values stay ``None``: a provider that does not report cache tokens leaves ``cache_read_tokens``
as ``None``, never ``0``, so a cost calculator can tell "none" from "not reported".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._errors import Attempt, LlmError

__all__ = [
    "CallWarning",
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "FinishReason",
    "ImagePart",
    "JsonSchemaFormat",
    "Message",
    "ReasoningPart",
    "Role",
    "TextPart",
    "ToolCall",
    "ToolChoice",
    "ToolDef",
    "Usage",
]


class Role(enum.StrEnum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class FinishReason(enum.StrEnum):
    """Why generation stopped, normalised across providers.

    The provider's own value is always kept beside it (``finish_reason_raw``).
    """

    STOP = "stop"
    """Natural end of the turn or a stop sequence."""
    LENGTH = "length"
    """``max_tokens`` or the context window was reached."""
    TOOL_CALLS = "tool_calls"
    """The model wants tool results."""
    CONTENT_FILTER = "content_filter"
    """Output withheld by a safety filter or refused."""
    ERROR = "error"
    """An error ended the response (an error body, or an error event inside the stream)."""
    OTHER = "other"
    """A provider value with no normalised equivalent; see ``finish_reason_raw``."""


@dataclass(frozen=True, slots=True)
class TextPart:
    """A piece of text content."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image given either inline (base64 ``data`` + ``media_type``) or by ``url``."""

    data: str | None = None
    """Base64-encoded image bytes (no ``data:`` prefix)."""
    media_type: str | None = None
    """MIME type of ``data``, e.g. ``image/png``."""
    url: str | None = None
    """An http(s) or ``data:`` URL, for providers that fetch images themselves."""
    detail: Literal["auto", "low", "high"] | None = None
    """OpenAI's resolution hint; other dialects warn that it is ignored."""

    def __post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValueError("ImagePart needs exactly one of data= (base64, with media_type=) or url=")
        if self.data is not None and not self.media_type:
            raise ValueError("ImagePart(data=...) needs media_type=, e.g. 'image/png'")

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str) -> ImagePart:
        """Build an inline image from raw bytes."""
        import base64

        return cls(data=base64.b64encode(data).decode("ascii"), media_type=media_type)

    def as_data_url(self) -> str:
        """The image as a URL: ``url`` itself, or a ``data:`` URL built from the inline bytes."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """Model reasoning ("thinking") kept on an assistant message so multi-turn conversations round-trip it.

    ``signature`` (Anthropic) and ``redacted`` (encrypted thinking) are opaque provider data that must be
    sent back unchanged.
    """

    text: str
    signature: str | None = None
    redacted: str | None = None


ContentPart = TextPart | ImagePart | ReasoningPart


@dataclass(frozen=True, slots=True)
class ToolDef:
    """A tool (function) the model may call."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments object."""
    strict: bool | None = None
    """Ask for strict schema adherence where the dialect supports it."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made: ``arguments`` parsed from ``arguments_raw``.

    ``arguments`` is ``None`` when the raw text is not a complete JSON object (for example a stream cut by
    ``max_tokens`` in the middle of the arguments); the raw text is always kept, never a made-up dict.
    ``id`` is the provider's call id; a decoded call whose provider sent none (Gemini, older Ollama
    servers) has the synthetic id ``llmrelay_call_<index>``, so it can be answered with ``Message.tool``.
    """

    id: str | None
    name: str
    arguments: Mapping[str, Any] | None
    arguments_raw: str = ""

    @classmethod
    def create(cls, name: str, arguments: Mapping[str, Any], id: str | None = None) -> ToolCall:
        """Build a call from a dict (the raw text is its compact JSON)."""
        import json

        return cls(id=id, name=name, arguments=dict(arguments), arguments_raw=json.dumps(arguments))


ToolChoice = Literal["auto", "none", "required"] | str
"""``auto`` | ``none`` | ``required`` | the name of one tool the model must call."""


@dataclass(frozen=True, slots=True)
class JsonSchemaFormat:
    """Ask for output matching a JSON schema (``response_format``)."""

    schema: Mapping[str, Any]
    name: str = "response"
    strict: bool = True
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn.

    ``content`` is plain text or a sequence of parts. Assistant messages may carry ``tool_calls``; tool
    results are ``Role.TOOL`` messages with the ``tool_call_id`` they answer.
    """

    role: Role
    content: str | Sequence[ContentPart] = ""
    tool_calls: Sequence[ToolCall] = ()
    tool_call_id: str | None = None
    name: str | None = None
    """For tool messages, the tool's name (Gemini and Ollama need it); optional elsewhere."""

    def __post_init__(self) -> None:
        if not isinstance(self.content, str):
            object.__setattr__(self, "content", tuple(self.content))
        if type(self.tool_calls) is not tuple:  # the default ``()`` needs no copy (every message passes here)
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.role is Role.TOOL and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id= (the id of the call it answers)")
        if self.tool_calls and self.role is not Role.ASSISTANT:
            raise ValueError("only assistant messages carry tool_calls")

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role=Role.SYSTEM, content=content)

    @classmethod
    def user(cls, content: str | Sequence[ContentPart]) -> Message:
        return cls(role=Role.USER, content=content)

    @classmethod
    def assistant(cls, content: str | Sequence[ContentPart] = "", tool_calls: Sequence[ToolCall] = ()) -> Message:
        return cls(role=Role.ASSISTANT, content=content, tool_calls=tool_calls)

    @classmethod
    def tool(cls, tool_call_id: str, content: str, name: str | None = None) -> Message:
        """The result of the call whose ``ToolCall.id`` is ``tool_call_id`` (a synthetic
        ``llmrelay_call_<n>`` id works too: the dialects that need the tool's name find it from the call
        with that id in the turns before, so ``name`` is only needed when no such call is in the request)."""
        return cls(role=Role.TOOL, content=content, tool_call_id=tool_call_id, name=name)

    @property
    def text(self) -> str:
        """The concatenated text parts (reasoning and images excluded)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A provider-neutral chat request.

    ``system`` is a convenience for a leading system message. ``provider_options`` is namespaced by dialect
    (``{"openai": {...}, "anthropic": {...}}``): each dialect reads only its own namespace and merges it into
    the body it sends, so vendor-specific settings never leak to another provider.
    """

    model: str | None = None
    messages: Sequence[Message] = ()
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: Sequence[str] | None = None
    tools: Sequence[ToolDef] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: JsonSchemaFormat | Literal["json", "text"] | None = None
    seed: int | None = None
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.messages) is not tuple:
            object.__setattr__(self, "messages", tuple(self.messages))
        if type(self.tools) is not tuple:
            object.__setattr__(self, "tools", tuple(self.tools))
        if self.stop is not None:
            stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            object.__setattr__(self, "stop", stop)

    def options_for(self, dialect: str) -> Mapping[str, Any]:
        """This request's ``provider_options`` for one dialect (empty when none)."""
        return self.provider_options.get(dialect, {})


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, with one meaning on every dialect; ``None`` means not reported.

    - ``input_tokens``: every prompt token the provider processed, cached or not. The uncached part is
      ``input_tokens - (cache_read_tokens or 0) - (cache_write_tokens or 0)``.
    - ``cache_read_tokens`` / ``cache_write_tokens``: the prompt tokens read from / written to the
      provider's prompt cache; both are parts of ``input_tokens``.
    - ``output_tokens``: every generated token, reasoning included; ``reasoning_tokens`` is a part of it.
    - ``total_tokens``: ``input_tokens + output_tokens``.

    Each dialect's decoder converts its provider's figures to this meaning (``wire/*/maps.py`` cite the
    vendor documentation): OpenAI's ``prompt_tokens`` already includes ``cached_tokens``; Anthropic's
    ``input_tokens`` excludes its cache reads and writes, so they are added; Gemini's
    ``candidatesTokenCount`` excludes ``thoughtsTokenCount``, so the thoughts are added to the output.
    """

    input_tokens: int | None = None
    """All prompt tokens, cached ones included."""
    output_tokens: int | None = None
    """All generated tokens, reasoning (thinking) tokens included."""
    total_tokens: int | None = None
    """``input_tokens + output_tokens`` (computed when the provider does not report it)."""
    cache_read_tokens: int | None = None
    """Prompt tokens served from the prompt cache: a part of ``input_tokens``."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the prompt cache: a part of ``input_tokens``."""
    reasoning_tokens: int | None = None
    """Reasoning (thinking) tokens: a part of ``output_tokens``."""

    def __post_init__(self) -> None:
        if self.total_tokens is None and self.input_tokens is not None and self.output_tokens is not None:
            object.__setattr__(self, "total_tokens", self.input_tokens + self.output_tokens)


@dataclass(frozen=True, slots=True)
class CallWarning:
    """A setting the provider could not honour (sent on, dropped or changed), reported, never silent."""

    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A complete assistant turn: the fold of a stream, or a decoded non-streaming body."""

    text: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = FinishReason.OTHER
    finish_reason_raw: str | None = None
    usage: Usage | None = None
    model: str | None = None
    provider: str | None = None
    request_id: str | None = None
    warnings: tuple[CallWarning, ...] = ()
    refusal: str | None = None
    reasoning_parts: tuple[ReasoningPart, ...] = ()
    """Reasoning blocks with their signatures, for sending back in the next turn."""
    error: LlmError | None = None
    """Set when an error ended the stream after output began (``finish_reason`` is ``ERROR``)."""
    attempts: tuple[Attempt, ...] = ()
    """The attempts that failed before this reply (a retry or fallback wrapper's), first to last."""

    @property
    def message(self) -> Message:
        """This reply as an assistant ``Message``, ready to append to the conversation."""
        parts: list[ContentPart] = [*self.reasoning_parts]
        if self.text:
            parts.append(TextPart(self.text))
        content: str | Sequence[ContentPart] = self.text if not self.reasoning_parts else parts
        return Message(role=Role.ASSISTANT, content=content, tool_calls=self.tool_calls)
