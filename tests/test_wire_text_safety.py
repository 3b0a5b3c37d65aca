"""What the decoders make of awkward text (issue 7): UTF-16 surrogate pairs split across two events
(item 13), bare JSON error objects inside an event stream (item 16a), and invalid UTF-8 in an Ollama
stream (item 16b). Every dialect, fed whole and byte by byte (and, for surrogates, any text at random
splits); end to end through real sockets where the provider's behaviour is the point."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import (
    ChatRequest,
    Done,
    FinishReason,
    Message,
    OllamaProvider,
    OpenAIProvider,
    OverloadedError,
    ProtocolError,
    ProviderError,
    RateLimitError,
    ReasoningDelta,
    ServerError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    fold,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.wire.anthropic import AnthropicStreamDecoder
from llmrelay.wire.cohere import CohereStreamDecoder
from llmrelay.wire.gemini import GeminiStreamDecoder
from llmrelay.wire.ollama import OllamaStreamDecoder
from llmrelay.wire.ollama import decode_body as ollama_body
from llmrelay.wire.openai_chat import OpenAIChatStreamDecoder
from llmrelay.wire.surrogates import SurrogateJoiner, clean_text

from wire_helpers import check_stream_laws, feed_all, split_at, split_bytes

HIGH, LOW = "\ud83d", "\ude00"  # the two halves of U+1F600 (😀), as JSON escapes decode them


def sse(*payloads: Any, event: bool = False) -> bytes:
    out = []
    for p in payloads:
        head = f"event: {p['type']}\n" if event else ""
        out.append(f"{head}data: {json.dumps(p)}\n\n".encode())  # json.dumps writes lone surrogates as \uXXXX
    return b"".join(out)


def ndjson(*objects: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def openai(*texts: str) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in texts]
    return sse(*chunks, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"data: [DONE]\n\n"


def anthropic(*texts: str) -> bytes:
    deltas = [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in texts]
    return sse(
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *deltas,
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
        event=True,
    )


def gemini(*texts: str) -> bytes:
    chunks = [{"candidates": [{"content": {"parts": [{"text": t}], "role": "model"}}]} for t in texts]
    last = {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]}
    return sse(*chunks, last)


def ollama(*texts: str) -> bytes:
    lines = [{"model": "m", "message": {"role": "assistant", "content": t}, "done": False} for t in texts]
    return ndjson(*lines, {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True})


def cohere(*texts: str) -> bytes:
    deltas = [{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": t}}}} for t in texts]
    return sse(*deltas, {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}, event=True)


DIALECTS: dict[str, tuple[Callable[..., bytes], Callable[[], Any]]] = {
    "openai": (openai, OpenAIChatStreamDecoder),
    "anthropic": (anthropic, AnthropicStreamDecoder),
    "gemini": (gemini, GeminiStreamDecoder),
    "ollama": (ollama, OllamaStreamDecoder),
    "cohere": (cohere, CohereStreamDecoder),
}


def _encodable(events: list[StreamEvent]) -> None:
    for event in events:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            event.text.encode("utf-8")
        elif isinstance(event, ToolCallDelta):
            event.arguments_delta.encode("utf-8")


# --- item 13: split surrogate pairs ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DIALECTS))
@pytest.mark.parametrize(
    ("texts", "want"),
    [
        (("a" + HIGH, LOW + "b"), "a😀b"),  # a pair split across two events
        ((HIGH, LOW), "😀"),
        (("x" + HIGH, "y"), "x\ufffdy"),  # a high surrogate whose pair never comes
        (("x", LOW + "y"), "x\ufffdy"),  # a lone low surrogate
        (("end" + HIGH,), "end\ufffd"),  # held back at the end of the stream
        (("ok 😀 " + HIGH + LOW,), "ok 😀 😀"),  # a pair inside one event
    ],
    ids=["split", "bare-split", "lone-high", "lone-low", "high-at-end", "whole"],
)
def test_surrogates_are_joined_or_replaced(name: str, texts: tuple[str, ...], want: str) -> None:
    build, decoder = DIALECTS[name]
    wire = build(*texts)
    for pieces in ([wire], split_bytes(wire)):
        events = feed_all(decoder, pieces)
        check_stream_laws(events)
        _encodable(events)
        response = fold(events)
        assert response.error is None, response.error
        assert response.text == want
        response.text.encode("utf-8")


def test_reasoning_tool_arguments_and_refusal_are_made_safe_too() -> None:
    reasoning = [{"choices": [{"index": 0, "delta": {"reasoning_content": t}}]} for t in ("think " + HIGH, LOW)]
    refusal = [{"choices": [{"index": 0, "delta": {"refusal": t}}]} for t in ("no " + HIGH, LOW)]
    args = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}}]},
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"e": "' + HIGH}}]}}
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": LOW + '"}'}}]}}]},
    ]
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    events = feed_all(OpenAIChatStreamDecoder, [sse(*reasoning, *refusal, *args, finish) + b"data: [DONE]\n\n"])
    check_stream_laws(events)
    _encodable(events)
    response = fold(events)
    assert response.error is None, response.error
    assert response.reasoning == "think 😀" and response.refusal == "no 😀"
    (call,) = response.tool_calls
    assert call.arguments_raw == '{"e": "😀"}' and call.arguments == {"e": "😀"}


def test_a_reasoning_block_signature_flushes_a_held_surrogate() -> None:
    blocks = sse(
        {"type": "message_start", "message": {"model": "m"}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm" + HIGH}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
        {"type": "message_stop"},
        event=True,
    )
    events = feed_all(AnthropicStreamDecoder, [blocks])
    _encodable(events)
    response = fold(events)
    assert response.reasoning == "hm\ufffd" and response.reasoning_parts[0].signature == "sig"


def test_the_joiner_and_clean_text() -> None:
    joiner = SurrogateJoiner()
    assert [joiner.push("a" + HIGH), joiner.push(LOW + "b"), joiner.push(HIGH), joiner.flush()] == [
        "a",
        "😀b",
        "",
        "\ufffd",
    ]
    assert joiner.flush() == "" and joiner.push("plain") == "plain"
    assert clean_text(HIGH + LOW + LOW + "x" + HIGH) == "😀\ufffdx\ufffd"
    assert clean_text("no surrogates: é😀") == "no surrogates: é😀"


async def test_a_split_pair_streams_as_encodable_text_end_to_end(upstream: FakeUpstream) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in ("Hi " + HIGH, LOW)]
    upstream.add(Reply.sse([*chunks, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]"]))
    async with (
        OpenAIProvider("m", base_url=upstream.url("/v1"), api_key="sk-test-000000000000") as p,
        p.chat_stream(ChatRequest(messages=[Message.user("hi")])) as stream,
    ):
        deltas = [e.text for e in [e async for e in stream] if isinstance(e, TextDelta)]
    assert "".join(deltas) == "Hi 😀" and stream.response().text.encode("utf-8") == "Hi 😀".encode()


_SURROGATE_TEXT = st.text(
    alphabet=st.sampled_from(["a", "é", "😀", "\ud83d", "\ude00", "\udbff", '"', "{", "}"]), max_size=6
)


@settings(max_examples=100, deadline=None)
@given(
    dialect=st.sampled_from(sorted(DIALECTS)),
    texts=st.lists(_SURROGATE_TEXT, min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 2_000), max_size=6),
)
def test_text_with_surrogates_is_always_encodable(dialect: str, texts: list[str], cuts: list[int]) -> None:
    build, decoder = DIALECTS[dialect]
    wire = build(*texts)
    whole = feed_all(decoder, [wire])
    split = feed_all(decoder, split_at(wire, [c % max(1, len(wire)) for c in cuts]))
    for events in (whole, split):
        check_stream_laws(events)
        _encodable(events)
    response = fold(whole)
    assert response.error is None, response.error
    assert response.text == fold(split).text
    # What the decoder made of the text is what a UTF-16 round trip with replacement makes of it.
    want = "".join(texts).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    assert response.text == want


# --- item 16a: bare error objects in an event stream -----------------------------------------------

TEXT_CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n'
RAW_ERROR = b'{"error": {"message": "Upstream model timed out", "code": 504}}\n'
PRETTY_ERROR = b'{\n  "error": {\n    "message": "Upstream model timed out",\n    "code": 504\n  }\n}\n'


@pytest.mark.parametrize(
    "wire",
    [RAW_ERROR, RAW_ERROR.rstrip(b"\n"), PRETTY_ERROR, TEXT_CHUNK + RAW_ERROR, TEXT_CHUNK + PRETTY_ERROR],
    ids=["line", "no-newline", "pretty", "after-text", "pretty-after-text"],
)
def test_openai_a_raw_error_line_is_the_servers_error(wire: bytes) -> None:
    for pieces in ([wire], split_bytes(wire)):
        events = feed_all(OpenAIChatStreamDecoder, pieces)
        check_stream_laws(events)
        done = events[-1]
        assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR
        assert isinstance(done.error, ServerError) and done.error.status == 504
        assert "Upstream model timed out" in str(done.error) and "probably cut" not in str(done.error)


@pytest.mark.parametrize(
    ("wire", "cls", "status"),
    [
        (b'data: {"error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n', OverloadedError, None),
        (b'{"error": {"type": "overloaded_error", "message": "Overloaded"}}\n', OverloadedError, None),
        (b'{"error": {"message": "Overloaded", "code": 429}}\n', RateLimitError, 429),
    ],
    ids=["data-line", "raw-line", "raw-with-status"],
)
def test_anthropic_a_bare_error_object_is_the_servers_error(wire: bytes, cls: type, status: int | None) -> None:
    done = feed_all(AnthropicStreamDecoder, [wire])[-1]
    assert isinstance(done, Done) and isinstance(done.error, cls)
    assert done.error is not None and done.error.status == status and "Overloaded" in str(done.error)


@pytest.mark.parametrize(
    ("wire", "cls"),
    [
        (b'data: {"error": {"message": "slow down", "code": 429}}\n\n', RateLimitError),
        (b'{"error": "gateway exploded"}\n', ProviderError),
        (b'event: error\ndata: {"error": {"message": "bad gateway", "status": 502}}\n\n', ServerError),
    ],
    ids=["data-line", "raw-line", "error-event"],
)
def test_cohere_a_bare_error_object_is_the_servers_error(wire: bytes, cls: type) -> None:
    done = feed_all(CohereStreamDecoder, [wire])[-1]
    assert isinstance(done, Done) and isinstance(done.error, cls) and not isinstance(done.error, ProtocolError)
    assert "probably cut" not in str(done.error)


@pytest.mark.parametrize(
    "decoder", [OpenAIChatStreamDecoder, AnthropicStreamDecoder, CohereStreamDecoder, GeminiStreamDecoder]
)
def test_raw_text_that_never_becomes_json_costs_linear_time(decoder: Callable[[], Any]) -> None:
    """800 KB of lines that each close a bracket but never make JSON: a bounded number of parse tries,
    not one parse of the growing buffer per line (about 100 s before, for Gemini; well under a second now).
    The bound is loose on purpose: it tells linear from quadratic on a loaded machine, it is no speed goal."""
    wire = b"{\n" + b"}x}\n" * 200_000
    started = time.perf_counter()
    done = feed_all(decoder, [wire])[-1]
    assert time.perf_counter() - started < 15.0
    assert isinstance(done, Done) and isinstance(done.error, ProtocolError)


async def test_a_raw_error_line_reaches_the_caller_with_its_message(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(RAW_ERROR, content_type="text/event-stream"))
    async with OpenAIProvider("m", base_url=upstream.url("/v1"), api_key="sk-test-000000000000") as p:
        with pytest.raises(ServerError, match="Upstream model timed out"):
            async with p.chat_stream(ChatRequest(messages=[Message.user("hi")])) as stream:
                await stream.until_done()


# --- item 16b: invalid UTF-8 in an Ollama stream -----------------------------------------------------

BAD = b'{"model":"m","message":{"role":"assistant","content":"caf\xc3"},"done":false}\n'
GOOD = b'{"model":"m","message":{"role":"assistant","content":" ok \xff!"},"done":false}\n'
FINAL = b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":3}\n'


def test_ollama_invalid_utf8_is_replaced_and_the_stream_goes_on() -> None:
    wire = BAD + GOOD + FINAL
    for pieces in ([wire], split_bytes(wire)):
        events = feed_all(OllamaStreamDecoder, pieces)
        check_stream_laws(events)
        response = fold(events)
        assert response.error is None, response.error
        assert response.text == "caf\ufffd ok \ufffd!" and response.finish_reason is FinishReason.STOP
        assert response.usage is not None and response.usage.output_tokens == 3
    body = ollama_body(b'{"model":"m","message":{"role":"assistant","content":"caf\xc3"},"done":true}')
    assert body.error is None and body.text == "caf\ufffd"


def test_the_other_dialects_replace_invalid_utf8_the_same_way() -> None:
    wire = b'data: {"choices": [{"index": 0, "delta": {"content": "caf\xc3"}}]}\n\ndata: [DONE]\n\n'
    assert fold(feed_all(OpenAIChatStreamDecoder, [wire])).text == "caf\ufffd"


async def test_ollama_invalid_utf8_end_to_end(upstream: FakeUpstream) -> None:
    upstream.add(Reply(chunks=(BAD, GOOD, FINAL), content_type="application/x-ndjson"))
    async with (
        OllamaProvider("m", base_url=upstream.url(), api_key_env=None) as p,
        p.chat_stream(ChatRequest(messages=[Message.user("hi")])) as stream,
    ):
        response = await stream.until_done()
    assert response.error is None and response.text == "caf\ufffd ok \ufffd!"
