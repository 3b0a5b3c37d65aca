"""HTTP edges on the I/O side: redirects are typed errors that keep the server's word, ``retry_after`` is
bounded, and closing a finished stream never waits for a server that keeps the body open."""

from __future__ import annotations

import email.utils
import json
import re
import time

import pytest
from aiohttp import web

from llmrelay import ChatRequest, InvalidRequestError, Message, OpenAIProvider, RateLimitError
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT
from llmrelay.wire.http_errors import MAX_RETRY_AFTER, clamp_retry_after, parse_retry_after
from local_server import serving_app

REQ = ChatRequest(messages=[Message.user("hi")])
KEY = "sk-edges-0123456789abcdef"


def provider(up: FakeUpstream) -> OpenAIProvider:
    return OpenAIProvider("m", base_url=up.url("/v1"), api_key=KEY)


# --- redirects ------------------------------------------------------------------------------------------------


async def test_a_redirect_is_a_typed_error_naming_the_target(upstream: FakeUpstream) -> None:
    target = "https://api.example.test/v2/chat/completions"
    said = b"Moved to the new API host"
    for _ in range(2):
        upstream.add(Reply.raw(said, status=307, content_type="text/plain", headers={"location": target}))
    async with provider(upstream) as p:
        with pytest.raises(InvalidRequestError) as plain:
            await p.chat(REQ)
        with pytest.raises(InvalidRequestError) as streamed:
            async with p.chat_stream(REQ):
                pass
    for err in (plain.value, streamed.value):
        message = str(err)
        assert err.status == 307 and err.provider == "openai" and not err.retryable
        assert f"redirected the request (HTTP 307) to {target}" in message
        assert "does not follow redirects" in message and "base_url" in message
        assert said.decode() in message and err.body_excerpt == said.decode()
        assert "connection" not in message


async def test_a_relative_or_missing_location_is_reported_as_such(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(b"", status=308, headers={"location": "/v9/chat/completions"}))
    upstream.add(Reply.raw(b"", status=301))
    async with provider(upstream) as p:
        with pytest.raises(InvalidRequestError, match=re.escape(f"to {upstream.url('/v9/chat/completions')};")):
            await p.chat(REQ)
        with pytest.raises(InvalidRequestError, match=r"HTTP 301.*without a Location header") as info:
            await p.chat(REQ)
    assert info.value.status == 301


async def test_a_redirect_echoing_the_key_does_not_leak_it(upstream: FakeUpstream) -> None:
    location = f"https://api.example.test/v1/chat/completions?key={KEY}"
    upstream.add(Reply.raw(f"see {location}".encode(), status=302, headers={"location": location}))
    async with provider(upstream) as p:
        with pytest.raises(InvalidRequestError) as info:
            await p.chat(REQ)
    for text in (str(info.value), repr(info.value), info.value.body_excerpt or ""):
        assert KEY not in text


# --- retry_after ----------------------------------------------------------------------------------------------


def test_retry_after_is_capped_and_rejects_what_is_not_a_delay() -> None:
    now = time.time()
    far = email.utils.formatdate(now + 73 * 365 * 86400, usegmt=True)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert MAX_RETRY_AFTER == 3600.0
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": far}, now=now) == MAX_RETRY_AFTER
    assert parse_retry_after({"retry-after": "99999999999"}) == MAX_RETRY_AFTER
    assert parse_retry_after({"retry-after-ms": "1e15"}) == MAX_RETRY_AFTER
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0  # a past date means "now"
    for bad in ("-5", "nan", "inf", "-inf", "soon"):
        assert parse_retry_after({"retry-after": bad}) is None, bad
        assert parse_retry_after({"retry-after-ms": bad}) is None, bad
    # an unusable retry-after-ms falls back to retry-after
    assert parse_retry_after({"retry-after-ms": "-1", "retry-after": "3"}) == 3.0
    assert clamp_retry_after(12.5) == 12.5 and clamp_retry_after(1e9) == MAX_RETRY_AFTER
    assert clamp_retry_after(float("nan")) is None and clamp_retry_after(-0.5) is None


async def test_a_far_future_retry_date_from_a_server_is_capped(upstream: FakeUpstream) -> None:
    far = email.utils.formatdate(time.time() + 73 * 365 * 86400, usegmt=True)
    upstream.add(
        KIT.error(429), Reply.json({"error": {"message": "slow down"}}, status=429, headers={"retry-after": far})
    )
    async with provider(upstream) as p:
        with pytest.raises(RateLimitError):
            await p.chat(REQ)
        with pytest.raises(RateLimitError) as info:
            await p.chat(REQ)
    assert info.value.retry_after == MAX_RETRY_AFTER


# --- closing a finished stream -----------------------------------------------------------------------------------


def sse(text: str | None) -> bytes:
    if text is None:
        return b"data: [DONE]\n\n"
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def test_closing_after_done_is_immediate_when_the_server_keeps_the_body_open(upstream: FakeUpstream) -> None:
    # The server sends the end marker, then keeps the body open for 3 s.
    upstream.add(
        Reply(
            chunks=(sse("hi"), sse(None), b": still here\n\n"),
            content_type="text/event-stream",
            stall=3.0,
            stall_after=2,
        )
    )
    upstream.add(KIT.text("again", stream=True))
    async with provider(upstream) as p:
        async with p.chat_stream(REQ) as stream:
            assert (await stream.until_done()).text == "hi"
            leaving = time.perf_counter()
        closing = time.perf_counter() - leaving
        assert closing < 0.05, f"closing took {closing * 1000:.0f} ms"
        async with p.chat_stream(REQ) as stream:  # the pool still works
            assert (await stream.until_done()).text == "again"


async def test_a_stream_whose_body_ended_gives_its_connection_back_to_the_pool() -> None:
    peers: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write_eof(sse("hi") + sse(None))  # the last event and the body's end in one write
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with serving_app(app) as url, OpenAIProvider("m", base_url=f"{url}/v1", api_key=KEY) as p:
        for _ in range(3):
            async with p.chat_stream(REQ) as stream:
                assert (await stream.until_done()).text == "hi"
    assert len(peers) == 3 and len(set(map(str, peers))) == 1, peers
