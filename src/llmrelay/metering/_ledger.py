"""``UsageLedger``: the one interface a ledger store implements (memory, SQLite; PostgreSQL later).

Every method is async, so a store over a network database fits as well as one over a file. Rows get
their id from the store. ``reserve`` is the only method that decides anything, and it must be atomic:
among concurrent callers (tasks, threads, and, for a shared store, processes) the check of every budget
and the insertion of the hold happen as one step, so calls in flight never overspend together. A SQL
store does it in one write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level
advisory lock, or ``SERIALIZABLE``). ``settle`` records the row and drops the hold in one transaction,
so the spend is never counted twice nor lost between the two.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ._model import Budget, Hold, LedgerRow, Totals, totals_of

__all__ = ["NowaitLedger", "QueuedRows", "TotalsFromRows", "UsageLedger"]


class UsageLedger(Protocol):
    """Rows of usage and cost, and the holds of calls in flight against budgets."""

    async def record(self, row: LedgerRow) -> LedgerRow:
        """Store ``row`` (its ``id`` is ignored) and return it with the id the store gave it."""
        ...

    async def rows(
        self,
        *,
        since: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        """The rows at or after ``since`` that match every filter given, oldest first; with ``limit``,
        the most recent ``limit`` of them."""
        ...

    async def totals(
        self,
        *,
        since: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        key: str | None = None,
    ) -> Totals:
        """The sums of the rows ``rows`` would return (without a limit)."""
        ...

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
        """Atomically check that a call of about ``tokens`` and ``cost`` fits every budget in ``budgets``
        (their spend in the period of ``at`` plus the holds of calls in flight) and hold that much for it;
        raise ``BudgetExceeded`` (for the first budget it would exceed) and hold nothing otherwise."""
        ...

    async def settle(self, hold: Hold | None, row: LedgerRow) -> LedgerRow:
        """The call of ``hold`` ended: record ``row`` (whatever its outcome) and drop the hold, together.
        ``hold=None`` is ``record(row)``."""
        ...

    async def release(self, hold: Hold) -> None:
        """Drop ``hold`` and record nothing (a call that was never sent)."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources (idempotent)."""
        ...


class NowaitLedger(Protocol):
    """A ledger that can take a row without a task per write (``MemoryLedger``, ``SQLiteLedger``,
    ``PostgresLedger``): ``RowWrites`` uses it when the ledger has it, else it runs ``settle`` in a task."""

    def settle_nowait(self, hold: Hold | None, row: LedgerRow) -> asyncio.Future[None] | None:
        """``settle(hold, row)`` without waiting: the row is taken (queued, or written) before this returns,
        and a later ``aclose`` (or the store's ``flush``) writes it. ``None``: it is written already;
        otherwise the future ends when it is committed (``None``), or with the error that lost it. Raises
        (the row is not taken) when the ledger is closed."""
        ...


class TotalsFromRows(ABC):
    """``totals`` as the sum of what ``rows`` returns: what each store does until one sums in its database."""

    @abstractmethod
    async def rows(
        self,
        *,
        since: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]: ...

    async def totals(
        self,
        *,
        since: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        key: str | None = None,
    ) -> Totals:
        return totals_of(await self.rows(since=since, provider=provider, model=model, key=key))


class QueuedRows(TotalsFromRows):
    """A store whose writer takes rows from a queue (``SQLiteLedger``, ``PostgresLedger``): a row is queued
    by ``_queue_row``, and ``settle_nowait`` and the awaited path both go through it."""

    @abstractmethod
    def _queue_row(self, hold: Hold | None, row: LedgerRow, want_row: bool) -> asyncio.Future[Any]:
        """Queue ``row`` (and the drop of ``hold``) for the writer; the future ends when its batch is
        committed: with the stored row when ``want_row``, else ``None``; or with the error that failed it."""

    async def _enqueue(self, hold: Hold | None, row: LedgerRow) -> LedgerRow:
        # Shielded: a cancelled caller stops waiting; its row is still written.
        stored: LedgerRow = await asyncio.shield(self._queue_row(hold, row, True))
        return stored

    def settle_nowait(self, hold: Hold | None, row: LedgerRow) -> asyncio.Future[None]:
        """``settle`` without waiting (see ``NowaitLedger``): the row is queued for the writer; the future
        ends when its batch is committed, or with the error that failed it."""
        return self._queue_row(hold, row, False)
