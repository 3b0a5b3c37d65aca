"""Gateway keys on a real SQLite file and a real PostgreSQL server, and the ``keys`` and ``usage`` commands.

``store`` is parametrized over both backends. Secrets must never be stored (the DB is read directly to
check), authentication compares hashes in constant time, revocation reaches another process's store
within its TTL (an injected clock stands in for the wait), and the commands run as subprocesses.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from conftest_postgres import postgres_db, postgres_server
from llmrelay import ConfigError
from llmrelay.gateway import keys as keys_module
from llmrelay.gateway._hooks import Authenticator, Caller
from llmrelay.gateway.keys import KeyStore, hash_secret, key_backend, open_key_store
from llmrelay.metering import LedgerRow, SQLiteLedger

__all__ = ["postgres_db", "postgres_server"]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("postgres_db")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[KeyStore]:
    keys = open_key_store(store_url)
    try:
        yield keys
    finally:
        await keys.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def stored_rows(url: str) -> list[tuple[str, ...]]:
    """Every stored column of every key, as text, read straight from the database."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [tuple(map(str, r)) for r in conn.execute("SELECT * FROM gateway_keys")]
    conn = await asyncpg.connect(url)
    try:
        return [tuple(map(str, r.values())) for r in await conn.fetch("SELECT * FROM gateway_keys")]
    finally:
        await conn.close()


async def test_create_list_authenticate_and_revoke(store: KeyStore, store_url: str) -> None:
    auth: Authenticator = store  # the gateway's seam (mypy checks it in src: keys._authenticator)
    assert auth.open  # no keys yet: the gateway would serve the anonymous caller (loopback only)
    key, secret = await store.create(
        "team-a", models=["openai/*", "fast"], rpm=60, tpm=10_000, max_cost="5.50", period="day"
    )
    assert not store.open
    assert secret.startswith("llmr_") and len(secret) == 48 and key.prefix == secret[:11]
    assert secret not in repr(key) and secret not in repr(store)
    caller = await store.authenticate(secret)
    assert caller == Caller(
        key_id=key.id,
        name="team-a",
        allowed_models=("openai/*", "fast"),
        requests_per_minute=60.0,
        tokens_per_minute=10_000.0,
        max_cost=Decimal("5.50"),
        max_tokens=None,
        budget_period="day",
    )
    assert caller.allows("openai/gpt-4o") and caller.allows("fast") and not caller.allows("anthropic/claude")
    for wrong in (None, "", "llmr_", secret[:-1] + ("A" if secret[-1] != "A" else "B"), "Bearer " + secret, "x" * 999):
        assert await store.authenticate(wrong) is None
    other, other_secret = await store.create("bob")
    assert (await store.authenticate(other_secret)) == Caller(key_id=other.id, name="bob")
    with pytest.raises(ConfigError, match="already named 'bob'"):
        await store.create("bob")
    listed = await store.list()
    assert [(k.name, k.prefix, k.active) for k in listed] == [("team-a", key.prefix, True), ("bob", other.prefix, True)]
    assert listed[0].max_cost == Decimal("5.50") and listed[0].created.tzinfo is not None

    revoked = await store.revoke("team-a")
    assert revoked.id == key.id and revoked.revoked is not None
    assert await store.authenticate(secret) is None  # at once in the process that revoked it
    assert await store.authenticate(other_secret) is not None
    with pytest.raises(ConfigError, match="no active gateway key is named 'team-a'"):
        await store.revoke("team-a")
    await store.revoke(other.id)  # by id
    again, _ = await store.create("bob")  # a revoked key's name may be used again
    assert [k.name for k in await store.list(include_revoked=False)] == ["bob"] and again.id != other.id
    assert len(await store.list()) == 3

    # Only hashes are stored: no column of any row holds a secret, and the hashes are there.
    rows = await stored_rows(store_url)
    text = " ".join(" ".join(r) for r in rows)
    assert secret not in text and other_secret not in text and secret[11:] not in text
    assert hash_secret(secret) in text and hash_secret(other_secret) in text


