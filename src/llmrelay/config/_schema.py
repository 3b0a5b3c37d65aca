"""The typed configuration and its validation.

``parse_config(data, file)`` turns the dict ``tomllib`` produced into frozen dataclasses, checking every
value and naming the file and key path of the first thing wrong (``providers.groq.base_url: not a URL``).
Unknown keys are errors too, with the closest known key suggested, so a typo never silently does nothing.

The sections::

    default = "openai/gpt-4o-mini"            # the model used when a call names none

    [providers.NAME]                          # one per provider you reach; NAME is used in model strings
    type = "groq"                             # a dialect (openai, anthropic, ...), an endpoint row (groq,
                                              # deepseek, ...), "local", or a plugin's type; default: NAME
    base_url = "https://..."                  # overrides the row's URL
    api_key_env = "GROQ_API_KEY"              # where the key is; a literal api_key works but is warned about
    default_model = "llama-3.3-70b-versatile"
    models = ["llama-3.3-70b-versatile"]      # what `llmrelay models` lists
    headers = { "X-Team" = "research" }
    timeouts = { connect = 5, first_byte = 60, idle = 30, total = 600 }   # seconds; false disables one
    settings = { organization = "org-..." }   # extra keyword arguments for the provider class

    [aliases]                                 # short name -> model string
    fast = "groq/llama-3.3-70b-versatile"

    [fallbacks]                               # name -> model strings (or aliases, or other fallback
    main = ["openai/gpt-4o-mini", "local/smollm2"]   # names) tried in order; NAME works as a model string

    [retry]                                   # the retry policy of every model resolved through here
    max_attempts = 3                          # 1 disables retries
    base_delay = 0.5                          # seconds; backoff is full-jitter exponential, capped
    max_delay = 8.0
    deadline = 30                             # seconds from the first attempt; default: none

    # [fallbacks.NAME] tables (first_event_timeout, hedge_after), [routers], [rate_limits], [budgets]
    # and [prices]: see ``config._resilience``.

    [deliberations.NAME]                      # a named deliberation: `llmrelay deliberate --name NAME`
    participants = ["skeptic=openai/gpt-4o-mini", "builder=anthropic/claude-haiku-4-5"]
    strategy = "debate"                       # see ``config._deliberations`` for every key
    chair = "openai/gpt-4o"
    rounds = 2

    [gateway]                                 # `llmrelay serve`: see ``config._gateway`` for every key
    host = "127.0.0.1"
    port = 8787
    api_key_env = "LLMRELAY_GATEWAY_KEY"
    expose = ["fast", "openai/gpt-4o-mini"]

Later issues extend a section by adding fields to its dataclass and lines to its parser here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .._provider import LlmRelayWarning
from .._transport import Timeouts
from ._check import Checker
from ._check import opt as _opt
from ._deliberations import DeliberationConfig, parse_deliberations
from ._gateway import GatewayConfig, parse_gateway
from ._resilience import (
    BudgetsConfig,
    FallbackConfig,
    PriceConfig,
    RateLimitsConfig,
    RouterConfig,
    parse_budgets,
    parse_fallbacks,
    parse_prices,
    parse_rate_limits,
    parse_routers,
)

__all__ = [
    "Config",
    "DeliberationConfig",
    "GatewayConfig",
    "ProviderConfig",
    "RetryConfig",
    "parse_config",
]

T = TypeVar("T")

_SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "credential")


def looks_secret(name: str) -> bool:
    """Whether a header or setting name suggests its value is a credential (so it is never printed)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One ``[providers.NAME]`` table."""

    name: str
    """The name used in model strings (``NAME/model``)."""
    type: str | None = None
    """A dialect, an endpoint row, ``local`` or a plugin's type; ``None`` means the same as ``name``."""
    base_url: str | None = None
    api_key_env: str | None = None
    """The environment variable holding the key (the row's own variables when ``None``)."""
    api_key: str | None = field(default=None, repr=False)
    """A literal key from the file (accepted, warned about, never printed)."""
    default_model: str | None = None
    models: tuple[str, ...] = ()
    """Models to list in ``llmrelay models`` besides ``default_model``."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeouts: Timeouts | None = None
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Extra keyword arguments for the provider class (``organization``, ``api_version``, ``model_path``...)."""

    @property
    def kind(self) -> str:
        """The provider type this entry builds: ``type``, else the entry's own name."""
        return self.type or self.name


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """The ``[retry]`` table: the ``Retrying`` policy of every model resolved through the configuration.

    The defaults (three attempts: two retries of retryable errors) apply when the table is absent;
    ``max_attempts = 1`` disables retries."""

    max_attempts: int = 3
    base_delay: float = 0.5
    """Seconds; the n-th retry waits a random time up to ``min(max_delay, base_delay * 2**n)``."""
    max_delay: float = 8.0
    """Seconds; also caps a ``Retry-After`` wait."""
    deadline: float | None = None
    """Seconds from the first attempt after which no retry starts; ``None``: no deadline."""


