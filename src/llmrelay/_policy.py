"""Which failures are retried and which fail over: two tables keyed on ``LlmError.kind``.

The retry and fallback wrappers ask ``should_retry`` and ``should_fail_over`` and nothing else; no wrapper
looks at a class, a status or a message to decide. Every kind in the error tree is in exactly one of
``RETRY_ON`` / ``NOT_RETRIED`` and in exactly one of ``FAIL_OVER_ON`` / ``NOT_FAILED_OVER`` (a test
checks no kind is forgotten); a kind in neither (an unknown kind read back from JSON) is not retried
and fails over only if it would be retried.

Retry (the same request, the same provider, after a backoff):

- ``rate_limit``, ``overloaded``, ``server``, ``network``, ``connect_timeout``, ``idle_timeout`` and the
  generic ``timeout`` (a 408) are transient: retried.
- ``provider`` and ``error`` (no more specific class) are retried only when the error is marked
  retryable (a dialect knows, as Cohere's 499 or Gemini's retryable ``finishReason``).
- Whatever the kind, an error marked ``retryable=False`` is not retried (Cohere's 501 ``ServerError``).
- ``first_byte_timeout`` (a silent upstream), ``first_event_timeout`` (a stream with no event in time,
  ``Fallback(first_event_timeout=...)``) and ``total_timeout`` (too slow as a whole) are not retried
  on the same provider: move on. ``content_filter`` is never retried. ``quota_exceeded``, ``auth`` and
  ``missing_api_key`` do not heal by waiting. ``context_length`` only moves to a model with a bigger
  window (``FAIL_OVER_TO_BIGGER_WINDOW``). ``invalid_request``, ``model_not_found``, ``unsupported`` and
  ``config`` need the request or the configuration fixed; ``protocol`` and ``local_crash`` are not
  retryable as such (``ProtocolError.retryable`` and ``LocalModelCrash.retryable`` are false);
  ``all_attempts_failed`` already spent its retries. ``budget_exceeded`` (a usage budget of
  ``llmrelay.metering``) does not refill in a backoff's time.

Fail over (the next candidate of a ``Fallback``, before the first event reached the caller):

- everything ``should_retry`` retries;
- ``quota_exceeded``, ``auth`` and ``missing_api_key`` (that provider's account or key), the
  ``first_byte_timeout``, ``first_event_timeout`` and ``total_timeout`` of a slow provider,
  ``model_not_found`` (each candidate names its own model), ``unsupported`` (another provider may have
  the capability), ``protocol`` (that provider answered garbage), ``local_crash``,
  ``all_attempts_failed`` (a nested fallback ran out) and ``budget_exceeded`` (nothing was sent;
  another provider may have budget left);
- not ``invalid_request`` or ``config`` (the same request fails everywhere), not ``content_filter``
  (moving a refused prompt to another provider is the caller's choice, configured), not
  ``context_length`` (only to a bigger window: ``FAIL_OVER_TO_BIGGER_WINDOW``).
"""

from __future__ import annotations

from ._errors import LlmError

__all__ = [
    "FAIL_OVER_ON",
    "FAIL_OVER_TO_BIGGER_WINDOW",
    "NOT_FAILED_OVER",
    "NOT_RETRIED",
    "RETRY_ON",
    "should_fail_over",
    "should_retry",
]

RETRY_ON: frozenset[str] = frozenset(
    {
        "rate_limit",
        "overloaded",
        "server",
        "network",
        "timeout",
        "connect_timeout",
        "idle_timeout",
        "provider",
        "error",
    }
)
"""Kinds retried on the same provider, when the error is marked ``retryable`` (its class's default, or
what the dialect said: ``provider`` and ``error`` are retryable only when marked)."""

NOT_RETRIED: frozenset[str] = frozenset(
    {
        "first_byte_timeout",
        "first_event_timeout",
        "total_timeout",
        "content_filter",
        "quota_exceeded",
        "auth",
        "missing_api_key",
        "context_length",
        "invalid_request",
        "model_not_found",
        "unsupported",
        "config",
        "protocol",
        "local_crash",
        "all_attempts_failed",
        "budget_exceeded",
    }
)
"""Kinds never retried on the same provider, whatever the error says."""

FAIL_OVER_ON: frozenset[str] = frozenset(
    {
        "rate_limit",
        "overloaded",
        "server",
        "network",
        "timeout",
        "connect_timeout",
        "first_byte_timeout",
        "first_event_timeout",
        "idle_timeout",
        "total_timeout",
        "quota_exceeded",
        "auth",
        "missing_api_key",
        "model_not_found",
        "unsupported",
        "protocol",
        "local_crash",
        "all_attempts_failed",
        "budget_exceeded",
    }
)
"""Kinds that move a fallback on to its next candidate (as does anything ``should_retry`` retries)."""

NOT_FAILED_OVER: frozenset[str] = frozenset(
    {"content_filter", "context_length", "invalid_request", "config", "provider", "error"}
)
"""Kinds that end a fallback with this error, unless ``should_retry`` would retry it (a ``provider``
error marked retryable fails over)."""

FAIL_OVER_TO_BIGGER_WINDOW: frozenset[str] = frozenset({"context_length"})
"""Kinds that move on only to a candidate whose context window is bigger than the one that failed."""


def should_retry(error: LlmError) -> bool:
    """Whether a retry wrapper may send the same request to the same provider again after ``error``."""
    return error.kind in RETRY_ON and error.retryable


def should_fail_over(error: LlmError) -> bool:
    """Whether a fallback wrapper may move on to its next candidate after ``error`` (before the first
    event reached the caller; after it, every failure is the stream's error)."""
    return error.kind in FAIL_OVER_ON or should_retry(error)
