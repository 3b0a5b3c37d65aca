"""Request encoding for Chat Completions: a snapshot per field, and every ChatRequest field is either
encoded or reported as a warning."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmrelay import (
    ChatRequest,
    ImagePart,
    InvalidRequestError,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    ToolDef,
)
from llmrelay.wire.openai_chat import encode_request

TOOL = ToolDef(
    "get_weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}}, strict=True
)


def enc(**kw: Any) -> dict[str, Any]:
    body, warnings = encode_request(ChatRequest(**kw), model="m", stream=False)
    assert not warnings, warnings
    return body


def test_minimal() -> None:
    assert enc(messages=[Message.user("hi")]) == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_stream_asks_for_usage() -> None:
    body, _ = encode_request(ChatRequest(messages=[Message.user("hi")]), model="m", stream=True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_system_and_sampling_fields() -> None:
    body = enc(
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
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": ["END", "STOP"],
        "seed": 42,
    }


def test_max_completion_tokens_field() -> None:
    body, _ = encode_request(
        ChatRequest(max_tokens=9), model="m", stream=False, max_tokens_field="max_completion_tokens"
    )
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body


def test_images() -> None:
    body = enc(
        messages=[
            Message.user(
                [
                    TextPart("what is this?"),
                    ImagePart(data="aGVsbG8=", media_type="image/png"),
                    ImagePart(url="https://example.com/cat.jpg", detail="low"),
                ]
            )
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]


def test_tools_choice_and_results() -> None:
    call = ToolCall.create("get_weather", {"city": "Paris"}, id="call_1")
    body = enc(
        messages=[Message.user("w?"), Message.assistant("", [call]), Message.tool("call_1", "sunny")],
        tools=[TOOL],
        tool_choice="get_weather",
        parallel_tool_calls=False,
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Current weather",
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_keywords(choice: str) -> None:
    assert enc(tools=[TOOL], tool_choice=choice)["tool_choice"] == choice


def test_unknown_tool_choice_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="not among the request's tools"):
        encode_request(ChatRequest(tools=[TOOL], tool_choice="nope"), model="m", stream=False)


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert enc(response_format=JsonSchemaFormat(schema, name="out"))["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert enc(response_format="json")["response_format"] == {"type": "json_object"}
    assert enc(response_format="text")["response_format"] == {"type": "text"}


def test_provider_options_are_namespaced() -> None:
    body = enc(provider_options={"openai": {"reasoning_effort": "low", "user": "u1"}, "anthropic": {"x": 1}})
    assert body["reasoning_effort"] == "low" and body["user"] == "u1" and "x" not in body


def test_things_the_dialect_cannot_send_are_warned() -> None:
    _, warnings = encode_request(
        ChatRequest(
            messages=[
                Message(role=Message.system("s").role, content=[TextPart("s"), ImagePart(url="https://x/y.png")]),
                Message.user([ReasoningPart("thought")]),
            ],
            provider_options={"openai": {"n": 3}},
        ),
        model="m",
        stream=False,
    )
    settings = [w.setting for w in warnings]
    assert settings == ["messages[0].content", "messages[1].content", "provider_options.n"]


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
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": "json",
    "seed": 1,
    "provider_options": {"openai": {"user": "u"}},
}


def test_every_request_field_is_encoded_or_warned() -> None:
    fields = {f.name for f in dataclasses.fields(ChatRequest)}
    assert fields == set(SAMPLES), "add a sample for the new ChatRequest field"
    base, _ = encode_request(ChatRequest(), model="m", stream=False)
    for name, value in SAMPLES.items():
        if name == "model":
            continue  # the model is resolved by the provider and passed to the encoder
        extra = {"tools": [TOOL]} if name == "tool_choice" else {}
        body, warnings = encode_request(ChatRequest(**{name: value, **extra}), model="m", stream=False)
        with_tools, _ = encode_request(ChatRequest(**extra), model="m", stream=False)
        assert body != with_tools or any(name in w.setting for w in warnings), f"{name} was silently dropped"
    assert base == {"model": "m", "messages": []}
