"""Ollama's native API (``/api/chat``, ``/api/generate``): NDJSON streams, whole tool calls, ``think``.

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md and docs/api/*.mdx. The OpenAI-compatible
``/v1`` endpoint of Ollama is served by the ``openai_chat`` dialect instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import LlmError
from ..._events import StreamEvent
from ..._types import ChatRequest, ChatResponse
from ..dialect import EncodedRequest
from .decode import OllamaStreamDecoder, apply_object, decode_body, events_from_body
from .encode import CHAT_PATH, GENERATE_PATH, Endpoint, encode_request
from .errors import decode_error, error_from_payload
from .maps import map_finish_reason, parse_usage

__all__ = [
    "CHAT_PATH",
    "GENERATE_PATH",
    "Endpoint",
    "OllamaDialect",
    "OllamaStreamDecoder",
    "apply_object",
    "decode_body",
    "decode_error",
    "encode_request",
    "error_from_payload",
    "events_from_body",
    "map_finish_reason",
    "parse_usage",
]


class OllamaDialect:
    """The ``Dialect`` object for Ollama's native API.

    ``endpoint="generate"`` sends prompt-only requests to ``/api/generate`` (anything else still goes to
    ``/api/chat``, with a warning); ``keep_alive`` is sent with every request unless
    ``provider_options["ollama"]["keep_alive"]`` overrides it. The decoder reads both endpoints' shapes.
    """

    name = "ollama"

    def __init__(self, *, endpoint: Endpoint = "chat", keep_alive: str | float | None = None) -> None:
        if endpoint not in ("chat", "generate"):
            raise ValueError(f"endpoint must be 'chat' or 'generate', not {endpoint!r}")
        self.endpoint: Endpoint = endpoint
        self.keep_alive = keep_alive

    def encode(self, request: ChatRequest, *, model: str, stream: bool) -> EncodedRequest:
        path, body, warnings = encode_request(
            request, model=model, stream=stream, endpoint=self.endpoint, keep_alive=self.keep_alive
        )
        return EncodedRequest(body=body, warnings=tuple(warnings), path=path)

    def stream_decoder(self) -> OllamaStreamDecoder:
        return OllamaStreamDecoder()

    def decode_body(self, body: bytes) -> ChatResponse:
        return decode_body(body)

    def events_from_body(self, body: bytes) -> list[StreamEvent]:
        return events_from_body(body)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
        return decode_error(status, headers, body)
