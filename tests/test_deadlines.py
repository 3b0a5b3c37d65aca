"""``llmrelay._deadlines``: one loop timer for many deadlines of one length, on a real event loop, and the
transport's ``Timeouts.first_byte`` built on it, against real silent and answering servers."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from aiohttp import web

from llmrelay import ChatRequest, Message, OpenAIProvider
from llmrelay._deadlines import _COMPACT_AT, Deadlines, expired
from llmrelay._errors import FirstByteTimeout
from llmrelay._transport import _MAX_DEADLINE_QUEUES, AiohttpTransport, HttpRequest, Timeouts
from local_server import serving_app


async def _guarded(queue: Deadlines, work: asyncio.Future[None] | float) -> str:
    """Wait on ``work`` (a future, or seconds to sleep) under a deadline of ``queue``: how it ended."""
    task = asyncio.current_task()
    assert task is not None
    entry = queue.arm(task)
    try:
        if isinstance(work, float):
            await asyncio.sleep(work)
        else:
            await work
    except asyncio.CancelledError:
        if expired(entry):
            return "expired"
        raise
    finally:
        queue.disarm(entry)
    return "done"


async def test_each_deadline_fires_at_its_own_time_and_no_other() -> None:
    loop = asyncio.get_running_loop()
    queue = Deadlines(loop, 0.2)
    started = loop.time()
    ended: dict[str, float] = {}

    async def one(name: str, delay: float, work: float) -> str:
        await asyncio.sleep(delay)
        outcome = await _guarded(queue, work)
        ended[name] = loop.time() - started
        return outcome

    # Armed at 0, 0.05, 0.1 and 0.15 s; the second and fourth finish in time, the others hang.
    outcomes = await asyncio.gather(one("a", 0.0, 5.0), one("b", 0.05, 0.02), one("c", 0.1, 5.0), one("d", 0.15, 0.1))
    assert outcomes == ["expired", "done", "expired", "done"]
    # Each 0.2 s after it was armed, never earlier (the upper bounds leave room for a loaded machine).
    assert 0.19 <= ended["a"] < 1.0 and 0.29 <= ended["c"] < 1.1
    assert ended["b"] < ended["a"] and ended["d"] < ended["c"] + 0.1
    assert len(queue) == 0


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    queue = Deadlines(asyncio.get_running_loop(), 5.0)
    task = asyncio.ensure_future(_guarded(queue, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(queue) == 0


async def test_a_deadline_inside_an_outer_timeout_leaves_the_outer_one_its_own() -> None:
    """The outer ``asyncio.timeout`` fires first: the inner deadline did not cancel, so the outer one's
    ``TimeoutError`` comes out; then the other way round, the inner deadline's own."""
    queue = Deadlines(asyncio.get_running_loop(), 0.3)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await _guarded(queue, 5.0)
    async with asyncio.timeout(2.0):
        assert await _guarded(queue, 5.0) == "expired"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_deadline_firing_in_the_answers_own_turn_wins_and_leaves_no_cancel_behind() -> None:
    """The awaited work completes and the deadline fires before the task resumes: the task gets the
    cancellation (as under ``asyncio.timeout``), the guard reports it as the deadline's, and the task is
    left with no cancellation request pending."""
    loop = asyncio.get_running_loop()
    queue = Deadlines(loop, 5.0)
    work: asyncio.Future[None] = loop.create_future()

    async def guarded() -> tuple[str, int]:
        outcome = await _guarded(queue, work)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # a later await: no cancellation lands here
        return outcome, task.cancelling()

    task = asyncio.ensure_future(guarded())
    await asyncio.sleep(0)
    (entry,) = queue._entries
    entry.at = loop.time() - 1.0  # due now
    work.set_result(None)  # the task is woken with its answer ...
    queue._fire()  # ... and the deadline fires in this same turn, before the task resumes
    assert await task == ("expired", 0)


async def test_a_cancellation_swallowed_by_the_guarded_code_is_taken_back_on_disarm() -> None:
    """Code under the deadline that absorbs the ``CancelledError`` (a library turning it into a result)
    must not leave the task with a cancellation request that would hit a later, unrelated await."""
    loop = asyncio.get_running_loop()
    queue = Deadlines(loop, 0.02)

    async def absorbing() -> tuple[str, int]:
        task = asyncio.current_task()
        assert task is not None
        entry = queue.arm(task)
        try:
            with contextlib.suppress(asyncio.CancelledError):  # swallowed: the guard never sees it
                await asyncio.sleep(5.0)
        finally:
            queue.disarm(entry)
        await asyncio.sleep(0.01)  # would raise if a cancellation were still pending
        return "done", task.cancelling()

    assert await absorbing() == ("done", 0)


