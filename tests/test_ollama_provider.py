"""Ollama's native API: request-encoding snapshots (every ChatRequest field encoded or warned), the
decoder's edge cases, fold(stream) == decode(body), OLLAMA_HOST normalisation, and OllamaProvider end to
end through real sockets against a fake upstream on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import (
    AuthError,
    ChatRequest,
    ChatResponse,
    Done,
    FinishReason,
    ImagePart,
    InvalidRequestError,
    JsonSchemaFormat,
    LlmRelayWarning,
    Message,
    ModelNotFoundError,
    NetworkError,
    OllamaProvider,
    OverloadedError,
    ProtocolError,
    QuotaExceededError,
    RateLimitError,
    ReasoningDelta,
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
from llmrelay.providers.ollama import normalize_ollama_host
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.ollama_kit import KIT, go_json
from llmrelay.wire.ollama import OllamaDialect, OllamaStreamDecoder, decode_body, decode_error, encode_request

from wire_helpers import FIXTURES, check_stream_laws, feed_all, split_at, split_bytes

TOOL = ToolDef("get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}})
REQ = ChatRequest(messages=[Message.user("Hello")])
KEY = "ollama-proxy-SECRETSECRET-1234"


def enc(request: ChatRequest, *, stream: bool = False, **kw: Any) -> tuple[str, dict[str, Any], list[str]]:
    path, body, warnings = encode_request(request, model="m", stream=stream, **kw)
    return path, body, [w.setting for w in warnings]


def body_of(**kw: Any) -> dict[str, Any]:
    path, body, warnings = enc(ChatRequest(**kw))
    assert path == "/api/chat"
    assert not warnings, warnings
    return body


# --- encoding ---------------------------------------------------------------------------------------


def test_minimal_chat_body_always_says_whether_to_stream() -> None:
    assert body_of(messages=[Message.user("hi")]) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }
    _, streamed, _ = enc(REQ, stream=True)
    assert streamed["stream"] is True


def test_system_and_sampling_fields_become_options() -> None:
    body = body_of(
        messages=[Message.system("sys2"), Message.user("hi")],
        system="sys",
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        stop=["END", "STOP"],
        seed=42,
    )
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "system", "content": "sys2"},
            {"role": "user", "content": "hi"},
        ],
        "options": {"temperature": 0.2, "num_predict": 50, "top_p": 0.9, "stop": ["END", "STOP"], "seed": 42},
        "stream": False,
    }


def test_provider_options_merge_into_options_and_body() -> None:
    body = body_of(
        messages=[Message.user("hi")],
        temperature=0.2,
        provider_options={
            "ollama": {"options": {"num_ctx": 8192, "temperature": 0.7}, "think": True, "keep_alive": "10m"},
            "openai": {"user": "u"},
        },
    )
    assert body["options"] == {"temperature": 0.7, "num_ctx": 8192}
    assert body["think"] is True and body["keep_alive"] == "10m"
    assert "user" not in body


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(InvalidRequestError, match="mapping"):
        enc(ChatRequest(provider_options={"ollama": {"options": [1]}}))


def test_keep_alive_default_and_override() -> None:
    _, body, _ = enc(REQ, keep_alive="30m")
    assert body["keep_alive"] == "30m"
    _, body, _ = enc(dataclasses.replace(REQ, provider_options={"ollama": {"keep_alive": -1}}), keep_alive="30m")
    assert body["keep_alive"] == -1


def test_images_are_base64_bytes() -> None:
    message = Message.user(
        [
            TextPart("what is "),
            TextPart("this?"),
            ImagePart(data="aGVsbG8=", media_type="image/png"),
            ImagePart(url="data:image/jpeg;base64,d29ybGQ="),
        ]
    )
    assert body_of(messages=[message])["messages"] == [
        {"role": "user", "content": "what is this?", "images": ["aGVsbG8=", "d29ybGQ="]}
    ]


def test_url_images_and_detail_are_warned() -> None:
    message = Message.user([TextPart("x"), ImagePart(url="https://example.com/cat.jpg", detail="low")])
    _, body, warnings = enc(ChatRequest(messages=[message]))
    assert body["messages"] == [{"role": "user", "content": "x"}]
    assert warnings == ["messages[0].content", "messages[0].content"]


def test_tools_calls_and_results() -> None:
    call = ToolCall.create("get_weather", {"city": "Paris"}, id="call_1")
    body = body_of(
        messages=[
            Message.user("w?"),
            Message.assistant([ReasoningPart("need weather"), TextPart("checking")], [call]),
            Message.tool("call_1", "sunny"),
            Message.tool("other", "cloudy", name="get_weather"),
        ],
        tools=[TOOL],
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Current weather",
            },
        }
    ]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "checking",
            "thinking": "need weather",
            "tool_calls": [{"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_1"},
        {"role": "tool", "content": "cloudy", "tool_name": "get_weather", "tool_call_id": "other"},
    ]


def test_a_call_without_id_and_with_raw_arguments() -> None:
    call = ToolCall(id=None, name="f", arguments=None, arguments_raw='{"a": 1}')
    broken = ToolCall(id=None, name="g", arguments=None, arguments_raw='{"a": ')
    _, body, warnings = enc(ChatRequest(messages=[Message.assistant("", [call, broken])]))
    assert body["messages"][0]["tool_calls"] == [
        {"function": {"name": "f", "arguments": {"a": 1}}},
        {"function": {"name": "g", "arguments": {}}},
    ]
    assert warnings == ["messages[0].tool_calls[1].arguments"]


def test_a_tool_result_with_no_known_name_is_warned() -> None:
    _, body, warnings = enc(ChatRequest(messages=[Message.tool("call_9", "42")]))
    assert body["messages"] == [{"role": "tool", "content": "42", "tool_call_id": "call_9"}]
    assert warnings == ["messages[0].name"]


def test_tool_choice() -> None:
    _, body, warnings = enc(ChatRequest(tools=[TOOL], tool_choice="auto"))
    assert "tools" in body and not warnings
    _, body, warnings = enc(ChatRequest(tools=[TOOL], tool_choice="none"))
    assert "tools" not in body and warnings == ["tool_choice"]
    for choice in ("required", "get_weather"):
        _, body, warnings = enc(ChatRequest(tools=[TOOL], tool_choice=choice))
        assert "tools" in body and warnings == ["tool_choice"]
    with pytest.raises(InvalidRequestError, match="not among the request's tools"):
        enc(ChatRequest(tools=[TOOL], tool_choice="nope"))


def test_parallel_tool_calls_and_strict_tools_are_warned() -> None:
    _, _, warnings = enc(ChatRequest(tools=[dataclasses.replace(TOOL, strict=True)], parallel_tool_calls=False))
    assert warnings == ["parallel_tool_calls", "tools[0].strict"]
    _, _, warnings = enc(ChatRequest(tools=[TOOL], parallel_tool_calls=True))
    assert warnings == []


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert body_of(response_format=JsonSchemaFormat(schema))["format"] == schema
    assert body_of(response_format="json")["format"] == "json"
    assert "format" not in body_of(response_format="text")
    _, _, warnings = enc(ChatRequest(response_format=JsonSchemaFormat(schema, description="d", strict=False)))
    assert warnings == ["response_format.description", "response_format.strict"]


def test_parts_a_role_cannot_carry_are_warned() -> None:
    _, body, warnings = enc(
        ChatRequest(
            messages=[
                Message(role=Message.system("s").role, content=[TextPart("s"), ImagePart(url="https://x/y.png")]),
                Message.user([ReasoningPart("thought"), TextPart("q")]),
                Message.assistant([ReasoningPart("", redacted="opaque")]),
            ]
        )
    )
    assert warnings == ["messages[0].content", "messages[1].content", "messages[2].content"]
    assert body["messages"][2] == {"role": "assistant", "content": ""}


def test_generate_endpoint_for_a_prompt() -> None:
    request = ChatRequest(
        messages=[
            Message.system("be brief"),
            Message.user([TextPart("why?"), ImagePart(data="aQ==", media_type="image/png")]),
        ],
        system="sys",
        max_tokens=5,
        provider_options={"ollama": {"raw": False, "think": "low"}},
    )
    path, body, warnings = enc(request, stream=True, endpoint="generate")
    assert path == "/api/generate" and not warnings
    assert body == {
        "model": "m",
        "prompt": "why?",
        "system": "sys\n\nbe brief",
        "images": ["aQ=="],
        "options": {"num_predict": 5},
        "stream": True,
        "raw": False,
        "think": "low",
    }


def test_generate_endpoint_falls_back_to_chat_for_a_conversation() -> None:
    request = ChatRequest(messages=[Message.user("a"), Message.assistant("b"), Message.user("c")])
    path, body, warnings = enc(request, endpoint="generate")
    assert path == "/api/chat" and len(body["messages"]) == 3 and warnings == ["endpoint"]
    path, _, warnings = enc(ChatRequest(messages=[Message.user("a")], tools=[TOOL]), endpoint="generate")
    assert path == "/api/chat" and warnings == ["endpoint"]


def test_dialect_rejects_unknown_endpoints() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        OllamaDialect(endpoint="embed")  # type: ignore[arg-type]


# A non-default value for every ChatRequest field.
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
    "provider_options": {"ollama": {"think": True}},
}


@pytest.mark.parametrize("endpoint", ["chat", "generate"])
def test_every_request_field_is_encoded_or_warned(endpoint: str) -> None:
    fields = {f.name for f in dataclasses.fields(ChatRequest)}
    assert fields == set(SAMPLES), "add a sample for the new ChatRequest field"
    for name, value in SAMPLES.items():
        if name == "model":
            continue  # the model is resolved by the provider and passed to the encoder
        base_kw: dict[str, Any] = {"messages": [Message.user("q")]}
        if name == "tool_choice":
            base_kw["tools"] = [TOOL]
        _, base, _ = encode_request(ChatRequest(**base_kw), model="m", stream=False, endpoint=endpoint)  # type: ignore[arg-type]
        _, body, warnings = encode_request(
            ChatRequest(**{**base_kw, name: value}),
            model="m",
            stream=False,
            endpoint=endpoint,  # type: ignore[arg-type]
        )
        assert body != base or any(name in w.setting for w in warnings), f"{name} was silently dropped"


# --- decoding ---------------------------------------------------------------------------------------


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(go_json(line) + b"\n" for line in lines)


def chunk(**message: Any) -> dict[str, Any]:
    return {
        "model": "qwen3",
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", **message},
        "done": False,
    }


def final(reason: str | None = "stop", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "qwen3", "message": {"role": "assistant", "content": ""}, "done": True, **extra}
    if reason is not None:
        out["done_reason"] = reason
    return out


def decode(wire: bytes, *, byte_by_byte: bool = False) -> tuple[list[Any], ChatResponse]:
    events = feed_all(OllamaStreamDecoder, split_bytes(wire) if byte_by_byte else [wire])
    check_stream_laws(events)
    return events, fold(events)


def test_thinking_text_length_and_usage() -> None:
    wire = ndjson(
        chunk(content="", thinking="Let me "),
        chunk(content="", thinking="think."),
        chunk(content="Héllo <b> & ✓"),
        final("length", prompt_eval_count=11, eval_count=7),
    )
    for byte_by_byte in (False, True):
        events, response = decode(wire, byte_by_byte=byte_by_byte)
        assert response.reasoning == "Let me think." and response.text == "Héllo <b> & ✓"
        assert response.finish_reason is FinishReason.LENGTH and response.finish_reason_raw == "length"
        assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
        assert response.model == "qwen3"
        assert any(isinstance(e, ReasoningDelta) for e in events)


def test_whole_tool_calls_with_ids_from_newer_servers() -> None:
    calls = [
        {"id": "call_a", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}},
        {"id": "call_b", "function": {"index": 1, "name": "get_time", "arguments": {}}},
    ]
    events, response = decode(
        ndjson(chunk(content="", tool_calls=calls[:1]), chunk(content="", tool_calls=calls[1:]), final())
    )
    kinds = [type(e) for e in events]
    assert kinds == [ToolCallStart, ToolCallDelta, ToolCallEnd, ToolCallStart, ToolCallDelta, ToolCallEnd, Done]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_a", "get_weather", {"city": "Tokyo"}),
        ("call_b", "get_time", {}),
    ]
    # Ollama says "stop" when it calls tools; normalised to TOOL_CALLS, the raw value kept.
    assert response.finish_reason is FinishReason.TOOL_CALLS and response.finish_reason_raw == "stop"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("load", FinishReason.OTHER),
        ("unload", FinishReason.OTHER),
        (None, FinishReason.STOP),
    ],
)
def test_done_reasons(reason: str | None, expected: FinishReason) -> None:
    _, response = decode(ndjson(final(reason)))
    assert response.finish_reason is expected and response.finish_reason_raw == reason


def test_an_error_line_ends_the_stream_with_an_error() -> None:
    events, response = decode(
        ndjson(chunk(content="par"), {"error": "an error was encountered while running the model"})
    )
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR
    assert isinstance(done.error, ServerError) and done.error.status is None
    assert "running the model" in str(done.error)
    assert response.text == "par"


def test_a_stream_without_done_is_a_protocol_error() -> None:
    for wire in (ndjson(chunk(content="a")), ndjson(chunk(content="a"))[:-5]):
        events, response = decode(wire)
        assert isinstance(response.error, ProtocolError)
        assert isinstance(events[-1], Done) and events[-1].finish_reason is FinishReason.ERROR


def test_a_final_line_without_newline_still_counts() -> None:
    _, response = decode(ndjson(chunk(content="a"), final())[:-1])
    assert response.error is None and response.finish_reason is FinishReason.STOP


@pytest.mark.parametrize("bad", [b"{not json}\n", b"[1, 2]\n", b'"str"\n'])
def test_malformed_lines_are_protocol_errors(bad: bytes) -> None:
    _, response = decode(ndjson(chunk(content="a")) + bad)
    assert isinstance(response.error, ProtocolError) and response.text == "a"


def test_non_stream_bodies() -> None:
    response = decode_body(
        go_json(
            final("stop", prompt_eval_count=3, eval_count=2)
            | {"message": {"role": "assistant", "content": "hi", "thinking": "t"}}
        )
    )
    assert (response.text, response.reasoning, response.finish_reason) == ("hi", "t", FinishReason.STOP)
    assert isinstance(decode_body(b'{"model":"m","message":{"content":"x"},"done":false}').error, ProtocolError)
    assert isinstance(decode_body(b"<html>").error, ProtocolError)
    assert isinstance(decode_body(b'{"error":"boom"}').error, ServerError)


SCENARIOS = {
    "text": lambda stream: KIT.text("Hello there, world", stream=stream, usage=(12, 4)),
    "tools": lambda stream: KIT.tool_calls(
        [("call_1", "get_weather", {"city": "Paris"}), (None, "get_time", {"tz": "CET", "n": [1, 2]})], stream=stream
    ),
    "reasoning": lambda stream: KIT.reasoning("Let me think.", "42", stream=stream),
    "length": lambda stream: KIT.length("cut he", stream=stream),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fold_of_stream_equals_body_decode(name: str) -> None:
    make = SCENARIOS[name]
    events = feed_all(OllamaStreamDecoder, [b"".join(make(True).chunks)])
    check_stream_laws(events)
    assert fold(events) == decode_body(b"".join(make(False).chunks))


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthError),
        (402, QuotaExceededError),
        (403, AuthError),
        (404, ModelNotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, OverloadedError),
    ],
)
def test_error_statuses(status: int, cls: type[Exception]) -> None:
    error = decode_error(status, {"retry-after": "3"}, b'{"error":"something"}')
    assert type(error) is cls and error.status == status and error.message == "something"
    assert error.retry_after == 3.0


def test_a_404_that_is_not_ollama_json_is_a_wrong_path_not_a_missing_model() -> None:
    error = decode_error(404, {}, b"404 page not found")
    assert type(error) is InvalidRequestError and "404 page not found" in error.message


# --- OLLAMA_HOST ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://localhost:11434"),
        ("0.0.0.0:11434", "http://0.0.0.0:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("localhost", "http://localhost:11434"),
        ("  'example.com:56789/'  ", "http://example.com:56789"),
        (":56789", "http://127.0.0.1:56789"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:56789/path/", "https://example.com:56789/path"),
        ("example.com/ollama", "http://example.com:11434/ollama"),
        ("example.com:99999", "http://example.com:11434"),
        ("::1", "http://[::1]:11434"),
        ("[0001:002:003:0004::1]:56789", "http://[0001:002:003:0004::1]:56789"),
        ("https://[::1]", "https://[::1]:443"),
    ],
)
def test_ollama_host_is_normalised_like_the_cli(value: str, url: str) -> None:
    assert normalize_ollama_host(value) == url


def test_base_url_comes_from_the_argument_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    assert OllamaProvider("m").base_url == "http://localhost:11434"
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")
    assert OllamaProvider("m").base_url == "http://0.0.0.0:11434"
    assert OllamaProvider("m", base_url="gpu-box:8080").base_url == "http://gpu-box:8080"
    assert OllamaProvider("m", base_url="https://ollama.com/").base_url == "https://ollama.com"


def test_no_key_by_default(clean_env: None) -> None:
    p = OllamaProvider("m")
    assert p._auth_headers() == {}
    assert OllamaProvider("m", api_key=KEY)._auth_headers() == {"authorization": f"Bearer {KEY}"}
    assert KEY not in repr(OllamaProvider("m", api_key=KEY))


# --- end to end -------------------------------------------------------------------------------------


def provider(up: FakeUpstream, **kw: Any) -> OllamaProvider:
    kw.setdefault("api_key_env", None)
    return OllamaProvider("qwen3:8b", base_url=up.url(), **kw)


async def test_text_stream_end_to_end(upstream: FakeUpstream) -> None:
    lines = [chunk(content=w) for w in ("Hel", "lo", " wörld")] + [final(prompt_eval_count=9, eval_count=3)]
    upstream.add(
        Reply(chunks=tuple(go_json(x) + b"\n" for x in lines), content_type="application/x-ndjson", chunk_delay=0.02)
    )
    async with provider(upstream, keep_alive="1m") as p, p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
        response = stream.response()
    check_stream_laws(events)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", " wörld"]
    assert response.text == "Hello wörld" and response.provider == "ollama" and response.model == "qwen3"
    assert response.usage is not None and response.usage.total_tokens == 12
    sent = upstream.requests[0]
    assert sent.path == "/api/chat" and "authorization" not in sent.headers
    assert sent.json == {
        "model": "qwen3:8b",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": True,
        "keep_alive": "1m",
    }


async def test_recorded_transcripts_replay_in_chunks(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "ollama_chat_stream_tool_calls_docs", chunk_size=17))
    upstream.add(Reply.transcript(FIXTURES, "ollama_chat_nonstream_docs"))
    async with provider(upstream) as p:
        async with p.chat_stream(ChatRequest(messages=[Message.user("weather?")], tools=[TOOL])) as stream:
            streamed = await stream.until_done()
        body = await p.chat(REQ)
    assert [(c.id, c.name, c.arguments) for c in streamed.tool_calls] == [
        ("llmrelay_call_0", "get_weather", {"city": "Tokyo"})
    ]
    assert body.text == "Hello! How are you today?" and body.finish_reason is FinishReason.STOP
    assert upstream.requests[1].json["stream"] is False


async def test_generate_mode(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "ollama_generate_stream_docs", chunk_size=50))
    async with provider(upstream, endpoint="generate") as p, p.chat_stream(REQ) as stream:
        response = await stream.until_done()
    assert response.text == "That's a fantastic question!"
    sent = upstream.requests[0]
    assert sent.path == "/api/generate" and sent.json["prompt"] == "Hello"


async def test_tool_round_trip(upstream: FakeUpstream) -> None:
    upstream.add(KIT.tool_calls([(None, "get_weather", {"city": "Paris"})], stream=True))
    upstream.add(KIT.text("Sunny.", stream=False))
    async with provider(upstream) as p:
        async with p.chat_stream(ChatRequest(messages=[Message.user("weather?")], tools=[TOOL])) as stream:
            first = await stream.until_done()
        call = first.tool_calls[0]
        assert call.id == "llmrelay_call_0" and call.arguments == {"city": "Paris"}
        follow = ChatRequest(
            messages=[Message.user("weather?"), first.message, Message.tool("c1", "sunny", name=call.name)],
            tools=[TOOL],
        )
        second = await p.chat(follow)
    assert second.text == "Sunny."
    sent = upstream.requests[1].json["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "c1"}
    assert KIT.sent_tool_result(upstream.requests[1], "c1", "sunny")


async def test_missing_model_names_the_model_and_how_to_pull_it(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "ollama_error_404_model_not_found"))
    upstream.add(Reply.transcript(FIXTURES, "ollama_error_404_model_not_found"))
    async with provider(upstream) as p:
        with pytest.raises(ModelNotFoundError) as info:
            async with p.chat_stream(REQ):
                pass
        with pytest.raises(ModelNotFoundError) as second:
            await p.chat(REQ)
    err = info.value
    assert err.kind == "model_not_found" and err.status == 404 and err.provider == "ollama"
    # The server's message names 'llama3'; the hint names the model this request asked for.
    assert "`ollama pull qwen3:8b`" in str(err) and "'qwen3:8b'" in str(err)
    assert "`ollama pull qwen3:8b`" in str(second.value)


@pytest.mark.parametrize(
    ("status", "cls"), [(401, AuthError), (429, RateLimitError), (500, ServerError), (503, OverloadedError)]
)
async def test_http_errors(upstream: FakeUpstream, status: int, cls: type[Exception]) -> None:
    upstream.add(KIT.error(status, retry_after=2))
    async with provider(upstream) as p:
        with pytest.raises(cls) as info:
            await p.chat(REQ)
    assert info.value.status == status  # type: ignore[attr-defined]
    if status == 429:
        assert info.value.retry_after == 2.0 and info.value.retryable  # type: ignore[attr-defined]


async def test_quota_is_402(upstream: FakeUpstream) -> None:
    upstream.add(KIT.quota())
    async with provider(upstream) as p:
        with pytest.raises(QuotaExceededError) as info:
            await p.chat(REQ)
    assert info.value.status == KIT.quota_status and not info.value.retryable


async def test_401_with_a_key_is_redacted_and_hinted(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(go_json({"error": f"invalid key {KEY}"}), status=401))
    async with provider(upstream, api_key=KEY) as p:
        with pytest.raises(AuthError) as info:
            async with p.chat_stream(REQ):
                pass
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"
    err = info.value
    assert "api_key=" in str(err)
    for text in (str(err), repr(err), err.body_excerpt or "", err.message):
        assert KEY not in text and "SECRETSECRET" not in text


async def test_mid_stream_error_keeps_the_partial_output(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "ollama_generate_midstream_error_docs", chunk_size=40))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises(ServerError, match="running the model"):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    response = stream.response()
    assert response.text == " Yes.Ican" and response.finish_reason is FinishReason.ERROR
    assert response.error is not None and response.error.provider == "ollama"


async def test_stream_cut_midway_is_an_error(upstream: FakeUpstream) -> None:
    wire = (FIXTURES / "ollama_generate_stream_docs.wire").read_bytes()
    upstream.add(Reply(chunks=(wire,), content_type="application/x-ndjson", cut_after=len(wire) // 2))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises((NetworkError, ProtocolError)):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    assert isinstance(events[-1], Done) and events[-1].error is not None


async def test_clean_eof_without_done_is_a_protocol_error(upstream: FakeUpstream) -> None:
    upstream.add(Reply(chunks=(ndjson(chunk(content="a")),), content_type="application/x-ndjson"))
    async with provider(upstream) as p:
        with pytest.raises(ProtocolError, match="done"):
            async with p.chat_stream(REQ) as stream:
                await stream.until_done()


async def test_breaking_out_early_closes_the_connection(upstream: FakeUpstream) -> None:
    lines = [chunk(content=f"t{i}") for i in range(200)] + [final()]
    upstream.add(
        Reply(chunks=tuple(go_json(x) + b"\n" for x in lines), content_type="application/x-ndjson", chunk_delay=0.02)
    )
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await upstream.wait_disconnect(within=3.0)
    assert upstream.disconnects == 1 and upstream.completed == 0


async def test_warnings_are_visible(upstream: FakeUpstream) -> None:
    upstream.add(KIT.text("ok", stream=False))
    async with provider(upstream) as p:
        with pytest.warns(LlmRelayWarning, match="tool_choice"):
            await p.chat(ChatRequest(messages=[Message.user("q")], tools=[TOOL], tool_choice="required"))


async def test_list_models(upstream: FakeUpstream) -> None:
    tags = {
        "models": [
            {
                "name": "llama3.2:latest",
                "model": "llama3.2:latest",
                "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                "size": 2019393189,
                "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": {"format": "gguf", "family": "llama"},
            },
            {"name": "qwen3:8b", "model": "qwen3:8b", "modified_at": "not a date"},
        ]
    }
    upstream.add(Reply.raw(go_json(tags)))
    async with provider(upstream, api_key=KEY) as p:
        models = await p.list_models()
    assert [m.id for m in models] == ["llama3.2:latest", "qwen3:8b"]
    assert models[0].created == 1746405464 and models[1].created is None
    seen = upstream.requests[0]
    assert seen.method == "GET" and seen.path == "/api/tags" and seen.headers["authorization"] == f"Bearer {KEY}"


async def test_ollama_host_reaches_the_server(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{upstream.port}")
    upstream.add(KIT.text("hi", stream=False))
    async with OllamaProvider("m") as p:
        assert (await p.chat(REQ)).text == "hi"
    assert upstream.requests[0].path == "/api/chat"


def test_request_body_is_json_serialisable() -> None:
    _, body, _ = enc(ChatRequest(**{k: v for k, v in SAMPLES.items() if k != "model"}))
    json.dumps(body)


# --- fuzz: any bytes decode to lawful events (or a ProtocolError inside Done), never an exception -----

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_LINE = st.fixed_dictionaries(
    {},
    optional={
        "model": _JSON_VALUES,
        "message": st.fixed_dictionaries(
            {},
            optional={
                "content": _JSON_VALUES,
                "thinking": _JSON_VALUES,
                "tool_calls": st.lists(
                    st.fixed_dictionaries({}, optional={"id": _JSON_VALUES, "function": _JSON_VALUES}), max_size=2
                )
                | _JSON_VALUES,
            },
        )
        | _JSON_VALUES,
        "response": _JSON_VALUES,
        "done": st.booleans() | _JSON_VALUES,
        "done_reason": _JSON_VALUES,
        "prompt_eval_count": _JSON_VALUES,
        "eval_count": _JSON_VALUES,
        "error": _JSON_VALUES,
    },
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(_LINE, max_size=6), garbage=st.binary(max_size=20), cuts=st.lists(st.integers(1, 400), max_size=6)
)
def test_fuzzed_streams_obey_the_laws(lines: list[dict[str, Any]], garbage: bytes, cuts: list[int]) -> None:
    wire = b"".join(json.dumps(line).encode() + b"\n" for line in lines) + garbage
    events = feed_all(OllamaStreamDecoder, split_at(wire, [c % max(1, len(wire)) for c in cuts]))
    check_stream_laws(events)
    fold(events)
    decode_body(wire)
