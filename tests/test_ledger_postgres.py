"""The usage ledger on a real PostgreSQL server, and the gateway's columns (route, status, ttft) on every store.

The ``UsageLedger`` behaviours of ``test_metering.py`` run here again, unchanged, against a
``PostgresLedger`` on a fresh database (they are imported below; the ``ledger`` fixture of this module
replaces theirs). Then what only a shared database shows: two OS processes sharing one budget, rows
written in batches with none lost under concurrent load and a shutdown, the schema version, and the SQLite
file's migration from version 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from conftest_postgres import postgres_db, postgres_server
from llmrelay import ConfigError, ServerError
from llmrelay.metering import (
    SCHEMA_VERSION,
    LedgerRow,
    MemoryLedger,
    Metered,
    PostgresLedger,
    SQLiteLedger,
    UsageLedger,
    open_ledger,
)
from llmrelay.testing import FakeUpstream
from llmrelay.testing.openai_kit import KIT
from test_metering import (
    REQ,
    openai,
    reply,
    test_a_budget_blocks_the_call_that_would_exceed_it,
    test_a_call_cancelled_while_its_budget_is_checked_leaves_one_row_or_none,
    test_a_day_budget_starts_again_the_next_utc_day,
    test_a_price_override_gives_exact_decimal_costs,
    test_a_record_without_a_meter_round_trips,
    test_a_stream_broken_in_the_middle_writes_an_error_row,
    test_an_unpriceable_call_is_recorded_with_its_reason_and_counted_as_unpriced,
    test_cancelled_calls_write_cancelled_rows_and_release_their_hold,
    test_concurrent_calls_never_overspend_and_exact_estimates_use_the_whole_budget,
    test_errors_write_error_rows_and_a_retry_below_counts_its_attempts,
    test_key_budgets_apply_to_the_key_only,
    test_rows_have_the_real_usage_and_the_genai_prices_cost,
    test_under_a_fallback_a_spent_budget_sends_the_call_to_the_next_provider,
)

__all__ = [
    "postgres_db",
    "postgres_server",
    "test_a_budget_blocks_the_call_that_would_exceed_it",
    "test_a_call_cancelled_while_its_budget_is_checked_leaves_one_row_or_none",
    "test_a_day_budget_starts_again_the_next_utc_day",
    "test_a_price_override_gives_exact_decimal_costs",
    "test_a_record_without_a_meter_round_trips",
    "test_a_stream_broken_in_the_middle_writes_an_error_row",
    "test_an_unpriceable_call_is_recorded_with_its_reason_and_counted_as_unpriced",
    "test_cancelled_calls_write_cancelled_rows_and_release_their_hold",
    "test_concurrent_calls_never_overspend_and_exact_estimates_use_the_whole_budget",
    "test_errors_write_error_rows_and_a_retry_below_counts_its_attempts",
    "test_key_budgets_apply_to_the_key_only",
    "test_rows_have_the_real_usage_and_the_genai_prices_cost",
    "test_under_a_fallback_a_spent_budget_sends_the_call_to_the_next_provider",
]


@pytest.fixture
async def ledger(postgres_db: str) -> AsyncIterator[UsageLedger]:
    """Replaces ``test_metering``'s fixture for the tests imported above: a ``PostgresLedger``."""
    store = open_ledger(postgres_db)
    assert isinstance(store, PostgresLedger)
    try:
        yield store
    finally:
        await store.aclose()


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


# -- two processes, one budget --------------------------------------------------------------------------

CHILD = """
import asyncio, sys, time
from llmrelay import BudgetExceeded, ChatRequest, Message, OpenAIProvider
from llmrelay.metering import Budget, Metered, open_ledger

async def main() -> None:
    url, base, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ledger = open_ledger(url)
    provider = OpenAIProvider("gpt-4o-mini", base_url=base, api_key="sk-meter-test-key-0000000")
    metered = Metered(provider, ledger=ledger, budgets=[Budget("openai", max_tokens=20 * 61)])
    request = ChatRequest(messages=[Message.user("Hello")], max_tokens=60)
    await ledger.rows(limit=1)  # connected before the start
    while time.time() < start:
        await asyncio.sleep(0.002)

    async def worker() -> int:
        accepted = 0
        for _ in range(10):
            try:
                await metered.chat(request)
                accepted += 1
            except BudgetExceeded:
                pass
        return accepted

    accepted = sum(await asyncio.gather(*(worker() for _ in range(4))))  # 4 concurrent callers per process
    await metered.aclose()
    await ledger.aclose()
    print(accepted)

asyncio.run(main())
"""


