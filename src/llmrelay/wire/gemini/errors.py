"""Error classification for the Gemini API.

The body is Google's standard error model (https://ai.google.dev/gemini-api/docs/troubleshooting,
https://cloud.google.com/apis/design/errors)::

    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}

``details`` holds typed messages from ``google/rpc/error_details.proto``
(https://github.com/googleapis/googleapis/blob/master/google/rpc/error_details.proto); three matter here:

- ``google.rpc.ErrorInfo``: ``reason`` from ``google/api/error_reason.proto``
  (https://github.com/googleapis/googleapis/blob/master/google/api/error_reason.proto). A bad key is
  ``API_KEY_INVALID`` under HTTP 400 ``INVALID_ARGUMENT``, so the reason is looked at first;
- ``google.rpc.RetryInfo``: ``retryDelay``, a protobuf Duration in its JSON form (``"53s"``,
  ``"45.837906927s"``). Gemini sends no ``Retry-After`` header; this becomes ``retry_after``;
- ``google.rpc.QuotaFailure``: ``violations[].quotaId``, the quota that was hit.

429 ``RESOURCE_EXHAUSTED`` covers two different situations (https://ai.google.dev/gemini-api/docs/rate-limits:
limits are per minute -- RPM, TPM -- and per day -- RPD): a per-minute limit clears in seconds
(``RateLimitError``, retryable, ``retry_after`` from ``RetryInfo``); a per-day limit, or billing that is
off, does not clear for hours (``QuotaExceededError``: waiting does not help, failing over does). The
structured signal is the window named in each violated quota's ``quotaId``, an identifier such as
``GenerateRequestsPerDayPerProjectPerModel-FreeTier`` or ``GenerateContentInputTokensPerModelPerMinute``:
any violated ``PerDay`` quota makes it a quota error; so do the ``ErrorInfo`` reasons for billing and
exhausted quotas (``QUOTA_EXHAUSTED``, ``BILLING_DISABLED``, ...). Google's own gemini-cli draws the same
line (``TerminalQuotaError`` for ``PerDay`` quota ids, ``RetryableQuotaError`` otherwise). The quota id
is a structured field; the human ``message`` is never read.

Then the canonical ``status`` (https://cloud.google.com/apis/design/errors#handling_errors), then the
HTTP status (``http_errors.error_class_for_status``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
from ..http_errors import clamp_retry_after, error_body, error_class_for_status, parse_retry_after

__all__ = ["decode_error", "error_from_payload", "parse_duration"]

_TYPE_PREFIX = "type.googleapis.com/"
_ERROR_INFO = "google.rpc.ErrorInfo"
_RETRY_INFO = "google.rpc.RetryInfo"
_QUOTA_FAILURE = "google.rpc.QuotaFailure"

# google/api/error_reason.proto, the reasons a Gemini call can meet.
REASONS: Mapping[str, type[LlmError]] = {
    "API_KEY_INVALID": AuthError,
    "API_KEY_SERVICE_BLOCKED": AuthError,
    "API_KEY_HTTP_REFERRER_BLOCKED": AuthError,
    "API_KEY_IP_ADDRESS_BLOCKED": AuthError,
    "API_KEY_ANDROID_APP_BLOCKED": AuthError,
    "API_KEY_IOS_APP_BLOCKED": AuthError,
    "ACCESS_TOKEN_EXPIRED": AuthError,
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT": AuthError,
    "ACCESS_TOKEN_TYPE_UNSUPPORTED": AuthError,
    "CREDENTIALS_MISSING": AuthError,
    "SERVICE_DISABLED": AuthError,
    "CONSUMER_INVALID": AuthError,
    "CONSUMER_SUSPENDED": AuthError,
    "USER_PROJECT_DENIED": AuthError,
    "BILLING_DISABLED": QuotaExceededError,
    "QUOTA_EXHAUSTED": QuotaExceededError,
    "INSUFFICIENT_G1_CREDITS_BALANCE": QuotaExceededError,
    "RESOURCE_QUOTA_EXCEEDED": QuotaExceededError,
    "RATE_LIMIT_EXCEEDED": RateLimitError,
}

# Canonical codes, google/rpc/code.proto (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto).
# NOT_FOUND on generateContent is the model path ("models/x is not found for API version v1beta").
# DEADLINE_EXCEEDED is the *server's* deadline (HTTP 504): a retryable server failure, not one of our
# own ``Timeouts`` knobs.
STATUSES: Mapping[str, type[LlmError]] = {
    "INVALID_ARGUMENT": InvalidRequestError,
    "FAILED_PRECONDITION": InvalidRequestError,
    "OUT_OF_RANGE": InvalidRequestError,
    "ALREADY_EXISTS": InvalidRequestError,
    "UNIMPLEMENTED": InvalidRequestError,
    "NOT_FOUND": ModelNotFoundError,
    "UNAUTHENTICATED": AuthError,
    "PERMISSION_DENIED": AuthError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "UNAVAILABLE": OverloadedError,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
    "DATA_LOSS": ServerError,
    "ABORTED": ServerError,
    "DEADLINE_EXCEEDED": ServerError,
}

# A quota id names its window as a CamelCase word: "...PerDayPerProject..." or "...Daily...".
_LONG_WINDOW = re.compile(r"Per(?:Day|Week|Month)(?![a-z])|Daily(?![a-z])")
_DURATION = re.compile(r"\s*(-?\d+(?:\.\d+)?)s\s*")


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON form (``"30s"``, ``"1.5s"``) as seconds, capped like ``Retry-After``
    (``clamp_retry_after``); ``None`` when malformed."""
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value)
    if match is None:
        return None
    return clamp_retry_after(float(match.group(1)))


