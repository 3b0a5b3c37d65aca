"""Metering end to end: ``Metered`` over real fake upstreams (OpenAI wire), on a memory and a SQLite ledger.

Most tests run on both stores (``ledger`` is parametrized; the SQLite one is a file under ``tmp_path``).
Requests are ``REQ``: "Hello" (5 characters -> 1 token) and ``max_tokens=60``, an estimate of 61 tokens;
the fake replies report usage ``(1, 60)`` unless a test says otherwise, so estimates are exact and budget
arithmetic can be checked to the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from llmrelay import (
    BudgetExceeded,
    ChatRequest,
    ConfigError,
    Fallback,
    Message,
    NetworkError,
    OpenAIProvider,
    PriceOverride,
    Retrying,
    ServerError,
    Usage,
    cost_of,
)
from llmrelay._policy import should_fail_over, should_retry
from llmrelay.metering import (
    SCHEMA_VERSION,
    Budget,
    LedgerRow,
    MemoryLedger,
    Metered,
    PostgresLedger,
    SQLiteLedger,
    UsageLedger,
    open_ledger,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT

REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=60)
EXACT = (1, 60)  # the usage that equals REQ's estimate
KEY = "sk-meter-test-key-0000000"


def reply(stream: bool = False, usage: tuple[int, int] = EXACT, model: str = "gpt-4o-mini", **kw: object) -> Reply:
    """The kit's text reply, naming ``model`` as the model that answered."""
    base = KIT.text("fine", stream=stream, usage=usage)
    chunks = tuple(c.replace(b'"test-model"', f'"{model}"'.encode()) for c in base.chunks)
    return dataclasses.replace(base, chunks=chunks, **kw)  # type: ignore[arg-type]


def openai(up: FakeUpstream, model: str = "gpt-4o-mini", name: str = "openai") -> OpenAIProvider:
    return OpenAIProvider(model, base_url=up.url("/v1"), api_key=KEY, name=name)


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageLedger]:
    store: UsageLedger = MemoryLedger() if request.param == "memory" else SQLiteLedger(tmp_path / "ledger.db")
    try:
        yield store
    finally:
        await store.aclose()


class Clock:
    """An injected wall clock for budget periods."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def until(condition: object, within: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` is true."""
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- rows -------------------------------------------------------------------------------------------


async def test_rows_have_the_real_usage_and_the_genai_prices_cost(upstream: FakeUpstream, ledger: UsageLedger) -> None:
    upstream.add(reply(False, usage=(1000, 200)), reply(True, usage=(1000, 200)))
    async with Metered(openai(upstream), ledger=ledger, key="team-a") as provider:
        whole = await provider.chat(REQ)
        async with provider.chat_stream(REQ) as stream:
            streamed = await stream.until_done()
    assert whole.usage == streamed.usage == Usage(1000, 200)
    rows = await ledger.rows()
    assert [r.id for r in rows] == [1, 2] and all(isinstance(r.id, int) for r in rows)
    for row in rows:
        # gpt-4o-mini: $0.15 / M input, $0.60 / M output -> 1000 * 0.15e-6 + 200 * 0.6e-6
        assert row.cost == Decimal("0.00027") and row.currency == "USD"
        assert row.cost_source == "genai-prices 0.2.3 (openai/gpt-4o-mini)" and row.cost_unknown is None
        assert (row.provider, row.model, row.key, row.outcome, row.error_kind) == (
            "openai",
            "gpt-4o-mini",
            "team-a",
            "ok",
            None,
        )
        assert (row.input_tokens, row.output_tokens, row.attempts) == (1000, 200, 0)
        assert row.at.tzinfo is UTC and row.elapsed_ms >= 0
    totals = await ledger.totals(provider="openai")
    assert totals.cost == {"USD": Decimal("0.00054")} and totals.unpriced == 0
    assert (totals.rows, totals.ok, totals.input_tokens, totals.output_tokens) == (2, 2, 2000, 400)
    assert (await ledger.totals(key="nobody")).rows == 0


