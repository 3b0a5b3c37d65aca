"""Scenario kit for OpenAI Chat Completions (see ``llmrelay.testing.kit``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._events import Done, ReasoningDelta, StreamEvent, TextDelta
from .._provider import Provider
from .._types import FinishReason, Usage
from ..wire.openai_chat.server import OpenAIChatServer
from ._served import call_events, served, text_events
from .kit import ToolCallSpec
from .upstream import Reply, SeenRequest

__all__ = ["KIT", "OpenAIKit"]

_SERVER = OpenAIChatServer()
_MODEL = "test-model"
_ID = "chatcmpl-kit"

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("server_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _chunk(delta: Mapping[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-kit",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish}],
    }


def _usage(inp: int, out: int) -> dict[str, Any]:
    return {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}


class OpenAIKit:
    name = "openai"
    quota_status = 429

    def provider(self, base_url: str, model: str = "test-model") -> Provider:
        from ..providers.openai import OpenAIProvider

        return OpenAIProvider(model, base_url=f"{base_url}/v1", api_key="sk-kit-test-key-000000")

    def _body(self, message: Mapping[str, Any], finish: str, usage: tuple[int, int]) -> Reply:
        return Reply.json(
            {
                "id": "chatcmpl-kit",
                "object": "chat.completion",
                "created": 1,
                "model": "test-model",
                "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
                "usage": _usage(*usage),
            }
        )

    def _stream(self, deltas: Sequence[Mapping[str, Any]], finish: str, usage: tuple[int, int]) -> Reply:
        chunks: list[Any] = [_chunk({"role": "assistant", "content": ""})]
        chunks += [_chunk(d) for d in deltas]
        chunks.append(_chunk({}, finish))
        chunks.append({**_chunk({}), "choices": [], "usage": _usage(*usage)})
        chunks.append("[DONE]")
        return Reply.sse(chunks)

    # Replies are what the gateway's OpenAI encoder writes (``testing._served``): one encoder for both.

    def text(self, text: str, *, stream: bool, usage: tuple[int, int] = (10, 5)) -> Reply:
        return served(_SERVER, text_events(text, FinishReason.STOP, usage), stream=stream, model=_MODEL, rid=_ID)

    def tool_calls(self, calls: Sequence[ToolCallSpec], *, stream: bool) -> Reply:
        return served(_SERVER, call_events(calls, "call_kit_"), stream=stream, model=_MODEL, rid=_ID)

    def reasoning(self, reasoning: str, text: str, *, stream: bool) -> Reply:
        events: list[StreamEvent] = [ReasoningDelta(reasoning), *text_events(text, FinishReason.STOP, (10, 5))]
        return served(_SERVER, events, stream=stream, model=_MODEL, rid=_ID)

    def length(self, text: str, *, stream: bool) -> Reply:
        events: list[StreamEvent] = [
            TextDelta(text),
            Done(FinishReason.LENGTH, usage=Usage(input_tokens=10, output_tokens=5)),
        ]
        return served(_SERVER, events, stream=stream, model=_MODEL, rid=_ID)

    def error(self, status: int, *, retry_after: float | None = None) -> Reply:
        etype, code = _ERROR_TYPES.get(status, ("server_error", None))
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        body = {"error": {"message": f"kit error {status}", "type": etype, "param": None, "code": code}}
        return Reply.json(body, status=status, headers=headers)

    def quota(self) -> Reply:
        body = {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }
        return Reply.json(body, status=429)

    def stream_error(self, *, after_text: str | None = None) -> Reply:
        # What OpenAI writes when generation fails after the 200: a data event with only ``error``.
        chunks: list[Any] = [_chunk({"role": "assistant", "content": ""})]
        if after_text:
            chunks.append(_chunk({"content": after_text}))
        message = "The server had an error while processing your request. Sorry about that!"
        chunks.append({"error": {"message": message, "type": "server_error", "param": None, "code": None}})
        return Reply.sse(chunks)

    def sent_messages(self, request: SeenRequest) -> list[Mapping[str, Any]]:
        return list(request.json["messages"])

    def sent_image(self, request: SeenRequest) -> bool:
        for message in request.json["messages"]:
            content = message.get("content")
            if isinstance(content, list) and any(p.get("type") == "image_url" for p in content):
                return True
        return False

    def sent_tool_result(self, request: SeenRequest, call_id: str | None, content: str) -> bool:
        return any(
            m.get("role") == "tool" and m.get("tool_call_id") == call_id and m.get("content") == content
            for m in request.json["messages"]
        )


KIT = OpenAIKit()