def _details(error: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == _TYPE_PREFIX + kind]


def _quota_ids(error: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for failure in _details(error, _QUOTA_FAILURE):
        violations = failure.get("violations")
        if isinstance(violations, list):
            ids.extend(v["quotaId"] for v in violations if isinstance(v, dict) and isinstance(v.get("quotaId"), str))
    return ids


def _is_long_window(quota_ids: Sequence[str]) -> bool:
    return any(_LONG_WINDOW.search(qid) for qid in quota_ids)


def error_from_payload(
    payload: Any,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
    provider: str | None = None,
) -> LlmError:
    """Build the error for a Google error object (an HTTP error body or an error inside a 200 stream).

    ``status`` is the HTTP status when known; inside a stream it is taken from ``error.code``.
    """
    if isinstance(payload, list) and payload:
        # Vertex AI sometimes wraps the error object in a list: [{"error": {...}}].
        payload = payload[0]
    error: Any = payload.get("error", payload) if isinstance(payload, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    if status is None and isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        status = code
    gstatus = error.get("status") if isinstance(error.get("status"), str) else None
    reason: str | None = None
    for info in _details(error, _ERROR_INFO):
        if isinstance(info.get("reason"), str):
            reason = info["reason"]
            break
    retry_after: float | None = None
    for info in _details(error, _RETRY_INFO):
        retry_after = parse_duration(info.get("retryDelay"))
        if retry_after is not None:
            break
    if retry_after is None and headers:
        retry_after = parse_retry_after(headers)

    cls: type[LlmError] | None = REASONS.get(reason) if reason else None
    if cls is None and gstatus:
        cls = STATUSES.get(gstatus)
    if cls is None and status is not None:
        cls = error_class_for_status(status)
    if cls is None:
        cls = ProviderError
    if cls is RateLimitError and _is_long_window(_quota_ids(error)):
        cls = QuotaExceededError

    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"the provider returned an error (HTTP {status})" if status else "the provider returned an error"
    return cls(
        message,
        provider=provider,
        status=status,
        code=reason or gstatus,
        error_type=gstatus,
        retry_after=retry_after,
        body=body,
    )


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
    """Classify an HTTP error response."""
    payload, text = error_body(status, body)
    return error_from_payload(payload, status=status, headers=headers, body=text)
