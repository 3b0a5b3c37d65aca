"""One SQLite connection on a thread of its own, for the stores built on a SQLite file (the usage ledger,
the gateway's key store): statements never block the event loop, and the connection is only ever used on
the thread that opened it.

``run(fn, *args)`` calls ``fn(conn, *args)`` there, opening the connection with ``opener`` on first use;
it is shielded, so a cancelled caller stops waiting but the statement still runs to its end. ``close()``
closes the connection on its thread and lets the thread go. ``use_wal`` is what both stores' openers do
first.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SQLiteThread", "check_directory", "use_wal"]

T = TypeVar("T")


class SQLiteThread:
    """A lazily opened connection (``opener()``) used only on one dedicated thread."""

    def __init__(self, opener: Callable[[], sqlite3.Connection], thread_name: str) -> None:
        self._opener = opener
        self._thread_name = thread_name
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        loop = asyncio.get_running_loop()
        return await asyncio.shield(loop.run_in_executor(self._executor, functools.partial(self._call, fn, *args)))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._conn is None:
            self._conn = self._opener()
        return fn(self._conn, *args)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.shield(asyncio.get_running_loop().run_in_executor(executor, close))
        executor.shutdown(wait=False)


def check_directory(path: Path, what: str) -> None:
    """Create the directory of ``path`` when it is the user data directory (the default place); otherwise a
    missing directory is a ``ConfigError`` naming ``what`` (``the ledger file``, ``the key store``)."""
    from .config._errors import ConfigError
    from .config._gateway import user_data_dir

    if path.parent == user_data_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.exists():
        raise ConfigError(
            f"the directory of {what} does not exist: create {str(path.parent)!r} first",
            file=path,
        )


def use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put ``conn``'s database in WAL mode, waiting up to ``timeout`` seconds for other connections.

    Switching a file's journal mode needs an exclusive lock, and SQLite answers "database is locked" at
    once, without waiting in its busy handler, when another connection is opening the same new file at
    that moment (several processes starting on one new ledger: 8 of 100 tries with 4 processes here, and
    one CI run of ``test_two_processes_share_one_sqlite_ledger_and_budget``). So the switch is retried,
    with a short backoff, until ``timeout``; a file already in WAL mode (the mode is kept in the file) is
    only asked, never switched again.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
