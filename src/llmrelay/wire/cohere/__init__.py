"""Cohere's Chat API v2 (``POST /v2/chat``): typed SSE events, tool plans, thinking, bearer auth.

Reference: https://docs.cohere.com/reference/chat and https://docs.cohere.com/reference/chat-stream.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import LlmError
from ..._events import StreamEvent
from ..._types import ChatRequest, ChatResponse
from ..dialect import EncodedRequest
from .decode import CohereStreamDecoder, decode_body, events_from_body
from .encode import CHAT_PATH, encode_request
from .errors import STATUS_ERRORS, decode_error, error_from_payload, finish_error
from .maps import map_finish_reason, parse_usage

__all__ = [
    "CHAT_PATH",
    "STATUS_ERRORS",
    "CohereDialect",
    "CohereStreamDecoder",
    "decode_body",
    "decode_error",
    "encode_request",
    "error_from_payload",
    "events_from_body",
    "finish_error",
    "map_finish_reason",
    "parse_usage",
]


class CohereDialect:
    """The ``Dialect`` object for Cohere's Chat API v2."""

    name = "cohere"

    def encode(self, request: ChatRequest, *, model: str, stream: bool) -> EncodedRequest:
        body, warnings = encode_request(request, model=model, stream=stream)
        return EncodedRequest(body=body, warnings=tuple(warnings), path=CHAT_PATH)

    def stream_decoder(self) -> CohereStreamDecoder:
        return CohereStreamDecoder()

    def decode_body(self, body: bytes) -> ChatResponse:
        return decode_body(body)

    def events_from_body(self, body: bytes) -> list[StreamEvent]:
        return events_from_body(body)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        return decode_error(status, headers, body)
