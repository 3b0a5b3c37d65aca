"""Scenario kit for Ollama's native API (see ``llmrelay.testing.kit``).

Replies are byte-exact to what an Ollama server writes: Go ``encoding/json`` layout (compact, fields in
struct order, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other non-ASCII raw UTF-8), one object a
line with ``application/x-ndjson`` for streams, ``application/json; charset=utf-8`` for bodies and errors
(gin's ``c.JSON``). Tool calls arrive whole in a ``done: false`` line, each with the ``id`` recent servers
issue, and ``done_reason`` stays ``stop`` when the model calls tools, as Ollama reports it.

Quota: a local Ollama has none. Ollama Cloud (ollama.com, or cloud models through a signed-in local
server) answers **402 Payment Required** when the account's extra-usage balance is empty
(ollama/ollama#17639), which is what ``quota()`` replays and what classifies as ``quota_exceeded``. Its
session / weekly usage windows answer 429 with only a message to tell them from a rate limit; llmrelay
never reads messages, so those are rate limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._provider import Provider
from ..wire.call_ids import is_synthetic_call_id
from .kit import ToolCallSpec
from .upstream import Reply, SeenRequest

__all__ = ["KIT", "OllamaKit", "go_json"]

_NDJSON = "application/x-ndjson"
_JSON = "application/json; charset=utf-8"
_CREATED = "2025-07-07T20:22:19.184789Z"
_MODEL = "test-model"


def go_json(value: Any) -> bytes:
    """``value`` encoded the way Go's ``json.Marshal`` writes it (for byte-exact replies)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def _chunk(message: Mapping[str, Any]) -> dict[str, Any]:
    return {"model": _MODEL, "created_at": _CREATED, "message": {"role": "assistant", **message}, "done": False}


def _final(message: Mapping[str, Any], reason: str, usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "model": _MODEL,
        "created_at": _CREATED,
        "message": {"role": "assistant", **message},
        "done_reason": reason,
        "done": True,
        "total_duration": 182242375,
        "load_duration": 41295167,
        "prompt_eval_count": usage[0],
        "prompt_eval_duration": 24573166,
        "eval_count": usage[1],
        "eval_duration": 115959084,
    }


def _tool_call(spec: ToolCallSpec, index: int) -> dict[str, Any]:
    cid, name, args = spec
    call: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": dict(args)}}
    if cid is not None:
        call = {"id": cid, **call}
    return call


class OllamaKit:
    name = "ollama"
    quota_status = 402

    def provider(self, base_url: str, model: str = "test-model") -> Provider:
        from ..providers.ollama import OllamaProvider

        return OllamaProvider(model, base_url=base_url, api_key_env=None)

    def _stream(self, messages: Sequence[Mapping[str, Any]], reason: str, usage: tuple[int, int]) -> Reply:
        lines = [_chunk(m) for m in messages] + [_final({"content": ""}, reason, usage)]
        return Reply(chunks=tuple(go_json(line) + b"\n" for line in lines), content_type=_NDJSON)

    def _body(self, message: Mapping[str, Any], reason: str, usage: tuple[int, int]) -> Reply:
        return Reply(chunks=(go_json(_final(message, reason, usage)),), content_type=_JSON)

    def text(self, text: str, *, stream: bool, usage: tuple[int, int] = (10, 5)) -> Reply:
        if not stream:
            return self._body({"content": text}, "stop", usage)
        mid = len(text) // 2
        return self._stream([{"content": text[:mid]}, {"content": text[mid:]}], "stop", usage)

    def tool_calls(self, calls: Sequence[ToolCallSpec], *, stream: bool) -> Reply:
        wire = [_tool_call(spec, i) for i, spec in enumerate(calls)]
        if not stream:
            return self._body({"content": "", "tool_calls": wire}, "stop", (10, 5))
        # Ollama never fragments a call: each arrives whole in its own line.
        return self._stream([{"content": "", "tool_calls": [call]} for call in wire], "stop", (10, 5))

    def reasoning(self, reasoning: str, text: str, *, stream: bool) -> Reply:
        if not stream:
            return self._body({"content": text, "thinking": reasoning}, "stop", (10, 5))
        return self._stream([{"content": "", "thinking": reasoning}, {"content": text}], "stop", (10, 5))

    def length(self, text: str, *, stream: bool) -> Reply:
        if not stream:
            return self._body({"content": text}, "length", (10, 5))
        return self._stream([{"content": text}], "length", (10, 5))

    def error(self, status: int, *, retry_after: float | None = None) -> Reply:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        message = f'model "{_MODEL}" not found, try pulling it first' if status == 404 else f"kit error {status}"
        return Reply(status=status, chunks=(go_json({"error": message}),), content_type=_JSON, headers=headers)

    def quota(self) -> Reply:
        message = (
            "this model uses extra usage only (not included plan usage) and your extra usage balance is empty, "
            "add extra usage or turn on auto reload: https://ollama.com/settings"
        )
        return Reply(status=402, chunks=(go_json({"error": message}),), content_type=_JSON)

    def stream_error(self, *, after_text: str | None = None) -> Reply:
        # docs/api/errors.mdx: an error after the stream began is a ``{"error": ...}`` line, status still 200.
        lines = [go_json(_chunk({"content": after_text})) + b"\n"] if after_text else []
        lines.append(go_json({"error": "an error was encountered while running the model: unexpected EOF"}) + b"\n")
        return Reply(chunks=tuple(lines), content_type=_NDJSON)

    def sent_messages(self, request: SeenRequest) -> list[Mapping[str, Any]]:
        body = request.json
        if "messages" in body:
            return list(body["messages"])
        # /api/generate: the prompt is the one user turn.
        return [
            {
                "role": "user",
                "content": body.get("prompt", ""),
                **({"images": body["images"]} if "images" in body else {}),
            }
        ]

    def sent_image(self, request: SeenRequest) -> bool:
        return any(m.get("images") for m in self.sent_messages(request))

    def sent_tool_result(self, request: SeenRequest, call_id: str | None, content: str) -> bool:
        return any(
            m.get("role") == "tool"
            and m.get("content") == content
            and (call_id is None or is_synthetic_call_id(call_id) or m.get("tool_call_id") == call_id)
            for m in self.sent_messages(request)
        )


KIT = OllamaKit()
