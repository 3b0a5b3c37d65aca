"""Error classification for Cohere's API.

Error bodies are ``{"message": "..."}`` (v2 adds ``"id"``; the 498 / 499 schemas use ``"data"``), with no
machine-readable code (https://docs.cohere.com/reference/errors), so the HTTP status decides. The table
follows Cohere's error reference and the status codes of its OpenAPI spec / SDK error classes:

- 400 bad request (including "too many tokens": Cohere gives no code to tell a context overflow apart);
- 401 missing, invalid or expired key; 403 forbidden;
- 402 the account reached its billing limit or has no payment method: quota, not retryable;
- 404 not found: on ``/v2/chat`` the only thing to find is the model;
- 422 unprocessable entity;
- 429 too many requests (trial keys' monthly call limit is a 429 too, indistinguishable without reading
  the message, so it is a rate limit);
- 498 "Invalid Token": the request or the response contains a deny-listed token: a content filter;
- 499 the request was cancelled (Cohere's docs: try again): retryable;
- 500 internal error, 501 not implemented (not retryable), 503 unavailable, 504 gateway timeout.

An error that ends a 200 stream comes as ``message-end`` with ``finish_reason`` ``ERROR`` or ``TIMEOUT``
and ``delta.error`` (a message): ``finish_error``. An ``{"error": ...}`` object in the stream (from a proxy
or gateway in front of Cohere): ``stream_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import (
    AuthError,
    ContentFilterError,
    InvalidRequestError,
    LlmError,
    ModelNotFoundError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from ..http_errors import error_class_for_status, json_or_none, parse_retry_after

__all__ = ["STATUS_ERRORS", "decode_error", "error_from_payload", "finish_error", "stream_error"]

STATUS_ERRORS: Mapping[int, type[LlmError]] = {
    400: InvalidRequestError,
    401: AuthError,
    402: QuotaExceededError,
    403: AuthError,
    404: ModelNotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
    498: ContentFilterError,
    499: ProviderError,
    500: ServerError,
    501: InvalidRequestError,
    503: OverloadedError,
    504: ServerError,
}

_RETRYABLE: Mapping[int, bool] = {499: True}


def _text(payload: Any, key: str) -> str | None:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None


def error_from_payload(
    payload: Any,
    *,
    status: int,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> LlmError:
    """The error for a Cohere error body."""
    cls = STATUS_ERRORS.get(status) or error_class_for_status(status)
    message = _text(payload, "message") or _text(payload, "data")
    if message is None:
        text = (body or "").strip()[:300]
        message = text or f"Cohere returned an error (HTTP {status})"
    return cls(
        message,
        status=status,
        retry_after=parse_retry_after(headers) if headers else None,
        request_id=_text(payload, "id"),
        body=body,
        retryable=_RETRYABLE.get(status),
    )


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
    """Classify an HTTP error response from Cohere."""
    return error_from_payload(json_or_none(body), status=status, headers=headers, body=body.decode("utf-8", "replace"))


def stream_error(payload: Mapping[str, Any], body: str) -> LlmError:
    """The error for an ``{"error": ...}`` object found in a stream (a proxy's, or a gateway's): the status
    it carries (``code`` / ``status`` / ``status_code``) decides the class, else it is a ``ProviderError``."""
    error = payload.get("error")
    fields: Mapping[str, Any] = error if isinstance(error, dict) else {"message": error}
    status = next(
        (
            v
            for v in (fields.get("status_code"), fields.get("status"), fields.get("code"))
            if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599
        ),
        None,
    )
    message = _text(fields, "message") or "Cohere reported an error in the stream"
    if status is not None:
        return error_from_payload({"message": message}, status=status, body=body)
    return ProviderError(message, body=body)


def finish_error(finish_reason: str | None, message: str | None) -> LlmError:
    """The error for a response that ended with ``finish_reason`` ``ERROR`` / ``TIMEOUT`` or an ``error``."""
    raw = (finish_reason or "ERROR").upper()
    if not message:
        message = (
            "Cohere stopped the generation: it exceeded the time limit"
            if raw == "TIMEOUT"
            else "Cohere reported an error during the generation"
        )
    return ServerError(message, code=raw)
