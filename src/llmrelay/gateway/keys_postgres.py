"""``PostgresKeys``: gateway keys in a PostgreSQL database (asyncpg), shared by every replica.

The same table as ``keys_sqlite`` (``gateway_keys``, the SHA-256 of each secret, never the secret; names
unique among active keys through a partial unique index), created when missing under an advisory lock;
``llmrelay_keys_schema`` holds the version. The pool is opened on first use in the running event loop.
Replicas see a new or revoked key when they next reload their snapshot (``KeyStore.ttl``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from .._postgres import LazyPool, asyncpg_module, connect_error, ensure_schema, safe_url
from .keys import GatewayKey
from .keys_sqlite import KEYS_SCHEMA_VERSION, key_of, models_text

__all__ = ["PostgresKeys"]

_LOCK = (0x4C4D52, 2)  # (class, key) of the advisory lock held while the tables are created
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gateway_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    models TEXT,
    rpm DOUBLE PRECISION,
    tpm DOUBLE PRECISION,
    max_cost NUMERIC,
    max_tokens BIGINT,
    period TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    revoked TIMESTAMPTZ,
    seq BIGSERIAL
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS gateway_keys_active_name ON gateway_keys (name) WHERE revoked IS NULL",
)
_COLUMNS = "id, name, prefix, secret_hash, models, rpm, tpm, max_cost, max_tokens, period, created, revoked"


async def _ensure_schema(conn: Any) -> None:
    await ensure_schema(
        conn,
        lock=_LOCK,
        table="llmrelay_keys_schema",
        statements=_SCHEMA,
        version=KEYS_SCHEMA_VERSION,
        what="the key store",
    )


class PostgresKeys:
    """A ``KeyBackend`` in the PostgreSQL database at ``url``."""

    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool = LazyPool(url, pool_size, "the PostgreSQL key store", _ensure_schema)

    def __repr__(self) -> str:
        return f"PostgresKeys({safe_url(self.url)!r})"

    def load_blocking(self) -> list[tuple[GatewayKey, str]]:
        """``load()`` on a connection of its own, from a thread of its own (for a caller with no event
        loop, or one that must not wait on it: ``open_key_store``)."""
        from ..config._errors import ConfigError

        asyncpg = asyncpg_module()

        async def run() -> list[tuple[GatewayKey, str]]:
            try:
                conn = await asyncpg.connect(self.url)
            except (OSError, asyncpg.PostgresError) as exc:
                raise ConfigError(connect_error("the PostgreSQL key store", self.url, exc)) from None
            try:
                await _ensure_schema(conn)
                found = await conn.fetch(f"SELECT {_COLUMNS} FROM gateway_keys WHERE revoked IS NULL ORDER BY seq")
            finally:
                await conn.close()
            return [key_of(tuple(r)) for r in found]

        with ThreadPoolExecutor(1, thread_name_prefix="llmrelay-keys-load") as pool:
            return pool.submit(asyncio.run, run()).result()

    async def insert(self, key: GatewayKey, secret_hash: str) -> None:
        from ..config._errors import ConfigError

        asyncpg = asyncpg_module()
        pool = await self._pool.get()
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    f"INSERT INTO gateway_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    key.id, key.name, key.prefix, secret_hash, models_text(key), key.rpm, key.tpm, key.max_cost,
                    key.max_tokens, key.period, key.created, None,
                )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ConfigError(
                f"an active gateway key is already named {key.name!r}: revoke it first, or choose another name"
            ) from None

    async def load(self, *, include_revoked: bool = False) -> list[tuple[GatewayKey, str]]:
        pool = await self._pool.get()
        where = "" if include_revoked else " WHERE revoked IS NULL"
        async with pool.acquire() as conn:
            found = await conn.fetch(f"SELECT {_COLUMNS} FROM gateway_keys{where} ORDER BY seq")
        return [key_of(tuple(r)) for r in found]

    async def revoke(self, name_or_id: str, at: datetime) -> GatewayKey | None:
        pool = await self._pool.get()
        async with pool.acquire() as conn:
            found = await conn.fetchrow(
                f"UPDATE gateway_keys SET revoked = $2 WHERE (name = $1 OR id = $1) AND revoked IS NULL"
                f" RETURNING {_COLUMNS}",
                name_or_id,
                at,
            )
        if found is None:
            return None
        key, _ = key_of(tuple(found))
        return dataclasses.replace(key, revoked=at)

    async def aclose(self) -> None:
        await self._pool.aclose()
