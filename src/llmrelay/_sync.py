"""One generic synchronous facade over the async core.

llmrelay is async throughout; code that is not (a plain script, a worker thread, a notebook cell whose
event loop is already running) calls it through two functions instead of a mirrored sync tree:

- ``run_sync(coroutine)`` runs the coroutine to completion and returns its result;
- ``iter_sync(async_iterable)`` turns an async iterable into a plain iterator.

Both run the work on one background event loop, in a daemon thread started on first use and shared by
every caller. That is what makes them work in all three situations: ``asyncio.run`` cannot be called
from a thread whose loop is running (a notebook), and a loop per call would throw away connection pools.
The calling thread only blocks on a ``concurrent.futures.Future``. Interrupting the wait (Ctrl-C, a
``timeout``) cancels the task on the background loop, waits (at most ``_SETTLE_TIMEOUT`` seconds) for it
to wind down, which closes any open stream, and then raises the original ``KeyboardInterrupt`` or
``TimeoutError``. ``iter_sync`` closes the async iterator only after the cancelled step has finished:
closing an async generator while one of its steps still runs fails with ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterator
from typing import Any, Generic, TypeVar

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


_SETTLE_TIMEOUT = 5.0
"""How long an interrupted call waits for its cancelled task to finish (closing a stream takes
milliseconds); a task that ignores cancellation is left running after that."""


class _Call(Generic[T]):
    """One awaitable running as a task on the background loop, which an interrupted caller cancels and
    then waits for."""

    __slots__ = ("_future", "_loop", "_task", "settled")

    def __init__(self, awaitable: Awaitable[T]) -> None:
        loop = _runner.loop()
        if threading.current_thread() is _runner.thread:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("run_sync was called from llmrelay's own background loop; await the coroutine instead")
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self.settled = True
        """``False`` when the call was interrupted and its task was still running ``_SETTLE_TIMEOUT`` later."""
        self._future = asyncio.run_coroutine_threadsafe(self._run(awaitable), loop)

    async def _run(self, awaitable: Awaitable[T]) -> T:
        self._task = asyncio.current_task()
        return await awaitable

    def result(self, timeout: float | None) -> T:
        """Wait for the result. When the wait is interrupted (Ctrl-C) or times out, cancel the task and
        wait (bounded) until it has finished before the original exception propagates."""
        try:
            return self._future.result(timeout)
        except BaseException:
            if self._future.cancel():  # False: the task had already finished (its own exception)
                self.settled = self._wait_cancelled()
            raise

    def _wait_cancelled(self) -> bool:
        try:
            return asyncio.run_coroutine_threadsafe(self._settle(), self._loop).result(_SETTLE_TIMEOUT + 1.0)
        except Exception:
            return False

    async def _settle(self) -> bool:
        # The cancellation was handed to the loop before this coroutine, and the loop runs callbacks first
        # in, first out: by now the task has been cancelled, or it never started and touched nothing.
        task = self._task
        if task is None or task.done():
            return True
        done, _ = await asyncio.wait({task}, timeout=_SETTLE_TIMEOUT)
        return bool(done)


def run_sync(awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
    """Run ``awaitable`` on the shared background loop and wait for its result (or exception).

    Works from any thread, including one whose own event loop is running. ``timeout`` (seconds) bounds the
    wait: on expiry the task is cancelled and ``TimeoutError`` is raised once it has finished. Ctrl-C
    (``KeyboardInterrupt``) during the wait does the same.
    """
    return _Call(awaitable).result(timeout)


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
    async iterator there, so streams are released. ``timeout`` bounds each step. When a step is
    interrupted (Ctrl-C) or times out, it is cancelled, the iterator is closed once the step has finished,
    and the original ``KeyboardInterrupt`` or ``TimeoutError`` propagates.
    """
    iterator = source.__aiter__()
    interrupted = False
    try:
        while True:
            step = _Call(_next(iterator))
            try:
                item = step.result(timeout)
            except BaseException as exc:
                interrupted = True
                if step.settled:
                    _close_after(iterator, exc)
                raise
            if item is _DONE:
                return
            yield item
    finally:
        if not interrupted:
            run_sync(_close(iterator), timeout=timeout)


def _close_after(iterator: AsyncIterator[Any], exc: BaseException) -> None:
    """Close the iterator while ``exc`` propagates; a failure to close is noted on ``exc``, never raised
    in its place."""
    try:
        run_sync(_close(iterator), timeout=_SETTLE_TIMEOUT)
    except Exception as close_error:
        exc.add_note(f"closing the stream afterwards also failed: {type(close_error).__name__}: {close_error}")
