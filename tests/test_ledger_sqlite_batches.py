"""``SQLiteLedger``'s group commit on real SQLite files: rows that arrive together are written in far fewer
transactions than rows, every row exactly once (also across processes sharing the file, and for writes no
caller awaited when ``aclose`` runs), ``settle`` still replaces each hold by its row, one bad row in a batch
fails only its own caller, and a read sees the rows queued before it."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from llmrelay.metering import Budget, BudgetExceeded, LedgerRow, SQLiteLedger


def a_row(i: int = 0, **changes: object) -> LedgerRow:
    row = LedgerRow(
        id=None,
        at=datetime(2025, 6, 1, 12, 0, 0, i % 1_000_000, tzinfo=UTC),
        provider="openai",
        model="gpt-4o-mini",
        key=f"k{i % 3}",
        input_tokens=10,
        output_tokens=5,
        cost=Decimal("0.000001"),
        elapsed_ms=3,
    )
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


WRITER = """
import asyncio, sys
from llmrelay.metering import SQLiteLedger
from test_ledger_sqlite_batches import a_row

async def main() -> None:
    path, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ledger = SQLiteLedger(path)
    await ledger.rows(limit=1)  # the file and its tables exist before the writers race
    # n writes in flight at once, none awaited by its caller: aclose must still write them all
    tasks = [asyncio.ensure_future(ledger.record(a_row(i, route=tag))) for i in range(n)]
    await asyncio.sleep(0)
    await ledger.aclose()
    stored = [t.result() for t in tasks]
    print(len({r.id for r in stored}), ledger.batches)

asyncio.run(main())
"""


async def test_no_row_is_lost_across_processes_and_batches_group_them(tmp_path: Path) -> None:
    path, n = tmp_path / "ledger.db", 300
    first = SQLiteLedger(path)
    await first.rows()  # create the file once, before the processes race for it
    await first.aclose()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            str(path),
            str(n),
            f"p{i}",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).parent,
        )
        for i in range(3)
    ]
    outs = [await asyncio.wait_for(proc.communicate(), 60.0) for proc in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err.decode()
    for out, _err in outs:
        unique, batches = map(int, out.split())
        assert unique == n and 1 <= batches < n / 4, (unique, batches)  # grouped, far fewer than one per row
    ledger = SQLiteLedger(path)
    rows = await ledger.rows()
    totals = await ledger.totals()
    await ledger.aclose()
    assert len(rows) == 3 * n and len({r.id for r in rows}) == 3 * n
    assert {tag: sum(r.route == tag for r in rows) for tag in ("p0", "p1", "p2")} == dict.fromkeys(
        ("p0", "p1", "p2"), n
    )
    assert totals.cost == {"USD": Decimal("0.000001") * 3 * n} and totals.total_tokens == 15 * 3 * n
    with sqlite3.connect(path) as conn:
        spend = conn.execute("SELECT key, tokens, cost FROM ledger_spend ORDER BY key").fetchall()
    per_key = {k: sum(1 for r in rows if r.key == k) for k in ("k0", "k1", "k2")}
    assert [(k, t, Decimal(c)) for k, t, c in spend] == [
        (k, 15 * c, Decimal("0.000001") * c) for k, c in per_key.items()
    ]


async def test_settle_replaces_each_hold_by_its_row_in_one_batch(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    budget = Budget("openai", max_tokens=30)
    at = datetime.now(UTC)
    holds = [
        await ledger.reserve([budget], at=at, provider="openai", model="m", key=None, tokens=15, cost=None)
        for _ in range(2)
    ]
    with pytest.raises(BudgetExceeded, match="budget 'openai'"):
        await ledger.reserve([budget], at=at, provider="openai", model="m", key=None, tokens=1, cost=None)
    before = ledger.batches
    # both settle together (one batch): each row replaces its hold; the spend is the rows' 2 x 3 tokens
    stored = await asyncio.gather(
        *(ledger.settle(h, a_row(i, at=at, input_tokens=2, output_tokens=1)) for i, h in enumerate(holds))
    )
    assert ledger.batches == before + 1 and len({r.id for r in stored}) == 2
    with sqlite3.connect(ledger.path) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_holds").fetchone() == (0,)
    await ledger.reserve([budget], at=at, provider="openai", model="m", key=None, tokens=24, cost=None)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve([budget], at=at, provider="openai", model="m", key=None, tokens=1, cost=None)
    await ledger.aclose()


async def test_a_bad_row_in_a_batch_fails_only_its_own_caller(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    await ledger.rows()
    bad = a_row(1, provider=None)  # NOT NULL: the database refuses it
    results = await asyncio.gather(
        ledger.record(a_row(0)), ledger.record(bad), ledger.record(a_row(2)), return_exceptions=True
    )
    assert isinstance(results[1], sqlite3.IntegrityError), results
    good = [r for r in results if isinstance(r, LedgerRow)]
    assert len(good) == 2
    rows = await ledger.rows()
    assert [r.id for r in rows] == [r.id for r in good]  # written once each, the bad one not at all
    assert (await ledger.totals()).total_tokens == 30
    await ledger.aclose()


async def test_a_read_sees_the_rows_queued_before_it(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "ledger.db", batch_size=2)
    writes = [asyncio.ensure_future(ledger.record(a_row(i))) for i in range(5)]
    await asyncio.sleep(0)  # queued, none committed yet
    assert len(await ledger.rows()) == 5
    assert all(w.done() for w in writes) and ledger.batches == 3  # 5 rows in batches of at most 2
    await ledger.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await ledger.record(a_row(9))


def test_batch_size_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SQLiteLedger(tmp_path / "x.db", batch_size=0)
