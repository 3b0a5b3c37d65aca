"""``llmrelay models`` and ``llmrelay providers``: what can be reached, and with which keys (never shown)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os

from .._provider import Capabilities, Provider
from ..api import default_config
from ..config import ProviderConfig
from ..endpoints import DIALECT_PROVIDERS, Endpoint, endpoints
from ..registry import ProviderRegistry, configured_entries, known_types, load_plugins
from . import EXIT_OK
from ._format import scrub_secrets, table

__all__ = ["key_status", "run_models", "run_providers"]


def _row(name: str) -> Endpoint | None:
    return next((row for row in endpoints() if row.name == name), None)


def key_status(entry: ProviderConfig) -> str:
    """Where the entry's key comes from, or what to set; the key itself is never shown."""
    if entry.kind == "local":
        return local_status()
    if entry.api_key:
        return "key written in llmrelay.toml"
    row = _row(entry.kind)
    variables = [entry.api_key_env] if entry.api_key_env else list(row.key_env if row else ())
    for var in variables:
        if os.environ.get(var):
            return f"key from ${var}"
    if row is not None and not row.key_required and not entry.api_key_env:
        return "no key needed"
    if not variables:
        return "no key configured"
    return "missing key: set " + " or ".join(f"${var}" for var in variables)


def local_status() -> str:
    if importlib.util.find_spec("llama_cpp") is None:
        return "needs: pip install 'llmrelay[local]'"
    return "runs on this machine"


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _caps(registry: ProviderRegistry, entry: ProviderConfig) -> tuple[Capabilities | None, str | None]:
    try:
        provider = registry.get(entry.name)
    except Exception as exc:  # a missing key or an unloadable type: shown in the status column
        return None, scrub_secrets(" ".join(str(exc).split()))
    return provider.capabilities(), None


def run_models(args: argparse.Namespace) -> int:
    registry = ProviderRegistry(default_config(getattr(args, "config", None)))
    try:
        default = str(registry.default_model())
    except Exception:
        default = ""
    rows: list[list[str]] = []
    entries = configured_entries(registry)
    for entry, source in entries:
        caps, error = _caps(registry, entry)
        status = key_status(entry)
        if error and not status.startswith(("missing key", "needs")):
            status = error
        models = list(dict.fromkeys([m for m in (entry.default_model, *entry.models) if m]))
        for model in models or [""]:
            name = f"{entry.name}/{model}" if model else f"{entry.name} (no default model)"
            marker = "*" if name == default else ""
            flags = (
                [
                    _yes(caps.streaming),
                    _yes(caps.tools),
                    _yes(caps.vision),
                    _yes(caps.json_schema),
                    _yes(caps.reasoning),
                ]
                if caps
                else ["?"] * 5
            )
            rows.append([name + marker, source, *flags, status])
    print(table(["MODEL", "FROM", "STREAM", "TOOLS", "VISION", "JSON", "REASONING", "STATUS"], rows))
    for alias, target in registry.config.aliases.items():
        print(f"alias {alias} -> {target}")
    if default:
        print(f"* default model: {default}")
    if args.remote:
        asyncio.run(_remote(registry, [entry for entry, _ in entries]))
    return EXIT_OK


async def _remote(registry: ProviderRegistry, entries: list[ProviderConfig]) -> None:
    async with registry:
        for entry in entries:
            try:
                provider: Provider = registry.get(entry.name)
                listed = await provider.list_models()
            except Exception as exc:
                print(f"{entry.name}: cannot list models: {scrub_secrets(' '.join(str(exc).split()))}")
                continue
            print(f"{entry.name}: {len(listed)} models")
            for info in sorted(listed, key=lambda m: m.id):
                print(f"  {entry.name}/{info.id}")


def run_providers(args: argparse.Namespace) -> int:
    load_plugins()
    rows: list[list[str]] = []
    for row in endpoints():
        url = row.resolved_base_url() or (f"${row.base_url_env}" if row.base_url_env else "-")
        rows.append(
            [
                row.name,
                row.dialect,
                url,
                ", ".join(row.key_env) or "-",
                key_status(ProviderConfig(name=row.name)),
            ]
        )
    rows.append(["local", "(in-process)", "GGUF via llama-cpp-python", "-", local_status()])
    print(table(["NAME", "DIALECT", "BASE URL", "KEY ENV", "STATUS"], rows))
    print()
    print("dialects: " + ", ".join(sorted(DIALECT_PROVIDERS)))
    extra = [t for t in known_types() if t not in DIALECT_PROVIDERS and _row(t) is None]
    if extra:
        print("other types: " + ", ".join(extra))
    return EXIT_OK
