"""``PostgresLedger``: the usage ledger in a PostgreSQL database, shared by every replica of a gateway.

It talks to the server through an ``asyncpg`` pool (the ``gateway`` extra), opened on first use in the
running event loop. The tables mirror ``SQLiteLedger``'s: ``ledger`` (one row per call; ``at`` is a
``TIMESTAMPTZ``, costs are ``NUMERIC``, exact), ``ledger_spend`` (tokens and cost per UTC day, provider,
model, requested model, key and currency) and ``ledger_holds`` (calls in flight). They are created when
missing, under an advisory lock so replicas starting together do not race; ``llmrelay_ledger_schema``
holds the version (``PG_SCHEMA_VERSION``) and a database written by a newer llmrelay is refused with a
``ConfigError``.

**Reservations.** ``reserve`` is one transaction that first takes a transaction-level advisory lock for
each budget scope it checks (``pg_advisory_xact_lock``, in a fixed order, so two reservations never
deadlock), then reads the holds and the spend in one statement (one snapshot: a call being settled is
seen either as its hold or as its row, never as neither), checks every budget and inserts the hold. Two
reservations that check a common scope are serialised, across processes and hosts; every call reserves
against every budget that applies to it (``Metered`` does), so together they never overspend.

**Writes in batches (group commit).** ``record`` and ``settle`` hand their row to one writer task, which
writes everything queued in one transaction (at most ``batch_size`` rows): the rows get their ids, the
spend buckets are added to, and the holds of the settled calls are deleted, together, so ``settle``'s
replacement of a hold by its row stays atomic. A caller waits for the commit of its batch and gets its
row back with its id. When the writer is idle a row is written at once (no timer, no added latency);
under load, the rows that arrive while a batch is being committed go in the next one, so the database
sees one transaction per batch, not one per request. ``aclose`` writes whatever is still queued before it
closes the pool: nothing accepted is lost on a graceful shutdown. A batch that fails is failed for every
caller in it (and none of its rows is stored): the error reaches each ``settle``.

Like ``SQLiteLedger``, each call is shielded from cancellation once made, and holds of a process that
died stop counting after ``hold_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from .._postgres import LazyPool, ensure_schema, safe_url
from ._ledger import QueuedRows
from ._model import Budget, Hold, LedgerRow, Spend, SpendKey, check_all, utc

__all__ = ["PG_SCHEMA_VERSION", "PostgresLedger"]

PG_SCHEMA_VERSION = 1
"""The version of the PostgreSQL tables this llmrelay writes (``llmrelay_ledger_schema.version``)."""

_LOCK_CLASS = 0x4C4D52  # "LMR": the first key of every advisory lock this module takes
_SCHEMA_LOCK = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ledger (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    provider TEXT NOT NULL,
    model TEXT,
    requested_model TEXT,
    key TEXT,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cache_read_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    cost NUMERIC,
    currency TEXT NOT NULL,
    cost_source TEXT NOT NULL,
    cost_unknown TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'cancelled')),
    error_kind TEXT,
    elapsed_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    route TEXT,
    status INTEGER,
    ttft_ms BIGINT
)""",
    "CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at)",
    """CREATE TABLE IF NOT EXISTS ledger_spend (
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    key TEXT NOT NULL,
    currency TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    cost NUMERIC NOT NULL,
    PRIMARY KEY (day, provider, model, requested_model, key, currency)
)""",
    """CREATE TABLE IF NOT EXISTS ledger_holds (
    id BIGSERIAL PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT,
    key TEXT,
    tokens BIGINT NOT NULL,
    cost NUMERIC,
    currency TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL
)""",
)

_FIELDS = (
    "at", "provider", "model", "key", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost", "currency", "cost_source", "cost_unknown", "outcome", "error_kind", "elapsed_ms",
    "attempts", "requested_model", "route", "status", "ttft_ms",
)  # fmt: skip
_COLUMNS = "id, " + ", ".join(_FIELDS)
_INSERT = f"INSERT INTO ledger ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, len(_FIELDS) + 2))})"
_ADD_SPEND = (
    "INSERT INTO ledger_spend (day, provider, model, requested_model, key, currency, tokens, cost)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (day, provider, model, requested_model, key, currency)"
    " DO UPDATE SET tokens = ledger_spend.tokens + EXCLUDED.tokens, cost = ledger_spend.cost + EXCLUDED.cost"
)


