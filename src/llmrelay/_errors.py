"""The error tree. Every failure llmrelay raises is one of these::

    LlmError                      kind
    ├── MissingApiKey             missing_api_key      no key configured for a provider that needs one
    ├── ConfigError               config               llmrelay.toml is invalid (names the file and the key path)
    ├── UnsupportedCapability     unsupported          the request needs something the provider cannot do
    ├── ProviderError             provider             the provider answered with an error (HTTP or in-stream)
    │   ├── AuthError             auth                 401 / 403, invalid or revoked key
    │   ├── RateLimitError        rate_limit           429, transient: retry after ``retry_after``
    │   ├── QuotaExceededError    quota_exceeded       quota or billing exhausted: not retryable, fail over
    │   ├── OverloadedError       overloaded           503 / 529, the provider is overloaded: retryable
    │   ├── ServerError           server               other 5xx: retryable
    │   ├── InvalidRequestError   invalid_request      400 / 404 / 413 / 422: fix the request
    │   │   ├── ContextLengthError    context_length   the prompt does not fit the model's context window
    │   │   └── ModelNotFoundError    model_not_found  the model name is unknown to the provider
    │   ├── ContentFilterError    content_filter       refused by a safety filter
    │   └── LocalModelCrash       local_crash          the local model's worker process died
    ├── NetworkError              network              connect refused, reset, DNS: retryable
    ├── RequestTimeout            timeout              a deadline passed (a 408): retryable
    │   ├── ConnectTimeout        connect_timeout      connecting took longer than ``connect``
    │   ├── FirstByteTimeout      first_byte_timeout   no response headers within ``first_byte``
    │   ├── FirstEventTimeout     first_event_timeout  a stream's first event not within ``first_event_timeout``
    │   ├── IdleTimeout           idle_timeout         no event for ``idle`` seconds in the middle of a body
    │   └── TotalTimeout          total_timeout        the whole call took longer than ``total``
    ├── ProtocolError             protocol             malformed, truncated or unparseable response
    ├── BudgetExceeded            budget_exceeded      a usage budget would be exceeded: nothing was sent
    └── AllAttemptsFailed         all_attempts_failed  every attempt of a retry/fallback failed (``attempts``)

Errors are values. Each class has its own stable ``kind`` (``family`` lists it with its parents' kinds,
``("connect_timeout", "timeout", "error")``); retry and fail-over decisions are tables keyed on it
(``llmrelay._policy``). ``with_context`` and ``redacted`` return a new error and leave the original alone.
``to_json()`` gives a dict tagged with ``kind`` (``provider``, ``status``, ``code``, ``error_type``,
``retryable``, ``retry_after``, ``request_id``, ``message``, ``body_excerpt``, and a subclass's own fields:
``ConfigError``'s ``file`` and ``key``, ``AllAttemptsFailed``'s ``attempts``); ``LlmError.from_json`` rebuilds
the class its ``kind`` names (an unknown kind gives an ``LlmError`` that keeps it). ``AllAttemptsFailed``
carries every ``Attempt`` (provider, model, error, elapsed seconds) and says so one line per attempt.

Classification uses the HTTP status and the provider's structured error code/type (see each dialect's
``errors`` module), never regular expressions over message text. Error messages, reprs and body excerpts
are redacted: no API key ever appears in them. Anything shaped like a credential is removed when an error
is made (``redact``); every credential a provider knows (its key, credential-like headers, a password in
its URL) is removed, in every form a server may echo it in, before the provider hands the error to its
caller (``LlmError.with_context`` / ``LlmError.redacted``), whatever the HTTP status and wherever the
error was found.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Self

__all__ = [
    "AllAttemptsFailed",
    "Attempt",
    "AuthError",
    "BudgetExceeded",
    "ConnectTimeout",
    "ContentFilterError",
    "ContextLengthError",
    "FirstByteTimeout",
    "FirstEventTimeout",
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


_JSON_FIELDS = (
    "provider",
    "status",
    "code",
    "error_type",
    "retryable",
    "retry_after",
    "request_id",
    "message",
    "body_excerpt",
)
"""The fields of every error's JSON form, after its ``kind``."""

_KINDS: dict[str, type[LlmError]] = {}
"""Each ``kind`` to the class that names it: filled as the classes are defined (``__init_subclass__``)."""

_KINDS_ELSEWHERE = {
    "config": "llmrelay.config._errors",
    "local_crash": "llmrelay.providers._local_process",
}
"""Kinds whose class is defined outside this module, and the module ``from_json`` imports to find it."""