@dataclass(frozen=True, slots=True)
class Config:
    """A whole ``llmrelay.toml`` (or the empty configuration when there is none)."""

    path: Path | None = None
    """The file it was read from."""
    default: str | None = None
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    """In file order."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Each ``[fallbacks]`` name's members, in order (both the list and the table form)."""
    fallback_options: Mapping[str, FallbackConfig] = field(default_factory=dict)
    """The options of the ``[fallbacks.NAME]`` tables; a name in the list form has none."""
    retry: RetryConfig = field(default_factory=RetryConfig)
    """The ``[retry]`` table, or the default policy when the file has none."""
    routers: Mapping[str, RouterConfig] = field(default_factory=dict)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    budgets: BudgetsConfig | None = None
    """The ``[budgets]`` table; ``None``: nothing is metered."""
    prices: Mapping[str, PriceConfig] = field(default_factory=dict)
    deliberations: Mapping[str, DeliberationConfig] = field(default_factory=dict)
    gateway: GatewayConfig | None = None


# --- sections ------------------------------------------------------------------------------------------

_TOP_KEYS = (
    "default",
    "providers",
    "aliases",
    "fallbacks",
    "retry",
    "routers",
    "rate_limits",
    "budgets",
    "prices",
    "deliberations",
    "gateway",
)
_PROVIDER_KEYS = (
    "type",
    "dialect",
    "base_url",
    "api_key_env",
    "api_key",
    "default_model",
    "models",
    "headers",
    "timeouts",
    "settings",
)
_TIMEOUT_KEYS = ("connect", "first_byte", "idle", "total")


def _provider(c: Checker, name: str, raw: object) -> ProviderConfig:
    key = f"providers.{name}"
    if "/" in name or not name.strip():
        raise c.fail(
            key, "a provider name must be non-empty and contain no '/' (it is the first part of model strings)"
        )
    table = c.table(raw, key)
    c.keys(table, key, _PROVIDER_KEYS)
    if "type" in table and "dialect" in table:
        raise c.fail(f"{key}.dialect", "give either type or dialect (they mean the same), not both")
    kind_key = "type" if "type" in table else "dialect"
    kind = c.string(table[kind_key], f"{key}.{kind_key}") if kind_key in table else None
    base_url = c.url(table["base_url"], f"{key}.base_url") if "base_url" in table else None
    key_env = c.env_name(table["api_key_env"], f"{key}.api_key_env") if "api_key_env" in table else None
    api_key = c.string(table["api_key"], f"{key}.api_key") if "api_key" in table else None
    if api_key is not None:
        where = f"{c.file}: " if c.file else ""
        warnings.warn(
            f"{where}{key}.api_key: an API key written in the configuration file; "
            f'prefer api_key_env = "SOME_VAR" so the key stays out of the file',
            LlmRelayWarning,
            stacklevel=2,
        )
    default_model = c.string(table["default_model"], f"{key}.default_model") if "default_model" in table else None
    models = c.strings(table["models"], f"{key}.models") if "models" in table else ()
    headers: dict[str, str] = {}
    if "headers" in table:
        for hname, hvalue in c.table(table["headers"], f"{key}.headers").items():
            headers[hname] = c.string(hvalue, f"{key}.headers.{hname}", empty=True)
    timeouts = _timeouts(c, table["timeouts"], f"{key}.timeouts") if "timeouts" in table else None
    settings = dict(c.table(table["settings"], f"{key}.settings")) if "settings" in table else {}
    return ProviderConfig(
        name=name,
        type=kind,
        base_url=base_url,
        api_key_env=key_env,
        api_key=api_key,
        default_model=default_model,
        models=models,
        headers=headers,
        timeouts=timeouts,
        settings=settings,
    )


def _timeouts(c: Checker, raw: object, key: str) -> Timeouts:
    table = c.table(raw, key)
    c.keys(table, key, _TIMEOUT_KEYS)
    base = Timeouts()
    values: dict[str, float | None] = {}
    for name in _TIMEOUT_KEYS:
        if name not in table:
            values[name] = getattr(base, name)
        elif table[name] is False:
            values[name] = None
        else:
            values[name] = c.positive(table[name], f"{key}.{name}")
    return Timeouts(**values)


def _aliases(c: Checker, raw: object) -> dict[str, str]:
    table = c.table(raw, "aliases")
    aliases = {name: c.model_string(target, f"aliases.{name}") for name, target in table.items()}
    for start in aliases:
        seen = [start]
        target = aliases[start]
        while target in aliases:
            if target in seen:
                chain = " -> ".join([*seen, target])
                raise c.fail(f"aliases.{start}", f"alias cycle: {chain}")
            seen.append(target)
            target = aliases[target]
    return aliases


