"""How a gateway answers an error: one table for every served dialect.

``answer_for(error)`` finds the first ``kind`` of ``error.family`` in ``ANSWERS`` and gives an
``ErrorAnswer``: the HTTP status, a dialect-neutral *category* (each dialect spells it as its own error
``type``), an OpenAI-style ``code``, the message, and the retry hints. The rules behind the table:

- the caller's own fault keeps a 4xx: a bad request (``serve.bad_request``, or an upstream's 400 about the
  request we forwarded) is 400, an upstream 413 stays 413, an unknown model is 404, a rate limit or a
  budget is 429 and keeps ``retry_after`` so the gateway can send ``Retry-After``;
- the upstream's fault is a 5xx: a 5xx, a network failure or a malformed reply is 502, an overloaded
  upstream 503 (Anthropic spells it 529), a timeout 504;
- an upstream's 401/403 is **not** the caller's 401: the caller's key was fine, the gateway's provider key
  was not, so it is a 502 with a fixed message that says so, and the upstream's own text (which may
  quote a key prefix) is not passed on. An exhausted upstream quota is likewise a 502;
- no provider key configured for the provider a request reaches is a 503 (the gateway cannot serve that
  provider until its operator adds one; not the caller's fault, and not a crash), with a fixed message that
  names the provider and never the key's variable or value; an invalid config is a 500;
- ``AllAttemptsFailed`` answers as its last attempt did, with one line per attempt in the message.

Messages are scrubbed of credential shapes again on the way out (``redact``); bodies never carry the
error's ``body_excerpt``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import AllAttemptsFailed, LlmError, redact
from .serve import param_of

__all__ = ["ANSWERS", "CATEGORY_FOR_STATUS", "ErrorAnswer", "answer_for", "answer_for_status", "retry_headers"]

ANSWERS: Mapping[str, tuple[int, str, str | None]] = {
    # kind: (status, category, code)
    "context_length": (400, "invalid_request", "context_length_exceeded"),
    "model_not_found": (404, "not_found", "model_not_found"),
    "invalid_request": (400, "invalid_request", None),
    "content_filter": (400, "invalid_request", "content_filter"),
    "unsupported": (400, "invalid_request", "unsupported_capability"),
    "rate_limit": (429, "rate_limit", "rate_limit_exceeded"),
    "budget_exceeded": (429, "rate_limit", "budget_exceeded"),
    "auth": (502, "upstream", "upstream_auth_failed"),
    "quota_exceeded": (502, "upstream", "upstream_quota_exceeded"),
    "overloaded": (503, "overloaded", "upstream_overloaded"),
    "server": (502, "upstream", "upstream_error"),
    "local_crash": (502, "upstream", "upstream_error"),
    "network": (502, "upstream", "upstream_unreachable"),
    "protocol": (502, "upstream", "upstream_protocol_error"),
    "timeout": (504, "timeout", "upstream_timeout"),
    "missing_api_key": (503, "internal", "gateway_missing_credentials"),
    "config": (500, "internal", "gateway_misconfigured"),
    "provider": (502, "upstream", "upstream_error"),
    "error": (502, "upstream", "upstream_error"),
}
"""Each error kind's answer; a kind not listed answers as its nearest listed parent (``family``)."""

CATEGORY_FOR_STATUS: Mapping[int, str] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    413: "request_too_large",
    429: "rate_limit",
    500: "internal",
    502: "upstream",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}
"""The category of a status the gateway answers on its own (``error_reply``)."""

_RETRY_AFTER_CATEGORIES = frozenset({"rate_limit", "overloaded"})
_LINE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """A dialect-neutral error answer; a served dialect renders it as its ``ErrorReply``."""

    status: int
    category: str
    """``invalid_request``, ``authentication``, ``permission``, ``not_found``, ``request_too_large``,
    ``rate_limit``, ``upstream``, ``overloaded``, ``timeout`` or ``internal``."""
    message: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None
    retryable: bool | None = None
    """For ``x-should-retry`` (the OpenAI and Anthropic SDKs honour it); ``None`` sends nothing."""


