"""Circuit-breaker state behind ``BreakerStore``: the contract, run against ``MemoryBreakerStore`` (an injected
clock) and ``RedisBreakerStore`` on a real redis-server (the server's clock: open periods of a fraction of a
second); exactly one half-open probe across two clients; the Redis keys' versioned names and TTLs; two
``CircuitBreaker``s (two replicas) of one name sharing one state; two ``Router``s in front of real fake
upstreams, one opening a dead deployment that the other then skips without sending it a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from conftest_redis import redis_server
from llmrelay import AuthError, ChatRequest, Message, OpenAIProvider, Router, ServerError
from llmrelay.limits.breaker_redis import RedisBreakerStore
from llmrelay.testing import FakeUpstream
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wrappers.breaker import CircuitBreaker
from llmrelay.wrappers.breaker_store import BreakerStore, MemoryBreakerStore

__all__ = ["redis_server"]

OPEN = 0.25
"""An open period: short, because the Redis store runs on the server's clock."""


@dataclass
class Stores:
    """Two views of one shared state (two replicas) and a way to let time pass on its clock."""

    a: BreakerStore
    b: BreakerStore
    clock: list[float]
    real_time: bool

    async def advance(self, seconds: float) -> None:
        if self.real_time:
            await asyncio.sleep(seconds)
        else:
            self.clock[0] += seconds


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        now = [1000.0]
        memory = MemoryBreakerStore(clock=lambda: now[0])
        yield Stores(memory, memory, now, real_time=False)
        return
    url: str = request.getfixturevalue("redis_server")
    first, second = Redis.from_url(url), Redis.from_url(url)
    await first.flushdb()
    try:
        yield Stores(RedisBreakerStore(client=first), RedisBreakerStore(client=second), [0.0], real_time=True)
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_window_counts_failures_and_the_successes_sent_with_admit(stores: Stores) -> None:
    assert (await stores.a.admit("w", window=60.0, successes=3)).verdict == "closed"
    counts = await stores.b.record_failure("w", window=60.0, successes=1)
    assert (counts.total, counts.failures, counts.is_open) == (5, 1, False)
    counts = await stores.a.record_failure("w", window=60.0)
    assert (counts.total, counts.failures) == (6, 2)


async def test_the_window_forgets_old_slices(stores: Stores) -> None:
    window = 0.5 if stores.real_time else 10.0
    await stores.a.record_failure("old", window=window)
    await stores.advance(window * 1.2)
    counts = await stores.b.record_failure("old", window=window)
    assert (counts.total, counts.failures) == (1, 1)


async def test_open_then_exactly_one_probe_across_two_clients(stores: Stores) -> None:
    await stores.a.open("p", OPEN, hold=60.0)
    refused = await stores.b.admit("p", window=60.0, successes=5)
    assert refused.verdict == "open" and 0.0 < refused.open_for <= OPEN
    assert (await stores.a.record_failure("p", window=60.0)).is_open  # not counted while open
    await stores.advance(OPEN + 0.05)
    answers = await asyncio.gather(*(s.admit("p", window=60.0) for s in [stores.a, stores.b] * 10))
    probes = [a for a in answers if a.verdict == "probe"]
    assert len(probes) == 1 and sum(a.verdict == "busy" for a in answers) == 19
    token = probes[0].token
    assert token is not None
    await stores.b.release_probe("p", "not-the-owner")  # only the owner frees it
    assert (await stores.b.admit("p", window=60.0)).verdict == "busy"
    await stores.a.release_probe("p", token)
    again = await stores.b.admit("p", window=60.0)
    assert again.verdict == "probe" and again.token != token
    await stores.b.close("p")
    assert (await stores.a.admit("p", window=60.0)).verdict == "closed"
    counts = await stores.a.record_failure("p", window=60.0)
    assert (counts.total, counts.failures) == (1, 1)  # closing forgot the window (and the 5 successes)


async def test_an_open_breaker_is_forgotten_after_its_hold(stores: Stores) -> None:
    await stores.a.open("h", OPEN / 2, hold=OPEN / 2)
    await stores.advance(OPEN + 0.05)
    assert (await stores.b.admit("h", window=60.0)).verdict == "closed"


async def test_redis_keys_are_versioned_and_all_expire(redis_server: str) -> None:
    client = Redis.from_url(redis_server, decode_responses=True)
    try:
        await client.flushdb()
        store = RedisBreakerStore(client=client, probe_ttl=5.0)
        await store.admit("pool:oa/m", window=60.0, successes=2)
        await store.record_failure("pool:oa/m", window=60.0)
        assert sorted(await client.keys("*")) == ["llmrelay:cb:v1:{pool:oa/m}:w"]
        assert 0 < await client.pttl("llmrelay:cb:v1:{pool:oa/m}:w") <= 66_000
        await store.open("pool:oa/m", 0.05, hold=1.0)
        assert sorted(await client.keys("*")) == ["llmrelay:cb:v1:{pool:oa/m}:open"]
        assert 0 < await client.pttl("llmrelay:cb:v1:{pool:oa/m}:open") <= 1050
        await asyncio.sleep(0.1)
        assert (await store.admit("pool:oa/m", window=60.0)).verdict == "probe"
        assert 0 < await client.pttl("llmrelay:cb:v1:{pool:oa/m}:probe") <= 5000
        assert [await client.pttl(k) > 0 for k in await client.keys("*")] == [True, True]
        assert store.keys("x") == ["llmrelay:cb:v1:{x}:open", "llmrelay:cb:v1:{x}:probe", "llmrelay:cb:v1:{x}:w"]
    finally:
        await client.aclose()


