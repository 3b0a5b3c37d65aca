"""``llmrelay keys create | list | revoke``: the gateway's keys, with direct access to the key store.

::

    llmrelay keys create team-a --models openai/*,fast --rpm 60 --max-cost 5 --period day
    llmrelay keys list                  # prefix, limits, created, revoked: never a secret
    llmrelay keys revoke team-a         # a running gateway stops accepting it within its cache TTL (5 s)

The store is ``--store URL``, else ``[gateway] keys`` in llmrelay.toml, else ``keys.db`` in the user data
directory. ``create`` prints the secret once, alone on stdout (so ``$(llmrelay keys create NAME)`` captures
it), and what was created on stderr; the secret cannot be shown again: revoke the key and create another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from . import EXIT_OK, UsageError

__all__ = ["add_parser", "run_keys", "store_url"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``keys`` and its actions to the subcommands ``sub``."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        metavar="URL",
        help="the key store: sqlite:///PATH or postgresql://... (default: [gateway] keys, then the user data dir)",
    )
    keys = sub.add_parser("keys", parents=[common], help="create, list or revoke gateway keys")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common, store], help="create a key; prints its secret once")
    create.add_argument("name", help="the key's name (in ledger rows and key:NAME budgets)")
    create.add_argument("--models", help="comma-separated model strings, aliases or PROVIDER/* (default: any)")
    create.add_argument("--rpm", type=float, help="requests per minute")
    create.add_argument("--tpm", type=float, help="tokens per minute")
    create.add_argument("--max-cost", dest="max_cost", help="the key's budget (USD) per --period")
    create.add_argument("--max-tokens", dest="max_tokens", type=int, help="the key's token budget per --period")
    create.add_argument("--period", choices=("day", "month", "total"), default="total", help="the budget's period")
    create.set_defaults(handler="keys_create")
    listing = actions.add_parser("list", parents=[common, store], help="the keys, with limits (never secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per key, per line")
    listing.add_argument("--active", action="store_true", help="leave out revoked keys")
    listing.set_defaults(handler="keys_list")
    revoke = actions.add_parser("revoke", parents=[common, store], help="revoke a key by name (or id)")
    revoke.add_argument("name", help="the key's name or id")
    revoke.set_defaults(handler="keys_revoke")


def store_url(args: argparse.Namespace) -> str:
    """``--store``, else ``[gateway] keys`` of the configuration, else the default file."""
    if args.store:
        return str(args.store)
    from ..config import load_config
    from ..config._gateway import default_keys_url

    config = load_config(getattr(args, "config", None))
    return getattr(config.gateway, "keys", None) or default_keys_url()


def run_keys(handler: str, args: argparse.Namespace) -> int:
    return asyncio.run(_run(handler, args))


async def _run(handler: str, args: argparse.Namespace) -> int:
    from ..gateway.keys import KeyStore, key_backend

    store = KeyStore(key_backend(store_url(args)))
    try:
        if handler == "keys_create":
            return await _create(store, args)
        if handler == "keys_list":
            return await _list(store, args)
        key = await store.revoke(args.name)
        print(f"llmrelay: revoked key {key.name!r} ({key.id}, {key.prefix}...); running gateways stop accepting it "
              f"within {store.ttl:g} s", file=sys.stderr)  # fmt: skip
        return EXIT_OK
    finally:
        await store.aclose()


async def _create(store: Any, args: argparse.Namespace) -> int:
    models = None if args.models is None else [m for m in args.models.split(",") if m.strip()]
    if models == []:
        raise UsageError("--models needs at least one model string (leave it out to allow every model)")
    cost: Decimal | None = None
    if args.max_cost is not None:
        try:
            cost = Decimal(args.max_cost)
        except InvalidOperation:
            raise UsageError(f"--max-cost must be a number, got {args.max_cost!r}") from None
    key, secret = await store.create(
        args.name,
        models=models,
        rpm=args.rpm,
        tpm=args.tpm,
        max_cost=cost,
        max_tokens=args.max_tokens,
        period=args.period,
    )
    print(secret, flush=True)
    print(f"llmrelay: created key {key.name!r} ({key.id}, {_limits(key)}); the secret above is shown only once",
          file=sys.stderr)  # fmt: skip
    return EXIT_OK


def _limits(key: Any) -> str:
    parts = ["models: " + (",".join(key.models) if key.models is not None else "any")]
    if key.rpm is not None:
        parts.append(f"rpm {key.rpm:g}")
    if key.tpm is not None:
        parts.append(f"tpm {key.tpm:g}")
    if key.max_cost is not None:
        parts.append(f"max cost {key.max_cost} USD/{key.period}")
    if key.max_tokens is not None:
        parts.append(f"max tokens {key.max_tokens}/{key.period}")
    return "; ".join(parts)


def key_json(key: Any) -> dict[str, Any]:
    """A key as JSON (no secret: the store has none)."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "models": None if key.models is None else list(key.models),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "max_cost": None if key.max_cost is None else str(key.max_cost),
        "max_tokens": key.max_tokens,
        "period": key.period,
        "created": key.created.isoformat(),
        "revoked": None if key.revoked is None else key.revoked.isoformat(),
    }


async def _list(store: Any, args: argparse.Namespace) -> int:
    from ._format import table

    keys = await store.list(include_revoked=not args.active)
    if args.json:
        for key in keys:
            print(json.dumps(key_json(key)))
        return EXIT_OK
    if not keys:
        print("llmrelay: no gateway keys (the gateway serves loopback only): llmrelay keys create NAME",
              file=sys.stderr)  # fmt: skip
        return EXIT_OK
    rows = [
        [
            key.name,
            key.prefix + "...",
            _limits(key),
            key.created.strftime("%Y-%m-%d %H:%M"),
            "-" if key.revoked is None else key.revoked.strftime("%Y-%m-%d %H:%M"),
        ]
        for key in keys
    ]
    print(table(["NAME", "PREFIX", "LIMITS", "CREATED (UTC)", "REVOKED"], rows))
    return EXIT_OK
