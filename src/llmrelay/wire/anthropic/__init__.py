"""The Anthropic Messages API (https://platform.claude.com/docs/en/api/messages): Claude's native dialect.

``encode`` builds the ``POST /v1/messages`` body, ``decode`` turns event streams and message bodies into
stream events, ``errors`` classifies error bodies and in-stream ``error`` events, ``maps`` holds the value
tables. The endpoint (base URL, ``x-api-key``, ``anthropic-version``) lives in ``llmrelay.providers.anthropic``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import LlmError
from ..._events import StreamEvent
from ..._types import ChatRequest, ChatResponse
from ..dialect import EncodedRequest
from .decode import AnthropicStreamDecoder, decode_body, events_from_body
from .encode import DEFAULT_MAX_TOKENS, encode_request
from .errors import decode_error, error_from_payload
from .maps import map_finish_reason, parse_usage
from .serve_encode import AnthropicStreamEncoder
from .server import AnthropicServer

__all__ = [
    "AnthropicServer",
    "AnthropicStreamEncoder",
    "DEFAULT_MAX_TOKENS",
    "AnthropicDialect",
    "AnthropicStreamDecoder",
    "decode_body",
    "decode_error",
    "encode_request",
    "error_from_payload",
    "events_from_body",
    "map_finish_reason",
    "parse_usage",
]


class AnthropicDialect:
    """The ``Dialect`` object for the Messages API.

    ``default_max_tokens``: what to send when a request has no ``max_tokens`` (Anthropic requires one). Left
    ``None``, ``DEFAULT_MAX_TOKENS`` is sent with a ``CallWarning``; set, it is sent silently, since choosing
    it was deliberate.
    """

    name = "anthropic"

    def __init__(self, *, default_max_tokens: int | None = None) -> None:
        self.default_max_tokens = default_max_tokens

    def encode(self, request: ChatRequest, *, model: str, stream: bool) -> EncodedRequest:
        body, headers, warnings = encode_request(
            request, model=model, stream=stream, default_max_tokens=self.default_max_tokens
        )
        return EncodedRequest(body=body, warnings=tuple(warnings), headers=headers)

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def decode_body(self, body: bytes) -> ChatResponse:
        return decode_body(body)

    def events_from_body(self, body: bytes) -> list[StreamEvent]:
        return events_from_body(body)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        return decode_error(status, headers, body)
