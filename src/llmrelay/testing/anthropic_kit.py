"""Scenario kit for the Anthropic Messages API (see ``llmrelay.testing.kit``).

Replies are byte-exact Messages API responses: compact JSON bodies, and event streams with an ``event:`` line
before each ``data:`` line, a ``ping`` after the first block start, and cumulative usage in ``message_delta``
(https://platform.claude.com/docs/en/build-with-claude/streaming). Error bodies follow
https://platform.claude.com/docs/en/api/errors, including the 402 ``billing_error`` for exhausted credit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._events import ReasoningDelta, StreamEvent
from .._provider import Provider
from .._types import FinishReason
from ..wire.anthropic.server import AnthropicServer
from ._served import call_events, served, text_events
from .kit import ToolCallSpec
from .upstream import Reply, SeenRequest

__all__ = ["KIT", "AnthropicKit", "sse_events"]

# https://platform.claude.com/docs/en/api/errors ("HTTP errors"); other 4XX use invalid_request_error.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_MODEL = "test-model"
_SERVER = AnthropicServer()
_ID = "msg_kit"


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sse_events(events: Sequence[Mapping[str, Any]], **kw: Any) -> Reply:
    """An Anthropic event stream: each payload as ``event: <type>`` + ``data: <json>``, one chunk each."""
    chunks = tuple(f"event: {e['type']}\ndata: {_dumps(e)}\n\n".encode() for e in events)
    return Reply(status=200, chunks=chunks, content_type="text/event-stream", **kw)


def _usage(inp: int, out: int) -> dict[str, Any]:
    return {"input_tokens": inp, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": out}


class AnthropicKit:
    """Builds Anthropic replies for the cross-dialect matrix and for users' tests."""

    name = "anthropic"
    quota_status = 402

    def provider(self, base_url: str, model: str = _MODEL) -> Provider:
        from ..providers.anthropic import AnthropicProvider

        return AnthropicProvider(model, base_url=base_url, api_key="sk-ant-kit-test-key-000000")

    # --- building blocks ------------------------------------------------------------------------------

    def _body(self, content: list[dict[str, Any]], stop: str, usage: tuple[int, int]) -> Reply:
        return Reply.json(
            {
                "model": _MODEL,
                "id": "msg_kit",
                "type": "message",
                "role": "assistant",
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": _usage(*usage),
            }
        )

    def _stream(
        self, blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]], stop: str, usage: tuple[int, int]
    ) -> Reply:
        """``blocks``: (the block as ``content_block_start`` shows it, its deltas)."""
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_kit",
                    "type": "message",
                    "role": "assistant",
                    "model": _MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _usage(usage[0], 1),
                },
            }
        ]
        for index, (start, deltas) in enumerate(blocks):
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            if index == 0:
                events.append({"type": "ping"})
            events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
            events.append({"type": "content_block_stop", "index": index})
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            }
        )
        events.append({"type": "message_stop"})
        return sse_events(events)

    @staticmethod
    def _text_block(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        mid = len(text) // 2
        parts = [p for p in (text[:mid], text[mid:]) if p]
        return {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in parts]

    # --- DialectKit --------------------------------------------------------------------------------------

    # Replies are what the gateway's Anthropic encoder writes (``testing._served``): one encoder for both.

    def text(self, text: str, *, stream: bool, usage: tuple[int, int] = (10, 5)) -> Reply:
        return served(_SERVER, text_events(text, FinishReason.STOP, usage), stream=stream, model=_MODEL, rid=_ID)

    def tool_calls(self, calls: Sequence[ToolCallSpec], *, stream: bool) -> Reply:
        return served(_SERVER, call_events(calls, "toolu_kit_"), stream=stream, model=_MODEL, rid=_ID)

    def reasoning(self, reasoning: str, text: str, *, stream: bool) -> Reply:
        thinking = ReasoningDelta(reasoning, signature="EqQBCgIYAhIMkitSignature==")
        events: list[StreamEvent] = [thinking, *text_events(text, FinishReason.STOP, (10, 5))]
        return served(_SERVER, events, stream=stream, model=_MODEL, rid=_ID)

    def length(self, text: str, *, stream: bool) -> Reply:
        return served(_SERVER, text_events(text, FinishReason.LENGTH, (10, 5)), stream=stream, model=_MODEL, rid=_ID)

    def error(self, status: int, *, retry_after: float | None = None) -> Reply:
        etype = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        headers["request-id"] = "req_kit"
        body = {"type": "error", "error": {"type": etype, "message": f"kit error {status}"}, "request_id": "req_kit"}
        return Reply.raw(_dumps(body).encode(), status=status, headers=headers)

    def quota(self) -> Reply:
        body = {
            "type": "error",
            "error": {
                "type": "billing_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
            "request_id": "req_kit",
        }
        return Reply.raw(_dumps(body).encode(), status=402, headers={"request-id": "req_kit"})

    def stream_error(self, *, after_text: str | None = None) -> Reply:
        # https://platform.claude.com/docs/en/build-with-claude/streaming#error-events: ``overloaded_error``.
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_kit",
                    "type": "message",
                    "role": "assistant",
                    "model": _MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _usage(10, 1),
                },
            }
        ]
        if after_text:
            events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            events.append(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": after_text}}
            )
        events.append({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        return sse_events(events)

    def sent_messages(self, request: SeenRequest) -> list[Mapping[str, Any]]:
        return list(request.json["messages"])

    def sent_image(self, request: SeenRequest) -> bool:
        def has_image(blocks: Any) -> bool:
            if not isinstance(blocks, list):
                return False
            return any(
                isinstance(b, dict)
                and (b.get("type") == "image" or (b.get("type") == "tool_result" and has_image(b.get("content"))))
                for b in blocks
            )

        return any(has_image(m.get("content")) for m in request.json["messages"])

    def sent_tool_result(self, request: SeenRequest, call_id: str | None, content: str) -> bool:
        for message in request.json["messages"]:
            blocks = message.get("content")
            if message.get("role") != "user" or not isinstance(blocks, list):
                continue
            for block in blocks:
                if not isinstance(block, dict) or block.get("type") != "tool_result":
                    continue
                if call_id is not None and block.get("tool_use_id") != call_id:
                    continue
                sent = block.get("content")
                if isinstance(sent, list):
                    sent = "".join(b.get("text", "") for b in sent if isinstance(b, dict) and b.get("type") == "text")
                if sent == content:
                    return True
        return False


KIT = AnthropicKit()
