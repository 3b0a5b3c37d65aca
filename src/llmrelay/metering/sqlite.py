"""``SQLiteLedger``: the usage ledger in a SQLite file, shared by every process that opens it.

The standard library's ``sqlite3`` runs on one dedicated thread per ledger (one connection, used only
there), so the event loop never blocks on the disk. The file is in WAL mode (readers do not block the
writer) with ``synchronous=FULL`` (a committed row survives a power cut). Tables are created when
missing; ``llmrelay_ledger_schema`` holds the schema version, and a file written by a newer llmrelay
is refused with a ``ConfigError`` rather than misread. An older file is migrated when it is opened, in
one transaction: version 1 -> 2 adds the gateway's columns ``route``, ``status`` and ``ttft_ms`` (``NULL``
in the rows written before).

Rows are in the table ``ledger``. Costs are stored as decimal text and summed with ``Decimal``
(SQLite's ``SUM`` would round through a float). Beside the rows, ``ledger_spend`` keeps the tokens and
cost per UTC day, provider, model, key and currency, updated in the transaction that inserts the row,
so a budget check reads a few buckets, not every row. ``reserve`` runs in one ``BEGIN IMMEDIATE``
transaction (the file's write lock): among processes sharing the file, checks and holds are
serialised, so together they never overspend. A process that dies with calls in flight leaves holds
behind; they stop counting after ``hold_ttl`` seconds. Every call of the ledger is shielded from
cancellation: once called, a write completes.

**Writes in batches (group commit)**, as ``PostgresLedger`` does: ``record`` and ``settle`` queue their
row for one writer task, which writes everything queued (at most ``batch_size`` rows) in one ``BEGIN
IMMEDIATE`` transaction: the rows are inserted, their spend buckets added to and the holds of the settled
calls deleted, together, so ``settle``'s replacement of a hold by its row stays atomic. A caller waits for
the commit of its batch and gets its row back with its id. When the writer is idle a row is written at
once (no timer); under load the rows that arrive while a batch commits go in the next one, so the file
sees one transaction (one ``fsync``) per batch, not one per call. A row nobody waits for
(``settle_nowait``, the gateway's) may wait ``linger`` seconds (20 ms) for others to share its
transaction: at a few thousand calls a second a commit is far shorter than the gap between two calls, so
without it nearly every row would pay a transaction and an ``fsync`` of its own. A caller that waits, a
read, ``flush`` and ``aclose`` cut the wait short. A batch that fails is rolled back and
its rows are written again one transaction each, so one bad row fails only its own caller; every row is
written exactly once. ``rows`` and ``totals`` first wait for the rows queued before them (a process reads
its own writes), and ``aclose`` writes whatever is still queued before it closes the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from .._sqlite_thread import SQLiteThread, check_directory, use_wal
from ._ledger import QueuedRows
from ._model import Budget, Hold, LedgerRow, Spend, SpendKey, check_all, utc

__all__ = ["SCHEMA_VERSION", "SQLiteLedger"]

T = TypeVar("T")


@dataclasses.dataclass(slots=True)
class _Pending:
    """A row queued for the writer: the hold it replaces, and the caller's future for the stored row
    (``settle_nowait``'s gets ``None``: nobody reads the row back, so it is not copied with its id)."""

    hold: Hold | None
    row: LedgerRow
    done: asyncio.Future[Any]
    want_row: bool = True


SCHEMA_VERSION = 2
"""The version of the tables this llmrelay writes (``llmrelay_ledger_schema.version``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT,
    requested_model TEXT,
    key TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost TEXT,
    currency TEXT NOT NULL,
    cost_source TEXT NOT NULL,
    cost_unknown TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'cancelled')),
    error_kind TEXT,
    elapsed_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    route TEXT,
    status INTEGER,
    ttft_ms INTEGER
);
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at);
CREATE TABLE IF NOT EXISTS ledger_spend (
    day TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    key TEXT NOT NULL,
    currency TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    cost TEXT NOT NULL,
    PRIMARY KEY (day, provider, model, requested_model, key, currency)
);
CREATE TABLE IF NOT EXISTS ledger_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    model TEXT,
    key TEXT,
    tokens INTEGER NOT NULL,
    cost TEXT,
    currency TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

_COLUMNS = (
    "id, at, provider, model, key, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
    "reasoning_tokens, cost, currency, cost_source, cost_unknown, outcome, error_kind, elapsed_ms, attempts, "
    "requested_model, route, status, ttft_ms"
)

_INSERT_WIDTH = 22
"""The values of one ledger row in an INSERT (``_COLUMNS``)."""
_ROWS_PER_INSERT = 40
"""Rows per multi-row INSERT: 880 values, under SQLite's oldest limit of 999 per statement."""


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_statement(count: int) -> str:
    """``INSERT INTO ledger (...) VALUES (?, ...), ...`` for ``count`` rows (its text cached, so SQLite's
    statement cache finds it again)."""
    one = "(" + ", ".join(["?"] * _INSERT_WIDTH) + ")"
    return f"INSERT INTO ledger ({_COLUMNS}) VALUES " + ", ".join([one] * count)


_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # version -> the statements that take a file of that version to the next one
    1: (
        "ALTER TABLE ledger ADD COLUMN route TEXT",
        "ALTER TABLE ledger ADD COLUMN status INTEGER",
        "ALTER TABLE ledger ADD COLUMN ttft_ms INTEGER",
    ),
}


