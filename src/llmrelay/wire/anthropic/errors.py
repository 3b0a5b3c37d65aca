"""Error classification for the Anthropic Messages API.

An error body is ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``, and the
same object arrives as an ``event: error`` inside a 200 event stream
(https://platform.claude.com/docs/en/api/errors). The documented ``error.type`` values and their statuses:

=====  =========================  ==========================
400    ``invalid_request_error``  ``InvalidRequestError``
401    ``authentication_error``   ``AuthError``
402    ``billing_error``          ``QuotaExceededError``
403    ``permission_error``       ``AuthError``
404    ``not_found_error``        ``ModelNotFoundError``
413    ``request_too_large``      ``InvalidRequestError``
429    ``rate_limit_error``       ``RateLimitError``
500    ``api_error``              ``ServerError``
504    ``timeout_error``          ``ServerError`` (retryable)
529    ``overloaded_error``       ``OverloadedError``
=====  =========================  ==========================

The type decides first. Two types are documented as catch-alls, though: ``invalid_request_error`` "may also be
used for other 4XX status codes" and ``api_error`` is "an unexpected error"; for those a known HTTP status
(``wire.http_errors.STATUS_ERRORS``: 408, 409, 503, ...) is the more precise signal and wins. An unknown type
falls back to the status. ``not_found_error`` on the Messages endpoint means the model name is unknown (the
only resource a request names), hence ``ModelNotFoundError``.

No message text is ever matched. In particular Anthropic sends a prompt that is too long for the context
window as a plain ``invalid_request_error`` with no structured code, so it stays ``InvalidRequestError``
rather than ``ContextLengthError``; likewise a "credit balance too low" 400 stays ``InvalidRequestError``
(newer accounts get the structured 402 ``billing_error``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import (
    AuthError,
    InvalidRequestError,
    LlmError,
    ModelNotFoundError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from ..http_errors import STATUS_ERRORS, envelope, error_body, error_class_for_status, parse_retry_after

__all__ = ["ERROR_TYPES", "GENERIC_TYPES", "decode_error", "error_from_payload"]

ERROR_TYPES: Mapping[str, type[LlmError]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthError,
    "billing_error": QuotaExceededError,
    "permission_error": AuthError,
    "not_found_error": ModelNotFoundError,
    "request_too_large": InvalidRequestError,
    "rate_limit_error": RateLimitError,
    "api_error": ServerError,
    "timeout_error": ServerError,
    "overloaded_error": OverloadedError,
}

GENERIC_TYPES = frozenset({"invalid_request_error", "api_error"})
"""Catch-all types: a known HTTP status is more precise than these."""


def _classify(etype: str | None, status: int | None) -> type[LlmError]:
    cls = ERROR_TYPES.get(etype) if etype else None
    if cls is not None and not (etype in GENERIC_TYPES and status in STATUS_ERRORS):
        return cls
    if status is not None:
        return error_class_for_status(status)
    return cls or ProviderError


def _status_in(error: Mapping[str, Any]) -> int | None:
    for key in ("status_code", "status", "code"):
        value = error.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def error_from_payload(
    payload: Any,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> LlmError:
    """The error for an Anthropic error object: an HTTP error body, or an in-stream ``error`` event."""
    error: Any = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {}
    etype = error.get("type") if isinstance(error.get("type"), str) else None
    if status is None:
        # An error object a proxy wrote into the stream may carry the status it stands for.
        status = _status_in(error)
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"the provider returned an error (HTTP {status})" if status else "the provider returned an error"
    request_id = payload.get("request_id") if isinstance(payload, dict) else None
    cls = _classify(etype, status)
    return cls(
        message,
        status=status,
        # Anthropic's only structured identifier is the type; it is also the most useful ``code``.
        code=etype,
        error_type=etype,
        retry_after=parse_retry_after(headers) if headers else None,
        request_id=request_id if isinstance(request_id, str) and request_id else None,
        body=body,
    )


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
    """Classify an HTTP error response (a JSON error body, or anything else a proxy may send)."""
    payload, text = error_body(status, body)
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), (dict, str)):
        payload = envelope(status, text)
    return error_from_payload(payload, status=status, headers=headers, body=text)
