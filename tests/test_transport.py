"""The transport's proxy handling: environment read once, NO_PROXY honoured, a real proxy used."""

from __future__ import annotations

import pytest
from aiohttp import web

from llmrelay import ChatRequest, Message, OpenAIProvider
from llmrelay._transport import AiohttpTransport
from llmrelay.testing import FakeUpstream, Reply
from local_server import serving_app


async def test_env_proxy_is_used_and_no_proxy_honoured(monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream) -> None:
    seen: list[str] = []

    async def proxy_handler(request: web.Request) -> web.Response:
        # A forward proxy receives the absolute URL in the request line.
        seen.append(str(request.url))
        return web.json_response(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "via proxy"}, "finish_reason": "stop"}
                ]
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy_handler)
    async with serving_app(app) as url:
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("NO_PROXY", "")
        async with OpenAIProvider("m", base_url="http://llm.internal.test/v1", api_key="sk-x-1234567890") as p:
            reply = await p.chat(ChatRequest(messages=[Message.user("hi")]))
        assert reply.text == "via proxy"
        assert seen == ["http://llm.internal.test/v1/chat/completions"]

        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        upstream.add(Reply.json({"choices": [{"index": 0, "message": {"content": "direct"}, "finish_reason": "stop"}]}))
        async with OpenAIProvider("m", base_url=upstream.url("/v1"), api_key="sk-x-1234567890") as p:
            assert (await p.chat(ChatRequest(messages=[Message.user("hi")]))).text == "direct"
        assert len(seen) == 1


def test_trust_env_false_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    transport = AiohttpTransport(trust_env=False)
    assert transport._proxies == {}


async def test_a_reply_that_arrived_whole_is_read_at_once_and_its_connection_reused() -> None:
    """A small reply is all in the buffer with its headers: ``read_arrived`` returns it whole, the body
    is at its end, and the connection goes back to the pool (the next call reuses it)."""
    from llmrelay._transport import HttpRequest, Timeouts, read_body

    peers: set[object] = set()

    async def small(request: web.Request) -> web.Response:
        peers.add(request.transport)
        return web.json_response({"ok": True, "pad": "x" * 100})

    app = web.Application()
    app.router.add_post("/", small)
    transport = AiohttpTransport(trust_env=False)
    try:
        async with serving_app(app) as base:
            bodies = []
            for _ in range(3):
                response = await transport.send(HttpRequest("POST", base + "/", {}, b"{}"), Timeouts())
                bodies.append(await read_body(response, 1 << 20))
                assert await response.read_chunk() == b""
                await response.aclose()
    finally:
        await transport.aclose()
    assert all(b == bodies[0] and b.startswith(b'{"ok": true') for b in bodies)
    assert len(peers) == 1


async def test_a_body_still_on_its_way_or_cut_short_is_not_taken_for_the_whole() -> None:
    """Headers first and the body later: ``read_arrived`` says nothing (``None``) and the body is read in
    full; a body cut before its announced length is a ``NetworkError``, never a short reply."""
    import asyncio

    from llmrelay._errors import NetworkError
    from llmrelay._transport import HttpRequest, Timeouts, read_body

    async def late(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-length": "10"})
        await response.prepare(request)
        await asyncio.sleep(0.1)
        await response.write(b"0123456789")
        return response

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-length": "100"})
        await response.prepare(request)
        await response.write(b"only this")
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/late", late)
    app.router.add_post("/cut", cut)
    transport = AiohttpTransport(trust_env=False)
    try:
        async with serving_app(app) as base:
            response = await transport.send(HttpRequest("POST", base + "/late", {}, b""), Timeouts())
            assert response.read_arrived() is None
            assert await read_body(response, 1 << 20) == b"0123456789"
            await response.aclose()
            response = await transport.send(HttpRequest("POST", base + "/cut", {}, b""), Timeouts())
            await asyncio.sleep(0.1)  # the cut has happened by now
            with pytest.raises(NetworkError):
                await read_body(response, 1 << 20)
            await response.aclose()
    finally:
        await transport.aclose()


async def test_a_reply_that_arrived_whole_still_meets_the_body_limit() -> None:
    from llmrelay._errors import ProtocolError
    from llmrelay._transport import HttpRequest, Timeouts, read_body

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no length announced, so the limit is met while reading
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"y" * 5000)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/", big)
    transport = AiohttpTransport(trust_env=False)
    try:
        async with serving_app(app) as base:
            response = await transport.send(HttpRequest("POST", base + "/", {}, b""), Timeouts())
            assert "content-length" not in response.headers
            with pytest.raises(ProtocolError, match="over the limit of 1000 bytes"):
                await read_body(response, 1000)
            await response.aclose()
    finally:
        await transport.aclose()
