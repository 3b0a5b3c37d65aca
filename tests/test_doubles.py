from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmrelay import (
    ChatRequest,
    ChatResponse,
    Done,
    FinishReason,
    InvalidRequestError,
    Message,
    RateLimitError,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from llmrelay.testing import FunctionProvider, ScriptedProvider

from wire_helpers import check_stream_laws

REQ = ChatRequest(messages=[Message.user("hi")])


async def test_scripted_items_in_order_and_requests_recorded() -> None:
    call = ToolCall.create("f", {"x": 1}, id="c1")
    p = ScriptedProvider(
        [
            "plain text",
            ChatResponse(tool_calls=(call,), finish_reason=FinishReason.TOOL_CALLS, usage=Usage(3, 4)),
            RateLimitError("slow down", retry_after=2.0),
        ]
    )
    first = await p.chat(REQ)
    assert first.text == "plain text" and first.finish_reason is FinishReason.STOP
    async with p.chat_stream(REQ) as stream:
        events = [e async for e in stream]
    check_stream_laws(events)
    assert stream.response().tool_calls == (call,)
    assert stream.response().usage == Usage(3, 4)
    with pytest.raises(RateLimitError):
        async with p.chat_stream(REQ):
            pass
    assert len(p.requests) == 3
    with pytest.raises(InvalidRequestError, match="exhausted"):
        await p.chat(REQ)


async def test_scripted_delay_paces_events() -> None:
    p = ScriptedProvider([[TextDelta("a"), TextDelta("b"), Done(FinishReason.STOP)]], delay=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert (await p.chat(REQ)).text == "ab"
    assert loop.time() - start >= 0.1


async def test_function_provider_sync_async_and_streaming() -> None:
    sync = FunctionProvider(lambda r: f"echo: {r.messages[-1].text}")
    assert (await sync.chat(REQ)).text == "echo: hi"

    async def answer(request: ChatRequest) -> str:
        return "async"

    assert (await FunctionProvider(answer).chat(REQ)).text == "async"

    async def gen() -> AsyncIterator[StreamEvent]:
        for word in ["x", "y", "z"]:
            yield TextDelta(word)

    streaming = FunctionProvider(lambda r: gen())
    async with streaming.chat_stream(REQ) as stream:
        events = [e async for e in stream]
    check_stream_laws(events)
    assert stream.response().text == "xyz"
