"""Error classification for OpenAI Chat Completions and compatible servers.

The body is ``{"error": {"message", "type", "code", "param"}}``
(https://platform.openai.com/docs/guides/error-codes). Compatible servers vary: Groq adds
``status_code`` inside a streamed error, OpenRouter sends ``code`` as the numeric HTTP status
(https://openrouter.ai/docs/api-reference/errors), Azure uses ``code`` values such as ``content_filter``
and ``DeploymentNotFound``. The structured ``code`` is looked up first, then the HTTP status, then ``type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import (
    AuthError,
    ContentFilterError,
    ContextLengthError,
    InvalidRequestError,
    LlmError,
    ModelNotFoundError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from ..http_errors import error_body, error_class_for_status, parse_retry_after

__all__ = ["decode_error", "error_from_payload"]

ERROR_CODES: Mapping[str, type[LlmError]] = {
    "context_length_exceeded": ContextLengthError,
    "insufficient_quota": QuotaExceededError,
    "billing_hard_limit_reached": QuotaExceededError,
    "billing_not_active": QuotaExceededError,
    "rate_limit_exceeded": RateLimitError,
    "invalid_api_key": AuthError,
    "invalid_organization": AuthError,
    "model_not_found": ModelNotFoundError,
    "DeploymentNotFound": ModelNotFoundError,
    "content_filter": ContentFilterError,
    "content_policy_violation": ContentFilterError,
    "ResponsibleAIPolicyViolation": ContentFilterError,
}

ERROR_TYPES: Mapping[str, type[LlmError]] = {
    "insufficient_quota": QuotaExceededError,
    "authentication_error": AuthError,
    "permission_error": AuthError,
    "rate_limit_error": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "tokens": RateLimitError,
    "requests": RateLimitError,
    "invalid_request_error": InvalidRequestError,
    "not_found_error": InvalidRequestError,
    "server_error": ServerError,
    "api_error": ServerError,
    "overloaded_error": OverloadedError,
}


def _status_from(error: Mapping[str, Any]) -> int | None:
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
    provider: str | None = None,
) -> LlmError:
    """Build the error for an OpenAI-style error object (an HTTP error body or an in-stream error)."""
    error: Any = payload.get("error", payload) if isinstance(payload, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    code_str = code if isinstance(code, str) else None
    etype = error.get("type") if isinstance(error.get("type"), str) else None
    if status is None:
        status = _status_from(error)
    cls: type[LlmError] | None = ERROR_CODES.get(code_str) if code_str else None
    if cls is None and status is not None:
        cls = error_class_for_status(status)
    if cls is None and etype:
        cls = ERROR_TYPES.get(etype)
    if cls is None:
        cls = ProviderError
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"the provider returned an error (HTTP {status})" if status else "the provider returned an error"
    return cls(
        message,
        provider=provider,
        status=status,
        code=code_str if code_str is not None else (str(code) if code is not None else None),
        error_type=etype,
        retry_after=parse_retry_after(headers) if headers else None,
        body=body,
    )


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
    """Classify an HTTP error response."""
    payload, text = error_body(status, body)
    return error_from_payload(payload, status=status, headers=headers, body=text)
