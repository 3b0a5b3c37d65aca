"""The Gemini API (``generativelanguage.googleapis.com``): ``generateContent`` and
``streamGenerateContent?alt=sse`` (https://ai.google.dev/api/generate-content).

Vertex AI speaks the same body format under a different URL and auth; its streamed function-call
arguments (``partialArgs``) are decoded too.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import LlmError
from ..._events import StreamEvent
from ..._types import ChatRequest, ChatResponse
from ..dialect import EncodedRequest
from .decode import GeminiStreamDecoder, decode_body, events_from_body
from .encode import encode_request, model_path
from .errors import decode_error, error_from_payload, parse_duration
from .maps import map_finish_reason, parse_usage

__all__ = [
    "GeminiDialect",
    "GeminiStreamDecoder",
    "decode_body",
    "decode_error",
    "encode_request",
    "error_from_payload",
    "events_from_body",
    "map_finish_reason",
    "model_path",
    "parse_duration",
    "parse_usage",
]


class GeminiDialect:
    """The ``Dialect`` object for the Gemini API. ``EncodedRequest.path`` is
    ``models/{model}:generateContent`` or ``:streamGenerateContent``, relative to the API version; the
    provider adds the base URL, the version and ``?alt=sse``."""

    name = "gemini"

    def encode(self, request: ChatRequest, *, model: str, stream: bool) -> EncodedRequest:
        path, body, warnings = encode_request(request, model=model, stream=stream, options_key=self.name)
        return EncodedRequest(body=body, warnings=tuple(warnings), path=path)

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()

    def decode_body(self, body: bytes) -> ChatResponse:
        return decode_body(body)

    def events_from_body(self, body: bytes) -> list[StreamEvent]:
        return events_from_body(body)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        return decode_error(status, headers, body)
