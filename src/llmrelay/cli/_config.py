"""``llmrelay config check | show | init``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import (
    CONFIG_NAME,
    Config,
    ConfigError,
    DeliberationConfig,
    ParticipantConfig,
    RetryConfig,
    find_config,
    looks_secret,
    read_config,
    user_config_path,
)
from ..registry import ENV_DEFAULTS, ProviderRegistry
from . import EXIT_AUTH, EXIT_OK
from ._format import scrub_secrets
from ._info import key_status

__all__ = ["render_toml", "run_config", "starter_config"]

REDACTED = "[REDACTED]"


def run_config(handler: str, args: argparse.Namespace) -> int:
    if handler == "config_init":
        return _init(args)
    path = find_config(getattr(args, "config", None))
    config = read_config(path) if path is not None else Config()
    if handler == "config_show":
        sys.stdout.write(render_toml(config))
        return EXIT_OK
    return _check(config)


def _check(config: Config) -> int:
    if config.path is None:
        print(
            f"no configuration file (looked for $LLMRELAY_CONFIG, ./{CONFIG_NAME} and {user_config_path()}); "
            "providers come from environment variables"
        )
    else:
        print(f"{config.path}: valid")
    registry = ProviderRegistry(config)
    code = EXIT_OK
    for name, error in registry.check():
        entry = config.providers[name]
        if error is None:
            print(f"ok       {name} (type {entry.kind}; {key_status(entry)})")
        else:
            print(f"problem  {name}: {scrub_secrets(' '.join(str(error).split()))}")
            code = EXIT_AUTH
    default = registry.default_model()
    print(f"default model: {default} ({default.source})")
    return code


def _init(args: argparse.Namespace) -> int:
    target = Path(args.path).expanduser() if args.path else user_config_path()
    if target.exists() and not args.force:
        raise ConfigError("already exists; use --force to overwrite it, or --path to write elsewhere", file=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(starter_config(), encoding="utf-8")
    print(f"wrote {target}")
    print("check it with: llmrelay config check")
    return EXIT_OK


def starter_config() -> str:
    """A commented starter file whose default is the first provider with a key in the environment."""
    from ..endpoints import endpoints

    rows = {row.name: row for row in endpoints()}
    default = "local/smollm2"
    for name, model in ENV_DEFAULTS:
        row = rows.get(name)
        if row is not None and row.resolved_key():
            default = f"{name}/{model}"
            break
    return _STARTER.format(default=default)


_STARTER = """\
# llmrelay configuration. Model strings are PROVIDER/MODEL, e.g. openai/gpt-4o-mini or local/smollm2.
# Keys stay in environment variables: name them with api_key_env, never write them here.

default = "{default}"

[aliases]
local = "local/smollm2"
# fast = "groq/llama-3.3-70b-versatile"
# smart = "anthropic/claude-sonnet-4-5"

# Built-in services need no table when their usual variable is set (OPENAI_API_KEY, ANTHROPIC_API_KEY,
# GEMINI_API_KEY, GROQ_API_KEY, ...): `llmrelay providers` lists them. Add a table to change one, or to
# reach your own server.

# [providers.openai]
# api_key_env = "OPENAI_API_KEY"
# default_model = "gpt-4o-mini"

# [providers.work]                     # any OpenAI-compatible server
# type = "openai"
# base_url = "http://localhost:8000/v1"
# api_key_env = "WORK_LLM_KEY"
# default_model = "qwen2.5-7b-instruct"
# timeouts = {{ connect = 5, first_byte = 120, idle = 60 }}

