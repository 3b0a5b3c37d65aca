"""GeminiProvider end to end, through real sockets, against a fake upstream on 127.0.0.1; plus the error
classification and the decoder cases the recorded transcripts do not cover."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from llmrelay import (
    AuthError,
    ChatRequest,
    ContextLengthError,
    Done,
    FinishReason,
    GeminiProvider,
    InvalidRequestError,
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
    ServerError,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolDef,
    fold,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.gemini_kit import KIT
from llmrelay.testing.kit import DialectKit
from llmrelay.wire.gemini import GeminiStreamDecoder, decode_body, decode_error, parse_duration

from wire_helpers import FIXTURES, check_stream_laws, feed_all

KEY = "AIzaSyTESTTESTTESTTESTTESTTESTTEST12345"
REQ = ChatRequest(messages=[Message.user("Hello")])
STREAM_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
BODY_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


def provider(up: FakeUpstream, **kw: Any) -> GeminiProvider:
    return GeminiProvider("gemini-2.5-flash", base_url=up.url(), api_key=KEY, **kw)


def sse(*chunks: dict[str, Any], **kw: Any) -> Reply:
    frames = tuple(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks)
    return Reply(chunks=frames, content_type="text/event-stream", **kw)


def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}


def assert_key_only_in_header(up: FakeUpstream) -> None:
    for seen in up.requests:
        assert seen.headers.get("x-goog-api-key") == KEY
        assert "authorization" not in seen.headers
        assert KEY not in seen.path and "key" not in seen.query
        assert all(KEY not in v for v in seen.query.values())


# --- happy paths ----------------------------------------------------------------------------------------


async def test_stream_replays_a_recorded_transcript(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "gemini_stream_utf8_usage_change", chunk_size=37))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
        response = stream.response()
    check_stream_laws(events)
    assert response.text == "The temperature in Paris is 30°C.\n"
    assert response.finish_reason is FinishReason.STOP and response.finish_reason_raw == "STOP"
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (79, 12)
    assert response.model == "gemini-2.0-flash" and response.provider == "gemini"
    sent = upstream.requests[0]
    assert sent.method == "POST" and sent.path == STREAM_PATH and sent.query == {"alt": "sse"}
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    assert_key_only_in_header(upstream)


async def test_text_arrives_incrementally(upstream: FakeUpstream) -> None:
    upstream.add(sse(text_chunk("a"), text_chunk("b"), text_chunk("c", "STOP"), chunk_delay=0.05))
    loop = asyncio.get_running_loop()
    times = []
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                times.append(loop.time())
    assert len(times) == 3
    assert times[-1] - times[0] >= 0.08, "deltas were buffered instead of streamed"


async def test_chat_non_stream_uses_generate_content(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "gemini_nonstream"))
    async with provider(upstream) as p:
        response = await p.chat(ChatRequest(messages=[Message.user("Hello")], max_tokens=20))
    assert response.text == "Hello! How can I help you today?"
    # output_tokens is candidatesTokenCount 9 + thoughtsTokenCount 34: every generated token
    assert response.usage is not None and response.usage.reasoning_tokens == 34 and response.usage.output_tokens == 43
    sent = upstream.requests[0]
    assert sent.path == BODY_PATH and sent.query == {}
    assert sent.json["generationConfig"] == {"maxOutputTokens": 20}
    assert_key_only_in_header(upstream)


async def test_function_call_and_the_follow_up_request(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "gemini_stream_function_call", chunk_size=101))
    upstream.add(KIT.text("France", stream=False))
    tools = [ToolDef("get_country", "The user's country")]
    async with provider(upstream) as p:
        async with p.chat_stream(ChatRequest(messages=[Message.user("where?")], tools=tools)) as stream:
            events = [e async for e in stream]
        check_stream_laws(events)
        first = stream.response()
        (call,) = first.tool_calls
        assert call.id == "llmrelay_call_0" and call.name == "get_country" and call.arguments == {}
        # Gemini says STOP when it calls a function: normalised, the raw value kept.
        assert first.finish_reason is FinishReason.TOOL_CALLS and first.finish_reason_raw == "STOP"
        assert first.reasoning == "" and first.reasoning_parts[0].signature is not None
        follow = ChatRequest(
            messages=[Message.user("where?"), first.message, Message.tool("t1", "France")], tools=tools
        )
        final = await p.chat(follow)
    assert final.text == "France"
    sent = upstream.requests[1].json["contents"]
    assert sent[1]["role"] == "model"
    assert sent[1]["parts"][0]["functionCall"] == {"name": "get_country", "args": {}}
    assert sent[1]["parts"][0]["thoughtSignature"] == first.reasoning_parts[0].signature
    assert sent[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_country", "response": {"output": "France"}}}],
    }


async def test_vertex_streamed_arguments_through_the_provider(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "gemini_vertex_stream_partial_args_parallel", chunk_size=53))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
    check_stream_laws(events)
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    ends = [e.call for e in events if isinstance(e, ToolCallEnd)]
    assert [s.name for s in starts] == ["getWeather", "getWeather"]
    assert [c.arguments for c in ends] == [{"location": "Boston"}, {"location": "San Francisco"}]


# --- errors ---------------------------------------------------------------------------------------------


async def test_400_api_key_invalid_is_auth_error_with_hint_and_no_key(upstream: FakeUpstream) -> None:
    recorded = (FIXTURES / "gemini_error_400_api_key_invalid.wire").read_bytes()
    echoed = json.loads(recorded)
    echoed["error"]["message"] = f"API key not valid: {KEY}"
    upstream.add(Reply.raw(recorded, status=400), Reply.json(echoed, status=400, headers={"x-request-id": "r-1"}))
    async with provider(upstream) as p:
        with pytest.raises(AuthError) as streamed:
            async with p.chat_stream(REQ):
                pass
        with pytest.raises(AuthError) as plain:
            await p.chat(REQ)
    for err in (streamed.value, plain.value):
        assert err.status == 400 and err.code == "API_KEY_INVALID" and err.provider == "gemini"
        assert "GEMINI_API_KEY" in str(err) and not err.retryable
        for text in (str(err), repr(err), err.body_excerpt or "", err.message):
            assert KEY not in text and "TESTTEST" not in text
    assert plain.value.request_id == "r-1"
    assert_key_only_in_header(upstream)


async def test_429_rate_limit_retries_after_the_retry_info_delay(upstream: FakeUpstream) -> None:
    upstream.add(KIT.error(429, retry_after=2.5), KIT.error(429, retry_after=30))
    async with provider(upstream) as p:
        with pytest.raises(RateLimitError) as first:
            await p.chat(REQ)
        with pytest.raises(RateLimitError) as second:
            async with p.chat_stream(REQ):
                pass
    assert first.value.retry_after == 2.5 and first.value.retryable and first.value.status == 429
    assert second.value.retry_after == 30.0


async def test_daily_quota_is_quota_exceeded_not_retryable(upstream: FakeUpstream) -> None:
    upstream.add(KIT.quota())
    async with provider(upstream) as p:
        with pytest.raises(QuotaExceededError) as info:
            await p.chat(REQ)
    assert not info.value.retryable and info.value.status == 429 and info.value.code == "RESOURCE_EXHAUSTED"


async def test_503_is_overloaded(upstream: FakeUpstream) -> None:
    upstream.add(KIT.error(503))
    async with provider(upstream) as p:
        with pytest.raises(OverloadedError) as info:
            async with p.chat_stream(REQ):
                pass
    assert info.value.retryable and info.value.status == 503


async def test_midstream_error_after_output(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "gemini_stream_midstream_error_503", chunk_size=29))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises(OverloadedError) as info:
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR and done.error is info.value
    assert info.value.status == 503 and info.value.provider == "gemini"
    response = stream.response()
    assert response.text == "Okay" and response.error is info.value


async def test_stream_cut_midway_is_an_error_not_a_success(upstream: FakeUpstream) -> None:
    wire = (FIXTURES / "gemini_stream_text.wire").read_bytes()
    upstream.add(Reply(chunks=(wire,), content_type="text/event-stream", cut_after=len(wire) // 2))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises((NetworkError, ProtocolError)):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR and done.error is not None


async def test_stream_without_finish_reason_is_a_protocol_error(upstream: FakeUpstream) -> None:
    upstream.add(sse(text_chunk("hi"), text_chunk(" there")))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        with pytest.raises(ProtocolError, match="finishReason"):
            await stream.until_done()
    assert stream.response().text == "hi there"


async def test_breaking_out_early_closes_the_upstream_connection(upstream: FakeUpstream) -> None:
    upstream.add(sse(*(text_chunk(f"t{i}") for i in range(200)), text_chunk("", "STOP"), chunk_delay=0.02))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await upstream.wait_disconnect(within=3.0)
    assert upstream.disconnects == 1 and upstream.completed == 0


async def test_malformed_function_call_ends_as_a_retryable_error(upstream: FakeUpstream) -> None:
    chunk = {
        "candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}],
        "usageMetadata": {"promptTokenCount": 9},
    }
    upstream.add(sse(text_chunk("Let me call"), chunk), Reply.json(chunk))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            with pytest.raises(ProviderError) as streamed:
                await stream.until_done()
        with pytest.raises(ProviderError) as plain:
            await p.chat(REQ)
    for err in (streamed.value, plain.value):
        assert err.code == "MALFORMED_FUNCTION_CALL" and err.retryable and err.provider == "gemini"
    assert stream.response().text == "Let me call"
    assert stream.response().finish_reason is FinishReason.ERROR


async def test_list_models_reads_every_page(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply.json({"models": [{"name": "models/gemini-2.5-flash"}], "nextPageToken": "p/2"}),
        Reply.json({"models": [{"name": "models/gemini-2.5-pro", "displayName": "Gemini 2.5 Pro"}]}),
    )
    async with provider(upstream) as p:
        models = await p.list_models()
    assert [m.id for m in models] == ["gemini-2.5-flash", "gemini-2.5-pro"]
    assert {m.provider for m in models} == {"gemini"}
    first, second = upstream.requests
    assert first.method == "GET" and first.path == "/v1beta/models" and first.query == {"pageSize": "1000"}
    assert second.query == {"pageSize": "1000", "pageToken": "p/2"}
    assert_key_only_in_header(upstream)


async def test_api_version_and_model_override(upstream: FakeUpstream) -> None:
    upstream.add(KIT.text("hi", stream=False))
    async with GeminiProvider(base_url=upstream.url("/proxy/"), api_key=KEY, api_version="v1") as p:
        await p.chat(ChatRequest(model="gemini-2.0-flash", messages=[Message.user("x")]))
    assert upstream.requests[0].path == "/proxy/v1/models/gemini-2.0-flash:generateContent"


# --- keys -----------------------------------------------------------------------------------------------


def test_missing_key_names_both_variables(clean_env: None) -> None:
    with pytest.raises(MissingApiKey, match=r"GEMINI_API_KEY.*GOOGLE_API_KEY"):
        GeminiProvider("gemini-2.5-flash")


def test_key_from_the_environment(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-123")
    assert GeminiProvider("m")._auth_headers() == {"x-goog-api-key": "google-key-123"}
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-456")
    p = GeminiProvider("m")
    assert p._auth_headers() == {"x-goog-api-key": "gemini-key-456"}
    assert "gemini-key-456" not in repr(p)


def test_a_custom_base_url_needs_no_key(clean_env: None) -> None:
    p = GeminiProvider("m", base_url="http://127.0.0.1:1")
    assert p._auth_headers() == {}


# --- the scenario kit, through the provider ---------------------------------------------------------------


def test_the_kit_satisfies_the_protocol() -> None:
    kit: DialectKit = KIT
    assert kit.name == "gemini" and kit.quota_status == 429


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "body"])
async def test_kit_scenarios(upstream: FakeUpstream, stream: bool) -> None:
    upstream.add(
        KIT.text("Hello wörld", stream=stream, usage=(7, 3)),
        KIT.tool_calls([("c1", "get_weather", {"city": "Paris"}), (None, "get_time", {})], stream=stream),
        KIT.reasoning("Hmm.", "42", stream=stream),
        KIT.length("cut", stream=stream),
    )
    p = KIT.provider(upstream.url(), "gemini-2.5-flash")

    async def call() -> Any:
        if not stream:
            return await p.chat(REQ)
        async with p.chat_stream(REQ) as s:
            events = [e async for e in s]
        check_stream_laws(events)
        return s.response()

    async with p:
        text, tools, reasoning, length = [await call() for _ in range(4)]
    assert text.text == "Hello wörld" and text.usage.input_tokens == 7 and text.usage.output_tokens == 3
    assert [(c.id, c.name, c.arguments) for c in tools.tool_calls] == [
        ("c1", "get_weather", {"city": "Paris"}),
        ("llmrelay_call_1", "get_time", {}),  # Gemini sent no id: a synthetic one, answerable with Message.tool
    ]
    assert reasoning.reasoning == "Hmm." and reasoning.text == "42" and reasoning.usage.reasoning_tokens == 7
    assert length.finish_reason is FinishReason.LENGTH and length.finish_reason_raw == "MAX_TOKENS"


async def test_kit_request_inspection(upstream: FakeUpstream) -> None:
    from llmrelay import ImagePart, TextPart, ToolCall

    upstream.add(KIT.text("ok", stream=False))
    calls = [ToolCall.create("get_weather", {"city": "Paris"}, id="c1")]
    request = ChatRequest(
        messages=[
            Message.user([TextPart("look"), ImagePart(data="aGk=", media_type="image/png")]),
            Message.assistant("", calls),
            Message.tool("c1", "sunny"),
        ]
    )
    async with KIT.provider(upstream.url()) as p:
        await p.chat(request)
    seen = upstream.requests[0]
    assert [m["role"] for m in KIT.sent_messages(seen)] == ["user", "model", "user"]
    assert KIT.sent_image(seen)
    assert KIT.sent_tool_result(seen, "c1", "sunny")
    assert not KIT.sent_tool_result(seen, "c2", "sunny") and not KIT.sent_tool_result(seen, "c1", "rain")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthError),
        (403, AuthError),
        (404, ModelNotFoundError),
        (408, Exception),
        (429, RateLimitError),
        (500, ServerError),
        (503, OverloadedError),
        (504, ServerError),
    ],
)
def test_kit_error_bodies_classify(status: int, cls: type[Exception]) -> None:
    reply = KIT.error(status, retry_after=1.5)
    err = decode_error(status, {}, b"".join(reply.chunks))
    assert isinstance(err, cls) and err.status == status and err.retry_after == 1.5


# --- classification and decoding details --------------------------------------------------------------


def _error(status: int, gstatus: str | None, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": status, "message": "m"}
    if gstatus:
        error["status"] = gstatus
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}).encode()


def _quota(*ids: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": i} for i in ids]}


def _retry(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def _info(reason: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}


@pytest.mark.parametrize(
    ("body", "cls", "retry_after"),
    [
        (_error(429, "RESOURCE_EXHAUSTED"), RateLimitError, None),
        (_error(429, "RESOURCE_EXHAUSTED", _retry("45.837906927s")), RateLimitError, 45.837906927),
        (
            _error(429, "RESOURCE_EXHAUSTED", _quota("GenerateContentInputTokensPerModelPerMinute"), _retry("20s")),
            RateLimitError,
            20.0,
        ),
        (
            _error(
                429,
                "RESOURCE_EXHAUSTED",
                _quota(
                    "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                ),
                _retry("20s"),
            ),
            QuotaExceededError,
            20.0,
        ),
        (_error(429, "RESOURCE_EXHAUSTED", _quota("DailyTokensPerProject")), QuotaExceededError, None),
        (_error(403, "PERMISSION_DENIED", _info("BILLING_DISABLED")), QuotaExceededError, None),
        (_error(429, "RESOURCE_EXHAUSTED", _info("RATE_LIMIT_EXCEEDED")), RateLimitError, None),
        (_error(403, "PERMISSION_DENIED", _info("SERVICE_DISABLED")), AuthError, None),
        (_error(401, "UNAUTHENTICATED"), AuthError, None),
        (_error(400, "INVALID_ARGUMENT", _info("API_KEY_INVALID")), AuthError, None),
        (_error(400, "FAILED_PRECONDITION"), InvalidRequestError, None),
        (_error(404, "NOT_FOUND"), ModelNotFoundError, None),
        (_error(500, "INTERNAL"), ServerError, None),
        (_error(504, "DEADLINE_EXCEEDED"), ServerError, None),
        (_error(503, "UNAVAILABLE", _retry("bogus")), OverloadedError, None),
        (_error(418, None), InvalidRequestError, None),
        (b"<html>bad gateway</html>", ServerError, None),
    ],
)
def test_error_classification(body: bytes, cls: type[Exception], retry_after: float | None) -> None:
    status = json.loads(body)["error"]["code"] if body.startswith(b"{") else 502
    err = decode_error(status, {}, body)
    assert type(err) is cls, err
    assert err.retry_after == retry_after and err.status == status


def test_context_overflow_is_not_guessed_from_the_message() -> None:
    body = _error(400, "INVALID_ARGUMENT").replace(b'"m"', b'"The input token count exceeds the maximum"')
    err = decode_error(400, {}, body)
    assert type(err) is InvalidRequestError and not isinstance(err, ContextLengthError)


def test_vertex_list_wrapped_error_and_retry_after_header_fallback() -> None:
    body = b'[{"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}]'
    err = decode_error(429, {"retry-after": "3"}, body)
    assert isinstance(err, RateLimitError) and err.retry_after == 3.0


def test_durations() -> None:
    assert (
        parse_duration("30s") == 30.0
        and parse_duration("0.5s") == 0.5
        and parse_duration("1.000340012s") == 1.000340012
    )
    assert parse_duration("30") is None and parse_duration(30) is None and parse_duration("s") is None
    # A retryDelay far in the future is capped like Retry-After (item 16); a negative one is no delay.
    assert parse_duration("99999999999s") == 3600.0 and parse_duration("-5s") is None


def test_usage_last_report_wins_and_thoughts_are_output() -> None:
    chunks = [
        {**text_chunk("a"), "usageMetadata": {"promptTokenCount": 50, "totalTokenCount": 50}},
        {"usageMetadata": {"trafficType": "ON_DEMAND"}},
        {
            **text_chunk("b", "STOP"),
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 100,
                "cachedContentTokenCount": 32,
                "totalTokenCount": 143,
            },
        },
    ]
    wire = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
    usage = fold(feed_all(GeminiStreamDecoder, [wire])).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (40, 103, 100)
    assert (usage.cache_read_tokens, usage.total_tokens) == (32, 143)


def test_a_blocked_prompt_is_a_content_filter() -> None:
    body = b'{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 5}}'
    response = decode_body(body)
    assert response.finish_reason is FinishReason.CONTENT_FILTER and response.finish_reason_raw == "PROHIBITED_CONTENT"
    events = feed_all(GeminiStreamDecoder, [b"data: " + body + b"\r\n\r\n"])
    check_stream_laws(events)
    assert fold(events) == response


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("LANGUAGE", FinishReason.OTHER),
        ("FINISH_REASON_UNSPECIFIED", FinishReason.OTHER),
    ],
)
def test_finish_reasons(raw: str, reason: FinishReason) -> None:
    response = decode_body(json.dumps(text_chunk("x", raw)).encode())
    assert response.finish_reason is reason and response.finish_reason_raw == raw and response.error is None


def test_thought_parts_and_signatures() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Thinking ", "thought": True}]}}]},
        {"candidates": [{"content": {"parts": [{"text": "hard.", "thought": True, "thoughtSignature": "T1"}]}}]},
        {
            "candidates": [
                {"content": {"parts": [{"text": "Answer", "thoughtSignature": "T2"}]}, "finishReason": "STOP"}
            ]
        },
    ]
    events = feed_all(GeminiStreamDecoder, [b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)])
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [
        ReasoningDelta("Thinking "),
        ReasoningDelta("hard.", "T1"),
        ReasoningDelta("", "T2"),
    ]
    response = fold(events)
    assert response.reasoning == "Thinking hard." and response.text == "Answer"
    assert [(p.text, p.signature) for p in response.reasoning_parts] == [("Thinking hard.", "T1"), ("", "T2")]


def test_partial_arguments_cut_by_max_tokens_are_not_a_made_up_dict() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "willContinue": True}}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {
                                "functionCall": {
                                    "partialArgs": [
                                        {"jsonPath": "$.items[0].name", "stringValue": "a", "willContinue": True},
                                        {"jsonPath": "$.n", "numberValue": 2},
                                        {"jsonPath": "$['flag']", "boolValue": True},
                                    ],
                                    "willContinue": True,
                                }
                            }
                        ]
                    },
                    "finishReason": "MAX_TOKENS",
                }
            ]
        },
    ]
    events = feed_all(GeminiStreamDecoder, [b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)])
    check_stream_laws(events)
    (call,) = fold(events).tool_calls
    assert call.arguments is None
    assert json.loads(call.arguments_raw + "}") == {"items": [{"name": "a"}], "n": 2, "flag": True}
    assert fold(events).finish_reason is FinishReason.LENGTH


def test_a_raw_json_chunk_without_sse_framing_is_decoded() -> None:
    wire = (
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}\n\n'
        + json.dumps(text_chunk("b", "STOP"), indent=2).encode()
        + b"\n"
    )
    response = fold(feed_all(GeminiStreamDecoder, [wire]))
    assert response.text == "ab" and response.finish_reason is FinishReason.STOP


def test_unknown_sse_fields_are_ignored_and_a_cut_error_object_is_a_protocol_error() -> None:
    ok = b"foo: bar\n" + f"data: {json.dumps(text_chunk('x', 'STOP'))}\n\n".encode()
    assert fold(feed_all(GeminiStreamDecoder, [ok])).error is None
    cut = f"data: {json.dumps(text_chunk('x', 'STOP'))}\n\n".encode() + b'{\n  "error": {\n    "code": 503,\n'
    error = fold(feed_all(GeminiStreamDecoder, [cut])).error
    assert isinstance(error, ProtocolError)
