"""Value maps for the Anthropic Messages API.

Stop reasons (https://platform.claude.com/docs/en/api/messages, ``stop_reason``; handling guide:
https://platform.claude.com/docs/en/build-with-claude/handling-stop-reasons): ``end_turn``,
``stop_sequence``, ``max_tokens``, ``tool_use``, ``pause_turn`` (a server tool loop paused; send the turn
back to continue), ``refusal`` (streaming classifiers stopped the reply) and
``model_context_window_exceeded`` (generation reached the context window, not ``max_tokens``).

Usage (same page, ``usage``): ``input_tokens`` counts only the uncached input, after the last cache
breakpoint; ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` are the cached parts and are **not**
inside it: the prompt-caching guide computes the total input as cache_read_input_tokens +
cache_creation_input_tokens + input_tokens (https://platform.claude.com/docs/en/build-with-claude/prompt-caching,
"Tracking cache performance"). ``Usage.input_tokens`` means every prompt token on every dialect, so
``parse_usage`` reports that sum and keeps the two cache counts beside it (subsets of it). In a stream
``message_start`` carries the input counts and ``message_delta`` the *cumulative* ``output_tokens`` (and, on
newer models, the input counts again), so the raw fields are merged first, later values replacing earlier ones
field by field (https://platform.claude.com/docs/en/build-with-claude/streaming#event-types), and the sum is
taken from the merged fields. Anthropic reports no separate reasoning-token count: thinking tokens are inside
``output_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._types import FinishReason, Usage

__all__ = ["FINISH_REASONS", "USAGE_FIELDS", "map_finish_reason", "merge_usage", "parse_usage"]

FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
    "pause_turn": FinishReason.OTHER,
}

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
"""The ``usage`` keys we read; a stream's later ``usage`` objects override these one by one."""


def map_finish_reason(raw: str | None) -> FinishReason:
    """Normalise a ``stop_reason``; unknown or missing values are ``OTHER`` (the raw value is kept beside it)."""
    if raw is None:
        return FinishReason.OTHER
    return FINISH_REASONS.get(raw, FinishReason.OTHER)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def merge_usage(seen: dict[str, int], usage: Any) -> None:
    """Fold one ``usage`` object into ``seen``: each integer field present replaces the earlier value."""
    if not isinstance(usage, dict):
        return
    for key in USAGE_FIELDS:
        value = _int(usage.get(key))
        if value is not None:
            seen[key] = value


def parse_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """An Anthropic ``usage`` object (or the merged fields of a stream) as ``Usage``; ``None`` when empty."""
    if not isinstance(usage, Mapping):
        return None
    fields = {key: _int(usage.get(key)) for key in USAGE_FIELDS}
    if all(value is None for value in fields.values()):
        return None
    read, write = fields["cache_read_input_tokens"], fields["cache_creation_input_tokens"]
    parts = [value for value in (fields["input_tokens"], read, write) if value is not None]
    # Anthropic's input_tokens excludes both cache counts (see the module docstring): add them back.
    return Usage(
        input_tokens=sum(parts) if parts else None,
        output_tokens=fields["output_tokens"],
        cache_read_tokens=read,
        cache_write_tokens=write,
    )
