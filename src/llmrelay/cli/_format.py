"""Output helpers for the CLI: stream events as JSON lines, usage lines, plain tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .._codec import json_line as _json_text
from .._codec import to_json
from .._errors import Attempt, LlmError
from .._events import Done, StreamEvent
from .._types import Usage
from ..cost import Cost

__all__ = [
    "attempt_json",
    "cost_json",
    "cost_text",
    "done_json",
    "error_json",
    "event_json",
    "json_line",
    "scrub_secrets",
    "table",
    "usage_dict",
    "usage_line",
]

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
    """One stream event as one line of JSON: ``llmrelay.to_json(event)`` (``type`` says which event), with
    the error a ``done`` carries scrubbed (``scrub_secrets``)."""
    return json_line(to_json(event))


def attempt_json(attempt: Attempt) -> str:
    """The ``--json`` line of one failed attempt a wrapper made before the answer: ``{"type": "attempt",
    "provider": ..., "model": ..., "error": {...}, "elapsed_ms": ...}``, the error scrubbed."""
    payload = {
        "type": "attempt",
        "provider": attempt.provider,
        "model": attempt.model,
        "error": to_json(attempt.error),
        "elapsed_ms": round(attempt.elapsed_s * 1000, 3),
    }
    return json_line(payload)


def done_json(event: Done, provider: str | None, model: str | None, cost: Cost | None = None) -> str:
    """The ``--json`` line of the final ``done`` event, naming the ``provider`` and ``model`` that answered,
    with its ``cost`` (``cost_json``) when given."""
    payload = {**to_json(event), "provider": provider, "model": model}
    if cost is not None:
        payload["cost"] = cost_json(cost)
    return json_line(payload)


def cost_json(cost: Cost) -> dict[str, Any]:
    """``{"total": "0.0000123", "currency": "USD", "source": "genai-prices 0.2.3 (openai/gpt-4o-mini)"}``,
    or ``{"total": null, "unknown": "<why>"}``: a total is a decimal string (exact), never a float."""
    if cost.total is None:
        return {"total": None, "unknown": cost.unknown or "unknown"}
    return {"total": format(cost.total, "f"), "currency": cost.currency, "source": cost.source}


def cost_text(cost: Cost) -> str | None:
    """The cost for the usage line (``$0.000123``, ``0.0012 EUR``), or ``None`` when it is unknown."""
    if cost.total is None:
        return None
    digits = format(cost.total.normalize(), "f")
    return f"${digits}" if cost.currency == "USD" else f"{digits} {cost.currency}"


def error_json(error: LlmError, exit_code: int) -> str:
    """The ``--json`` line of a failed call: ``llmrelay.to_json(error)`` (``type`` ``error``, its ``kind``,
    ``message`` and the other fields), scrubbed, plus the command's ``exit_code``."""
    return json_line({**to_json(error), "exit_code": exit_code})


def json_line(payload: dict[str, Any]) -> str:
    """``payload`` as one line of JSON, every text of an error in it (the payload itself when it is one,
    or its ``error``) scrubbed of credentials: the last guard before it reaches stdout."""
    if payload.get("type") == "error":
        payload = _scrubbed(payload)
    elif isinstance(payload.get("error"), dict):
        payload = {**payload, "error": _scrubbed(payload["error"])}
    return _json_text(payload)


def _scrubbed(value: Any, key: str = "") -> Any:
    """``value`` with every text scrubbed, the errors it carries too (``AllAttemptsFailed.attempts``)."""
    if isinstance(value, str):
        return value if key in ("type", "kind") else scrub_secrets(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def usage_line(
    model: str,
    usage: Usage | None,
    finish: str | None,
    *,
    via: str | None = None,
    failed: int = 0,
    cost: Cost | None = None,
) -> str:
    """``llmrelay: openai/gpt-4o-mini · 12 in + 5 out = 17 tokens · $0.0000048 · finish: stop`` (the cost
    only when it is known), then who answered when it is not ``model`` itself (``via`` a fallback member)
    and how many attempts failed before: ``· via groq/llama-3.3-70b after 1 failed attempt``."""
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
    priced = cost_text(cost) if cost is not None else None
    if priced is not None:
        parts.append(priced)
    if finish:
        parts.append(f"finish: {finish}")
    after = f"after {failed} failed attempt{'s' if failed != 1 else ''}" if failed else ""
    if via is not None and via != model:
        parts.append(f"via {via} {after}".rstrip())
    elif after:
        parts.append(after)
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
