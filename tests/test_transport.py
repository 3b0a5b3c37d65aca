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
