"""The fault matrix: every fault of ``llmrelay.testing.faults`` through every wrapper combination.

Each cell serves one fault (``Fault.serve``: a ``FakeUpstream``, a ``ClosedPort`` or a ``SilentServer``) as
the primary ``p1`` and a healthy upstream as the backup ``p2``, runs ``chat()`` or ``chat_stream()`` through
one combination, and checks:

- the outcome: the answer and who gave it (``p2``'s text is ``"from b"``), or the typed error's kind;
- the attempt records (provider, model, error kind, ``retry_after``) and the backoffs slept;
- a time bound (backoff sleeps are injected and return at once; breaker time is an injected clock; the
  only real waits are the slow faults' own short timeouts, ``fault.timeouts``, a tenth of a second or two);
- that nothing lingers: every request the servers saw ended (written, cut, or abandoned by the client,
  which the server noticed), no connection is still lent out by either provider's pool, no task is left,
  a rate limiter's slot is free again.

What a combination should do follows from the policy tables (``llmrelay._policy``), which are the spec
here: a kind in ``RETRY_ON`` is retried by ``Retrying``, one in ``FAIL_OVER_ON`` (or retried) moves a
``Fallback`` / ``Router`` / ``Hedged`` on; a stream that already delivered an event (``Fault.mid_stream``)
is never retried nor moved: the caller gets the text, then the error.

Slow faults cost real (short) timeouts, so they run on two dialects; the rest on all five. The last tests
cancel the caller (and leave the ``async with`` early) in every combination, before and after the commit
point, and check that every upstream connection closed; and ``Fallback(first_event_timeout=...)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest

from llmrelay import (
    AllAttemptsFailed,
    ChatRequest,
    ChatStream,
    Fallback,
    FirstEventTimeout,
    Hedged,
    LlmError,
    Message,
    Provider,
    RateLimited,
    Retrying,
    Router,
    TextDelta,
    Timeouts,
)
from llmrelay._policy import FAIL_OVER_ON, RETRY_ON
from llmrelay.testing import FakeUpstream, Fault, Reply, faults, held_connections
from llmrelay.testing.anthropic_kit import KIT as ANTHROPIC
from llmrelay.testing.cohere_kit import KIT as COHERE
from llmrelay.testing.gemini_kit import KIT as GEMINI
from llmrelay.testing.kit import DialectKit
from llmrelay.testing.ollama_kit import KIT as OLLAMA
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wrappers.breaker import DEAD_KINDS, DEAD_STATUSES
from llmrelay.wrappers.hedge import CANCELLED

REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=64)
ALL_KITS: tuple[DialectKit, ...] = (OPENAI, ANTHROPIC, GEMINI, OLLAMA, COHERE)
SLOW_KITS: tuple[DialectKit, ...] = (OPENAI, ANTHROPIC)
THRESHOLD = 0.05
"""Hedged's threshold with a slow fault: below its timeout (``fault.timeouts``), so the backup starts."""
PATIENT = 2.0
"""Hedged's threshold with a fast fault, and in the cancellation tests: the backup starts only when the
primary failed (or, cancelling before the commit point, after a wait the test bounds)."""
SLOW_ATTEMPT = 0.3
"""The longest one attempt against a slow fault takes: ``faults.TRICKLE.total`` (0.2 s) and a margin."""
HEALTHY = faults.PATIENT
"""The healthy backup's timeouts: far from anything a busy machine could trip."""
SLACK = 2.0
"""What a cell may take beyond its timeouts (two local servers, a few requests: about 0.1 s when the machine
is idle). Generous on purpose, so a loaded CI machine never fails a cell, and still far below every default
deadline (connect 10 s, first byte 300 s) that a hang or a missed timeout would run into."""
B_TEXT = "from b"
MODELS = ("model-a", "model-b")


class Sleeps:
    """An injected ``sleep``: records each delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Clock:
    """An injected clock for the breakers: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the combinations ---------------------------------------------------------------------------------------


@dataclass
class Stack:
    """A combination built around ``p1`` (faulty) and ``p2`` (healthy), with what the checks look into."""

    provider: Provider
    sleeps: Sleeps = field(default_factory=Sleeps)
    limiter: RateLimited | None = None
    router: Router | None = None


