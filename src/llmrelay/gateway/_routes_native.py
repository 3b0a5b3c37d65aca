"""Our own routes, in our own data model (the tagged JSON codec of ``llmrelay._codec``):

- ``POST /api/chat``: the body is a ``ChatRequest`` as ``to_json`` writes it (``"type": "chat_request"``
  may be left out) with ``model`` the model string to use, and optionally ``"fallbacks": [...]``; the answer
  is the ``ChatResponse`` (``"type": "chat_response"``).
- ``POST /api/agent``: the same, refused with 400 when the resolved model's capabilities lack tools.
- ``POST /api/agent/stream``: the same request; the answer is an event stream, one ``data:`` line per
  stream event in the codec (``text``, ``reasoning``, ``tool_call_start``, ``tool_call_delta``,
  ``tool_call``, ``done``); an error after the stream began is a ``done`` with ``finish_reason: "error"``
  and its ``error``, never a clean end.

Errors are ``{"error": {"type": CATEGORY, "kind": KIND, "message": ..., "code": ..., "param": ...}}``
with the status of ``wire.serve_errors`` (the same table as the vendor dialects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web

from .._codec import from_json, json_line, to_json
from .._errors import LlmError
from .._events import Done, StreamEvent
from .._types import ChatRequest, ChatResponse, FinishReason
from ..wire.serve import DecodedRequest, ErrorReply, bad_request
from ..wire.serve_errors import ErrorAnswer, answer_for, answer_for_status, retry_headers
from ._relay import Gateway, Served, relay

__all__ = ["NativeDialect", "add_native_routes"]


def _error_body(answer: ErrorAnswer, kind: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": answer.category, "message": answer.message}
    if kind is not None:
        error["kind"] = kind
    if answer.code is not None:
        error["code"] = answer.code
    if answer.param is not None:
        error["param"] = answer.param
    return {"error": error}


class NativeStreamEncoder:
    """Our events as ``data: <tagged JSON>`` lines; see the module docstring."""

    __slots__ = ("_finished", "_model")

    def __init__(self, model: str) -> None:
        self._model = model
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def encode(self, event: StreamEvent) -> bytes:
        if self._finished:
            return b""
        if type(event) is not Done:
            return f"data: {json_line(to_json(event))}\n\n".encode()
        self._finished = True
        error = event.error
        data = to_json(replace(event, error=None, model=event.model or self._model))
        if error is not None:
            data["error"] = error_json(error)
        return f"data: {json_line(data)}\n\n".encode()

    def encode_batch(self, events: Sequence[StreamEvent]) -> bytes:
        return b"".join([self.encode(event) for event in events])

    def fail(self, error: LlmError) -> bytes:
        return self.encode(Done(FinishReason.ERROR, error=error))


def error_json(error: LlmError) -> dict[str, Any]:
    """``error`` in the codec, as a client may see it: the message the error table gives (scrubbed of
    credentials, an upstream's 401 text replaced) and no upstream body excerpt."""
    data = to_json(error)
    data.pop("body_excerpt", None)
    data["message"] = answer_for(error).message
    return data


class NativeDialect:
    """The served dialect of the native routes (``ServedDialect``)."""

    name = "native"
    text_chunks: str | None = None

    def decode_request(self, body: Any) -> DecodedRequest:
        if not isinstance(body, dict):
            raise bad_request(None, "expected a JSON object (a ChatRequest in llmrelay's JSON codec)")
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            raise bad_request("model", "required: the model string to use (PROVIDER/MODEL, an alias, ...)")
        data = {k: v for k, v in body.items() if k not in ("model", "stream")}
        data.setdefault("type", "chat_request")
        try:
            request = from_json(data, ChatRequest)
        except (ValueError, TypeError) as exc:
            raise bad_request(None, f"not a ChatRequest: {exc}") from None
        if not request.messages:
            raise bad_request("messages", "at least one message is required")
        return DecodedRequest(request=request, model=model.strip(), stream=False, dialect="native")

    def stream_encoder(
        self, *, model: str, created: int, include_usage: bool = True, response_id: str | None = None
    ) -> NativeStreamEncoder:
        return NativeStreamEncoder(model)

    def encode_response(
        self, response: ChatResponse, *, model: str, created: int, response_id: str | None = None
    ) -> dict[str, Any]:
        return to_json(response)

    def encode_error(self, error: LlmError) -> ErrorReply:
        answer = answer_for(error)
        return ErrorReply(answer.status, _error_body(answer, error.kind), retry_headers(answer))

    def error_reply(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> ErrorReply:
        answer = answer_for_status(status, message, param=param, code=code)
        return ErrorReply(status, _error_body(answer, None), retry_headers(answer))


def add_native_routes(app: web.Application, gw: Gateway) -> None:
    dialect = NativeDialect()
    chat = Served("/api/chat", dialect, stream=False)
    agent = Served("/api/agent", dialect, stream=False, needs_tools=True)
    agent_stream = Served("/api/agent/stream", dialect, stream=True, needs_tools=True)

    async def post_chat(request: web.Request) -> web.StreamResponse:
        return await relay(gw, request, chat)

    async def post_agent(request: web.Request) -> web.StreamResponse:
        return await relay(gw, request, agent)

    async def post_agent_stream(request: web.Request) -> web.StreamResponse:
        return await relay(gw, request, agent_stream)

    app.router.add_post("/api/chat", post_chat)
    app.router.add_post("/api/agent", post_agent)
    app.router.add_post("/api/agent/stream", post_agent_stream)
