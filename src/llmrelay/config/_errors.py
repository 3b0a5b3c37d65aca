"""``ConfigError``: the configuration (file, model string or provider name) is wrong.

It sits under ``LlmError`` beside ``MissingApiKey``: nothing was sent, and retrying will not help until
the configuration or the call is fixed. The message names the file and the key path::

    /home/me/.config/llmrelay/llmrelay.toml: providers.groq.base_url: not a URL (expected http(s)://host/...)
"""

from __future__ import annotations

from pathlib import Path

from .._errors import LlmError

__all__ = ["ConfigError"]


class ConfigError(LlmError):
    """The configuration is invalid, or a model string names a provider nobody configured."""

    kind = "config"
    _json_extra = ("file", "key")

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        key: str | None = None,
        provider: str | None = None,
    ) -> None:
        where = [str(file)] if file else []
        if key:
            where.append(key)
        full = ": ".join([*where, message])
        super().__init__(full, provider=provider)
        self.file = str(file) if file else None
        """The configuration file at fault, when there is one."""
        self.key = key
        """The dotted key path at fault (``providers.groq.base_url``), when there is one."""
