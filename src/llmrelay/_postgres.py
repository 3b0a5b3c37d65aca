"""What the PostgreSQL stores share (the usage ledger, the gateway key store): asyncpg imported on demand,
URLs and connection errors without their password, a versioned schema created under an advisory lock, and
a connection pool opened on first use in the running event loop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["LazyPool", "asyncpg_module", "connect_error", "ensure_schema", "safe_url"]


def safe_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and reprs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def connect_error(what: str, url: str, exc: BaseException) -> str:
    """The message of a failed connection to ``url``, with its password scrubbed."""
    from ._errors import redact

    password = urlsplit(url).password
    detail = redact(f"{type(exc).__name__}: {exc}", [unquote(password)] if password else [])
    return f"cannot connect to {what} {safe_url(url)!r} ({detail}): check that the server runs and the URL is right"


def asyncpg_module() -> Any:
    from .config._errors import ConfigError

    try:
        return importlib.import_module("asyncpg")
    except ImportError:
        raise ConfigError(
            "a PostgreSQL store needs asyncpg: pip install 'llmrelay[gateway]' (or pip install asyncpg)"
        ) from None


async def ensure_schema(
    conn: Any,
    *,
    lock: tuple[int, int],
    table: str,
    statements: Sequence[str],
    version: int,
    what: str,
    advice: str = "",
) -> None:
    """Create ``statements`` and record ``version`` in ``table`` when the database has no schema yet, in one
    transaction under the advisory ``lock`` (so replicas starting together create it once); refuse a
    schema newer than ``version`` (``what``'s, with ``advice`` after "upgrade llmrelay")."""
    from .config._errors import ConfigError

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *lock)
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
        found = await conn.fetchval(f"SELECT MAX(version) FROM {table}")
        if found is None:
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {table} (version) VALUES ($1)", version)
        elif found > version:
            raise ConfigError(
                f"{what}'s schema is version {found}, newer than this llmrelay's ({version}): upgrade llmrelay{advice}"
            )


class LazyPool:
    """An asyncpg pool of up to ``size`` connections to ``url``, opened (and ``prepare`` run on one of its
    connections: the schema) by the first ``get`` in the running event loop; ``what`` names the store in
    a connection error."""

    def __init__(self, url: str, size: int, what: str, prepare: Callable[[Any], Awaitable[None]]) -> None:
        self.url = url
        self.size = size
        self._what = what
        self._prepare = prepare
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None

    async def get(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open()
        return self._pool

    async def _open(self) -> Any:
        from .config._errors import ConfigError

        asyncpg = asyncpg_module()
        try:
            pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ConfigError(connect_error(self._what, self.url, exc)) from None
        try:
            async with pool.acquire() as conn:
                await self._prepare(conn)
        except BaseException:
            await pool.close()
            raise
        return pool

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
