"""Every Anthropic transcript decodes to its expected value: whole, one byte at a time, and at random split
points (hypothesis); plus the decoder's own laws: a fold of a stream equals the decoded non-stream body,
truncation is an error, and garbage never escapes as anything but an error event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import (
    AuthError,
    ChatResponse,
    Done,
    FinishReason,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ReasoningDelta,
    ReasoningPart,
    RequestTimeout,
    ServerError,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    fold,
)
from llmrelay.testing.anthropic_kit import KIT, sse_events
from llmrelay.wire.anthropic import AnthropicDialect, AnthropicStreamDecoder, decode_body, decode_error

from wire_helpers import (
    Transcript,
    assert_matches_expected,
    check_stream_laws,
    decode_transcript,
    feed_all,
    load,
    split_at,
    split_bytes,
    transcripts,
)

CASES = transcripts(["anthropic"])
DIALECT = AnthropicDialect()


def test_the_corpus_has_every_anthropic_transcript() -> None:
    assert len(CASES) == 11
    assert {t.provider for t in CASES} == {"anthropic"}


@pytest.mark.parametrize("t", CASES, ids=lambda t: t.name)
def test_whole(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(DIALECT, t), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
def test_byte_by_byte(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(DIALECT, t, split_bytes(t.wire)), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.integers(min_value=1, max_value=30_000), max_size=40))
def test_random_splits(t: Transcript, points: list[int]) -> None:
    cuts = [p % max(1, len(t.wire)) for p in points]
    assert_matches_expected(decode_transcript(DIALECT, t, split_at(t.wire, cuts)), t)


# --- what the expected blocks do not check ------------------------------------------------------------------


def _stream(name: str) -> list[Any]:
    events = feed_all(AnthropicStreamDecoder, [load(name).wire])
    check_stream_laws(events)
    return events


def test_thinking_signature_is_kept_for_the_next_turn() -> None:
    events = _stream("anthropic_stream_thinking_live")
    signatures = [e for e in events if isinstance(e, ReasoningDelta) and e.signature]
    assert len(signatures) == 1 and signatures[0].text == ""
    response = fold(events)
    assert len(response.reasoning_parts) == 1
    part = response.reasoning_parts[0]
    assert part.text == response.reasoning and part.signature == signatures[0].signature
    assert part.signature is not None and part.signature.startswith("EvMCCkYICxgCKkCHP2cSuEdcJK")
    assert response.message.content[0] == part


def test_stream_metadata_usage_and_cache_tokens() -> None:
    response = fold(_stream("anthropic_stream_tool_use_sdk"))
    assert response.model == "claude-sonnet-4-20250514"
    assert response.usage == Usage(input_tokens=377, output_tokens=65, cache_read_tokens=0, cache_write_tokens=0)


def test_tool_calls_are_numbered_from_zero_in_block_order() -> None:
    events = _stream("anthropic_stream_tool_use_docs")
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")]
    deltas = "".join(e.arguments_delta for e in events if isinstance(e, ToolCallDelta))
    end = next(e for e in events if isinstance(e, ToolCallEnd))
    assert end.call.arguments_raw == deltas
    # ToolCallEnd arrives at content_block_stop, before message_delta / Done.
    assert events.index(end) == len(events) - 2


def test_max_tokens_mid_tool_keeps_the_raw_text() -> None:
    response = fold(_stream("anthropic_stream_max_tokens_partial_tool"))
    (call,) = response.tool_calls
    assert call.arguments is None and call.arguments_raw.endswith('"Filing taxes')
    assert response.finish_reason is FinishReason.LENGTH


def test_in_stream_error_is_typed() -> None:
    events = _stream("anthropic_stream_error_overloaded_docs")
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR
    assert isinstance(done.error, OverloadedError) and done.error.retryable
    assert done.error.error_type == "overloaded_error" and done.error.status is None


def test_error_after_output_keeps_the_partial_output() -> None:
    wire = load("anthropic_stream_text_docs").wire
    cut = wire.index(b"event: content_block_stop")
    error = b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Internal"}}\n\n'
    events = feed_all(AnthropicStreamDecoder, [wire[:cut] + error])
    check_stream_laws(events)
    response = fold(events)
    assert response.text == "Hello!" and isinstance(response.error, ServerError)
    assert response.finish_reason is FinishReason.ERROR and response.usage is not None


def test_a_plain_text_error_event_is_a_provider_error() -> None:
    events = feed_all(AnthropicStreamDecoder, [b"event: error\ndata: upstream overloaded\n\n"])
    check_stream_laws(events)
    done = events[-1]
    assert isinstance(done, Done) and type(done.error) is ProviderError
    assert done.error.message == "upstream overloaded"


def _stop_reason_received(wire: bytes) -> int:
    """The length of the prefix that holds the whole ``message_delta`` event carrying ``stop_reason``."""
    start = wire.index(b'"stop_reason":', wire.index(b"event: message_delta"))
    return wire.index(b"\n\n", start) + 2


@pytest.mark.parametrize("name", [t.name for t in CASES if t.is_stream and t.expected["error"] is None])
def test_truncated_before_the_stop_reason_is_an_error_never_a_success(name: str) -> None:
    t = load(name)
    complete = _stop_reason_received(t.wire)
    for cut in [*range(0, complete, max(1, complete // 40)), complete - 1]:
        events = feed_all(AnthropicStreamDecoder, [t.wire[:cut]])
        check_stream_laws(events)
        done = events[-1]
        assert isinstance(done, Done) and isinstance(done.error, ProtocolError), (name, cut)
    for cut in range(complete, len(t.wire) + 1):
        # Once the message_delta with stop_reason has arrived the answer is complete, message_stop or not.
        assert_matches_expected(fold(feed_all(AnthropicStreamDecoder, [t.wire[:cut]])), t)


def test_a_stream_that_ends_before_any_stop_reason_names_message_stop() -> None:
    wire = load("anthropic_stream_text_docs").wire
    before_delta = wire[: wire.index(b"event: message_delta")]
    done = feed_all(AnthropicStreamDecoder, [before_delta])[-1]
    assert isinstance(done, Done) and isinstance(done.error, ProtocolError)
    assert "message_stop" in str(done.error)


def test_a_stream_without_message_stop_ends_normally_after_the_stop_reason() -> None:
    """Regression (issue 7, item 10): EOF after message_delta(stop_reason) was reported as a truncation."""
    wire = load("anthropic_stream_tool_use_docs").wire
    events = feed_all(AnthropicStreamDecoder, split_bytes(wire[: wire.index(b"event: message_stop")]))
    check_stream_laws(events)
    response = fold(events)
    assert response.error is None and response.finish_reason is FinishReason.TOOL_CALLS
    assert response.usage is not None and response.usage.output_tokens == 89


def test_trailing_bytes_after_message_stop_are_ignored() -> None:
    wire = load("anthropic_stream_text_docs").wire + b"event: content_block_delta\ndata: {garbage\n\n"
    events = feed_all(AnthropicStreamDecoder, [wire])
    check_stream_laws(events)
    assert fold(events).text == "Hello!" and fold(events).error is None


def test_unknown_events_blocks_and_server_tools_are_skipped() -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 3, "output_tokens": 1}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"query": "x"}'},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
        },
        {"type": "content_block_stop", "index": 2},
        {"type": "brand_new_event", "whatever": 1},
        {"type": "content_block_start", "index": 3, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 3, "delta": {"type": "citations_delta", "citation": {"type": "x"}}},
        {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "found"}},
        {"type": "content_block_stop", "index": 3},
        {"type": "message_delta", "delta": {"stop_reason": "pause_turn"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    wire = b"".join(sse_events(events).chunks)
    out = feed_all(AnthropicStreamDecoder, [wire])
    check_stream_laws(out)
    assert [e for e in out if not isinstance(e, Done)] == [
        ReasoningDelta("", redacted="EmwKAhgBEgy"),
        TextDelta("found"),
    ]
    response = fold(out)
    assert response.reasoning_parts == (ReasoningPart(text="", redacted="EmwKAhgBEgy"),)
    assert response.finish_reason is FinishReason.OTHER and response.finish_reason_raw == "pause_turn"
    assert response.usage == Usage(input_tokens=3, output_tokens=9)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("model_context_window_exceeded", FinishReason.LENGTH),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("pause_turn", FinishReason.OTHER),
        ("something_new", FinishReason.OTHER),
    ],
)
def test_stop_reasons(raw: str, reason: FinishReason) -> None:
    body = {"type": "message", "content": [], "stop_reason": raw, "usage": {"input_tokens": 1, "output_tokens": 1}}
    response = decode_body(json.dumps(body).encode())
    assert response.finish_reason is reason and response.finish_reason_raw == raw


def test_message_delta_input_tokens_override_message_start() -> None:
    # anthropic_stream_thinking_live repeats input_tokens in message_delta; a different value there wins,
    # field by field, and the cache read kept from message_start is added to it (Usage.input_tokens is
    # the whole prompt).
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1}},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"input_tokens": 12, "output_tokens": 7},
        },
        {"type": "message_stop"},
    ]
    wire = b"".join(sse_events(events).chunks)
    assert fold(feed_all(AnthropicStreamDecoder, [wire])).usage == Usage(
        input_tokens=16, output_tokens=7, cache_read_tokens=4
    )


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400))
def test_fuzz_garbage_is_an_error_event_never_an_exception(data: bytes) -> None:
    events = feed_all(AnthropicStreamDecoder, [data])
    check_stream_laws(events)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzz_non_stream_body(data: bytes) -> None:
    response = decode_body(data)
    assert isinstance(response, ChatResponse)


# --- non-streaming is a fold of the stream -------------------------------------------------------------------


def _comparable(r: ChatResponse) -> tuple[Any, ...]:
    calls = [(c.id, c.name, None if c.arguments is None else dict(c.arguments)) for c in r.tool_calls]
    return (r.text, r.reasoning, calls, r.finish_reason, r.finish_reason_raw, r.usage, r.model, r.reasoning_parts)


@pytest.mark.parametrize("stream_name", ["anthropic_stream_thinking_live", "anthropic_stream_tool_use_sdk"])
def test_fold_of_stream_equals_the_matching_non_stream_body(stream_name: str) -> None:
    """Build the ``message`` body the API would have returned for the same turn, and decode it."""
    events = _stream(stream_name)
    streamed = fold(events)
    content: list[dict[str, Any]] = []
    for part in streamed.reasoning_parts:
        content.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    if streamed.text:
        content.append({"type": "text", "text": streamed.text})
    for call in streamed.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    usage = streamed.usage
    assert usage is not None and usage.input_tokens is not None
    # the wire's input_tokens is the uncached part only; Usage.input_tokens includes the cache counts
    uncached = usage.input_tokens - (usage.cache_read_tokens or 0) - (usage.cache_write_tokens or 0)
    body = {
        "model": streamed.model,
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": streamed.finish_reason_raw,
        "stop_sequence": None,
        "usage": {
            "input_tokens": uncached,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
            "output_tokens": usage.output_tokens,
        },
    }
    assert _comparable(decode_body(json.dumps(body).encode())) == _comparable(streamed)


@pytest.mark.parametrize("kind", ["text", "tool_calls", "reasoning", "length"])
def test_kit_stream_and_body_fold_to_the_same_response(kind: str) -> None:
    def reply(stream: bool) -> bytes:
        if kind == "text":
            r = KIT.text("Hello there", stream=stream)
        elif kind == "tool_calls":
            r = KIT.tool_calls([("toolu_1", "a", {"x": 1}), (None, "b", {"y": [1, 2]})], stream=stream)
        elif kind == "reasoning":
            r = KIT.reasoning("hmm, let me think", "42", stream=stream)
        else:
            r = KIT.length("cut off", stream=stream)
        return b"".join(r.chunks)

    streamed = fold(feed_all(AnthropicStreamDecoder, [reply(True)]))
    assert _comparable(decode_body(reply(False))) == _comparable(streamed)
    assert streamed.error is None
    if kind == "reasoning":
        assert streamed.reasoning_parts == (ReasoningPart("hmm, let me think", "EqQBCgIYAhIMkitSignature=="),)


def test_non_stream_parallel_tool_use() -> None:
    response = decode_body(load("anthropic_nonstream_parallel_tool_use").wire)
    assert [c.arguments for c in response.tool_calls] == [
        {"name": "Alice"},
        {"name": "Bob"},
        {"name": "Charlie"},
        {"name": "Daisy"},
    ]
    assert response.usage == Usage(input_tokens=423, output_tokens=202, cache_read_tokens=0, cache_write_tokens=0)
    assert response.model == "claude-haiku-4-5-20251001"


def test_non_stream_error_body_and_bad_json() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert isinstance(decode_body(body).error, OverloadedError)
    assert isinstance(decode_body(b"<html>").error, ProtocolError)
    assert isinstance(decode_body(b'{"type":"message"}').error, ProtocolError)


# --- error classification -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "etype", "cls"),
    [
        (400, "invalid_request_error", InvalidRequestError),
        (401, "authentication_error", AuthError),
        (402, "billing_error", QuotaExceededError),
        (403, "permission_error", AuthError),
        (404, "not_found_error", ModelNotFoundError),
        (413, "request_too_large", InvalidRequestError),
        (429, "rate_limit_error", RateLimitError),
        (500, "api_error", ServerError),
        (504, "timeout_error", ServerError),
        (529, "overloaded_error", OverloadedError),
        # The type decides, whatever the status says...
        (400, "billing_error", QuotaExceededError),
        (500, "overloaded_error", OverloadedError),
        # ...except the documented catch-alls, where a known status is more precise.
        (408, "invalid_request_error", RequestTimeout),
        (503, "api_error", OverloadedError),
        (418, "invalid_request_error", InvalidRequestError),
        # Unknown types fall back to the status.
        (429, "brand_new_error", RateLimitError),
        (502, "brand_new_error", ServerError),
    ],
)
def test_error_types_then_status(status: int, etype: str, cls: type[Exception]) -> None:
    body = json.dumps({"type": "error", "error": {"type": etype, "message": "m"}, "request_id": "req_1"}).encode()
    error = decode_error(status, {}, body)
    assert type(error) is cls
    assert error.status == status and error.error_type == etype and error.code == etype
    assert error.request_id == "req_1"


def test_prompt_too_long_has_no_structured_code_so_stays_invalid_request() -> None:
    message = "prompt is too long: 210000 tokens > 200000 maximum"
    body = json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": message}}).encode()
    assert type(decode_error(400, {}, body)) is InvalidRequestError


def test_retry_after_and_non_json_bodies() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    assert decode_error(429, {"retry-after": "12"}, body).retry_after == 12.0
    html = decode_error(413, {}, b"<html><body>413 Request Entity Too Large</body></html>")
    assert type(html) is InvalidRequestError and "413" in html.message
    assert type(decode_error(529, {}, b"")) is OverloadedError