async def test_the_queue_stays_bounded_behind_a_deadline_that_never_ends() -> None:
    """One wait hangs at the head for the whole run while 3,000 others come and go behind it: the dead
    entries behind the head are swept out, so the queue never holds more than a bounded number."""
    loop = asyncio.get_running_loop()
    queue = Deadlines(loop, 30.0)
    hanging = asyncio.ensure_future(_guarded(queue, 30.0))
    await asyncio.sleep(0)
    rng = random.Random(7)
    live: list[asyncio.Task[str]] = []
    longest = 0
    for _ in range(3_000):
        live.append(asyncio.ensure_future(_guarded(queue, 0.0)))
        if rng.random() < 0.5:
            await asyncio.sleep(0)
        live = [t for t in live if not t.done()]
        longest = max(longest, len(queue))
    assert all(o == "done" for o in await asyncio.gather(*live))
    assert longest <= 2 * (len(live) + 1) + _COMPACT_AT + 2
    assert len(queue) <= _COMPACT_AT + 2
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging


# --- through the transport --------------------------------------------------------------------------------


async def test_silent_and_answering_requests_share_one_transport() -> None:
    """32 requests to a server that never answers and 32 to one that does, at once, on one transport: every
    silent one ends in ``FirstByteTimeout`` about ``first_byte`` after it was sent, every other one is
    answered, and the deadline queue is empty after."""
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/silent", silent)
    app.router.add_post("/answer", answer)
    transport = AiohttpTransport(trust_env=False)
    timeouts = Timeouts(first_byte=0.4)
    loop = asyncio.get_running_loop()
    try:
        async with serving_app(app) as base:

            async def call(path: str) -> tuple[str, float]:
                started = loop.time()
                try:
                    response = await transport.send(HttpRequest("POST", base + path, {}, b"{}"), timeouts)
                except FirstByteTimeout:
                    return "timeout", loop.time() - started
                try:
                    body = await response.read()
                finally:
                    await response.aclose()
                return body.decode(), loop.time() - started

            results = await asyncio.gather(*[call("/silent" if i % 2 else "/answer") for i in range(64)])
            release.set()
    finally:
        await transport.aclose()
    silent_ones = [r for i, r in enumerate(results) if i % 2]
    answered = [r for i, r in enumerate(results) if not i % 2]
    assert all(outcome == "timeout" and 0.38 <= took < 1.5 for outcome, took in silent_ones), silent_ones
    assert all(outcome == "ok" for outcome, _ in answered)
    queues = [q for entry in transport._sessions.values() for q in entry.deadlines.values()]
    assert all(len(q) == 0 for q in queues)


async def test_cancelling_a_request_waiting_for_headers_is_a_cancellation_not_a_timeout() -> None:
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", silent)
    async with serving_app(app) as base:
        p = OpenAIProvider("m", base_url=base + "/v1", api_key="sk-test", timeouts=Timeouts(first_byte=5.0))
        async with p:
            task = asyncio.ensure_future(p.chat(ChatRequest(messages=[Message.user("hi")])))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()


async def test_a_queue_for_one_wait_leaves_no_timer_behind() -> None:
    """An unshared queue (the transport's, past its bound of lengths) cancels its timer when it empties,
    so a caller passing a new length per call does not fill the loop with timers."""
    loop = asyncio.get_running_loop()
    queue = Deadlines(loop, 30.0, shared=False)
    assert await _guarded(queue, 0.0) == "done"
    assert queue._handle is None
    kept = Deadlines(loop, 30.0)
    assert await _guarded(kept, 0.0) == "done"
    assert kept._handle is not None  # a shared queue keeps its timer for the next deadline


async def test_the_transport_keeps_a_bounded_number_of_deadline_queues() -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", answer)
    transport = AiohttpTransport(trust_env=False)
    try:
        async with serving_app(app) as base:
            for i in range(_MAX_DEADLINE_QUEUES + 20):
                response = await transport.send(HttpRequest("POST", base + "/", {}, b""), Timeouts(first_byte=5.0 + i))
                assert await response.read() == b"ok"
                await response.aclose()
        (entry,) = transport._sessions.values()
        assert len(entry.deadlines) == _MAX_DEADLINE_QUEUES
    finally:
        await transport.aclose()
