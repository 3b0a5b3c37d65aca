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
    │   ├── IdleTimeout           no event for ``idle`` seconds in the middle of a body
    │   └── TotalTimeout          the whole call took longer than ``total``
    └── ProtocolError             malformed, truncated or unparseable response

Classification uses the HTTP status and the provider's structured error code/type (see each dialect's
``errors`` module), never regular expressions over message text. Error messages, reprs and body excerpts
are redacted: no API key ever appears in them. Anything shaped like a credential is removed when an error
is made (``redact``); every credential a provider knows (its key, credential-like headers, a password in
its URL) is removed, in every form a server may echo it in, before the provider hands the error to its
caller (``LlmError.redacted``), whatever the HTTP status and wherever the error was found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Self

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
_REDACTED = "[REDACTED]"
_MIN_SECRET = 8
"""Shorter known secrets are not scrubbed: they are placeholders (vLLM's ``EMPTY``, ``ollama``) or
no secret at all, and replacing them would shred ordinary text (``run `ollama pull ...` ``)."""
_MIN_CUT_PREFIX = 6
"""A text that ends with this much of a known secret was cut inside it (an excerpt): the stub goes too."""

# Where a credential found by its shape ends: before trailing punctuation and whitespace (or the end), or
# before an unescaped quote that closes a JSON string. Special characters inside (`"`, `\`, non-ASCII)
# do not end it, so a key is never cut at its first special character. Every repetition is bounded and
# a candidate with no end in sight is cut at the bound, so scrubbing stays linear in the text's length.
_END = r"""(?:(?=[\"'`,.;:!?)\]}>]{0,8}(?:\s|$))|(?<!\\)(?="\s{0,8}[,:}\]]))"""

# Shapes of credentials we scrub even when we do not know the exact key: OpenAI/Anthropic/Groq style
# prefixed keys, Google API keys, bearer tokens, JWTs, credentials in URLs (``user:pass@``, ``?key=``)
# and echoed credential headers (``x-api-key: ...``). Keys with no recognisable shape (a gateway's
# ``corp-gateway-token-...``) are scrubbed because the provider knows them: ``LlmError.redacted``.
_SECRET_PATTERNS = re.compile(
    rf"(?<![A-Za-z0-9])(?:sk|pk|rk|gsk|xai|csk|nvapi)-(?:\S{{8,511}}?{_END}|\S{{512}})"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    rf"|(?i:bearer)\s{{1,8}}(?:\S{{8,2047}}?{_END}|\S{{2048}})"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*"
)
_KEPT_NAME_PATTERNS = re.compile(
    r"((?<![A-Za-z0-9_-])(?:x-goog-api-key|x-api-key|api[-_]?key|x-auth-token)[\"']?(?:\s*:\s*|=)[\"']?)"
    r"[^\s\"',;&}]+"
    r"|([?&](?:key|api[-_]?key|access[-_]?token|token|sig|signature|password|secret)=)[^&#\s\"'<>]+"
    r"|(://[^/\s:@\"']+:)[^/\s@\"']+(?=@)",
    re.IGNORECASE,
)
"""Credentials after a name that stays (header echo, URL query, URL user info): only the value goes."""


def _secret_forms(secrets: Iterable[str | None]) -> list[str]:
    r"""Every way a known secret may be echoed: as is, JSON-escaped (``\u00e9``, ``\"``, ``\\``, with and
    without ``ensure_ascii``, ``\/``), URL-quoted, and in a ``repr`` of the text or of its UTF-8 bytes.
    Longest first, so a form is replaced before any shorter form inside it."""
    import json
    from urllib.parse import quote, quote_plus

    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET:
            continue
        base = {
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            quote(secret, safe=""),
            quote_plus(secret, safe=""),
        }
        base |= {form.replace("/", "\\/") for form in base if "/" in form}
        for form in base:
            forms.update((form, repr(form)[1:-1], repr(form.encode("utf-8"))[2:-1]))
    return sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)


def _scrub(text: str, forms: Sequence[str], *, cut: bool = True) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, _REDACTED)
    if cut:
        text = _scrub_cut(text, forms)
    text = _SECRET_PATTERNS.sub(_REDACTED, text)
    return _KEPT_NAME_PATTERNS.sub(_keep_name, text)


def _scrub_cut(text: str, forms: Sequence[str]) -> str:
    """An excerpt cut inside a secret ends with its first characters (at a word boundary): drop them."""
    body = text.rstrip("'\"")  # the closing quote of a repr of the excerpt
    for form in forms:
        for size in range(min(len(form), len(body) + 1) - 1, _MIN_CUT_PREFIX - 1, -1):
            start = len(body) - size
            if body.endswith(form[:size]) and (start == 0 or not body[start - 1].isalnum()):
                return body[:start] + _REDACTED + text[len(body) :]
    return text


def _keep_name(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2) or match.group(3)) + _REDACTED


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove known secrets (in every escaped form, see ``LlmError.redacted``) and anything shaped like
    an API key, a bearer token or a credential in a URL or an echoed header from ``text``."""
    return _scrub(text, _secret_forms(secrets))


def redact_bytes(data: bytes, secrets: Iterable[str | None]) -> bytes:
    """Remove known secrets, in every escaped form, from raw bytes (a body before it is decoded)."""
    for form in _secret_forms(secrets):
        encoded = form.encode("utf-8")
        if encoded in data:
            data = data.replace(encoded, _REDACTED.encode())
    return data


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
        secrets: Iterable[str | None] = (),
    ) -> LlmError:
        """Fill in what the codec could not know (provider name, request id), scrub the provider's known
        ``secrets`` (see ``redacted``) and append a hint."""
        if provider and not self.provider:
            self.provider = provider
        if request_id and not self.request_id:
            self.request_id = request_id
        if secrets:
            # Before the hint too: an excerpt cut inside a secret leaves its stub at the end of the text.
            self.redacted(secrets)
        if hint and hint not in self.message:
            self.message = redact(f"{self.message}. {hint}")
            self.args = (self.message,)
            if secrets:
                self.redacted(secrets)
        return self

    def redacted(self, secrets: Iterable[str | None]) -> Self:
        """Scrub known secrets (API keys, tokens, credential header values) from every string this error
        exposes: ``message``, ``body_excerpt``, the other text fields, ``args`` and notes; return ``self``.

        Each secret goes in every form a server may echo it in: as is, JSON-escaped (``\\u00e9``, ``\\"``,
        ``\\\\``), URL-quoted, inside a ``repr``, and as the stub an excerpt cut inside it ends with. A
        provider applies this, with its own key and headers, to every error it hands to its caller.
        """
        forms = _secret_forms(secrets)
        if not forms:
            return self
        for name, value in list(vars(self).items()):
            if isinstance(value, str) and name != "provider":
                # Only the texts that may be cut short end with the stub of a secret.
                setattr(self, name, _scrub(value, forms, cut=name in ("message", "body_excerpt")))
        self.args = tuple(_scrub(arg, forms) if isinstance(arg, str) else arg for arg in self.args)
        notes = getattr(self, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [_scrub(note, forms) if isinstance(note, str) else note for note in notes]
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
    """No event (keep-alive comments do not count) arrived for ``Timeouts.idle`` seconds in a response."""


class TotalTimeout(RequestTimeout):
    """The whole call took longer than ``Timeouts.total``."""


class ProtocolError(LlmError):
    """The response was malformed or truncated (for example a stream that ended without its terminator)."""

    kind = "protocol"