# [providers.local]                    # in-process GGUF models (pip install 'llmrelay[local]')
# default_model = "smollm2"
# settings = {{ n_ctx = 4096, models = {{ qwen = "~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf" }} }}
"""


# --- a small TOML writer for `config show` ------------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    return json.dumps(str(value))


def _redacted(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if looks_secret(name) and isinstance(value, str):
            out[name] = REDACTED
        elif isinstance(value, Mapping):
            out[name] = _redacted(value)
        else:
            out[name] = value
    return out


def render_toml(config: Config) -> str:
    """The effective configuration as TOML, with every key, token and secret-looking value redacted."""
    lines = [f"# from {config.path}" if config.path else "# no configuration file: providers come from the environment"]
    registry = ProviderRegistry(config)
    try:
        default = registry.default_model()
        lines.append(f"# default model: {default} ({default.source})")
    except ConfigError as exc:
        lines.append(f"# default model: none ({' '.join(str(exc).split())})")
    if config.default is not None:
        lines.append(f"default = {_value(config.default)}")
    for name, entry in config.providers.items():
        lines += ["", f"[providers.{_key(name)}]", f"# {key_status(entry)}"]
        if entry.type is not None:
            lines.append(f"type = {_value(entry.type)}")
        if entry.base_url is not None:
            lines.append(f"base_url = {_value(entry.base_url)}")
        if entry.api_key_env is not None:
            lines.append(f"api_key_env = {_value(entry.api_key_env)}")
        if entry.api_key is not None:
            lines.append(f"api_key = {_value(REDACTED)}")
        if entry.default_model is not None:
            lines.append(f"default_model = {_value(entry.default_model)}")
        if entry.models:
            lines.append(f"models = {_value(list(entry.models))}")
        if entry.headers:
            lines.append(f"headers = {_value(_redacted(entry.headers))}")
        if entry.timeouts is not None:
            t = entry.timeouts
            parts = {k: (v if v is not None else False) for k, v in _timeouts(t).items()}
            lines.append(f"timeouts = {_value(parts)}")
        if entry.settings:
            lines.append(f"settings = {_value(_redacted(entry.settings))}")
    if config.aliases:
        lines += ["", "[aliases]", *(f"{_key(k)} = {_value(v)}" for k, v in config.aliases.items())]
    lines += _resilience_lines(config)
    for name, deliberation in config.deliberations.items():
        lines += ["", f"[deliberations.{_key(name)}]", *_deliberation_lines(deliberation)]
    if config.gateway is not None:
        g = config.gateway
        lines += ["", "[gateway]", f"host = {_value(g.host)}", f"port = {g.port}", f"workers = {g.workers}"]
        if g.api_key_env is not None:
            lines.append(f"api_key_env = {_value(g.api_key_env)}")
        for name in ("keys", "ledger"):
            url = getattr(g, name)
            lines.append(f"{name} = {_value(_redacted_url(url))}" if url else f"# {name}: the user data directory")
        if g.expose:
            lines.append(f"expose = {_value(list(g.expose))}")
        lines.append(f"allow_public_without_keys = {'true' if g.allow_public_without_keys else 'false'}")
        lines += [f"max_body_bytes = {g.max_body_bytes}", f"max_messages = {g.max_messages}"]
        lines.append(f"drain_timeout = {_value(g.drain_timeout)}")
        lines.append(f"tracing = {'true' if g.tracing else 'false'}")
    if not config.providers:
        env = [name for name, _ in ENV_DEFAULTS if _env_key(name)]
        lines += ["", f"# providers with a key in the environment: {', '.join(env) or 'none'}"]
    return "\n".join(lines) + "\n"


def _resilience_lines(config: Config) -> list[str]:
    """``[fallbacks]``, ``[retry]``, ``[routers]``, ``[rate_limits]``, ``[budgets]`` and ``[prices]``."""
    lines: list[str] = []
    short = {k: v for k, v in config.fallbacks.items() if k not in config.fallback_options}
    if short:
        lines += ["", "[fallbacks]", *(f"{_key(k)} = {_value(list(v))}" for k, v in short.items())]
    for name, options in config.fallback_options.items():
        lines += ["", f"[fallbacks.{_key(name)}]", f"models = {_value(list(config.fallbacks[name]))}"]
        lines += _fields(options, ("first_event_timeout", "hedge_after"))
    lines += _retry_lines(config)
    for name, router in config.routers.items():
        deployments = [
            d.model if d.weight == 1.0 else {"model": d.model, "weight": d.weight} for d in router.deployments
        ]
        b = router.breaker
        breaker = {
            "error_ratio": b.error_ratio,
            "min_requests": b.min_requests,
            "window": b.window,
            "cooldown": b.cooldown,
        }
        lines += ["", f"[routers.{_key(name)}]", f"strategy = {_value(router.strategy)}"]
        lines += [f"deployments = {_value(deployments)}", f"breaker = {_value(breaker)}"]
    limits = config.rate_limits
    if limits.limits or limits.backend != "memory":
        backend = _value(_redacted_url(limits.backend))
        lines += ["", "[rate_limits]", f"backend = {backend}"]
    for name, limit in limits.limits.items():
        lines += ["", f"[rate_limits.{_key(name)}]"]
        lines += _fields(limit, ("requests_per_minute", "tokens_per_minute", "max_concurrency", "on_limit", "max_wait"))
    if config.budgets is not None:
        lines += ["", "[budgets]", f"store = {_value(config.budgets.store)}"]
        for scope, budget in config.budgets.budgets.items():
            lines += ["", f"[budgets.{_key(scope)}]"]
            if budget.max_cost is not None:
                lines.append(f"max_cost = {_value(str(budget.max_cost))}")
            lines += _fields(budget, ("max_tokens", "period", "currency"))
    for name, price in config.prices.items():
        lines += ["", f"[prices.{_key(name)}]"]
        for field in ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok"):
            amount = getattr(price, field)
            if amount is not None:
                lines.append(f"{field} = {_value(str(amount))}")
        lines.append(f"currency = {_value(price.currency)}")
    return lines


def _participant(entry: ParticipantConfig) -> str | dict[str, Any]:
    """``"NAME=MODEL"`` when that says it all, else the table form."""
    if len(entry.models) == 1 and entry.persona is None and entry.max_tokens is None:
        return f"{entry.name}={entry.models[0]}"
    table: dict[str, Any] = {"name": entry.name, "model": entry.models[0] if len(entry.models) == 1 else entry.models}
    if entry.persona is not None:
        table["persona"] = entry.persona
    if entry.max_tokens is not None:
        table["max_tokens"] = entry.max_tokens
    return table


def _deliberation_lines(d: DeliberationConfig) -> list[str]:
    """One ``[deliberations.NAME]`` table's lines, in the form it reloads from."""
    lines = ["participants = [", *(f"    {_value(_participant(p))}," for p in d.participants), "]"]
    lines += _fields(d, ("strategy", "mode", "rounds"))
    if d.chair is not None:
        chair = d.chair
        plain = chair.name == "chair" and len(chair.models) == 1 and chair.persona is None and chair.max_tokens is None
        lines.append(f"chair = {_value(chair.models[0] if plain else _participant(chair))}")
    lines += _fields(d, ("aggregate", "agreement", "max_tokens", "temperature", "system", "answer_pattern"))
    lines += _fields(d, ("stop_on_failure",))
    limits = {n: getattr(d.limits, n) for n in ("max_tokens", "max_cost", "max_calls", "deadline")}
    limits = {n: v for n, v in limits.items() if v is not None}
    if limits:
        lines.append(f"limits = {_value(limits)}")
    return lines


