"""Output helpers for the CLI: stream events as JSON lines, usage lines, plain tables."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, assert_never

from .._events import Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from .._types import Usage

__all__ = ["event_json", "scrub_secrets", "table", "usage_dict", "usage_line"]

_SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
_MIN_ENV_SECRET = 8
"""Shorter values of such variables (``1``, ``true``) are not credentials, and scrubbing them would shred text."""


def scrub_secrets(text: str) -> str:
    """``text`` without anything shaped like a credential and without the value of any credential-like
    environment variable (``*_API_KEY``, ``*_TOKEN``, ...), in any escaped form: the last guard before an
    error reaches stderr or ``--json`` stdout (providers scrub their own keys already; this also covers
    plugins and keys of other providers a server may echo)."""
    from .._errors import redact

    secrets = [
        value.strip()
        for name, value in os.environ.items()
        if any(word in name.upper() for word in _SECRET_ENV_WORDS) and len(value.strip()) >= _MIN_ENV_SECRET
    ]
    return redact(text, secrets)


def usage_dict(usage: Usage | None) -> dict[str, int] | None:
    """The reported token counts (unreported ones left out)."""
    if usage is None:
        return None
    fields = (
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    return {name: value for name in fields if (value := getattr(usage, name)) is not None}


def event_json(event: StreamEvent) -> str:
    """One stream event as one line of JSON (``type`` says which event)."""
    payload: dict[str, Any]
    match event:
        case TextDelta(text=text):
            payload = {"type": "text", "text": text}
        case ReasoningDelta(text=text, signature=signature):
            payload = {"type": "reasoning", "text": text}
            if signature is not None:
                payload["signature"] = signature
        case ToolCallStart(index=index, id=call_id, name=name):
            payload = {"type": "tool_call_start", "index": index, "id": call_id, "name": name}
        case ToolCallDelta(index=index, arguments_delta=delta):
            payload = {"type": "tool_call_delta", "index": index, "arguments_delta": delta}
        case ToolCallEnd(index=index, call=call):
            payload = {
                "type": "tool_call",
                "index": index,
                "id": call.id,
                "name": call.name,
                "arguments": dict(call.arguments) if call.arguments is not None else None,
                "arguments_raw": call.arguments_raw,
            }
        case Done(finish_reason=reason, finish_reason_raw=raw, usage=usage, error=error, model=model):
            payload = {
                "type": "done",
                "finish_reason": reason.value,
                "finish_reason_raw": raw,
                "usage": usage_dict(usage),
                "model": model,
            }
            if error is not None:
                payload["error"] = {"kind": error.kind, "message": scrub_secrets(str(error))}
        case _:
            assert_never(event)
    return json.dumps(payload, ensure_ascii=False)


def usage_line(model: str, usage: Usage | None, finish: str | None) -> str:
    """``llmrelay: openai/gpt-4o-mini · 12 in + 5 out = 17 tokens · stop`` (cost is shown only when known)."""
    parts = [model]
    if usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None):
        counts = f"{_n(usage.input_tokens)} in + {_n(usage.output_tokens)} out"
        if usage.total_tokens is not None:
            counts += f" = {usage.total_tokens} tokens"
        if usage.reasoning_tokens:
            counts += f" ({usage.reasoning_tokens} reasoning)"
        if usage.cache_read_tokens:
            counts += f" ({usage.cache_read_tokens} cached)"
        parts.append(counts)
    else:
        parts.append("usage not reported")
    if finish:
        parts.append(f"finish: {finish}")
    return "llmrelay: " + " · ".join(parts)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain left-aligned text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines)
