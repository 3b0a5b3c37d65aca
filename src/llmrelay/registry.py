"""Provider registry, factory and model strings.

A model string is ``PROVIDER/MODEL`` (``openai/gpt-4o-mini``, ``groq/llama-3.3-70b-versatile``,
``local/smollm2``); the model part may itself contain slashes (``openrouter/meta-llama/llama-3.3-70b``).
``PROVIDER`` alone means that provider's default model, and an alias from ``[aliases]`` stands for the
model string it names. ``ProviderRegistry.resolve`` turns a string into a ``ModelRef``; ``get`` builds
(once) the ``Provider`` for it.

Where a provider name is looked up, first match wins:

1. providers registered in code (``registry.register(name, provider_or_factory)``);
2. ``[providers.NAME]`` tables in the configuration;
3. endpoint rows (``llmrelay.endpoints``: ``openai``, ``groq``, ``anthropic``, ...), configured entirely
   by the environment variables the ecosystem already uses (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
   ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``OLLAMA_HOST``, ``AZURE_OPENAI_*``, and
   each row's own);
4. provider types: the wire dialects, ``local`` (the embedded GGUF model) and plugin types.

Plugins: a package adds provider types through the entry-point group ``llmrelay.providers`` (name ->
``module:Class``; the class takes the keyword arguments ``name``, ``model`` and, when configured,
``base_url``, ``api_key``, ``api_key_env``, ``headers``, ``timeouts``, ``transport`` and the entry's
``settings``), and endpoint rows through ``llmrelay.endpoints`` (name -> an ``Endpoint``, an iterable of
them, or a function returning either). Plugins are discovered lazily, the first time a name is not found
among the built-in ones or everything is listed; a broken plugin is a warning, never a crash.

The default model, when a call names none: ``default`` from the configuration; else the first configured
provider with a ``default_model``; else the first provider whose key is in the environment (see
``ENV_DEFAULTS``); else the embedded local model ``local/smollm2``.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ._errors import MissingApiKey
from ._provider import LlmRelayWarning, Provider
from ._transport import AiohttpTransport, Transport
from .config import Config, ConfigError, ProviderConfig, suggest
from .endpoints import DIALECT_PROVIDERS, Endpoint, endpoints, register_endpoint

__all__ = [
    "ENV_DEFAULTS",
    "PROVIDERS_GROUP",
    "ENDPOINTS_GROUP",
    "ModelRef",
    "ProviderRegistry",
    "build_provider",
    "configured_entries",
    "known_types",
    "load_plugins",
    "register_provider_type",
]

PROVIDERS_GROUP = "llmrelay.providers"
"""Entry-point group for provider types (dialects): name -> ``module:Class``."""
ENDPOINTS_GROUP = "llmrelay.endpoints"
"""Entry-point group for endpoint rows: name -> ``Endpoint`` | iterable | function returning either."""

ENV_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("groq", "llama-3.3-70b-versatile"),
    ("mistral", "mistral-small-latest"),
    ("deepseek", "deepseek-chat"),
    ("openrouter", "openai/gpt-4o-mini"),
)
"""(endpoint row, model) tried in order for the default model when nothing is configured: the first row
whose key is set in the environment wins."""

LOCAL_DEFAULT = ("local", "smollm2")

# Provider types that are not wire dialects: name -> "module:Class".
_TYPES: dict[str, str] = {"local": "llmrelay.providers.local:LocalProvider"}

_types_lock = threading.Lock()
_plugins_lock = threading.Lock()
_plugins_loaded = False

Source = Literal["explicit", "alias", "config", "env", "builtin"]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A resolved model string: which provider, which model, and where the choice came from."""

    provider: str
    model: str | None
    """``None`` means the provider's default model."""
    source: Source = "explicit"
    """``explicit`` (the string named it), ``alias``, ``config`` (the configured default), ``env`` (picked
    because a key is in the environment) or ``builtin`` (nothing configured: the embedded local model)."""
    alias: str | None = None
    """The alias the string went through, if any."""

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider


# --- provider types and plugins ----------------------------------------------------------------------------


