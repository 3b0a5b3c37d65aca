"""Hedged, Router and CircuitBreaker: end to end against fake upstreams on 127.0.0.1, and the breaker alone.

Breaker time comes from an injected clock (``Clock``), so opening, cooldown and recovery need no sleeps;
the only real waits are a hedging threshold of 0.15 s and stalls of under a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmrelay import (
    AllAttemptsFailed,
    AuthError,
    ChatRequest,
    CircuitBreaker,
    Deployment,
    Fallback,
    Hedged,
    InvalidRequestError,
    Message,
    NetworkError,
    OpenAIProvider,
    Provider,
    RateLimitError,
    Retrying,
    Router,
    ServerError,
    TextDelta,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wrappers.hedge import CANCELLED, is_cancelled

REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=64)
THRESHOLD = 0.15
STALL = 0.8


class Clock:
    """An injected clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def openai(up: FakeUpstream, model: str = "gpt-test") -> OpenAIProvider:
    return OpenAIProvider(model, base_url=up.url("/v1"), api_key="sk-hedge-test-key-000000")


def stalled(text: str, *, stream: bool) -> Reply:
    """Headers at once, then nothing for ``STALL`` seconds (no first event), then the reply."""
    reply = OPENAI.text(text, stream=stream)
    return Reply(chunks=reply.chunks, content_type=reply.content_type, stall=STALL, stall_after=0)


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
async def third() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