async def test_a_probe_whose_replica_died_expires(redis_server: str) -> None:
    client = Redis.from_url(redis_server)
    try:
        store = RedisBreakerStore(client=client, probe_ttl=0.1)
        await store.open("dead-probe", 0.01, hold=60.0)
        await asyncio.sleep(0.05)
        assert (await store.admit("dead-probe", window=60.0)).verdict == "probe"  # and never reported
        assert (await store.admit("dead-probe", window=60.0)).verdict == "busy"
        await asyncio.sleep(0.15)
        assert (await store.admit("dead-probe", window=60.0)).verdict == "probe"
    finally:
        await client.aclose()


# --- CircuitBreaker and Router over a shared store -------------------------------------------------------


def test_a_shared_breaker_needs_a_name() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        CircuitBreaker(store=MemoryBreakerStore())


async def test_two_replicas_breakers_share_one_state(stores: Stores) -> None:
    def breaker(store: BreakerStore) -> CircuitBreaker:
        return CircuitBreaker(name="pool:a", store=store, min_requests=4, error_ratio=0.5, cooldown=OPEN, refresh=0)

    a, b = breaker(stores.a), breaker(stores.b)
    for _ in range(2):
        assert await a.aacquire()
        await a.asuccess()  # counted locally, sent with the next call
    assert await a.aacquire()  # sends both
    await a.arelease()
    assert await b.aacquire()
    await b.afailure(ServerError("boom"))
    assert b.state == "closed"  # 1 of 3 failed
    await b.afailure(ServerError("boom"))  # 2 of 4: the ratio, across both replicas
    assert b.state == "open"
    assert not await a.aacquire() and a.state == "open"
    await stores.advance(OPEN + 0.05)
    first, second = await a.aacquire(), await b.aacquire()
    assert (first, second) == (True, False)  # one probe for both replicas
    assert b.state == "half_open"
    await a.asuccess()
    assert await b.aacquire() and b.state == "closed"


async def test_a_probe_failure_reopens_and_a_release_frees_the_probe(stores: Stores) -> None:
    a = CircuitBreaker(name="pool:r", store=stores.a, cooldown=OPEN, refresh=0)
    b = CircuitBreaker(name="pool:r", store=stores.b, cooldown=OPEN, refresh=0)
    await a.afailure(AuthError("revoked", status=401))
    assert not await b.aacquire()
    await stores.advance(OPEN + 0.05)
    assert await b.aacquire()
    await b.arelease()  # no verdict: the probe is free again
    assert await a.aacquire() and not await b.aacquire()
    await a.afailure(ServerError("still down"))
    assert not await b.aacquire() and b.state == "open"


async def test_a_cancelled_probe_is_freed_in_the_background(stores: Stores) -> None:
    a = CircuitBreaker(name="pool:c", store=stores.a, cooldown=OPEN, refresh=0)
    b = CircuitBreaker(name="pool:c", store=stores.b, cooldown=OPEN, refresh=0)
    await a.afailure(ServerError("boom", retry_after=OPEN))
    await stores.advance(OPEN + 0.05)
    assert await a.aacquire() and not await b.aacquire()
    a.release()  # the sync form, as on cancellation: the shared probe is freed by a task
    for _ in range(100):
        await asyncio.sleep(0.005)
        if not a._tasks:
            break
    assert await b.aacquire()


async def test_a_closed_answer_is_trusted_for_refresh_seconds_and_own_opens_are_seen_at_once(
    redis_server: str,
) -> None:
    client = Redis.from_url(redis_server)
    now = [1000.0]
    try:
        store = RedisBreakerStore(client=client)
        await store.close("fresh")
        a = CircuitBreaker(name="fresh", store=store, cooldown=600, refresh=0.1, clock=lambda: now[0])
        b = CircuitBreaker(name="fresh", store=store, cooldown=600, refresh=0.1, clock=lambda: now[0])
        assert await a.aacquire() and await b.aacquire()  # both read "closed"
        await a.afailure(AuthError("revoked", status=401))
        assert not await a.aacquire()  # the replica that opened it: at once
        now[0] += 0.05
        assert await b.aacquire()  # b trusts its "closed" for 0.1 s
        now[0] += 0.06
        assert not await b.aacquire() and b.state == "open"  # then reads the store again
    finally:
        await client.aclose()


@pytest.fixture
async def dead() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


async def test_a_router_replica_skips_the_deployment_another_opened(
    redis_server: str, dead: FakeUpstream, upstream: FakeUpstream
) -> None:
    dead.always(OPENAI.error(401))
    upstream.always(lambda seen: OPENAI.text("from the healthy one", stream=False))
    client = Redis.from_url(redis_server)
    await client.flushdb()

    def replica() -> Router:
        deployments = [
            OpenAIProvider(api_key="sk-a", base_url=dead.url("/v1"), model="m"),
            OpenAIProvider(api_key="sk-b", base_url=upstream.url("/v1"), model="m"),
        ]
        return Router(deployments, name="pool", cooldown=600, breaker_store=RedisBreakerStore(client=client))

    request = ChatRequest(messages=[Message.user("hi")])
    try:
        async with replica() as a, replica() as b:
            assert (await a.chat(request)).text == "from the healthy one"
            assert len(dead.requests) == 1 and a.health()[0].state == "open"
            for _ in range(3):
                assert (await b.chat(request)).text == "from the healthy one"
            assert len(dead.requests) == 1  # replica b never sent the dead deployment a request
            assert b.health()[0].state == "open"
    finally:
        await client.aclose()
