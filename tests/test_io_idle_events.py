"""``Timeouts.idle`` in a stream means "no event": SSE comments (``: keep-alive``), empty keep-alive lines and
blank NDJSON lines keep the connection busy but are not progress. Time the caller spends between reads
never counts. Real sockets, against a fake upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmrelay import (
    ChatRequest,
    Done,
    IdleTimeout,
    Message,
    OllamaProvider,
    OpenAIProvider,
    TextDelta,
    Timeouts,
)
from llmrelay.testing import FakeUpstream, Reply

REQ = ChatRequest(messages=[Message.user("hi")])
KEY = "sk-idle-0123456789abcdef"
IDLE = 0.5


def delta(text: str, finish: str | None = None) -> bytes:
    import json

    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def keepalives(filler: bytes, *, first: tuple[bytes, ...] = (), count: int = 40) -> Reply:
    """``first`` chunks, then ``filler`` every 0.1 s, ``count`` times (4 s: well past the idle timeout)."""
    return Reply(chunks=(*first, *([filler] * count)), content_type="text/event-stream", chunk_delay=0.1)


async def events_until_error(provider: OpenAIProvider | OllamaProvider) -> tuple[list[object], float]:
    events: list[object] = []
    started = time.perf_counter()
    with pytest.raises(IdleTimeout, match="no event"):
        async with provider.chat_stream(REQ) as stream:
            async for event in stream:
                events.append(event)
    return events, time.perf_counter() - started


@pytest.mark.parametrize("filler", [b": keep-alive\n\n", b"\n", b":\n\n"], ids=["comment", "empty-line", "bare-colon"])
async def test_sse_keepalives_alone_end_in_an_idle_timeout(upstream: FakeUpstream, filler: bytes) -> None:
    upstream.add(keepalives(filler), keepalives(filler, first=(delta("hi"),)))
    async with OpenAIProvider("m", base_url=upstream.url("/v1"), api_key=KEY, timeouts=Timeouts(idle=IDLE)) as p:
        events, elapsed = await events_until_error(p)
        assert len(events) == 1 and isinstance(events[0], Done) and isinstance(events[0].error, IdleTimeout)
        assert elapsed < 2 * IDLE + 0.5  # not the 4 s the keep-alives last
        events, elapsed = await events_until_error(p)  # after one real event
        assert events[0] == TextDelta("hi") and isinstance(events[-1], Done)
        assert elapsed < 2 * IDLE + 0.5
        assert await upstream.wait_disconnect(within=3.0)


async def test_blank_ndjson_lines_alone_end_in_an_idle_timeout(upstream: FakeUpstream) -> None:
    upstream.add(Reply(chunks=(b"\n",) * 40, content_type="application/x-ndjson", chunk_delay=0.1))
    async with OllamaProvider("m", base_url=upstream.url(), api_key_env=None, timeouts=Timeouts(idle=IDLE)) as p:
        events, elapsed = await events_until_error(p)
    assert isinstance(events[-1], Done) and elapsed < 2 * IDLE + 0.5


async def test_keepalives_between_events_are_fine(upstream: FakeUpstream) -> None:
    comment = b": keep-alive\n\n"
    chunks = [piece for i in range(6) for piece in (comment, delta(f"t{i}"))]
    upstream.add(
        Reply(
            chunks=(*chunks, delta("", "stop"), b"data: [DONE]\n\n"), content_type="text/event-stream", chunk_delay=0.05
        )
    )
    p = OpenAIProvider("m", base_url=upstream.url("/v1"), api_key=KEY, timeouts=Timeouts(idle=IDLE))
    async with p, p.chat_stream(REQ) as stream:
        response = await stream.until_done()
    assert response.text == "".join(f"t{i}" for i in range(6)) and response.error is None


async def test_a_slow_caller_between_reads_is_not_an_idle_provider(upstream: FakeUpstream) -> None:
    # Comments and events arrive every 0.05 s while the caller takes 0.3 s (over the 0.2 s idle timeout)
    # per event: only the provider's silence counts, measured from when a read starts waiting.
    comment = b": keep-alive\n\n"
    chunks = [piece for i in range(3) for piece in (comment, comment, delta(f"t{i}"))]
    upstream.add(
        Reply(
            chunks=(*chunks, delta("", "stop"), b"data: [DONE]\n\n"), content_type="text/event-stream", chunk_delay=0.05
        )
    )
    p = OpenAIProvider("m", base_url=upstream.url("/v1"), api_key=KEY, timeouts=Timeouts(idle=0.2))
    async with p, p.chat_stream(REQ) as stream:
        async for _ in stream:
            await asyncio.sleep(0.3)
        assert stream.response().error is None
        assert stream.response().text == "t0t1t2"