def lock_key(scope: str) -> int:
    """The second key of the advisory lock of a budget scope (a signed 32-bit CRC: a collision only
    serialises two scopes that did not need it)."""
    value = zlib.crc32(scope.encode("utf-8"))
    return value - (1 << 32) if value >= 1 << 31 else value


def _row_of(record: Any) -> LedgerRow:
    values = dict(record)
    values["cost"] = None if values["cost"] is None else Decimal(values["cost"])
    return LedgerRow(**values)


def _values(row_id: int, row: LedgerRow) -> tuple[Any, ...]:
    return (row_id, *(getattr(row, name) for name in _FIELDS))


@dataclasses.dataclass(slots=True)
class _Pending:
    hold: Hold | None
    row: LedgerRow
    done: asyncio.Future[Any]
    want_row: bool = True
    """``False`` for ``settle_nowait``: its future gets ``None``."""


class PostgresLedger(QueuedRows):
    """A ``UsageLedger`` in the PostgreSQL database at ``url`` (``postgresql://USER:PASSWORD@HOST/DB``);
    see the module docstring. ``batch_size`` caps the rows of one write transaction; ``pool_size`` the
    connections of this process."""

    def __init__(
        self,
        url: str,
        *,
        hold_ttl: float = 3600.0,
        batch_size: int = 500,
        pool_size: int = 4,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1 or pool_size < 1:
            raise ValueError("batch_size and pool_size must be at least 1")
        self.url = url
        self.hold_ttl = hold_ttl
        self.batch_size = batch_size
        self.pool_size = pool_size
        self._wall = wall
        self._pool = LazyPool(url, pool_size, "the PostgreSQL ledger", self._ensure_schema)
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        """Write transactions committed so far (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"PostgresLedger({safe_url(self.url)!r})"

    # -- the pool and the schema ---------------------------------------------------------------------

    async def _get_pool(self) -> Any:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return await self._pool.get()

    @staticmethod
    async def _ensure_schema(conn: Any) -> None:
        await ensure_schema(
            conn,
            lock=(_LOCK_CLASS, _SCHEMA_LOCK),
            table="llmrelay_ledger_schema",
            statements=_SCHEMA,
            version=PG_SCHEMA_VERSION,
            what="the ledger",
            advice=", or point the ledger at another database",
        )

    # -- the writer ----------------------------------------------------------------------------------

    def _queue_row(self, hold: Hold | None, row: LedgerRow, want_row: bool) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        # Queued at once (no await), so an ``aclose`` that starts later still writes it.
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(hold, row, done, want_row))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="llmrelay-ledger-writer")
        return done

    async def _write_loop(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            try:
                stored = await self._write(batch)
            except BaseException as exc:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            self.batches += 1
            for item, row in zip(batch, stored, strict=True):
                if not item.done.done():
                    item.done.set_result(row if item.want_row else None)

    async def _write(self, batch: Sequence[_Pending]) -> list[LedgerRow]:
        pool = await self._get_pool()
        spend: dict[SpendKey, Spend] = {}
        for item in batch:
            bucket = spend.setdefault(Spend.key_of(item.row), Spend())
            bucket.tokens += item.row.total_tokens
            bucket.cost += item.row.cost or Decimal(0)
        holds = [item.hold.id for item in batch if item.hold is not None]
        async with pool.acquire() as conn, conn.transaction():
            ids = sorted(
                await conn.fetchval(
                    "SELECT array_agg(nextval(pg_get_serial_sequence('ledger', 'id'))) FROM generate_series(1, $1)",
                    len(batch),
                )
            )
            await conn.executemany(_INSERT, [_values(i, item.row) for i, item in zip(ids, batch, strict=True)])
            # Buckets in one order in every process, so two batches never deadlock on them.
            await conn.executemany(
                _ADD_SPEND, [(*key, value.tokens, value.cost) for key, value in sorted(spend.items())]
            )
            if holds:
                await conn.execute("DELETE FROM ledger_holds WHERE id = ANY($1::bigint[])", holds)
        return [dataclasses.replace(item.row, id=i) for i, item in zip(ids, batch, strict=True)]

    # -- reservations --------------------------------------------------------------------------------

    async def _reserve(
        self,
        budgets: Sequence[Budget],
        at: datetime,
        provider: str,
        model: str | None,
        key: str | None,
        tokens: int,
        cost: Decimal | None,
        currency: str,
    ) -> Hold:
        pool = await self._get_pool()
        firsts = [b.window(at)[0] for b in budgets]
        first = None if any(day is None for day in firsts) else min(d for d in firsts if d is not None)
        async with pool.acquire() as conn, conn.transaction():
            for lock in sorted({lock_key(b.scope) for b in budgets}):
                await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLASS, lock)
            now = self._wall()
            await conn.execute("DELETE FROM ledger_holds WHERE expires <= $1", now)
            found = await conn.fetch(
                "SELECT 'h' AS src, id, NULL AS day, provider, model, NULL AS requested_model, key, tokens, cost,"
                " currency, expires FROM ledger_holds"
                " UNION ALL SELECT 's', NULL, day, provider, model, requested_model, key, tokens, cost, currency,"
                " NULL FROM ledger_spend WHERE day >= $1",
                first or "",
            )
            holds: list[Hold] = []
            spend: list[tuple[SpendKey, Spend]] = []
            for r in found:
                if r["src"] == "h":
                    holds.append(
                        Hold(r["id"], r["provider"], r["model"], r["key"], r["tokens"], r["cost"], r["currency"],
                             r["expires"])
                    )  # fmt: skip
                else:
                    bucket = (r["day"], r["provider"], r["model"], r["requested_model"], r["key"], r["currency"])
                    spend.append((bucket, Spend(r["tokens"], r["cost"])))
            check_all(
                budgets,
                at,
                spend,
                holds,
                provider=provider,
                model=model,
                key=key,
                tokens=tokens,
                cost=cost,
                currency=currency,
            )
            expires = now + self.hold_ttl
            hold_id = await conn.fetchval(
                "INSERT INTO ledger_holds (provider, model, key, tokens, cost, currency, expires)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                provider,
                model,
                key,
                tokens,
                cost,
                currency,
                expires,
            )
        return Hold(hold_id, provider, model, key, tokens, cost, currency, expires)

    async def _select(
        self,
        since: datetime | None,
        provider: str | None,
        model: str | None,
        key: str | None,
        limit: int | None,
    ) -> list[LedgerRow]:
        pool = await self._get_pool()
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            args.append(utc(since))
            where.append(f"at >= ${len(args)}")
        if provider is not None:
            args.append(provider)
            where.append(f"provider = ${len(args)}")
        if model is not None:
            args.append(model)
            where.append(f"(model = ${len(args)} OR requested_model = ${len(args)})")
        if key is not None:
            args.append(key)
            where.append(f"key = ${len(args)}")
        sql = f"SELECT {_COLUMNS} FROM ledger"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            args.append(max(0, limit))
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ${len(args)}) AS recent ORDER BY id"
        else:
            sql += " ORDER BY id"
        async with pool.acquire() as conn:
            return [_row_of(r) for r in await conn.fetch(sql, *args)]

    # -- the UsageLedger interface -------------------------------------------------------------------

    async def record(self, row: LedgerRow) -> LedgerRow:
        return await self._enqueue(None, row)

    async def rows(
        self,
        *,
        since: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        return await asyncio.shield(self._select(since, provider, model, key, limit))

    async def reserve(
        self,
        budgets: Sequence[Budget],
        *,
        at: datetime,
        provider: str,
        model: str | None,
        key: str | None,
        tokens: int,
        cost: Decimal | None,
        currency: str = "USD",
    ) -> Hold:
        return await asyncio.shield(self._reserve(budgets, at, provider, model, key, tokens, cost, currency))

    async def settle(self, hold: Hold | None, row: LedgerRow) -> LedgerRow:
        return await self._enqueue(hold, row)

    async def release(self, hold: Hold) -> None:
        async def drop() -> None:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM ledger_holds WHERE id = $1", hold.id)

        await asyncio.shield(drop())

    async def flush(self) -> None:
        """Wait until every row handed to the writer so far is committed (or failed)."""
        while self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        """Write what is still queued, then close the pool (idempotent)."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        await self._pool.aclose()