async def test_two_processes_share_one_postgres_budget_exactly(upstream: FakeUpstream, postgres_db: str) -> None:
    upstream.route("/v1/chat/completions", reply())
    start = time.time() + 2.0
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            postgres_db,
            upstream.url("/v1"),
            repr(start),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [await asyncio.wait_for(proc.communicate(), 60.0) for proc in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err.decode()
    accepted = [int(out) for out, _err in outs]
    # 80 attempts for a budget of 20 calls: never over, and all of it used.
    assert sum(accepted) == 20, accepted
    assert len(upstream.requests) == 20
    ledger = PostgresLedger(postgres_db)
    totals = await ledger.totals()
    await ledger.aclose()
    assert (totals.rows, totals.total_tokens) == (20, 20 * 61)


# -- batches ------------------------------------------------------------------------------------------

WRITER = """
import asyncio, sys
from llmrelay.metering import open_ledger
from test_ledger_postgres import a_row

async def main() -> None:
    url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ledger = open_ledger(url)
    # n writes in flight at once, none awaited by its caller: aclose must still write them all
    tasks = [asyncio.ensure_future(ledger.record(a_row(i, route=tag))) for i in range(n)]
    await asyncio.sleep(0)
    await ledger.aclose()
    stored = [t.result() for t in tasks]
    print(len({r.id for r in stored}), ledger.batches)

asyncio.run(main())
"""


async def test_no_row_is_lost_under_concurrent_writers_and_batches_group_them(postgres_db: str) -> None:
    n = 400
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            postgres_db,
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
    ledger = PostgresLedger(postgres_db)
    rows = await ledger.rows()
    totals = await ledger.totals()
    await ledger.aclose()
    assert len(rows) == 3 * n and len({r.id for r in rows}) == 3 * n
    assert {tag: sum(r.route == tag for r in rows) for tag in ("p0", "p1", "p2")} == dict.fromkeys(
        ("p0", "p1", "p2"), n
    )
    assert totals.cost == {"USD": Decimal("0.000001") * 3 * n} and totals.total_tokens == 15 * 3 * n
    conn = await asyncpg.connect(postgres_db)
    try:
        spend = await conn.fetch("SELECT key, tokens, cost FROM ledger_spend ORDER BY key")
    finally:
        await conn.close()
    per_key = {k: sum(1 for r in rows if r.key == k) for k in ("k0", "k1", "k2")}
    assert [(r["key"], r["tokens"], r["cost"]) for r in spend] == [
        (k, 15 * c, Decimal("0.000001") * c) for k, c in per_key.items()
    ]


async def test_settle_replaces_the_hold_by_its_row_in_one_batch(postgres_db: str) -> None:
    from llmrelay.metering import Budget

    ledger = PostgresLedger(postgres_db)
    budget = Budget("openai", max_tokens=30)
    holds = [
        await ledger.reserve(
            [budget], at=datetime.now(UTC), provider="openai", model="m", key=None, tokens=15, cost=None
        )
        for _ in range(2)
    ]
    with pytest.raises(Exception, match="budget 'openai'"):
        await ledger.reserve(
            [budget], at=datetime.now(UTC), provider="openai", model="m", key=None, tokens=1, cost=None
        )
    # both settle together (one batch): each row replaces its hold; the spend is the rows' 2 x 3 tokens
    await asyncio.gather(*(ledger.settle(h, a_row(i, input_tokens=2, output_tokens=1)) for i, h in enumerate(holds)))
    conn = await asyncpg.connect(postgres_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_holds") == 0
    finally:
        await conn.close()
    await ledger.reserve([budget], at=datetime.now(UTC), provider="openai", model="m", key=None, tokens=24, cost=None)
    await ledger.aclose()


async def test_a_postgres_schema_from_a_newer_llmrelay_is_refused(postgres_db: str) -> None:
    conn = await asyncpg.connect(postgres_db)
    try:
        await conn.execute("CREATE TABLE llmrelay_ledger_schema (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO llmrelay_ledger_schema VALUES (99)")
    finally:
        await conn.close()
    ledger = PostgresLedger(postgres_db)
    with pytest.raises(ConfigError, match="schema is version 99, newer than this llmrelay's"):
        await ledger.rows()
    await ledger.aclose()


async def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    ledger = open_ledger("postgresql://app:hunter2-secret@127.0.0.1:1/llmrelay")
    with pytest.raises(ConfigError, match="cannot connect to the PostgreSQL ledger") as info:
        await ledger.totals()
    assert "hunter2" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert "hunter2" not in repr(ledger)
    await ledger.aclose()


# -- the gateway's columns, on every store ------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageLedger]:
    if request.param == "memory":
        store: UsageLedger = MemoryLedger()
    elif request.param == "sqlite":
        store = SQLiteLedger(tmp_path / "ledger.db")
    else:
        store = PostgresLedger(request.getfixturevalue("postgres_db"))
    try:
        yield store
    finally:
        await store.aclose()


async def test_metered_fills_route_status_and_time_to_first_event(
    upstream: FakeUpstream, any_ledger: UsageLedger
) -> None:
    upstream.add(reply(True, headers_delay=0.05), reply(), KIT.error(500), KIT.error(500))

    def status_of(exc: BaseException) -> int:
        return 502 if isinstance(exc, ServerError) else 500

    async with Metered(openai(upstream), ledger=any_ledger, route="/v1/messages", status_of=status_of) as provider:
        async with provider.chat_stream(REQ) as stream:
            await stream.until_done()
        await provider.chat(REQ)
        with pytest.raises(ServerError):
            await provider.chat(REQ)
    async with Metered(openai(upstream), ledger=any_ledger) as plain:  # a library call: no route, no status
        with pytest.raises(ServerError):
            await plain.chat(REQ)
    streamed, whole, failed, library = await any_ledger.rows()
    assert (streamed.route, streamed.status) == ("/v1/messages", 200)
    assert streamed.ttft_ms is not None and 40 <= streamed.ttft_ms <= streamed.elapsed_ms + 1
    assert (whole.route, whole.status, whole.ttft_ms) == ("/v1/messages", 200, None)
    assert (failed.status, failed.outcome) == (502, "error")
    assert (library.route, library.status, library.ttft_ms) == (None, None, None)


async def test_a_version_1_sqlite_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:  # the tables as llmrelay wrote them at schema version 1
        conn.executescript(
            """
            CREATE TABLE llmrelay_ledger_schema (version INTEGER NOT NULL);
            INSERT INTO llmrelay_ledger_schema VALUES (1);
            CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, provider TEXT NOT NULL,
                model TEXT, requested_model TEXT, key TEXT, input_tokens INTEGER, output_tokens INTEGER,
                cache_read_tokens INTEGER, cache_write_tokens INTEGER, reasoning_tokens INTEGER, cost TEXT,
                currency TEXT NOT NULL, cost_source TEXT NOT NULL, cost_unknown TEXT,
                outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error', 'cancelled')), error_kind TEXT,
                elapsed_ms INTEGER NOT NULL, attempts INTEGER NOT NULL);
            CREATE TABLE ledger_spend (day TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                requested_model TEXT NOT NULL, key TEXT NOT NULL, currency TEXT NOT NULL, tokens INTEGER NOT NULL,
                cost TEXT NOT NULL, PRIMARY KEY (day, provider, model, requested_model, key, currency));
            CREATE TABLE ledger_holds (id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, model TEXT,
                key TEXT, tokens INTEGER NOT NULL, cost TEXT, currency TEXT NOT NULL, expires REAL NOT NULL);
            INSERT INTO ledger (at, provider, model, key, input_tokens, output_tokens, cost, currency, cost_source,
                outcome, elapsed_ms, attempts)
                VALUES ('2025-01-02T03:04:05.000000Z', 'openai', 'gpt-4o', 'old', 7, 3, '0.5', 'USD', 'x', 'ok', 9, 0);
            """
        )
    ledger = SQLiteLedger(path)
    (old,) = await ledger.rows()
    assert (old.key, old.input_tokens, old.cost, old.route, old.status, old.ttft_ms) == (
        "old",
        7,
        Decimal("0.5"),
        None,
        None,
        None,
    )
    new = await ledger.record(a_row(route="/api/chat", status=429, ttft_ms=12))
    assert (await ledger.rows())[-1] == new and (new.route, new.status, new.ttft_ms) == ("/api/chat", 429, 12)
    await ledger.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM llmrelay_ledger_schema").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == 2
