"""Value maps for Ollama's native API.

Finish reasons: the final ``done: true`` object of ``/api/chat`` and ``/api/generate`` carries
``done_reason`` (https://github.com/ollama/ollama/blob/main/docs/api.md): ``stop`` (end of turn or a stop
sequence), ``length`` (``num_predict`` or the context was reached), and ``load`` / ``unload`` (a request
with no messages or prompt that only loads or unloads the model). Servers older than 0.1.30 send no
``done_reason`` at all: a bare ``done: true`` is a natural stop. Ollama reports ``stop`` even when the
turn ends in tool calls; ``StreamState.done`` reports such a turn as ``tool_calls`` (the raw ``stop`` kept
in ``finish_reason_raw``), as ``FinishReason.TOOL_CALLS`` promises on every dialect.

Usage: ``prompt_eval_count`` (prompt tokens evaluated) and ``eval_count`` (tokens generated, thinking
included), both on the final object only (https://github.com/ollama/ollama/blob/main/docs/api.md, "Response"
of "Generate a completion"). Ollama reports no cache or reasoning counts, so ``cache_read_tokens`` and
``reasoning_tokens`` stay ``None``. A known limitation of the server, not ours to fix: when it reuses a
prompt prefix from its KV cache, ``prompt_eval_count`` counts only the tokens it evaluated again (or is
omitted), so ``input_tokens`` is then below the real prompt size (ollama/ollama#2068, #5303; a cached count
is proposed in ollama/ollama#16138, not released). Ollama omits a count that is zero (Go ``omitempty``),
so an absent count stays ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._types import FinishReason, Usage

__all__ = ["map_finish_reason", "parse_usage"]

FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "load": FinishReason.OTHER,
    "unload": FinishReason.OTHER,
}


def map_finish_reason(raw: str | None) -> FinishReason:
    """``done_reason`` as a ``FinishReason``; no ``done_reason`` (older servers) is a natural stop."""
    if raw is None:
        return FinishReason.STOP
    return FINISH_REASONS.get(raw, FinishReason.OTHER)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(final: Mapping[str, Any]) -> Usage | None:
    """The token counts of a final ``done: true`` object; ``None`` when it carries neither."""
    prompt = _int(final.get("prompt_eval_count"))
    output = _int(final.get("eval_count"))
    if prompt is None and output is None:
        return None
    return Usage(input_tokens=prompt, output_tokens=output)
