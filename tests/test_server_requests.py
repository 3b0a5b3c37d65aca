"""The served dialects' request decoders on bodies as SDK clients send them, their 400s (naming the field's
path) and warnings; the error encoders against the client decoders; the stream bytes against the shapes the
official OpenAI SDK validates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import (
    AllAttemptsFailed,
    Attempt,
    AuthError,
    ContextLengthError,
    Done,
    FinishReason,
    ImagePart,
    InvalidRequestError,
    JsonSchemaFormat,
    LlmError,
    Message,
    ModelNotFoundError,
    OverloadedError,
    RateLimitError,
    ReasoningPart,
    RequestTimeout,
    Role,
    ServerError,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from llmrelay.wire.anthropic import AnthropicDialect, AnthropicServer
from llmrelay.wire.openai_chat import OpenAIChatDialect, OpenAIChatServer
from llmrelay.wire.serve import param_of

OPENAI, ANTHROPIC = OpenAIChatServer(), AnthropicServer()


def _bad(server: Any, body: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        server.decode_request(body)
    assert info.value.kind == "invalid_request"
    return info.value


# --- OpenAI requests ------------------------------------------------------------------------------------


def test_openai_request_as_the_sdk_sends_it() -> None:
    body = {
        "model": "gpt-x",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q":"cat"}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": '{"q":'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "a cat"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
        "max_completion_tokens": 99,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
        "reasoning_effort": "low",
        "user": "someone",
    }
    decoded = OPENAI.decode_request(body)
    req = decoded.request
    assert (decoded.model, decoded.stream, decoded.include_usage, req.model) == ("gpt-x", True, True, None)
    assert req.messages[0] == Message.system("Be brief.")
    assert req.messages[1].content == (
        TextPart("What is this?"),
        ImagePart(data="iVBORw0K", media_type="image/png", detail="low"),
        ImagePart(url="https://img.example/cat.png"),
    )
    calls = req.messages[2].tool_calls
    assert calls[0] == ToolCall("call_1", "look", {"q": "cat"}, '{"q":"cat"}')
    assert calls[1].arguments is None and calls[1].arguments_raw == '{"q":'
    assert req.messages[3] == Message.tool("call_1", "a cat")
    assert req.tool_choice == "look" and req.max_tokens == 99 and req.stop == ("END",)
    assert req.response_format == JsonSchemaFormat({"type": "object"}, name="out", strict=False)
    assert req.provider_options == {"openai": {"reasoning_effort": "low"}}
    assert [w.setting for w in decoded.warnings] == ["user"]
    assert decoded.warnings_for("openai") == decoded.warnings
    assert [w.setting for w in decoded.warnings_for("anthropic")] == ["user", "reasoning_effort"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ([], None, "expected an object"),
        ({"messages": []}, "model", "required"),
        ({"model": "m", "messages": []}, "messages", "at least one"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 3}, "n", "only n=1"),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "user", "content": [{"type": "foo"}]},
                ],
            },
            "messages[2].content[0].type",
            "unknown part type 'foo'",
        ),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "unknown role"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "required"),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}
                ],
            },
            "messages[0].content[0].image_url.url",
            "http(s)",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature", "number"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature", "between"),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice.function.name",
            "not among",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}},
            "response_format.type",
            "expected",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
            "not supported",
        ),
    ],
)
def test_openai_bad_requests_name_the_field(body: Any, param: str | None, words: str) -> None:
    error = _bad(OPENAI, body)
    assert param_of(error) == param
    assert words in error.message
    if param:
        assert error.message.startswith(f"{param}: ")
    reply = OPENAI.encode_error(error)
    assert reply.status == 400
    assert reply.body["error"]["param"] == param and reply.body["error"]["type"] == "invalid_request_error"


def test_openai_unknown_fields_are_warned_about_not_dropped_silently() -> None:
    decoded = OPENAI.decode_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x", "cache_control": {}}],
            "frobnicate": 1,
            "logprobs": True,
            "metadata": {"a": "b"},
        }
    )
    assert sorted(w.setting for w in decoded.warnings) == [
        "frobnicate",
        "logprobs",
        "messages[0].cache_control",
        "metadata",
    ]


# --- Anthropic requests ---------------------------------------------------------------------------------


def test_anthropic_request_as_the_sdk_sends_it() -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"type": "text", "text": "What is this?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": "cat"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat", "is_error": True},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
        "tools": [{"name": "look", "description": "Looks", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }
    decoded = ANTHROPIC.decode_request(body)
    req = decoded.request
    assert (decoded.model, decoded.stream, req.max_tokens) == ("claude-x", True, 1024)
    assert req.messages[0] == Message.system("Be brief.")
    assert req.messages[1].content == (ImagePart(data="/9j/4AAQ", media_type="image/jpeg"), TextPart("What is this?"))
    assistant = req.messages[2]
    assert assistant.content == (ReasoningPart("hmm", signature="sig=="), TextPart("Let me look."))
    assert assistant.tool_calls == (ToolCall.create("look", {"q": "cat"}, id="toolu_1"),)
    assert req.messages[3] == Message(role=Role.TOOL, content="a cat", tool_call_id="toolu_1")
    assert req.messages[4] == Message.user([TextPart("thanks")])
    assert (req.tool_choice, req.parallel_tool_calls) == ("required", False)
    assert req.provider_options == {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 5}}
    assert sorted(w.setting for w in decoded.warnings) == [
        "cache_control",
        "messages[2].content[0].is_error",
        "metadata.user_id",
    ]
    assert sorted(w.setting for w in decoded.vendor_warnings) == ["thinking", "top_k"]
    # An Anthropic upstream gets the thinking setting through the client encoder, unchanged.
    encoded = AnthropicDialect().encode(req, model="claude-x", stream=True)
    assert encoded.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "c", "messages": [{"role": "user", "content": "x"}]}, "max_tokens", "required"),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages[0].role",
            "expected 'user'",
        ),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages[0].content[0].type",
            "not supported",
        ),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
            "messages[0].content[0].text",
            "expected a string",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "w"}],
            },
            "tools[0].type",
            "server tools",
        ),
        (
            {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "temperature": 1.5},
            "temperature",
            "between",
        ),
        (
            {
                "model": "c",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"budget_tokens": 9},
            },
            "thinking.type",
            "required",
        ),
    ],
)
def test_anthropic_bad_requests_name_the_field(body: Any, param: str, words: str) -> None:
    error = _bad(ANTHROPIC, body)
    assert param_of(error) == param and words in error.message
    reply = ANTHROPIC.encode_error(error)
    assert reply.status == 400
    assert reply.body == {"type": "error", "error": {"type": "invalid_request_error", "message": error.message}}


# --- what fuzzing found: never a ValueError or TypeError, always a 400 naming the field --------------------

_USER_X = {"role": "user", "content": "x"}
_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _an(*blocks: Any, role: str = "user") -> dict[str, Any]:
    return {"model": "c", "max_tokens": 5, "messages": [{"role": role, "content": list(blocks)}]}


@pytest.mark.parametrize(
    ("server", "body", "param", "words"),
    [
        # a tool message answering the empty id (``Message`` refuses it with a ValueError)
        (
            OPENAI,
            {"model": "fake/test-model", "messages": [{"role": "tool", "tool_call_id": "", "content": "x"}]},
            "messages[0].tool_call_id",
            "must not be empty",
        ),
        (
            OPENAI,
            {"model": "m", "messages": [_USER_X, {"role": "assistant", "tool_calls": [{**_CALL, "id": ""}]}]},
            "messages[1].tool_calls[0].id",
            "must not be empty",
        ),
        (
            ANTHROPIC,
            _an({"type": "tool_result", "tool_use_id": "", "content": "x"}),
            "messages[0].content[0].tool_use_id",
            "must not be empty",
        ),
        (
            ANTHROPIC,
            _an({"type": "tool_use", "id": "", "name": "f", "input": {}}, role="assistant"),
            "messages[0].content[0].id",
            "must not be empty",
        ),
        # a base64 image without its media type (``ImagePart`` refuses it with a ValueError), or not an image's
        (
            ANTHROPIC,
            _an({"type": "image", "source": {"type": "base64", "media_type": "", "data": "aGk="}}),
            "messages[0].content[0].source.media_type",
            "must not be empty",
        ),
        (
            ANTHROPIC,
            _an({"type": "image", "source": {"type": "base64", "media_type": "text/html", "data": "aGk="}}),
            "messages[0].content[0].source.media_type",
            "image/png",
        ),
        (
            ANTHROPIC,
            _an({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}),
            "messages[0].content[0].source.data",
            "must not be empty",
        ),
        # a block type that is not a string (an unhashable dict looked up in a set: a TypeError)
        (ANTHROPIC, _an({"type": {"a": 1}}), "messages[0].content[0].type", "expected a string"),
        (ANTHROPIC, _an({"type": ["text"]}, role="assistant"), "messages[0].content[0].type", "expected a string"),
        (
            ANTHROPIC,
            _an({"type": "tool_result", "tool_use_id": "t", "content": [{"type": {}}]}),
            "messages[0].content[0].content[0].type",
            "expected a string",
        ),
        (
            ANTHROPIC,
            {**_an({"type": "text", "text": "x"}), "tool_choice": {"type": {"x": 1}}},
            "tool_choice.type",
            "expected a string",
        ),
    ],
)
def test_fuzzing_regressions_are_400s_naming_the_field(server: Any, body: Any, param: str, words: str) -> None:
    error = _bad(server, body)
    assert param_of(error) == param, error.message
    assert words in error.message
    assert server.encode_error(error).status == 400


def test_a_tool_calls_deeply_nested_arguments_are_kept_raw_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on this
    body = {"model": "m", "messages": [_USER_X, {"role": "assistant", "tool_calls": [
        {**_CALL, "function": {"name": "f", "arguments": deep}}]}]}  # fmt: skip
    (call,) = OPENAI.decode_request(body).request.messages[1].tool_calls
    assert call.arguments is None and call.arguments_raw == deep


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_RICH = {
    OPENAI: {
        "model": "m",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "s"}]},
            {"role": "user", "content": [{"type": "text", "text": "u"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]},
            {"role": "assistant", "content": "a", "tool_calls": [_CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
        "stop": ["x"],
        "stream_options": {"include_usage": True},
    },
    ANTHROPIC: {
        "model": "c",
        "max_tokens": 5,
        "system": [{"type": "text", "text": "s"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "u"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "aGk="}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "g"},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "r"}]}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f"},
        "thinking": {"type": "enabled", "budget_tokens": 10},
        "output_config": {"format": {"type": "json_schema", "schema": {}}},
    },
}  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*path, i))
    return out


@pytest.mark.parametrize("server", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=st.data())
def test_any_value_anywhere_decodes_or_is_a_400(server: Any, data: st.DataObject) -> None:
    """The decoders' invariant (h11's, for its parsers): decode it or raise ``bad_request``, nothing else."""
    body = json.loads(json.dumps(_RICH[server]))
    path = data.draw(st.sampled_from(_paths(body)))
    value = data.draw(_JSON)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    try:
        server.decode_request(body)
    except InvalidRequestError as error:
        assert server.encode_error(error).status == 400


# --- error encoding -------------------------------------------------------------------------------------

ERRORS: list[tuple[LlmError, int, int, type[LlmError]]] = [
    # error, OpenAI status, Anthropic status, what the client decoder of each makes of the reply
    (RateLimitError("slow down", status=429, retry_after=7.2), 429, 429, RateLimitError),
    (ServerError("upstream 500", status=500, provider="openai"), 502, 502, ServerError),
    (OverloadedError("busy", status=529, retry_after=3), 503, 529, OverloadedError),
    (RequestTimeout("too slow"), 504, 504, ServerError),
    (ModelNotFoundError("no such model", status=404), 404, 404, ModelNotFoundError),
    (InvalidRequestError("bad", status=400), 400, 400, InvalidRequestError),
    (InvalidRequestError("too big", status=413), 413, 413, InvalidRequestError),
]


@pytest.mark.parametrize(("error", "openai_status", "anthropic_status", "decoded"), ERRORS)
def test_errors_answer_with_the_right_status(
    error: LlmError, openai_status: int, anthropic_status: int, decoded: type[LlmError]
) -> None:
    for server, client, status in (
        (OPENAI, OpenAIChatDialect(), openai_status),
        (ANTHROPIC, AnthropicDialect(), anthropic_status),
    ):
        reply = server.encode_error(error)
        assert reply.status == status
        back = client.decode_error(reply.status, dict(reply.headers), json.dumps(reply.body).encode())
        assert isinstance(back, decoded), (server, back)
        assert error.message in back.message
        if error.retry_after is not None:
            assert reply.headers["retry-after"] == str(int(-(-error.retry_after // 1)))
            assert back.retry_after == pytest.approx(error.retry_after, abs=0.001)
        assert reply.headers["x-should-retry"] == ("true" if error.retryable else "false")


def test_upstream_auth_failure_is_not_the_callers_401_and_leaks_no_key() -> None:
    error = AuthError("Incorrect API key provided: sk-proj-abcdefghijklmnop1234", status=401, provider="openai")
    for server in (OPENAI, ANTHROPIC):
        reply = server.encode_error(error)
        assert reply.status == 502
        text = json.dumps(reply.body)
        assert "sk-" not in text and "abcdefghijklmnop" not in text
        assert "gateway's credentials" in text
        assert reply.headers["x-should-retry"] == "false"


def test_all_attempts_failed_answers_as_its_last_attempt() -> None:
    error = AllAttemptsFailed(
        [
            Attempt("openai", "gpt-x", AuthError("key sk-secret-0123456789abcdef bad", status=401), 0.1),
            Attempt("anthropic", "claude-x", RateLimitError("slow", status=429, retry_after=2), 0.2),
        ]
    )
    reply = OPENAI.encode_error(error)
    assert reply.status == 429 and reply.headers["retry-after"] == "2"
    message = reply.body["error"]["message"]
    assert "2 attempts failed" in message and "sk-secret" not in message and "claude-x" in message


def test_gateway_own_refusals() -> None:
    reply = OPENAI.error_reply(401, "missing or invalid gateway key")
    assert reply.status == 401 and reply.body["error"]["code"] == "invalid_api_key"
    assert isinstance(OpenAIChatDialect().decode_error(401, {}, json.dumps(reply.body).encode()), AuthError)
    reply = ANTHROPIC.error_reply(401, "missing or invalid gateway key")
    assert reply.body["error"]["type"] == "authentication_error"
    assert isinstance(AnthropicDialect().decode_error(401, {}, json.dumps(reply.body).encode()), AuthError)
    assert ANTHROPIC.error_reply(413, "body too large").body["error"]["type"] == "request_too_large"


def test_context_length_keeps_its_code_for_openai_clients() -> None:
    reply = OPENAI.encode_error(ContextLengthError("too long", status=400))
    assert reply.body["error"]["code"] == "context_length_exceeded"
    back = OpenAIChatDialect().decode_error(400, {}, json.dumps(reply.body).encode())
    assert isinstance(back, ContextLengthError)


# --- stream shapes --------------------------------------------------------------------------------------


def _data_lines(data: bytes) -> list[Any]:
    out = []
    for block in data.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


EVENTS = [
    TextDelta("Hi "),
    ToolCallStart(0, "call_a", "look"),
    ToolCallStart(1, "call_b", "find"),
    ToolCallDelta(0, '{"q":'),
    ToolCallDelta(1, '{"x":1}'),
    ToolCallDelta(0, '"cat"}'),
    ToolCallEnd(0, ToolCall("call_a", "look", {"q": "cat"}, '{"q":"cat"}')),
    ToolCallEnd(1, ToolCall("call_b", "find", {"x": 1}, '{"x":1}')),
    Done(FinishReason.TOOL_CALLS, "tool_use", usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=4)),
]


def test_openai_stream_shape_validates_with_the_official_sdk() -> None:
    chunk_type = pytest.importorskip("openai.types.chat").ChatCompletionChunk
    encoder = OPENAI.stream_encoder(model="answered-model", created=1234, include_usage=True, response_id="chatcmpl-t")
    lines = _data_lines(b"".join(encoder.encode(e) for e in EVENTS))
    assert lines[-1] == "[DONE]"
    chunks = [chunk_type.model_validate(c) for c in lines[:-1]]
    assert {(c.id, c.created, c.model) for c in chunks} == {("chatcmpl-t", 1234, "answered-model")}
    assert chunks[0].choices[0].delta.role == "assistant"
    indexes = [tc.index for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or []]
    assert sorted(set(indexes)) == [0, 1]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 10 and chunks[-1].usage.prompt_tokens_details.cached_tokens == 4


def test_openai_error_mid_stream_has_no_done_terminator() -> None:
    encoder = OPENAI.stream_encoder(model="m", created=1, include_usage=False)
    data = encoder.encode(TextDelta("partial")) + encoder.fail(ServerError("upstream died", status=500))
    lines = _data_lines(data)
    assert "[DONE]" not in lines
    assert lines[-1]["error"]["type"] == "server_error" and "upstream died" in lines[-1]["error"]["message"]
    events = OpenAIChatDialect().stream_decoder().feed(data)
    assert isinstance(events[-1], Done) and events[-1].finish_reason is FinishReason.ERROR


def test_anthropic_stream_shape() -> None:
    encoder = ANTHROPIC.stream_encoder(model="answered-model", created=0, response_id="msg_t")
    data = b"".join(encoder.encode(e) for e in EVENTS)
    blocks = data.decode().split("\n\n")[:-1]
    kinds = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    payloads = [json.loads(b.split("\n")[1].removeprefix("data: ")) for b in blocks]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert payloads[0]["message"]["id"] == "msg_t" and payloads[0]["message"]["model"] == "answered-model"
    starts = [p for p in payloads if p["type"] == "content_block_start"]
    assert [(p["index"], p["content_block"]["type"]) for p in starts] == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    # the second call was held until the first ended: its fragments follow its own start
    order = [(p["type"], p.get("index")) for p in payloads if p["type"].startswith("content_block")]
    assert order.index(("content_block_stop", 1)) < order.index(("content_block_start", 2))
    delta = payloads[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"input_tokens": 6, "cache_read_input_tokens": 4, "output_tokens": 5}
    failing = ANTHROPIC.stream_encoder(model="m", created=0)
    tail = failing.encode(TextDelta("x")) + failing.fail(OverloadedError("busy"))
    assert tail.decode().split("\n\n")[-2].startswith("event: error\ndata: ")
    assert b"message_stop" not in tail
