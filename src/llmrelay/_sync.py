"""One generic synchronous facade over the async core.

llmrelay is async throughout; code that is not (a plain script, a worker thread, a notebook cell whose
event loop is already running) calls it through two functions instead of a mirrored sync tree:

- ``run_sync(coroutine)`` runs the coroutine to completion and returns its result;
- ``iter_sync(async_iterable)`` turns an async iterable into a plain iterator.

Both run the work on one background event loop, in a daemon thread started on first use and shared by
every caller. That is what makes them work in all three situations: ``asyncio.run`` cannot be called
from a thread whose loop is running (a notebook), and a loop per call would throw away connection pools.
The calling thread only blocks on a ``concurrent.futures.Future``. Interrupting the wait (Ctrl-C, a
``timeout``) cancels the task on the background loop, which closes any open stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

__all__ = ["iter_sync", "run_sync"]

T = TypeVar("T")


class _LoopThread:
    """The background event loop, started lazily, restarted if its thread ever died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self.thread is None or not self.thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name="llmrelay-sync", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self.thread = loop, thread
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()


_runner = _LoopThread()


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run_sync(awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
    """Run ``awaitable`` on the shared background loop and wait for its result (or exception).

    Works from any thread, including one whose own event loop is running. ``timeout`` (seconds) bounds the
    wait: on expiry the task is cancelled and ``TimeoutError`` is raised.
    """
    loop = _runner.loop()
    if threading.current_thread() is _runner.thread:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("run_sync was called from llmrelay's own background loop; await the coroutine instead")
    future = asyncio.run_coroutine_threadsafe(_await(awaitable), loop)
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


_DONE: Any = object()


async def _next(iterator: AsyncIterator[T]) -> T:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _DONE  # type: ignore[no-any-return]


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def iter_sync(source: AsyncIterable[T], *, timeout: float | None = None) -> Iterator[T]:
    """Iterate an async iterable synchronously; each step runs on the background loop.

    Leaving the ``for`` loop early (``break``, an exception, garbage collection of the iterator) closes the
    async iterator there, so streams are released. ``timeout`` bounds each step.
    """
    iterator = source.__aiter__()
    try:
        while True:
            item = run_sync(_next(iterator), timeout=timeout)
            if item is _DONE:
                return
            yield item
    finally:
        run_sync(_close(iterator), timeout=timeout)