def _class_for_kind(kind: str) -> type[LlmError]:
    cls = _KINDS.get(kind)
    if cls is None and kind in _KINDS_ELSEWHERE:
        import importlib

        importlib.import_module(_KINDS_ELSEWHERE[kind])
        cls = _KINDS.get(kind)
    return cls or LlmError


class LlmError(Exception):
    """Root of every llmrelay error.

    An error is a value: ``with_context`` and ``redacted`` return new errors, ``to_json`` / ``from_json``
    round-trip it, and ``kind`` (one per class) is what retry and fail-over tables key on.
    """

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            # The first class to claim a kind owns it: a subclass outside the tree that names its own kind
            # joins ``from_json`` this way; one that repeats its parent's kind does not replace it.
            _KINDS.setdefault(cls.kind, cls)

    @property
    def family(self) -> tuple[str, ...]:
        """This error's ``kind``, then its parents' up to ``"error"``: ``ConnectTimeout`` is
        ``("connect_timeout", "timeout", "error")``. For code that asks for a family of failures."""
        kinds = [self.kind]
        for cls in type(self).__mro__:
            kind = cls.__dict__.get("kind")
            if isinstance(kind, str) and kind not in kinds:
                kinds.append(kind)
        return tuple(kinds)

    def __copy__(self) -> Self:
        """A new error of the same class with the same fields, args, notes (a list of its own), cause,
        context and traceback. ``copy.copy`` uses this, whatever the subclass's ``__init__`` takes."""
        cls = type(self)
        new = cls.__new__(cls)
        new.__dict__.update(self.__dict__)
        new.args = self.args
        notes = self.__dict__.get("__notes__")
        if isinstance(notes, list):
            new.__notes__ = list(notes)
        new.__cause__ = self.__cause__
        new.__context__ = self.__context__
        new.__suppress_context__ = self.__suppress_context__
        new.__traceback__ = self.__traceback__
        return new

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls ``cls(*args)``, which a subclass's ``__init__`` need not accept.
        return (_bare, (type(self), self.args), dict(self.__dict__))

    def with_context(
        self,
        *,
        provider: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        secrets: Iterable[str | None] = (),
    ) -> Self:
        """A copy of this error, of the same class, with what the codec could not know filled in (the
        provider name and request id, where this error has none), the provider's known ``secrets``
        scrubbed (see ``redacted``) and ``hint`` appended to the message. This error is left unchanged."""
        new = copy.copy(self)
        if provider and not new.provider:
            new.provider = provider
        if request_id and not new.request_id:
            new.request_id = request_id
        forms = _secret_forms(secrets)
        # Before the hint too: an excerpt cut inside a secret leaves its stub at the end of the text.
        new._scrub_fields(forms)
        if hint and hint not in new.message:
            new.message = redact(f"{new.message}. {hint}")
            new.args = (new.message,)
            new._scrub_fields(forms)
        return new

    def redacted(self, secrets: Iterable[str | None]) -> Self:
        """A copy of this error with known secrets (API keys, tokens, credential header values) scrubbed
        from every string it exposes: ``message``, ``body_excerpt``, the other text fields, ``args``,
        notes, and the errors it carries (``AllAttemptsFailed.attempts``). This error is left unchanged.

        Each secret goes in every form a server may echo it in: as is, JSON-escaped (``\\u00e9``, ``\\"``,
        ``\\\\``), URL-quoted, inside a ``repr``, and as the stub an excerpt cut inside it ends with. A
        provider applies this, with its own key and headers, to every error it hands to its caller.
        """
        new = copy.copy(self)
        new._scrub_fields(_secret_forms(secrets))
        return new

    def _scrub_fields(self, forms: Sequence[str]) -> None:
        """Scrub ``forms`` from this error's own texts, in place: only ever called on a fresh copy."""
        if not forms:
            return
        for name, value in list(vars(self).items()):
            if isinstance(value, str) and name != "provider":
                # Only the texts that may be cut short end with the stub of a secret.
                setattr(self, name, _scrub(value, forms, cut=name in ("message", "body_excerpt")))
        self.args = tuple(_scrub(arg, forms) if isinstance(arg, str) else arg for arg in self.args)
        notes = getattr(self, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [_scrub(note, forms) if isinstance(note, str) else note for note in notes]

    _json_extra: tuple[str, ...] = ()
    """Text fields a subclass adds to its JSON form (``ConfigError``: ``file``, ``key``)."""

    def to_json(self) -> dict[str, Any]:
        """This error as a JSON-ready dict tagged with its ``kind``; ``LlmError.from_json`` rebuilds it."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in _JSON_FIELDS:
            out[name] = getattr(self, name)
        for name in self._json_extra:
            out[name] = getattr(self, name, None)
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> LlmError:
        """The error ``to_json`` produced, of the class its ``kind`` names (an unknown kind gives an
        ``LlmError`` that keeps that kind). Texts are scrubbed of credential shapes again (see
        ``redact``); a malformed dict is a ``ValueError``."""
        kind = data.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"an error's JSON needs a non-empty string 'kind', got {kind!r}")
        cls = _class_for_kind(kind)
        error = cls.__new__(cls)
        error._load_json(data)
        if error.kind != kind:
            error.kind = kind
        return error

    def _load_json(self, data: Mapping[str, Any]) -> None:
        """Fill a bare instance (made by ``from_json``) from its JSON form."""
        message = data.get("message")
        if not isinstance(message, str):
            raise ValueError(f"an error's JSON needs a string 'message', got {message!r}")
        self.message = redact(message)
        for name in ("provider", "code", "error_type", "request_id", "body_excerpt", *self._json_extra):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"an error's {name!r} must be a string or null, got {value!r}")
            setattr(self, name, redact(value) if value is not None and name != "provider" else value)
        status = data.get("status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
            raise ValueError(f"an error's 'status' must be an integer or null, got {status!r}")
        self.status = status
        retry_after = data.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, int | float) or isinstance(retry_after, bool)):
            raise ValueError(f"an error's 'retry_after' must be a number or null, got {retry_after!r}")
        self.retry_after = None if retry_after is None else float(retry_after)
        retryable = data.get("retryable", type(self).retryable)
        if not isinstance(retryable, bool):
            raise ValueError(f"an error's 'retryable' must be a boolean, got {retryable!r}")
        if retryable != type(self).retryable:
            self.retryable = retryable
        self.args = (self.message,)

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

    kind = "model_not_found"


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

    kind = "connect_timeout"


class FirstByteTimeout(RequestTimeout):
    """The provider sent no response headers within ``Timeouts.first_byte``."""

    kind = "first_byte_timeout"


class FirstEventTimeout(RequestTimeout):
    """A stream gave no first event within ``Fallback(first_event_timeout=...)``: the wrapper abandoned that
    attempt (closing its connection) and moved on. Not retried on the same provider, as a silent upstream."""

    kind = "first_event_timeout"


class IdleTimeout(RequestTimeout):
    """No event (keep-alive comments do not count) arrived for ``Timeouts.idle`` seconds in a response."""

    kind = "idle_timeout"


class TotalTimeout(RequestTimeout):
    """The whole call took longer than ``Timeouts.total``."""

    kind = "total_timeout"


class ProtocolError(LlmError):
    """The response was malformed or truncated (for example a stream that ended without its terminator)."""

    kind = "protocol"


class BudgetExceeded(LlmError):
    """A call would exceed a usage budget (``llmrelay.metering.Budget``), so it was not sent.

    ``scope`` names the budget (``*``, ``PROVIDER``, ``PROVIDER/MODEL``, ``key:NAME``), ``limit`` its cap
    (a ``Decimal`` of ``currency`` for a cost budget, an ``int`` for a token budget, as ``unit`` says),
    ``spent`` what the period has spent or reserved, ``requested`` the call's estimate, ``period`` the
    budget's period (``day``, ``month``, ``total``) and ``retry_after`` the seconds until it starts again
    (none for ``total``). Not retried (waiting a few seconds does not refill a budget); a ``Fallback``
    moves on, since another provider may have budget left.
    """

    kind = "budget_exceeded"
    retryable = False
    _json_extra = ("scope", "period", "unit", "currency")

    def __init__(
        self,
        message: str,
        *,
        scope: str | None = None,
        limit: Decimal | int | None = None,
        spent: Decimal | int | None = None,
        requested: Decimal | int | None = None,
        period: str | None = None,
        unit: str | None = None,
        currency: str | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, **fields)
        self.scope = scope
        """The budget's scope."""
        self.limit = limit
        """The budget's cap, in ``unit`` (``cost`` in ``currency``, or ``tokens``)."""
        self.spent = spent
        """What the period has spent or holds reserved, in ``unit``."""
        self.requested = requested
        """This call's estimate, in ``unit``."""
        self.period = period
        """``day``, ``month`` or ``total`` (UTC calendar periods)."""
        self.unit = unit
        """``cost`` or ``tokens``."""
        self.currency = currency
        """The currency of a cost budget."""

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        for name in ("limit", "spent", "requested"):
            value = getattr(self, name, None)
            out[name] = str(value) if isinstance(value, Decimal) else value
        return out

    def _load_json(self, data: Mapping[str, Any]) -> None:
        super()._load_json(data)
        for name in ("limit", "spent", "requested"):
            value = data.get(name)
            if isinstance(value, str):
                value = Decimal(value)
            elif value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"a budget error's {name!r} must be an integer, a decimal string or null")
            setattr(self, name, value)


