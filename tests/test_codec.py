"""The tagged JSON codec (``llmrelay.to_json`` / ``from_json`` / ``dumps`` / ``loads``): random values of
every type round-trip (hypothesis), every recorded transcript's events and folded answer round-trip,
malformed input is a ``ValueError``, and ``llmrelay chat --json`` prints its lines through the codec."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import subprocess
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay import (
    AllAttemptsFailed,
    Attempt,
    AuthError,
    CallWarning,
    ChatRequest,
    ChatResponse,
    ConnectTimeout,
    ContentFilterError,
    ContextLengthError,
    Done,
    FinishReason,
    FirstByteTimeout,
    IdleTimeout,
    ImagePart,
    InvalidRequestError,
    JsonSchemaFormat,
    LlmError,
    Message,
    MissingApiKey,
    ModelNotFoundError,
    NetworkError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ReasoningDelta,
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
    ToolDef,
    TotalTimeout,
    UnsupportedCapability,
    Usage,
    dumps,
    fold,
    from_json,
    loads,
    to_json,
)
from llmrelay.testing import FakeUpstream
from llmrelay.testing.openai_kit import KIT
from llmrelay.wire.anthropic import AnthropicDialect
from llmrelay.wire.dialect import Dialect
from llmrelay.wire.gemini import GeminiDialect
from llmrelay.wire.ollama import OllamaDialect
from llmrelay.wire.openai_chat import OpenAIChatDialect

from wire_helpers import FIXTURES, Transcript, check_stream_laws, feed_all, load


def norm(value: Any) -> Any:
    """A comparable form that also tells apart what ``==`` does not: an enum from its value, a tuple from
    a list, and errors (compared by class and ``to_json``, since exceptions compare by identity)."""
    if isinstance(value, LlmError):
        return (type(value), value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value), tuple(norm(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, list | tuple):
        return (type(value), tuple(norm(item) for item in value))
    if isinstance(value, Mapping):
        return (type(value), {key: norm(item) for key, item in value.items()})
    return (type(value), value)


def assert_round_trips(value: object) -> dict[str, Any]:
    data = to_json(value)
    assert isinstance(data["type"], str)
    assert norm(from_json(data)) == norm(value)
    text = dumps(value)
    assert "\n" not in text
    assert json.loads(text) == data  # the dict is plain JSON: nothing is lost on the way through text
    assert norm(loads(text)) == norm(value)
    assert norm(loads(text.encode(), type(value))) == norm(value)
    return data


# --- strategies --------------------------------------------------------------------------------------------

texts = st.text(max_size=10)
names = st.text(min_size=1, max_size=8)
# Error texts avoid ':', '=', '@' and '/', so that no generated text is shaped like an echoed credential: the
# error codec scrubs credential shapes on the way in, which is its business, not this test's.
error_texts = st.text(st.characters(blacklist_characters=":=@/", blacklist_categories=["Cs"]), max_size=10)


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=3)
counts = opt(st.integers(0, 10**9))
usages = st.builds(Usage, counts, counts, counts, counts, counts, counts)
tool_calls = st.builds(ToolCall, id=opt(texts), name=texts, arguments=opt(json_objects), arguments_raw=texts)
reasoning_parts = st.builds(ReasoningPart, text=texts, signature=opt(texts), redacted=opt(texts))
details = opt(st.sampled_from(["auto", "low", "high"]))
images = st.builds(
    ImagePart,
    data=st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()),
    media_type=st.sampled_from(["image/png", "image/jpeg"]),
    detail=details,
) | st.builds(ImagePart, url=texts.map(lambda t: f"https://example.com/{t}"), detail=details)
parts = st.builds(TextPart, texts) | images | reasoning_parts
contents = texts | st.lists(parts, max_size=3)
messages = st.one_of(
    st.builds(Message, role=st.sampled_from([Role.SYSTEM, Role.USER]), content=contents, name=opt(texts)),
    st.builds(Message, role=st.just(Role.ASSISTANT), content=contents, tool_calls=st.lists(tool_calls, max_size=2)),
    st.builds(Message, role=st.just(Role.TOOL), content=contents, tool_call_id=names, name=opt(texts)),
)
tool_defs = st.builds(ToolDef, name=texts, description=texts, parameters=json_objects, strict=opt(st.booleans()))
schemas = st.builds(JsonSchemaFormat, schema=json_objects, name=texts, strict=st.booleans(), description=opt(texts))
floats = st.floats(0, 2, allow_nan=False)
requests = st.builds(
    ChatRequest,
    model=opt(texts),
    messages=st.lists(messages, max_size=3),
    system=opt(texts),
    temperature=opt(floats),
    max_tokens=opt(st.integers(1, 10**6)),
    top_p=opt(floats),
    stop=opt(st.lists(texts, max_size=2)),
    tools=st.lists(tool_defs, max_size=2),
    tool_choice=opt(st.sampled_from(["auto", "none", "required"]) | texts),
    parallel_tool_calls=opt(st.booleans()),
    response_format=opt(st.sampled_from(["json", "text"]) | schemas),
    seed=opt(st.integers(-(2**31), 2**31)),
    provider_options=st.dictionaries(texts, json_objects, max_size=2),
)
ERROR_CLASSES = [
    LlmError,
    MissingApiKey,
    UnsupportedCapability,
    ProviderError,
    AuthError,
    RateLimitError,
    QuotaExceededError,
    OverloadedError,
    ServerError,
    InvalidRequestError,
    ContextLengthError,
    ModelNotFoundError,
    ContentFilterError,
    NetworkError,
    RequestTimeout,
    ConnectTimeout,
    FirstByteTimeout,
    IdleTimeout,
    TotalTimeout,
    ProtocolError,
]
plain_errors = st.builds(
    lambda cls, **kw: cls(**kw),
    st.sampled_from(ERROR_CLASSES),
    message=error_texts,
    provider=opt(error_texts),
    status=opt(st.integers(100, 599)),
    code=opt(error_texts),
    error_type=opt(error_texts),
    retry_after=opt(st.floats(0, 1e6)),
    request_id=opt(error_texts),
    body=opt(error_texts),
    retryable=opt(st.booleans()),
)
attempts = st.builds(Attempt, provider=names, model=opt(error_texts), error=plain_errors, elapsed_s=st.floats(0, 100))
errors = plain_errors | st.builds(AllAttemptsFailed, st.lists(attempts, max_size=2))
indexes = st.integers(0, 1000)
events = st.one_of(
    st.builds(TextDelta, texts),
    st.builds(ReasoningDelta, texts, opt(texts), opt(texts)),
    st.builds(ToolCallStart, index=indexes, id=opt(texts), name=texts),
    st.builds(ToolCallDelta, index=indexes, arguments_delta=texts),
    st.builds(ToolCallEnd, index=indexes, call=tool_calls),
    st.builds(
        Done,
        finish_reason=st.sampled_from(FinishReason),
        finish_reason_raw=opt(texts),
        usage=opt(usages),
        error=opt(errors),
        model=opt(texts),
        refusal=opt(texts),
    ),
)
warnings = st.builds(CallWarning, texts, texts)
responses = st.builds(
    ChatResponse,
    text=texts,
    reasoning=texts,
    tool_calls=st.lists(tool_calls, max_size=2).map(tuple),
    finish_reason=st.sampled_from(FinishReason),
    finish_reason_raw=opt(texts),
    usage=opt(usages),
    model=opt(texts),
    provider=opt(texts),
    request_id=opt(texts),
    warnings=st.lists(warnings, max_size=2).map(tuple),
    refusal=opt(texts),
    reasoning_parts=st.lists(reasoning_parts, max_size=2).map(tuple),
    error=opt(errors),
    attempts=st.lists(attempts, max_size=2).map(tuple),
)
values = st.one_of(
    events, messages, requests, responses, usages, errors, parts, tool_calls, tool_defs, schemas, warnings
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_every_value_round_trips(value: object) -> None:
    assert_round_trips(value)


@settings(max_examples=100, deadline=None)
@given(st.lists(events, max_size=8))
def test_a_stream_round_trips_as_json_lines(stream: list[Any]) -> None:
    lines = "\n".join(dumps(event) for event in stream)
    assert norm([loads(line) for line in lines.splitlines()]) == norm(stream)


# --- the recorded transcripts ------------------------------------------------------------------------------

OPENAI_FAMILY = {"openai", "azure", "groq", "deepseek", "dashscope", "openrouter", "vllm", "llamacpp"}
TRANSCRIPTS = [load(p.stem) for p in sorted(FIXTURES.glob("*.json"))]


def dialect_for(t: Transcript) -> Dialect:
    if t.provider in OPENAI_FAMILY:
        return OpenAIChatDialect()
    if t.provider == "ollama":
        return OllamaDialect(endpoint="generate" if t.meta["endpoint"] == "/api/generate" else "chat")
    return AnthropicDialect() if t.provider == "anthropic" else GeminiDialect()


def test_every_transcript_is_covered() -> None:
    assert len(TRANSCRIPTS) == 40
    assert {t.provider for t in TRANSCRIPTS} <= OPENAI_FAMILY | {"anthropic", "gemini", "ollama"}


@pytest.mark.parametrize("t", TRANSCRIPTS, ids=lambda t: t.name)
def test_a_transcript_round_trips(t: Transcript) -> None:
    dialect = dialect_for(t)
    if t.status >= 400:
        assert_round_trips(dialect.decode_error(t.status, {}, t.wire))
        return
    if not t.is_stream:
        assert_round_trips(dialect.decode_body(t.wire))
        return
    stream = feed_all(dialect.stream_decoder, [t.wire])
    for event in stream:
        assert_round_trips(event)
    decoded = [loads(dumps(event)) for event in stream]
    check_stream_laws(decoded)  # type: ignore[arg-type]
    assert norm(fold(decoded)) == norm(fold(stream))  # type: ignore[arg-type]
    assert_round_trips(fold(stream))


# --- the format: what the CLI has always printed, and the rules the module documents ----------------------


def test_events_keep_the_cli_line_format() -> None:
    call = ToolCall.create("get_weather", {"city": "Paris"}, id="call_1")
    assert to_json(TextDelta("Hi")) == {"type": "text", "text": "Hi"}
    assert to_json(ReasoningDelta("hm", signature="sig")) == {"type": "reasoning", "text": "hm", "signature": "sig"}
    assert to_json(ToolCallStart(0, None, "f")) == {"type": "tool_call_start", "index": 0, "name": "f"}
    assert to_json(ToolCallDelta(0, '{"a"')) == {"type": "tool_call_delta", "index": 0, "arguments_delta": '{"a"'}
    assert to_json(ToolCallEnd(1, call)) == {
        "type": "tool_call",
        "index": 1,
        "id": "call_1",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
        "arguments_raw": '{"city": "Paris"}',
    }
    done = to_json(Done(FinishReason.LENGTH, "max_tokens", Usage(10, 5, cache_read_tokens=2), model="m"))
    assert done == {
        "type": "done",
        "finish_reason": "length",
        "finish_reason_raw": "max_tokens",
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "cache_read_tokens": 2},
        "model": "m",
    }
    assert from_json(done["usage"], Usage) == Usage(10, 5, cache_read_tokens=2)


def test_tags_where_the_field_does_not_say_the_type() -> None:
    request = ChatRequest(
        messages=[Message.user([TextPart("see"), ImagePart(url="https://x/a.png")])],
        response_format=JsonSchemaFormat({"type": "object"}),
    )
    data = to_json(request)
    assert data["type"] == "chat_request"
    assert [part["type"] for part in data["messages"][0]["content"]] == ["text_part", "image_part"]
    assert "type" not in data["messages"][0]  # a messages entry is always a message
    assert data["response_format"]["type"] == "json_schema"
    assert to_json(RateLimitError("slow", status=429))["type"] == "error"
    assert to_json(RateLimitError("slow", status=429))["kind"] == "rate_limit"


def test_a_matching_tag_inside_is_accepted_and_a_wrong_one_is_not() -> None:
    done = {"type": "done", "finish_reason": "stop", "usage": {"type": "usage", "input_tokens": 1}}
    assert from_json(done) == Done(FinishReason.STOP, usage=Usage(1))
    with pytest.raises(ValueError, match="expected a usage"):
        from_json({**done, "usage": {"type": "text", "text": "x"}})


def test_unknown_keys_are_ignored() -> None:
    assert from_json({"type": "text", "text": "a", "added_later": 1}) == TextDelta("a")


@pytest.mark.parametrize(
    "data",
    [
        {"type": "no_such_type"},
        {"text": "no tag"},
        {"type": 3},
        {"type": "text"},
        {"type": "text", "text": 1},
        {"type": "tool_call_start", "index": True, "name": "f"},
        {"type": "done", "finish_reason": "finished"},
        {"type": "message", "role": "wizard"},
        {"type": "message", "role": "tool", "content": "no call id"},
        {"type": "message", "role": "user", "content": [{"type": "text", "text": "an event, not a part"}]},
        {"type": "image_part"},
        {"type": "chat_request", "stop": "not a list"},
        {"type": "chat_request", "response_format": "yaml"},
        {"type": "error", "message": "no kind"},
        {"type": "done", "finish_reason": "error", "error": "not an object"},
    ],
)
def test_malformed_input_is_a_value_error(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        from_json(data)


def test_other_failures_are_value_errors_too() -> None:
    with pytest.raises(ValueError):
        loads("{not json")
    with pytest.raises(ValueError):
        from_json([1, 2])  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="expected a TextDelta"):
        from_json(to_json(Usage(1, 2)), TextDelta)
    with pytest.raises(ValueError, match="unknown type"):
        from_json({"x": 1}, dict)
    with pytest.raises(ValueError, match="cannot encode"):
        to_json(object())
    with pytest.raises(ValueError, match="not a JSON value"):
        to_json(ChatRequest(provider_options={"openai": {"blob": b"raw bytes"}}))
    with pytest.raises(ValueError):
        dumps(ChatRequest(temperature=float("nan")))


def test_a_line_is_one_line_of_utf_8_whatever_the_text() -> None:
    """Lone surrogates (a provider may send ``\\ud800`` escaped) have no UTF-8 form, and U+2028, U+2029 and
    NEL end a line for ``str.splitlines``: a line escapes them, and they come back as they were."""
    for text in ("\ud800", "a\udfffb", "x\u2028y\u2029z\x85", "naïve 日本 😀"):
        line = dumps(TextDelta(text))
        assert len(line.encode("utf-8").splitlines()) == 1 and len(line.splitlines()) == 1
        assert loads(line) == TextDelta(text)
    assert dumps(TextDelta("日本")) == '{"type": "text", "text": "日本"}'  # other characters stay as they are


def test_an_unknown_error_kind_keeps_its_kind() -> None:
    error = from_json({"type": "error", "kind": "from_the_future", "message": "m"})
    assert isinstance(error, LlmError) and error.kind == "from_the_future"


def test_converters_are_built_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = [TextDelta("a"), Done(FinishReason.STOP, usage=Usage(1, 2)), ChatRequest(messages=[Message.user("x")])]
    for value in sample:
        from_json(to_json(value))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("type hints read again")

    monkeypatch.setattr(typing, "get_type_hints", refuse)
    for value in sample:
        assert norm(from_json(to_json(value))) == norm(value)


def test_the_codec_is_in_the_flat_namespace() -> None:
    for name in ("to_json", "from_json", "dumps", "loads"):
        assert name in llmrelay.__all__
    assert llmrelay.loads(llmrelay.dumps(Usage(1, 2)), Usage) == Usage(1, 2)


# --- llmrelay chat --json ----------------------------------------------------------------------------------

KEY = "sk-codec-SECRET-abcdefghij0123456789"


async def chat_json(tmp_path: Path, upstream: FakeUpstream, *args: str) -> tuple[int, list[str]]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) and k not in ("OLLAMA_HOST", "LLMRELAY_CONFIG")
    }
    (tmp_path / "xdg").mkdir(exist_ok=True)
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        HOME=str(tmp_path),
        OPENAI_API_KEY=KEY,
        OPENAI_BASE_URL=upstream.url("/v1"),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        "chat",
        "--json",
        *args,
        "hi",
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert KEY not in out.decode()
    return (proc.returncode if proc.returncode is not None else -1), out.decode().splitlines()


@pytest.mark.parametrize("mode", [(), ("--no-stream",)], ids=["stream", "no-stream"])
async def test_cli_json_lines_decode_with_the_codec(
    mode: tuple[str, ...], upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add(KIT.tool_calls([("call_1", "get_weather", {"city": "Paris"})], stream=not mode))
    code, lines = await chat_json(tmp_path, upstream, *mode)
    assert code == 0, lines
    decoded = [loads(line) for line in lines]
    assert [dumps(event) for event in decoded[:-1]] == lines[:-1]  # the codec's own lines, byte for byte
    # The done line is the codec's Done plus the provider that answered (a fallback member's name) and
    # what the answer cost (a decimal string, never a float).
    done = json.loads(lines[-1])
    assert done.pop("cost")["total"] == "0.0000045"
    assert done.pop("provider") == "openai" and done == json.loads(dumps(decoded[-1]))
    answer = fold(decoded)  # type: ignore[arg-type]
    assert answer.tool_calls == (ToolCall.create("get_weather", {"city": "Paris"}, id="call_1"),)
    assert answer.finish_reason is FinishReason.TOOL_CALLS and answer.usage == Usage(10, 5)


async def test_cli_json_error_line_is_the_error_codec_plus_exit_code(upstream: FakeUpstream, tmp_path: Path) -> None:
    (tmp_path / "llmrelay.toml").write_text("[retry]\nmax_attempts = 1\n")  # the 429 itself, not retried
    upstream.add(KIT.error(429, retry_after=3))
    code, lines = await chat_json(tmp_path, upstream)
    last = json.loads(lines[-1])
    error = from_json(last)
    assert isinstance(error, RateLimitError) and error.status == 429 and error.retry_after == 3
    assert last["exit_code"] == code == 5


async def test_cli_json_lines_survive_unicode_line_separators(upstream: FakeUpstream, tmp_path: Path) -> None:
    """U+2028, U+2029 and NEL are raw in JSON text but end a line for ``str.splitlines`` (and old
    JavaScript): the codec escapes them, so each event stays one line to every reader."""
    upstream.add(KIT.text("one\u2028two\u2029three\x85four", stream=True))
    code, lines = await chat_json(tmp_path, upstream)
    assert code == 0, lines
    assert fold([loads(line) for line in lines]).text == "one\u2028two\u2029three\x85four"  # type: ignore[misc]


def test_cli_lines_scrub_every_error_text_the_codec_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's last guard (``scrub_secrets``) covers every text of an error's JSON form, the errors inside
    an ``AllAttemptsFailed`` too, in ``error`` lines and in the error a ``done`` carries."""
    from llmrelay.cli._format import error_json, event_json

    secret = "zz-other-service-secret-42"
    monkeypatch.setenv("OTHER_SERVICE_TOKEN", secret)
    inner = ServerError(f"upstream saw {secret}", code=secret, body=f'{{"echo": "{secret}"}}')
    failed = AllAttemptsFailed([Attempt("openai", "m", inner, 0.5)])
    lines = [error_json(failed, 5), event_json(Done(FinishReason.ERROR, error=inner))]
    for line in lines:
        assert secret not in line and "[REDACTED]" in line, line
    error = from_json(json.loads(lines[0]))
    assert isinstance(error, AllAttemptsFailed) and isinstance(error.attempts[0].error, ServerError)
