"""Opening a SQLite store while another connection is writing to the same new file.

Switching a file to WAL mode needs an exclusive lock, and SQLite refuses it at once ("database is
locked"), without waiting in its busy handler, while another connection holds a write lock on a file
still in rollback mode: what happens when several processes open one new ledger together. ``use_wal``
(and so both SQLite stores) waits that out; these tests hold the lock with a real second connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay._sqlite_thread import use_wal
from llmrelay.gateway.keys_sqlite import SQLiteKeys
from llmrelay.metering import SQLiteLedger


class Writer:
    """A connection in a write transaction on ``path`` (a new file, rollback journal) until ``release``."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("CREATE TABLE IF NOT EXISTS other (a)")
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO other VALUES (1)")

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, lambda: self.conn.execute("COMMIT"))
        timer.start()
        return timer


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    held = Writer(tmp_path / "store.db")
    yield held
    held.conn.close()


def test_sqlite_itself_refuses_the_switch_at_once(tmp_path: Path, writer: Writer) -> None:
    other = sqlite3.connect(tmp_path / "store.db", timeout=5, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("PRAGMA journal_mode=WAL")
    assert time.monotonic() - started < 1  # the 5 s busy timeout was not used: why use_wal exists
    other.close()


def test_use_wal_waits_for_the_writer(tmp_path: Path, writer: Writer) -> None:
    other = sqlite3.connect(tmp_path / "store.db", timeout=5, isolation_level=None)
    timer = writer.release_after(0.2)
    started = time.monotonic()
    use_wal(other, 5.0)
    timer.join()
    assert 0.15 < time.monotonic() - started < 3
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_use_wal_gives_up_after_its_timeout(tmp_path: Path, writer: Writer) -> None:
    other = sqlite3.connect(tmp_path / "store.db", timeout=5, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(other, 0.3)
    assert time.monotonic() - started < 1.5
    other.close()


async def test_a_ledger_opens_while_another_connection_writes(tmp_path: Path, writer: Writer) -> None:
    ledger = SQLiteLedger(tmp_path / "store.db", busy_timeout=5.0)
    timer = writer.release_after(0.2)
    try:
        assert await ledger.rows() == []  # opened (WAL, schema) once the writer committed
    finally:
        await ledger.aclose()
        await asyncio.to_thread(timer.join)


async def test_a_key_store_opens_while_another_connection_writes(tmp_path: Path, writer: Writer) -> None:
    keys = SQLiteKeys(tmp_path / "store.db", busy_timeout=5.0)
    timer = writer.release_after(0.2)
    try:
        assert await keys.load() == []
    finally:
        await keys.aclose()
        await asyncio.to_thread(timer.join)
