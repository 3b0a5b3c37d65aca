"""Metering: a usage ledger of tokens and cost per provider, model and key, and budgets checked against it.

``Metered(provider, ledger=..., budgets=[...])`` is the wrapper: before each call it holds the call's
estimate against the budgets that apply (or raises ``BudgetExceeded``), and after it writes one
``LedgerRow`` (``ok``, ``error`` or ``cancelled``) with the real usage and cost, dropping the hold::

    ledger = open_ledger("sqlite:///llmrelay-ledger.db")
    budget = Budget("openai", max_cost=Decimal("5"), period="day")
    async with Metered(OpenAIProvider("gpt-4o-mini"), ledger=ledger, budgets=[budget]) as provider:
        await provider.chat(request)
    print(await ledger.totals(provider="openai"))

Stores implement ``UsageLedger`` (all async; rows get an id from the store; ``reserve`` is atomic):
``MemoryLedger`` (one process), ``SQLiteLedger`` (a file shared by processes, with a schema version) and
``PostgresLedger`` (a database shared by replicas, written in batches; asyncpg, the ``gateway`` extra);
``open_ledger(url)`` picks one from ``"memory"``, ``"sqlite:///PATH"`` or ``"postgresql://..."``.
"""

from __future__ import annotations

from .._errors import BudgetExceeded
from ._ledger import UsageLedger
from ._model import Budget, Hold, LedgerRow, Outcome, Period, Totals
from ._open import open_ledger
from .memory import MemoryLedger
from .metered import Metered, RowWrites
from .postgres import PG_SCHEMA_VERSION, PostgresLedger
from .sqlite import SCHEMA_VERSION, SQLiteLedger

__all__ = [
    "SCHEMA_VERSION",
    "Budget",
    "BudgetExceeded",
    "Hold",
    "LedgerRow",
    "MemoryLedger",
    "Metered",
    "Outcome",
    "PG_SCHEMA_VERSION",
    "Period",
    "PostgresLedger",
    "RowWrites",
    "SQLiteLedger",
    "Totals",
    "UsageLedger",
    "open_ledger",
]
