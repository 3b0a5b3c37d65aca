"""The resilience and accounting sections: ``[fallbacks]`` options, ``[routers]``, ``[rate_limits]``,
``[budgets]`` and ``[prices]``.

::

    [fallbacks]
    main = ["openai/gpt-4o-mini", "local/smollm2"]     # the short form: members tried in order

    [fallbacks.careful]                                # the table form, with options
    models = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    first_event_timeout = 10      # seconds an attempt may take to its first event before the next is tried
    hedge_after = 2.0             # start the next member too after 2 s without an answer (Hedged)

    [routers.gpt4o]                                    # one logical model, several deployments
    strategy = "least_in_flight"  # priority | round_robin | weighted | least_in_flight | latency
    deployments = ["azure/gpt-4o", { model = "openai/gpt-4o", weight = 2 }]
    breaker = { error_ratio = 0.5, min_requests = 5, window = 60, cooldown = 30 }

    [rate_limits]
    backend = "redis://127.0.0.1:6379/0"               # or "memory" (the default): one process only
    [rate_limits.openai]                               # a provider (all its models share it) ...
    requests_per_minute = 500
    tokens_per_minute = 200000
    max_concurrency = 16
    on_limit = "wait"                                  # or "fail": RateLimitError with retry_after
    max_wait = 30                                      # seconds
    [rate_limits."openai/gpt-4o"]                      # ... or one model (both apply to it)
    tokens_per_minute = 30000

    [budgets]
    store = "sqlite:///llmrelay-ledger.db"            # the usage ledger: "memory" (default) or a SQLite file
    [budgets."*"]                                      # everything; or a provider, a model, "key:NAME"
    max_cost = 25.00                                   # in currency (USD by default)
    period = "day"                                     # day | month | total
    [budgets.openai]
    max_tokens = 2000000
    period = "month"

    [prices."work/my-model"]                           # or [prices.work] for every model of `work`
    input_per_mtok = 0.50                              # per million tokens; strings ("0.50") are exact
    output_per_mtok = 1.50
    cache_read_per_mtok = 0.05
    currency = "USD"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

from ._check import Checker, opt

__all__ = [
    "BudgetConfig",
    "BudgetsConfig",
    "BreakerConfig",
    "DeploymentConfig",
    "FallbackConfig",
    "PriceConfig",
    "RateLimitConfig",
    "RateLimitsConfig",
    "RouterConfig",
]

OnLimit = Literal["wait", "fail"]
Period = Literal["day", "month", "total"]
Strategy = Literal["priority", "round_robin", "weighted", "least_in_flight", "latency"]

_STRATEGIES: tuple[str, ...] = ("priority", "round_robin", "weighted", "least_in_flight", "latency")
_PERIODS: tuple[str, ...] = ("day", "month", "total")


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    """The options of a ``[fallbacks.NAME]`` table (the short list form has the defaults)."""

    first_event_timeout: float | None = None
    """Seconds an attempt may take to its first event before it is abandoned and the next member tried."""
    hedge_after: float | None = None
    """When set, the members are hedged: after this many seconds without an answer the next starts too."""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A router's per-deployment circuit breaker (``CircuitBreaker``'s arguments)."""

    error_ratio: float = 0.5
    min_requests: int = 5
    window: float = 60.0
    cooldown: float = 30.0


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """One deployment of a router: a model string (or alias) and its weight."""

    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """One ``[routers.NAME]`` table; ``NAME`` is usable wherever a model string is."""

    deployments: tuple[DeploymentConfig, ...]
    strategy: Strategy = "priority"
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """One ``[rate_limits.NAME]`` table; ``None`` means no limit on that axis."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_concurrency: int | None = None
    on_limit: OnLimit = "wait"
    max_wait: float = 60.0
    """Seconds a call may wait for the budget in all; a longer wait raises ``RateLimitError``."""


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    """The ``[rate_limits]`` table: where the buckets live, and one limit per provider or model string."""

    backend: str = "memory"
    """``memory`` (this process) or a Redis URL (``redis://HOST:PORT/DB``; every process using it shares
    the budgets)."""
    limits: Mapping[str, RateLimitConfig] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """One ``[budgets.SCOPE]`` table: a cap on cost, tokens or both per period."""

    max_cost: Decimal | None = None
    max_tokens: int | None = None
    period: Period = "total"
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    """The ``[budgets]`` table: the usage ledger's store and the budgets checked against it."""

    store: str = "memory"
    """``memory`` or ``sqlite:///PATH`` (a relative path is relative to the configuration file)."""
    budgets: Mapping[str, BudgetConfig] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PriceConfig:
    """One ``[prices.PROVIDER]`` or ``[prices."PROVIDER/MODEL"]`` table, per million tokens."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None
    currency: str = "USD"


# --- parsers -------------------------------------------------------------------------------------------


def _choice(c: Checker, value: object, key: str, choices: tuple[str, ...]) -> str:
    text = c.string(value, key)
    if text not in choices:
        raise c.fail(key, f"expected one of: {', '.join(choices)}; got {text!r}")
    return text


def _money(c: Checker, value: object, key: str, *, zero: bool = False) -> Decimal:
    """A non-negative (or positive) amount: a number, or a string for an exact decimal (``"0.15"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise c.fail(key, f"expected a number or a decimal string, got {type(value).__name__}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise c.fail(key, f"expected a decimal number like 0.15, got {value!r}") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not zero):
        raise c.fail(key, f"expected a {'non-negative' if zero else 'positive'} amount, got {value!r}")
    return amount


def _currency(c: Checker, value: object, key: str) -> str:
    text = c.string(value, key).strip()
    if len(text) != 3 or not text.isalpha():
        raise c.fail(key, f"expected a three-letter currency code like USD, got {text!r}")
    return text.upper()


def parse_fallbacks(c: Checker, raw: object) -> tuple[dict[str, tuple[str, ...]], dict[str, FallbackConfig]]:
    """``[fallbacks]``: each name is a list of model strings, or a table with ``models`` and options."""
    table = c.table(raw, "fallbacks")
    chains: dict[str, tuple[str, ...]] = {}
    options: dict[str, FallbackConfig] = {}
    for name, value in table.items():
        key = f"fallbacks.{name}"
        if isinstance(value, dict):
            c.keys(value, key, ("models", "first_event_timeout", "hedge_after"))
            if "models" not in value:
                raise c.fail(f"{key}.models", "missing; expected a list of model strings tried in order")
            members = value["models"]
            key_models = f"{key}.models"
            options[name] = FallbackConfig(
                first_event_timeout=opt(value, "first_event_timeout", c.positive, key),
                hedge_after=opt(value, "hedge_after", c.positive, key),
            )
        else:
            members, key_models = value, key
        models = c.strings(members, key_models, nonempty=True)
        chains[name] = tuple(c.model_string(m, f"{key_models}[{i}]") for i, m in enumerate(models))
    return chains, options


def parse_routers(c: Checker, raw: object) -> dict[str, RouterConfig]:
    out: dict[str, RouterConfig] = {}
    for name, value in c.table(raw, "routers").items():
        key = f"routers.{name}"
        if "/" in name or not name.strip():
            raise c.fail(key, "a router name must be non-empty and contain no '/' (it is used as a model string)")
        table = c.table(value, key)
        c.keys(table, key, ("deployments", "strategy", "breaker"))
        if "deployments" not in table:
            raise c.fail(f"{key}.deployments", "missing; expected a list of model strings or {model, weight} tables")
        items = table["deployments"]
        if not isinstance(items, list) or not items:
            raise c.fail(f"{key}.deployments", "expected a non-empty list of model strings or {model, weight} tables")
        deployments = []
        for i, item in enumerate(items):
            where = f"{key}.deployments[{i}]"
            if isinstance(item, dict):
                c.keys(item, where, ("model", "weight"))
                if "model" not in item:
                    raise c.fail(f"{where}.model", "missing; expected a model string")
                deployments.append(
                    DeploymentConfig(
                        model=c.model_string(item["model"], f"{where}.model"),
                        weight=opt(item, "weight", c.positive, where) or 1.0,
                    )
                )
            else:
                deployments.append(DeploymentConfig(model=c.model_string(item, where)))
        strategy: Any = _choice(c, table["strategy"], f"{key}.strategy", _STRATEGIES) if "strategy" in table else None
        out[name] = RouterConfig(
            deployments=tuple(deployments),
            strategy=strategy or "priority",
            breaker=_breaker(c, table["breaker"], f"{key}.breaker") if "breaker" in table else BreakerConfig(),
        )
    return out


def _breaker(c: Checker, raw: object, key: str) -> BreakerConfig:
    table = c.table(raw, key)
    c.keys(table, key, ("error_ratio", "min_requests", "window", "cooldown"))
    base = BreakerConfig()
    ratio = opt(table, "error_ratio", c.positive, key)
    if ratio is not None and ratio > 1:
        raise c.fail(f"{key}.error_ratio", f"expected a ratio in (0, 1], got {ratio:g}")
    return BreakerConfig(
        error_ratio=ratio or base.error_ratio,
        min_requests=opt(table, "min_requests", lambda v, k: c.integer(v, k), key) or base.min_requests,
        window=opt(table, "window", c.positive, key) or base.window,
        cooldown=opt(table, "cooldown", c.positive, key) or base.cooldown,
    )


_LIMIT_KEYS = ("requests_per_minute", "tokens_per_minute", "max_concurrency", "on_limit", "max_wait")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def parse_rate_limits(c: Checker, raw: object) -> RateLimitsConfig:
    """``[rate_limits]``: an optional ``backend`` and one table per provider or model string."""
    table = c.table(raw, "rate_limits")
    backend = "memory"
    limits: dict[str, RateLimitConfig] = {}
    for name, value in table.items():
        key = f"rate_limits.{name}"
        if name == "backend":
            backend = _backend(c, value, key)
            continue
        if not isinstance(value, dict):
            raise c.fail(
                key,
                f"expected a table of limits ([rate_limits.{name}]) or the key 'backend'; got {type(value).__name__}",
            )
        c.keys(value, key, _LIMIT_KEYS)
        axes = ("requests_per_minute", "tokens_per_minute", "max_concurrency")
        if not any(axis in value for axis in axes):
            raise c.fail(key, f"expected at least one of: {', '.join(axes)}")
        on_limit: Any = (
            _choice(c, value["on_limit"], f"{key}.on_limit", ("wait", "fail")) if "on_limit" in value else None
        )
        limits[name] = RateLimitConfig(
            requests_per_minute=opt(value, "requests_per_minute", c.positive, key),
            tokens_per_minute=opt(value, "tokens_per_minute", c.positive, key),
            max_concurrency=opt(value, "max_concurrency", lambda v, k: c.integer(v, k), key),
            on_limit=on_limit or "wait",
            max_wait=opt(value, "max_wait", c.positive, key) or 60.0,
        )
    return RateLimitsConfig(backend=backend, limits=limits)


def _backend(c: Checker, value: object, key: str) -> str:
    text = c.string(value, key).strip()
    if text == "memory":
        return text
    parts = urlsplit(text)
    if parts.scheme not in _REDIS_SCHEMES or not (parts.netloc or parts.path):
        raise c.fail(key, f'expected "memory" or a Redis URL like "redis://127.0.0.1:6379/0", got {text!r}')
    return text


_BUDGET_KEYS = ("max_cost", "max_tokens", "period", "currency")


def parse_budgets(c: Checker, raw: object) -> BudgetsConfig:
    """``[budgets]``: an optional ``store`` and one table per scope (``*``, a provider, a model, ``key:NAME``)."""
    table = c.table(raw, "budgets")
    store = "memory"
    budgets: dict[str, BudgetConfig] = {}
    for name, value in table.items():
        key = f"budgets.{name}"
        if name == "store":
            store = _store(c, value, key)
            continue
        if not isinstance(value, dict):
            raise c.fail(key, f"expected a table ([budgets.{name}]) or the key 'store'; got {type(value).__name__}")
        c.keys(value, key, _BUDGET_KEYS)
        if "max_cost" not in value and "max_tokens" not in value:
            raise c.fail(key, "expected max_cost, max_tokens or both")
        period: Any = _choice(c, value["period"], f"{key}.period", _PERIODS) if "period" in value else None
        budgets[name] = BudgetConfig(
            max_cost=_money(c, value["max_cost"], f"{key}.max_cost") if "max_cost" in value else None,
            max_tokens=opt(value, "max_tokens", lambda v, k: c.integer(v, k), key),
            period=period or "total",
            currency=_currency(c, value["currency"], f"{key}.currency") if "currency" in value else "USD",
        )
    return BudgetsConfig(store=store, budgets=budgets)


def _store(c: Checker, value: object, key: str) -> str:
    text = c.string(value, key).strip()
    if text == "memory" or (text.startswith("sqlite:///") and len(text) > len("sqlite:///")):
        return text
    raise c.fail(
        key, f'expected "memory" or a SQLite file as "sqlite:///PATH" (e.g. sqlite:///ledger.db), got {text!r}'
    )


_PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "currency")


def parse_prices(c: Checker, raw: object) -> dict[str, PriceConfig]:
    out: dict[str, PriceConfig] = {}
    for name, value in c.table(raw, "prices").items():
        key = f"prices.{name}"
        provider, _, model = name.partition("/")
        if not provider.strip() or (name.count("/") and not model):
            raise c.fail(key, 'expected "PROVIDER" or "PROVIDER/MODEL" as the table name')
        table = c.table(value, key)
        c.keys(table, key, _PRICE_KEYS)
        for needed in ("input_per_mtok", "output_per_mtok"):
            if needed not in table:
                raise c.fail(f"{key}.{needed}", "missing; expected the price per million tokens")
        out[name] = PriceConfig(
            input_per_mtok=_money(c, table["input_per_mtok"], f"{key}.input_per_mtok", zero=True),
            output_per_mtok=_money(c, table["output_per_mtok"], f"{key}.output_per_mtok", zero=True),
            cache_read_per_mtok=_money(c, table["cache_read_per_mtok"], f"{key}.cache_read_per_mtok", zero=True)
            if "cache_read_per_mtok" in table
            else None,
            cache_write_per_mtok=_money(c, table["cache_write_per_mtok"], f"{key}.cache_write_per_mtok", zero=True)
            if "cache_write_per_mtok" in table
            else None,
            currency=_currency(c, table["currency"], f"{key}.currency") if "currency" in table else "USD",
        )
    return out
