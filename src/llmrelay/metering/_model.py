"""The ledger's values and the pure rules every store shares: rows, totals, budgets, holds, periods.

Nothing here does I/O. A store (``MemoryLedger``, ``SQLiteLedger``, ``PostgresLedger``) keeps rows, the
spend per UTC day (``Spend``) and the holds of calls in flight; it asks ``Budget.applies`` which budgets a
call or a row concerns, ``Budget.window`` which days count, and ``check`` whether a hold still fits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from .._errors import BudgetExceeded

__all__ = [
    "Budget",
    "Hold",
    "LedgerRow",
    "Outcome",
    "Period",
    "Spend",
    "SpendKey",
    "Totals",
    "check",
    "check_all",
    "day_of",
    "matches",
    "totals_of",
    "utc",
]

Outcome = Literal["ok", "error", "cancelled"]
Period = Literal["day", "month", "total"]
_PERIODS = ("day", "month", "total")


def utc(when: datetime) -> datetime:
    """``when`` as an aware UTC time (a naive time is taken to be UTC already)."""
    tz = when.tzinfo
    if tz is UTC:
        return when
    return when.replace(tzinfo=UTC) if tz is None else when.astimezone(UTC)


_days: dict[date, str] = {}
"""``day_of``'s texts by date: ``strftime`` costs more than the rest of a row's bookkeeping."""


def day_of(when: datetime) -> str:
    """The UTC calendar day of ``when``, as ``YYYY-MM-DD`` (the key of the per-day spend)."""
    day = utc(when).date()
    text = _days.get(day)
    if text is None:
        if len(_days) >= 1024:
            _days.clear()
        text = _days[day] = day.strftime("%Y-%m-%d")
    return text


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One accepted call: who answered, what it used and cost, and how it ended.

    ``provider`` and ``model`` are the ones that answered (``stream.provider`` / ``stream.model``,
    ``ChatResponse.provider`` / ``.model``; for a call that failed, the last one tried). Token counts
    have ``Usage``'s meaning (``input_tokens`` includes cache reads and writes, ``output_tokens``
    includes reasoning) and stay ``None`` when not reported. ``cost`` is ``None`` when the call could
    not be priced, with the reason in ``cost_unknown``; it is never a made-up ``0``.
    """

    id: int | None
    """The store's id, ``None`` until recorded (``record`` returns the row with it)."""
    at: datetime
    """When the call started (UTC)."""
    provider: str
    model: str | None
    key: str | None
    """A gateway key or a tag of the caller (``Metered(key=...)``), for ``key:NAME`` budgets."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: Decimal | None = None
    currency: str = "USD"
    cost_source: str = ""
    """Where the prices came from (``Cost.source``)."""
    cost_unknown: str | None = None
    """Why ``cost`` is ``None`` (``Cost.unknown``)."""
    outcome: Outcome = "ok"
    error_kind: str | None = None
    """The error's ``LlmError.kind`` (an exception that is no ``LlmError``: its class name)."""
    elapsed_ms: int = 0
    attempts: int = 0
    """Failed attempts (of a retry or fallback below the meter) before the one this row records."""
    requested_model: str | None = None
    """The model asked for, when the meter knew it (an alias or an undated name): ``PROVIDER/MODEL``
    budgets match it as well as ``model``."""
    route: str | None = None
    """The gateway route the call came through (``/v1/chat/completions``, ``/api/chat``); ``None`` for a
    call made through the library (``Metered(route=...)`` sets it)."""
    status: int | None = None
    """The HTTP status the gateway sent for the call (a stream that failed after its first byte: 200);
    ``None`` when no status was sent (the client went away first) or the call did not come through it."""
    ttft_ms: int | None = None
    """Milliseconds from the start of a stream to its first event (``None``: not a stream, or no event)."""

    def __post_init__(self) -> None:
        if self.outcome not in ("ok", "error", "cancelled"):
            raise ValueError(f"outcome must be 'ok', 'error' or 'cancelled', got {self.outcome!r}")
        object.__setattr__(self, "at", utc(self.at))

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens (what a token budget counts); 0 when neither was reported."""
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over ledger rows. Costs are summed per currency; rows that could not be priced add nothing
    to ``cost`` and are counted in ``unpriced`` instead."""

    rows: int = 0
    ok: int = 0
    errors: int = 0
    cancelled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)
    """Currency -> total cost of the priced rows (``{"USD": Decimal("0.0012")}``); empty if none."""
    unpriced: int = 0
    """Rows whose cost is unknown (``cost is None``): the totals understate what they cost."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def matches(
    row: LedgerRow,
    *,
    since: datetime | None = None,
    provider: str | None = None,
    model: str | None = None,
    key: str | None = None,
) -> bool:
    """Whether ``row`` passes the filters of ``UsageLedger.rows`` (``model`` matches the model that
    answered or the one asked for)."""
    return (
        (since is None or row.at >= utc(since))
        and (provider is None or row.provider == provider)
        and (model is None or model in (row.model, row.requested_model))
        and (key is None or row.key == key)
    )


def totals_of(rows: Iterable[LedgerRow]) -> Totals:
    """The ``Totals`` of ``rows`` (exact: costs are ``Decimal`` sums)."""
    counts = {"rows": 0, "ok": 0, "errors": 0, "cancelled": 0, "unpriced": 0}
    tokens = dict.fromkeys(("input", "output", "cache_read", "cache_write", "reasoning"), 0)
    cost: dict[str, Decimal] = {}
    for row in rows:
        counts["rows"] += 1
        counts["ok" if row.outcome == "ok" else "errors" if row.outcome == "error" else "cancelled"] += 1
        tokens["input"] += row.input_tokens or 0
        tokens["output"] += row.output_tokens or 0
        tokens["cache_read"] += row.cache_read_tokens or 0
        tokens["cache_write"] += row.cache_write_tokens or 0
        tokens["reasoning"] += row.reasoning_tokens or 0
        if row.cost is None:
            counts["unpriced"] += 1
        else:
            cost[row.currency] = cost.get(row.currency, Decimal(0)) + row.cost
    return Totals(
        **counts,
        input_tokens=tokens["input"],
        output_tokens=tokens["output"],
        cache_read_tokens=tokens["cache_read"],
        cache_write_tokens=tokens["cache_write"],
        reasoning_tokens=tokens["reasoning"],
        cost=cost,
    )


@dataclass(frozen=True, slots=True)
class Budget:
    """A cap on the cost, the tokens or both of the calls in ``scope`` per ``period``.

    ``scope`` is ``"*"`` (every call), ``"PROVIDER"`` (a provider's name, as in model strings),
    ``"PROVIDER/MODEL"`` or ``"key:NAME"`` (calls metered with ``key="NAME"``). ``period`` is a UTC
    calendar ``day`` or ``month``, or ``total`` (never resets). ``max_cost`` counts costs in
    ``currency`` only; ``max_tokens`` counts input plus output tokens.
    """

    scope: str
    max_cost: Decimal | None = None
    max_tokens: int | None = None
    period: Period = "total"
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not self.scope or self.scope.strip() != self.scope:
            raise ValueError(
                f"a budget's scope must be '*', 'PROVIDER', 'PROVIDER/MODEL' or 'key:NAME', got {self.scope!r}"
            )
        if self.scope.startswith("key:") and len(self.scope) == 4:
            raise ValueError("a 'key:' budget scope needs the key's name: 'key:NAME'")
        if self.period not in _PERIODS:
            raise ValueError(f"a budget's period must be 'day', 'month' or 'total', got {self.period!r}")
        if self.max_cost is None and self.max_tokens is None:
            raise ValueError(f"budget {self.scope!r} caps nothing: give max_cost, max_tokens or both")
        if self.max_cost is not None:
            cost = self.max_cost if isinstance(self.max_cost, Decimal) else Decimal(str(self.max_cost))
            if cost < 0:
                raise ValueError(f"budget {self.scope!r}: max_cost must not be negative, got {cost}")
            object.__setattr__(self, "max_cost", cost)
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or self.max_tokens < 0):
            raise ValueError(
                f"budget {self.scope!r}: max_tokens must be a non-negative integer, got {self.max_tokens!r}"
            )

    def applies(self, provider: str, model: str | None, key: str | None, requested_model: str | None = None) -> bool:
        """Whether a call to ``provider``'s ``model`` (asked for as ``requested_model``) by ``key`` counts."""
        scope = self.scope
        if scope == "*":
            return True
        if scope.startswith("key:"):
            return key == scope[4:]
        name, slash, wanted = scope.partition("/")
        if name != provider:
            return False
        return not slash or wanted in (model, requested_model)

    def window(self, at: datetime) -> tuple[str | None, datetime | None]:
        """The first UTC day (``YYYY-MM-DD``) of the period ``at`` falls in (``None``: every day), and when
        the next period starts (``None`` for ``total``)."""
        at = utc(at)
        if self.period == "total":
            return None, None
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "day":
            return day_of(start), start + timedelta(days=1)
        start = start.replace(day=1)
        if start.month == 12:
            return day_of(start), start.replace(year=start.year + 1, month=1)
        after = start.replace(month=start.month + 1)
        return day_of(start), after


SpendKey = tuple[str, str, str, str, str, str]
"""``(day, provider, model, requested_model, key, currency)`` with ``""`` for none: one bucket of spend."""


@dataclass(slots=True)
class Spend:
    """The tokens and cost recorded in one bucket (one UTC day of one provider/model/key/currency)."""

    tokens: int = 0
    cost: Decimal = dataclasses.field(default_factory=lambda: Decimal(0))

    @staticmethod
    def key_of(row: LedgerRow) -> SpendKey:
        """The bucket ``row`` adds to."""
        return (day_of(row.at), row.provider, row.model or "", row.requested_model or "", row.key or "", row.currency)


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation: what a call in flight holds against the budgets until it is settled or released."""

    id: int
    provider: str
    model: str | None
    key: str | None
    tokens: int
    cost: Decimal | None
    """The estimated cost in ``currency``; ``None`` when the call could not be priced (it holds tokens
    only and adds nothing to cost budgets)."""
    currency: str = "USD"
    expires: float = 0.0
    """Wall-clock time (``time.time()``) after which a store ignores the hold (its holder died)."""


def check(
    budget: Budget,
    at: datetime,
    spend: Iterable[tuple[SpendKey, Spend]],
    holds: Sequence[Hold],
    *,
    provider: str,
    model: str | None,
    key: str | None,
    tokens: int,
    cost: Decimal | None,
    currency: str,
) -> BudgetExceeded | None:
    """Whether one more call (``tokens``, ``cost``) fits ``budget`` beside the recorded ``spend`` and the
    other ``holds``: ``None`` if it does, else the error to raise. A call that could not be priced
    (``cost is None``) always fits a cost cap: its spend is unknown, and is counted in ``Totals.unpriced``."""
    first_day, resets = budget.window(at)
    spent_tokens = 0
    spent_cost = Decimal(0)
    for (day, b_provider, b_model, b_requested, b_key, b_currency), value in spend:
        if first_day is not None and day < first_day:
            continue
        if not budget.applies(b_provider, b_model or None, b_key or None, b_requested or None):
            continue
        spent_tokens += value.tokens
        if b_currency == budget.currency:
            spent_cost += value.cost
    for hold in holds:
        if budget.applies(hold.provider, hold.model, hold.key):
            spent_tokens += hold.tokens
            if hold.cost is not None and hold.currency == budget.currency:
                spent_cost += hold.cost
    if budget.max_tokens is not None and spent_tokens + tokens > budget.max_tokens:
        return _exceeded(budget, "tokens", budget.max_tokens, spent_tokens, tokens, at, resets, provider)
    cap = budget.max_cost
    if cap is not None and cost is not None and currency == budget.currency and spent_cost + cost > cap:
        return _exceeded(budget, "cost", cap, spent_cost, cost, at, resets, provider)
    return None


def check_all(
    budgets: Sequence[Budget],
    at: datetime,
    spend: Collection[tuple[SpendKey, Spend]],
    holds: Sequence[Hold],
    *,
    provider: str,
    model: str | None,
    key: str | None,
    tokens: int,
    cost: Decimal | None,
    currency: str,
) -> None:
    """``check`` every budget in order; raise the error of the first that one more call would exceed (what
    every store's ``reserve`` does before it holds anything)."""
    for budget in budgets:
        error = check(
            budget,
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
        if error is not None:
            raise error


def _exceeded(
    budget: Budget,
    unit: str,
    limit: Decimal | int,
    spent: Decimal | int,
    requested: Decimal | int,
    at: datetime,
    resets: datetime | None,
    provider: str,
) -> BudgetExceeded:
    what = f"{limit} {budget.currency}" if unit == "cost" else f"{limit} tokens"
    per = "in total" if budget.period == "total" else f"per {budget.period} (UTC)"
    amount = f"{spent} {budget.currency}" if unit == "cost" else f"{spent} tokens"
    need = f"{requested} {budget.currency}" if unit == "cost" else f"{requested} tokens"
    when = "" if resets is None else f"wait until it resets at {resets.strftime('%Y-%m-%d %H:%M')} UTC, "
    message = (
        f"budget {budget.scope!r} of {what} {per} would be exceeded: {amount} already spent or reserved, "
        f"and this call needs about {need}; {when}raise the budget, lower max_tokens, or let a Fallback "
        "send the call to a provider with budget left"
    )
    return BudgetExceeded(
        message,
        provider=provider,
        scope=budget.scope,
        limit=limit,
        spent=spent,
        requested=requested,
        period=budget.period,
        unit=unit,
        currency=budget.currency if unit == "cost" else None,
        retry_after=None if resets is None else max(0.0, (resets - utc(at)).total_seconds()),
    )