def _fields(section: object, names: tuple[str, ...]) -> list[str]:
    return [f"{n} = {_value(getattr(section, n))}" for n in names if getattr(section, n) is not None]


def _redacted_url(url: str) -> str:
    """A Redis URL with any password replaced (``redis://:[REDACTED]@host``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _retry_lines(config: Config) -> list[str]:
    """The retry policy in effect: the ``[retry]`` table, or the default one (marked as such)."""
    policy = config.retry
    note = "# every model resolved through the configuration is retried so; max_attempts = 1 disables it"
    if policy == RetryConfig():
        note = "# the default retry policy (no [retry] table changes it); max_attempts = 1 disables it"
    lines = ["", "[retry]", note, f"max_attempts = {policy.max_attempts}"]
    lines += [f"base_delay = {_value(policy.base_delay)}", f"max_delay = {_value(policy.max_delay)}"]
    if policy.deadline is not None:
        lines.append(f"deadline = {_value(policy.deadline)}")
    return lines


def _timeouts(t: Any) -> dict[str, float | None]:
    return {"connect": t.connect, "first_byte": t.first_byte, "idle": t.idle, "total": t.total}


def _env_key(name: str) -> bool:
    from ..endpoints import endpoints

    row = next((r for r in endpoints() if r.name == name), None)
    return bool(row and row.resolved_key())
