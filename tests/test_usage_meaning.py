"""``Usage`` means one thing on every dialect (see its docstring), proven on the recorded transcripts.

- ``input_tokens`` is every prompt token, cached or not; ``cache_read_tokens`` and ``cache_write_tokens``
  are parts of it (Anthropic's wire ``input_tokens`` excludes them, so the decoder adds them back);
- ``output_tokens`` is every generated token; ``reasoning_tokens`` is a part of it (Gemini's
  ``candidatesTokenCount`` excludes the thoughts, so the decoder adds them);
- ``total_tokens == input_tokens + output_tokens``.

The raw-wire checks read each transcript's usage objects here, independently of the decoders, and compute
what the meaning above says the numbers must be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from llmrelay import ChatRequest, ChatResponse, Message, Usage, fold
from llmrelay.providers.anthropic import AnthropicProvider
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import sse_events
from llmrelay.wire.anthropic import AnthropicDialect, AnthropicStreamDecoder
from llmrelay.wire.anthropic import decode_body as anthropic_body
from llmrelay.wire.cohere import parse_usage as cohere_usage
from llmrelay.wire.dialect import Dialect
from llmrelay.wire.gemini import GeminiDialect, GeminiStreamDecoder
from llmrelay.wire.gemini import decode_body as gemini_body
from llmrelay.wire.ollama import OllamaDialect
from llmrelay.wire.openai_chat import OpenAIChatDialect

from wire_helpers import FIXTURES, Transcript, decode_transcript, feed_all, load, split_bytes

ALL = [load(p.stem) for p in sorted(FIXTURES.glob("*.json"))]
WITH_USAGE = [t for t in ALL if t.status < 400 and t.expected.get("usage") is not None]


def dialect_for(t: Transcript) -> Dialect:
    if t.provider == "anthropic":
        return AnthropicDialect()
    if t.provider == "gemini":
        return GeminiDialect()
    if t.provider == "ollama":
        return OllamaDialect(endpoint="generate" if t.meta["endpoint"] == "/api/generate" else "chat")
    return OpenAIChatDialect()  # openai, azure, dashscope, deepseek, groq, openrouter, vllm, llamacpp


def _payloads(t: Transcript) -> Iterator[dict[str, Any]]:
    """Every JSON object of the transcript: SSE ``data:`` lines, NDJSON lines, or the whole body."""
    text = t.wire.decode("utf-8")
    if not t.is_stream:
        yield json.loads(text)
        return
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("data:"):
            line = line[5:].strip()
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # event:/id: lines, [DONE], the raw multi-line error of gemini_stream_midstream_error_503
        if isinstance(obj, dict):
            yield obj


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _wire_usage(t: Transcript) -> dict[str, int | None]:
    """What ``Usage`` must hold for this transcript, computed from its raw usage fields and the docs."""
    payloads = list(_payloads(t))
    if t.provider == "anthropic":
        merged: dict[str, int] = {}  # later usage objects replace earlier ones field by field
        for p in payloads:
            usage = p.get("usage") if p.get("type") != "message_start" else p["message"].get("usage")
            for key, value in (usage or {}).items():
                if _int(value) is not None:
                    merged[key] = value
        read, write = merged.get("cache_read_input_tokens"), merged.get("cache_creation_input_tokens")
        inp = merged["input_tokens"] + (read or 0) + (write or 0)
        return {"input": inp, "output": merged["output_tokens"], "read": read, "write": write, "reasoning": None}
    if t.provider == "gemini":
        meta = [p["usageMetadata"] for p in payloads if "promptTokenCount" in p.get("usageMetadata", {})][-1]
        thoughts = meta.get("thoughtsTokenCount")
        return {
            "input": meta["promptTokenCount"] + meta.get("toolUsePromptTokenCount", 0),
            "output": meta.get("candidatesTokenCount", 0) + (thoughts or 0),
            "read": meta.get("cachedContentTokenCount"),
            "write": None,
            "reasoning": thoughts,
            "wire_total": meta.get("totalTokenCount"),
        }
    if t.provider == "ollama":
        final = [p for p in payloads if p.get("done") is True][-1]
        return {
            "input": final["prompt_eval_count"],
            "output": final["eval_count"],
            "read": None,
            "write": None,
            "reasoning": None,
        }
    usage = [p["usage"] for p in payloads if isinstance(p.get("usage"), dict)][-1]
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    read = prompt_details.get("cached_tokens", usage.get("prompt_cache_hit_tokens"))
    reasoning = completion_details.get("reasoning_tokens")
    return {
        "input": usage["prompt_tokens"],  # already includes cached_tokens
        "output": usage["completion_tokens"],  # already includes reasoning_tokens
        "read": read,
        "write": None,
        # a part never exceeds the whole (OpenRouter sent reasoning 11 > completion 10 in one transcript)
        "reasoning": None if reasoning is None else min(reasoning, usage["completion_tokens"]),
        "wire_total": usage.get("total_tokens"),
    }


def _usage(t: Transcript, pieces: list[bytes] | None = None) -> Usage:
    response = decode_transcript(dialect_for(t), t, pieces)
    assert response.usage is not None, t.name
    return response.usage


def check_invariants(usage: Usage, where: str) -> None:
    assert usage.input_tokens is not None and usage.output_tokens is not None, where
    assert (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0) <= usage.input_tokens, where
    assert (usage.reasoning_tokens or 0) <= usage.output_tokens, where
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens, where


def test_the_corpus_has_usage_with_cache_and_reasoning_fields_for_every_dialect() -> None:
    names = {t.name for t in WITH_USAGE}
    assert len(WITH_USAGE) == 25
    raw = {t.name: t.wire for t in WITH_USAGE}
    assert {n for n in names if b"cache_read_input_tokens" in raw[n]} == {
        "anthropic_nonstream_parallel_tool_use",
        "anthropic_stream_max_tokens_partial_tool",
        "anthropic_stream_thinking_live",
        "anthropic_stream_tool_use_sdk",
    }
    assert {n for n in names if b"thoughtsTokenCount" in raw[n]} == {
        "gemini_nonstream",
        "gemini_stream_function_call",
        "gemini_vertex_stream_partial_args_parallel",
    }
    assert {n for n in names if b"reasoning_tokens" in raw[n] or b"cached_tokens" in raw[n]} >= {
        "azure_chat_stream_usage",
        "deepseek_chat_stream_reasoning_emoji",
        "openai_chat_stream_tool_call_obfuscation",
        "openrouter_chat_stream_error_chunk",
    }


@pytest.mark.parametrize("t", WITH_USAGE, ids=lambda t: t.name)
def test_invariants_hold_on_every_transcript_with_usage(t: Transcript) -> None:
    check_invariants(_usage(t), t.name)


@pytest.mark.parametrize("t", WITH_USAGE, ids=lambda t: t.name)
def test_numbers_match_the_raw_wire_fields(t: Transcript) -> None:
    want = _wire_usage(t)
    for pieces in (None, split_bytes(t.wire)):
        usage = _usage(t, pieces)
        got = {
            "input": usage.input_tokens,
            "output": usage.output_tokens,
            "read": usage.cache_read_tokens,
            "write": usage.cache_write_tokens,
            "reasoning": usage.reasoning_tokens,
        }
        assert got == {k: v for k, v in want.items() if k != "wire_total"}, t.name
        assert (usage.input_tokens, usage.output_tokens) == tuple(t.expected["usage"].values()), t.name
        if want.get("wire_total") is not None:
            # the provider's own total agrees with input + output in this meaning (Gemini's includes thoughts)
            assert usage.total_tokens == want["wire_total"], t.name


@pytest.mark.parametrize(
    ("name", "inp", "output", "reasoning"),
    [
        ("gemini_stream_function_call", 29, 212, 202),
        ("gemini_vertex_stream_partial_args_parallel", 26, 155, 132),
        ("gemini_nonstream", 9, 43, 34),
        ("azure_chat_stream_usage", 15, 78, 64),
        ("deepseek_chat_stream_reasoning_emoji", 6, 212, 198),
        ("anthropic_stream_thinking_live", 43, 282, None),
        ("openrouter_chat_stream_error_chunk", 43, 10, 10),  # the wire says reasoning 11 of 10 completion tokens
    ],
)
def test_reasoning_is_inside_output_on_every_dialect(name: str, inp: int, output: int, reasoning: int | None) -> None:
    usage = _usage(load(name))
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (inp, output, reasoning)


# --- cache tokens: the transcripts report none (all zero), so these turns carry real numbers ------------------

_CACHED = {"input_tokens": 5, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200}
_CACHED_USAGE = Usage(
    input_tokens=1205, output_tokens=50, total_tokens=1255, cache_read_tokens=1000, cache_write_tokens=200
)


def _anthropic_stream(start_usage: dict[str, int], delta_usage: dict[str, int]) -> bytes:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": "m", "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta_usage},
        {"type": "message_stop"},
    ]
    return b"".join(sse_events(events).chunks)


def _anthropic_body(usage: dict[str, int]) -> bytes:
    body = {"type": "message", "model": "m", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}
    return json.dumps({**body, "usage": usage}).encode()


def test_anthropic_cache_reads_and_writes_are_inside_input_tokens() -> None:
    body = anthropic_body(_anthropic_body({**_CACHED, "output_tokens": 50})).usage
    assert body == _CACHED_USAGE
    uncached = (body.input_tokens or 0) - (body.cache_read_tokens or 0) - (body.cache_write_tokens or 0)
    assert uncached == _CACHED["input_tokens"]  # the wire's input_tokens is the uncached part


@pytest.mark.parametrize(
    "delta_usage",
    [
        {"output_tokens": 50},  # older models: message_delta carries only the cumulative output
        {**_CACHED, "output_tokens": 50},  # newer models repeat the input counts there
    ],
    ids=["output-only-delta", "repeated-input-counts"],
)
def test_anthropic_stream_folds_to_the_same_usage_as_the_body(delta_usage: dict[str, int]) -> None:
    wire = _anthropic_stream({**_CACHED, "output_tokens": 1}, delta_usage)
    for pieces in ([wire], split_bytes(wire)):
        streamed = fold(feed_all(AnthropicStreamDecoder, pieces))
        assert streamed.usage == _CACHED_USAGE
    assert anthropic_body(_anthropic_body({**_CACHED, "output_tokens": 50})).usage == streamed.usage


async def test_anthropic_provider_reports_the_whole_prompt(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(_anthropic_body({**_CACHED, "output_tokens": 50})))
    stream_wire = _anthropic_stream({**_CACHED, "output_tokens": 1}, {"output_tokens": 50})
    upstream.add(Reply.raw(stream_wire, content_type="text/event-stream"))
    request = ChatRequest(messages=[Message.user("Hello")], max_tokens=64)
    async with AnthropicProvider("claude-test", base_url=upstream.url(), api_key="sk-ant-test") as p:
        body = await p.chat(request)
        async with p.chat_stream(request) as stream:
            _ = [e async for e in stream]
        streamed: ChatResponse = stream.response()
    assert body.usage == streamed.usage == _CACHED_USAGE


def _gemini_chunk(text: str, usage: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage}


_GEMINI_USAGE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 1024,
    "toolUsePromptTokenCount": 30,
    "candidatesTokenCount": 7,
    "thoughtsTokenCount": 90,
    "totalTokenCount": 1327,
}


def test_gemini_cached_content_is_inside_the_prompt_and_thoughts_inside_the_output() -> None:
    chunks = [
        _gemini_chunk("Hel", {"promptTokenCount": 1200, "totalTokenCount": 1200}),
        _gemini_chunk("lo", _GEMINI_USAGE, "STOP"),
    ]
    wire = b"".join(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks)
    streamed = fold(feed_all(GeminiStreamDecoder, [wire])).usage
    body = gemini_body(json.dumps(_gemini_chunk("Hello", _GEMINI_USAGE, "STOP")).encode()).usage
    want = Usage(input_tokens=1230, output_tokens=97, total_tokens=1327, cache_read_tokens=1024, reasoning_tokens=90)
    assert streamed == body == want
    assert want.total_tokens == _GEMINI_USAGE["totalTokenCount"]  # Gemini's own total agrees


def test_openai_cached_tokens_stay_inside_prompt_tokens() -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920},
            "completion_tokens_details": {"reasoning_tokens": 256},
        },
    }
    usage = OpenAIChatDialect().decode_body(json.dumps(body).encode()).usage
    assert usage == Usage(
        input_tokens=2006, output_tokens=300, total_tokens=2306, cache_read_tokens=1920, reasoning_tokens=256
    )
    assert usage is not None
    check_invariants(usage, "openai")


def test_cohere_cached_tokens_are_a_part_of_the_processed_input() -> None:
    usage = cohere_usage(
        {
            "billed_units": {"input_tokens": 5, "output_tokens": 2},
            "tokens": {"input_tokens": 70, "output_tokens": 2},
            "cached_tokens": 16,
        }
    )
    assert usage == Usage(input_tokens=70, output_tokens=2, cache_read_tokens=16)
    check_invariants(usage, "cohere")