def _check_fallback_names(c: Checker, config: Config) -> None:
    """A fallback name is not also a provider or an alias, and no chain reaches itself (through aliases
    or other fallback names): the key path names the member that closes the cycle."""
    for name in config.fallbacks:
        if name in config.providers or name in config.aliases or "/" in name or not name.strip():
            what = "a provider" if name in config.providers else "an alias" if name in config.aliases else None
            reason = f"has the name of {what}" if what else "must be non-empty and contain no '/'"
            raise c.fail(f"fallbacks.{name}", f"a fallback name {reason}")

    def target(text: str) -> str:
        seen: set[str] = set()
        while text in config.aliases and text not in seen:
            seen.add(text)
            text = config.aliases[text]
        return text

    def walk(name: str, path: list[str]) -> None:
        for i, member in enumerate(config.fallbacks[name]):
            nested = target(member)
            if nested not in config.fallbacks:
                continue
            if nested in path:
                chain = " -> ".join([*path, nested])
                raise c.fail(f"fallbacks.{name}[{i}]", f"fallback cycle: {chain}")
            walk(nested, [*path, nested])

    for name in config.fallbacks:
        walk(name, [name])

    for name, router in config.routers.items():
        taken = (
            "a provider"
            if name in config.providers
            else "an alias"
            if name in config.aliases
            else "a fallback"
            if name in config.fallbacks
            else None
        )
        if taken:
            raise c.fail(f"routers.{name}", f"a router name has the name of {taken}")
        for i, deployment in enumerate(router.deployments):
            resolved = target(deployment.model)
            if resolved in config.fallbacks or resolved in config.routers:
                raise c.fail(
                    f"routers.{name}.deployments[{i}]",
                    f"a deployment is one model (PROVIDER/MODEL or an alias of one), not the group {resolved!r}",
                )


def _retry(c: Checker, raw: object) -> RetryConfig:
    known = ("max_attempts", "base_delay", "max_delay", "deadline")
    table = c.table(raw, "retry")
    c.keys(table, "retry", known)
    base = RetryConfig()
    config = RetryConfig(
        max_attempts=_opt(table, "max_attempts", lambda v, k: c.integer(v, k, maximum=100), "retry")
        or base.max_attempts,
        base_delay=_opt(table, "base_delay", c.positive, "retry") or base.base_delay,
        max_delay=_opt(table, "max_delay", c.positive, "retry") or base.max_delay,
        deadline=_opt(table, "deadline", c.positive, "retry"),
    )
    if config.base_delay > config.max_delay:
        key = "retry.base_delay" if "base_delay" in table else "retry.max_delay"
        raise c.fail(key, f"base_delay ({config.base_delay:g}) is more than max_delay ({config.max_delay:g})")
    return config


NOT_YET_IN_EFFECT: Mapping[str, str] = {}
"""Sections the file may hold and that are validated, but that no code reads yet (each goes when the work
that implements it lands). Loading a file with one of them warns, so a configured limit never silently
limits nothing."""


def parse_config(data: Mapping[str, Any], file: str | Path | None = None) -> Config:
    """Validate a parsed TOML document and build the ``Config``; raises ``ConfigError`` on the first fault."""
    path = Path(file) if file is not None else None
    c = Checker(path)
    c.keys(data, "", _TOP_KEYS)
    default = c.model_string(data["default"], "default") if "default" in data else None
    providers = {name: _provider(c, name, raw) for name, raw in c.table(data.get("providers", {}), "providers").items()}
    aliases = _aliases(c, data["aliases"]) if "aliases" in data else {}
    clash = sorted(set(aliases) & set(providers))
    if clash:
        raise c.fail(f"aliases.{clash[0]}", "an alias cannot have the name of a configured provider")
    chains, options = parse_fallbacks(c, data["fallbacks"]) if "fallbacks" in data else ({}, {})
    config = Config(
        path=path,
        default=default,
        providers=providers,
        aliases=aliases,
        fallbacks=chains,
        fallback_options=options,
        retry=_retry(c, data["retry"]) if "retry" in data else RetryConfig(),
        routers=parse_routers(c, data["routers"]) if "routers" in data else {},
        rate_limits=parse_rate_limits(c, data["rate_limits"]) if "rate_limits" in data else RateLimitsConfig(),
        budgets=parse_budgets(c, data["budgets"]) if "budgets" in data else None,
        prices=parse_prices(c, data["prices"]) if "prices" in data else {},
        deliberations=parse_deliberations(c, data["deliberations"]) if "deliberations" in data else {},
        gateway=parse_gateway(c, data["gateway"]) if "gateway" in data else None,
    )
    _check_fallback_names(c, config)
    where = f"{path}: " if path else ""
    for section, consequence in NOT_YET_IN_EFFECT.items():
        if section in data:
            warnings.warn(
                f"{where}[{section}] is valid but not yet in effect in this version of llmrelay: {consequence}",
                LlmRelayWarning,
                stacklevel=2,
            )
    return config
