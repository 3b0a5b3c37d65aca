"""Value maps for OpenAI Chat Completions.

Finish reasons: https://platform.openai.com/docs/api-reference/chat/object (``finish_reason``:
``stop``, ``length``, ``tool_calls``, ``content_filter``, and the deprecated ``function_call``).
Usage: https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage
(``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``); DeepSeek reports
cache hits as ``prompt_cache_hit_tokens`` (https://api-docs.deepseek.com/api/create-chat-completion).
These already have ``Usage``'s meaning and are taken as they are: ``prompt_tokens`` includes the
``cached_tokens`` (the cache hits are a breakdown of the prompt, reported in its ``prompt_tokens_details``:
https://platform.openai.com/docs/guides/prompt-caching; DeepSeek's hit + miss counts add up to
``prompt_tokens``), and
``completion_tokens`` includes the ``reasoning_tokens`` (https://platform.openai.com/docs/guides/reasoning).
OpenAI reports no cache writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._types import FinishReason, Usage

__all__ = ["map_finish_reason", "parse_usage"]

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "error": FinishReason.ERROR,
}


def map_finish_reason(raw: str | None) -> FinishReason:
    if raw is None:
        return FinishReason.OTHER
    return FINISH_REASONS.get(raw, FinishReason.OTHER)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(usage: Any) -> Usage | None:
    """An OpenAI ``usage`` object as ``Usage``; ``None`` when absent or not an object."""
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cache_read = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    if cache_read is None:
        cache_read = _int(usage.get("prompt_cache_hit_tokens"))
    reasoning = _int(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else None
    output = _int(usage.get("completion_tokens"))
    if reasoning is not None and output is not None and reasoning > output:
        # reasoning is a part of the output; OpenRouter has reported more reasoning tokens than completion
        # tokens on a turn cut by max_tokens (11 > 10, openrouter_chat_stream_error_chunk). completion_tokens
        # is what is billed, so it stands and the part is capped at the whole.
        reasoning = output
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=output,
        total_tokens=_int(usage.get("total_tokens")),
        cache_read_tokens=cache_read,
        reasoning_tokens=reasoning,
    )
