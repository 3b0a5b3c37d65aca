"""How a turn ends (issue 7): a turn that made tool calls is ``TOOL_CALLS`` on every dialect, whatever
stop value the provider sends (item 7); a stream that ends after its finish chunk but without its
terminator is complete (item 10); and when Gemini's ``Done`` comes (item 16c). Streams are folded and
compared with the matching non-stream body (one accumulator for both)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from llmrelay import (
    ChatRequest,
    ChatResponse,
    Done,
    FinishReason,
    Message,
    OpenAIProvider,
    ProtocolError,
    fold,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import sse_events
from llmrelay.testing.cohere_kit import KIT as COHERE
from llmrelay.testing.gemini_kit import KIT as GEMINI
from llmrelay.testing.ollama_kit import KIT as OLLAMA
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wire import anthropic, cohere, gemini, ollama, openai_chat

from wire_helpers import check_stream_laws, feed_all, split_bytes

CALLS = [("c1", "get_weather", {"city": "Oslo"}), ("c2", "get_time", {"tz": "CET"})]


def _wire(reply: Reply) -> bytes:
    return b"".join(reply.chunks)


def _same(response: ChatResponse) -> ChatResponse:
    return dataclasses.replace(response, model=None)


def _stream(make_decoder: Callable[[], Any], wire: bytes) -> ChatResponse:
    events = feed_all(make_decoder, [wire])
    check_stream_laws(events)
    return fold(events)


# --- item 7: tool calls + a stop value -> TOOL_CALLS ------------------------------------------------


@pytest.mark.parametrize(
    ("kit", "module", "raw"),
    [(GEMINI, gemini, "STOP"), (OLLAMA, ollama, "stop")],
    ids=["gemini", "ollama"],
)
def test_a_tool_call_turn_that_says_stop_is_tool_calls(kit: Any, module: Any, raw: str) -> None:
    decoder = module.GeminiStreamDecoder if module is gemini else module.OllamaStreamDecoder
    streamed = _stream(decoder, _wire(kit.tool_calls(CALLS, stream=True)))
    body = module.decode_body(_wire(kit.tool_calls(CALLS, stream=False)))
    for response in (streamed, body):
        assert [c.name for c in response.tool_calls] == ["get_weather", "get_time"]
        assert response.finish_reason is FinishReason.TOOL_CALLS
        assert response.finish_reason_raw == raw
    assert _same(streamed) == _same(body)


def _openai_stop_with_calls(stream: bool) -> bytes:
    """A compatible server (vLLM, llama.cpp) that says ``stop`` after tool calls."""
    wire = _wire(OPENAI.tool_calls(CALLS, stream=stream))
    changed = re.sub(rb'"finish_reason":\s*"tool_calls"', b'"finish_reason": "stop"', wire)
    assert changed != wire
    return changed


def test_an_openai_compatible_stop_after_tool_calls_is_tool_calls() -> None:
    streamed = _stream(openai_chat.OpenAIChatStreamDecoder, _openai_stop_with_calls(True))
    body = openai_chat.decode_body(_openai_stop_with_calls(False))
    for response in (streamed, body):
        assert len(response.tool_calls) == 2
        assert (response.finish_reason, response.finish_reason_raw) == (FinishReason.TOOL_CALLS, "stop")
    assert _same(streamed) == _same(body)


def test_cohere_complete_after_tool_calls_is_tool_calls() -> None:
    def complete(stream: bool) -> bytes:
        return _wire(COHERE.tool_calls(CALLS, stream=stream)).replace(b'"TOOL_CALL"', b'"COMPLETE"')

    assert b"COMPLETE" in complete(True) and b"COMPLETE" in complete(False)
    streamed = _stream(cohere.CohereStreamDecoder, complete(True))
    body = cohere.decode_body(complete(False))
    for response in (streamed, body):
        assert (response.finish_reason, response.finish_reason_raw) == (FinishReason.TOOL_CALLS, "COMPLETE")
    assert _same(streamed) == _same(body)


def test_anthropic_end_turn_after_tool_use_is_tool_calls() -> None:
    reply = sse_events(
        [
            {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
            },
            {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
            {"type": "message_stop"},
        ]
    )
    response = _stream(anthropic.AnthropicStreamDecoder, _wire(reply))
    assert (response.finish_reason, response.finish_reason_raw) == (FinishReason.TOOL_CALLS, "end_turn")


@pytest.mark.parametrize("module", [gemini, ollama], ids=["gemini", "ollama"])
def test_stop_without_tool_calls_stays_stop_and_length_stays_length(module: Any) -> None:
    kit = GEMINI if module is gemini else OLLAMA
    assert module.decode_body(_wire(kit.text("hi", stream=False))).finish_reason is FinishReason.STOP
    assert module.decode_body(_wire(kit.length("cut", stream=False))).finish_reason is FinishReason.LENGTH


# --- item 10: the end of an OpenAI-style stream without [DONE] ---------------------------------------

TEXT = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
]
FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def _sse(*chunks: Any) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)


@pytest.mark.parametrize(
    ("wire", "usage"),
    [
        (_sse(*TEXT, FINISH), None),
        (_sse(*TEXT, FINISH, USAGE), 7),
        (_sse(*TEXT, FINISH) + _sse(USAGE)[:-20], None),  # cut inside the usage chunk
        (_sse(*TEXT, FINISH) + b"data: [DONE]", None),  # [DONE] without its blank line
    ],
    ids=["finish-only", "finish-and-usage", "usage-cut", "done-unterminated"],
)
def test_a_stream_that_ends_after_its_finish_chunk_is_complete(wire: bytes, usage: int | None) -> None:
    for pieces in ([wire], split_bytes(wire)):
        events = feed_all(openai_chat.OpenAIChatStreamDecoder, pieces)
        check_stream_laws(events)
        response = fold(events)
        assert response.error is None, response.error
        assert (response.text, response.finish_reason) == ("Hello", FinishReason.STOP)
        assert (response.usage.total_tokens if response.usage else None) == usage


def test_a_stream_that_ends_before_any_finish_reason_is_still_truncated() -> None:
    for wire in (_sse(*TEXT), _sse(*TEXT, USAGE), _sse(*TEXT) + b'data: {"choices": [{"index": 0, "finish_re'):
        done = feed_all(openai_chat.OpenAIChatStreamDecoder, [wire])[-1]
        assert isinstance(done, Done) and isinstance(done.error, ProtocolError)
        assert "[DONE]" in str(done.error) or "partial event" in str(done.error)


async def test_a_stream_without_done_ends_normally_end_to_end(upstream: FakeUpstream) -> None:
    upstream.add(Reply.sse([*TEXT, FINISH]))
    async with (
        OpenAIProvider("m", base_url=upstream.url("/v1"), api_key="sk-test-000000000000") as p,
        p.chat_stream(ChatRequest(messages=[Message.user("hi")])) as stream,
    ):
        response = await stream.until_done()
    assert response.error is None and response.text == "Hello" and response.finish_reason is FinishReason.STOP


# --- item 16c: Gemini's Done waits for the end of the body --------------------------------------------


def _gemini_chunk(text: str, finish: str | None, usage: int) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    payload = {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": usage}}
    return f"data: {json.dumps(payload)}\r\n\r\n".encode()


def test_gemini_streams_that_repeat_stop_on_every_chunk_are_decoded_whole() -> None:
    """Why Done waits for the end of the body: the API has sent finishReason STOP (with usage) on every
    chunk, so the chunk with a finishReason is not known to be the last one."""
    decoder = gemini.GeminiStreamDecoder()
    events = []
    for i, piece in enumerate(("The ", "whole ", "answer")):
        events += decoder.feed(_gemini_chunk(piece, "STOP", i + 1))
        assert not any(isinstance(e, Done) for e in events)
    events += decoder.close()
    check_stream_laws(events)
    response = fold(events)
    assert response.text == "The whole answer" and response.finish_reason is FinishReason.STOP
    assert response.usage is not None and response.usage.output_tokens == 3


def test_gemini_an_error_after_the_stop_chunk_wins() -> None:
    wire = _gemini_chunk("Okay", "STOP", 1) + b'{\n  "error": {"code": 503, "status": "UNAVAILABLE"}\n}\n'
    response = fold(feed_all(gemini.GeminiStreamDecoder, [wire]))
    assert response.finish_reason is FinishReason.ERROR and response.error is not None
    assert response.error.status == 503
