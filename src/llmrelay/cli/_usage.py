"""``llmrelay usage``: the usage ledger, summed by key, model or UTC day.

::

    llmrelay usage                       # by key (the default), every row
    llmrelay usage --by model --since 2025-06-01
    llmrelay usage --by day --json       # one JSON object per group, per line

The ledger is ``--ledger URL``, else ``[gateway] ledger`` in llmrelay.toml, else ``ledger.db`` in the user
data directory (where ``llmrelay serve`` writes by default). Costs are exact decimal sums per currency;
rows that could not be priced are counted under ``unpriced`` (the cost shown understates them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import EXIT_OK, UsageError

__all__ = ["add_parser", "group_rows", "run_usage"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``usage`` to the subcommands ``sub``."""
    usage = sub.add_parser("usage", parents=[common], help="the usage ledger by key, model or day")
    usage.add_argument("--by", choices=("key", "model", "day"), default="key", help="how to group (default: key)")
    usage.add_argument("--since", metavar="DATE", help="only rows at or after DATE (YYYY-MM-DD or ISO time, UTC)")
    usage.add_argument("--json", action="store_true", help="one JSON object per group, per line")
    usage.add_argument(
        "--ledger",
        "--store",
        dest="ledger",
        metavar="URL",
        help="the ledger: sqlite:///PATH or postgresql://... (default: [gateway] ledger, then the user data dir)",
    )
    usage.set_defaults(handler="usage")


def _ledger_url(args: argparse.Namespace) -> str:
    if args.ledger:
        return str(args.ledger)
    from ..config import load_config
    from ..config._gateway import default_ledger_url

    config = load_config(getattr(args, "config", None))
    return getattr(config.gateway, "ledger", None) or default_ledger_url()


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since must be a date (YYYY-MM-DD) or an ISO time, got {text!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


_GROUPS: dict[str, Callable[[Any], str]] = {
    "key": lambda row: row.key or "(no key)",
    "model": lambda row: f"{row.provider}/{row.model}" if row.model else row.provider,
    "day": lambda row: row.at.strftime("%Y-%m-%d"),
}


def group_rows(rows: list[Any], by: str) -> list[tuple[str, Any]]:
    """``(group, Totals)`` for each group of ``rows`` (sorted by group name)."""
    from ..metering._model import totals_of

    groups: dict[str, list[Any]] = {}
    name = _GROUPS[by]
    for row in rows:
        groups.setdefault(name(row), []).append(row)
    return [(group, totals_of(members)) for group, members in sorted(groups.items())]


def _cost(totals: Any) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(totals.cost.items())) or "-"


def run_usage(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from ..metering import open_ledger
    from ..metering._model import totals_of
    from ._format import table

    since = _since(args.since)
    ledger = open_ledger(_ledger_url(args))
    try:
        rows = await ledger.rows(since=since)
    finally:
        await ledger.aclose()
    grouped = group_rows(rows, args.by)
    if args.json:
        for group, t in grouped:
            print(json.dumps({
                args.by: group, "requests": t.rows, "ok": t.ok, "errors": t.errors, "cancelled": t.cancelled,
                "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                "cache_read_tokens": t.cache_read_tokens, "reasoning_tokens": t.reasoning_tokens,
                "cost": {currency: str(amount) for currency, amount in t.cost.items()}, "unpriced": t.unpriced,
            }))  # fmt: skip
        return EXIT_OK
    if not grouped:
        print("no usage recorded" + ("" if since is None else f" since {since.isoformat()}"))
        return EXIT_OK
    lines = [
        [group, str(t.rows), str(t.ok), str(t.errors + t.cancelled), str(t.input_tokens), str(t.output_tokens),
         _cost(t), str(t.unpriced)]
        for group, t in grouped
    ]  # fmt: skip
    total = totals_of(rows)
    lines.append(["TOTAL", str(total.rows), str(total.ok), str(total.errors + total.cancelled),
                  str(total.input_tokens), str(total.output_tokens), _cost(total), str(total.unpriced)])  # fmt: skip
    headers = [args.by.upper(), "REQUESTS", "OK", "FAILED", "INPUT", "OUTPUT", "COST", "UNPRICED"]
    print(table(headers, lines))
    return EXIT_OK
