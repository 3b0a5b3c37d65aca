"""``ProviderRegistry``: named providers, resolved from model strings and built once each."""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Callable

from .._provider import Provider
from .._transport import AiohttpTransport, Transport
from ..config import Config, ConfigError, ProviderConfig, suggest
from ._factory import build_provider
from ._plugins import _is_known_type, known_types, load_plugins
from ._resolve import ModelRef, default_model, resolve_model
from ._resources import StackResources
from ._stacks import build_stack

__all__ = ["ProviderRegistry", "RegisteredProvider"]


RegisteredProvider = Provider | Callable[[str | None], Provider]


class ProviderRegistry:
    """Named providers, built on first use from the configuration, endpoint rows and the environment.

    Safe to share between tasks and threads: lookups and builds happen under a lock, and each (provider,
    model) pair is built once. Providers built here share one connection pool (``transport``); close them
    all with ``await registry.aclose()`` or ``async with registry:``. Every provider is bound to the event
    loop that first uses it, so use one registry per event loop.
    """

    def __init__(
        self, config: Config | None = None, *, transport: Transport | None = None, metered: bool = True
    ) -> None:
        self.config = config if config is not None else Config()
        self.metered = metered
        """Whether stacks get ``Metered`` from ``[budgets]``; the gateway meters each request itself."""
        self._lock = threading.RLock()
        self._registered: dict[str, RegisteredProvider] = {}
        self._built: dict[tuple[str, str | None], Provider] = {}
        self._stacks: dict[ModelRef, Provider] = {}
        self._resources = StackResources(self.config)
        self._transport = transport
        self._owns_transport = transport is None

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> ProviderRegistry:
        """A registry over the configuration found as ``load_config(path)`` describes."""
        from ..config import load_config

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
            self._stacks.clear()

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
        return resolve_model(model, self.config, self.knows, self._unknown)

    def default_model(self) -> ModelRef:
        """The model used when a call names none (see ``llmrelay.registry``'s docstring)."""
        return default_model(self.config, self.knows, self._unknown)

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

    def provider(self, model: str | ModelRef | None = None) -> Provider:
        """The configured stack for a model string (or a ``ModelRef`` from ``resolve``), with that model as
        its default: the bare provider (``get``) under its ``[rate_limits]``, ``Retrying`` with the
        ``[retry]`` policy and ``Metered`` with the ``[budgets]``; a ``Fallback`` (or ``Hedged``) for a
        ``[fallbacks]`` name, a ``Router`` for a ``[routers]`` name (see ``llmrelay.registry._stacks``).
        Built once per model string, so a router's breakers and counters live as long as the registry.
        Reach the bare provider with ``get(ref.provider, ref.model)`` or the wrapper's ``inner``."""
        ref = model if isinstance(model, ModelRef) else self.resolve(model)
        key = ModelRef(ref.provider, ref.model, chain=ref.chain, group=ref.group)
        with self._lock:
            stack = self._stacks.get(key)
            if stack is None:
                stack = self._stacks[key] = build_stack(self, ref, self._resources)
            return stack

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
        for router, spec in self.config.routers.items():
            targets += [(f"routers.{router}.deployments[{i}]", d.model) for i, d in enumerate(spec.deployments)]
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
            self._stacks.clear()
        for provider in built:
            await provider.aclose()
        await self._resources.aclose()
        if self._owns_transport and self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> ProviderRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
