"""Scenario kit for Cohere's Chat API v2 (see ``llmrelay.testing.kit``).

Streams are byte-exact to Cohere's event stream: ``event: <type>`` then ``data: <compact JSON>`` whose
``type`` repeats the event name, a blank line after each, ``message-start`` first and ``message-end`` (with
``finish_reason`` and ``usage``) last; tool calls stream as ``tool-plan-delta`` then
``tool-call-start`` / ``tool-call-delta`` / ``tool-call-end`` per call. Error bodies are
``{"id": ..., "message": ...}``; an exhausted billing limit is 402 (https://docs.cohere.com/reference/errors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._provider import Provider
from .kit import ToolCallSpec
from .upstream import Reply, SeenRequest

__all__ = ["KIT", "CohereKit"]

_ID = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
_PLAN = "I will call the tools to answer."


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event(payload: Mapping[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {_json(payload)}\n\n".encode()


def _usage(usage: tuple[int, int]) -> dict[str, Any]:
    inp, out = usage
    return {
        "billed_units": {"input_tokens": inp, "output_tokens": out},
        "tokens": {"input_tokens": inp, "output_tokens": out},
    }


def _start() -> dict[str, Any]:
    return {
        "id": _ID,
        "type": "message-start",
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}},
    }


def _end(finish: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {"type": "message-end", "delta": {"finish_reason": finish, "usage": _usage(usage)}}


def _block(index: int, kind: str, pieces: Sequence[str]) -> list[dict[str, Any]]:
    """A content block: ``content-start``, one ``content-delta`` per piece, ``content-end``."""
    events: list[dict[str, Any]] = [
        {"type": "content-start", "index": index, "delta": {"message": {"content": {"type": kind, kind: ""}}}}
    ]
    events += [
        {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: piece}}}} for piece in pieces
    ]
    events.append({"type": "content-end", "index": index})
    return events


class CohereKit:
    name = "cohere"
    quota_status = 402

    def provider(self, base_url: str, model: str = "test-model") -> Provider:
        from ..providers.cohere import CohereProvider

        return CohereProvider(model, base_url=base_url, api_key="co-kit-test-key-0000000000")

    def _stream(self, events: Sequence[Mapping[str, Any]], finish: str, usage: tuple[int, int]) -> Reply:
        payloads = [_start(), *events, _end(finish, usage)]
        return Reply(chunks=tuple(_event(p) for p in payloads), content_type="text/event-stream")

    def _body(self, message: Mapping[str, Any], finish: str, usage: tuple[int, int]) -> Reply:
        body = {"id": _ID, "message": {"role": "assistant", **message}, "finish_reason": finish, "usage": _usage(usage)}
        return Reply(chunks=(_json(body).encode(),), content_type="application/json")

    def text(self, text: str, *, stream: bool, usage: tuple[int, int] = (10, 5)) -> Reply:
        if not stream:
            return self._body({"content": [{"type": "text", "text": text}]}, "COMPLETE", usage)
        mid = len(text) // 2
        return self._stream(_block(0, "text", [text[:mid], text[mid:]]), "COMPLETE", usage)

    def tool_calls(self, calls: Sequence[ToolCallSpec], *, stream: bool) -> Reply:
        if not stream:
            wire = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": _json(args)}}
                for cid, name, args in calls
            ]
            return self._body({"tool_plan": _PLAN, "tool_calls": wire}, "TOOL_CALL", (10, 5))
        events: list[dict[str, Any]] = [{"type": "tool-plan-delta", "delta": {"message": {"tool_plan": _PLAN}}}]
        for i, (cid, name, args) in enumerate(calls):
            raw = _json(args)
            cut = len(raw) // 2
            start = {"id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
            events.append({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": start}}})
            for piece in (raw[:cut], raw[cut:]):
                fragment = {"function": {"arguments": piece}}
                events.append({"type": "tool-call-delta", "index": i, "delta": {"message": {"tool_calls": fragment}}})
            events.append({"type": "tool-call-end", "index": i})
        return self._stream(events, "TOOL_CALL", (10, 5))

    def reasoning(self, reasoning: str, text: str, *, stream: bool) -> Reply:
        if not stream:
            content = [{"type": "thinking", "thinking": reasoning}, {"type": "text", "text": text}]
            return self._body({"content": content}, "COMPLETE", (10, 5))
        return self._stream(_block(0, "thinking", [reasoning]) + _block(1, "text", [text]), "COMPLETE", (10, 5))

    def length(self, text: str, *, stream: bool) -> Reply:
        if not stream:
            return self._body({"content": [{"type": "text", "text": text}]}, "MAX_TOKENS", (10, 5))
        return self._stream(_block(0, "text", [text]), "MAX_TOKENS", (10, 5))

    def error(self, status: int, *, retry_after: float | None = None) -> Reply:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        message = (
            "model 'test-model' not found, make sure the correct model ID was used and that you have access to "
            "the model."
            if status == 404
            else f"kit error {status}"
        )
        body = {"id": "4d2b2c55-8f9e-4a1b-9d3c-0d9d1b2a7e11", "message": message}
        return Reply(status=status, chunks=(_json(body).encode(),), content_type="application/json", headers=headers)

    def quota(self) -> Reply:
        body = {
            "id": "9e3f3c1a-2b7d-4c55-8a61-5f0e2d4b6c70",
            "message": "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment "
            "to continue",
        }
        return Reply(status=402, chunks=(_json(body).encode(),), content_type="application/json")

    def stream_error(self, *, after_text: str | None = None) -> Reply:
        # A generation that fails: ``message-end`` with ``finish_reason`` ``ERROR`` and the error message.
        events: list[dict[str, Any]] = [_start()]
        if after_text:
            events += _block(0, "text", [after_text])[:2]
        events.append({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal server error"}})
        return Reply(chunks=tuple(_event(p) for p in events), content_type="text/event-stream")

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
            m.get("role") == "tool"
            and m.get("content") == content
            and (call_id is None or m.get("tool_call_id") == call_id)
            for m in request.json["messages"]
        )


KIT = CohereKit()
