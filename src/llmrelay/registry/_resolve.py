"""Model strings: ``PROVIDER/MODEL``, aliases, and the default model when a call names none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ..config import Config, ConfigError
from ._plugins import _row

__all__ = ["ENV_DEFAULTS", "LOCAL_DEFAULT", "ModelRef", "Source", "default_model", "resolve_model"]

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
    chain: tuple[str, ...] = ()
    """When the string names a ``[fallbacks]`` or ``[routers]`` entry: its member model strings (in order),
    and ``provider`` is the group's name (``model`` is ``None``). Empty for a single model."""
    group: Literal["fallback", "router"] | None = None
    """What ``chain`` is: a fallback's members or a router's deployments; ``None`` for a single model."""

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider


Knows = Callable[[str], bool]
"""Whether a provider name can be used (registered, configured, an endpoint row or a provider type)."""
Unknown = Callable[[str], ConfigError]
"""The error for a provider name that cannot be used."""


def resolve_model(model: str | None, config: Config, knows: Knows, unknown: Unknown) -> ModelRef:
    """Resolve a model string (or ``None``: the default model) against ``config``'s aliases and default."""
    if model is None or not model.strip():
        return default_model(config, knows, unknown)
    text = model.strip()
    alias = None
    source: Source = "explicit"
    seen: set[str] = set()
    while text in config.aliases and text not in seen:
        seen.add(text)
        alias = alias or text
        source = "alias"
        text = config.aliases[text]
    chain = config.fallbacks.get(text)
    if chain is not None:
        return ModelRef(provider=text, model=None, source=source, alias=alias, chain=chain, group="fallback")
    router = config.routers.get(text)
    if router is not None:
        members = tuple(d.model for d in router.deployments)
        return ModelRef(provider=text, model=None, source=source, alias=alias, chain=members, group="router")
    provider, _, name = text.partition("/")
    if not provider:
        raise ConfigError(f"invalid model string {model!r}: expected PROVIDER/MODEL, e.g. openai/gpt-4o-mini")
    if not knows(provider):
        raise unknown(provider)
    return ModelRef(provider=provider, model=name or None, source=source, alias=alias)


def default_model(config: Config, knows: Knows, unknown: Unknown) -> ModelRef:
    """The model used when a call names none (see ``llmrelay.registry``'s docstring)."""
    if config.default:
        ref = resolve_model(config.default, config, knows, unknown)
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
