"""OpenAI Chat Completions: the dialect spoken by OpenAI, Azure OpenAI and most compatible servers."""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import LlmError
from ..._events import StreamEvent
from ..._types import ChatRequest, ChatResponse
from ..dialect import EncodedRequest, encoded_request
from .decode import OpenAIChatStreamDecoder, decode_body, events_from_body
from .encode import encode_request
from .errors import decode_error, error_from_payload
from .maps import map_finish_reason, parse_usage
from .serve_encode import OpenAIChatStreamEncoder
from .server import OpenAIChatServer

__all__ = [
    "OpenAIChatServer",
    "OpenAIChatStreamEncoder",
    "OpenAIChatDialect",
    "OpenAIChatStreamDecoder",
    "decode_body",
    "decode_error",
    "encode_request",
    "error_from_payload",
    "events_from_body",
    "map_finish_reason",
    "parse_usage",
]


class OpenAIChatDialect:
    """The ``Dialect`` object for Chat Completions.

    ``max_tokens_field``: OpenAI's own API deprecated ``max_tokens`` in favour of
    ``max_completion_tokens`` (required by its reasoning models); most compatible servers still expect
    ``max_tokens``.
    """

    name = "openai"

    def __init__(self, *, max_tokens_field: str = "max_tokens") -> None:
        self.max_tokens_field = max_tokens_field

    def encode(self, request: ChatRequest, *, model: str, stream: bool) -> EncodedRequest:
        body, warnings = encode_request(request, model=model, stream=stream, max_tokens_field=self.max_tokens_field)
        return encoded_request(body, tuple(warnings))

    def stream_decoder(self) -> OpenAIChatStreamDecoder:
        return OpenAIChatStreamDecoder()

    def chunking_decoder(self) -> OpenAIChatStreamDecoder:
        """The stream decoder for a consumer that takes ``TextChunks`` (``text_chunks``)."""
        from .text_chunks import OpenAIChatChunkingDecoder

        return OpenAIChatChunkingDecoder()

    def decode_body(self, body: bytes) -> ChatResponse:
        return decode_body(body)

    def events_from_body(self, body: bytes) -> list[StreamEvent]:
        return events_from_body(body)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        return decode_error(status, headers, body)