def _retrying(p: Provider, sleeps: Sleeps) -> Retrying:
    return Retrying(p, max_attempts=2, sleep=sleeps, rng=lambda: 0.0)


def retry(p1: Provider, p2: Provider) -> Stack:
    sleeps = Sleeps()
    return Stack(_retrying(p1, sleeps), sleeps)


def fallback(p1: Provider, p2: Provider) -> Stack:
    sleeps = Sleeps()
    return Stack(Fallback([_retrying(p1, sleeps), p2]), sleeps)


def hedged(p1: Provider, p2: Provider) -> Stack:
    return Stack(Hedged([p1, p2], threshold=PATIENT))


def hedged_quick(p1: Provider, p2: Provider) -> Stack:
    return Stack(Hedged([p1, p2], threshold=THRESHOLD))


def router(p1: Provider, p2: Provider) -> Stack:
    r = Router([p1, p2], min_requests=5, cooldown=30.0, clock=Clock())
    return Stack(r, router=r)


def limited(p1: Provider, p2: Provider) -> Stack:
    sleeps = Sleeps()
    limiter = RateLimited(_retrying(p1, sleeps), requests_per_minute=600, max_concurrency=1, on_limit="fail")
    return Stack(Fallback([limiter, p2]), sleeps, limiter=limiter)


COMBOS: dict[str, Callable[[Provider, Provider], Stack]] = {
    "retry": retry,
    "fallback": fallback,
    "hedged": hedged,
    "router": router,
    "limited": limited,
}
"""``Retrying(p1)``, ``Fallback([Retrying(p1), p2])``, ``Hedged([p1, p2])``, ``Router([p1, p2])`` (breakers),
``Fallback([RateLimited(Retrying(p1)), p2])``."""


# --- what each cell should give -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    answer: str | None
    """``"a"`` (the primary answered: recovered, or committed before its failure), ``"b"`` or ``None``."""
    error: str | None
    """The kind the caller meets (after the text, for a committed stream)."""
    attempts: tuple[tuple[str, str], ...]
    """(model, kind) of each recorded attempt."""
    p1_tries: int
    """Requests that reach the primary (one after another)."""
    sleeps: int
    """Backoffs ``Retrying`` sleeps."""


def expect(combo: str, fault: Fault, kit: DialectKit, *, stream: bool) -> Expect:
    kind = fault.expect(kit, stream=stream)
    if fault.committed(stream=stream):  # text went out: no retry, no fail-over, whatever the kind
        return Expect("a", kind, (), 1, 0)
    retried = kind in RETRY_ON
    moves_on = retried or kind in FAIL_OVER_ON
    recovers = fault.recovers_after is not None and retried
    failed = ("model-a", kind)
    if combo == "hedged":
        if fault.slow:  # the backup started after the threshold, answered first; the primary was cancelled
            return Expect("b", None, (("model-a", CANCELLED),), 1, 0)
        return Expect("b", None, (failed,), 1, 0) if moves_on else Expect(None, kind, (), 1, 0)
    if combo == "router":
        return Expect("b", None, (failed,), 1, 0) if moves_on else Expect(None, kind, (), 1, 0)
    tries = 2 if retried and not recovers else 1
    sleeps = 1 if retried else 0
    if recovers:
        return Expect("a", None, (failed,), 2, sleeps)
    if combo == "retry":
        if tries == 2:
            return Expect(None, "all_attempts_failed", (failed, failed), 2, sleeps)
        return Expect(None, kind, (), 1, 0)
    # fallback, limited: the primary's retries, then the backup
    if moves_on:
        return Expect("b", None, (failed,) * tries, tries, sleeps)
    return Expect(None, kind if tries == 1 else "all_attempts_failed", (failed,) * tries, tries, sleeps)


# --- running a cell ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    text: str = ""
    error: LlmError | None = None
    attempts: tuple[tuple[str, str | None, LlmError], ...] = ()
    elapsed: float = 0.0


def _records(source: object) -> tuple[tuple[str, str | None, LlmError], ...]:
    return tuple((a.provider, a.model, a.error) for a in getattr(source, "attempts", ()))


