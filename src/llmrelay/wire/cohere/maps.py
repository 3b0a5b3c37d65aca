"""Value maps for Cohere's Chat API v2.

Finish reasons (https://docs.cohere.com/reference/chat, ``finish_reason``; the Python SDK's
``ChatFinishReason``): ``COMPLETE`` (the model finished), ``STOP_SEQUENCE`` (a stop sequence was reached),
``MAX_TOKENS`` (``max_tokens`` or the context length), ``TOOL_CALL`` (the model wants tool results),
``ERROR`` (the generation failed) and ``TIMEOUT`` (the generation exceeded Cohere's time limit). The last
two end the response with an error (see ``errors.finish_error``). Some schema copies spell the values in
lower case; both are accepted.

Usage (``usage`` on the body, ``delta.usage`` on ``message-end``): ``tokens`` holds the tokens the model
actually processed (the prompt includes Cohere's template), ``billed_units`` what was invoiced, and
``cached_tokens`` the prompt tokens served from cache (https://docs.cohere.com/reference/chat, ``Usage``).
``Usage`` reports ``tokens``, like every other dialect reports processed tokens, and falls back to
``billed_units`` when ``tokens`` is missing; ``cached_tokens`` is a part of the prompt's input tokens, as
``Usage.cache_read_tokens`` is of ``input_tokens``. Cohere reports no cache writes or reasoning counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._types import FinishReason, Usage

__all__ = ["ERROR_FINISHES", "map_finish_reason", "parse_usage"]

FINISH_REASONS: Mapping[str, FinishReason] = {
    "COMPLETE": FinishReason.STOP,
    "STOP_SEQUENCE": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "TOOL_CALL": FinishReason.TOOL_CALLS,
    "ERROR": FinishReason.ERROR,
    "TIMEOUT": FinishReason.ERROR,
}

ERROR_FINISHES = frozenset({"ERROR", "TIMEOUT"})
"""Finish reasons that mean the generation failed: the stream ends with an error."""


def map_finish_reason(raw: str | None) -> FinishReason:
    if raw is None:
        return FinishReason.OTHER
    return FINISH_REASONS.get(raw.upper(), FinishReason.OTHER)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(usage: Any) -> Usage | None:
    """A Cohere ``usage`` object as ``Usage``; ``None`` when absent or empty."""
    if not isinstance(usage, dict):
        return None
    tokens = usage.get("tokens")
    billed = usage.get("billed_units")
    source = tokens if isinstance(tokens, dict) else billed if isinstance(billed, dict) else {}
    inp = _int(source.get("input_tokens"))
    out = _int(source.get("output_tokens"))
    cached = _int(usage.get("cached_tokens"))
    if inp is None and out is None and cached is None:
        return None
    return Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached)
