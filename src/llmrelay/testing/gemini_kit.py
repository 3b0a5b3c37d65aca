"""Scenario kit for the Gemini API (see ``llmrelay.testing.kit``).

Replies are byte-for-byte what the API sends: streamed chunks as ``data: {...}\\r\\n\\r\\n`` with Google's
``": "`` separators and raw UTF-8, non-streaming bodies and error bodies as 2-space indented JSON with a
trailing newline (compare ``tests/fixtures/wire/gemini_*``).

Errors follow Google's error model (https://ai.google.dev/gemini-api/docs/troubleshooting): the canonical
``status`` for each HTTP status, and the retry delay in a ``google.rpc.RetryInfo`` detail (the Gemini
API sends no ``Retry-After`` header). ``error(429)`` is a per-minute rate limit (``QuotaFailure`` with a
``...PerMinute...`` quota id: retryable); ``quota()`` is an exhausted daily quota (a ``...PerDay...``
quota id: waiting minutes does not help), the structured signal ``wire.gemini.errors`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._provider import Provider
from .kit import ToolCallSpec
from .upstream import Reply, SeenRequest

__all__ = ["KIT", "GeminiKit"]

_MODEL_VERSION = "gemini-2.5-flash"
_RESPONSE_ID = "kitResponseId0000000000"
_JSON = "application/json; charset=UTF-8"

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def _quota_failure(quota_id: str, metric: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": _MODEL_VERSION},
                "quotaValue": "10",
            }
        ],
    }


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON form: ``"30s"``, ``"1.5s"``."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _usage(inp: int, out: int, thoughts: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": inp,
        "candidatesTokenCount": out,
        "totalTokenCount": inp + out + (thoughts or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": inp}],
    }
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _response(parts: Sequence[Mapping[str, Any]], finish: str | None, usage: Mapping[str, Any]) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [dict(p) for p in parts], "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": dict(usage),
        "modelVersion": _MODEL_VERSION,
        "responseId": _RESPONSE_ID,
    }


def _body(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    data = (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return Reply.raw(data, status=status, content_type=_JSON, headers=dict(headers or {}))


def _stream(chunks: Sequence[Mapping[str, Any]]) -> Reply:
    frames = tuple(
        f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ': '))}\r\n\r\n".encode() for chunk in chunks
    )
    return Reply(chunks=frames, content_type="text/event-stream")


class GeminiKit:
    name = "gemini"
    quota_status = 429

    def provider(self, base_url: str, model: str = "test-model") -> Provider:
        from ..providers.gemini import GeminiProvider

        return GeminiProvider(model, base_url=base_url, api_key="gemini-kit-test-key-000000")

    def _reply(
        self, parts: Sequence[Mapping[str, Any]], finish: str, usage: Mapping[str, Any], *, stream: bool
    ) -> Reply:
        if not stream:
            return _body(_response(parts, finish, usage))
        # Like the live API: one part per chunk, the prompt count on every chunk, the finish reason and
        # the final usage on the last one.
        early = {k: v for k, v in usage.items() if k in ("promptTokenCount", "promptTokensDetails")}
        early["totalTokenCount"] = usage.get("promptTokenCount", 0)
        chunks = [_response([part], None, early) for part in parts[:-1]]
        chunks.append(_response(parts[-1:] or [{"text": ""}], finish, usage))
        for chunk in chunks:
            del chunk["candidates"][0]["index"]
        return _stream(chunks)

    def text(self, text: str, *, stream: bool, usage: tuple[int, int] = (10, 5)) -> Reply:
        if not stream:
            return self._reply([{"text": text}], "STOP", _usage(*usage), stream=False)
        mid = len(text) // 2
        return self._reply([{"text": text[:mid]}, {"text": text[mid:]}], "STOP", _usage(*usage), stream=True)

    def tool_calls(self, calls: Sequence[ToolCallSpec], *, stream: bool) -> Reply:
        parts: list[dict[str, Any]] = []
        for cid, name, args in calls:
            call: dict[str, Any] = {"name": name, "args": dict(args)}
            if cid is not None:
                call["id"] = cid
            parts.append({"functionCall": call})
        if stream:
            # Gemini streams each call whole, then a last chunk with an empty text part and the finish
            # reason -- STOP: Gemini has no "tool calls" finish reason.
            parts.append({"text": ""})
        return self._reply(parts, "STOP", _usage(10, 5), stream=stream)

    def reasoning(self, reasoning: str, text: str, *, stream: bool) -> Reply:
        parts: list[dict[str, Any]] = [{"text": reasoning, "thought": True}, {"text": text}]
        return self._reply(parts, "STOP", _usage(10, 5, thoughts=7), stream=stream)

    def length(self, text: str, *, stream: bool) -> Reply:
        return self._reply([{"text": text}], "MAX_TOKENS", _usage(10, 5), stream=stream)

    def error(self, status: int, *, retry_after: float | None = None) -> Reply:
        error: dict[str, Any] = {"code": status, "message": f"kit error {status}"}
        gstatus = _STATUSES.get(status)
        if gstatus is not None:
            error["status"] = gstatus
        details: list[dict[str, Any]] = []
        if status == 429:
            details.append(_quota_failure("GenerateRequestsPerMinutePerProjectPerModel", "generate_requests_per_model"))
            details.append(_HELP)
        if retry_after is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _duration(retry_after)})
        if details:
            error["details"] = details
        return _body({"error": error}, status=status)

    def quota(self) -> Reply:
        error = {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                _quota_failure(
                    "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "generate_content_free_tier_requests"
                ),
                _HELP,
            ],
        }
        return _body({"error": error}, status=429)

    def stream_error(self, *, after_text: str | None = None) -> Reply:
        # As the API does when the model becomes overloaded mid-stream: the error object, pretty-printed and
        # not SSE-framed, after the events (the ``gemini_stream_midstream_error_503`` transcript).
        frames: list[bytes] = []
        if after_text:
            chunk = _response([{"text": after_text}], None, {"promptTokenCount": 10, "totalTokenCount": 10})
            del chunk["candidates"][0]["index"]
            frames.append(f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ': '))}\r\n\r\n".encode())
        error = {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}
        frames.append((json.dumps({"error": error}, indent=2) + "\n").encode())
        return Reply(chunks=tuple(frames), content_type="text/event-stream")

    def sent_messages(self, request: SeenRequest) -> list[Mapping[str, Any]]:
        return list(request.json["contents"])

    def sent_image(self, request: SeenRequest) -> bool:
        return any(
            "inlineData" in part or "fileData" in part
            for content in request.json["contents"]
            for part in content.get("parts", [])
        )

    def sent_tool_result(self, request: SeenRequest, call_id: str | None, content: str) -> bool:
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        want = parsed if isinstance(parsed, dict) else {"output": content}
        for turn in request.json["contents"]:
            for part in turn.get("parts", []):
                result = part.get("functionResponse")
                if not isinstance(result, dict) or result.get("response") != want:
                    continue
                if call_id is not None and result.get("id") not in (None, call_id):
                    continue
                return True
        return False


KIT = GeminiKit()
