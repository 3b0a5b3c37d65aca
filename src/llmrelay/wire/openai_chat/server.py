"""The served half of OpenAI Chat Completions, as one ``ServedDialect`` object (see ``wire.serve``)."""

from __future__ import annotations

from typing import Any

from ..._errors import LlmError
from ..._types import ChatResponse
from ..serve import DecodedRequest, ErrorReply
from .serve_encode import OpenAIChatStreamEncoder, encode_error, encode_response, error_reply
from .serve_request import decode_request

__all__ = ["OpenAIChatServer"]


class OpenAIChatServer:
    """Speaks ``POST /v1/chat/completions`` to a gateway's callers."""

    name = "openai"
    text_chunks: str | None = "openai"

    def decode_request(self, body: Any) -> DecodedRequest:
        return decode_request(body)

    def stream_encoder(
        self, *, model: str, created: int, include_usage: bool = True, response_id: str | None = None
    ) -> OpenAIChatStreamEncoder:
        return OpenAIChatStreamEncoder(
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
