"""The served half of Anthropic Messages, as one ``ServedDialect`` object (see ``wire.serve``)."""

from __future__ import annotations

from typing import Any

from ..._errors import LlmError
from ..._types import ChatResponse
from ..serve import DecodedRequest, ErrorReply
from .serve_encode import AnthropicStreamEncoder, encode_error, encode_response, error_reply
from .serve_request import decode_request

__all__ = ["AnthropicServer"]


class AnthropicServer:
    """Speaks ``POST /v1/messages`` to a gateway's callers."""

    name = "anthropic"
    text_chunks: str | None = None

    def decode_request(self, body: Any) -> DecodedRequest:
        return decode_request(body)

    def stream_encoder(
        self, *, model: str, created: int, include_usage: bool = True, response_id: str | None = None
    ) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(
            model=model, created=created, include_usage=include_usage, response_id=response_id
        )

    def encode_response(
        self, response: ChatResponse, *, model: str, created: int, response_id: str | None = None
    ) -> dict[str, Any]:
        return encode_response(response, model=model, created=created, response_id=response_id)

    def encode_error(self, error: LlmError) -> ErrorReply:
        return encode_error(error)

    def error_reply(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> ErrorReply:
        return error_reply(status, message, param=param, code=code)
