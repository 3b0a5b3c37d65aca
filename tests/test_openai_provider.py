"""OpenAIProvider end to end, through real sockets, against a fake upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest

from llmrelay import (
    AuthError,
    AzureOpenAIProvider,
    ChatRequest,
    ContextLengthError,
    Done,
    FinishReason,
    FirstByteTimeout,
    IdleTimeout,
    InvalidRequestError,
    Message,
    MissingApiKey,
    NetworkError,
    OpenAIProvider,
    ProtocolError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    TextDelta,
    Timeouts,
    ToolCallEnd,
    ToolDef,
)
from llmrelay.testing import FakeUpstream, Reply

from wire_helpers import FIXTURES, check_stream_laws

KEY = "sk-test-SECRETSECRETSECRET1234"
REQ = ChatRequest(messages=[Message.user("Hello")])


def provider(up: FakeUpstream, **kw: object) -> OpenAIProvider:
    return OpenAIProvider("gpt-4o-mini", base_url=up.url("/v1"), api_key=KEY, **kw)  # type: ignore[arg-type]


async def test_stream_replays_a_recorded_transcript(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_chat_stream_parallel_tool_calls", chunk_size=37))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
        response = stream.response()
    check_stream_laws(events)
    assert [c.name for c in response.tool_calls] == ["GetWeatherArgs", "get_stock_price"]
    assert response.finish_reason is FinishReason.TOOL_CALLS
    assert response.provider == "openai"
    sent = upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}


async def test_text_arrives_incrementally(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply.sse(
            [{"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in ["a", "b", "c"]]
            + [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]"],
            chunk_delay=0.05,
        )
    )
    loop = asyncio.get_running_loop()
    times = []
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                times.append(loop.time())
    assert len(times) == 3
    assert times[-1] - times[0] >= 0.08, "deltas were buffered instead of streamed"


async def test_chat_non_stream_uses_the_same_codec(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_chat_nonstream"))
    async with provider(upstream) as p:
        response = await p.chat(REQ)
    assert response.text
    assert response.usage is not None and response.usage.input_tokens is not None
    assert "stream" not in upstream.requests[0].json


async def test_401_is_auth_error_with_hint_and_no_key(upstream: FakeUpstream) -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }
    upstream.add(Reply.json(body, status=401, headers={"x-request-id": "req_123"}))
    async with provider(upstream) as p:
        with pytest.raises(AuthError) as info:
            async with p.chat_stream(REQ):
                pass
    err = info.value
    assert err.status == 401 and err.provider == "openai" and err.request_id == "req_123"
    assert "OPENAI_API_KEY" in str(err)
    for text in (str(err), repr(err), err.body_excerpt or "", err.message):
        assert KEY not in text
        assert "SECRETSECRET" not in text


async def test_429_with_retry_after(upstream: FakeUpstream) -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    upstream.add(Reply.json(body, status=429, headers={"retry-after": "7"}))
    upstream.add(Reply.json(body, status=429, headers={"retry-after-ms": "1500"}))
    async with provider(upstream) as p:
        with pytest.raises(RateLimitError) as first:
            await p.chat(REQ)
        with pytest.raises(RateLimitError) as second:
            async with p.chat_stream(REQ):
                pass
    assert first.value.retry_after == 7.0 and first.value.retryable
    assert second.value.retry_after == 1.5


async def test_429_insufficient_quota_is_not_retryable(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_error_429_insufficient_quota"))
    async with provider(upstream) as p:
        with pytest.raises(QuotaExceededError) as info:
            await p.chat(REQ)
    assert not info.value.retryable


async def test_400_context_length(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_error_400_context_length_exceeded"))
    async with provider(upstream) as p:
        with pytest.raises(ContextLengthError) as info:
            await p.chat(REQ)
    assert isinstance(info.value, InvalidRequestError)
    assert info.value.status == 400


async def test_500_with_html_body(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(b"<html>Bad gateway</html>", status=502, content_type="text/html"))
    async with provider(upstream) as p:
        with pytest.raises(ServerError) as info:
            await p.chat(REQ)
    assert info.value.retryable and info.value.status == 502


async def test_stream_cut_midway_is_an_error_not_a_success(upstream: FakeUpstream) -> None:
    wire = (FIXTURES / "openai_chat_stream_text_usage.wire").read_bytes()
    upstream.add(Reply(chunks=(wire,), content_type="text/event-stream", cut_after=len(wire) // 2))
    async with provider(upstream) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises((NetworkError, ProtocolError)):
            async for event in stream:
                events.append(event)
    check_stream_laws(events)
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason is FinishReason.ERROR and done.error is not None
    assert stream.response().error is done.error


async def test_a_finished_stream_without_done_marker_ends_normally(upstream: FakeUpstream) -> None:
    """Item 10: the finish chunk has arrived, so EOF without `[DONE]` is a complete answer."""
    upstream.add(Reply.sse([{"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}]))
    upstream.add(Reply.sse([{"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}]))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            reply = await stream.until_done()
        assert reply.text == "hi" and reply.finish_reason is FinishReason.STOP and reply.error is None
        with pytest.raises(ProtocolError, match="DONE"):  # no finish reason: truncated
            await _consume(p)


async def _consume(p: OpenAIProvider) -> None:
    async with p.chat_stream(REQ) as stream:
        await stream.until_done()


async def test_stall_longer_than_idle_timeout(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply.sse(
            [{"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}] * 3 + ["[DONE]"],
            stall=5.0,
            stall_after=2,
        )
    )
    p = provider(upstream, timeouts=Timeouts(idle=0.3))
    loop = asyncio.get_running_loop()
    async with p:
        started = loop.time()
        events = []
        with pytest.raises(IdleTimeout):
            async with p.chat_stream(REQ) as stream:
                async for event in stream:
                    events.append(event)
        assert loop.time() - started < 3.0
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("x"), TextDelta("x")]
    assert isinstance(events[-1], Done) and isinstance(events[-1].error, IdleTimeout)


async def test_slow_consumer_is_not_an_idle_timeout(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_chat_stream_text_usage"))
    p = provider(upstream, timeouts=Timeouts(idle=0.2))
    async with p, p.chat_stream(REQ) as stream:
        async for _ in stream:
            await asyncio.sleep(0.05)
        assert stream.response().error is None


async def test_first_byte_timeout(upstream: FakeUpstream) -> None:
    upstream.add(Reply.json({}, headers_delay=3.0))
    p = provider(upstream, timeouts=Timeouts(first_byte=0.3))
    async with p:
        with pytest.raises(FirstByteTimeout):
            await p.chat(REQ)


async def test_connection_refused_is_network_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with OpenAIProvider("m", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY) as p:
        with pytest.raises(NetworkError) as info:
            await p.chat(REQ)
    assert info.value.retryable and info.value.provider == "openai"


async def test_breaking_out_early_closes_the_upstream_connection(upstream: FakeUpstream) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": None}]} for i in range(200)]
    upstream.add(Reply.sse([*chunks, "[DONE]"], chunk_delay=0.02))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await upstream.wait_disconnect(within=3.0)
    assert upstream.disconnects == 1 and upstream.completed == 0


async def test_cancelling_the_task_closes_the_upstream_connection(upstream: FakeUpstream) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": "t"}, "finish_reason": None}]} for _ in range(200)]
    upstream.add(Reply.sse([*chunks, "[DONE]"], chunk_delay=0.02))
    async with provider(upstream) as p:
        first = asyncio.Event()

        async def consume() -> None:
            async with p.chat_stream(REQ) as stream:
                async for _ in stream:
                    first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 3.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await upstream.wait_disconnect(within=3.0)


async def test_many_concurrent_calls_share_one_provider(upstream: FakeUpstream) -> None:
    def reply(seen: object) -> Reply:
        return Reply.transcript(FIXTURES, "openai_chat_stream_text_usage", chunk_size=64)

    upstream.route("/v1/chat/completions", reply)
    async with provider(upstream) as p:

        async def one() -> str:
            async with p.chat_stream(REQ) as stream:
                return (await stream.until_done()).text

        texts = await asyncio.gather(*(one() for _ in range(40)))
    assert len(set(texts)) == 1 and texts[0]


async def test_tool_round_trip_request_shape(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_chat_stream_tool_call_obfuscation"))
    upstream.add(Reply.transcript(FIXTURES, "openai_chat_nonstream"))
    tools = [ToolDef("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})]
    async with provider(upstream) as p:
        async with p.chat_stream(ChatRequest(messages=[Message.user("weather?")], tools=tools)) as stream:
            events = [e async for e in stream]
        call = next(e.call for e in events if isinstance(e, ToolCallEnd))
        first = stream.response()
        follow = ChatRequest(
            messages=[Message.user("weather?"), first.message, Message.tool(call.id or "", "sunny")], tools=tools
        )
        await p.chat(follow)
    sent = upstream.requests[1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == call.arguments
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


async def test_list_models(upstream: FakeUpstream) -> None:
    upstream.add(
        Reply.json({"object": "list", "data": [{"id": "m1", "object": "model", "owned_by": "me", "created": 1}]})
    )
    async with provider(upstream) as p:
        models = await p.list_models()
    assert [m.id for m in models] == ["m1"] and models[0].owned_by == "me"
    assert upstream.requests[0].method == "GET" and upstream.requests[0].path == "/v1/models"


def test_missing_key_for_the_public_api(clean_env: None) -> None:
    with pytest.raises(MissingApiKey, match="OPENAI_API_KEY"):
        OpenAIProvider("gpt-4o-mini")


def test_local_server_needs_no_key(clean_env: None) -> None:
    p = OpenAIProvider("m", base_url="http://127.0.0.1:1/v1")
    assert "authorization" not in p._auth_headers()
    assert KEY not in repr(p)


async def test_azure_url_and_api_key_header(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "azure_chat_stream_prompt_filter"))
    async with (
        AzureOpenAIProvider(
            "my-deploy", endpoint=upstream.url(), api_key="azure-key-123456", api_version="2024-10-21"
        ) as p,
        p.chat_stream(REQ) as stream,
    ):
        response = await stream.until_done()
    assert response.text == "Hallo Welt!"
    sent = upstream.requests[0]
    assert sent.path == "/openai/deployments/my-deploy/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "azure-key-123456"
    assert "authorization" not in sent.headers


async def test_azure_bearer_token(upstream: FakeUpstream, clean_env: None) -> None:
    upstream.add(Reply.transcript(FIXTURES, "openai_chat_nonstream"))
    async with AzureOpenAIProvider("d", endpoint=upstream.url(), bearer_token="eyJtoken") as p:
        await p.chat(REQ)
    assert upstream.requests[0].headers["authorization"] == "Bearer eyJtoken"


async def test_a_json_body_answering_a_stream_request_is_replayed(upstream: FakeUpstream) -> None:
    upstream.add(Reply.transcript(FIXTURES, "llamacpp_chat_nonstream_length"))
    upstream.add(Reply.json({"error": {"message": "upstream failed", "code": 502}}))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            events = [e async for e in stream]
        check_stream_laws(events)
        assert stream.response().finish_reason is FinishReason.LENGTH and stream.response().text
        with pytest.raises(ServerError):
            async with p.chat_stream(REQ) as stream:
                await stream.until_done()


def test_azure_without_a_deployment_fails_early(clean_env: None) -> None:
    with pytest.raises(InvalidRequestError, match="azure/my-deployment"):
        AzureOpenAIProvider("", endpoint="http://127.0.0.1:1", api_key="k" * 20)
