"""Whole JSON bodies are read with a cap (``HttpProvider.max_body_bytes``): a non-streamed reply, or a JSON
document answering a streaming request, that is larger (announced or not) or endless ends the call with
``ProtocolError`` instead of filling memory. Every dialect, through real sockets."""

from __future__ import annotations

import importlib
import pkgutil
import time

import pytest

import llmrelay.testing
from llmrelay import ChatRequest, Message, ProtocolError
from llmrelay._http_provider import DEFAULT_MAX_BODY_BYTES, HttpProvider
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.kit import DialectKit
from llmrelay.testing.openai_kit import KIT as OPENAI

REQ = ChatRequest(messages=[Message.user("hi")], max_tokens=100)
CAP = 2000


def kits() -> list[DialectKit]:
    found = [
        importlib.import_module(f"llmrelay.testing.{info.name}").KIT
        for info in pkgutil.iter_modules(llmrelay.testing.__path__)
        if info.name.endswith("_kit")
    ]
    return sorted(found, key=lambda k: k.name)


def capped(kit: DialectKit, up: FakeUpstream, cap: int = CAP) -> HttpProvider:
    provider = kit.provider(up.url())
    assert isinstance(provider, HttpProvider)
    provider.max_body_bytes = cap
    return provider


def chunked(reply: Reply) -> Reply:
    """The same body sent in two chunks, so with no Content-Length: the cap must trip while reading."""
    body = b"".join(reply.chunks)
    return Reply(status=reply.status, chunks=(body[:100], body[100:]), content_type=reply.content_type)


def test_the_default_cap_is_64_mib() -> None:
    assert DEFAULT_MAX_BODY_BYTES == HttpProvider.max_body_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize("kit", kits(), ids=lambda k: k.name)
async def test_a_reply_just_over_the_cap_is_a_protocol_error(kit: DialectKit, upstream: FakeUpstream) -> None:
    small = kit.text("fits", stream=False)
    large = kit.text("x" * CAP, stream=False)
    assert len(b"".join(large.chunks)) > CAP
    upstream.add(small, large, chunked(large))
    async with capped(kit, upstream) as provider:
        assert (await provider.chat(REQ)).text == "fits"
        for announced in (True, False):
            with pytest.raises(ProtocolError) as info:
                await provider.chat(REQ)
            message = str(info.value)
            assert f"limit of {CAP} bytes" in message and "max_body_bytes" in message, message
            assert ("announced" in message) is announced
            assert info.value.provider == provider.name


@pytest.mark.parametrize("kit", kits(), ids=lambda k: k.name)
async def test_a_json_answer_to_a_stream_request_is_capped_too(kit: DialectKit, upstream: FakeUpstream) -> None:
    large = kit.text("y" * CAP, stream=False)
    upstream.add(large, chunked(large))
    async with capped(kit, upstream) as provider:
        for _ in range(2):
            with pytest.raises(ProtocolError, match="max_body_bytes"):
                async with provider.chat_stream(REQ) as stream:
                    await stream.until_done()


async def test_an_endless_body_stops_at_the_cap_and_the_connection_is_dropped(upstream: FakeUpstream) -> None:
    # Bounded on the server side: at most 800 x 64 KiB = 50 MiB, one shared block in memory.
    block = b" " * 65536
    endless = Reply(chunks=(b'{"choices": [', *([block] * 800)), content_type="application/json")
    upstream.add(endless, endless)
    async with capped(OPENAI, upstream, cap=1024 * 1024) as provider:
        started = time.perf_counter()
        with pytest.raises(ProtocolError, match="more than that"):
            await provider.chat(REQ)
        with pytest.raises(ProtocolError, match="more than that"):
            async with provider.chat_stream(REQ):
                pass
        assert time.perf_counter() - started < 10
        assert await upstream.wait_disconnect(within=5.0)
    assert upstream.completed == 0


@pytest.mark.parametrize("kit", kits(), ids=lambda k: k.name)
async def test_a_model_list_over_the_cap_is_a_protocol_error(kit: DialectKit, upstream: FakeUpstream) -> None:
    """`list_models` reads its JSON through the same bounded path as `chat`."""
    huge = b'{"data": [' + b",".join(b'{"id": "m%d"}' % i for i in range(400)) + b'], "models": []}'
    assert len(huge) > CAP
    upstream.add(Reply(chunks=(huge[:100], huge[100:]), content_type="application/json"))
    async with capped(kit, upstream) as provider:
        with pytest.raises(ProtocolError, match="max_body_bytes"):
            await provider.list_models()