async def run(provider: Provider, *, stream: bool) -> Outcome:
    out = Outcome()
    began = time.monotonic()
    try:
        if stream:
            chat_stream = provider.chat_stream(REQ)
            async with chat_stream as s:
                try:
                    async for event in s:
                        if isinstance(event, TextDelta):
                            out.text += event.text
                except LlmError as error:
                    out.error = error
                out.attempts = _records(s)
        else:
            reply = await provider.chat(REQ)
            out.text, out.attempts = reply.text, _records(reply)
    except LlmError as error:
        out.error = error
        out.attempts = _records(error)
    out.elapsed = time.monotonic() - began
    return out


def leftover(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    """Tasks started since ``before`` that are still there, but for the fake upstreams' own handlers."""
    now = asyncio.all_tasks() - before - {asyncio.current_task()}
    return {t for t in now if not t.get_coro().__qualname__.startswith("RequestHandler.")}  # type: ignore[union-attr]


async def no_task_left(before: set[asyncio.Task[object]], *, server_side: bool = False) -> set[asyncio.Task[object]]:
    """The tasks still left after a short settle (bounded: 1 s); with ``server_side``, the servers' too."""
    for _ in range(100):
        left = asyncio.all_tasks() - before - {asyncio.current_task()} if server_side else leftover(before)
        if not left:
            return left
        await asyncio.sleep(0.01)
    return left


def check_servers_settled(up: FakeUpstream) -> None:
    """Every request the server saw ended: written to the end, cut on purpose, or abandoned by the client."""
    assert up.in_flight == 0
    assert up.completed + up.cut + up.disconnects == len(up.requests), (
        up.completed,
        up.cut,
        up.disconnects,
        len(up.requests),
    )


def cells(kits: tuple[DialectKit, ...], slow: bool) -> list[object]:
    return [
        pytest.param(fault, kit, combo, stream, id=f"{fault.name}-{kit.name}-{combo}-{'stream' if stream else 'chat'}")
        for fault in faults.CATALOGUE
        if fault.slow == slow
        for kit in kits
        for combo in COMBOS
        for stream in (False, True)
        if stream or not fault.stream_only
    ]


@pytest.mark.parametrize(("fault", "kit", "combo", "stream"), cells(ALL_KITS, False) + cells(SLOW_KITS, True))
async def test_fault_through_wrappers(fault: Fault, kit: DialectKit, combo: str, stream: bool) -> None:
    want = expect(combo, fault, kit, stream=stream)
    before = asyncio.all_tasks()
    async with fault.serve(kit, stream=stream) as site, FakeUpstream() as backup:
        backup.add(*[kit.text(B_TEXT, stream=stream)] * 3)
        p1, p2 = kit.provider(site.url(), MODELS[0]), kit.provider(backup.url(), MODELS[1])
        p1.timeouts, p2.timeouts = fault.timeouts, HEALTHY
        stack = (hedged_quick if combo == "hedged" and fault.slow else COMBOS[combo])(p1, p2)
        async with stack.provider:
            out = await run(stack.provider, stream=stream)

            # the outcome
            if want.answer == "b":
                assert out.error is None and out.text == B_TEXT, out
            elif want.answer == "a":
                assert out.text and B_TEXT not in out.text, out  # the primary's text (all, or up to the failure)
            if want.error is None:
                assert out.error is None, out.error
            else:
                assert out.error is not None and out.error.kind == want.error, out.error
                assert want.answer is not None or out.text == "", out
            # the attempt records
            assert [(m, e.kind) for _, m, e in out.attempts] == list(want.attempts), out.attempts
            assert {name for name, _, _ in out.attempts} <= {p1.name}
            for _, _, error in out.attempts:
                if fault.retry_after is not None and error.kind == fault.expect(kit, stream=stream):
                    # an HTTP date has whole seconds and was written when the reply was built: up to one
                    # second less, and the time since, may be read
                    assert error.retry_after is not None, error
                    assert fault.retry_after - 1.5 < error.retry_after <= fault.retry_after + 1e-9, error.retry_after
            if out.error is not None and not isinstance(out.error, AllAttemptsFailed):
                assert out.error.provider == p1.name
            assert len(stack.sleeps.delays) == want.sleeps, stack.sleeps.delays
            if want.sleeps:  # rng 0: the backoff is the server's retry_after, when it gave one
                assert stack.sleeps.delays[0] == pytest.approx(out.attempts[0][2].retry_after or 0.0)
            # who was asked
            assert len(backup.requests) == (1 if want.answer == "b" else 0), backup.requests
            if isinstance(site, FakeUpstream):
                assert len(site.requests) == want.p1_tries, site.requests
            # the time bound: real waits are the fault's timeouts only
            slow = SLOW_ATTEMPT * (1 if combo == "hedged" else want.p1_tries) if fault.slow else 0.0
            assert out.elapsed < SLACK + slow, out.elapsed

            # nothing lingers: connections back in the pools, the servers saw every request end
            assert held_connections(p1) == 0 and held_connections(p2) == 0
            assert await site.wait_idle(2.0)
            for up in (site, backup):
                if isinstance(up, FakeUpstream):
                    check_servers_settled(up)
            if isinstance(site, faults.SilentServer):
                assert site.closed_by_client == site.accepted == want.p1_tries
            if fault.slow and isinstance(site, FakeUpstream):
                assert site.disconnects == want.p1_tries  # each slow attempt was abandoned, and the server saw it
            if stack.limiter is not None:
                slots = [b for b in stack.limiter.buckets(REQ) if b.kind == "concurrency"]
                assert [stack.limiter.backend.level(b) for b in slots] == [1]  # type: ignore[attr-defined]
            if stack.router is not None:
                primary = stack.router.health()[0]
                error = next((e for _, _, e in out.attempts), None)
                dead = error is not None and (
                    error.kind in DEAD_KINDS or error.status in DEAD_STATUSES or bool(error.retry_after)
                )
                assert primary.state == ("open" if dead else "closed") and primary.in_flight == 0, primary
            assert await no_task_left(before) == set()
    assert await no_task_left(before, server_side=True) == set()


def test_the_matrix_covers_every_fault() -> None:
    names = [f.name for f in faults.CATALOGUE]
    assert len(names) == len(set(names)) and faults.by_name("quota").kind == "quota_exceeded"
    assert {f.kind for f in faults.CATALOGUE} >= {
        "network",
        "first_byte_timeout",
        "idle_timeout",
        "protocol",
        "server",
        "auth",
        "rate_limit",
        "overloaded",
        "quota_exceeded",
    }
    with pytest.raises(KeyError, match="no fault named"):
        faults.by_name("meteor")


# --- cancellation and leaving early ------------------------------------------------------------------------

LONG = Timeouts(connect=2.0, first_byte=10.0, idle=10.0, total=None)
"""Nothing times out on its own in the cancellation tests: only the caller ends the call."""


def slow_stream(kit: DialectKit) -> Reply:
    """The first event at once, then the rest slowly (seconds): a stream still going when it is left."""
    reply = kit.text("slow " * 20, stream=True)
    first = faults.first_text_chunk(kit, reply)
    return Reply(
        chunks=reply.chunks,
        content_type=reply.content_type,
        stall=5.0,
        stall_after=first + 1,
    )


async def consume(stream: ChatStream, first: asyncio.Event, *, leave_early: bool) -> str:
    text = ""
    async with stream as s:
        async for event in s:
            if isinstance(event, TextDelta):
                text += event.text
                first.set()
                if leave_early:
                    break
    return text


WAYS = ("cancel_before_commit", "cancel_mid_stream", "leave_early")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("combo", list(COMBOS))
@pytest.mark.parametrize("kit", SLOW_KITS, ids=lambda k: k.name)
async def test_cancelling_or_leaving_closes_every_upstream_connection(kit: DialectKit, combo: str, way: str) -> None:
    before = asyncio.all_tasks()
    async with AsyncExitStack() as servers:
        up1 = await servers.enter_async_context(FakeUpstream())
        up2 = await servers.enter_async_context(FakeUpstream())
        if way == "cancel_before_commit":  # nobody answers in time: both stall before their first event
            up1.add(faults.stall_before_headers(kit, 5.0))
            up2.add(faults.headers_then_silence(kit, 5.0))
        else:
            up1.add(slow_stream(kit))
            up2.add(slow_stream(kit))
        p1, p2 = kit.provider(up1.url(), MODELS[0]), kit.provider(up2.url(), MODELS[1])
        for p in (p1, p2):
            p.timeouts = LONG
        both_racing = combo == "hedged" and way == "cancel_before_commit"
        stack = (hedged_quick if both_racing else COMBOS[combo])(p1, p2)
        async with stack.provider:
            first = asyncio.Event()
            task = asyncio.create_task(
                consume(stack.provider.chat_stream(REQ), first, leave_early=way == "leave_early")
            )
            if way == "cancel_before_commit":
                # until every attempt that will start is in flight (Hedged starts the backup after its threshold)
                wanted = (up1, up2) if both_racing else (up1,)
                for _ in range(100):  # bounded: 2 s
                    if all(u.in_flight for u in wanted):
                        break
                    await asyncio.sleep(0.02)
                assert all(u.in_flight for u in wanted)
                task.cancel()
            elif way == "cancel_mid_stream":
                async with asyncio.timeout(2.0):
                    await first.wait()
                task.cancel()
            if way == "leave_early":
                async with asyncio.timeout(2.0):
                    assert (await task).startswith("slow")
            else:
                with pytest.raises(asyncio.CancelledError):
                    await task
            # every upstream that was asked saw its client leave, at once
            asked = [u for u in (up1, up2) if u.requests]
            assert asked == ([up1, up2] if both_racing else [up1])
            for up in asked:
                assert await up.wait_disconnect(within=1.0) and await up.wait_idle(1.0)
                assert up.disconnects == len(up.requests) == 1 and up.completed == 0
            assert held_connections(p1) == 0 and held_connections(p2) == 0
            if stack.limiter is not None:
                slots = [b for b in stack.limiter.buckets(REQ) if b.kind == "concurrency"]
                assert [stack.limiter.backend.level(b) for b in slots] == [1]  # type: ignore[attr-defined]
            if stack.router is not None:
                assert [h.in_flight for h in stack.router.health()] == [0, 0]
            assert await no_task_left(before) == set()
    assert await no_task_left(before, server_side=True) == set()


# --- Fallback's time-to-first-event timeout -----------------------------------------------------------------


@pytest.mark.parametrize("kit", SLOW_KITS, ids=lambda k: k.name)
@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("stall_before_headers", lambda kit: faults.stall_before_headers(kit, 5.0)),
        ("headers_then_silence", lambda kit: faults.headers_then_silence(kit, 5.0)),
        ("keepalive_only", lambda kit: faults.headers_then_silence(kit, 5.0, keepalive=0.02)),
        ("trickle", lambda kit: faults.trickle(kit, 0.01)),
    ],
)
async def test_first_event_timeout_moves_a_fallback_on(
    kit: DialectKit, name: str, fault: Callable[[DialectKit], Reply]
) -> None:
    """With the providers' own timeouts far away, ``first_event_timeout`` alone abandons the primary."""
    before = asyncio.all_tasks()
    async with FakeUpstream() as up1, FakeUpstream() as up2:
        up1.add(fault(kit))
        up2.add(kit.text(B_TEXT, stream=True))
        p1, p2 = kit.provider(up1.url(), MODELS[0]), kit.provider(up2.url(), MODELS[1])
        for p in (p1, p2):
            p.timeouts = LONG
        began = time.monotonic()
        async with Fallback([p1, p2], first_event_timeout=0.15) as fb:
            out = await run(fb, stream=True)
            elapsed = time.monotonic() - began
            assert out.error is None and out.text == B_TEXT
            [(provider, model, error)] = out.attempts
            assert (provider, model, error.kind) == (p1.name, "model-a", "first_event_timeout")
            assert isinstance(error, FirstEventTimeout) and error.provider == p1.name and "0.15s" in str(error)
            assert 0.15 <= elapsed < 0.15 + SLACK
            assert await up1.wait_disconnect(within=1.0) and await up1.wait_idle(1.0)
            assert held_connections(p1) == 0 and held_connections(p2) == 0
            # chat() is not bounded by it: a whole reply takes as long as its answer
            up1.add(kit.text("whole", stream=False))
            assert (await fb.chat(REQ)).text == "whole"
        assert await no_task_left(before) == set()


