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

from ..._builders import builder
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
    """A token count: a JSON integer (``bool`` is not one); anything else is not reported."""
    return value if type(value) is int else None


def parse_usage(usage: Any) -> Usage | None:
    """An OpenAI ``usage`` object as ``Usage``; ``None`` when absent or not an object."""
    if not isinstance(usage, dict):
        return None
    # Every reply passes here: the counts are read with ``type(x) is int`` in place of ``_int`` calls
    # (``json`` makes exact ints; ``True`` is not a count).
    get = usage.get
    prompt_details = get("prompt_tokens_details")
    cache_read = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    if type(cache_read) is not int:
        cache_read = _int(get("prompt_cache_hit_tokens"))
    completion_details = get("completion_tokens_details")
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    if type(reasoning) is not int:
        reasoning = None
    output = get("completion_tokens")
    if type(output) is not int:
        output = None
    elif reasoning is not None and reasoning > output:
        # reasoning is a part of the output; OpenRouter has reported more reasoning tokens than completion
        # tokens on a turn cut by max_tokens (11 > 10, openrouter_chat_stream_error_chunk). completion_tokens
        # is what is billed, so it stands and the part is capped at the whole.
        reasoning = output
    prompt, total = get("prompt_tokens"), get("total_tokens")
    if type(prompt) is not int:
        prompt = None
    if type(total) is not int:  # what ``Usage.__post_init__`` does, which ``_usage`` does not run
        total = prompt + output if prompt is not None and output is not None else None
    return _usage(prompt, output, total, cache_read, None, reasoning)


_usage = builder(
    Usage,
    ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"),
)
"""``Usage(...)`` by position, without its ``__post_init__`` (``llmrelay._builders``): one per reply."""
