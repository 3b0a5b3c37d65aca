"""Request encoding for the Anthropic Messages API: a snapshot per request field, the conversation rules
(system hoisting, role merging, tool results, thinking round trips), and a check that every ``ChatRequest``
field is either encoded or warned about."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmrelay import (
    CallWarning,
    ChatRequest,
    ImagePart,
    InvalidRequestError,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    Role,
    TextPart,
    ToolCall,
    ToolDef,
)
from llmrelay.wire.anthropic import DEFAULT_MAX_TOKENS, AnthropicDialect

DIALECT = AnthropicDialect()
HI = [Message.user("Hi")]
WEATHER = ToolDef(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = ToolDef("get_time")


def encode(request: ChatRequest, *, stream: bool = False, dialect: AnthropicDialect = DIALECT) -> dict[str, Any]:
    return dict(dialect.encode(request, model="claude-test", stream=stream).body)


def warnings_of(request: ChatRequest, *, dialect: AnthropicDialect = DIALECT) -> list[CallWarning]:
    return list(dialect.encode(request, model="claude-test", stream=False).warnings)


def settings(request: ChatRequest) -> list[str]:
    return [w.setting for w in warnings_of(request)]


# --- one snapshot per field -----------------------------------------------------------------------------------


def test_minimal_request_snapshot() -> None:
    assert encode(ChatRequest(messages=HI, max_tokens=100)) == {
        "model": "claude-test",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 100,
    }
    assert encode(ChatRequest(messages=HI, max_tokens=100), stream=True)["stream"] is True
    assert warnings_of(ChatRequest(messages=HI, max_tokens=100)) == []


def test_model_comes_from_the_argument() -> None:
    assert encode(ChatRequest(model="ignored-here", messages=HI, max_tokens=1))["model"] == "claude-test"


def test_max_tokens_default_is_sent_and_warned() -> None:
    request = ChatRequest(messages=HI)
    assert encode(request)["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    (warning,) = warnings_of(request)
    assert warning.setting == "max_tokens" and "4096" in warning.message


def test_max_tokens_configured_default_is_silent() -> None:
    dialect = AnthropicDialect(default_max_tokens=1000)
    assert encode(ChatRequest(messages=HI), dialect=dialect)["max_tokens"] == 1000
    assert warnings_of(ChatRequest(messages=HI), dialect=dialect) == []
    options = {"anthropic": {"max_tokens": 77}}
    assert encode(ChatRequest(messages=HI, provider_options=options))["max_tokens"] == 77
    assert warnings_of(ChatRequest(messages=HI, provider_options=options)) == []


def test_max_tokens_default_leaves_room_above_the_thinking_budget() -> None:
    thinking = {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 10000}}}
    request = ChatRequest(messages=HI, provider_options=thinking)
    body = encode(request)
    assert body["max_tokens"] == 14096 and body["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert "thinking budget" in warnings_of(request)[0].message


def test_system_field_and_system_messages_in_order() -> None:
    request = ChatRequest(system="Be brief.", messages=[Message.system("Use French."), *HI], max_tokens=5)
    assert encode(request)["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French."},
    ]
    assert warnings_of(request) == []
    assert encode(ChatRequest(system="Only one.", messages=HI, max_tokens=5))["system"] == "Only one."


def test_a_late_system_message_is_hoisted_with_a_warning() -> None:
    request = ChatRequest(messages=[*HI, Message.assistant("Hello"), Message.system("Now be rude.")], max_tokens=5)
    body = encode(request)
    assert body["system"] == "Now be rude."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert settings(request) == ["messages[2]"]


def test_temperature_top_p_stop() -> None:
    body = encode(ChatRequest(messages=HI, max_tokens=5, temperature=0.3, top_p=0.9, stop=["END", "STOP"]))
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["stop_sequences"] == ["END", "STOP"]
    assert encode(ChatRequest(messages=HI, max_tokens=5, stop="END"))["stop_sequences"] == ["END"]


def test_temperature_above_one_is_clamped_with_a_warning() -> None:
    request = ChatRequest(messages=HI, max_tokens=5, temperature=1.7)
    assert encode(request)["temperature"] == 1.0
    assert settings(request) == ["temperature"]


def test_thinking_drops_incompatible_sampling_settings() -> None:
    thinking = {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 2048}}}
    request = ChatRequest(messages=HI, max_tokens=4000, temperature=0.2, top_p=0.5, provider_options=thinking)
    body = encode(request)
    assert "temperature" not in body and "top_p" not in body
    assert settings(request) == ["temperature", "top_p"]
    ok = ChatRequest(messages=HI, max_tokens=4000, temperature=1.0, top_p=0.97, provider_options=thinking)
    assert encode(ok)["temperature"] == 1.0 and encode(ok)["top_p"] == 0.97 and warnings_of(ok) == []


def test_seed_is_warned() -> None:
    request = ChatRequest(messages=HI, max_tokens=5, seed=42)
    assert "seed" not in encode(request)
    assert settings(request) == ["seed"]


def test_tools_snapshot() -> None:
    strict = dataclasses.replace(CLOCK, strict=True)
    assert encode(ChatRequest(messages=HI, max_tokens=5, tools=[WEATHER, strict]))["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}, "strict": True},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ("get_time", None, {"type": "tool", "name": "get_time"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, {"type": "auto", "disable_parallel_tool_use": False}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("get_time", False, {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(choice: str | None, parallel: bool | None, expected: Any) -> None:
    request = ChatRequest(
        messages=HI, max_tokens=5, tools=[WEATHER, CLOCK], tool_choice=choice, parallel_tool_calls=parallel
    )
    assert encode(request)["tool_choice"] == expected
    assert warnings_of(request) == []


def test_tool_choice_must_name_a_known_tool() -> None:
    with pytest.raises(InvalidRequestError, match="nope"):
        encode(ChatRequest(messages=HI, max_tokens=5, tools=[WEATHER], tool_choice="nope"))


def test_tool_settings_without_tools_are_dropped_with_a_warning() -> None:
    request = ChatRequest(messages=HI, max_tokens=5, tool_choice="required", parallel_tool_calls=False)
    assert "tool_choice" not in encode(request)
    assert settings(request) == ["tool_choice", "parallel_tool_calls"]
    silent = ChatRequest(messages=HI, max_tokens=5, tool_choice="none")
    assert "tool_choice" not in encode(silent) and warnings_of(silent) == []


def test_response_format_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    request = ChatRequest(messages=HI, max_tokens=5, response_format=JsonSchemaFormat(schema, name="answer"))
    assert encode(request)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert warnings_of(request) == []
    loose = ChatRequest(
        messages=HI, max_tokens=5, response_format=JsonSchemaFormat(schema, strict=False, description="d")
    )
    assert settings(loose) == ["response_format.description", "response_format.strict"]


def test_response_format_plain_json_and_text() -> None:
    json_mode = ChatRequest(messages=HI, max_tokens=5, response_format="json")
    assert "output_config" not in encode(json_mode) and settings(json_mode) == ["response_format"]
    text = ChatRequest(messages=HI, max_tokens=5, response_format="text")
    assert "output_config" not in encode(text) and warnings_of(text) == []


def test_provider_options_merge_into_the_body() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    request = ChatRequest(
        messages=HI,
        max_tokens=5,
        response_format=JsonSchemaFormat(schema),
        provider_options={
            "anthropic": {"top_k": 5, "metadata": {"user_id": "u1"}, "output_config": {"effort": "low"}},
            "openai": {"logprobs": True},
        },
    )
    body = encode(request)
    assert body["top_k"] == 5 and body["metadata"] == {"user_id": "u1"} and "logprobs" not in body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}


def test_betas_become_a_header_not_a_body_field() -> None:
    request = ChatRequest(messages=HI, max_tokens=5, provider_options={"anthropic": {"betas": ["a-2025", "b-2026"]}})
    encoded = DIALECT.encode(request, model="m", stream=False)
    assert "betas" not in encoded.body
    assert dict(encoded.headers) == {"anthropic-beta": "a-2025,b-2026"}


# --- the conversation -------------------------------------------------------------------------------------------


def test_images_base64_url_and_data_url() -> None:
    request = ChatRequest(
        max_tokens=5,
        messages=[
            Message.user(
                [
                    TextPart("What is this?"),
                    ImagePart(data="aGk=", media_type="image/png"),
                    ImagePart(url="https://example.com/cat.jpg"),
                    ImagePart(url="data:image/gif;base64,R0lG"),
                ]
            )
        ],
    )
    assert encode(request)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"}},
    ]
    assert warnings_of(request) == []
    detailed = ChatRequest(max_tokens=5, messages=[Message.user([ImagePart(url="https://x/y.png", detail="high")])])
    assert settings(detailed) == ["messages[0].content.detail"]


def test_tool_loop_turns() -> None:
    calls = [
        ToolCall.create("get_weather", {"city": "Paris"}, id="toolu_1"),
        ToolCall.create("get_time", {}, id="toolu_2"),
    ]
    request = ChatRequest(
        max_tokens=5,
        tools=[WEATHER, CLOCK],
        messages=[
            Message.user("Weather and time in Paris?"),
            Message.assistant("Checking.", tool_calls=calls),
            Message.tool("toolu_1", "sunny", name="get_weather"),
            Message.tool("toolu_2", "noon"),
            Message.user("Thanks, and tomorrow?"),
        ],
    )
    assert encode(request)["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                {"type": "text", "text": "Thanks, and tomorrow?"},
            ],
        },
    ]
    assert warnings_of(request) == []


def test_tool_results_go_first_in_a_merged_user_turn() -> None:
    request = ChatRequest(
        max_tokens=5,
        messages=[
            Message.assistant(tool_calls=[ToolCall.create("get_time", {}, id="toolu_9")]),
            Message.user("(interjection)"),
            Message.tool("toolu_9", "noon"),
        ],
    )
    (_, user) = encode(request)["messages"]
    assert [b["type"] for b in user["content"]] == ["tool_result", "text"]


def test_tool_result_with_image_parts() -> None:
    message = Message(
        role=Role.TOOL,
        tool_call_id="toolu_1",
        content=[TextPart("chart:"), ImagePart(data="aGk=", media_type="image/png")],
    )
    (turn,) = encode(ChatRequest(max_tokens=5, messages=[message]))["messages"]
    assert turn["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [
                {"type": "text", "text": "chart:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
            ],
        }
    ]


def test_adjacent_same_role_turns_are_merged() -> None:
    request = ChatRequest(
        max_tokens=5, messages=[Message.user("a"), Message.user("b"), Message.assistant("c"), Message.assistant("d")]
    )
    assert encode(request)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
    ]


def test_thinking_blocks_round_trip_before_text_and_tool_use() -> None:
    call = ToolCall.create("get_time", {}, id="toolu_3")
    assistant = Message.assistant(
        [ReasoningPart("Let me think.", signature="sig=="), ReasoningPart("", redacted="ENCRYPTED"), TextPart("Ok.")],
        tool_calls=[call],
    )
    (_, turn) = encode(ChatRequest(max_tokens=5, messages=[*HI, assistant]))["messages"]
    assert turn["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "ENCRYPTED"},
        {"type": "text", "text": "Ok."},
        {"type": "tool_use", "id": "toolu_3", "name": "get_time", "input": {}},
    ]


def test_unsigned_reasoning_from_another_provider_is_dropped_with_a_warning() -> None:
    request = ChatRequest(
        max_tokens=5, messages=[*HI, Message.assistant([ReasoningPart("deepseek thoughts"), TextPart("x")])]
    )
    (_, turn) = encode(request)["messages"]
    assert turn["content"] == "x"
    assert settings(request) == ["messages[1].content"]


def test_broken_tool_arguments_and_missing_ids_are_warned() -> None:
    call = ToolCall(id=None, name="get_time", arguments=None, arguments_raw='{"cut')
    request = ChatRequest(max_tokens=5, messages=[*HI, Message.assistant(tool_calls=[call])])
    (_, turn) = encode(request)["messages"]
    assert turn["content"] == [{"type": "tool_use", "id": "", "name": "get_time", "input": {}}]
    assert settings(request) == ["messages[1].tool_calls[0].arguments", "messages[1].tool_calls[0].id"]


def test_names_and_empty_turns_are_warned() -> None:
    named = Message(role=Role.USER, content="hi", name="alice")
    request = ChatRequest(max_tokens=5, messages=[named, Message.assistant(""), Message.user("again")])
    assert encode(request)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}
    ]
    assert settings(request) == ["messages[0].name", "messages[1]"]


def test_images_in_system_and_assistant_messages_are_warned() -> None:
    image = ImagePart(url="https://x/y.png")
    request = ChatRequest(
        max_tokens=5,
        messages=[
            Message(role=Role.SYSTEM, content=[TextPart("sys"), image]),
            *HI,
            Message.assistant([image, TextPart("a")]),
        ],
    )
    assert encode(request)["system"] == "sys"
    assert settings(request) == ["messages[0].content", "messages[2].content"]


# --- every ChatRequest field is encoded or warned about -----------------------------------------------------


# A value for each field that differs from the default in a way the Anthropic body can show.
_NON_DEFAULT: dict[str, Any] = {
    "model": "another-model",
    "messages": [Message.user("Hi"), Message.assistant("Hello"), Message.user("Bye")],
    "system": "Be brief.",
    "temperature": 0.5,
    "max_tokens": 123,
    "top_p": 0.5,
    "stop": ["END"],
    "tools": [WEATHER, CLOCK],
    "tool_choice": "get_weather",
    "parallel_tool_calls": False,
    "response_format": JsonSchemaFormat({"type": "object", "properties": {}, "additionalProperties": False}),
    "seed": 7,
    "provider_options": {"anthropic": {"top_k": 3}},
}
# Fields whose effect shows elsewhere than the body or the warnings.
_ELSEWHERE = {"model": "the provider resolves request.model and passes it to encode(model=...)"}


def test_every_chat_request_field_is_encoded_or_warned() -> None:
    names = [f.name for f in dataclasses.fields(ChatRequest)]
    assert set(names) == set(_NON_DEFAULT), "a new ChatRequest field needs a case here (and in encode.py)"
    base = ChatRequest(messages=HI, max_tokens=50, tools=[WEATHER])
    base_body, base_warnings = encode(base), warnings_of(base)
    for name in names:
        if name in _ELSEWHERE:
            continue
        changed = dataclasses.replace(base, **{name: _NON_DEFAULT[name]})
        body, warnings = encode(changed), warnings_of(changed)
        assert body != base_body or warnings != base_warnings, f"ChatRequest.{name} was silently dropped"
