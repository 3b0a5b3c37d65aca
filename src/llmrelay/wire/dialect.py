"""What a wire dialect provides: pure functions and a stateful stream decoder, no I/O.

A dialect package (``wire/openai_chat``, ``wire/anthropic``, ...) exposes an object satisfying
``Dialect``; the HTTP provider base (``llmrelay._http_provider``) does the I/O around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._builders import builder
from .._errors import LlmError
from .._events import StreamEvent
from .._types import CallWarning, ChatRequest, ChatResponse

__all__ = ["Dialect", "EncodedRequest", "StreamDecoder"]


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """A request body in a dialect's wire format, and the settings it could not express."""

    body: Mapping[str, Any]
    warnings: tuple[CallWarning, ...] = ()
    path: str | None = None
    """A dialect-specific path (Gemini puts the model and the method in the URL)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers the request needs (Anthropic beta flags, ...)."""


encoded_request = builder(EncodedRequest, ("body", "warnings"))
"""``EncodedRequest(body, warnings)`` by position (``llmrelay._builders``), for a dialect's ``encode`` (one per
call): no ``path``, no extra headers."""


class StreamDecoder(Protocol):
    """Incremental decoder of one streamed response body."""

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Add body bytes; return the events they complete."""
        ...

    def close(self) -> list[StreamEvent]:
        """The body ended; return the last events. A body cut before its terminator ends in
        ``Done(error=ProtocolError)``."""
        ...

    def fail(self, error: LlmError) -> list[StreamEvent]:
        """The transport failed mid-body: close open calls and end with ``Done(error=error)``."""
        ...


class Dialect(Protocol):
    """A wire format: encoding, decoding, error classification."""

    name: str
    """The ``provider_options`` namespace this dialect reads (``openai``, ``anthropic``, ...)."""

    def encode(self, request: ChatRequest, *, model: str, stream: bool) -> EncodedRequest: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def decode_body(self, body: bytes) -> ChatResponse:
        """Decode a complete non-streaming body (by folding the events it stands for)."""
        ...

    def events_from_body(self, body: bytes) -> list[StreamEvent]:
        """The events a complete non-streaming body stands for (``decode_body`` folds them)."""
        ...

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        """Classify an HTTP error response (header names lower-case)."""
        ...