async def test_first_event_timeout_is_per_candidate_and_all_failing_is_all_attempts_failed() -> None:
    async with FakeUpstream() as up1, FakeUpstream() as up2:
        up1.add(faults.headers_then_silence(OPENAI, 5.0))
        up2.add(faults.stall_before_headers(OPENAI, 5.0))
        p1, p2 = OPENAI.provider(up1.url(), MODELS[0]), OPENAI.provider(up2.url(), MODELS[1])
        for p in (p1, p2):
            p.timeouts = LONG
        began = time.monotonic()
        async with Fallback([p1, p2], first_event_timeout=0.1) as fb:
            out = await run(fb, stream=True)
        elapsed = time.monotonic() - began
    assert isinstance(out.error, AllAttemptsFailed)
    assert [(m, e.kind) for _, m, e in out.attempts] == [
        ("model-a", "first_event_timeout"),
        ("model-b", "first_event_timeout"),
    ]
    assert 0.2 <= elapsed < 0.2 + SLACK
    assert up1.disconnects == up2.disconnects == 1


async def test_a_fast_first_event_is_not_cut_by_first_event_timeout() -> None:
    """The timeout bounds only the time to the commit point: a slow stream after it runs to its end."""
    async with FakeUpstream() as up:
        reply = OPENAI.text("fine " * 5, stream=True)
        first = faults.first_text_chunk(OPENAI, reply)
        up.add(Reply(chunks=reply.chunks, content_type=reply.content_type, stall=0.3, stall_after=first + 1))
        p = OPENAI.provider(up.url(), MODELS[0])
        async with Fallback([p], first_event_timeout=0.1) as fb:
            out = await run(fb, stream=True)
    assert out.error is None and out.text == "fine " * 5 and out.attempts == ()


