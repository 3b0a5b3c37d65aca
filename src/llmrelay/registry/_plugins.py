"""Provider types and plugins: the names a configuration entry's ``type`` (or a model string) may use.

Built in: the wire dialects (``llmrelay.endpoints.DIALECT_PROVIDERS``) and ``local``. Plugins add more
through the entry-point groups ``llmrelay.providers`` and ``llmrelay.endpoints``, discovered once, lazily.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Iterable

from .._provider import LlmRelayWarning, Provider
from ..config import ConfigError
from ..endpoints import DIALECT_PROVIDERS, Endpoint, endpoints, register_endpoint

__all__ = ["ENDPOINTS_GROUP", "PROVIDERS_GROUP", "known_types", "load_plugins", "register_provider_type"]

PROVIDERS_GROUP = "llmrelay.providers"
"""Entry-point group for provider types (dialects): name -> ``module:Class``."""
ENDPOINTS_GROUP = "llmrelay.endpoints"
"""Entry-point group for endpoint rows: name -> ``Endpoint`` | iterable | function returning either."""

# Provider types that are not wire dialects: name -> "module:Class".
_TYPES: dict[str, str] = {"local": "llmrelay.providers.local:LocalProvider"}

_types_lock = threading.Lock()
_plugins_lock = threading.Lock()
_plugins_loaded = False


def register_provider_type(name: str, target: str | Callable[..., Provider], *, replace_existing: bool = False) -> None:
    """Add a provider type (``type = NAME`` in the configuration, ``NAME/model`` in model strings).

    ``target`` is a ``module:Class`` string (loaded on first use) or the class/factory itself; it is called
    with keyword arguments as described in ``llmrelay.registry``'s docstring.
    """
    with _types_lock:
        if (name in _TYPES or name in DIALECT_PROVIDERS) and not replace_existing:
            raise ValueError(f"provider type {name!r} is already registered")
        if isinstance(target, str):
            DIALECT_PROVIDERS[name] = target
        else:
            # DIALECT_PROVIDERS holds "module:attr" strings; a callable is served by this module's __getattr__.
            _CALLABLE_TYPES[name] = target
            DIALECT_PROVIDERS[name] = f"{__name__}:{_CALLABLE_PREFIX}{name}"


_CALLABLE_PREFIX = "_provider_type__"
_CALLABLE_TYPES: dict[str, Callable[..., Provider]] = {}


def __getattr__(attr: str) -> Callable[..., Provider]:
    if attr.startswith(_CALLABLE_PREFIX):
        factory = _CALLABLE_TYPES.get(attr.removeprefix(_CALLABLE_PREFIX))
        if factory is not None:
            return factory
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def load_plugins(*, force: bool = False) -> list[str]:
    """Discover the ``llmrelay.providers`` and ``llmrelay.endpoints`` entry points (once, unless ``force``).

    Returns the names added. Provider types stay unimported until used; endpoint rows are loaded now.
    """
    global _plugins_loaded
    with _plugins_lock:
        if _plugins_loaded and not force:
            return []
        _plugins_loaded = True
        from importlib.metadata import entry_points

        added: list[str] = []
        for ep in entry_points(group=PROVIDERS_GROUP):
            with _types_lock:
                taken = ep.name in _TYPES or ep.name in DIALECT_PROVIDERS
                if taken and DIALECT_PROVIDERS.get(ep.name) != ep.value:
                    warnings.warn(
                        f"plugin provider type {ep.name!r} ({ep.value}) ignored: the name is taken",
                        LlmRelayWarning,
                        stacklevel=2,
                    )
                    continue
                if not taken:
                    DIALECT_PROVIDERS[ep.name] = ep.value
                    added.append(ep.name)
        for ep in entry_points(group=ENDPOINTS_GROUP):
            try:
                loaded = ep.load()
                rows = _rows_from(loaded() if callable(loaded) and not isinstance(loaded, Endpoint) else loaded)
            except Exception as exc:
                warnings.warn(
                    f"plugin endpoints {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                    LlmRelayWarning,
                    stacklevel=2,
                )
                continue
            known = {row.name: row for row in endpoints()}
            for row in rows:
                if known.get(row.name) == row:
                    continue
                try:
                    register_endpoint(row)
                except ValueError as exc:
                    warnings.warn(f"plugin endpoint {row.name!r} ignored: {exc}", LlmRelayWarning, stacklevel=2)
                    continue
                added.append(row.name)
        return added


def _rows_from(value: object) -> list[Endpoint]:
    if isinstance(value, Endpoint):
        return [value]
    if isinstance(value, Iterable):
        rows = list(value)
        if all(isinstance(row, Endpoint) for row in rows):
            return rows
    raise TypeError(f"expected an Endpoint or an iterable of Endpoint, got {type(value).__name__}")


def _row(name: str) -> Endpoint | None:
    for row in endpoints():
        if row.name == name:
            return row
    return None


def _type_target(name: str) -> str | None:
    with _types_lock:
        return _TYPES.get(name) or DIALECT_PROVIDERS.get(name)


def known_types(*, plugins: bool = True) -> list[str]:
    """Every provider type a configuration entry may name: endpoint rows, dialects, ``local``, plugins."""
    if plugins:
        load_plugins()
    with _types_lock:
        names = set(_TYPES) | set(DIALECT_PROVIDERS)
    names.update(row.name for row in endpoints())
    return sorted(names)


def _is_known_type(name: str) -> bool:
    if _type_target(name) is not None or _row(name) is not None:
        return True
    load_plugins()
    return _type_target(name) is not None or _row(name) is not None


def _load_target(target: str, name: str) -> Callable[..., Provider]:
    module, _, attr = target.partition(":")
    try:
        value: Callable[..., Provider] = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"the provider type {name!r} cannot be loaded from {target}: {type(exc).__name__}: {exc}"
        ) from None
    return value
