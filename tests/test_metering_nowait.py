"""Rows handed to a ledger without waiting (``settle_nowait``, used by ``RowWrites``): no task per row, every
row written (also when the ledger closes right after), failures logged and counted, never lost silently;
and the memory ledger's ids, given when a row is first read, are the ones it always gave."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from conftest_postgres import postgres_db, postgres_server
from llmrelay.metering import (
    Budget,
    Hold,
    LedgerRow,
    MemoryLedger,
    Metered,
    PostgresLedger,
    RowWrites,
    SQLiteLedger,
    Totals,
    UsageLedger,
)
from llmrelay.metering._model import day_of
from llmrelay.metering.sqlite import _at_text
from llmrelay.testing import FakeUpstream
from test_ledger_sqlite_batches import a_row as sqlite_row
from test_metering import REQ, openai, reply

__all__ = ["postgres_db", "postgres_server"]  # fixtures, imported to be found


def a_row(i: int = 0, **changes: object) -> LedgerRow:
    """``test_ledger_sqlite_batches.a_row`` with ``elapsed_ms=i``, so rows can be told apart after a write."""
    return sqlite_row(i, elapsed_ms=i, **changes)


def sqlite_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()
    return int(count)


async def test_sqlite_rows_queued_right_before_aclose_are_all_written_without_a_task_each(tmp_path: Path) -> None:
    path, n = tmp_path / "ledger.db", 500
    ledger = SQLiteLedger(path)
    await ledger.rows(limit=1)
    writes = RowWrites()
    tasks_before = len(asyncio.all_tasks())
    for i in range(n):
        writes.settle(ledger, None, a_row(i))
    assert len(asyncio.all_tasks()) <= tasks_before + 1  # the ledger's one writer, no task per row
    assert len(writes) == n
    await ledger.aclose()  # no flush first: closing writes what is queued
    assert sqlite_count(path) == n
    assert writes.failed == 0
    await writes.flush()
    assert len(writes) == 0
    reopened = SQLiteLedger(path)
    try:
        rows = await reopened.rows()
        assert [r.id for r in rows] == list(range(1, n + 1))
        assert sorted(r.elapsed_ms for r in rows) == list(range(n))
        assert (await reopened.totals()).cost == {"USD": Decimal("0.000001") * n}
        assert ledger.batches < n  # written in batches, not one transaction per row
    finally:
        await reopened.aclose()


async def test_sqlite_settle_nowait_drops_the_hold_and_awaited_writes_still_get_their_row(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    try:
        budget = Budget("*", max_tokens=100)
        at = datetime(2025, 6, 1, tzinfo=UTC)
        hold = await ledger.reserve(
            [budget], at=at, provider="openai", model="m", key=None, tokens=90, cost=None, currency="USD"
        )
        done = ledger.settle_nowait(hold, a_row(1, at=at, input_tokens=3, output_tokens=2))
        stored = await ledger.record(a_row(2, at=at, input_tokens=1, output_tokens=1))
        assert await done is None
        assert stored.id == 2 and stored.elapsed_ms == 2
        # the hold of 90 is gone, the 7 tokens of the two rows count: 93 more fit, 94 do not
        again = await ledger.reserve(
            [budget], at=at, provider="openai", model="m", key=None, tokens=93, cost=None, currency="USD"
        )
        await ledger.release(again)
        assert [r.id for r in await ledger.rows()] == [1, 2]
    finally:
        await ledger.aclose()


async def test_a_bad_row_fails_alone_and_is_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path)
    await ledger.rows(limit=1)
    bad = a_row(99)
    object.__setattr__(bad, "outcome", "bogus")  # past LedgerRow's check: the table's CHECK refuses it
    writes = RowWrites()
    with caplog.at_level(logging.ERROR, logger="llmrelay.metering"):
        for i in range(10):
            writes.settle(ledger, None, bad if i == 4 else a_row(i))
        await writes.flush()
    assert writes.failed == 1
    assert [r.message for r in caplog.records] == ["a ledger row could not be written"]
    assert isinstance(caplog.records[0].exc_info[1], sqlite3.IntegrityError)  # type: ignore[index]
    await ledger.aclose()
    assert sqlite_count(path) == 9


async def test_a_row_for_a_closed_ledger_is_logged_not_lost_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for ledger in (SQLiteLedger(tmp_path / "ledger.db"), ClosedMemory()):
        await ledger.aclose()
        writes = RowWrites()
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="llmrelay.metering"):
            writes.settle(ledger, None, a_row())
            await writes.flush()
        assert writes.failed == 1 and len(writes) == 0
        assert [r.message for r in caplog.records] == ["a ledger row could not be written"]


class ClosedMemory(MemoryLedger):
    """A memory ledger that refuses rows once closed (as a store over a connection would)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    def settle_nowait(self, hold: Hold | None, row: LedgerRow) -> None:
        if self.closed:
            raise RuntimeError("closed")
        super().settle_nowait(hold, row)


