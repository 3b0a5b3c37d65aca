"""One SQLite connection on a thread of its own, for the stores built on a SQLite file (the usage ledger,
the gateway's key store): statements never block the event loop, and the connection is only ever used on
the thread that opened it.

``run(fn, *args)`` calls ``fn(conn, *args)`` there, opening the connection with ``opener`` on first use;
it is shielded, so a cancelled caller stops waiting but the statement still runs to its end. ``close()``
closes the connection on its thread and lets the thread go.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SQLiteThread", "check_directory"]

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
