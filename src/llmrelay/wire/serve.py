"""The server half of a wire dialect: what a gateway needs to *speak* a vendor's API to its callers.

The client half of each dialect (``encode`` / ``decode`` / ``errors``) talks to a provider; the server half
does the reverse, with the same value maps, and no I/O either:

- ``decode_request(body)``: the caller's JSON body (already parsed) -> ``DecodedRequest``: our
  ``ChatRequest`` plus the requested ``model`` string, the ``stream`` flag and ``CallWarning``s for what
  cannot be honoured. Bad input raises an ``InvalidRequestError`` made by ``bad_request``, whose message
  starts with the path of the field at fault (``messages[2].content[0].type: unknown part type 'foo'``),
  so a gateway answers 400 with ``encode_error``;
- ``stream_encoder(...)``: a stateful encoder, our ``StreamEvent``s -> the vendor's event-stream bytes, with
  the vendor's ids, indexes, usage and terminator; ``fail(error)`` ends a stream that already started with
  the dialect's in-stream error event (never a clean end: clients read that as success);
- ``encode_response(response, ...)``: a ``ChatResponse`` -> the vendor's non-streaming JSON body;
- ``encode_error(error)``: an ``LlmError`` -> ``ErrorReply`` (HTTP status, the dialect's error body, and
  ``Retry-After`` when the error carries one); ``error_reply(status, message)`` for the gateway's own
  refusals (a missing gateway key, an oversized body).

How an error becomes a status is one table for every dialect (``wire.serve_errors``); each dialect only
spells the result its own way.

Nothing here reads a clock or draws randomness the caller cannot replace: ``created`` timestamps are
passed in, and ids default to ``new_id`` (random) but can be given.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import InvalidRequestError, LlmError
from .._events import StreamEvent
from .._types import CallWarning, ChatRequest, ChatResponse

__all__ = [
    "DecodedRequest",
    "ErrorReply",
    "ServedDialect",
    "ServedStreamEncoder",
    "bad_request",
    "new_id",
    "param_of",
]


def bad_request(param: str | None, message: str) -> InvalidRequestError:
    """The error for a malformed caller's body, or one asking for what this gateway cannot serve: an
    ``InvalidRequestError`` (never retried or failed over; a gateway answers it with 400) whose message
    starts with the path of the field at fault (``messages[2].content[0].type: ...``). The path is also
    kept as the error's ``param`` (``param_of``) for the dialects whose error body has that field.

    A plain ``InvalidRequestError`` rather than a class of its own: every error class has its own
    ``kind`` in the retry and fail-over tables, and this is exactly ``invalid_request``.
    """
    error = InvalidRequestError(f"{param}: {message}" if param else message, status=400, code="invalid_request_error")
    error.__dict__["param"] = param
    return error


def param_of(error: LlmError) -> str | None:
    """The field path ``bad_request`` gave ``error``, if any."""
    value = error.__dict__.get("param")
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    """A caller's request, decoded from a served dialect.

    ``request.model`` is left ``None``: the requested ``model`` string is the gateway's to resolve (an
    alias, a chain, a router), so it is kept beside the request.
    """

    request: ChatRequest
    model: str
    """The ``model`` the caller asked for, as written."""
    stream: bool = False
    include_usage: bool = True
    """Whether a streamed answer should end with usage: OpenAI's ``stream_options.include_usage``;
    always true for Anthropic (its stream always carries usage)."""
    warnings: tuple[CallWarning, ...] = ()
    """Settings that cannot be honoured whatever answers (ignored fields, dropped flags)."""
    vendor_warnings: tuple[CallWarning, ...] = ()
    """Settings passed on in ``request.provider_options[dialect]``: honoured only when the upstream speaks
    the same dialect (``warnings_for``)."""
    dialect: str = ""
    """The served dialect's ``provider_options`` namespace (``openai``, ``anthropic``)."""

    def warnings_for(self, upstream_dialect: str | None) -> tuple[CallWarning, ...]:
        """The warnings that apply when the upstream speaks ``upstream_dialect`` (a ``Dialect.name``)."""
        if upstream_dialect == self.dialect:
            return self.warnings
        return self.warnings + self.vendor_warnings


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An HTTP error answer: status, the dialect's JSON error body, and extra headers (``retry-after``,
    ``x-should-retry``)."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class ServedStreamEncoder(Protocol):
    """Encodes one response stream; see the module docstring."""

    @property
    def finished(self) -> bool:
        """Whether the stream has ended (after ``Done`` or ``fail``); later events encode to nothing."""
        ...

    def encode(self, event: StreamEvent) -> bytes:
        """The bytes for one event (often none: some events only change state)."""
        ...

    def encode_batch(self, events: Sequence[StreamEvent]) -> bytes:
        """The bytes for ``events`` in order: the same as ``encode`` of each, joined (a gateway encodes each
        batch a provider stream delivers at once; an encoder may write it faster than event by event)."""
        ...

    def fail(self, error: LlmError) -> bytes:
        """End the stream with the dialect's in-stream error event (as ``Done(ERROR, error=error)``)."""
        ...


class ServedDialect(Protocol):
    """The server half of a dialect; see the module docstring."""

    name: str
    """The ``provider_options`` namespace of the dialect (``openai``, ``anthropic``)."""
    text_chunks: str | None
    """The dialect whose ``TextChunks`` this dialect's stream encoder re-frames (its own, when it can), or
    ``None``: the gateway asks the upstream for them (``TEXT_CHUNKS_OPTION``) only then."""

    def decode_request(self, body: Any) -> DecodedRequest: ...

    def stream_encoder(
        self, *, model: str, created: int, include_usage: bool = True, response_id: str | None = None
    ) -> ServedStreamEncoder: ...

    def encode_response(
        self, response: ChatResponse, *, model: str, created: int, response_id: str | None = None
    ) -> dict[str, Any]: ...

    def encode_error(self, error: LlmError) -> ErrorReply: ...

    def error_reply(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> ErrorReply: ...


def new_id(prefix: str) -> str:
    """A fresh response id in the vendor's shape: ``chatcmpl-...`` or ``msg_...`` (24 random characters)."""
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
