"""One tagged JSON codec for the whole data model: requests, responses, messages, events, usage, errors.

``to_json(value)`` gives a JSON-ready dict whose ``type`` names the class; ``from_json(data)`` rebuilds
an equal value; ``dumps`` / ``loads`` do the same through JSON text. The CLI's ``--json`` lines, and
anything else that stores or sends these values, use this one codec.

The rules:

- Tags are listed in ``_TAGS``. Stream events keep the names the CLI has always printed (``text``,
  ``reasoning``, ``tool_call_start``, ``tool_call_delta``, ``tool_call``, ``done``); a ``tool_call``
  event (``ToolCallEnd``) carries its call's fields inline, beside ``index``; a ``TextChunks`` is
  written as the ``text`` event of its text (its wire bytes are for a same-dialect relay only). Errors
  are tagged ``error`` and are ``LlmError.to_json()`` (tagged with its ``kind``), rebuilt by ``LlmError.from_json``; an
  ``Attempt`` (in ``ChatResponse.attempts``) is ``Attempt.to_json()`` likewise.
- The outermost object always has its ``type``, and so does an object in a field that admits more than
  one type (a content part, a ``response_format``). An object in a field of exactly one class (``usage``
  in ``done``, the calls of a message) leaves it out; the decoder accepts it there when it matches.
- A field whose value is ``None`` is left out; a missing field decodes as ``None`` (or the field's
  default). Enums are their values, sequences are lists (decoded as tuples), and JSON-valued fields (tool
  arguments, schemas, ``provider_options``) go as they are; ``ImagePart.data`` is already base64 text.
- A ``Decimal`` (a cost) is its exact decimal text (``"0.000125"``), never a float.
- Another module adds its own classes with ``register(tag, cls)`` (``llmrelay.deliberation`` registers
  its events and transcript so); a tag not known yet makes ``from_json`` import the modules in
  ``_REGISTERING_MODULES`` once and look again.
- Unknown keys are ignored (a newer writer may add fields). An unknown or missing tag, a value of the
  wrong shape, or a value that is not JSON is a ``ValueError``, as from ``LlmError.from_json``.

Converters are built once per class from its dataclass fields and type hints, so encoding an event costs
a dict and a few attribute reads.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar, overload

from ._errors import Attempt, LlmError
from ._events import Done, ReasoningDelta, TextChunks, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from ._types import (
    CallWarning,
    ChatRequest,
    ChatResponse,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    TextPart,
    ToolCall,
    ToolDef,
    Usage,
)

__all__ = ["dumps", "from_json", "loads", "register", "to_json"]

T = TypeVar("T")
_Conv = Callable[[Any], Any]

_TAGS: dict[str, type] = {
    "text": TextDelta,
    "reasoning": ReasoningDelta,
    "tool_call_start": ToolCallStart,
    "tool_call_delta": ToolCallDelta,
    "tool_call": ToolCallEnd,
    "done": Done,
    "message": Message,
    "text_part": TextPart,
    "image_part": ImagePart,
    "reasoning_part": ReasoningPart,
    "call": ToolCall,
    "tool_def": ToolDef,
    "json_schema": JsonSchemaFormat,
    "chat_request": ChatRequest,
    "chat_response": ChatResponse,
    "usage": Usage,
    "warning": CallWarning,
}
"""Every tag and the class it names (``error`` is ``LlmError``, handled by its own ``to_json``)."""

_ERROR_TAG = "error"
_FLATTEN: dict[type, str] = {ToolCallEnd: "call"}
"""Classes whose one object field is written inline (the CLI's ``tool_call`` line has the call's fields)."""

_REGISTERING_MODULES = ("llmrelay.deliberation",)
"""Modules that ``register`` tags of their own: imported on the first tag not known yet."""
_imported_registering = False


def register(tag: str, cls: type, *, flatten: str | None = None) -> None:
    """Make the dataclass ``cls`` encodable under ``tag`` (a module's own values: events, records).
    ``flatten`` names one object field written inline, as ``tool_call`` writes its call. Registering
    the same pair again is a no-op; a tag or class already taken by another is a ``ValueError``."""
    if _TAGS.get(tag, cls) is not cls or (cls in _SPECS and _SPECS[cls].tag != tag) or tag == _ERROR_TAG:
        raise ValueError(f"llmrelay JSON: tag {tag!r} or class {cls.__name__} is already registered")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"llmrelay JSON: {cls.__name__} is not a dataclass")
    _TAGS[tag] = cls
    _SPECS.setdefault(cls, _Spec(cls, tag))
    if flatten is not None:
        _FLATTEN[cls] = flatten


def _tag_class(tag: Any) -> type | None:
    """The class ``tag`` names, importing the registering modules once when it is not known yet."""
    global _imported_registering
    if not isinstance(tag, str):
        return None
    if tag not in _TAGS and not _imported_registering:
        import importlib

        _imported_registering = True
        for module in _REGISTERING_MODULES:
            importlib.import_module(module)
    return _TAGS.get(tag)


def _fail(message: str) -> ValueError:
    return ValueError(f"llmrelay JSON: {message}")


def _same(value: Any) -> Any:
    return value


def _plain(value: Any) -> Any:
    """A JSON value, with mappings as dicts and sequences as lists; anything else is a ValueError."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"object keys must be strings, got {key!r}")
            out[key] = _plain(item)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise _fail(f"{type(value).__name__} is not a JSON value")


def _scalar(kind: type) -> tuple[_Conv, _Conv]:
    def decode(value: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _fail(f"expected {kind.__name__}, got {value!r}")
        return value

    return _same, decode


def _literal(allowed: tuple[Any, ...]) -> tuple[_Conv, _Conv]:
    def decode(value: Any) -> Any:
        if value not in allowed or not isinstance(value, str):
            raise _fail(f"expected one of {list(allowed)}, got {value!r}")
        return value

    return _same, decode


def _enum(kind: type[enum.Enum]) -> tuple[_Conv, _Conv]:
    def decode(value: Any) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise _fail(f"{value!r} is not a {kind.__name__}") from None

    return (lambda value: value.value), decode


def _sequence(item: tuple[_Conv, _Conv]) -> tuple[_Conv, _Conv]:
    encode_item, decode_item = item

    def decode(value: Any) -> Any:
        if not isinstance(value, list):
            raise _fail(f"expected a list, got {value!r}")
        return tuple(decode_item(x) for x in value)

    return (lambda value: [encode_item(x) for x in value]), decode


def _error(tagged: bool) -> tuple[_Conv, _Conv]:
    def encode(error: LlmError) -> dict[str, Any]:
        return {"type": _ERROR_TAG, **error.to_json()} if tagged else error.to_json()

    def decode(value: Any) -> LlmError:
        if not isinstance(value, Mapping):
            raise _fail(f"an error is an object, got {value!r}")
        return LlmError.from_json(value)

    return encode, decode


def _decimal(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise _fail(f'a decimal is its text, e.g. "0.0125", got {value!r}')
    try:
        return Decimal(value)
    except InvalidOperation:
        raise _fail(f"{value!r} is not a decimal number") from None


def _attempt(value: Any) -> Attempt:
    if not isinstance(value, Mapping):
        raise _fail(f"an attempt is an object, got {value!r}")
    return Attempt.from_json(value)


def _union(members: list[Any]) -> tuple[_Conv, _Conv]:
    """A field of several types, told apart by the JSON shape: object (tagged), array, or scalar."""
    classes = tuple(m for m in members if isinstance(m, type) and m in _SPECS)
    arrays = [m for m in members if typing.get_origin(m) in (Sequence, tuple, list)]
    scalars = [m for m in members if m not in classes and m not in arrays]
    if len(arrays) > 1 or len(classes) + len(arrays) + len(scalars) != len(members):
        raise TypeError(f"llmrelay JSON: cannot encode a union of {members}")
    array = _converter(arrays[0]) if arrays else None
    scalar = [_converter(m) for m in scalars]

    def encode(value: Any) -> Any:
        if isinstance(value, classes):
            return _encode_object(value, tagged=True)
        if array is not None and isinstance(value, list | tuple):
            return array[0](value)
        return scalar[0][0](value) if scalar else _plain(value)

    def decode(value: Any) -> Any:
        if isinstance(value, Mapping) and classes:
            cls = _tag_class(value.get("type"))
            if cls not in classes:
                raise _fail(f"expected one of {sorted(_SPECS[c].tag for c in classes)}, got {value.get('type')!r}")
            return _decode_object(cls, value)
        if isinstance(value, list) and array is not None:
            return array[1](value)
        for _, decode_scalar in scalar:
            try:
                return decode_scalar(value)
            except ValueError:
                continue
        raise _fail(f"unexpected value {value!r}")

    return encode, decode


def _converter(hint: Any) -> tuple[_Conv, _Conv]:
    """The (encode, decode) pair for one field's type hint."""
    origin = typing.get_origin(hint)
    if hint is Any or origin in (Mapping, dict):
        return _plain, _plain
    if origin is Literal:
        return _literal(typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        literals = [m for m in members if typing.get_origin(m) is Literal]
        if literals and str in members:  # ``ToolChoice``: a few names or any tool's name
            members = [m for m in members if m not in literals]
        return _union(members) if len(members) > 1 else _converter(members[0])
    if origin in (Sequence, tuple, list):
        return _sequence(_converter(typing.get_args(hint)[0]))
    if isinstance(hint, type):
        if issubclass(hint, LlmError):
            return _error(tagged=False)
        if hint is Attempt:  # its own JSON form, like an error's
            return (lambda value: value.to_json()), _attempt
        if issubclass(hint, enum.Enum):
            return _enum(hint)
        if hint in _SPECS:
            return (lambda value: _encode_object(value, tagged=False)), (lambda value: _decode_object(hint, value))
        if hint in (str, int, float, bool):
            return _scalar(hint)
        if hint is Decimal:
            return str, _decimal
    raise TypeError(f"llmrelay JSON: no converter for {hint!r}")


_Missing = Literal["default", "none", "fail"]


def _when_missing(field: dataclasses.Field[Any], hint: Any) -> _Missing:
    """What a missing (or null) field decodes as: its default, ``None`` where its type allows it, or an error."""
    if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
        return "default"
    return "none" if type(None) in typing.get_args(hint) else "fail"


@dataclasses.dataclass(slots=True)
class _Spec:
    """How one class is written: its tag and, built on first use, each field's converters."""

    cls: type
    tag: str
    fields: list[tuple[str, _Conv, _Conv, _Missing]] | None = None
    """``(name, encode, decode, when_missing)`` per field, in declaration order."""

    def compiled(self) -> list[tuple[str, _Conv, _Conv, _Missing]]:
        if self.fields is None:
            localns = {"Attempt": Attempt, "LlmError": LlmError, "Decimal": Decimal}
            hints = typing.get_type_hints(self.cls, localns=localns)
            self.fields = [
                (f.name, *_converter(hints[f.name]), _when_missing(f, hints[f.name]))
                for f in dataclasses.fields(self.cls)
            ]
        return self.fields


_SPECS: dict[type, _Spec] = {cls: _Spec(cls, tag) for tag, cls in _TAGS.items()}


def _encode_object(value: Any, *, tagged: bool) -> dict[str, Any]:
    spec = _SPECS[type(value)]
    out: dict[str, Any] = {"type": spec.tag} if tagged else {}
    flat = _FLATTEN.get(spec.cls)
    for name, encode, _, _ in spec.compiled():
        item = getattr(value, name)
        if item is None:
            continue
        if name == flat:
            out.update(_encode_object(item, tagged=False))
        else:
            out[name] = encode(item)
    return out


def _decode_object(cls: type[T], data: Any) -> T:
    if not isinstance(data, Mapping):
        raise _fail(f"a {_SPECS[cls].tag} is an object, got {data!r}")
    tag = data.get("type")
    if tag is not None and tag != _SPECS[cls].tag:
        raise _fail(f"expected a {_SPECS[cls].tag}, got type {tag!r}")
    flat = _FLATTEN.get(cls)
    kwargs: dict[str, Any] = {}
    for name, _, decode, missing in _SPECS[cls].compiled():
        if name == flat:
            kwargs[name] = decode({k: v for k, v in data.items() if k != "type"})
            continue
        item = data.get(name)
        if item is not None:
            kwargs[name] = decode(item)
        elif missing == "none":
            kwargs[name] = None
        elif missing == "fail":
            raise _fail(f"a {_SPECS[cls].tag} needs {name!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise _fail(f"bad {_SPECS[cls].tag}: {exc}") from None
    except ValueError as exc:
        raise _fail(f"bad {_SPECS[cls].tag}: {exc}") from exc


def to_json(value: object) -> dict[str, Any]:
    """``value`` (a request, response, message, part, tool call or definition, stream event, usage,
    warning or ``LlmError``) as a JSON-ready dict tagged with ``type``; ``from_json`` rebuilds it."""
    if isinstance(value, LlmError):
        encoded: dict[str, Any] = _error(tagged=True)[0](value)
        return encoded
    if type(value) is TextChunks:
        value = TextDelta(value.text)  # wire bytes for a same-dialect relay: to everyone else, text
    if type(value) not in _SPECS:
        raise _fail(f"cannot encode a {type(value).__name__}")
    return _encode_object(value, tagged=True)


@overload
def from_json(data: Mapping[str, Any]) -> object: ...
@overload
def from_json(data: Mapping[str, Any], kind: type[T]) -> T: ...
def from_json(data: Mapping[str, Any], kind: type[Any] | None = None) -> object:
    """The value ``to_json`` produced, of the class its ``type`` names. With ``kind``, the value must be
    of that class (an object without ``type`` is read as one, e.g. the ``usage`` of a ``done``). An
    unknown or missing tag, or a malformed value, is a ``ValueError``."""
    if not isinstance(data, Mapping):
        raise _fail(f"expected an object, got {data!r}")
    tag = data.get("type")
    if kind is not None and tag is None:
        cls: type | None = LlmError if issubclass(kind, LlmError) else kind if kind in _SPECS else None
    else:
        cls = LlmError if tag == _ERROR_TAG else _tag_class(tag)
    if cls is None:
        raise _fail(f"unknown type {tag!r}")
    value = _error(tagged=True)[1](data) if cls is LlmError else _decode_object(cls, data)
    if kind is not None and not isinstance(value, kind):
        raise _fail(f"expected a {kind.__name__}, got a {type(value).__name__}")
    return value


_ESCAPE = re.compile("[\x85\u2028\u2029\ud800-\udfff]")
"""Characters JSON leaves raw that must be escaped in a line: those ``str.splitlines`` (and older
JavaScript) end a line at, and lone surrogates, which have no UTF-8 form (a provider may send one escaped)."""


def json_line(data: Mapping[str, Any]) -> str:
    """``data`` as one line of JSON text, always encodable as UTF-8: characters kept as they are except
    those ``_ESCAPE`` names, written as ``\\uXXXX``; NaN and infinities are a ``ValueError``."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    if _ESCAPE.search(text):
        text = _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def dumps(value: object) -> str:
    """``to_json(value)`` as one line of JSON text (see ``json_line``)."""
    return json_line(to_json(value))


@overload
def loads(text: str | bytes) -> object: ...
@overload
def loads(text: str | bytes, kind: type[T]) -> T: ...
def loads(text: str | bytes, kind: type[Any] | None = None) -> object:
    """The value ``dumps`` wrote (see ``from_json``); text that is not JSON is a ``ValueError`` too."""
    data = json.loads(text)
    return from_json(data) if kind is None else from_json(data, kind)