_KINDS["error"] = LlmError


def _bare(cls: type[LlmError], args: tuple[Any, ...]) -> LlmError:
    """An instance of ``cls`` with ``args`` and no fields yet (unpickling sets them)."""
    error = cls.__new__(cls)
    error.args = args
    return error


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed try of a request: who was asked, what went wrong, and how long it took."""

    provider: str
    """The provider's name (``openai``, ``anthropic``, a configured name)."""
    model: str | None
    """The model that attempt asked for."""
    error: LlmError
    """Why it failed."""
    elapsed_s: float
    """Seconds from the start of the attempt to its failure."""

    def to_json(self) -> dict[str, Any]:
        """This attempt as a JSON-ready dict; ``Attempt.from_json`` rebuilds it."""
        return {
            "provider": self.provider,
            "model": self.model,
            "error": self.error.to_json(),
            "elapsed_s": self.elapsed_s,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Attempt:
        """The attempt ``to_json`` produced; a malformed dict is a ``ValueError``."""
        provider, model, error, elapsed = (data.get(k) for k in ("provider", "model", "error", "elapsed_s"))
        if not isinstance(provider, str):
            raise ValueError(f"an attempt's 'provider' must be a string, got {provider!r}")
        if model is not None and not isinstance(model, str):
            raise ValueError(f"an attempt's 'model' must be a string or null, got {model!r}")
        if not isinstance(error, Mapping):
            raise ValueError(f"an attempt's 'error' must be an error's JSON object, got {error!r}")
        if not isinstance(elapsed, int | float) or isinstance(elapsed, bool):
            raise ValueError(f"an attempt's 'elapsed_s' must be a number, got {elapsed!r}")
        return Attempt(provider, model, LlmError.from_json(error), float(elapsed))


_ATTEMPT_LINE_LIMIT = 300
"""At most this many characters of each attempt's error in ``AllAttemptsFailed``'s message."""


def _attempt_line(number: int, attempt: Attempt) -> str:
    text = " ".join(str(attempt.error).split())
    if len(text) > _ATTEMPT_LINE_LIMIT:
        text = text[: _ATTEMPT_LINE_LIMIT - 3] + "..."
    model = f" {attempt.model}" if attempt.model else ""
    return f"{number}. {attempt.provider}{model} after {attempt.elapsed_s:.3f}s: {attempt.error.kind}: {text}"


class AllAttemptsFailed(LlmError):
    """Every attempt a retry or fallback wrapper made failed; ``attempts`` holds each one, in order.

    The message has one line per attempt (provider, model, elapsed time, kind and error). Not retryable
    itself: the wrapper that raises it already retried what its policy allows.
    """

    kind = "all_attempts_failed"
    retryable = False

    def __init__(self, attempts: Iterable[Attempt], message: str | None = None, *, provider: str | None = None) -> None:
        self.attempts: tuple[Attempt, ...] = tuple(attempts)
        """Every failed attempt, first to last."""
        if message is None:
            count = len(self.attempts)
            head = f"all {count} attempt{'s' if count != 1 else ''} failed"
            message = "\n".join(
                [head + ":" if count else head, *map(_attempt_line, range(1, count + 1), self.attempts)]
            )
        super().__init__(message, provider=provider)

    def _scrub_fields(self, forms: Sequence[str]) -> None:
        super()._scrub_fields(forms)
        if forms:
            self.attempts = tuple(
                replace(attempt, error=_scrubbed_copy(attempt.error, forms)) for attempt in self.attempts
            )

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["attempts"] = [attempt.to_json() for attempt in self.attempts]
        return out

    def _load_json(self, data: Mapping[str, Any]) -> None:
        super()._load_json(data)
        attempts = data.get("attempts", [])
        if not isinstance(attempts, list):
            raise ValueError(f"'attempts' must be a list, got {attempts!r}")
        self.attempts = tuple(Attempt.from_json(item) for item in attempts)


def _scrubbed_copy(error: LlmError, forms: Sequence[str]) -> LlmError:
    new = copy.copy(error)
    new._scrub_fields(forms)
    return new