async def test_authentication_compares_the_whole_hash_in_constant_time(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, secret = await store.create("alice")
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    assert await store.authenticate(secret) is not None
    assert seen == [(hash_secret(secret).encode(), hash_secret(secret).encode())]


async def test_revocation_elsewhere_takes_effect_within_the_ttl(store_url: str) -> None:
    clock = Clock()
    gateway = KeyStore(key_backend(store_url), ttl=5.0, clock=clock)  # a gateway's store
    admin = open_key_store(store_url)  # `llmrelay keys` in another process
    try:
        await gateway.refresh()
        assert gateway.open
        key, secret = await admin.create("carol")
        assert await gateway.authenticate(secret) is None  # the snapshot is 0 s old: not seen yet
        clock.now += 5.0
        assert (await gateway.authenticate(secret)) == key.caller()  # seen once the TTL passed
        assert not gateway.open
        await admin.revoke("carol")
        clock.now += 4.9
        assert await gateway.authenticate(secret) is not None  # within the TTL: still cached
        clock.now += 0.1
        assert await gateway.authenticate(secret) is None  # the TTL passed: revoked
        # concurrent requests on a stale snapshot share one reload
        clock.now += 10
        loads = 0
        real_load = gateway.backend.load

        async def counting_load(*, include_revoked: bool = False) -> list[tuple[keys_module.GatewayKey, str]]:
            nonlocal loads
            loads += 1
            return await real_load(include_revoked=include_revoked)

        gateway.backend.load = counting_load  # type: ignore[method-assign]
        results = await asyncio.gather(*(gateway.authenticate(secret) for _ in range(20)))
        assert results == [None] * 20 and loads == 1
    finally:
        await gateway.aclose()
        await admin.aclose()


async def test_an_open_gateway_closes_once_a_key_appears_elsewhere(store_url: str) -> None:
    clock = Clock()
    gateway = KeyStore(key_backend(store_url), ttl=5.0, clock=clock)
    admin = open_key_store(store_url)
    try:
        gateway.refresh_blocking()
        assert gateway.open
        await admin.create("dave")
        clock.now += 5.0
        assert gateway.open  # answered from the stale snapshot, and a reload starts in the background
        for _ in range(200):
            if not gateway.open:
                break
            await asyncio.sleep(0.01)
        assert not gateway.open
    finally:
        await gateway.aclose()
        await admin.aclose()


async def test_bad_keys_and_urls_are_clear_errors(tmp_path: Path) -> None:
    store = open_key_store(f"sqlite:///{tmp_path / 'k.db'}")
    for bad, why in [
        ({"name": "has space"}, "key name is 1-64 letters"),
        ({"name": "ok", "rpm": 0}, "rpm must be a positive number"),
        ({"name": "ok", "max_cost": "lots"}, "max_cost must be a decimal"),
        ({"name": "ok", "period": "day"}, "needs a budget"),
        ({"name": "ok", "models": []}, "at least one model"),
    ]:
        with pytest.raises(ConfigError, match=why):
            await store.create(**bad)  # type: ignore[arg-type]
    await store.aclose()
    for url, why in [
        ("redis://x", "unknown key store URL"),
        ("sqlite://keys.db", "three slashes"),
        (f"sqlite:///{tmp_path}/missing/dir/keys.db", "directory of the key store does not exist"),
    ]:
        with pytest.raises(ConfigError, match=why):
            open_key_store(url)


# -- the commands ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No developer configuration, and a user data directory under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "LLMRELAY_CONFIG"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["LLMRELAY_CONFIG"] = str(tmp_path / "empty.toml")
    (tmp_path / "empty.toml").write_text("")
    yield env


def llmrelay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_keys_commands_print_the_secret_once_and_never_again(
    cli_env: dict[str, str], tmp_path: Path, postgres_db: str
) -> None:
    for store in (None, postgres_db):
        extra = [] if store is None else ["--store", store]
        created = llmrelay(cli_env, "keys", "create", "team-a", "--models", "openai/*,fast", "--rpm", "60",
                           "--max-cost", "5", "--period", "day", *extra)  # fmt: skip
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()
        assert secret.startswith("llmr_") and created.stdout.count("llmr_") == 1 and secret not in created.stderr
        assert "shown only once" in created.stderr
        listed = llmrelay(cli_env, "keys", "list", *extra)
        assert listed.returncode == 0, listed.stderr
        assert "team-a" in listed.stdout and secret[:11] in listed.stdout and secret not in listed.stdout
        assert "max cost 5 USD/day" in listed.stdout and "openai/*,fast" in listed.stdout
        (row,) = [json.loads(line) for line in llmrelay(cli_env, "keys", "list", "--json", *extra).stdout.splitlines()]
        assert row["name"] == "team-a" and row["revoked"] is None and secret not in json.dumps(row)
        duplicate = llmrelay(cli_env, "keys", "create", "team-a", *extra)
        assert duplicate.returncode == 3 and "already named 'team-a'" in duplicate.stderr
        revoked = llmrelay(cli_env, "keys", "revoke", "team-a", *extra)
        assert revoked.returncode == 0 and "within 5 s" in revoked.stderr and secret not in revoked.stderr
        after = [json.loads(line) for line in llmrelay(cli_env, "keys", "list", "--json", *extra).stdout.splitlines()]
        assert after[0]["revoked"] is not None
        again = llmrelay(cli_env, "keys", "revoke", "team-a", *extra)
        assert again.returncode == 3 and "no active gateway key" in again.stderr
    # without --store: the default file in the user data directory
    assert (tmp_path / "data" / "llmrelay" / "keys.db").is_file()


def test_usage_command_groups_the_ledger_by_key_model_and_day(cli_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "data" / "llmrelay" / "ledger.db"
    path.parent.mkdir(parents=True)

    def row(day: int, key: str | None, model: str, cost: str | None, outcome: str = "ok") -> LedgerRow:
        return LedgerRow(id=None, at=datetime(2025, 6, day, 10, tzinfo=UTC), provider="openai", model=model, key=key,
                         input_tokens=100, output_tokens=10, cost=None if cost is None else Decimal(cost),
                         outcome=outcome)  # type: ignore[arg-type]  # fmt: skip

    async def fill() -> None:
        ledger = SQLiteLedger(path)
        for r in [
            row(1, "alice", "gpt-4o", "0.001"),
            row(1, "alice", "gpt-4o-mini", "0.0001"),
            row(2, "bob", "gpt-4o", "0.002", outcome="error"),
            row(3, None, "mine", None),
        ]:
            await ledger.record(r)
        await ledger.aclose()

    asyncio.run(fill())
    by_key = llmrelay(cli_env, "usage")
    assert by_key.returncode == 0, by_key.stderr
    lines = [line.split() for line in by_key.stdout.splitlines()]
    assert lines[0] == ["KEY", "REQUESTS", "OK", "FAILED", "INPUT", "OUTPUT", "COST", "UNPRICED"]
    assert lines[1:] == [
        ["(no", "key)", "1", "1", "0", "100", "10", "-", "1"],
        ["alice", "2", "2", "0", "200", "20", "0.0011", "USD", "0"],
        ["bob", "1", "0", "1", "100", "10", "0.002", "USD", "0"],
        ["TOTAL", "4", "3", "1", "400", "40", "0.0031", "USD", "1"],
    ]
    by_model = llmrelay(cli_env, "usage", "--by", "model", "--json")
    groups = {g["model"]: g for g in map(json.loads, by_model.stdout.splitlines())}
    assert sorted(groups) == ["openai/gpt-4o", "openai/gpt-4o-mini", "openai/mine"]
    assert groups["openai/gpt-4o"]["requests"] == 2 and groups["openai/gpt-4o"]["cost"] == {"USD": "0.003"}
    assert groups["openai/mine"]["unpriced"] == 1 and groups["openai/mine"]["cost"] == {}
    by_day = llmrelay(
        cli_env, "usage", "--by", "day", "--since", "2025-06-02", "--json", "--ledger", f"sqlite:///{path}"
    )
    assert [(g["day"], g["requests"]) for g in map(json.loads, by_day.stdout.splitlines())] == [
        ("2025-06-02", 1),
        ("2025-06-03", 1),
    ]
    bad = llmrelay(cli_env, "usage", "--since", "yesterday")
    assert bad.returncode == 2 and "--since must be a date" in bad.stderr