def leftover(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    """Tasks started since ``before`` that are still there, but for the fake upstreams' own handlers."""
    now = asyncio.all_tasks() - before - {asyncio.current_task()}
    return {t for t in now if not t.get_coro().__qualname__.startswith("RequestHandler.")}  # type: ignore[union-attr]


def texts_of(*replies: object) -> list[str]:
    return [getattr(r, "text", "") for r in replies]


# --- Hedged -----------------------------------------------------------------------------------------------


async def test_a_stalled_primary_is_hedged_the_second_wins_and_the_primary_is_closed(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(stalled("slow", stream=True))
    second.add(OPENAI.text("fast", stream=True))
    before = asyncio.all_tasks()
    async with Hedged([openai(upstream, "m-a"), openai(second, "m-b")], threshold=THRESHOLD) as p:
        async with p.chat_stream(REQ) as stream:
            assert leftover(before) == set()  # the loser was cancelled and awaited before the winner came back
            reply = await stream.until_done()
        assert await upstream.wait_disconnect(within=3.0)
    assert reply.text == "fast" and upstream.completed == 0
    assert [(a.model, a.error.kind) for a in reply.attempts] == [("m-a", CANCELLED)]
    assert is_cancelled(reply.attempts[0]) and reply.attempts[0].elapsed_s >= THRESHOLD
    assert [r.json["model"] for r in second.requests] == ["m-b"]
    assert leftover(before) == set()


async def test_hedged_chat_uses_the_same_policy(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(stalled("slow", stream=False))
    second.add(OPENAI.text("fast", stream=False))
    before = asyncio.all_tasks()
    async with Hedged([openai(upstream), openai(second)], threshold=THRESHOLD) as p:
        reply = await p.chat(REQ)
        assert leftover(before) == set()
        assert await upstream.wait_disconnect(within=3.0)
    assert reply.text == "fast" and [a.error.kind for a in reply.attempts] == [CANCELLED]


async def test_no_hedge_when_the_primary_answers_in_time(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(OPENAI.text("quick", stream=True), OPENAI.text("quick", stream=False))
    async with Hedged([openai(upstream), openai(second)], threshold=0.5) as p:
        async with p.chat_stream(REQ) as stream:
            streamed = await stream.until_done()
        reply = await p.chat(REQ)
    assert texts_of(streamed, reply) == ["quick", "quick"] and reply.attempts == streamed.attempts == ()
    assert second.requests == []


async def test_a_primary_that_fails_fast_moves_on_at_once(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(OPENAI.error(503))
    second.add(OPENAI.text("backup", stream=True))
    async with Hedged([openai(upstream), openai(second)], threshold=5.0) as p:
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with p.chat_stream(REQ) as stream:
            reply = await stream.until_done()
    assert reply.text == "backup" and loop.time() - began < 2.0  # not the 5 s threshold
    assert [a.error.kind for a in reply.attempts] == ["overloaded"]


async def test_a_400_is_raised_unchanged_and_cancels_the_hedge(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(Reply.json({"error": {"message": "bad"}}, status=400, headers_delay=0.3))
    second.add(stalled("never", stream=False))
    async with Hedged([openai(upstream), openai(second)], threshold=0.1) as p:
        with pytest.raises(InvalidRequestError):
            await p.chat(REQ)
        assert await second.wait_disconnect(within=3.0)


async def test_all_hedged_candidates_failing_is_all_attempts_failed(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(OPENAI.error(500))
    second.add(OPENAI.error(502))
    async with Hedged([openai(upstream), openai(second)], threshold=THRESHOLD) as p:
        with pytest.raises(AllAttemptsFailed) as info:
            async with p.chat_stream(REQ):
                pass
    assert [a.error.kind for a in info.value.attempts] == ["server", "server"]


async def test_cancelling_the_caller_closes_every_hedged_connection_and_leaves_no_task(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(stalled("a", stream=True))
    second.add(stalled("b", stream=True))
    before = asyncio.all_tasks()

    async def consume(p: Provider) -> None:
        async with p.chat_stream(REQ) as stream:
            await stream.until_done()

    async with Hedged([openai(upstream), openai(second)], threshold=0.1) as p:
        task = asyncio.create_task(consume(p))
        for _ in range(100):  # until both attempts are in flight (bounded: 5 s)
            if second.requests:
                break
            await asyncio.sleep(0.05)
        assert second.requests
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await upstream.wait_disconnect(within=3.0) and await second.wait_disconnect(within=3.0)
    assert leftover(before) == set()


async def test_hedged_composes_with_retrying_and_fallback(
    upstream: FakeUpstream, second: FakeUpstream, third: FakeUpstream
) -> None:
    upstream.add(OPENAI.error(500), OPENAI.error(500))
    second.add(OPENAI.error(503))
    third.add(OPENAI.text("third", stream=True))
    retried = Retrying(openai(upstream), max_attempts=2, base_delay=0.0)
    hedged = Hedged([retried, openai(second)], threshold=THRESHOLD)
    async with Fallback([hedged, openai(third)]) as p, p.chat_stream(REQ) as stream:
        reply = await stream.until_done()
    assert reply.text == "third"
    assert [a.error.kind for a in reply.attempts] == ["server", "server", "overloaded"]


# --- Router: strategies -----------------------------------------------------------------------------------


async def test_round_robin_spreads_requests_evenly(
    upstream: FakeUpstream, second: FakeUpstream, third: FakeUpstream
) -> None:
    ups = (upstream, second, third)
    for up in ups:
        up.add(*(OPENAI.text("ok", stream=False) for _ in range(3)))
    async with Router([openai(up) for up in ups], strategy="round_robin") as p:
        for _ in range(9):
            assert (await p.chat(REQ)).text == "ok"
    assert [len(up.requests) for up in ups] == [3, 3, 3]


async def test_weighted_follows_the_weights(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(*(OPENAI.text("a", stream=False) for _ in range(12)))
    second.add(*(OPENAI.text("b", stream=False) for _ in range(4)))
    deployments = [Deployment(openai(upstream), weight=3), Deployment(openai(second), weight=1)]
    async with Router(deployments, strategy="weighted") as p:
        replies = [(await p.chat(REQ)).text for _ in range(16)]
    assert replies.count("a") == 12 and replies.count("b") == 4
    assert all(replies[i : i + 4].count("b") == 1 for i in range(0, 16, 4))  # smooth: one b in every four


async def test_least_in_flight_avoids_the_busy_deployment(upstream: FakeUpstream, second: FakeUpstream) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": None}]} for i in range(50)]
    upstream.add(Reply.sse([*chunks, "[DONE]"], chunk_delay=0.02))
    second.add(*(OPENAI.text("b", stream=False) for _ in range(3)))
    upstream.add(*(Reply.json(OPENAI_REPLY, headers_delay=0.2) for _ in range(2)))
    second.add(*(Reply.json(OPENAI_REPLY, headers_delay=0.2) for _ in range(2)))
    async with Router([openai(upstream, "a"), openai(second, "b")], strategy="least_in_flight") as p:
        async with p.chat_stream(REQ) as held:  # a long stream keeps deployment a busy
            assert isinstance(await anext(held), TextDelta)
            assert [h.in_flight for h in p.health()] == [1, 0]
            for _ in range(3):
                assert (await p.chat(REQ)).text == "b"
        assert [h.in_flight for h in p.health()] == [0, 0]
        # four concurrent requests: each goes where fewer are in progress at that moment
        replies = await asyncio.gather(*(p.chat(REQ) for _ in range(4)))
    assert [r.text for r in replies] == ["slow"] * 4
    assert [len(upstream.requests), len(second.requests)] == [3, 5]


OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "slow"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


async def test_the_latency_strategy_prefers_the_fast_deployment(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(*(Reply.json(OPENAI_REPLY, headers_delay=0.2) for _ in range(5)))
    second.add(*(OPENAI.text("fast", stream=True) for _ in range(5)))
    async with Router([openai(upstream, "slow"), openai(second, "fast")], strategy="latency") as p:
        first = await p.chat(REQ)  # each deployment is measured once, then the fast one is preferred
        for _ in range(4):
            async with p.chat_stream(REQ) as stream:
                assert (await stream.until_done()).text == "fast"
        slow, fast = p.health()
    assert first.text == "slow" and [len(upstream.requests), len(second.requests)] == [1, 4]
    assert slow.latency_ewma is not None and fast.latency_ewma is not None and fast.latency_ewma < slow.latency_ewma


# --- Router: circuit breakers -----------------------------------------------------------------------------


async def test_the_breaker_opens_half_opens_and_traffic_returns_to_the_recovered_primary(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    clock = Clock()
    upstream.add(*(OPENAI.error(500) for _ in range(3)), OPENAI.text("primary back", stream=True))
    upstream.add(OPENAI.text("primary", stream=False))
    second.add(*(OPENAI.text("backup", stream=False) for _ in range(5)))
    router = Router(
        [Deployment(openai(upstream), name="primary"), Deployment(openai(second), name="backup")],
        min_requests=3,
        error_ratio=0.5,
        window=60.0,
        cooldown=30.0,
        clock=clock,
    )
    async with router as p:
        for _ in range(3):  # three failures on the primary, each answered by the backup
            reply = await p.chat(REQ)
            assert reply.text == "backup" and [a.provider for a in reply.attempts] == ["openai"]
        assert [(h.name, h.state) for h in p.health()] == [("primary", "open"), ("backup", "closed")]
        assert (await p.chat(REQ)).text == "backup" and len(upstream.requests) == 3  # open: skipped
        clock.advance(30.0)
        assert p.health()[0].state == "half_open"
        async with p.chat_stream(REQ) as stream:  # the probe
            assert (await stream.until_done()).text == "primary back"
        assert p.health()[0].state == "closed"
        assert (await p.chat(REQ)).text == "primary"
    assert len(upstream.requests) == 5 and len(second.requests) == 4


async def test_a_401_opens_the_breaker_at_once(upstream: FakeUpstream, second: FakeUpstream) -> None:
    clock = Clock()
    upstream.add(OPENAI.error(401))
    second.add(*(OPENAI.text("backup", stream=False) for _ in range(2)))
    async with Router([openai(upstream), openai(second)], min_requests=10, clock=clock) as p:
        assert [a.error.kind for a in (await p.chat(REQ)).attempts] == ["auth"]
        assert p.health()[0].state == "open"
        assert (await p.chat(REQ)).attempts == ()
    assert len(upstream.requests) == 1


async def test_retry_after_opens_the_breaker_for_that_long(upstream: FakeUpstream, second: FakeUpstream) -> None:
    clock = Clock()
    upstream.add(OPENAI.error(429, retry_after=7), OPENAI.text("again", stream=False))
    second.add(*(OPENAI.text("backup", stream=False) for _ in range(2)))
    async with Router([openai(upstream), openai(second)], min_requests=10, cooldown=300.0, clock=clock) as p:
        assert (await p.chat(REQ)).text == "backup"
        clock.advance(6.9)
        assert p.health()[0].state == "open" and (await p.chat(REQ)).text == "backup"
        clock.advance(0.2)
        assert p.health()[0].state == "half_open" and (await p.chat(REQ)).text == "again"
        assert p.health()[0].state == "closed"


async def test_all_deployments_open_is_all_attempts_failed(upstream: FakeUpstream, second: FakeUpstream) -> None:
    clock = Clock()
    upstream.add(OPENAI.error(401))
    second.add(OPENAI.error(403))
    async with Router([openai(upstream), openai(second)], clock=clock) as p:
        with pytest.raises(AllAttemptsFailed) as failed:
            await p.chat(REQ)
        assert [a.error.kind for a in failed.value.attempts] == ["auth", "auth"]
        with pytest.raises(AllAttemptsFailed, match="open") as skipped:
            async with p.chat_stream(REQ):
                pass
        assert skipped.value.attempts == ()
    assert len(upstream.requests) == len(second.requests) == 1


async def test_a_400_does_not_count_against_the_deployment(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(*(OPENAI.error(400) for _ in range(3)))
    async with Router([openai(upstream), openai(second)], min_requests=1, error_ratio=0.1) as p:
        for _ in range(3):
            with pytest.raises(InvalidRequestError):
                await p.chat(REQ)
        assert p.health()[0].state == "closed" and p.health()[0].error_ratio == 0.0
    assert second.requests == []


async def test_a_router_inside_a_fallback_moves_on_when_all_are_open(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(OPENAI.error(401))
    second.add(*(OPENAI.text("elsewhere", stream=False) for _ in range(2)))
    async with Fallback([Router([openai(upstream)]), openai(second)]) as p:
        assert (await p.chat(REQ)).text == "elsewhere"
        reply = await p.chat(REQ)
    assert reply.text == "elsewhere" and [a.error.kind for a in reply.attempts] == ["all_attempts_failed"]
    assert len(upstream.requests) == 1


async def test_leaving_a_routed_stream_closes_the_upstream_and_frees_the_slot(upstream: FakeUpstream) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": None}]} for i in range(200)]
    upstream.add(Reply.sse([*chunks, "[DONE]"], chunk_delay=0.02))
    async with Router([openai(upstream)], strategy="least_in_flight") as p:
        async with p.chat_stream(REQ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text == "t2":
                    break
        assert await upstream.wait_disconnect(within=3.0)
        assert p.health()[0].in_flight == 0


# --- CircuitBreaker alone ---------------------------------------------------------------------------------


def test_the_breaker_opens_on_the_error_ratio_only_after_the_minimum_count() -> None:
    clock = Clock()
    b = CircuitBreaker(error_ratio=0.5, min_requests=4, window=10.0, cooldown=5.0, clock=clock)
    for _ in range(3):
        assert b.acquire()
        b.failure(ServerError("boom"))
    assert b.state == "closed"  # 3 of 3 failed, but fewer than 4 outcomes
    b.success()
    assert b.state == "closed" and b.observed_error_ratio == 0.75
    clock.advance(10.5)  # the window forgets them
    assert b.observed_error_ratio == 0.0
    for _ in range(2):
        b.success()
    for _ in range(2):
        b.failure(ServerError("boom"))
    assert b.state == "open" and not b.acquire()


def test_half_open_lets_one_probe_through_and_its_outcome_decides() -> None:
    clock = Clock()
    b = CircuitBreaker(min_requests=1, cooldown=5.0, clock=clock)
    b.failure(ServerError("boom"))
    assert b.state == "open"
    clock.advance(4.9)
    assert not b.acquire()
    clock.advance(0.1)
    assert b.state == "half_open" and b.acquire() and not b.acquire()  # one probe only
    b.failure(ServerError("still down"))
    assert b.state == "open" and b.open_until == clock.now + 5.0
    clock.advance(5.0)
    assert b.acquire()
    b.release()  # cancelled: no verdict, the next request may probe
    assert b.acquire()
    b.success()
    assert b.state == "closed" and b.acquire() and b.acquire()


def test_dead_keys_and_retry_after_open_at_once() -> None:
    clock = Clock()
    b = CircuitBreaker(min_requests=100, cooldown=30.0, clock=clock)
    b.failure(AuthError("revoked", status=401))
    assert b.state == "open" and b.open_until == clock.now + 30.0
    b = CircuitBreaker(min_requests=100, cooldown=30.0, clock=clock)
    b.failure(InvalidRequestError("gone", status=404))
    assert b.state == "open"
    b = CircuitBreaker(min_requests=100, cooldown=30.0, clock=clock)
    b.failure(RateLimitError("slow down", retry_after=2.5))
    assert b.open_until == clock.now + 2.5
    b = CircuitBreaker(min_requests=100, cooldown=30.0, clock=clock)
    b.failure(AllAttemptsFailed([]))  # no attempt to judge by: counted, not opened
    assert b.state == "closed"


async def test_a_deployment_that_always_breaks_mid_stream_opens_its_breaker(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    from llmrelay.testing import faults

    clock = Clock()
    for _ in range(4):
        upstream.add(faults.cut_mid_stream(OPENAI))
    second.add(OPENAI.text("healthy", stream=True))
    async with Router([openai(upstream), openai(second)], min_requests=4, error_ratio=0.5, clock=clock) as p:
        for _ in range(2):  # each: a success at the commit point, then a failure after the first event
            with pytest.raises(NetworkError):
                async with p.chat_stream(REQ) as stream:
                    async for _event in stream:
                        pass
        assert p.health()[0].state == "open"
        async with p.chat_stream(REQ) as stream:
            assert (await stream.until_done()).text == "healthy"
    assert len(upstream.requests) == 2
