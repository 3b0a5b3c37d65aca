"""Request encoding for the Gemini API: a snapshot per field, and every ChatRequest field is either
encoded or reported as a warning."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmrelay import (
    CallWarning,
    ChatRequest,
    ChatResponse,
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
from llmrelay.wire.gemini import GeminiDialect, encode_request, model_path

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = ToolDef("get_weather", "Current weather", SCHEMA)


def encode(request: ChatRequest, *, stream: bool = False) -> tuple[dict[str, Any], list[CallWarning]]:
    _, body, warnings = encode_request(request, model="gemini-2.5-flash", stream=stream)
    return body, warnings


def enc(**kw: Any) -> dict[str, Any]:
    body, warnings = encode(ChatRequest(**kw))
    assert not warnings, warnings
    return body


def test_minimal() -> None:
    assert enc(messages=[Message.user("hi")]) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_paths_put_model_and_method_in_the_url() -> None:
    assert model_path("gemini-2.5-flash", stream=False) == "models/gemini-2.5-flash:generateContent"
    assert model_path("gemini-2.5-flash", stream=True) == "models/gemini-2.5-flash:streamGenerateContent"
    assert model_path("models/gemini-pro", stream=False) == "models/gemini-pro:generateContent"
    assert model_path("tunedModels/my-model", stream=False) == "tunedModels/my-model:generateContent"
    assert model_path("odd name?", stream=False) == "models/odd%20name%3F:generateContent"
    encoded = GeminiDialect().encode(ChatRequest(messages=[Message.user("x")]), model="g", stream=True)
    assert encoded.path == "models/g:streamGenerateContent"
    assert "model" not in encoded.body and "stream" not in encoded.body


def test_stream_and_non_stream_bodies_are_the_same() -> None:
    request = ChatRequest(messages=[Message.user("hi")], temperature=0.1)
    assert encode(request, stream=True) == encode(request, stream=False)


def test_system_instruction_from_system_and_system_messages() -> None:
    body = enc(system="sys", messages=[Message.system("sys2"), Message.user("hi")])
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "sys"}, {"text": "sys2"}]},
    }


def test_a_system_message_mid_conversation_moves_with_a_warning() -> None:
    body, warnings = encode(ChatRequest(messages=[Message.user("a"), Message.system("late"), Message.user("b")]))
    assert body["systemInstruction"] == {"parts": [{"text": "late"}]}
    assert [c["parts"] for c in body["contents"]] == [[{"text": "a"}], [{"text": "b"}]]
    assert [w.setting for w in warnings] == ["messages[1]"]


def test_generation_config() -> None:
    body = enc(messages=[Message.user("hi")], temperature=0.2, max_tokens=50, top_p=0.9, stop=["END", "STOP"], seed=42)
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "topP": 0.9,
        "stopSequences": ["END", "STOP"],
        "seed": 42,
    }


def test_conversation_roles() -> None:
    body = enc(messages=[Message.user("q"), Message.assistant("a"), Message.user("q2")])
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [{"text": "a"}]},
        {"role": "user", "parts": [{"text": "q2"}]},
    ]


def test_images() -> None:
    body, warnings = encode(
        ChatRequest(
            messages=[
                Message.user(
                    [
                        TextPart("what is this?"),
                        ImagePart(data="aGVsbG8=", media_type="image/png"),
                        ImagePart(url="data:image/jpeg;base64,/9j/4AAQ"),
                        ImagePart(
                            url="https://generativelanguage.googleapis.com/v1beta/files/abc", media_type="image/png"
                        ),
                        ImagePart(url="gs://bucket/cat.jpg"),
                    ]
                )
            ]
        )
    )
    assert not warnings
    assert body["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "aGVsbG8="}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
        {
            "fileData": {
                "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                "mimeType": "image/png",
            }
        },
        {"fileData": {"fileUri": "gs://bucket/cat.jpg"}},
    ]


def test_image_detail_and_non_base64_data_urls_are_warned() -> None:
    body, warnings = encode(
        ChatRequest(
            messages=[
                Message.user(
                    [ImagePart(url="https://x/y.png", detail="low"), ImagePart(url="data:image/svg+xml,<svg/>")]
                )
            ]
        )
    )
    assert body["contents"][0]["parts"] == [{"fileData": {"fileUri": "https://x/y.png"}}]
    assert len(warnings) == 2 and all(w.setting == "messages[0].content" for w in warnings)


def test_tools_and_choice() -> None:
    body = enc(messages=[Message.user("w?")], tools=[TOOL, ToolDef("noop")], tool_choice="get_weather")
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Current weather", "parametersJsonSchema": SCHEMA},
                {"name": "noop", "parametersJsonSchema": {"type": "object", "properties": {}}},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_keywords(choice: str, mode: str) -> None:
    assert enc(tools=[TOOL], tool_choice=choice)["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_unknown_tool_choice_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="not among the request's tools"):
        encode(ChatRequest(tools=[TOOL], tool_choice="nope"))


def test_strict_tools_and_serial_calls_are_warned() -> None:
    _, warnings = encode(ChatRequest(tools=[dataclasses.replace(TOOL, strict=True)], parallel_tool_calls=False))
    assert [w.setting for w in warnings] == ["tools[get_weather].strict", "parallel_tool_calls"]
    _, warnings = encode(ChatRequest(tools=[TOOL], parallel_tool_calls=True))
    assert not warnings  # Gemini's default behaviour


def test_tool_round_trip_without_ids_names_results_by_position() -> None:
    calls = [ToolCall.create("get_weather", {"city": "Paris"}), ToolCall.create("get_time", {"tz": "CET"})]
    body = enc(
        messages=[
            Message.user("w?"),
            Message.assistant("", calls),
            Message.tool("a", "sunny"),
            Message.tool("b", '{"time": "12:00"}'),
            Message.user("thanks"),
        ]
    )
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
        ],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
            {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}},
        ],
    }
    assert body["contents"][3] == {"role": "user", "parts": [{"text": "thanks"}]}


def test_tool_results_find_the_name_by_call_id_and_echo_the_id() -> None:
    calls = [ToolCall.create("get_weather", {"city": "Paris"}, id="c1"), ToolCall.create("get_time", {}, id="c2")]
    body = enc(messages=[Message.assistant("let me see", calls), Message.tool("c2", "noon"), Message.tool("c1", "sun")])
    assert body["contents"][0]["parts"] == [
        {"text": "let me see"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}},
        {"functionCall": {"name": "get_time", "args": {}, "id": "c2"}},
    ]
    assert body["contents"][1]["parts"] == [
        {"functionResponse": {"name": "get_time", "response": {"output": "noon"}, "id": "c2"}},
        {"functionResponse": {"name": "get_weather", "response": {"output": "sun"}, "id": "c1"}},
    ]


def test_an_explicit_tool_name_wins() -> None:
    body = enc(messages=[Message.tool("x", "42", name="calc")])
    assert body["contents"] == [
        {"role": "user", "parts": [{"functionResponse": {"name": "calc", "response": {"output": "42"}}}]}
    ]


def test_a_tool_result_without_a_name_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="name="):
        encode(ChatRequest(messages=[Message.user("hi"), Message.tool("unknown", "x")]))


def test_unparseable_call_arguments_are_sent_as_empty_with_a_warning() -> None:
    cut = ToolCall(id=None, name="f", arguments=None, arguments_raw='{"a": ')
    body, warnings = encode(ChatRequest(messages=[Message.assistant("", [cut])]))
    assert body["contents"][0]["parts"] == [{"functionCall": {"name": "f", "args": {}}}]
    assert [w.setting for w in warnings] == ["messages[0].tool_calls[0]"]


def test_thought_signatures_go_back_on_the_first_function_call() -> None:
    calls = [ToolCall.create("a", {}), ToolCall.create("b", {})]
    message = Message.assistant([ReasoningPart("thinking...", signature="SIG1"), TextPart("ok")], calls)
    body = enc(messages=[message])
    assert body["contents"][0]["parts"] == [
        {"text": "ok"},
        {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "SIG1"},
        {"functionCall": {"name": "b", "args": {}}},
    ]


def test_a_signature_without_calls_goes_on_the_last_text_part() -> None:
    body = enc(messages=[Message.assistant([ReasoningPart("", signature="S"), TextPart("a"), TextPart("b")])])
    assert body["contents"][0]["parts"] == [{"text": "a"}, {"text": "b", "thoughtSignature": "S"}]
    body = enc(messages=[Message.assistant([ReasoningPart("", signature="S")])])
    assert body["contents"][0]["parts"] == [{"text": "", "thoughtSignature": "S"}]


def test_a_decoded_reply_round_trips_its_signature() -> None:
    from llmrelay.wire.gemini import decode_body

    body = (
        b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "plan", "thought": true},'
        b' {"functionCall": {"name": "get_country", "args": {}}, "thoughtSignature": "EpwICpk="}]},'
        b' "finishReason": "STOP"}]}'
    )
    reply: ChatResponse = decode_body(body)
    assert reply.reasoning == "plan" and reply.tool_calls[0].name == "get_country"
    sent = enc(messages=[Message.user("where?"), reply.message, Message.tool("t1", "France")])
    assert sent["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_country", "args": {}}, "thoughtSignature": "EpwICpk="}],
    }
    assert sent["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_country"


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert enc(response_format=JsonSchemaFormat(schema))["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    described = enc(response_format=JsonSchemaFormat(schema, description="An a."))
    assert described["generationConfig"]["responseJsonSchema"] == {**schema, "description": "An a."}
    assert enc(response_format="json")["generationConfig"] == {"responseMimeType": "application/json"}
    assert enc(response_format="text")["generationConfig"] == {"responseMimeType": "text/plain"}
    _, warnings = encode(ChatRequest(response_format=JsonSchemaFormat(schema, name="out", strict=False)))
    assert [w.setting for w in warnings] == ["response_format.name", "response_format.strict"]


def test_provider_options_merge_into_the_body() -> None:
    body = enc(
        messages=[Message.user("hi")],
        temperature=0.3,
        tools=[TOOL],
        provider_options={
            "gemini": {
                "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True},
                "generationConfig": {"topK": 4},
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
                "tools": [{"googleSearch": {}}],
                "cachedContent": "cachedContents/abc",
            },
            "openai": {"user": "u"},
        },
    )
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topK": 4,
        "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True},
    }
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert body["tools"][1] == {"googleSearch": {}} and "functionDeclarations" in body["tools"][0]
    assert body["cachedContent"] == "cachedContents/abc"
    assert "user" not in body


def test_options_override_encoded_values() -> None:
    body = enc(temperature=0.3, provider_options={"gemini": {"temperature": 1.0}})
    assert body["generationConfig"] == {"temperature": 1.0}


def test_things_the_dialect_cannot_send_are_warned() -> None:
    _, warnings = encode(
        ChatRequest(
            messages=[
                Message(role=Role.SYSTEM, content=[TextPart("s"), ImagePart(url="https://x/y.png")]),
                Message.user([ReasoningPart("thought")]),
                Message(
                    role=Role.TOOL,
                    content=[TextPart("r"), ImagePart(url="https://x/z.png")],
                    tool_call_id="t",
                    name="f",
                ),
            ],
            provider_options={"gemini": {"candidateCount": 3}},
        )
    )
    settings = [w.setting for w in warnings]
    assert settings == [
        "messages[0].content",
        "messages[1].content",
        "messages[2].content",
        "provider_options.gemini.candidateCount",
    ]


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
    "parallel_tool_calls": False,
    "response_format": "json",
    "seed": 1,
    "provider_options": {"gemini": {"topK": 3}},
}


def test_every_request_field_is_encoded_or_warned() -> None:
    fields = {f.name for f in dataclasses.fields(ChatRequest)}
    assert fields == set(SAMPLES), "add a sample for the new ChatRequest field"
    base, _ = encode(ChatRequest())
    assert base == {"contents": []}
    for name, value in SAMPLES.items():
        if name == "model":
            continue  # the model goes in the URL path (test_paths_put_model_and_method_in_the_url)
        extra = {"tools": [TOOL]} if name == "tool_choice" else {}
        body, warnings = encode(ChatRequest(**{name: value, **extra}))
        without, _ = encode(ChatRequest(**extra))
        assert body != without or any(name in w.setting for w in warnings), f"{name} was silently dropped"
