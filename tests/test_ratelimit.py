"""RateLimited and its backends, end to end: a real FakeUpstream provider and a real redis-server.

The semantics tests run on both backends (``backend`` is parametrized): their windows are long
(60 s and more), so refill during a test is negligible and the server's clock need not be controlled.
Tests of waiting and refill use the memory backend with an injected clock whose ``sleep`` advances it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from conftest_redis import redis_server
from llmrelay import ChatRequest, Message, OpenAIProvider, RateLimited, RateLimitError, ServerError
from llmrelay.limits import BucketSpec, Grant, LimitBackend, MemoryBackend
from llmrelay.limits.redis import RedisBackend
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wrappers.ratelimit import estimate_tokens

__all__ = ["redis_server"]

# "Hello" is 5 characters -> 1 token, plus max_tokens 60: an estimate of 61 tokens. The fake replies
# report usage (10, 5): 15 tokens.
REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=60)


class Clock:
    """An injected clock; ``sleep`` advances it and records the delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def openai(up: FakeUpstream) -> OpenAIProvider:
    return OpenAIProvider("gpt-test", base_url=up.url("/v1"), api_key="sk-rl-test-key-00000000")


def text(stream: bool = False) -> Reply:
    return OPENAI.text("fine", stream=stream)


@pytest.fixture
async def redis_client(redis_server: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[LimitBackend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    client = Redis.from_url(request.getfixturevalue("redis_server"))
    try:
        yield RedisBackend(client=client)
    finally:
        await client.aclose()


class Gate:
    """A handler that holds each request until ``open()``: a call in flight, for as long as the test
    needs (released at the end, so the server shuts down at once)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def __call__(self, seen: object) -> Reply:
        await self.event.wait()
        return text()

    def open(self) -> None:
        self.event.set()


def scope() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# --- both backends ----------------------------------------------------------------------------------------


async def test_requests_per_minute_admits_the_limit_then_fails_with_retry_after(
    upstream: FakeUpstream, backend: LimitBackend
) -> None:
    upstream.route("/v1/chat/completions", text())
    p = RateLimited(openai(upstream), requests_per_minute=3, backend=backend, scope=scope(), on_limit="fail")
    for _ in range(3):
        assert (await p.chat(REQ)).text == "fine"
    with pytest.raises(RateLimitError) as caught:
        await p.chat(REQ)
    assert caught.value.code == "llmrelay_rate_limit" and caught.value.retryable
    assert caught.value.retry_after is not None and 19.0 < caught.value.retry_after <= 20.0  # 60 s / 3
    assert len(upstream.requests) == 3


async def test_tokens_are_reserved_by_estimate_and_settled_with_real_usage(
    upstream: FakeUpstream, backend: LimitBackend
) -> None:
    # 100 tokens: reserve 61, settle to 15 -> 85, 70, 55 left; the fourth (61) does not fit. Without the
    # settlement only one call would fit.
    upstream.route("/v1/chat/completions", text())
    p = RateLimited(openai(upstream), tokens_per_minute=100, backend=backend, scope=scope(), on_limit="fail")
    for _ in range(3):
        await p.chat(REQ)
    with pytest.raises(RateLimitError):
        await p.chat(REQ)
    assert len(upstream.requests) == 3


async def test_a_stream_settles_with_its_done_usage(upstream: FakeUpstream, backend: LimitBackend) -> None:
    upstream.route("/v1/chat/completions", text(stream=True))
    p = RateLimited(openai(upstream), tokens_per_minute=100, backend=backend, scope=scope(), on_limit="fail")
    for _ in range(3):
        async with p.chat_stream(REQ) as stream:
            assert (await stream.until_done()).text == "fine"
    with pytest.raises(RateLimitError):
        async with p.chat_stream(REQ) as stream:
            pass
    assert len(upstream.requests) == 3


async def test_a_failed_call_refunds_its_tokens_but_counts_its_request(
    upstream: FakeUpstream, backend: LimitBackend
) -> None:
    upstream.add(OPENAI.error(500), text(), text())
    p = RateLimited(
        openai(upstream), requests_per_minute=2, tokens_per_minute=100, backend=backend, scope=scope(), on_limit="fail"
    )
    with pytest.raises(ServerError):
        await p.chat(REQ)
    assert (await p.chat(REQ)).text == "fine"  # 61 more tokens fit only because the failed call's were refunded
    with pytest.raises(RateLimitError):  # but the failed request was sent, so it counts: 2 of 2 used
        await p.chat(REQ)


async def test_a_cancelled_call_refunds_its_tokens_and_frees_its_slot(
    upstream: FakeUpstream, backend: LimitBackend
) -> None:
    gate = Gate()
    upstream.add(gate, text())
    p = RateLimited(
        openai(upstream), tokens_per_minute=100, max_concurrency=1, backend=backend, scope=scope(), on_limit="fail"
    )
    task = asyncio.create_task(p.chat(REQ))
    await until(lambda: len(upstream.requests) == 1)
    with pytest.raises(RateLimitError):  # the slot is held while the call is in flight
        await p.chat(REQ)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await p.chat(REQ)).text == "fine"  # tokens refunded and slot freed
    gate.open()


async def test_a_stream_closed_early_refunds_its_tokens(upstream: FakeUpstream, backend: LimitBackend) -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": None}]} for i in range(50)]
    upstream.add(Reply.sse([*chunks, "[DONE]"], chunk_delay=0.05), text(stream=True))
    p = RateLimited(openai(upstream), tokens_per_minute=100, backend=backend, scope=scope(), on_limit="fail")
    async with p.chat_stream(REQ) as stream:
        async for _event in stream:
            break
    async with p.chat_stream(REQ) as stream:
        assert (await stream.until_done()).text == "fine"


async def test_max_concurrency_fails_fast_while_slots_are_held(upstream: FakeUpstream, backend: LimitBackend) -> None:
    gate = Gate()
    upstream.add(gate, gate, text())
    p = RateLimited(openai(upstream), max_concurrency=2, backend=backend, scope=scope(), on_limit="fail")
    tasks = [asyncio.create_task(p.chat(REQ)) for _ in range(2)]
    await until(lambda: len(upstream.requests) == 2)
    with pytest.raises(RateLimitError):
        await p.chat(REQ)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (await p.chat(REQ)).text == "fine"
    gate.open()


async def test_several_buckets_are_consumed_all_or_nothing(backend: LimitBackend) -> None:
    s = scope()
    wide, narrow = BucketSpec(f"{{{s}}}:wide", 5, 3600), BucketSpec(f"{{{s}}}:narrow", 1, 3600)
    assert isinstance(await backend.acquire([wide, narrow], {"requests": 1}), Grant)
    for _ in range(3):  # narrow is empty: refused, and wide must not be touched by the refusals
        assert isinstance(await backend.acquire([wide, narrow], {"requests": 1}), float)
    for _ in range(4):
        assert isinstance(await backend.acquire([wide], {"requests": 1}), Grant)
    assert isinstance(await backend.acquire([wide], {"requests": 1}), float)


async def test_settling_or_releasing_a_grant_twice_frees_its_slot_once(backend: LimitBackend) -> None:
    s = scope()
    slot = BucketSpec(f"{{{s}}}:concurrency", 1, 600, "slots", "concurrency")
    first = await backend.acquire((slot,), {})
    assert isinstance(first, Grant)
    await backend.settle(first, {})
    await backend.release(first)
    if not backend.settle_nowait(first, None):  # a backend without I/O does it at once
        await backend.release(first)
    assert isinstance(await backend.acquire((slot,), {}), Grant)
    assert isinstance(await backend.acquire((slot,), {}), float)  # one slot, held: freed once, not thrice


async def test_buckets_in_any_order_and_container_share_one_budget(backend: LimitBackend) -> None:
    s = scope()

    def specs() -> list[BucketSpec]:  # built anew each time, as two processes (or wrappers) would
        return [
            BucketSpec(f"{{{s}}}:tokens", 100, 3600, "tokens", refundable=True),
            BucketSpec(f"{{{s}}}:concurrency", 2, 600, "slots", "concurrency"),
            BucketSpec(f"{{{s}}}:requests", 3, 3600, "requests"),
        ]

    a = await backend.acquire(specs(), {"requests": 1, "tokens": 60})
    assert isinstance(a, Grant)
    b = await backend.acquire(tuple(reversed(specs())), {"requests": 1, "tokens": 60})
    assert isinstance(b, float)  # 40 tokens left of 100: the same budget, whatever the order
    await backend.settle(a, {"tokens": 10})  # 50 of the 60 reserved come back: 90 left
    b = await backend.acquire(tuple(reversed(specs())), {"requests": 1, "tokens": 60})
    assert isinstance(b, Grant)
    await backend.release(b)  # refundable tokens back, its slot freed; its request stays counted
    d = await backend.acquire(specs(), {"requests": 1, "tokens": 90})
    assert isinstance(d, Grant)  # 90 tokens are there again; the third and last request of 3
    assert isinstance(await backend.acquire(specs(), {"requests": 1}), float)  # no request left


# --- memory backend, injected clock -----------------------------------------------------------------------


async def test_waiting_is_the_default_and_lasts_until_the_bucket_refills(upstream: FakeUpstream) -> None:
    upstream.route("/v1/chat/completions", text())
    clock = Clock()
    p = RateLimited(openai(upstream), requests_per_minute=2, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await p.chat(REQ)
    assert clock.sleeps == [pytest.approx(30.0)]  # one request refills in 60 s / 2
    assert len(upstream.requests) == 3


async def test_a_wait_longer_than_max_wait_raises_at_once(upstream: FakeUpstream) -> None:
    upstream.route("/v1/chat/completions", text())
    clock = Clock()
    p = RateLimited(openai(upstream), requests_per_minute=1, max_wait=10.0, clock=clock, sleep=clock.sleep)
    await p.chat(REQ)
    with pytest.raises(RateLimitError) as caught:
        await p.chat(REQ)
    assert caught.value.retry_after == pytest.approx(60.0)
    assert clock.sleeps == []


async def test_an_overdraft_makes_later_calls_wait_longer(upstream: FakeUpstream) -> None:
    # Estimate 61 of 100; the real usage is 115 (usage 100 + 15): the bucket goes to -15, so the next
    # call of 61 waits for 76 tokens = 45.6 s at 100 tokens / 60 s.
    upstream.add(OPENAI.text("big", stream=False, usage=(100, 15)), text())
    clock = Clock()
    p = RateLimited(openai(upstream), tokens_per_minute=100, clock=clock, sleep=clock.sleep)
    await p.chat(REQ)
    await p.chat(REQ)
    assert clock.sleeps == [pytest.approx(45.6)]


async def test_max_concurrency_waits_for_a_slot(upstream: FakeUpstream) -> None:
    upstream.route("/v1/chat/completions", dataclasses.replace(text(), headers_delay=0.2))
    p = RateLimited(openai(upstream), max_concurrency=2, max_wait=10.0)
    started = time.monotonic()
    replies = await asyncio.wait_for(asyncio.gather(*(p.chat(REQ) for _ in range(4))), 10.0)
    assert [r.text for r in replies] == ["fine"] * 4
    assert time.monotonic() - started >= 0.4  # two waves of two


def test_the_token_estimate() -> None:
    assert estimate_tokens(REQ) == 61
    assert estimate_tokens(ChatRequest(messages=[Message.user("x" * 400)], system="y" * 40)) == 110 + 1024


# --- Redis specifics --------------------------------------------------------------------------------------


async def test_every_redis_key_is_versioned_and_has_a_ttl(redis_client: Redis) -> None:
    backend = RedisBackend(client=redis_client)
    s = scope()
    buckets = [
        BucketSpec(f"{{{s}}}:requests", 10, 60),
        BucketSpec(f"{{{s}}}:tokens", 1000, 60, "tokens", refundable=True),
        BucketSpec(f"{{{s}}}:concurrency", 2, 600, "slots", "concurrency"),
    ]
    grant = await backend.acquire(buckets, {"requests": 1, "tokens": 300})
    assert isinstance(grant, Grant)
    keys = sorted(await redis_client.keys(f"*{s}*"))
    assert keys == [f"llmrelay:rl:v1:{{{s}}}:{r}" for r in ("concurrency", "requests", "tokens")]
    for key in keys:
        assert 0 < await redis_client.pttl(key) <= 601_000
    await backend.settle(grant, {"tokens": 100})
    for key in await redis_client.keys(f"*{s}*"):
        assert await redis_client.pttl(key) > 0  # -1 would mean no TTL: a key that never goes away


async def test_a_crashed_holder_of_a_slot_loses_it_when_its_lease_expires(redis_client: Redis) -> None:
    backend = RedisBackend(client=redis_client)
    slot = BucketSpec(f"{{{scope()}}}:concurrency", 1, 0.3, "slots", "concurrency")
    assert isinstance(await backend.acquire([slot], {}), Grant)  # never released: its holder "crashed"
    assert isinstance(await backend.acquire([slot], {}), float)
    await asyncio.sleep(0.4)
    assert isinstance(await backend.acquire([slot], {}), Grant)


CHILD = """
import asyncio, sys, time
from llmrelay import ChatRequest, Message, OpenAIProvider, RateLimited, RateLimitError
from llmrelay.limits.redis import RedisBackend

async def main() -> None:
    url, base, scope, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    backend = RedisBackend(url)
    provider = OpenAIProvider("gpt-test", base_url=base, api_key="sk-rl-test-key-00000000")
    p = RateLimited(provider, requests_per_minute=20, window=3600, backend=backend, scope=scope, on_limit="fail")
    request = ChatRequest(messages=[Message.user("Hello")], max_tokens=8)
    while time.time() < start:  # both processes begin together
        await asyncio.sleep(0.002)
    accepted = 0
    deadline = time.monotonic() + 20
    for _ in range(30):
        if time.monotonic() > deadline:
            break
        try:
            await p.chat(request)
            accepted += 1
        except RateLimitError:
            pass
    await p.aclose()
    await backend.aclose()
    print(accepted)

asyncio.run(main())
"""


async def test_two_processes_share_one_redis_budget(upstream: FakeUpstream, redis_server: str) -> None:
    # 20 requests per hour (refill is negligible during the test); two OS processes try 30 each.
    upstream.route("/v1/chat/completions", text())
    s, start = scope(), time.time() + 2.0
    args = [redis_server, upstream.url("/v1"), s, repr(start)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [await asyncio.wait_for(proc.communicate(), 60.0) for proc in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err.decode()
    accepted = [int(out) for out, _err in outs]
    assert 18 <= sum(accepted) <= 20, accepted  # shared (each alone would take 20) and used, not over-throttled
    assert len(upstream.requests) == sum(accepted)


def test_import_llmrelay_does_not_import_redis() -> None:
    code = "import sys, llmrelay, llmrelay.limits; llmrelay.RateLimited; assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_rate_limited_built_per_request_shares_the_budget_and_one_plan(upstream: FakeUpstream) -> None:
    # The gateway builds a RateLimited per request for a key's limits: each must draw on the same buckets,
    # and the memory backend must compile them once, not once per request.
    upstream.route("/v1/chat/completions", text())
    backend = MemoryBackend()
    provider = openai(upstream)
    s = scope()
    for _ in range(3):
        await RateLimited(provider, requests_per_minute=3, backend=backend, scope=s, on_limit="fail").chat(REQ)
    with pytest.raises(RateLimitError):
        await RateLimited(provider, requests_per_minute=3, backend=backend, scope=s, on_limit="fail").chat(REQ)
    assert len(backend._plans) == 1
