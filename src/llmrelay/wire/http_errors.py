"""Shared pieces of error decoding: the HTTP status table, ``Retry-After`` parsing, request ids.

Each dialect's ``errors`` module looks at its provider's structured error code/type first and falls back
to ``STATUS_ERRORS`` here. No message text is ever matched.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from .._errors import (
    AuthError,
    InvalidRequestError,
    LlmError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    ServerError,
)

__all__ = [
    "MAX_RETRY_AFTER",
    "STATUS_ERRORS",
    "clamp_retry_after",
    "envelope",
    "error_body",
    "error_class_for_status",
    "json_or_none",
    "parse_retry_after",
    "request_id_from",
]

# RFC 9110 section 15 and the vendors' error pages (OpenAI "Error codes", Anthropic "Errors": 529 is
# Anthropic's "overloaded_error").
STATUS_ERRORS: Mapping[int, type[LlmError]] = {
    400: InvalidRequestError,
    401: AuthError,
    402: QuotaExceededError,
    403: AuthError,
    404: InvalidRequestError,
    408: RequestTimeout,
    409: InvalidRequestError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: OverloadedError,
    504: ServerError,
    529: OverloadedError,
}

MAX_RETRY_AFTER = 3600.0
"""The longest ``retry_after`` reported, in seconds. Rate-limit windows are seconds to minutes; a longer
wait is a "come back later" (a daily quota), where the caller should fail over or give up rather than
sleep, and an hour already says that. Without a cap, a far-future HTTP date (clock skew, a server bug)
would park a retry loop for decades."""

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-amzn-requestid", "cf-ray")


def error_class_for_status(status: int | None) -> type[LlmError]:
    """The error class for an HTTP status; unknown 4xx are invalid requests, unknown 5xx server errors."""
    if status is None:
        return ProviderError
    cls = STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    if 400 <= status < 500:
        return InvalidRequestError
    if status >= 500:
        return ServerError
    return ProviderError


def clamp_retry_after(seconds: float | None) -> float | None:
    """A delay a provider asked for, made safe to sleep on: capped at ``MAX_RETRY_AFTER``; ``None`` for a
    negative, NaN or infinite value (not a delay at all). For delays read from a body too (Gemini's
    ``RetryInfo.retryDelay``)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI, Azure) or ``retry-after`` (seconds or HTTP-date,
    RFC 9110 section 10.2.3), at most ``MAX_RETRY_AFTER``. Header names must be lower-case.

    A negative, NaN or infinite number is rejected (RFC 9110 allows only non-negative digits) and the
    next source is tried; an HTTP-date in the past means "now" (0).
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        delay = _seconds(raw_ms, scale=1000.0)
        if delay is not None:
            return delay
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    delay = _seconds(raw)
    if delay is not None:
        return delay
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return clamp_retry_after(max(0.0, when.timestamp() - (time.time() if now is None else now)))


def _seconds(raw: str, *, scale: float = 1.0) -> float | None:
    try:
        return clamp_retry_after(float(raw) / scale)
    except ValueError:
        return None


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """The provider's request id from the usual headers (lower-case names)."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def error_body(status: int, body: bytes) -> tuple[Any, str]:
    """An error response's parsed JSON (or, when it is not JSON, an ``{"error": {"message": ...}}`` envelope
    around its text, as proxies send HTML or plain text) and its text."""
    text = body.decode("utf-8", "replace")
    payload = json_or_none(body)
    if payload is None:
        payload = envelope(status, text)
    return payload, text


def envelope(status: int, text: str) -> dict[str, Any]:
    """An OpenAI-style error object carrying a non-JSON body's text."""
    return {"error": {"message": text.strip()[:300] or f"HTTP {status} with an empty body"}}


def json_or_none(body: bytes | str) -> Any:
    """Parse a body as JSON, or ``None`` when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
