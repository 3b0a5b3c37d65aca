"""AnthropicProvider end to end, through real sockets, against a fake upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from llmrelay import (
    AnthropicProvider,
    AuthError,
    ChatRequest,
    Done,
    FinishReason,
    InvalidRequestError,
    LlmRelayWarning,
    Message,
    MissingApiKey,
    ModelNotFoundError,
    NetworkError,
    OverloadedError,
    ProtocolError,
    QuotaExceededError,
    RateLimitError,
    ReasoningDelta,
    ServerError,
    TextDelta,
    ToolCallEnd,
    ToolDef,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import KIT, sse_events

from wire_helpers import FIXTURES, check_stream_laws

KEY = "sk-ant-api03-SECRETSECRETSECRET1234"
REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=256)
WEATHER = ToolDef("get_weather", "Weather", {"type": "object", "properties": {"location": {"type": "string"}}})


def provider(up: FakeUpstream, **kw: object) -> AnthropicProvider:
    return AnthropicProvider("claude-test", base_url=up.url(), api_key=KEY, **kw)  # type: ignore[arg-type]


async def _consume(p: AnthropicProvider, request: ChatRequest = REQ) -> list[object]:
    async with p.chat_stream(request) as stream:
        return [e async for e in stream]


async def test_text_stream_url_and_headers(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_stream_text_docs", chunk_size=29))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
        response = stream.response()
    check_stream_laws(events)
    assert response.text == "Hello!" and response.finish_reason is FinishReason.STOP
    assert response.model == "claude-opus-4-1-20250805" and response.provider == "anthropic"
    sent = upstream.requests[0]
    assert sent.method == "POST" and sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": "claude-test",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 256,
        "stream": True,
    }


async def test_text_arrives_incrementally(upstream: FakeUpstream) -> None:
    reply = KIT.text("abcdef", stream=True)
    upstream.add(Reply(chunks=reply.chunks, content_type="text/event-stream", chunk_delay=0.05))
    loop = asyncio.get_running_loop()
    times = []
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                times.append(loop.time())
    assert len(times) == 2
    assert times[-1] - times[0] >= 0.04, "deltas were buffered instead of streamed"


async def test_chat_non_stream(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_nonstream_parallel_tool_use", headers={"request-id": "req_9"}))
    async with provider(upstream) as p:
        response = await p.chat(REQ)
    assert len(response.tool_calls) == 4 and response.finish_reason is FinishReason.TOOL_CALLS
    assert response.request_id == "req_9"
    assert "stream" not in upstream.requests[0].json
    assert upstream.requests[0].headers["accept"] == "application/json"


async def test_tool_call_stream_and_the_follow_up_request(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_stream_tool_use_sdk", chunk_size=53))
    upstream.add(KIT.text("It is sunny.", stream=False))
    request = ChatRequest(messages=[Message.user("Weather in Paris?")], tools=[WEATHER], max_tokens=100)
    async with provider(upstream) as p:
        async with p.chat_stream(request) as stream:
            events = [e async for e in stream]
        check_stream_laws(events)
        call = next(e.call for e in events if isinstance(e, ToolCallEnd))
        first = stream.response()
        assert call.arguments == {"location": "Paris"} and first.finish_reason is FinishReason.TOOL_CALLS
        follow = ChatRequest(
            messages=[*request.messages, first.message, Message.tool(call.id or "", "sunny")],
            tools=[WEATHER],
            max_tokens=100,
        )
        reply = await p.chat(follow)
    assert reply.text == "It is sunny."
    sent = upstream.requests[1].json
    assert sent["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": dict(WEATHER.parameters)}
    ]
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I'll check the current weather in Paris for you."},
            {
                "type": "tool_use",
                "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                "name": "get_weather",
                "input": {"location": "Paris"},
            },
        ],
    }
    assert KIT.sent_tool_result(upstream.requests[1], call.id, "sunny")


async def test_thinking_round_trip_sends_the_signed_block_back(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_stream_thinking_live", chunk_size=101))
    upstream.add(KIT.text("You're welcome.", stream=True))
    thinking = {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}
    request = ChatRequest(
        messages=[Message.user("How do I cross a street?")], max_tokens=3000, provider_options=thinking
    )
    async with provider(upstream) as p:
        async with p.chat_stream(request) as stream:
            events = [e async for e in stream]
        first = stream.response()
        signature = next(e.signature for e in events if isinstance(e, ReasoningDelta) and e.signature)
        follow = ChatRequest(
            messages=[*request.messages, first.message, Message.user("Thanks!")],
            max_tokens=3000,
            provider_options=thinking,
        )
        await _consume(p, follow)
    assert upstream.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assistant = upstream.requests[1].json["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {"type": "thinking", "thinking": first.reasoning, "signature": signature}
    assert assistant["content"][1] == {"type": "text", "text": first.text}


async def test_401_is_auth_error_with_hint_and_no_key(upstream: FakeUpstream) -> None:
    body = f'{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {KEY}"}}}}'
    upstream.add(Reply.raw(body.encode(), status=401, headers={"request-id": "req_401"}))
    async with provider(upstream) as p:
        with pytest.raises(AuthError) as info:
            async with p.chat_stream(REQ):
                pass
    err = info.value
    assert err.status == 401 and err.provider == "anthropic" and err.request_id == "req_401"
    assert err.error_type == "authentication_error"
    assert "ANTHROPIC_API_KEY" in str(err)
    for text in (str(err), repr(err), err.body_excerpt or "", err.message, str(err.args)):
        assert KEY not in text
        assert "SECRETSECRET" not in text


async def test_the_recorded_401_transcript(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_error_401_authentication"))
    async with provider(upstream) as p:
        with pytest.raises(AuthError, match="invalid x-api-key"):
            await p.chat(REQ)


async def test_429_with_retry_after(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_error_429_rate_limit", headers={"retry-after": "17"}))
    upstream.add(KIT.error(429, retry_after=3))
    async with provider(upstream) as p:
        with pytest.raises(RateLimitError) as first:
            await p.chat(REQ)
        with pytest.raises(RateLimitError) as second:
            await _consume(p)
    assert first.value.retry_after == 17.0 and first.value.retryable
    assert first.value.request_id == "req_011Ca6u66aLnUk1L2q2MSyRy"
    assert second.value.retry_after == 3.0


async def test_529_is_overloaded(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_error_529_overloaded"))
    async with provider(upstream) as p:
        with pytest.raises(OverloadedError) as info:
            await _consume(p)
    assert info.value.status == 529 and info.value.retryable


async def test_billing_error_is_quota_exceeded(upstream: FakeUpstream) -> None:
    upstream.add(KIT.quota())
    async with provider(upstream) as p:
        with pytest.raises(QuotaExceededError) as info:
            await p.chat(REQ)
    assert info.value.status == KIT.quota_status == 402 and not info.value.retryable


async def test_unknown_model_is_model_not_found(upstream: FakeUpstream) -> None:
    upstream.add(KIT.error(404))
    async with provider(upstream) as p:
        with pytest.raises(ModelNotFoundError) as info:
            await p.chat(REQ)
    assert isinstance(info.value, InvalidRequestError)


async def test_html_error_from_a_proxy(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(b"<html>Bad gateway</html>", status=502, content_type="text/html"))
    async with provider(upstream) as p:
        with pytest.raises(ServerError) as info:
            await p.chat(REQ)
    assert info.value.status == 502 and info.value.retryable


async def test_in_stream_error_event(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "anthropic_stream_error_overloaded_docs"))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events: list[object] = []
        with pytest.raises(OverloadedError) as info:
            async for event in stream:
                events.append(event)
    check_stream_laws(events)  # type: ignore[arg-type]
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR and done.error is info.value
    assert info.value.provider == "anthropic"
    assert stream.response().error is info.value


async def test_stream_cut_midway_is_an_error_not_a_success(upstream: FakeUpstream) -> None:
    wire = (FIXTURES / "anthropic_stream_tool_use_docs.wire").read_bytes()
    upstream.add(Reply(chunks=(wire,), content_type="text/event-stream", cut_after=len(wire) // 2))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events: list[object] = []
        with pytest.raises((NetworkError, ProtocolError)):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)  # type: ignore[arg-type]
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR and done.error is not None
    response = stream.response()
    assert response.error is done.error and response.text.startswith("Okay")


async def test_stream_without_message_stop_is_a_protocol_error(upstream: FakeUpstream) -> None:
    wire = (FIXTURES / "anthropic_stream_text_docs.wire").read_bytes()
    upstream.add(Reply.raw(wire[: wire.index(b"event: message_delta")], content_type="text/event-stream"))
    async with provider(upstream) as p:
        with pytest.raises(ProtocolError, match="message_stop"):
            await _consume(p)


async def test_breaking_out_early_closes_the_upstream_connection(upstream: FakeUpstream) -> None:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1, "output_tokens": 1}}}
    ]
    events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"t{i}"}}
        for i in range(200)
    ]
    events += [{"type": "content_block_stop", "index": 0}, {"type": "message_stop"}]
    upstream.add(sse_events(events, chunk_delay=0.02))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await upstream.wait_disconnect(within=3.0)
    assert upstream.disconnects == 1 and upstream.completed == 0


async def test_missing_max_tokens_warns_visibly(upstream: FakeUpstream) -> None:
    upstream.add(KIT.text("ok", stream=False))
    async with provider(upstream) as p:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            response = await p.chat(ChatRequest(messages=[Message.user("Hi")]))
    assert upstream.requests[0].json["max_tokens"] == 4096
    assert [w.setting for w in response.warnings] == ["max_tokens"]
    assert any(issubclass(w.category, LlmRelayWarning) and "max_tokens" in str(w.message) for w in caught)


async def test_betas_and_extra_headers(upstream: FakeUpstream) -> None:
    upstream.add(KIT.text("ok", stream=False))
    upstream.add(KIT.text("ok", stream=False))
    request = ChatRequest(
        messages=[Message.user("Hi")], max_tokens=5, provider_options={"anthropic": {"betas": ["b2"]}}
    )
    async with provider(upstream, betas=["b1"], headers={"x-extra": "1"}, anthropic_version="2099-01-01") as p:
        await p.chat(REQ)
        await p.chat(request)
    first, second = upstream.requests
    assert first.headers["anthropic-beta"] == "b1" and first.headers["x-extra"] == "1"
    assert first.headers["anthropic-version"] == "2099-01-01"
    assert second.headers["anthropic-beta"] == "b1,b2" and "betas" not in second.json


async def test_list_models_follows_pages(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply.json(
            {
                "data": [
                    {"type": "model", "id": "claude-a", "display_name": "A", "created_at": "2025-02-19T00:00:00Z"}
                ],
                "has_more": True,
                "first_id": "claude-a",
                "last_id": "claude-a",
            }
        )
    )
    upstream.add(
        Reply.json(
            {
                "data": [{"type": "model", "id": "claude-b", "display_name": "B", "created_at": "bad date"}],
                "has_more": False,
                "first_id": "claude-b",
                "last_id": "claude-b",
            }
        )
    )
    async with provider(upstream) as p:
        models = await p.list_models()
    assert [(m.id, m.provider, m.created) for m in models] == [
        ("claude-a", "anthropic", 1739923200),
        ("claude-b", "anthropic", None),
    ]
    first, second = upstream.requests
    assert first.method == "GET" and first.path == "/v1/models" and first.query == {"limit": "1000"}
    assert second.query == {"limit": "1000", "after_id": "claude-a"}
    assert first.headers["x-api-key"] == KEY and first.headers["anthropic-version"] == "2023-06-01"


async def test_list_models_auth_error(upstream: FakeUpstream) -> None:
    upstream.add(KIT.error(401))
    async with provider(upstream) as p:
        with pytest.raises(AuthError):
            await p.list_models()


def test_missing_key_for_the_public_api(clean_env: None) -> None:
    with pytest.raises(MissingApiKey, match="ANTHROPIC_API_KEY"):
        AnthropicProvider("claude-test")


def test_key_and_base_url_from_the_environment(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    p = AnthropicProvider("claude-test")
    assert p.base_url == "https://api.anthropic.com" and p._auth_headers()["x-api-key"] == KEY
    assert KEY not in repr(p)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/proxy/")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    local = AnthropicProvider("claude-test")
    assert local.base_url == "http://127.0.0.1:9/proxy" and "x-api-key" not in local._auth_headers()
    with pytest.raises(MissingApiKey):
        AnthropicProvider("claude-test", require_api_key=True)


def test_capabilities_and_lazy_export() -> None:
    import llmrelay

    assert llmrelay.AnthropicProvider is AnthropicProvider
    caps = AnthropicProvider("m", base_url="http://127.0.0.1:1").capabilities()
    assert caps.tools and caps.vision and caps.reasoning and caps.json_schema and caps.streaming


async def test_the_kit_drives_a_provider(upstream: FakeUpstream) -> None:
    upstream.add(KIT.tool_calls([("toolu_a", "get_weather", {"location": "Oslo"})], stream=True))
    upstream.add(KIT.reasoning("thinking...", "done", stream=False))
    upstream.add(KIT.length("cut", stream=True))
    async with KIT.provider(upstream.url()) as p:
        async with p.chat_stream(REQ) as stream:
            tools = await stream.until_done()
        reasoning = await p.chat(REQ)
        async with p.chat_stream(REQ) as stream:
            length = await stream.until_done()
    assert tools.tool_calls[0].arguments == {"location": "Oslo"}
    assert reasoning.reasoning == "thinking..." and reasoning.text == "done" and reasoning.reasoning_parts
    assert length.finish_reason is FinishReason.LENGTH and length.text == "cut"
    assert KIT.sent_messages(upstream.requests[0]) == [{"role": "user", "content": "Hello"}]
    assert not KIT.sent_image(upstream.requests[0])