class TaskOnly:
    """A ``UsageLedger`` without ``settle_nowait`` (a third-party store): its ``settle`` runs in a task."""

    def __init__(self) -> None:
        self.inner = MemoryLedger()
        self.settled = 0

    async def record(self, row: LedgerRow) -> LedgerRow:
        return await self.inner.record(row)

    async def rows(self, **filters: object) -> list[LedgerRow]:
        return await self.inner.rows(**filters)  # type: ignore[arg-type]

    async def totals(self, **filters: object) -> Totals:
        return await self.inner.totals(**filters)  # type: ignore[arg-type]

    async def reserve(self, budgets: object, **kw: object) -> Hold:
        return await self.inner.reserve(budgets, **kw)  # type: ignore[arg-type]

    async def settle(self, hold: Hold | None, row: LedgerRow) -> LedgerRow:
        await asyncio.sleep(0)
        self.settled += 1
        return await self.inner.settle(hold, row)

    async def release(self, hold: Hold) -> None:
        await self.inner.release(hold)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("store", ["memory", "sqlite", "task-only"])
async def test_metered_calls_through_row_writes_leave_one_row_each(
    upstream: FakeUpstream, tmp_path: Path, store: str
) -> None:
    n = 40
    upstream.route("/v1/chat/completions", reply())
    ledger: UsageLedger
    if store == "memory":
        ledger = MemoryLedger()
    elif store == "sqlite":
        ledger = SQLiteLedger(tmp_path / "ledger.db")
    else:
        ledger = TaskOnly()
    writes = RowWrites()
    budget = Budget("openai", max_tokens=10_000_000)
    async with Metered(openai(upstream), ledger=ledger, budgets=[budget], writes=writes) as provider:
        await asyncio.gather(*(provider.chat(REQ) for _ in range(n)))
        async with provider.chat_stream(REQ) as stream:
            await stream.until_done()
    await writes.flush()
    rows = await ledger.rows()
    assert len(rows) == n + 1 and [r.id for r in rows] == list(range(1, n + 2))
    assert all(r.outcome == "ok" and (r.input_tokens, r.output_tokens) == (1, 60) for r in rows)
    if isinstance(ledger, TaskOnly):
        assert ledger.settled == n + 1
    # every hold was replaced by its row: the whole budget minus the rows' tokens is free again
    totals = await ledger.totals()
    assert totals.total_tokens == 61 * (n + 1)
    hold = await ledger.reserve(
        [budget],
        at=datetime.now(UTC),
        provider="openai",
        model="gpt-4o-mini",
        key=None,
        tokens=10_000_000 - 61 * (n + 1),
        cost=None,
    )
    await ledger.release(hold)
    await ledger.aclose()


async def test_memory_ids_are_places_given_on_first_read() -> None:
    ledger = MemoryLedger()
    for i in range(3):
        assert ledger.settle_nowait(None, a_row(i)) is None
    stored = await ledger.record(a_row(3, id=77))  # a given id is ignored, as before
    settled = await ledger.settle(None, a_row(4))
    assert (stored.id, settled.id) == (4, 5)
    rows = await ledger.rows()
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert [r.elapsed_ms for r in rows] == [0, 1, 2, 3, 4]
    assert rows[3] == stored and rows[4] == settled
    assert (await ledger.rows())[0] is rows[0]  # copied once, then kept
    assert [r.id for r in await ledger.rows(key="k1")] == [2, 5]
    assert [r.id for r in await ledger.rows(limit=2)] == [4, 5]
    assert (await ledger.totals()).rows == 5


async def test_postgres_settle_nowait_rows_are_written_by_aclose(postgres_db: str) -> None:
    ledger = PostgresLedger(postgres_db)
    await ledger.rows(limit=1)
    writes = RowWrites()
    for i in range(200):
        writes.settle(ledger, None, a_row(i))
    await ledger.aclose()
    await writes.flush()
    assert writes.failed == 0
    reopened = PostgresLedger(postgres_db)
    try:
        rows = await reopened.rows()
        assert len(rows) == 200 and len({r.id for r in rows}) == 200
    finally:
        await reopened.aclose()


@pytest.mark.parametrize(
    "when",
    [
        datetime(2025, 6, 1, 12, 0, 0, 0, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2025, 6, 1, 1, 30),  # naive: taken as UTC
    ],
)
def test_the_fast_day_and_time_texts_are_strftime_s(when: datetime) -> None:
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    assert day_of(when) == aware.strftime("%Y-%m-%d")
    assert _at_text(when) == aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