def _row(error: LlmError) -> tuple[int, str, str | None]:
    for kind in error.family:
        row = ANSWERS.get(kind)
        if row is not None:
            return row
    return ANSWERS["error"]


def _upstream(error: LlmError) -> str:
    return f"the upstream provider {error.provider}" if error.provider else "the upstream provider"


def _message(error: LlmError, category: str) -> str:
    if error.kind == "auth" or "auth" in error.family:
        status = f" (HTTP {error.status})" if error.status else ""
        return (
            f"{_upstream(error)} rejected the gateway's credentials{status}: the gateway's operator must fix "
            "its provider key (this is not about the key you sent)"
        )
    if "missing_api_key" in error.family:
        provider = f"the provider {error.provider!r}" if error.provider else "that provider"
        return (
            f"this gateway has no credentials for {provider}, so it cannot serve that model: the gateway's "
            "operator must configure its API key (this is not about the key you sent)"
        )
    if "quota_exceeded" in error.family:
        return f"{_upstream(error)} has no quota or credit left: {error.message}"
    if category in ("upstream", "overloaded", "timeout") and error.provider:
        return f"{error.provider}: {error.message}"
    return error.message


def _attempt_lines(error: AllAttemptsFailed) -> str:
    count = len(error.attempts)
    lines = [f"all {count} attempt{'s' if count != 1 else ''} failed"]
    for number, attempt in enumerate(error.attempts, 1):
        model = f" {attempt.model}" if attempt.model else ""
        inner = answer_for(attempt.error).message
        text = " ".join(inner.split())
        if len(text) > _LINE_LIMIT:
            text = text[: _LINE_LIMIT - 3] + "..."
        lines.append(f"{number}. {attempt.provider}{model}: {attempt.error.kind}: {text}")
    return "\n".join(lines)


def answer_for(error: LlmError) -> ErrorAnswer:
    """The answer to ``error``; see the module docstring."""
    if isinstance(error, AllAttemptsFailed) and error.attempts:
        last = answer_for(error.attempts[-1].error)
        return ErrorAnswer(
            status=last.status,
            category=last.category,
            message=redact(_attempt_lines(error)),
            code=last.code,
            retry_after=last.retry_after,
            retryable=last.retryable,
        )
    status, category, code = _row(error)
    if category == "invalid_request" and error.status == 413:
        status, category = 413, "request_too_large"
    retry_after = error.retry_after if category in _RETRY_AFTER_CATEGORIES else None
    return ErrorAnswer(
        status=status,
        category=category,
        message=redact(_message(error, category)),
        code=code,
        param=param_of(error),
        retry_after=retry_after,
        retryable=error.retryable,
    )


def answer_for_status(status: int, message: str, *, param: str | None = None, code: str | None = None) -> ErrorAnswer:
    """The answer for a refusal of the gateway's own (a missing key: 401, an oversized body: 413, ...)."""
    category = CATEGORY_FOR_STATUS.get(status)
    if category is None:
        category = "invalid_request" if 400 <= status < 500 else "internal"
    return ErrorAnswer(status=status, category=category, message=redact(message), code=code, param=param)


def retry_headers(answer: ErrorAnswer) -> dict[str, str]:
    """``retry-after`` (whole seconds, rounded up) and ``retry-after-ms`` when the answer has a delay, and
    ``x-should-retry`` when it says whether to retry."""
    headers: dict[str, str] = {}
    delay = answer.retry_after
    if delay is not None and math.isfinite(delay) and delay >= 0:
        headers["retry-after"] = str(math.ceil(delay))
        headers["retry-after-ms"] = str(math.ceil(delay * 1000))
    if answer.retryable is not None:
        headers["x-should-retry"] = "true" if answer.retryable else "false"
    return headers
