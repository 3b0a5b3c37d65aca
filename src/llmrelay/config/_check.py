"""Type checks for the configuration: each raises ``ConfigError`` naming the file and the key path."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ._errors import ConfigError

T = TypeVar("T")


class Checker:
    """Type checks that raise ``ConfigError`` naming the file and key path."""

    def __init__(self, file: Path | None) -> None:
        self.file = file

    def fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(what, file=self.file, key=key)

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_kind(value)}")
        return value

    def string(self, value: object, key: str, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        if not empty and not value.strip():
            raise self.fail(key, "expected a non-empty string")
        return value

    def strings(self, value: object, key: str, *, nonempty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {_kind(value)}")
        if nonempty and not value:
            raise self.fail(key, "expected at least one entry")
        return tuple(self.string(item, f"{key}[{i}]") for i, item in enumerate(value))

    def integer(self, value: object, key: str, *, minimum: int = 1, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.fail(key, f"expected an integer {bound}, got {value}")
        return value

    def positive(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value) or value <= 0:
            raise self.fail(key, f"expected a positive number, got {value}")
        return float(value)

    def url(self, value: object, key: str) -> str:
        text = self.string(value, key)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(key, f"not a URL (expected http://host[:port]/path or https://...), got {text!r}")
        return text

    def env_name(self, value: object, key: str) -> str:
        name = self.string(value, key)
        if not name.replace("_", "").isalnum() or name[0].isdigit():
            raise self.fail(key, f"not an environment variable name (expected e.g. MY_API_KEY), got {name!r}")
        return name

    def model_string(self, value: object, key: str) -> str:
        text = self.string(value, key).strip()
        if text.startswith("/") or any(ch.isspace() for ch in text):
            raise self.fail(key, f"expected a model string like 'openai/gpt-4o-mini' or an alias, got {text!r}")
        return text

    def keys(self, table: Mapping[str, Any], key: str, known: tuple[str, ...]) -> None:
        for name in table:
            if name not in known:
                where = f"{key}.{name}" if key else name
                raise self.fail(where, f"unknown key{_suggest(name, known)}; expected one of: {', '.join(known)}")


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or the empty string."""
    return _suggest(word, choices)


def opt(table: Mapping[str, Any], name: str, check: Callable[[object, str], T], key: str) -> T | None:
    return check(table[name], f"{key}.{name}") if name in table else None
