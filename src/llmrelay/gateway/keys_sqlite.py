"""``SQLiteKeys``: gateway keys in a SQLite file (the default store: a file in the user data directory).

Like ``SQLiteLedger``, the standard library's ``sqlite3`` runs on one dedicated thread, so the event loop
never waits on the disk; the file is in WAL mode, and ``llmrelay_keys_schema`` holds its version (a file
from a newer llmrelay is refused). The table ``gateway_keys`` keeps each key's SHA-256 hash, never its
secret; a partial unique index keeps names unique among active keys.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from .._sqlite_thread import SQLiteThread, check_directory, use_wal
from .keys import GatewayKey

__all__ = ["KEYS_SCHEMA_VERSION", "SQLiteKeys"]

T = TypeVar("T")

KEYS_SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gateway_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    models TEXT,
    rpm REAL,
    tpm REAL,
    max_cost TEXT,
    max_tokens INTEGER,
    period TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS gateway_keys_active_name ON gateway_keys (name) WHERE revoked IS NULL",
)
_COLUMNS = "id, name, prefix, secret_hash, models, rpm, tpm, max_cost, max_tokens, period, created, revoked"


def key_of(values: Any) -> tuple[GatewayKey, str]:
    """A key and its hash from a row of ``_COLUMNS`` (shared with ``keys_postgres``)."""
    (id_, name, prefix, digest, models, rpm, tpm, cost, max_tokens, period, created, revoked) = values
    key = GatewayKey(
        id=id_,
        name=name,
        prefix=prefix,
        created=datetime.fromisoformat(created) if isinstance(created, str) else created,
        models=None if models is None else tuple(json.loads(models)),
        rpm=rpm,
        tpm=tpm,
        max_cost=None if cost is None else Decimal(cost),
        max_tokens=max_tokens,
        period=period,
        revoked=datetime.fromisoformat(revoked) if isinstance(revoked, str) else revoked,
    )
    return key, digest


def models_text(key: GatewayKey) -> str | None:
    return None if key.models is None else json.dumps(list(key.models))


class SQLiteKeys:
    """A ``KeyBackend`` in the SQLite file at ``path`` (created with its table when missing)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._thread = SQLiteThread(self._open, "llmrelay-keys")

    def __repr__(self) -> str:
        return f"SQLiteKeys({str(self.path)!r})"

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._thread.run(fn, *args)

    def _open(self) -> sqlite3.Connection:
        from ..config._errors import ConfigError

        check_directory(self.path, "the key store")
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            use_wal(conn, self.busy_timeout)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS llmrelay_keys_schema (version INTEGER NOT NULL)")
            found = conn.execute("SELECT MAX(version) FROM llmrelay_keys_schema").fetchone()[0]
            if found is None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO llmrelay_keys_schema (version) VALUES (?)", (KEYS_SCHEMA_VERSION,))
            elif found > KEYS_SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise ConfigError(
                    f"the key store's schema is version {found}, newer than this llmrelay's ({KEYS_SCHEMA_VERSION}):"
                    " upgrade llmrelay",
                    file=self.path,
                )
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def load_blocking(self) -> list[tuple[GatewayKey, str]]:
        """The active keys, read now on a connection of its own in the calling thread (``open_key_store``)."""
        conn = self._open()
        try:
            found = conn.execute(f"SELECT {_COLUMNS} FROM gateway_keys WHERE revoked IS NULL ORDER BY rowid")
            return [key_of(v) for v in found]
        finally:
            conn.close()

    async def insert(self, key: GatewayKey, secret_hash: str) -> None:
        from ..config._errors import ConfigError

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO gateway_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.id, key.name, key.prefix, secret_hash, models_text(key), key.rpm, key.tpm,
                 None if key.max_cost is None else str(key.max_cost), key.max_tokens, key.period,
                 key.created.isoformat(), None),
            )  # fmt: skip

        try:
            await self._run(insert)
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"an active gateway key is already named {key.name!r}: revoke it first, or choose another name"
            ) from None

    async def load(self, *, include_revoked: bool = False) -> list[tuple[GatewayKey, str]]:
        where = "" if include_revoked else " WHERE revoked IS NULL"

        def load(conn: sqlite3.Connection) -> list[tuple[GatewayKey, str]]:
            return [key_of(v) for v in conn.execute(f"SELECT {_COLUMNS} FROM gateway_keys{where} ORDER BY rowid")]

        return await self._run(load)

    async def revoke(self, name_or_id: str, at: datetime) -> GatewayKey | None:
        def revoke(conn: sqlite3.Connection) -> GatewayKey | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute(
                    f"SELECT {_COLUMNS} FROM gateway_keys WHERE (name = ? OR id = ?) AND revoked IS NULL",
                    (name_or_id, name_or_id),
                ).fetchone()
                if found is not None:
                    conn.execute("UPDATE gateway_keys SET revoked = ? WHERE id = ?", (at.isoformat(), found[0]))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if found is None:
                return None
            key, _ = key_of(found)
            return dataclasses.replace(key, revoked=at)

        return await self._run(revoke)

    async def aclose(self) -> None:
        await self._thread.close()