def test_first_event_timeout_must_be_positive() -> None:
    p = OPENAI.provider("http://127.0.0.1:9", MODELS[0])
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="first_event_timeout"):
            Fallback([p], first_event_timeout=bad)


# --- the kit's own checks ---------------------------------------------------------------------------------


async def test_held_connections_sees_an_open_stream_and_its_release(upstream: FakeUpstream) -> None:
    upstream.add(slow_stream(OPENAI), OPENAI.text("whole", stream=False))
    async with OPENAI.provider(upstream.url()) as p:
        assert held_connections(p) == 0  # nothing sent yet in this loop
        async with p.chat_stream(REQ) as stream:
            assert isinstance(await anext(stream), TextDelta)
            assert held_connections(p) == 1
        assert held_connections(p) == 0 and await upstream.wait_disconnect(within=1.0)
        assert (await p.chat(REQ)).text == "whole" and held_connections(p) == 0
    with pytest.raises(TypeError, match="HTTP provider"):
        held_connections(Retrying(p))


async def test_the_silent_server_and_the_closed_port_are_what_they_say() -> None:
    async with faults.SilentServer() as silent, faults.ClosedPort() as closed:
        p = OPENAI.provider(silent.url())
        p.timeouts = faults.FIRST_BYTE
        async with p:
            with pytest.raises(LlmError) as info:
                await p.chat(REQ)
            assert info.value.kind == "first_byte_timeout" and silent.received > 0
            assert await silent.wait_idle(1.0) and (silent.accepted, silent.closed_by_client) == (1, 1)
        refused = OPENAI.provider(closed.url())
        async with refused:
            with pytest.raises(LlmError) as info:
                await refused.chat(REQ)
            assert info.value.kind == "network"


async def test_fails_then_recovers_counts_its_requests(upstream: FakeUpstream) -> None:
    upstream.always(faults.fails_then_recovers(ANTHROPIC, 2, stream=False))
    async with Retrying(ANTHROPIC.provider(upstream.url()), max_attempts=3, sleep=Sleeps()) as p:
        reply = await p.chat(REQ)
    assert reply.text == "recovered" and [a.error.kind for a in reply.attempts] == ["overloaded", "overloaded"]
    assert len(upstream.requests) == 3
