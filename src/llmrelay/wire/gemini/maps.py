"""Value maps for the Gemini API (``generateContent`` / ``streamGenerateContent``).

Finish reasons: https://ai.google.dev/api/generate-content#FinishReason. Gemini reports ``STOP`` when it
calls a function too; ``STOP`` maps to stop here, and ``StreamState.done`` reports a turn that made tool
calls and ended with ``STOP`` as ``tool_calls`` (the raw ``STOP`` kept in ``finish_reason_raw``), as
``FinishReason.TOOL_CALLS`` promises on every dialect.

- ``STOP`` -> stop (tool_calls when the turn called functions); ``MAX_TOKENS`` -> length;
- the safety family (``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII`` and the
  image variants) -> content_filter;
- the failed-generation family (``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL``,
  ``TOO_MANY_TOOL_CALLS``, ``MISSING_THOUGHT_SIGNATURE``) ends the stream as an *error*
  (``Done(finish_reason=ERROR, error=...)``, see ``FAILED_GENERATION``): the turn carries no usable
  tool call, and a caller that only looked at ``finish_reason == OTHER`` would read the leftover text as
  the answer. The error says which value it was (``error.code``) and whether a retry may help;
- everything else (``FINISH_REASON_UNSPECIFIED``, ``OTHER``, ``LANGUAGE``, ``NO_IMAGE``, ...) -> other.

A blocked prompt has no candidates, only ``promptFeedback.blockReason``
(https://ai.google.dev/api/generate-content#BlockReason): every block reason is a content filter.

Usage: https://ai.google.dev/api/generate-content#UsageMetadata. ``promptTokenCount`` is the whole prompt:
"when cachedContent is set, this is still the total effective prompt size meaning this includes the number of
tokens in the cached content", so ``cachedContentTokenCount`` (``cache_read_tokens``) is a part of it.
``toolUsePromptTokenCount`` (tokens of tool-use prompts) is prompt input Gemini counts beside it, and is added
to ``input_tokens``. ``candidatesTokenCount`` is the visible output only: ``thoughtsTokenCount`` is **not**
inside it (``totalTokenCount`` is prompt + tool-use prompt + candidates + thoughts, as the recorded
``gemini_stream_function_call`` transcript shows: 29 + 10 + 202 = 241), and thinking is billed as output
(genai-prices, which prices usage for cost, adds ``thoughtsTokenCount`` to Gemini's output tokens since
v0.0.26: https://github.com/pydantic/genai-prices/releases/tag/v0.0.26). ``Usage`` means
the same on every dialect, so ``output_tokens`` is candidates + thoughts and ``reasoning_tokens`` the thoughts,
a subset of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._types import FinishReason, Usage

__all__ = ["FAILED_GENERATION", "FINISH_REASONS", "map_finish_reason", "parse_usage"]

FINISH_REASONS: Mapping[str, FinishReason] = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "IMAGE_RECITATION": FinishReason.CONTENT_FILTER,
}

FAILED_GENERATION: Mapping[str, tuple[bool, str]] = {
    # raw finishReason: (retryable, what happened)
    "MALFORMED_FUNCTION_CALL": (True, "the model produced a function call that could not be parsed"),
    "UNEXPECTED_TOOL_CALL": (True, "the model called a tool that is not enabled for this request"),
    "TOO_MANY_TOOL_CALLS": (True, "the model made more consecutive tool calls than the API allows"),
    "MISSING_THOUGHT_SIGNATURE": (
        False,
        "the request lacks a thought signature the model needs: send earlier assistant turns back with their "
        "reasoning parts (ChatResponse.message keeps them)",
    ),
}
"""Finish values that mean the generation failed; they end the stream with ``Done(error=...)``."""


def map_finish_reason(raw: str | None) -> FinishReason:
    if raw is None:
        return FinishReason.OTHER
    if raw in FAILED_GENERATION:
        return FinishReason.ERROR
    return FINISH_REASONS.get(raw, FinishReason.OTHER)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(usage: Any) -> Usage | None:
    """A ``usageMetadata`` object as ``Usage``; ``None`` when absent or when it carries no token counts
    (Vertex sends ``{"trafficType": ...}`` alone on early chunks)."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("promptTokenCount"))
    tool_prompt = _int(usage.get("toolUsePromptTokenCount"))
    candidates = _int(usage.get("candidatesTokenCount"))
    total = _int(usage.get("totalTokenCount"))
    cached = _int(usage.get("cachedContentTokenCount"))
    thoughts = _int(usage.get("thoughtsTokenCount"))
    if all(value is None for value in (prompt, tool_prompt, candidates, total, cached, thoughts)):
        return None
    # promptTokenCount already includes the cached content; candidatesTokenCount excludes the thoughts.
    inp = _sum(prompt, tool_prompt)
    out = _sum(candidates, thoughts)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out if inp is not None and out is not None else total,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
    )


def _sum(*values: int | None) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None
