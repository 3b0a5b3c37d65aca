"""The factory: a configuration entry (plus an endpoint row or a provider type) becomes a ``Provider``."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import MissingApiKey
from .._provider import Provider
from .._transport import Transport
from ..config import ConfigError, ProviderConfig, suggest
from ..endpoints import Endpoint
from ._plugins import _is_known_type, _load_target, _row, _type_target, known_types
from ._resolve import ENV_DEFAULTS, LOCAL_DEFAULT

if TYPE_CHECKING:
    from ._registry import ProviderRegistry

__all__ = ["build_provider", "configured_entries"]


def _accepts(cls: Callable[..., Any], param: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return True
    return param in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _check_settings(cls: Callable[..., Any], entry: ProviderConfig, file: Path | None, reserved: Iterable[str]) -> None:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p for p in params if p not in ("self", "name", "model", *reserved)]
    for key in entry.settings:
        if key not in params or key in reserved:
            raise ConfigError(
                f"{getattr(cls, '__name__', cls)} has no setting {key!r}{suggest(key, allowed)}; "
                f"known: {', '.join(allowed) or '(none)'}",
                file=file,
                key=f"providers.{entry.name}.settings.{key}",
            )


def build_provider(
    entry: ProviderConfig,
    model: str | None = None,
    *,
    transport: Transport | None = None,
    file: str | Path | None = None,
) -> Provider:
    """Build the ``Provider`` a configuration entry describes (``model`` overrides its ``default_model``).

    ``transport`` is shared with the provider when its class accepts one. Errors name ``file`` and the
    entry's key path.
    """
    path = Path(file) if file is not None else None
    model = model or entry.default_model
    kind = entry.kind
    if not _is_known_type(kind):
        raise _unknown_type(entry, path)
    row = _row(kind)
    if row is None:
        return _build_bare(entry, model, transport, path)
    # OLLAMA_HOST is not read here: the ollama row has no base URL, so OllamaProvider reads it, with the
    # ollama CLI's rules (normalize_ollama_host), whichever way it is built.
    base_url = entry.base_url or row.resolved_base_url()
    row = replace(row, name=entry.name)
    if entry.api_key_env:
        row = replace(row, key_env=(entry.api_key_env,))
    if base_url is not None and base_url != row.base_url and not entry.api_key_env:
        # Pointed at your own server (by configuration or environment): a key is used when set, not required.
        row = replace(row, key_required=False)
    target = _type_target(row.dialect)
    if target is None:
        raise ConfigError(f"no provider class for dialect {row.dialect!r}", file=path, key=f"providers.{entry.name}")
    cls = _load_target(target, row.dialect)
    reserved = ("base_url", "api_key", "api_key_env", "headers", "timeouts", "transport", "endpoint")
    _check_settings(cls, entry, path, reserved)
    overrides: dict[str, Any] = {}
    if base_url is not None:
        overrides["base_url"] = base_url
    if entry.api_key:
        overrides["api_key"] = entry.api_key
    if entry.headers:
        overrides["headers"] = dict(entry.headers)
    if entry.timeouts is not None:
        overrides["timeouts"] = entry.timeouts
    if transport is not None and _accepts(cls, "transport"):
        overrides["transport"] = transport
    overrides.update(entry.settings)
    from ..endpoints import provider_for

    try:
        return provider_for(row, model, **overrides)
    except MissingApiKey as exc:
        if exc.code == "missing_endpoint":  # Azure without an endpoint: its own message says what to set
            raise
        raise MissingApiKey(_key_hint(entry, row), provider=entry.name) from None


def _key_hint(entry: ProviderConfig, row: Endpoint) -> str:
    where = f"api_key_env under [providers.{entry.name}] in llmrelay.toml"
    if row.key_env:
        variables = " or ".join(row.key_env)
        return f"no API key for {entry.name}: set {variables} (or {where})"
    return f"no API key for {entry.name}: set {where}"


def _build_bare(entry: ProviderConfig, model: str | None, transport: Transport | None, path: Path | None) -> Provider:
    """A type with no endpoint row (``local``, a plugin dialect): its class gets the entry's fields."""
    target = _type_target(entry.kind)
    assert target is not None
    cls = _load_target(target, entry.kind)
    kwargs: dict[str, Any] = {"name": entry.name, "model": model}
    fields: dict[str, Any] = {
        "base_url": entry.base_url,
        "api_key": entry.api_key or (os.environ.get(entry.api_key_env) if entry.api_key_env else None),
        "api_key_env": entry.api_key_env,
        "headers": dict(entry.headers) or None,
        "timeouts": entry.timeouts,
    }
    for field_name, value in fields.items():
        if value is None:
            continue
        if not _accepts(cls, field_name):
            if field_name == "api_key" and not entry.api_key:
                continue
            raise ConfigError(
                f"the provider type {entry.kind!r} does not take {field_name}",
                file=path,
                key=f"providers.{entry.name}.{field_name}",
            )
        kwargs[field_name] = value
    if transport is not None and _accepts(cls, "transport"):
        kwargs["transport"] = transport
    _check_settings(cls, entry, path, fields)
    kwargs.update(entry.settings)
    return cls(**kwargs)


def _unknown_type(entry: ProviderConfig, path: Path | None) -> ConfigError:
    types = known_types()
    if entry.type is None:
        return ConfigError(
            f"{entry.name!r} is not a known provider type{suggest(entry.name, types)}, so this entry needs "
            f'type = "..." (one of: {", ".join(types)})',
            file=path,
            key=f"providers.{entry.name}",
        )
    return ConfigError(
        f"unknown provider type {entry.type!r}{suggest(entry.type, types)}; known: {', '.join(types)}",
        file=path,
        key=f"providers.{entry.name}.type",
    )


def configured_entries(registry: ProviderRegistry) -> list[tuple[ProviderConfig, str]]:
    """What ``llmrelay models`` lists: (entry, where it comes from) for configured providers, providers whose
    key is in the environment, and the local model."""
    out: list[tuple[ProviderConfig, str]] = [(entry, "config") for entry in registry.config.providers.values()]
    taken = {entry.name for entry, _ in out}
    for name, model in ENV_DEFAULTS:
        row = _row(name)
        if name not in taken and row is not None and row.resolved_key():
            out.append((ProviderConfig(name=name, default_model=model), "env"))
            taken.add(name)
    if "local" not in taken:
        out.append((ProviderConfig(name="local", default_model=LOCAL_DEFAULT[1]), "builtin"))
    return out
