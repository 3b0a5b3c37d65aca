"""Configuration: ``llmrelay.toml`` found, parsed and validated into frozen dataclasses.

See ``_schema`` for the file's sections and ``_load`` for where it is looked for.
"""

from __future__ import annotations

from ._check import suggest
from ._deliberations import DeliberationLimitsConfig, ParticipantConfig
from ._errors import ConfigError
from ._load import CONFIG_ENV, CONFIG_NAME, find_config, load_config, read_config, user_config_path
from ._resilience import (
    BreakerConfig,
    BudgetConfig,
    BudgetsConfig,
    DeploymentConfig,
    FallbackConfig,
    PriceConfig,
    RateLimitConfig,
    RateLimitsConfig,
    RouterConfig,
)
from ._schema import (
    Config,
    DeliberationConfig,
    GatewayConfig,
    ProviderConfig,
    RetryConfig,
    looks_secret,
    parse_config,
)

__all__ = [
    "CONFIG_ENV",
    "BreakerConfig",
    "BudgetConfig",
    "BudgetsConfig",
    "DeploymentConfig",
    "FallbackConfig",
    "PriceConfig",
    "RateLimitsConfig",
    "RouterConfig",
    "CONFIG_NAME",
    "Config",
    "ConfigError",
    "DeliberationConfig",
    "DeliberationLimitsConfig",
    "GatewayConfig",
    "ParticipantConfig",
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
