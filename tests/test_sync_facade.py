"""The sync facade (``run_sync`` / ``iter_sync`` and the ``*_sync`` convenience functions) from a plain
function, from several threads at once, and from inside a running event loop (as in a notebook).

The fake upstream runs on its own loop in its own thread here, so that a test blocking its own loop (the
notebook case) cannot starve the server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import llmrelay
from llmrelay import ChatResponse, Done, TextDelta
from llmrelay._sync import iter_sync, run_sync
from llmrelay.api import chat, chat_events_sync, chat_stream_sync, chat_sync
from llmrelay.config import Config, parse_config
from llmrelay.testing import FakeUpstream, Reply, SeenRequest
from llmrelay.testing.openai_kit import KIT


class ThreadedUpstream:
    """A FakeUpstream serving from a private event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.up = FakeUpstream()

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.up.__aenter__(), self.loop).result(10)
        return self.up

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.up.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def answer(seen: SeenRequest) -> Reply:
    prompt = seen.json["messages"][-1]["content"]
    return KIT.text(f"echo: {prompt}", stream=bool(seen.json.get("stream")))


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with ThreadedUpstream() as up:
        up.route("/v1/chat/completions", answer)
        yield up


@pytest.fixture
def cfg(upstream: FakeUpstream) -> Config:
    import tomllib

    text = f'[providers.fake]\ntype = "openai"\nbase_url = "{upstream.url("/v1")}"\ndefault_model = "m"'
    return parse_config(tomllib.loads(text))


def check_reply(reply: ChatResponse, prompt: str) -> None:
    assert reply.text == f"echo: {prompt}"
    assert reply.usage is not None and reply.usage.total_tokens == 15


# --- plain script -------------------------------------------------------------------------------------------


def test_from_a_plain_function(cfg: Config) -> None:
    check_reply(chat_sync("fake/m", "plain", config=cfg), "plain")
    pieces = list(chat_stream_sync("fake", "streamed", config=cfg))
    assert len(pieces) == 2 and "".join(pieces) == "echo: streamed"
    events = list(chat_events_sync("fake/m", "events", config=cfg))
    assert isinstance(events[-1], Done) and any(isinstance(e, TextDelta) for e in events)


# --- threads -----------------------------------------------------------------------------------------------


def test_from_several_threads_at_once(cfg: Config) -> None:
    def call(i: int) -> str:
        if i % 2:
            return "".join(chat_stream_sync("fake/m", f"thread {i}", config=cfg))
        return chat_sync("fake/m", f"thread {i}", config=cfg).text

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(call, range(12)))
    assert results == [f"echo: thread {i}" for i in range(12)]


# --- inside a running event loop (a notebook cell) ----------------------------------------------------------


async def test_from_inside_a_running_event_loop(cfg: Config) -> None:
    asyncio.get_running_loop()  # a loop is running, as in Jupyter
    check_reply(chat_sync("fake/m", "notebook", config=cfg), "notebook")
    assert "".join(chat_stream_sync("fake/m", "notebook stream", config=cfg)) == "echo: notebook stream"
    # and the async API still works on this loop afterwards
    reply = await chat("fake/m", "async", config=cfg)
    check_reply(reply, "async")


# --- the generic facade ------------------------------------------------------------------------------------


def test_run_sync_returns_results_and_raises_typed_errors() -> None:
    async def value() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise llmrelay.RateLimitError("slow down", retry_after=2.0)

    assert run_sync(value()) == 42
    with pytest.raises(llmrelay.RateLimitError) as info:
        run_sync(fail())
    assert info.value.retry_after == 2.0


def test_a_timeout_cancels_the_task() -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        run_sync(slow(), timeout=0.1)
    assert cancelled.wait(5)


def test_leaving_iter_sync_early_closes_the_async_iterator() -> None:
    closed = threading.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(1000):
                yield i
        finally:
            closed.set()

    taken = []
    for n in iter_sync(numbers()):
        taken.append(n)
        if n == 2:
            break
    assert taken == [0, 1, 2]
    assert closed.wait(5)
    assert list(iter_sync(numbers())) == list(range(1000))


def test_run_sync_from_the_background_loop_itself_is_refused() -> None:
    async def nested() -> Any:
        return run_sync(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="await the coroutine instead"):
        run_sync(nested())


# --- interrupting a step: Ctrl-C and timeouts -------------------------------------------------------------

STALLING_CHUNK = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}


class StallingUpstream(ThreadedUpstream):
    """A threaded fake upstream whose stream sends one delta, stalls for ``STALL`` seconds, then goes on
    (so the server notices a client that left when it writes again)."""

    STALL = 1.0

    def __enter__(self) -> FakeUpstream:
        up = super().__enter__()
        up.route(
            "/v1/chat/completions",
            Reply.sse([STALLING_CHUNK] * 3 + ["[DONE]"], stall=self.STALL, stall_after=1),
        )
        return up

    def disconnected(self, within: float = 5.0) -> bool:
        return asyncio.run_coroutine_threadsafe(self.up.wait_disconnect(within), self.loop).result(within + 5)

    def config(self) -> Config:
        import tomllib

        text = f'[providers.fake]\ntype = "openai"\nbase_url = "{self.up.url("/v1")}"\ndefault_model = "m"'
        return parse_config(tomllib.loads(text))


def test_a_step_timeout_in_a_real_stream_is_a_timeout_error_and_closes_the_connection() -> None:
    # The api-level stream closes its provider (an await) while being cancelled: closing the generator at
    # the same time used to fail with "aclose(): asynchronous generator is already running".
    from llmrelay.api import chat_stream as async_chat_stream

    stalling = StallingUpstream()
    with stalling:
        cfg = stalling.config()
        pieces = []
        with pytest.raises(TimeoutError):
            for piece in iter_sync(async_chat_stream("fake/m", "hi", config=cfg), timeout=0.3):
                pieces.append(piece)
        assert pieces == ["x"]
        assert stalling.disconnected()
        # the background loop is fine afterwards
        assert run_sync(asyncio.sleep(0, result=7)) == 7


def test_ctrl_c_in_a_real_stream_is_a_keyboard_interrupt_and_closes_the_connection() -> None:
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    stalling = StallingUpstream()
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with stalling:
            cfg = stalling.config()
            pieces = []
            signal.setitimer(signal.ITIMER_REAL, 0.5)  # Ctrl-C while the main thread waits for the stall
            with pytest.raises(KeyboardInterrupt) as info:
                for piece in chat_stream_sync("fake/m", "hi", config=cfg):
                    pieces.append(piece)
            assert not isinstance(info.value.__context__, RuntimeError)
            assert pieces == ["x"]
            assert stalling.disconnected()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_interrupted_step_is_finished_before_the_error_propagates() -> None:
    cleaned = threading.Event()

    async def slow_cleanup() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(30)
            yield 2
        finally:
            await asyncio.sleep(0.2)  # cleanup that waits, as closing a provider does
            cleaned.set()

    iterator = slow_cleanup()
    with pytest.raises(TimeoutError):
        for _ in iter_sync(iterator, timeout=0.2):
            pass
    assert cleaned.is_set()  # the cancelled step's cleanup ran to its end first
    assert iterator.ag_frame is None  # then the generator was closed, without RuntimeError


def test_run_sync_waits_for_the_cancelled_task_before_raising() -> None:
    finished = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.2)
            finished.set()

    with pytest.raises(TimeoutError):
        run_sync(slow(), timeout=0.1)
    assert finished.is_set()
