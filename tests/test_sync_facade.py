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