async def test_a_price_override_gives_exact_decimal_costs(upstream: FakeUpstream, ledger: UsageLedger) -> None:
    upstream.route("/v1/chat/completions", reply(usage=(3000, 700), model="my-model"))
    prices = {"work/my-model": PriceOverride(Decimal("0.3"), Decimal("1.2"))}
    async with Metered(openai(upstream, "my-model", name="work"), ledger=ledger, overrides=prices) as provider:
        for _ in range(3):
            await provider.chat(REQ)
    row = (await ledger.rows())[-1]
    assert row.cost == Decimal("0.00174") and row.cost_source == "override work/my-model"  # 3000*0.3 + 700*1.2 / M
    assert (await ledger.totals()).cost == {"USD": Decimal("0.00522")}
    assert cost_of(Usage(3000, 700), "work", "my-model", overrides=prices).total == row.cost


async def test_an_unpriceable_call_is_recorded_with_its_reason_and_counted_as_unpriced(
    upstream: FakeUpstream, ledger: UsageLedger
) -> None:
    upstream.route("/v1/chat/completions", reply(model="mine"))
    budget = Budget("*", max_cost=Decimal("0.000001"))  # a cost cap does not stop what cannot be priced
    async with Metered(openai(upstream, "mine", name="work"), ledger=ledger, budgets=[budget]) as provider:
        await provider.chat(REQ)
        await provider.chat(REQ)
    rows = await ledger.rows()
    assert [r.cost for r in rows] == [None, None]
    assert rows[0].cost_unknown == "'work' is a provider with no public price list: price it with a PriceOverride"
    totals = await ledger.totals()
    assert (totals.unpriced, totals.cost, totals.total_tokens) == (2, {}, 122)


async def test_errors_write_error_rows_and_a_retry_below_counts_its_attempts(
    upstream: FakeUpstream, ledger: UsageLedger
) -> None:
    upstream.add(KIT.error(500))
    async with Metered(openai(upstream), ledger=ledger) as provider:
        with pytest.raises(ServerError):
            await provider.chat(REQ)
    upstream.add(KIT.error(500), reply())
    upstream.add(KIT.error(500), KIT.error(503))

    async def no_sleep(_: float) -> None:
        return None

    retrying = Retrying(openai(upstream), max_attempts=2, sleep=no_sleep)
    async with Metered(retrying, ledger=ledger) as provider:
        await provider.chat(REQ)
        with pytest.raises(Exception, match="all 2 attempts failed"):
            await provider.chat(REQ)
    first, second, third = await ledger.rows()
    assert (first.outcome, first.error_kind, first.attempts, first.input_tokens, first.cost) == (
        "error",
        "server",
        0,
        None,
        None,
    )
    assert (second.outcome, second.attempts, second.output_tokens) == ("ok", 1, 60)
    assert (third.outcome, third.error_kind, third.attempts, third.provider) == ("error", "overloaded", 1, "openai")
    totals = await ledger.totals()
    assert (totals.rows, totals.ok, totals.errors) == (3, 1, 2)


async def test_a_stream_broken_in_the_middle_writes_an_error_row(upstream: FakeUpstream, ledger: UsageLedger) -> None:
    broken = reply(True)
    upstream.add(dataclasses.replace(broken, cut_after=len(broken.chunks[0]) + 10))
    async with Metered(openai(upstream), ledger=ledger) as provider:
        with pytest.raises(NetworkError):
            async with provider.chat_stream(REQ) as stream:
                async for _ in stream:
                    pass
    (row,) = await ledger.rows()
    assert (row.outcome, row.error_kind, row.provider, row.model) == ("error", "network", "openai", "gpt-4o-mini")


