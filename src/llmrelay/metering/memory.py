"""``MemoryLedger``: the usage ledger in this process's memory (lost when it exits).

Each method runs to its end without awaiting and under a lock, so ``reserve``'s check-and-hold is atomic
among the tasks of an event loop and among threads. Holds expire after ``hold_ttl`` seconds like a shared
store's (see ``SQLiteLedger``), so both behave alike. A row's id is its place in the ledger (from 1); it
is set on the stored row when the row is first returned (``record``, ``settle``, ``rows``), so a write
that nobody reads back (``settle_nowait``) copies nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from ._ledger import TotalsFromRows
from ._model import Budget, Hold, LedgerRow, Spend, SpendKey, check_all, matches

__all__ = ["MemoryLedger"]


class MemoryLedger(TotalsFromRows):
    """A ``UsageLedger`` in memory; see the module docstring."""

    def __init__(self, *, hold_ttl: float = 3600.0, wall: Callable[[], float] = time.time) -> None:
        self.hold_ttl = hold_ttl
        self._wall = wall
        self._rows: list[LedgerRow] = []
        self._spend: dict[SpendKey, Spend] = {}
        self._holds: dict[int, Hold] = {}
        self._hold_ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryLedger(rows={len(self._rows)}, holds={len(self._holds)})"

    def _add(self, row: LedgerRow) -> int:
        """Store ``row``; its id is its place in ``_rows`` plus one (the row is given it when read)."""
        self._rows.append(row)
        key = Spend.key_of(row)
        bucket = self._spend.get(key)
        if bucket is None:
            bucket = self._spend[key] = Spend()
        bucket.tokens += row.total_tokens
        if row.cost is not None:
            bucket.cost += row.cost
        return len(self._rows)

    def _stored(self, index: int) -> LedgerRow:
        """The row at ``index`` with its id (given once, when it is first read)."""
        row = self._rows[index]
        if row.id != index + 1:
            row = self._rows[index] = dataclasses.replace(row, id=index + 1)
        return row

    async def record(self, row: LedgerRow) -> LedgerRow:
        with self._lock:
            return self._stored(self._add(row) - 1)

    async def rows(
        self,
        *,
        since: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerRow]:
        with self._lock:
            found = [
                self._stored(i)
                for i, r in enumerate(self._rows)
                if matches(r, since=since, provider=provider, model=model, key=key)
            ]
        return found if limit is None else found[max(0, len(found) - limit) :]

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
        with self._lock:
            now = self._wall()
            for hold_id in [i for i, h in self._holds.items() if h.expires <= now]:
                del self._holds[hold_id]
            holds = list(self._holds.values())
            check_all(
                budgets,
                at,
                self._spend.items(),
                holds,
                provider=provider,
                model=model,
                key=key,
                tokens=tokens,
                cost=cost,
                currency=currency,
            )
            hold = Hold(next(self._hold_ids), provider, model, key, tokens, cost, currency, now + self.hold_ttl)
            self._holds[hold.id] = hold
            return hold

    async def settle(self, hold: Hold | None, row: LedgerRow) -> LedgerRow:
        with self._lock:
            if hold is not None:
                self._holds.pop(hold.id, None)
            return self._stored(self._add(row) - 1)

    def settle_nowait(self, hold: Hold | None, row: LedgerRow) -> None:
        """``settle`` without waiting (see ``NowaitLedger``): the row is written before this returns."""
        with self._lock:
            if hold is not None:
                self._holds.pop(hold.id, None)
            self._add(row)

    async def release(self, hold: Hold) -> None:
        with self._lock:
            self._holds.pop(hold.id, None)

    async def aclose(self) -> None:
        """Nothing to release: the rows stay readable."""
