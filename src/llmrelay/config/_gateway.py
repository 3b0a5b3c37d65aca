"""The ``[gateway]`` table: how ``llmrelay serve`` listens, who may call it, and what it records.

::

    [gateway]
    host = "127.0.0.1"                        # loopback by default; another address needs gateway keys
    port = 8787
    workers = 1                               # processes sharing the port (SO_REUSEPORT)
    api_key_env = "LLMRELAY_GATEWAY_KEY"      # one static key from the environment: an admin caller
    keys = "sqlite:///PATH/keys.db"           # the gateway key store (default: the user data directory)
    ledger = "sqlite:///PATH/ledger.db"       # the usage ledger (postgresql://... for several replicas)
    expose = ["fast", "openai/gpt-4o-mini"]   # model strings served (empty: every one that resolves)
    allow_public_without_keys = false         # serve a non-loopback address with no keys at all
    max_body_bytes = 8388608                  # larger request bodies get 413
    max_messages = 1000                       # requests with more messages get 400
    drain_timeout = 30                        # seconds in-flight requests get after SIGTERM
    tracing = false                           # OpenTelemetry spans (the `otel` extra; LLMRELAY_OTEL=1 too)

``keys`` and ``ledger`` default to SQLite files in the user data directory (``default_keys_url``,
``default_ledger_url``), resolved when the gateway starts, not here: a configuration stays a pure value.
A relative ``sqlite:///`` path is relative to the configuration file's directory.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ._check import Checker
from ._check import opt as _opt

__all__ = ["GatewayConfig", "default_keys_url", "default_ledger_url", "parse_gateway", "user_data_dir"]

_KNOWN = (
    "host",
    "port",
    "workers",
    "api_key_env",
    "keys",
    "ledger",
    "expose",
    "allow_public_without_keys",
    "max_body_bytes",
    "max_messages",
    "drain_timeout",
    "tracing",
)
_STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://", "memory")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The ``[gateway]`` table (see the module docstring)."""

    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 1
    """Processes serving the one port (``SO_REUSEPORT``)."""
    api_key_env: str | None = None
    """The environment variable holding one static gateway key, accepted as an admin caller (every
    model, no limits); ``None``: none."""
    keys: str | None = None
    """The gateway key store's URL (``sqlite:///PATH``, ``postgresql://...``); ``None``: the default file
    in the user data directory."""
    ledger: str | None = None
    """The usage ledger's URL (``sqlite:///PATH``, ``postgresql://...``, ``memory``); ``None``: the default
    file in the user data directory."""
    expose: tuple[str, ...] = ()
    """Model strings, aliases, fallback or router names the gateway serves; empty means every one that
    resolves (and ``GET /v1/models`` lists the configured names)."""
    allow_public_without_keys: bool = False
    """Allow binding a non-loopback address although no gateway key exists (anyone can then spend the
    provider keys: only behind another authenticating proxy)."""
    max_body_bytes: int = 8 * 1024 * 1024
    max_messages: int = 1000
    drain_timeout: float = 30.0
    """Seconds in-flight requests (streams included) get to finish after ``SIGTERM``."""
    tracing: bool = False
    """One OpenTelemetry span per request (``gateway.tracing``; needs ``pip install 'llmrelay[otel]'``).
    ``LLMRELAY_OTEL=1`` or ``0``, when set, overrides it."""


def user_data_dir() -> Path:
    """The per-user data directory of llmrelay (``platformdirs`` when installed, else the conventional one)."""
    try:
        from platformdirs import user_data_path
    except ImportError:
        if sys.platform == "win32":
            base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        elif sys.platform == "darwin":
            base = Path.home() / "Library" / "Application Support"
        else:
            base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "llmrelay"
    return user_data_path("llmrelay", appauthor=False)


def default_keys_url() -> str:
    """``sqlite:///<user data dir>/keys.db``."""
    return f"sqlite:///{user_data_dir() / 'keys.db'}"


def default_ledger_url() -> str:
    """``sqlite:///<user data dir>/ledger.db``."""
    return f"sqlite:///{user_data_dir() / 'ledger.db'}"


def _store_url(c: Checker, value: object, key: str) -> str:
    text = c.string(value, key).strip()
    if not text.startswith(_STORE_SCHEMES):
        raise c.fail(key, f"expected sqlite:///PATH, postgresql://... or memory, got {text!r}")
    if text.startswith("sqlite:///") and c.file is not None:
        path = Path(text.removeprefix("sqlite:///")).expanduser()
        if not path.is_absolute():
            text = f"sqlite:///{c.file.parent / path}"
    return text


def _flag(c: Checker, value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise c.fail(key, f"expected true or false, got {type(value).__name__}")
    return value


def parse_gateway(c: Checker, raw: object) -> GatewayConfig:
    """The ``[gateway]`` table, every value checked (errors name ``gateway.KEY``)."""
    table = c.table(raw, "gateway")
    c.keys(table, "gateway", _KNOWN)
    base = GatewayConfig()
    port = _opt(table, "port", lambda v, k: c.integer(v, k, minimum=0, maximum=65535), "gateway")
    return GatewayConfig(
        host=_opt(table, "host", c.string, "gateway") or base.host,
        port=base.port if port is None else port,
        workers=_opt(table, "workers", lambda v, k: c.integer(v, k, minimum=1, maximum=256), "gateway") or base.workers,
        api_key_env=_opt(table, "api_key_env", c.env_name, "gateway"),
        keys=_opt(table, "keys", lambda v, k: _store_url(c, v, k), "gateway"),
        ledger=_opt(table, "ledger", lambda v, k: _store_url(c, v, k), "gateway"),
        expose=tuple(
            c.model_string(m, f"gateway.expose[{i}]")
            for i, m in enumerate(_opt(table, "expose", c.strings, "gateway") or ())
        ),
        allow_public_without_keys=bool(
            _opt(table, "allow_public_without_keys", lambda v, k: _flag(c, v, k), "gateway")
        ),
        max_body_bytes=_opt(table, "max_body_bytes", lambda v, k: c.integer(v, k, minimum=1024), "gateway")
        or base.max_body_bytes,
        max_messages=_opt(table, "max_messages", c.integer, "gateway") or base.max_messages,
        drain_timeout=_opt(table, "drain_timeout", c.positive, "gateway") or base.drain_timeout,
        tracing=bool(_opt(table, "tracing", lambda v, k: _flag(c, v, k), "gateway")),
    )
