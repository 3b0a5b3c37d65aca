"""Finding and reading ``llmrelay.toml``.

The file is looked for, in order:

1. the path given explicitly (``--config``, ``load_config(path)``);
2. ``$LLMRELAY_CONFIG``;
3. ``./llmrelay.toml`` in the working directory;
4. ``llmrelay.toml`` in the user configuration directory (``platformdirs``: ``~/.config/llmrelay`` on Linux,
   ``~/Library/Application Support/llmrelay`` on macOS, ``%APPDATA%\\llmrelay`` on Windows).

A path given explicitly (1 or 2) that does not exist is an error; when none of 3 and 4 exists the
configuration is empty and everything comes from the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from ._errors import ConfigError
from ._schema import Config, parse_config

__all__ = ["CONFIG_ENV", "CONFIG_NAME", "find_config", "load_config", "user_config_path"]

CONFIG_NAME = "llmrelay.toml"
CONFIG_ENV = "LLMRELAY_CONFIG"


def user_config_path() -> Path:
    """``llmrelay.toml`` in the per-user configuration directory (it may not exist)."""
    try:
        from platformdirs import user_config_path as _user_dir
    except ImportError:
        # platformdirs is optional (the `config` extra) so the core install stays at aiohttp's ten
        # distributions; without it, the same three conventional locations platformdirs resolves.
        import sys

        if sys.platform == "win32":
            base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        elif sys.platform == "darwin":
            base = Path.home() / "Library" / "Application Support"
        else:
            base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        return base / "llmrelay" / CONFIG_NAME
    return _user_dir("llmrelay", appauthor=False) / CONFIG_NAME


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to use (see the module docstring), or ``None`` when there is none."""
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise ConfigError("configuration file not found (given with --config or load_config(path))", file=explicit)
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        explicit = Path(from_env).expanduser()
        if not explicit.is_file():
            raise ConfigError(f"configuration file not found (named by ${CONFIG_ENV})", file=explicit)
        return explicit
    for candidate in (Path.cwd() / CONFIG_NAME, user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Find (see ``find_config``), read and validate the configuration; empty when there is no file."""
    found = find_config(path)
    if found is None:
        return Config()
    return read_config(found)


def read_config(path: Path) -> Config:
    """Read and validate one file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from None
    return parse_config(data, path)
