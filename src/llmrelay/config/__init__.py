"""Configuration: ``llmrelay.toml`` found, parsed and validated into frozen dataclasses.

See ``_schema`` for the file's sections and ``_load`` for where it is looked for.
"""

from __future__ import annotations

from ._errors import ConfigError
from ._load import CONFIG_ENV, CONFIG_NAME, find_config, load_config, read_config, user_config_path
from ._schema import (
    Config,
    DeliberationConfig,
    GatewayConfig,
    ProviderConfig,
    RateLimitConfig,
    RetryConfig,
    looks_secret,
    parse_config,
    suggest,
)

__all__ = [
    "CONFIG_ENV",
    "CONFIG_NAME",
    "Config",
    "ConfigError",
    "DeliberationConfig",
    "GatewayConfig",
    "ProviderConfig",
    "RateLimitConfig",
    "RetryConfig",
    "find_config",
    "load_config",
    "looks_secret",
    "parse_config",
    "read_config",
    "suggest",
    "user_config_path",
]