def _at_text(when: datetime) -> str:
    """A fixed-width UTC text, so text order is time order."""
    when = utc(when)
    if when.year >= 1000:  # the same text as strftime's below, in half the time
        return when.isoformat(timespec="microseconds")[:26] + "Z"
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _at_value(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _row_of(values: Sequence[Any]) -> LedgerRow:
    (id_, at, provider, model, key, inp, out, cread, cwrite, reason, cost, currency, source, unknown, outcome,
     kind, elapsed, attempts, requested, route, status, ttft) = values  # fmt: skip
    return LedgerRow(
        id=id_,
        at=_at_value(at),
        provider=provider,
        model=model,
        key=key,
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cread,
        cache_write_tokens=cwrite,
        reasoning_tokens=reason,
        cost=None if cost is None else Decimal(cost),
        currency=currency,
        cost_source=source,
        cost_unknown=unknown,
        outcome=outcome,
        error_kind=kind,
        elapsed_ms=elapsed,
        attempts=attempts,
        requested_model=requested,
        route=route,
        status=status,
        ttft_ms=ttft,
    )


def _written(item: _Pending, id_: int) -> None:
    """``item`` was committed with id ``id_``: its caller gets the stored row (``settle_nowait``'s: ``None``)."""
    if not item.done.done():
        item.done.set_result(dataclasses.replace(item.row, id=id_) if item.want_row else None)


def _fail(batch: Sequence[_Pending], exc: BaseException) -> None:
    error = exc if isinstance(exc, Exception) else RuntimeError(f"the ledger's writer was stopped ({exc!r})")
    for item in batch:
        if not item.done.done():
            item.done.set_exception(error)


class SQLiteLedger(QueuedRows):
    """A ``UsageLedger`` in the SQLite file at ``path`` (created with its tables when missing); see the
    module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        hold_ttl: float = 3600.0,
        busy_timeout: float = 30.0,
        batch_size: int = 500,
        linger: float = 0.02,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self.path = Path(path)
        self.hold_ttl = hold_ttl
        self.busy_timeout = busy_timeout
        self.batch_size = batch_size
        self.linger = linger
        """Seconds a batch of rows nobody waits for may wait for more rows (see the module docstring)."""
        self._wall = wall
        self._thread = SQLiteThread(self._open, "llmrelay-ledger")
        self._queue: list[_Pending] = []
        self._writing: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._awaited = 0
        """Queued rows whose caller waits for them, plus readers and flushes waiting: the writer lingers
        only while this is 0."""
        self._wake: asyncio.Future[None] | None = None
        """Set while the writer lingers; done when it should stop."""
        self._closed = False
        self.batches = 0
        """Write transactions of queued rows committed so far (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    # -- running on the ledger's thread --------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return await self._thread.run(fn, *args)

    def _open(self) -> sqlite3.Connection:
        from ..config._errors import ConfigError

        check_directory(self.path, "the ledger file")
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            use_wal(conn, self.busy_timeout)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS llmrelay_ledger_schema (version INTEGER NOT NULL)")
            found = conn.execute("SELECT MAX(version) FROM llmrelay_ledger_schema").fetchone()[0]
            if found is None:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO llmrelay_ledger_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif found < SCHEMA_VERSION:
                for version in range(found, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[version]:
                        conn.execute(statement)
                conn.execute("DELETE FROM llmrelay_ledger_schema")
                conn.execute("INSERT INTO llmrelay_ledger_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif found > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise ConfigError(
                    f"the ledger's schema is version {found}, newer than this llmrelay's ({SCHEMA_VERSION}): "
                    "upgrade llmrelay, or point the ledger at another file",
                    file=self.path,
                )
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _insert(conn: sqlite3.Connection, rows: Sequence[LedgerRow]) -> int:
        """Insert ``rows`` and add them to their spend buckets, inside the caller's write transaction;
        return the id of the first (the others follow it).

        A few statements per batch, not per row: the ids are the next ones of the table's sequence
        (the write lock is held, so no other writer can take them), given explicitly to a few
        multi-row INSERTs; the spend is summed per bucket first, then each bucket read and replaced once.
        """
        (last,) = conn.execute(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'ledger'), 0),"
            " COALESCE((SELECT MAX(id) FROM ledger), 0))"
        ).fetchone()
        values = [
            value
            for id_, row in enumerate(rows, last + 1)
            for value in (
                id_, _at_text(row.at), row.provider, row.model, row.key, row.input_tokens, row.output_tokens,
                row.cache_read_tokens, row.cache_write_tokens, row.reasoning_tokens,
                None if row.cost is None else str(row.cost), row.currency, row.cost_source, row.cost_unknown,
                row.outcome, row.error_kind, row.elapsed_ms, row.attempts, row.requested_model, row.route,
                row.status, row.ttft_ms,
            )
        ]  # fmt: skip
        # Multi-row INSERTs, ``_ROWS_PER_INSERT`` rows each: one ``sqlite3_step`` (one release and one
        # re-take of the GIL) per statement, where ``executemany`` takes one per row, and each re-take
        # waits on the event loop's thread holding the GIL (``bench/README.md``).
        width = _INSERT_WIDTH
        step = _ROWS_PER_INSERT * width
        for start in range(0, len(values), step):
            part = values[start : start + step]
            conn.execute(_insert_statement(len(part) // width), part)
        spend: dict[SpendKey, Spend] = {}
        for row in rows:
            bucket = spend.setdefault(Spend.key_of(row), Spend())
            bucket.tokens += row.total_tokens
            bucket.cost += row.cost or Decimal(0)
        for key, add in spend.items():
            found = conn.execute(
                "SELECT tokens, cost FROM ledger_spend WHERE day = ? AND provider = ? AND model = ?"
                " AND requested_model = ? AND key = ? AND currency = ?",
                key,
            ).fetchone()
            tokens = add.tokens + (found[0] if found else 0)
            total = add.cost + (Decimal(found[1]) if found else Decimal(0))
            conn.execute(
                "INSERT OR REPLACE INTO ledger_spend (day, provider, model, requested_model, key, currency, tokens,"
                " cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, tokens, str(total)),
            )
        return int(last) + 1

    @staticmethod
    def _write(conn: sqlite3.Connection, batch: Sequence[tuple[Hold | None, LedgerRow]]) -> int:
        """Insert ``batch``'s rows and drop their holds, in one transaction; the id of the first row."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            holds = [(hold.id,) for hold, _ in batch if hold is not None]
            if holds:
                conn.executemany("DELETE FROM ledger_holds WHERE id = ?", holds)
            first = SQLiteLedger._insert(conn, [row for _, row in batch])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return first

    # -- the writer ----------------------------------------------------------------------------------

    def _queue_row(self, hold: Hold | None, row: LedgerRow, want_row: bool) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        # Queued at once (no await), so an ``aclose`` that starts later still writes it.
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(hold, row, done, want_row))
        if want_row:
            self._awaited += 1
            self._stop_lingering()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="llmrelay-ledger-writer")
        return done

    def _stop_lingering(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _linger(self) -> None:
        """Wait ``linger`` seconds for more rows, unless someone starts waiting for the queue."""
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        timer = loop.call_later(self.linger, self._stop_lingering)
        try:
            await wake
        except BaseException as exc:  # the writer was cancelled: the queued rows fail, loudly
            _fail(self._queue, exc)
            self._queue = []
            raise
        finally:
            timer.cancel()
            self._wake = None

    async def _write_loop(self) -> None:
        while self._queue:
            if self.linger and not self._awaited and len(self._queue) < self.batch_size:
                await self._linger()
            batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            self._awaited -= sum(item.want_row for item in batch)
            self._writing = batch
            if len(batch) == 1:
                await self._write_alone(batch[0])
                continue
            try:
                first = await self._run(self._write, [(item.hold, item.row) for item in batch])
            except Exception:  # rolled back: each row again in its own transaction, so a bad one fails alone
                for item in batch:
                    await self._write_alone(item)
                continue
            except BaseException as exc:
                _fail(batch, exc)
                raise
            self.batches += 1
            for id_, item in enumerate(batch, first):
                _written(item, id_)
        self._writing = []

    async def _write_alone(self, item: _Pending) -> None:
        try:
            id_ = await self._run(self._write, [(item.hold, item.row)])
        except Exception as exc:
            _fail([item], exc)
            return
        except BaseException as exc:
            _fail([item], exc)
            raise
        self.batches += 1
        _written(item, id_)

    async def _written(self) -> None:
        """Wait for the rows queued so far (not for those queued while waiting)."""
        pending = [item.done for item in (*self._writing, *self._queue) if not item.done.done()]
        if pending:
            self._awaited += 1
            self._stop_lingering()
            try:
                await asyncio.wait(pending)
            finally:
                self._awaited -= 1

    async def flush(self) -> None:
        """Wait until every row queued so far is committed (or failed)."""
        self._awaited += 1
        self._stop_lingering()
        try:
            while self._writer is not None and not self._writer.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._writer)
        finally:
            self._awaited -= 1

    @staticmethod
    def _select(
        conn: sqlite3.Connection,
        since: datetime | None,
        provider: str | None,
        model: str | None,
        key: str | None,
        limit: int | None,
    ) -> list[LedgerRow]:
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("at >= ?")
            args.append(_at_text(since))
        if provider is not None:
            where.append("provider = ?")
            args.append(provider)
        if model is not None:
            where.append("(model = ? OR requested_model = ?)")
            args += [model, model]
        if key is not None:
            where.append("key = ?")
            args.append(key)
        sql = f"SELECT {_COLUMNS} FROM ledger"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            args.append(max(0, limit))
        else:
            sql += " ORDER BY id"
        return [_row_of(values) for values in conn.execute(sql, args)]

    def _reserve(
        self,
        conn: sqlite3.Connection,
        budgets: Sequence[Budget],
        at: datetime,
        provider: str,
        model: str | None,
        key: str | None,
        tokens: int,
        cost: Decimal | None,
        currency: str,
    ) -> Hold:
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = self._wall()
            conn.execute("DELETE FROM ledger_holds WHERE expires <= ?", (now,))
            holds = [
                Hold(i, p, m, k, t, None if c is None else Decimal(c), cur, exp)
                for i, p, m, k, t, c, cur, exp in conn.execute(
                    "SELECT id, provider, model, key, tokens, cost, currency, expires FROM ledger_holds"
                )
            ]
            firsts = [b.window(at)[0] for b in budgets]
            first = None if any(day is None for day in firsts) else min(d for d in firsts if d is not None)
            spend: list[tuple[SpendKey, Spend]] = [
                ((d, p, m, r, k, cur), Spend(t, Decimal(c)))
                for d, p, m, r, k, cur, t, c in conn.execute(
                    "SELECT day, provider, model, requested_model, key, currency, tokens, cost FROM ledger_spend"
                    " WHERE day >= ?",
                    (first or "",),
                )
            ]
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
            cursor = conn.execute(
                "INSERT INTO ledger_holds (provider, model, key, tokens, cost, currency, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (provider, model, key, tokens, None if cost is None else str(cost), currency, expires),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        assert cursor.lastrowid is not None
        return Hold(cursor.lastrowid, provider, model, key, tokens, cost, currency, expires)

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
        await self._written()
        return await self._run(self._select, since, provider, model, key, limit)

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
        return await self._run(self._reserve, budgets, at, provider, model, key, tokens, cost, currency)

    async def settle(self, hold: Hold | None, row: LedgerRow) -> LedgerRow:
        return await self._enqueue(hold, row)

    async def release(self, hold: Hold) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM ledger_holds WHERE id = ?", (hold.id,))

        await self._run(drop)

    async def aclose(self) -> None:
        """Write what is still queued, then close the file (idempotent)."""
        if self._closed:
            return
        await self.flush()
        await self._thread.close()
        self._closed = True
