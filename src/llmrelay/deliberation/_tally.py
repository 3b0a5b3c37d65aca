"""Sums of calls, tokens and cost over turns (``Tally``), keeping what is unknown counted, not zeroed."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ._events import Tally, Turn, TurnStatus

__all__ = ["tally"]


def tally(turns: Iterable[Turn]) -> Tally:
    """Calls, failures, tokens and cost of ``turns``: a turn with no usage counts in ``tokens_unknown``,
    an unpriced one in ``cost_unknown``; ``cost`` sums the priced ones (``None`` if there are none)."""
    calls = failed = inp = out = total = tokens_unknown = cost_unknown = 0
    cost: Decimal | None = None
    currency = "USD"
    for turn in turns:
        calls += 1
        failed += turn.status is not TurnStatus.OK
        usage = turn.usage
        if usage is None or usage.total_tokens is None:
            tokens_unknown += 1
        else:
            inp += usage.input_tokens or 0
            out += usage.output_tokens or 0
            total += usage.total_tokens
        if turn.cost is None:
            cost_unknown += 1
        else:
            cost = turn.cost if cost is None else cost + turn.cost
            currency = turn.currency
    return Tally(
        calls=calls,
        failed=failed,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total,
        tokens_unknown=tokens_unknown,
        cost=cost,
        cost_unknown=cost_unknown,
        currency=currency,
    )
