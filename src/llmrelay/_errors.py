"""The error tree. Every failure llmrelay raises is one of these::

    LlmError
    ├── MissingApiKey             no key configured for a provider that needs one
    ├── ConfigError               llmrelay.toml is invalid (names the file and the key path)
    ├── UnsupportedCapability     the request needs something the provider cannot do
    ├── ProviderError             the provider answered with an error (HTTP status or in-stream error)
    │   ├── AuthError             401 / 403, invalid or revoked key
    │   ├── RateLimitError        429, transient: retry after ``retry_after``
    │   ├── QuotaExceededError    quota or billing exhausted: not retryable, but a reason to fail over
    │   ├── OverloadedError       503 / 529, the provider is overloaded: retryable
    │   ├── ServerError           other 5xx: retryable
    │   ├── InvalidRequestError   400 / 404 / 413 / 422: fix the request
    │   │   ├── ContextLengthError    the prompt does not fit the model's context window
    │   │   └── ModelNotFoundError    the model name is unknown to the provider
    │   └── ContentFilterError    refused by a safety filter
    ├── NetworkError              connect refused, reset, DNS: retryable
    ├── RequestTimeout            a deadline passed: retryable
    │   ├── ConnectTimeout        connecting took longer than ``connect``
    │   ├── FirstByteTimeout      no response headers within ``first_byte``
    │   ├── IdleTimeout           no bytes for ``idle`` seconds in the middle of a body
    │   └── TotalTimeout          the whole call took longer than ``total``
    └── ProtocolError             malformed, truncated or unparseable response

Classification uses the HTTP status and the provider's structured error code/type (see each dialect's
``errors`` module), never regular expressions over message text. Error messages, reprs and body excerpts
are redacted: no API key ever appears in them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "AuthError",
    "ConnectTimeout",
    "ContentFilterError",
    "ContextLengthError",
    "FirstByteTimeout",
    "IdleTimeout",
    "InvalidRequestError",
    "LlmError",
    "MissingApiKey",
    "ModelNotFoundError",
    "NetworkError",
    "OverloadedError",
    "ProtocolError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "TotalTimeout",
    "UnsupportedCapability",
    "redact",
]

_EXCERPT_LIMIT = 500

# Shapes of credentials we scrub even when we do not know the exact key: OpenAI/Anthropic/Groq style
# prefixed keys, Google API keys, bearer tokens and JWTs.
_SECRET_PATTERNS = re.compile(
    r"(?:sk|pk|rk|gsk|xai|csk|nvapi|sk-ant|sk-or)-[A-Za-z0-9_\-]{8,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-+/=]{8,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*"
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove known secrets and anything shaped like an API key or bearer token from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[REDACTED]")
    return _SECRET_PATTERNS.sub("[REDACTED]", text)


class LlmError(Exception):
    """Root of every llmrelay error."""

    kind: str = "error"
    """A stable machine-readable name for the class of failure."""
    retryable: bool = False
    """Whether repeating the same request later may succeed."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        body: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = redact(message)
        self.provider = provider
        self.status = status
        self.code = code
        self.error_type = error_type
        self.retry_after = retry_after
        self.request_id = request_id
        self.body_excerpt = redact(body[:_EXCERPT_LIMIT]) if body else None
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self.message)

    def with_context(
        self,
        *,
        provider: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> LlmError:
        """Fill in what the codec could not know (provider name, request id) and append a hint."""
        if provider and not self.provider:
            self.provider = provider
        if request_id and not self.request_id:
            self.request_id = request_id
        if hint and hint not in self.message:
            self.message = redact(f"{self.message}. {hint}")
            self.args = (self.message,)
        return self

    def __str__(self) -> str:
        where = []
        if self.provider:
            where.append(self.provider)
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        if self.code:
            where.append(self.code)
        prefix = f"[{' '.join(where)}] " if where else ""
        tail = f" (request id {self.request_id})" if self.request_id else ""
        return f"{prefix}{self.message}{tail}"

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}"
            for k, v in (
                ("provider", self.provider),
                ("status", self.status),
                ("code", self.code),
                ("retry_after", self.retry_after),
            )
            if v is not None
        )
        return f"{type(self).__name__}({self.message!r}{', ' if fields else ''}{fields})"


class MissingApiKey(LlmError):
    """No API key was given or found in the environment for a provider that needs one."""

    kind = "missing_api_key"


class UnsupportedCapability(LlmError):
    """The request needs a capability this provider or model does not have."""

    kind = "unsupported"


class ProviderError(LlmError):
    """The provider reported an error: an HTTP error status or an error inside the stream."""

    kind = "provider"


class AuthError(ProviderError):
    """Authentication or permission failure (401 / 403). Check the API key and its permissions."""

    kind = "auth"


class RateLimitError(ProviderError):
    """Transient rate limit (429). Wait ``retry_after`` seconds and retry."""

    kind = "rate_limit"
    retryable = True


class QuotaExceededError(ProviderError):
    """The account's quota or billing is exhausted. Waiting does not help; fail over or top up."""

    kind = "quota_exceeded"


class OverloadedError(ProviderError):
    """The provider is overloaded (503 / 529). Retry later or fail over."""

    kind = "overloaded"
    retryable = True


class ServerError(ProviderError):
    """The provider failed (5xx)."""

    kind = "server"
    retryable = True


class InvalidRequestError(ProviderError):
    """The provider rejected the request (400 / 404 / 413 / 422). Fix the request; retrying will not help."""

    kind = "invalid_request"


class ContextLengthError(InvalidRequestError):
    """The prompt (plus ``max_tokens``) does not fit the model's context window."""

    kind = "context_length"


class ModelNotFoundError(InvalidRequestError):
    """The provider does not know the model name."""

    kind = "invalid_request"


class ContentFilterError(ProviderError):
    """The provider's safety filter refused the prompt or the output."""

    kind = "content_filter"


class NetworkError(LlmError):
    """The connection failed: refused, reset, DNS failure, or closed before a response."""

    kind = "network"
    retryable = True


class RequestTimeout(LlmError):
    """A deadline passed. Each subclass names which knob (see ``Timeouts``)."""

    kind = "timeout"
    retryable = True


class ConnectTimeout(RequestTimeout):
    """Connecting to the provider took longer than ``Timeouts.connect``."""


class FirstByteTimeout(RequestTimeout):
    """The provider sent no response headers within ``Timeouts.first_byte``."""


class IdleTimeout(RequestTimeout):
    """The provider sent no bytes for ``Timeouts.idle`` seconds in the middle of a response."""


class TotalTimeout(RequestTimeout):
    """The whole call took longer than ``Timeouts.total``."""


class ProtocolError(LlmError):
    """The response was malformed or truncated (for example a stream that ended without its terminator)."""

    kind = "protocol"