def register_provider_type(name: str, target: str | Callable[..., Provider], *, replace_existing: bool = False) -> None:
    """Add a provider type (``type = NAME`` in the configuration, ``NAME/model`` in model strings).

    ``target`` is a ``module:Class`` string (loaded on first use) or the class/factory itself; it is called
    with keyword arguments as described in the module docstring.
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


def load_plugins(*, force: bool = False) -> builtins.list[str]:
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


def _rows_from(value: object) -> builtins.list[Endpoint]:
    if isinstance(value, Endpoint):
        return [value]
    if isinstance(value, Iterable):
        rows = builtins.list(value)
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


def known_types(*, plugins: bool = True) -> builtins.list[str]:
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


# --- the factory -------------------------------------------------------------------------------------------


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
    from .endpoints import provider_for

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


# --- the registry ------------------------------------------------------------------------------------------


RegisteredProvider = Provider | Callable[[str | None], Provider]


class ProviderRegistry:
    """Named providers, built on first use from the configuration, endpoint rows and the environment.

    Safe to share between tasks and threads: lookups and builds happen under a lock, and each (provider,
    model) pair is built once. Providers built here share one connection pool (``transport``); close them
    all with ``await registry.aclose()`` or ``async with registry:``. Every provider is bound to the event
    loop that first uses it, so use one registry per event loop.
    """

    def __init__(self, config: Config | None = None, *, transport: Transport | None = None) -> None:
        self.config = config if config is not None else Config()
        self._lock = threading.RLock()
        self._registered: dict[str, RegisteredProvider] = {}
        self._built: dict[tuple[str, str | None], Provider] = {}
        self._transport = transport
        self._owns_transport = transport is None

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> ProviderRegistry:
        """A registry over the configuration found as ``load_config(path)`` describes."""
        from .config import load_config

        return cls(load_config(path))

    def __repr__(self) -> str:
        return f"ProviderRegistry(config={self.config.path!s}, providers={len(self.config.providers)})"

    # --- registration and listing ---

    def register(self, name: str, provider: RegisteredProvider, *, replace_existing: bool = False) -> None:
        """Register a provider instance (used for every model) or a factory ``model -> Provider``."""
        if "/" in name or not name:
            raise ValueError(f"a provider name must be non-empty and contain no '/', got {name!r}")
        with self._lock:
            if name in self._registered and not replace_existing:
                raise ValueError(f"provider {name!r} is already registered")
            self._registered[name] = provider
            for key in [k for k in self._built if k[0] == name]:
                del self._built[key]

    def list(self) -> builtins.list[str]:
        """Every name usable as ``PROVIDER`` in a model string, sorted."""
        load_plugins()
        with self._lock:
            names = set(self._registered) | set(self.config.providers)
        names.update(known_types(plugins=False))
        return sorted(names)

    def knows(self, name: str) -> bool:
        with self._lock:
            if name in self._registered or name in self.config.providers:
                return True
        return _is_known_type(name)

    def entry(self, name: str) -> ProviderConfig:
        """The configuration entry for ``name``: its ``[providers.NAME]`` table, or an implicit one."""
        configured = self.config.providers.get(name)
        if configured is not None:
            return configured
        if not self.knows(name):
            raise self._unknown(name)
        return ProviderConfig(name=name)

    def _unknown(self, name: str) -> ConfigError:
        names = self.list()
        return ConfigError(
            f"unknown provider {name!r}{suggest(name, names)}. Add [providers.{name}] with a type to "
            f"llmrelay.toml, or use one of: {', '.join(names)}"
        )

    # --- model strings ---

    def resolve(self, model: str | None = None) -> ModelRef:
        """Resolve a model string (or ``None``: the default model) to a ``ModelRef``."""
        if model is None or not model.strip():
            return self.default_model()
        text = model.strip()
        alias = None
        source: Source = "explicit"
        seen: set[str] = set()
        while text in self.config.aliases and text not in seen:
            seen.add(text)
            alias = alias or text
            source = "alias"
            text = self.config.aliases[text]
        provider, _, name = text.partition("/")
        if not provider:
            raise ConfigError(f"invalid model string {model!r}: expected PROVIDER/MODEL, e.g. openai/gpt-4o-mini")
        if not self.knows(provider):
            raise self._unknown(provider)
        return ModelRef(provider=provider, model=name or None, source=source, alias=alias)

    def default_model(self) -> ModelRef:
        """The model used when a call names none (see the module docstring)."""
        config = self.config
        if config.default:
            ref = self.resolve(config.default)
            return replace(ref, source="config")
        for entry in config.providers.values():
            if entry.default_model:
                return ModelRef(entry.name, entry.default_model, source="config")
        if config.providers:
            raise ConfigError(
                'no default model: add default = "provider/model" at the top, or default_model to a provider',
                file=config.path,
                key="default",
            )
        for name, model in ENV_DEFAULTS:
            row = _row(name)
            if row is not None and row.resolved_key():
                return ModelRef(name, model, source="env")
        return ModelRef(*LOCAL_DEFAULT, source="builtin")

    # --- building ---

    def _shared_transport(self) -> Transport:
        if self._transport is None:
            self._transport = AiohttpTransport()
        return self._transport

    def get(self, name: str, model: str | None = None) -> Provider:
        """The provider registered or configured as ``name`` (with ``model`` as its default), built once."""
        with self._lock:
            key = (name, model)
            built = self._built.get(key)
            if built is not None:
                return built
            registered = self._registered.get(name)
            if isinstance(registered, Provider):
                return registered
            if registered is not None:
                provider = registered(model)
            else:
                provider = build_provider(
                    self.entry(name), model, transport=self._shared_transport(), file=self.config.path
                )
            self._built[key] = provider
            return provider

    def provider(self, model: str | None = None) -> Provider:
        """The provider for a model string, with that model as its default."""
        ref = self.resolve(model)
        return self.get(ref.provider, ref.model)

    def check(self) -> builtins.list[tuple[str, Exception | None]]:
        """Try to build every configured provider (no network): ``(name, None)`` or ``(name, error)``.

        Configuration faults (unknown types, bad settings) raise ``ConfigError`` at once; a missing key is
        reported per provider.
        """
        results: list[tuple[str, Exception | None]] = []
        targets = [(f"aliases.{name}", target) for name, target in self.config.aliases.items()]
        if self.config.default:
            targets.append(("default", self.config.default))
        for fallback, chain in self.config.fallbacks.items():
            targets += [(f"fallbacks.{fallback}[{i}]", model) for i, model in enumerate(chain)]
        for key, target in targets:
            try:
                self.resolve(target)
            except ConfigError as exc:
                raise ConfigError(exc.message, file=self.config.path, key=key) from None
        for name in self.config.providers:
            try:
                self.get(name)
            except ConfigError:
                raise
            except Exception as exc:
                results.append((name, exc))
            else:
                results.append((name, None))
        return results

    async def aclose(self) -> None:
        """Close every provider built here and the shared connection pool."""
        with self._lock:
            built = builtins.list(self._built.values())
            self._built.clear()
        for provider in built:
            await provider.aclose()
        if self._owns_transport and self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> ProviderRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def configured_entries(registry: ProviderRegistry) -> builtins.list[tuple[ProviderConfig, str]]:
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
