"""Typed reads of a caller's JSON body for the request decoders: each raises ``bad_request`` naming the
field's path (``messages[2].content[0].text: expected a string, got 3``) instead of a ``KeyError`` or a
``TypeError`` deep inside a decoder, so bad input is always a 400 that says what is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._types import ImagePart
from .serve import bad_request

__all__ = [
    "image_from_url",
    "number",
    "obj",
    "opt_bool",
    "opt_int",
    "opt_list",
    "opt_obj",
    "opt_str",
    "req_id",
    "req_list",
    "req_str",
    "stop_list",
]

_MAX_TEXT_REPR = 40


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_TEXT_REPR else text[: _MAX_TEXT_REPR - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def obj(value: Any, path: str) -> dict[str, Any]:
    """``value`` as a JSON object."""
    if not isinstance(value, dict):
        raise bad_request(path or None, f"expected an object, got {_type_name(value)}")
    return value


def opt_obj(body: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = body.get(key)
    return None if value is None else obj(value, path)


def req_str(body: Mapping[str, Any], key: str, path: str) -> str:
    value = body.get(key)
    if value is None:
        raise bad_request(path, "required")
    if not isinstance(value, str):
        raise bad_request(path, f"expected a string, got {_type_name(value)}")
    return value


def req_id(body: Mapping[str, Any], key: str, path: str) -> str:
    """A required string that must not be empty: an id (``tool_call_id``, ``tool_use_id``), a media type."""
    value = req_str(body, key, path)
    if not value:
        raise bad_request(path, "must not be empty")
    return value


def opt_str(body: Mapping[str, Any], key: str, path: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(path, f"expected a string, got {_type_name(value)}")
    return value


def opt_bool(body: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(path, f"expected true or false, got {_type_name(value)}")
    return value


def opt_int(body: Mapping[str, Any], key: str, path: str, *, minimum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(path, f"expected an integer, got {_type_name(value)}")
    if minimum is not None and value < minimum:
        raise bad_request(path, f"must be at least {minimum}, got {value}")
    return value


def number(body: Mapping[str, Any], key: str, path: str, *, low: float, high: float) -> float | None:
    """An optional number within ``low..high``."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise bad_request(path, f"expected a number, got {_type_name(value)}")
    if not low <= value <= high:
        raise bad_request(path, f"must be between {low:g} and {high:g}, got {value:g}")
    return value


def req_list(body: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        raise bad_request(path, "required")
    if not isinstance(value, list):
        raise bad_request(path, f"expected an array, got {_type_name(value)}")
    return value


def opt_list(body: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(path, f"expected an array, got {_type_name(value)}")
    return value


def stop_list(body: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    """A stop setting: a string or an array of strings."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise bad_request(path, f"expected a string or an array of strings, got {_type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise bad_request(f"{path}[{i}]", f"expected a string, got {_type_name(item)}")
    return tuple(value) or None


def image_from_url(url: str, path: str, detail: Any = None) -> ImagePart:
    """An image given by URL: a base64 ``data:`` URL becomes inline bytes, an http(s) URL stays a URL (the
    upstream fetches it; the gateway never does). Other schemes are refused."""
    if detail is not None and detail not in ("auto", "low", "high"):
        raise bad_request(f"{path}.detail", f"expected 'auto', 'low' or 'high', got {_show(detail)}")
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/") or not data:
            raise bad_request(f"{path}.url", "a data URL must be data:image/<type>;base64,<data>")
        return ImagePart(data=data, media_type=media_type, detail=detail)
    if url.startswith(("https://", "http://")):
        return ImagePart(url=url, detail=detail)
    raise bad_request(f"{path}.url", "expected an http(s) URL or a data:image/...;base64 URL")
