"""Cohere Chat API v2: request-encoding snapshots (every ChatRequest field encoded or warned), the stream
decoder (whole, byte by byte, random splits), fold(stream) == decode(body), error classification, and
CohereProvider end to end through real sockets against a fake upstream on 127.0.0.1.

No recorded Cohere transcript exists in the corpus; the streams below follow the documented wire format
(https://docs.cohere.com/reference/chat-stream, https://docs.cohere.com/docs/streaming, "Streaming for
tool use"): ``event: <type>`` + ``data: <JSON with the same type>`` per event."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmrelay import (
    AuthError,
    ChatRequest,
    ChatResponse,
    CohereProvider,
    ContentFilterError,
    Done,
    FinishReason,
    ImagePart,
    InvalidRequestError,
    JsonSchemaFormat,
    Message,
    MissingApiKey,
    ModelNotFoundError,
    NetworkError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ReasoningPart,
    ServerError,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolDef,
    fold,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.cohere_kit import KIT
from llmrelay.wire.cohere import CohereDialect, CohereStreamDecoder, decode_body, decode_error, encode_request

from wire_helpers import check_stream_laws, feed_all, split_at, split_bytes

TOOL = ToolDef("get_weather", "Current weather", {"type": "object", "properties": {"location": {"type": "string"}}})
REQ = ChatRequest(messages=[Message.user("Hello")])
KEY = "co-SECRETSECRETSECRET-0123456789"


def enc(request: ChatRequest, *, stream: bool = False) -> tuple[dict[str, Any], list[str]]:
    body, warnings = encode_request(request, model="command-a-03-2025", stream=stream)
    return body, [w.setting for w in warnings]


def body_of(**kw: Any) -> dict[str, Any]:
    body, warnings = enc(ChatRequest(**kw))
    assert not warnings, warnings
    return body


# --- encoding ---------------------------------------------------------------------------------------


def test_minimal() -> None:
    assert body_of(messages=[Message.user("hi")]) == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "hi"}],
    }
    body, _ = enc(REQ, stream=True)
    assert body["stream"] is True
    assert CohereDialect().encode(REQ, model="m", stream=False).path == "/v2/chat"


def test_system_and_sampling_fields() -> None:
    body = body_of(
        messages=[Message.system("sys2"), Message.user("hi")],
        system="sys",
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        stop=["END"],
        seed=42,
    )
    assert body == {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "system", "content": "sys2"},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 50,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "seed": 42,
        "p": 0.9,
    }


def test_images_as_content_items() -> None:
    message = Message.user(
        [
            TextPart("what is this?"),
            ImagePart(data="aGVsbG8=", media_type="image/png"),
            ImagePart(url="https://x/c.jpg", detail="high"),
        ]
    )
    assert body_of(messages=[message])["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
        {"type": "image_url", "image_url": {"url": "https://x/c.jpg", "detail": "high"}},
    ]


def test_tools_calls_plan_and_results() -> None:
    call = ToolCall.create("get_weather", {"location": "Toronto"}, id="get_weather_nsz5zm3w56q3")
    body = body_of(
        messages=[
            Message.user("weather?"),
            Message.assistant([ReasoningPart("I will check the weather.")], [call]),
            Message.tool("get_weather_nsz5zm3w56q3", '{"temperature": 20}'),
        ],
        tools=[TOOL],
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
                "description": "Current weather",
            },
        }
    ]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "tool_plan": "I will check the weather.",
            "tool_calls": [
                {
                    "id": "get_weather_nsz5zm3w56q3",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Toronto"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "get_weather_nsz5zm3w56q3", "content": '{"temperature": 20}'},
    ]


def test_assistant_thinking_goes_back_as_content_items() -> None:
    body = body_of(messages=[Message.assistant([ReasoningPart("hmm"), TextPart("42")])])
    assert body["messages"] == [
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "42"}]}
    ]
    assert body_of(messages=[Message.assistant("plain")])["messages"] == [{"role": "assistant", "content": "plain"}]


def test_tool_choice() -> None:
    other = ToolDef("get_time")
    assert "tool_choice" not in body_of(tools=[TOOL], tool_choice="auto")
    assert body_of(tools=[TOOL], tool_choice="required")["tool_choice"] == "REQUIRED"
    assert body_of(tools=[TOOL], tool_choice="none")["tool_choice"] == "NONE"
    named = body_of(tools=[TOOL, other], tool_choice="get_time")
    assert named["tool_choice"] == "REQUIRED" and [t["function"]["name"] for t in named["tools"]] == ["get_time"]
    with pytest.raises(InvalidRequestError, match="not among the request's tools"):
        enc(ChatRequest(tools=[TOOL], tool_choice="nope"))
    body, warnings = enc(ChatRequest(tool_choice="required"))
    assert "tool_choice" not in body and warnings == ["tool_choice"]


def test_strict_tools_and_parallel_calls() -> None:
    strict = dataclasses.replace(TOOL, strict=True)
    assert body_of(tools=[strict])["strict_tools"] is True
    assert body_of(tools=[dataclasses.replace(TOOL, strict=False)])["strict_tools"] is False
    body, warnings = enc(ChatRequest(tools=[strict, ToolDef("x", strict=False)], parallel_tool_calls=False))
    assert body["strict_tools"] is True and warnings == ["tools.strict", "parallel_tool_calls"]


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert body_of(response_format=JsonSchemaFormat(schema))["response_format"] == {
        "type": "json_object",
        "json_schema": schema,
    }
    assert body_of(response_format="json")["response_format"] == {"type": "json_object"}
    assert body_of(response_format="text")["response_format"] == {"type": "text"}
    _, warnings = enc(ChatRequest(response_format=JsonSchemaFormat(schema, description="d", strict=False)))
    assert warnings == ["response_format.description", "response_format.strict"]


def test_provider_options_are_namespaced() -> None:
    body = body_of(
        provider_options={
            "cohere": {"thinking": {"type": "enabled", "token_budget": 500}, "safety_mode": "STRICT"},
            "ollama": {"think": True},
        }
    )
    assert body["thinking"] == {"type": "enabled", "token_budget": 500} and body["safety_mode"] == "STRICT"
    assert "think" not in body


def test_things_cohere_cannot_send_are_warned() -> None:
    body, warnings = enc(
        ChatRequest(
            messages=[
                Message(role=Message.system("s").role, content=[TextPart("s"), ImagePart(url="https://x/y.png")]),
                Message.user([ReasoningPart("thought"), TextPart("q")]),
                Message.assistant([ReasoningPart("", redacted="opaque")]),
                Message.assistant("", [ToolCall.create("f", {})]),
            ]
        )
    )
    assert warnings == [
        "messages[0].content",
        "messages[1].content",
        "messages[2].content",
        "messages[3].tool_calls[0].id",
    ]
    assert body["messages"][1] == {"role": "user", "content": [{"type": "text", "text": "q"}]}


SAMPLES: dict[str, Any] = {
    "model": "other-model",
    "messages": [Message.user("x")],
    "system": "s",
    "temperature": 0.5,
    "max_tokens": 10,
    "top_p": 0.5,
    "stop": ["x"],
    "tools": [TOOL],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "response_format": "json",
    "seed": 1,
    "provider_options": {"cohere": {"k": 5}},
}


def test_every_request_field_is_encoded_or_warned() -> None:
    fields = {f.name for f in dataclasses.fields(ChatRequest)}
    assert fields == set(SAMPLES), "add a sample for the new ChatRequest field"
    for name, value in SAMPLES.items():
        if name == "model":
            continue
        extra = {"tools": [TOOL]} if name == "tool_choice" else {}
        base, _ = encode_request(ChatRequest(**extra), model="m", stream=False)
        body, warnings = encode_request(ChatRequest(**{name: value, **extra}), model="m", stream=False)
        assert body != base or any(name in w.setting for w in warnings), f"{name} was silently dropped"


# --- decoding ---------------------------------------------------------------------------------------


def sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(
        f"event: {p['type']}\ndata: {json.dumps(p, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
        for p in payloads
    )


START = {
    "id": "5c1f",
    "type": "message-start",
    "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}},
}


def end(finish: str = "COMPLETE", **delta: Any) -> dict[str, Any]:
    usage = {
        "billed_units": {"input_tokens": 5, "output_tokens": 2},
        "tokens": {"input_tokens": 70, "output_tokens": 2},
        "cached_tokens": 16,
    }
    return {"type": "message-end", "delta": {"finish_reason": finish, "usage": usage, **delta}}


def content(kind: str, piece: str, index: int = 0) -> dict[str, Any]:
    return {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: piece}}}}


# The tool-use stream of Cohere's "Streaming for tool use" guide: plan, then a call whose arguments come in
# pretty-printed fragments, indices starting at 1.
TOOL_STREAM = sse(
    START,
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " check."}}},
    {
        "type": "tool-call-start",
        "index": 1,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": "get_weather_nsz5zm3w56q3",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            }
        },
    },
    {
        "type": "tool-call-delta",
        "index": 1,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '{\n    "'}}}},
    },
    {
        "type": "tool-call-delta",
        "index": 1,
        "delta": {"message": {"tool_calls": {"function": {"arguments": "location"}}}},
    },
    {
        "type": "tool-call-delta",
        "index": 1,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '": "Törönto"\n}'}}}},
    },
    {"type": "tool-call-end", "index": 1},
    end("TOOL_CALL"),
)

TEXT_STREAM = sse(
    START,
    {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}},
    content("thinking", "Alice has "),
    content("thinking", "2 sisters. 😊"),
    {"type": "content-end", "index": 0},
    {"type": "content-start", "index": 1, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
    content("text", "Hola", 1),
    content("text", " Juan — ✓", 1),
    {
        "type": "citation-start",
        "index": 0,
        "delta": {"message": {"citations": {"start": 0, "end": 4, "text": "Hola", "sources": []}}},
    },
    {"type": "citation-end", "index": 0},
    {"type": "content-end", "index": 1},
    end("COMPLETE"),
)


def decode(wire: bytes, pieces: list[bytes] | None = None) -> tuple[list[Any], ChatResponse]:
    events = feed_all(CohereStreamDecoder, pieces if pieces is not None else [wire])
    check_stream_laws(events)
    return events, fold(events)


def check_tool_stream(response: ChatResponse) -> None:
    assert response.text == "" and response.reasoning == "I will check."
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("get_weather_nsz5zm3w56q3", "get_weather", {"location": "Törönto"})
    ]
    assert response.finish_reason is FinishReason.TOOL_CALLS and response.finish_reason_raw == "TOOL_CALL"
    assert response.usage is not None and response.usage.input_tokens == 70 and response.usage.cache_read_tokens == 16


def check_text_stream(response: ChatResponse) -> None:
    assert response.text == "Hola Juan — ✓" and response.reasoning == "Alice has 2 sisters. 😊"
    assert response.finish_reason is FinishReason.STOP and response.error is None


def test_tool_stream() -> None:
    events, response = decode(TOOL_STREAM)
    check_tool_stream(response)
    kinds = [type(e).__name__ for e in events if isinstance(e, (ToolCallStart, ToolCallDelta, ToolCallEnd))]
    assert kinds == ["ToolCallStart", "ToolCallDelta", "ToolCallDelta", "ToolCallDelta", "ToolCallEnd"]


def test_thinking_and_text_stream() -> None:
    check_text_stream(decode(TEXT_STREAM)[1])


@pytest.mark.parametrize(("wire", "check"), [(TOOL_STREAM, check_tool_stream), (TEXT_STREAM, check_text_stream)])
def test_byte_by_byte(wire: bytes, check: Any) -> None:
    check(decode(wire, split_bytes(wire))[1])


@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.integers(min_value=1, max_value=5_000), max_size=40), which=st.booleans())
def test_random_splits(points: list[int], which: bool) -> None:
    wire, check = (TOOL_STREAM, check_tool_stream) if which else (TEXT_STREAM, check_text_stream)
    check(decode(wire, split_at(wire, [p % len(wire) for p in points]))[1])


def test_crlf_framing_and_done_marker_are_tolerated() -> None:
    wire = TEXT_STREAM.replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n"
    check_text_stream(decode(wire)[1])


@pytest.mark.parametrize("finish", ["ERROR", "TIMEOUT"])
def test_error_finishes_end_with_an_error(finish: str) -> None:
    events, response = decode(
        sse(START, content("text", "par"), end(finish, error="model crashed" if finish == "ERROR" else None))
    )
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR
    assert isinstance(done.error, ServerError) and done.error.code == finish
    assert response.text == "par" and response.usage is not None
    if finish == "ERROR":
        assert "model crashed" in str(done.error)


def test_a_stream_without_message_end_is_a_protocol_error() -> None:
    cut = TEXT_STREAM[: TEXT_STREAM.index(b"event: message-end")]
    for wire in (cut, cut[:-30]):
        events, response = decode(wire)
        assert isinstance(response.error, ProtocolError)
        assert "message-end" in str(response.error) or "partial event" in str(response.error)
        assert isinstance(events[-1], Done)


@pytest.mark.parametrize("bad", [b"data: {nope}\n\n", b"data: [1]\n\n"])
def test_malformed_events_are_protocol_errors(bad: bytes) -> None:
    _, response = decode(sse(START, content("text", "a")) + bad)
    assert isinstance(response.error, ProtocolError) and response.text == "a"


def test_lower_case_finish_reasons_and_billed_units_fallback() -> None:
    wire = sse(
        START,
        content("text", "x"),
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "max_tokens",
                "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 1}},
            },
        },
    )
    response = decode(wire)[1]
    assert response.finish_reason is FinishReason.LENGTH and response.finish_reason_raw == "max_tokens"
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (3, 1)


def test_non_stream_body() -> None:
    body = {
        "id": "c14c80c3",
        "finish_reason": "TOOL_CALL",
        "message": {
            "role": "assistant",
            "tool_plan": "I will check.",
            "tool_calls": [
                {
                    "id": "get_weather_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Toronto"}'},
                }
            ],
        },
        "usage": {
            "billed_units": {"input_tokens": 5, "output_tokens": 4},
            "tokens": {"input_tokens": 71, "output_tokens": 4},
        },
    }
    response = decode_body(json.dumps(body).encode())
    assert response.reasoning == "I will check." and response.tool_calls[0].arguments == {"location": "Toronto"}
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert isinstance(decode_body(b"not json").error, ProtocolError)
    assert isinstance(decode_body(b'{"message": "oops"}').error, ProtocolError)
    failed = decode_body(b'{"finish_reason":"ERROR","message":{"role":"assistant","content":[]}}')
    assert isinstance(failed.error, ServerError) and failed.finish_reason is FinishReason.ERROR


SCENARIOS = {
    "text": lambda stream: KIT.text("Hello there, world", stream=stream, usage=(12, 4)),
    "tools": lambda stream: KIT.tool_calls(
        [("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_time", {"tz": "CET", "n": [1, 2]})],
        stream=stream,
    ),
    "reasoning": lambda stream: KIT.reasoning("Let me think.", "42", stream=stream),
    "length": lambda stream: KIT.length("cut he", stream=stream),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fold_of_stream_equals_body_decode(name: str) -> None:
    make = SCENARIOS[name]
    events = feed_all(CohereStreamDecoder, [b"".join(make(True).chunks)])
    check_stream_laws(events)
    assert fold(events) == decode_body(b"".join(make(False).chunks))


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (401, AuthError, False),
        (402, QuotaExceededError, False),
        (403, AuthError, False),
        (404, ModelNotFoundError, False),
        (422, InvalidRequestError, False),
        (429, RateLimitError, True),
        (498, ContentFilterError, False),
        (499, ProviderError, True),
        (500, ServerError, True),
        (501, InvalidRequestError, False),
        (503, OverloadedError, True),
        (504, ServerError, True),
    ],
)
def test_error_statuses(status: int, cls: type[Exception], retryable: bool) -> None:
    error = decode_error(status, {"retry-after": "4"}, b'{"id":"req-1","message":"something"}')
    assert type(error) is cls and error.status == status and error.retryable is retryable
    assert error.message == "something" and error.request_id == "req-1" and error.retry_after == 4.0


def test_error_bodies_without_message() -> None:
    assert decode_error(498, {}, b'{"data":"blocked token"}').message == "blocked token"
    assert "Bad gateway" in decode_error(502, {}, b"<html>Bad gateway</html>").message
    assert decode_error(500, {}, b"").message == "Cohere returned an error (HTTP 500)"


# --- end to end -------------------------------------------------------------------------------------


def provider(up: FakeUpstream, **kw: Any) -> CohereProvider:
    return CohereProvider("command-a-03-2025", base_url=up.url(), api_key=KEY, **kw)


async def test_text_stream_end_to_end(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply(
            chunks=tuple(TEXT_STREAM[i : i + 40] for i in range(0, len(TEXT_STREAM), 40)),
            content_type="text/event-stream",
        )
    )
    async with provider(upstream, client_name="tests") as p, p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
        response = stream.response()
    check_stream_laws(events)
    check_text_stream(response)
    assert response.provider == "cohere"
    sent = upstream.requests[0]
    assert sent.path == "/v2/chat" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-client-name"] == "tests" and sent.headers["accept"] == "text/event-stream"
    assert sent.json == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": True,
    }


async def test_text_arrives_incrementally(upstream: FakeUpstream) -> None:
    upstream.add(dataclasses.replace(KIT.text("abcdef", stream=True), chunk_delay=0.05))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        texts = [e.text async for e in stream if isinstance(e, TextDelta)]
    assert texts == ["abc", "def"]


async def test_chat_non_stream(upstream: FakeUpstream) -> None:
    upstream.add(KIT.text("Hi!", stream=False, usage=(3, 1)))
    async with provider(upstream) as p:
        response = await p.chat(REQ)
    assert response.text == "Hi!" and response.usage is not None and response.usage.total_tokens == 4
    assert "stream" not in upstream.requests[0].json


async def test_tool_call_round_trip(upstream: FakeUpstream) -> None:
    upstream.add(Reply(chunks=(TOOL_STREAM,), content_type="text/event-stream"))
    upstream.add(KIT.text("It is 20 degrees.", stream=False))
    async with provider(upstream) as p:
        async with p.chat_stream(ChatRequest(messages=[Message.user("weather?")], tools=[TOOL])) as stream:
            first = await stream.until_done()
        call = first.tool_calls[0]
        follow = ChatRequest(
            messages=[Message.user("weather?"), first.message, Message.tool(call.id or "", "20C")], tools=[TOOL]
        )
        await p.chat(follow)
    check_tool_stream(first)
    sent = upstream.requests[1].json["messages"]
    assert sent[1]["tool_calls"] == [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.arguments_raw}}
    ]
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "20C"}
    assert KIT.sent_tool_result(upstream.requests[1], call.id, "20C")


@pytest.mark.parametrize(
    ("status", "cls"), [(401, AuthError), (404, ModelNotFoundError), (429, RateLimitError), (500, ServerError)]
)
async def test_http_errors(upstream: FakeUpstream, status: int, cls: type[Exception]) -> None:
    upstream.add(KIT.error(status, retry_after=2))
    upstream.add(KIT.error(status, retry_after=2))
    async with provider(upstream) as p:
        with pytest.raises(cls) as info:
            await p.chat(REQ)
        with pytest.raises(cls):
            async with p.chat_stream(REQ):
                pass
    err = info.value
    assert err.status == status and err.provider == "cohere"  # type: ignore[attr-defined]
    if status == 401:
        assert "CO_API_KEY" in str(err)
    if status == 429:
        assert err.retry_after == 2.0  # type: ignore[attr-defined]


async def test_quota_is_402(upstream: FakeUpstream) -> None:
    upstream.add(KIT.quota())
    async with provider(upstream) as p:
        with pytest.raises(QuotaExceededError) as info:
            await p.chat(REQ)
    assert info.value.status == KIT.quota_status and not info.value.retryable


async def test_no_key_in_errors(upstream: FakeUpstream) -> None:
    upstream.add(Reply.json({"id": "x", "message": f"invalid api token {KEY}"}, status=401))
    async with provider(upstream) as p:
        with pytest.raises(AuthError) as info:
            await p.chat(REQ)
        assert KEY not in repr(p)
    err = info.value
    for text in (str(err), repr(err), err.body_excerpt or "", err.message):
        assert KEY not in text and "SECRETSECRET" not in text


async def test_mid_stream_error_keeps_the_partial_output(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply(
            chunks=(sse(START, content("text", "par"), end("ERROR", error="internal failure")),),
            content_type="text/event-stream",
        )
    )
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises(ServerError, match="internal failure"):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    response = stream.response()
    assert response.text == "par" and response.finish_reason is FinishReason.ERROR
    assert response.error is not None and response.error.provider == "cohere"


async def test_stream_cut_midway_is_an_error(upstream: FakeUpstream) -> None:
    upstream.add(Reply(chunks=(TEXT_STREAM,), content_type="text/event-stream", cut_after=len(TEXT_STREAM) // 2))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises((NetworkError, ProtocolError)):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    assert isinstance(events[-1], Done) and events[-1].error is not None


async def test_clean_eof_without_message_end_is_a_protocol_error(upstream: FakeUpstream) -> None:
    upstream.add(Reply(chunks=(sse(START, content("text", "a")),), content_type="text/event-stream"))
    async with provider(upstream) as p:
        with pytest.raises(ProtocolError, match="message-end"):
            async with p.chat_stream(REQ) as stream:
                await stream.until_done()


async def test_breaking_out_early_closes_the_connection(upstream: FakeUpstream) -> None:
    events = [START] + [content("text", f"t{i}") for i in range(200)] + [end()]
    upstream.add(Reply(chunks=tuple(sse(e) for e in events), content_type="text/event-stream", chunk_delay=0.02))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await upstream.wait_disconnect(within=3.0)
    assert upstream.disconnects == 1 and upstream.completed == 0


async def test_list_models_follows_pages(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply.json(
            {
                "models": [{"name": "command-a-03-2025", "endpoints": ["chat"], "finetuned": False}],
                "next_page_token": "p2",
            }
        )
    )
    upstream.add(Reply.json({"models": [{"name": "my-ft", "endpoints": ["chat"], "finetuned": True}]}))
    async with provider(upstream) as p:
        models = await p.list_models()
    assert [(m.id, m.owned_by) for m in models] == [("command-a-03-2025", "cohere"), ("my-ft", None)]
    first, second = upstream.requests
    assert (
        first.method == "GET"
        and first.path == "/v1/models"
        and first.query == {"endpoint": "chat", "page_size": "1000"}
    )
    assert second.query["page_token"] == "p2" and first.headers["authorization"] == f"Bearer {KEY}"


def test_key_and_url_resolution(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    with pytest.raises(MissingApiKey, match="CO_API_KEY"):
        CohereProvider("m")
    monkeypatch.setenv("COHERE_API_KEY", "fallback-key-1234")
    p = CohereProvider("m")
    assert p._auth_headers() == {"authorization": "Bearer fallback-key-1234"} and p.base_url == "https://api.cohere.com"
    monkeypatch.setenv("CO_API_KEY", "primary-key-1234")
    monkeypatch.setenv("CO_API_URL", "https://cohere.example.internal/")
    p = CohereProvider("m")
    assert p._auth_headers()["authorization"] == "Bearer primary-key-1234"
    assert p.base_url == "https://cohere.example.internal"
    assert "primary-key-1234" not in repr(p)


def test_a_private_deployment_may_have_no_key(clean_env: None) -> None:
    p = CohereProvider("m", base_url="http://10.0.0.5:8080")
    assert p._auth_headers() == {}
    with pytest.raises(MissingApiKey):
        CohereProvider("m", base_url="http://10.0.0.5:8080", require_api_key=True)


# --- fuzz: any bytes decode to lawful events (or a ProtocolError inside Done), never an exception -----

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["text", "thinking", "tool_plan", "arguments", "name", "id"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)
_EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "message-start",
                "content-start",
                "content-delta",
                "tool-plan-delta",
                "tool-call-start",
                "tool-call-delta",
                "tool-call-end",
                "message-end",
                "x",
            ]
        )
    },
    optional={
        "index": st.integers(-1, 3) | _VALUES,
        "delta": st.fixed_dictionaries(
            {},
            optional={
                "message": st.fixed_dictionaries(
                    {}, optional={"content": _VALUES, "tool_plan": _VALUES, "tool_calls": _VALUES}
                )
                | _VALUES,
                "finish_reason": st.sampled_from(["COMPLETE", "ERROR", "TIMEOUT", "MAX_TOKENS"]) | _VALUES,
                "usage": _VALUES,
                "error": _VALUES,
            },
        )
        | _VALUES,
    },
)


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(_EVENT, max_size=8), garbage=st.binary(max_size=20), cuts=st.lists(st.integers(1, 600), max_size=6)
)
# Found by this test on a fresh machine (issue 7, item 11): an index reused after its call ended.
@example(
    events=[{"type": "tool-call-start"}, {"type": "tool-call-end"}, {"type": "tool-call-start", "index": 0}],
    garbage=b"",
    cuts=[],
)
def test_fuzzed_streams_obey_the_laws(events: list[dict[str, Any]], garbage: bytes, cuts: list[int]) -> None:
    wire = sse(*events) + garbage
    decoded = feed_all(CohereStreamDecoder, split_at(wire, [c % max(1, len(wire)) for c in cuts]))
    check_stream_laws(decoded)
    fold(decoded)
    decode_body(wire)