async def test_cancelled_calls_write_cancelled_rows_and_release_their_hold(
    upstream: FakeUpstream, ledger: UsageLedger
) -> None:
    budget = Budget("openai", max_tokens=61)  # room for one call at a time
    upstream.add(reply(headers_delay=10.0), reply(True, chunk_delay=0.3), reply())
    async with Metered(openai(upstream), ledger=ledger, budgets=[budget]) as provider:
        task = asyncio.create_task(provider.chat(REQ))
        await until(lambda: len(upstream.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with provider.chat_stream(REQ) as stream:  # the hold was released: this one is accepted
            async for _ in stream:
                break  # closed before its Done
        await provider.chat(REQ)  # and so was this one's
    rows = await ledger.rows()
    assert [r.outcome for r in rows] == ["cancelled", "cancelled", "ok"]
    assert rows[0].input_tokens is None and rows[2].output_tokens == 60


async def test_a_task_cancelled_again_while_its_row_is_written_still_writes_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    upstream.add(reply(headers_delay=10.0))
    provider = Metered(openai(upstream), ledger=ledger)
    task = asyncio.create_task(provider.chat(REQ))
    await until(lambda: len(upstream.requests) == 1)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # a second cancellation lands while the row is being written
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: not provider._pending)
    assert [r.outcome for r in await ledger.rows()] == ["cancelled"]
    await provider.aclose()
    await ledger.aclose()


# -- budgets ----------------------------------------------------------------------------------------


async def test_a_budget_blocks_the_call_that_would_exceed_it(upstream: FakeUpstream, ledger: UsageLedger) -> None:
    upstream.route("/v1/chat/completions", reply())
    budget = Budget("openai/gpt-4o-mini", max_tokens=3 * 61)
    async with Metered(openai(upstream), ledger=ledger, budgets=[budget]) as provider:
        for _ in range(3):
            await provider.chat(REQ)
        with pytest.raises(BudgetExceeded) as info:
            await provider.chat(REQ)
    error = info.value
    assert (error.scope, error.limit, error.spent, error.requested, error.period, error.unit) == (
        "openai/gpt-4o-mini",
        183,
        183,
        61,
        "total",
        "tokens",
    )
    assert error.kind == "budget_exceeded" and not error.retryable and error.provider == "openai"
    assert "raise the budget" in str(error) and "Fallback" in str(error)
    assert len(upstream.requests) == 3 and len(await ledger.rows()) == 3  # a refused call is not recorded
    assert not should_retry(error) and should_fail_over(error)


@pytest.mark.parametrize("cap", ["tokens", "cost"])
async def test_concurrent_calls_never_overspend_and_exact_estimates_use_the_whole_budget(
    upstream: FakeUpstream, ledger: UsageLedger, cap: str
) -> None:
    upstream.route("/v1/chat/completions", reply(headers_delay=0.05))  # all 32 are in flight together
    prices = {"openai": PriceOverride(Decimal("1"), Decimal("2"))}  # 1 * 1e-6 + 60 * 2e-6 per call
    per_call = Decimal("0.000121")
    n = 10
    budget = Budget("*", max_tokens=n * 61) if cap == "tokens" else Budget("*", max_cost=n * per_call)
    async with Metered(openai(upstream), ledger=ledger, budgets=[budget], overrides=prices) as provider:
        results = await asyncio.gather(*(provider.chat(REQ) for _ in range(32)), return_exceptions=True)
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(accepted) == n and len(refused) == 32 - n, results
    assert len(upstream.requests) == n
    totals = await ledger.totals()
    assert (totals.rows, totals.total_tokens, totals.cost) == (n, n * 61, {"USD": n * per_call})


async def test_a_day_budget_starts_again_the_next_utc_day(upstream: FakeUpstream, ledger: UsageLedger) -> None:
    upstream.route("/v1/chat/completions", reply())
    clock = Clock(datetime(2025, 3, 31, 23, 59, 0, tzinfo=UTC))
    day = Budget("openai", max_tokens=2 * 61, period="day")
    month = Budget("openai", max_tokens=3 * 61, period="month")
    async with Metered(openai(upstream), ledger=ledger, budgets=[day, month], clock=clock) as provider:
        await provider.chat(REQ)
        await provider.chat(REQ)
        with pytest.raises(BudgetExceeded) as info:
            await provider.chat(REQ)
        assert info.value.period == "day" and info.value.retry_after == 60.0
        assert "2025-04-01 00:00 UTC" in str(info.value)
        clock.now += timedelta(minutes=1)  # April 1st: a new day and a new month
        for _ in range(2):
            await provider.chat(REQ)
        clock.now += timedelta(days=1)
        await provider.chat(REQ)  # the day has room, the month had 3 * 61: now full
        with pytest.raises(BudgetExceeded) as info:
            await provider.chat(REQ)
        assert info.value.period == "month" and "2025-05-01 00:00 UTC" in str(info.value)
    rows = await ledger.rows(since=datetime(2025, 4, 1, tzinfo=UTC))
    assert len(rows) == 3 and len(await ledger.rows()) == 5
    assert [r.id for r in await ledger.rows(limit=2)] == [4, 5]


async def test_key_budgets_apply_to_the_key_only(upstream: FakeUpstream, ledger: UsageLedger) -> None:
    upstream.route("/v1/chat/completions", reply())
    budgets = [Budget("key:alice", max_tokens=61)]
    alice = Metered(openai(upstream), ledger=ledger, budgets=budgets, key="alice")
    bob = Metered(openai(upstream), ledger=ledger, budgets=budgets, key="bob")
    await alice.chat(REQ)
    with pytest.raises(BudgetExceeded, match="key:alice"):
        await alice.chat(REQ)
    await bob.chat(REQ)
    await bob.chat(REQ)
    assert (await ledger.totals(key="alice")).rows == 1 and (await ledger.totals(key="bob")).rows == 2
    await alice.aclose()
    await bob.aclose()


async def test_under_a_fallback_a_spent_budget_sends_the_call_to_the_next_provider(
    ledger: UsageLedger,
) -> None:
    async with FakeUpstream() as up_a, FakeUpstream() as up_b:
        up_b.route("/v1/chat/completions", reply(model="gpt-4o", usage=(1000, 200)))
        spent = Budget("openai/gpt-4o-mini", max_cost=Decimal("0"))
        a = Metered(openai(up_a, "gpt-4o-mini"), ledger=ledger, budgets=[spent])
        b = Metered(openai(up_b, "gpt-4o"), ledger=ledger)
        async with Fallback([a, b]) as provider:
            response = await provider.chat(REQ)
            async with provider.chat_stream(REQ) as stream:
                await stream.until_done()
        assert response.model == "gpt-4o" and [type(x.error) for x in response.attempts] == [BudgetExceeded]
        assert up_a.requests == [] and len(up_b.requests) == 2
    rows = await ledger.rows()
    assert [(r.provider, r.model, r.cost) for r in rows] == [("openai", "gpt-4o", Decimal("0.0045"))] * 2


# -- stores -----------------------------------------------------------------------------------------

CHILD = """
import asyncio, sys, time
from llmrelay import BudgetExceeded, ChatRequest, Message, OpenAIProvider
from llmrelay.metering import Budget, Metered, SQLiteLedger

async def main() -> None:
    path, base, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ledger = SQLiteLedger(path)
    provider = OpenAIProvider("gpt-4o-mini", base_url=base, api_key="sk-meter-test-key-0000000")
    metered = Metered(provider, ledger=ledger, budgets=[Budget("openai", max_tokens=20 * 61)])
    request = ChatRequest(messages=[Message.user("Hello")], max_tokens=60)
    while time.time() < start:  # both processes begin together
        await asyncio.sleep(0.002)
    accepted = 0
    for _ in range(30):
        try:
            await metered.chat(request)
            accepted += 1
        except BudgetExceeded:
            pass
    await metered.aclose()
    await ledger.aclose()
    print(accepted)

asyncio.run(main())
"""


async def test_two_processes_share_one_sqlite_ledger_and_budget(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.route("/v1/chat/completions", reply())
    path = tmp_path / "shared.db"
    start = time.time() + 2.0
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(path),
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
    assert sum(accepted) == 20, accepted  # each alone would take 20: shared, never over, all of it used
    assert len(upstream.requests) == 20
    ledger = SQLiteLedger(path)
    totals = await ledger.totals()
    await ledger.aclose()
    assert (totals.rows, totals.total_tokens) == (20, 20 * 61)


async def test_a_reopened_sqlite_file_still_has_its_rows(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.route("/v1/chat/completions", reply(usage=(1000, 200)))
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path)
    async with Metered(openai(upstream), ledger=ledger) as provider:
        await provider.chat(REQ)
        await provider.chat(REQ)
    before = await ledger.rows()
    await ledger.aclose()
    await ledger.aclose()  # idempotent
    again = open_ledger(f"sqlite:///{path}")
    assert await again.rows() == before and (await again.totals()).cost == {"USD": Decimal("0.00054")}
    stored = await again.record(dataclasses.replace(before[0], id=None))
    assert stored.id == 3
    await again.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM llmrelay_ledger_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_ledger_file_from_a_newer_llmrelay_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE llmrelay_ledger_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO llmrelay_ledger_schema VALUES (99)")
    ledger = SQLiteLedger(path)
    with pytest.raises(ConfigError, match="schema is version 99, newer than this llmrelay's"):
        await ledger.rows()
    await ledger.aclose()


async def test_a_record_without_a_meter_round_trips(ledger: UsageLedger) -> None:
    row = LedgerRow(
        id=None,
        at=datetime(2025, 1, 2, 3, 4, 5, 678901),  # naive: taken as UTC
        provider="anthropic",
        model="claude-x",
        key=None,
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=4,
        cache_write_tokens=1,
        reasoning_tokens=2,
        cost=Decimal("0.000000000000000001"),
        outcome="error",
        error_kind="overloaded",
        elapsed_ms=12,
        attempts=2,
    )
    stored = await ledger.record(row)
    assert stored == dataclasses.replace(row, id=stored.id) and stored.at.tzinfo is UTC
    assert await ledger.rows(provider="anthropic", model="claude-x") == [stored]
    assert await ledger.rows(since=datetime(2025, 1, 3, tzinfo=UTC)) == []


def test_ledger_urls() -> None:
    assert isinstance(open_ledger("memory"), MemoryLedger)
    relative = open_ledger("sqlite:///data/ledger.db")
    assert isinstance(relative, SQLiteLedger) and relative.path == Path("data/ledger.db")
    absolute = open_ledger("sqlite:////var/lib/llmrelay/ledger.db")
    assert isinstance(absolute, SQLiteLedger) and absolute.path == Path("/var/lib/llmrelay/ledger.db")
    postgres = open_ledger("postgresql://user:pw@db/llmrelay")
    assert isinstance(postgres, PostgresLedger) and "pw" not in repr(postgres)
    assert isinstance(open_ledger("postgres://db/llmrelay"), PostgresLedger)
    for bad, why in [
        ("redis://localhost", "unknown ledger URL"),
        ("sqlite://ledger.db", "three slashes"),
        ("sqlite:///", "three slashes"),
        ("sqlite:///data/", "names a directory"),
        ("", "empty"),
        ("ledger.db", "unknown ledger URL"),
    ]:
        with pytest.raises(ConfigError, match=why) as info:
            open_ledger(bad)
        assert 'expected "memory" or "sqlite:///PATH"' in str(info.value)


async def test_a_sqlite_file_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path}/no/such/dir/ledger.db")
    with pytest.raises(ConfigError, match="directory of the ledger file does not exist"):
        await ledger.totals()
    await ledger.aclose()


def test_budgets_are_validated() -> None:
    with pytest.raises(ValueError, match="caps nothing"):
        Budget("*")
    with pytest.raises(ValueError, match="period"):
        Budget("*", max_tokens=1, period="week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key:NAME"):
        Budget("key:", max_tokens=1)
    assert Budget("openai", max_cost=1).max_cost == Decimal(1)  # type: ignore[arg-type]
    model = Budget("openai/gpt-4o", max_tokens=1)
    assert model.applies("openai", "gpt-4o", None) and not model.applies("openai", "gpt-4o-mini", None)
    assert model.applies("openai", "gpt-4o-2024-08-06", None, requested_model="gpt-4o")
    assert not model.applies("groq", "gpt-4o", None)


async def test_a_call_cancelled_while_its_budget_is_checked_leaves_one_row_or_none(
    upstream: FakeUpstream, ledger: UsageLedger
) -> None:
    upstream.route("/v1/chat/completions", reply())
    budget = Budget("openai", max_tokens=61)
    provider = Metered(openai(upstream), ledger=ledger, budgets=[budget])
    task = asyncio.create_task(provider.chat(REQ))
    await asyncio.sleep(0)  # the task is now waiting on the store's decision
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await provider.aclose()  # waits for the late row
    assert [r.outcome for r in await ledger.rows()] == ["cancelled"] and upstream.requests == []
    async with Metered(openai(upstream), ledger=ledger, budgets=[budget]) as again:
        await again.chat(REQ)  # its hold was dropped
