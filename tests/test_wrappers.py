"""Retrying and Fallback end to end, through real sockets, against fake upstreams on 127.0.0.1.

Backoff sleeps go through an injected ``sleep`` that records the delay and returns at once, so no test
waits for a real backoff; the only real waits are a first-byte timeout of 0.2 s and slow streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmrelay import (
    AllAttemptsFailed,
    ChatRequest,
    Done,
    FinishReason,
    InvalidRequestError,
    LlmRelayWarning,
    Message,
    NetworkError,
    OpenAIProvider,
    ProtocolError,
    Provider,
    ServerError,
    TextDelta,
    Timeouts,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import KIT as ANTHROPIC
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wrappers import Fallback, Retrying

REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=64)


class Sleeps:
    """An injected ``sleep``: records each delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def openai(up: FakeUpstream, model: str = "gpt-test", **kw: object) -> OpenAIProvider:
    return OpenAIProvider(model, base_url=up.url("/v1"), api_key="sk-wrap-test-key-0000000", **kw)  # type: ignore[arg-type]


def retrying(p: Provider, sleeps: Sleeps, **kw: object) -> Retrying:
    return Retrying(p, sleep=sleeps, rng=lambda: 1.0, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


def slow_stream(count: int, delay: float) -> Reply:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": None}]} for i in range(count)]
    return Reply.sse([*chunks, "[DONE]"], chunk_delay=delay)


# --- Retrying ---------------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_its_retry_after(upstream: FakeUpstream) -> None:
    upstream.add(OPENAI.error(429, retry_after=2), OPENAI.text("fine", stream=False))
    sleeps = Sleeps()
    async with Retrying(openai(upstream), sleep=sleeps, rng=lambda: 0.0) as p:
        reply = await p.chat(REQ)
    assert reply.text == "fine" and reply.provider == "openai"
    assert sleeps.delays == [2.0]  # the server's word, longer than the jittered backoff (0 here)
    assert [a.error.kind for a in reply.attempts] == ["rate_limit"]
    assert reply.attempts[0].provider == "openai" and reply.attempts[0].model == "gpt-test"
    assert len(upstream.requests) == 2


async def test_retry_after_is_capped_by_max_delay(upstream: FakeUpstream) -> None:
    upstream.add(OPENAI.error(429, retry_after=30), OPENAI.text("fine", stream=False))
    sleeps = Sleeps()
    async with Retrying(openai(upstream), sleep=sleeps, max_delay=4.0) as p:
        assert (await p.chat(REQ)).text == "fine"
    assert sleeps.delays == [4.0]


async def test_500_twice_then_success_backs_off_exponentially_in_a_stream(upstream: FakeUpstream) -> None:
    upstream.add(OPENAI.error(500), OPENAI.error(500), OPENAI.text("third time", stream=True))
    sleeps = Sleeps()
    async with retrying(openai(upstream), sleeps, base_delay=0.5) as p, p.chat_stream(REQ) as stream:
        text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
        reply = stream.response()
    assert text == "third time" and reply.text == "third time"
    assert sleeps.delays == [0.5, 1.0]  # rng() = 1: the full exponential step
    assert [a.error.kind for a in stream.attempts] == ["server", "server"]
    assert reply.attempts == stream.attempts and stream.provider == reply.provider == "openai"
    assert len(upstream.requests) == 3


async def test_full_jitter_stays_under_the_cap() -> None:
    rolls = iter([0.25, 0.5, 1.0, 1.0, 1.0])
    inner = OpenAIProvider("m", api_key="sk-unused-key-00000000")
    async with Retrying(inner, base_delay=1.0, max_delay=4.0, rng=lambda: next(rolls)) as p:
        assert [p.delay(n, ServerError("boom")) for n in range(5)] == [0.25, 1.0, 4.0, 4.0, 4.0]


async def test_a_400_is_never_retried_and_stays_itself(upstream: FakeUpstream) -> None:
    upstream.add(OPENAI.error(400), OPENAI.error(400), OPENAI.text("never", stream=False))
    sleeps = Sleeps()
    async with retrying(openai(upstream), sleeps) as p:
        with pytest.raises(InvalidRequestError):
            await p.chat(REQ)
        with pytest.raises(InvalidRequestError):
            async with p.chat_stream(REQ):
                pass
    assert sleeps.delays == [] and len(upstream.requests) == 2


async def test_retries_stop_at_max_attempts_with_every_attempt(upstream: FakeUpstream) -> None:
    upstream.add(*(OPENAI.error(503) for _ in range(3)))
    sleeps = Sleeps()
    async with retrying(openai(upstream), sleeps, max_attempts=3) as p:
        with pytest.raises(AllAttemptsFailed) as info:
            await p.chat(REQ)
    assert [a.error.kind for a in info.value.attempts] == ["overloaded"] * 3
    assert len(sleeps.delays) == 2 and len(upstream.requests) == 3


async def test_the_deadline_stops_retries_that_would_end_after_it(upstream: FakeUpstream) -> None:
    upstream.add(OPENAI.error(500), OPENAI.error(500), OPENAI.text("late", stream=False))
    now = [0.0]

    async def sleep(delay: float) -> None:
        now[0] += delay

    p = Retrying(openai(upstream), base_delay=1.0, deadline=2.5, sleep=sleep, clock=lambda: now[0], rng=lambda: 1.0)
    async with p:
        with pytest.raises(AllAttemptsFailed) as info:
            await p.chat(REQ)
    # retry 1 waits 1 s (ends at 1 s < 2.5); retry 2 would wait 2 s more (ends at 3 s > 2.5): no retry 2.
    assert len(info.value.attempts) == 2 and now[0] == 1.0 and len(upstream.requests) == 2


async def test_a_stream_that_fails_after_its_first_event_is_not_retried(upstream: FakeUpstream) -> None:
    first = b'data: {"choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n'
    upstream.add(Reply(chunks=(first, b'data: {"choices":[{"ind'), content_type="text/event-stream", chunk_delay=0.05))
    upstream.add(OPENAI.text("should not be sent", stream=True))
    sleeps = Sleeps()
    async with retrying(openai(upstream), sleeps) as p, p.chat_stream(REQ) as stream:
        events = []
        with pytest.raises(ProtocolError):
            async for event in stream:
                events.append(event)
    assert isinstance(events[0], TextDelta) and events[0].text == "partial"
    assert isinstance(events[-1], Done) and events[-1].finish_reason is FinishReason.ERROR
    assert stream.response().text == "partial" and stream.attempts == ()
    assert sleeps.delays == [] and len(upstream.requests) == 1


# --- Fallback ---------------------------------------------------------------------------------------------


async def test_cross_vendor_fallback_sends_each_its_own_model(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(OPENAI.error(503), OPENAI.error(503))
    second.add(ANTHROPIC.text("from claude", stream=False), ANTHROPIC.text("from claude", stream=True))
    claude = ANTHROPIC.provider(second.url())
    async with Fallback([(openai(upstream), "gpt-vendor-a"), (claude, "claude-vendor-b")]) as p:
        reply = await p.chat(ChatRequest(model="caller-model", messages=[Message.user("Hi")], max_tokens=64))
        async with p.chat_stream(REQ) as stream:
            streamed = await stream.until_done()
    for r in (reply, streamed):
        assert r.text == "from claude" and r.provider == "anthropic"
        assert [(a.provider, a.model, a.error.kind) for a in r.attempts] == [("openai", "gpt-vendor-a", "overloaded")]
    assert stream.provider == "anthropic"
    assert [r.json["model"] for r in upstream.requests] == ["gpt-vendor-a"] * 2
    assert [r.json["model"] for r in second.requests] == ["claude-vendor-b"] * 2


async def test_a_first_byte_timeout_moves_on_without_retry(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(Reply.json({}, headers_delay=0.5), OPENAI.text("never", stream=False))
    second.add(OPENAI.text("the backup", stream=True))
    sleeps = Sleeps()
    silent = retrying(openai(upstream, timeouts=Timeouts(first_byte=0.2)), sleeps)
    async with Fallback([silent, openai(second, "backup-model")]) as p, p.chat_stream(REQ) as stream:
        reply = await stream.until_done()
    assert reply.text == "the backup" and stream.provider == "openai"
    assert second.requests[0].json["model"] == "backup-model"
    assert [a.error.kind for a in stream.attempts] == ["first_byte_timeout"]
    assert len(upstream.requests) == 1 and sleeps.delays == []


async def test_a_stream_cut_after_its_first_event_is_an_error_not_a_switch(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    wire = b"".join(OPENAI.text("abcdefgh", stream=True).chunks)
    first_event_end = wire.index(b"\n\n", wire.index(b"abcd")) + 2
    upstream.add(Reply(chunks=(wire,), content_type="text/event-stream", cut_after=first_event_end))
    second.add(OPENAI.text("other text", stream=True))
    async with Fallback([openai(upstream), openai(second)]) as p, p.chat_stream(REQ) as stream:
        texts = []
        with pytest.raises((NetworkError, ProtocolError)):  # the stream's typed error
            async for event in stream:
                if isinstance(event, TextDelta):
                    texts.append(event.text)
    assert texts == ["abcd"] and stream.response().text == "abcd" and stream.attempts == ()
    assert second.requests == []


async def test_a_400_ends_the_fallback_with_itself(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(OPENAI.error(400))
    async with Fallback([openai(upstream), openai(second)]) as p:
        with pytest.raises(InvalidRequestError):
            await p.chat(REQ)
    assert second.requests == []


async def test_all_attempts_failed_carries_every_attempt(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(OPENAI.error(500), OPENAI.error(500))
    second.add(ANTHROPIC.error(529))
    sleeps = Sleeps()
    claude = ANTHROPIC.provider(second.url())
    first = retrying(openai(upstream), sleeps, max_attempts=2)
    async with Fallback([first, (claude, "claude-b")]) as p:
        with pytest.raises(AllAttemptsFailed) as info:
            async with p.chat_stream(REQ):
                pass
    attempts = info.value.attempts
    assert [(a.provider, a.model, a.error.kind) for a in attempts] == [
        ("openai", "gpt-test", "server"),
        ("openai", "gpt-test", "server"),
        ("anthropic", "claude-b", "overloaded"),
    ]
    assert all(a.elapsed_s >= 0 for a in attempts) and info.value.provider == "fallback"
    assert "3 attempts failed" in str(info.value)


async def test_leaving_the_stream_early_closes_the_upstream_connection(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(OPENAI.error(503))
    second.add(slow_stream(200, 0.02))
    async with Fallback([Retrying(openai(upstream), max_attempts=1), openai(second)]) as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await second.wait_disconnect(within=3.0)
    assert second.disconnects == 1 and second.completed == 0


async def test_cancelling_the_caller_closes_the_upstream_and_leaves_no_task(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(OPENAI.error(500))
    second.add(slow_stream(200, 0.02))
    started = asyncio.Event()
    before = asyncio.all_tasks()

    async def consume(p: Provider) -> None:
        async with p.chat_stream(REQ) as stream:
            async for _ in stream:
                started.set()

    async with Fallback([retrying(openai(upstream), Sleeps(), max_attempts=1), openai(second)]) as p:
        task = asyncio.create_task(consume(p))
        await asyncio.wait_for(started.wait(), 3.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await second.wait_disconnect(within=3.0)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


async def test_creating_a_stream_never_raises_errors_surface_on_entering(upstream: FakeUpstream) -> None:
    nameless = OpenAIProvider(base_url=upstream.url("/v1"), api_key="sk-wrap-test-key-0000000")
    for p in (nameless, Retrying(nameless), Fallback([nameless])):
        stream = p.chat_stream(REQ)  # no model anywhere: still no error here
        with pytest.raises(InvalidRequestError, match="no model"):
            async with stream:
                pass
    assert upstream.requests == []


async def test_settings_an_inner_provider_cannot_honour_reach_the_wrapper_stream(upstream: FakeUpstream) -> None:
    upstream.add(ANTHROPIC.text("ok", stream=True))
    no_max_tokens = ChatRequest(messages=[Message.user("Hi")])
    wrapped = Fallback([Retrying(ANTHROPIC.provider(upstream.url()))])
    async with wrapped as p:
        stream = p.chat_stream(no_max_tokens)
        assert stream.warnings == []  # known once the request is built, on entering
        with pytest.warns(LlmRelayWarning, match="max_tokens"):
            async with stream:
                reply = await stream.until_done()
    assert reply.text == "ok" and reply.provider == "anthropic"
    assert [w.setting for w in reply.warnings] == ["max_tokens"] == [w.setting for w in stream.warnings]
