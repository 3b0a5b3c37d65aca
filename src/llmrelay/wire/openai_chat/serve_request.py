"""Request decoding for a served OpenAI Chat Completions endpoint: the reverse of ``encode``
(https://platform.openai.com/docs/api-reference/chat/create).

Every field of the body is mapped, passed on, or reported:

- ``messages``: ``system`` and ``developer`` -> ``Role.SYSTEM`` (kept in place, so the conversation reads as
  the caller wrote it; ``ChatRequest.system`` stays ``None``); ``user`` content is a string or ``text`` /
  ``image_url`` parts (a base64 ``data:`` URL becomes inline bytes, an http(s) URL stays a URL);
  ``assistant`` carries text and ``tool_calls`` (``reasoning_content`` becomes a ``ReasoningPart``);
  ``tool`` answers a call by ``tool_call_id``. Audio and file parts, the deprecated ``function`` role and
  ``function_call`` are refused (400): dropping them would change what the model sees;
- ``temperature``, ``top_p``, ``max_completion_tokens`` (or the older ``max_tokens``), ``stop``, ``seed``,
  ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``response_format`` (``text``, ``json_object`` ->
  ``"json"``, ``json_schema`` -> ``JsonSchemaFormat``; ``strict`` defaults to false as in OpenAI's API);
- ``stream`` and ``stream_options.include_usage`` -> ``DecodedRequest``; ``n`` must be 1;
- OpenAI-only settings (``reasoning_effort``, ``logit_bias``, penalties, ``service_tier``, ...) go into
  ``provider_options["openai"]`` with a *vendor* warning: an OpenAI-dialect upstream receives them as sent,
  any other reports them (``DecodedRequest.warnings_for``);
- ``user``, ``metadata``, ``store``, ``logprobs``: ignored, with a warning when they ask for something;
  unknown fields likewise.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from ..._types import (
    CallWarning,
    ChatRequest,
    ContentPart,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    Role,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolDef,
)
from ..serve import DecodedRequest, bad_request
from ..serve_fields import (
    image_from_url,
    number,
    obj,
    opt_bool,
    opt_int,
    opt_list,
    opt_obj,
    opt_str,
    req_id,
    req_list,
    req_str,
    stop_list,
)
from ..stream_state import parse_arguments

__all__ = ["decode_request"]

VENDOR_FIELDS = frozenset(
    {
        "reasoning_effort",
        "logit_bias",
        "presence_penalty",
        "frequency_penalty",
        "service_tier",
        "verbosity",
        "prediction",
        "web_search_options",
        "top_logprobs",
    }
)
"""Settings ``ChatRequest`` does not model, passed on to OpenAI-dialect upstreams as they are."""

_HANDLED = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "stream",
        "stream_options",
        "n",
        "user",
        "metadata",
        "store",
        "logprobs",
        "modalities",
    }
)

_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "reasoning_content", "annotations"}
)


def decode_request(body: Any) -> DecodedRequest:
    """The caller's ``POST /v1/chat/completions`` body as a ``DecodedRequest``; bad input is ``bad_request``."""
    return _decode_plain(body) or _decode(body)


_PLAIN_KEYS = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "stream", "temperature", "top_p"})
"""The fields of the common body ``_decode_plain`` takes (text messages, a few numbers, ``stream``)."""

_PLAIN_ROLES: dict[Any, Role] = {"system": Role.SYSTEM, "developer": Role.SYSTEM, "user": Role.USER}


def _plain_number(value: Any, high: float) -> bool:
    return value is None or (type(value) in (int, float) and math.isfinite(value) and 0.0 <= value <= high)


def _decode_plain(body: Any) -> DecodedRequest | None:
    """The common body (only ``_PLAIN_KEYS``, every message ``{"role", "content": "text"}``, valid values)
    decoded without the general path's per-field checks: what ``_decode`` returns for it, or ``None``
    for any other body (which ``_decode`` then decodes, or refuses with the field at fault)."""
    if type(body) is not dict or not _PLAIN_KEYS.issuperset(body):
        return None
    model = body.get("model")
    raw = body.get("messages")
    if type(model) is not str or type(raw) is not list or not raw:
        return None
    max_tokens = body.get("max_tokens")
    max_completion = body.get("max_completion_tokens")
    for value in (max_tokens, max_completion):
        if value is not None and (type(value) is not int or value < 1):
            return None
    if max_tokens is not None and max_completion is not None and max_tokens != max_completion:
        return None  # a warning to give: the general path
    stream = body.get("stream")
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    if not (stream is None or type(stream) is bool) or not _plain_number(temperature, 2.0):
        return None
    if not _plain_number(top_p, 1.0):
        return None
    messages: list[Message] = []
    for message in raw:
        if type(message) is not dict or len(message) != 2:
            return None
        role = message.get("role")
        content = message.get("content")
        if type(content) is not str:
            return None
        kind = _PLAIN_ROLES.get(role)
        if kind is Role.USER:
            messages.append(Message(role=kind, content=content, name=None))
        elif kind is Role.SYSTEM:
            messages.append(Message(role=kind, content=content))
        elif role == "assistant":
            messages.append(Message(role=Role.ASSISTANT, content=content, tool_calls=[], name=None))
        else:
            return None
    request = ChatRequest(
        messages=messages,
        temperature=temperature,
        max_tokens=max_completion if max_completion is not None else max_tokens,
        top_p=top_p,
    )
    return DecodedRequest(request=request, model=model, stream=bool(stream), include_usage=False, dialect="openai")


def _decode(body: Any) -> DecodedRequest:
    """The general path of ``decode_request``: every field mapped, passed on, warned about or refused."""
    body = obj(body, "")
    warnings: list[CallWarning] = []
    model = req_str(body, "model", "model")
    messages = [_message(m, f"messages[{i}]", warnings) for i, m in enumerate(req_list(body, "messages", "messages"))]
    if not messages:
        raise bad_request("messages", "at least one message is required")
    n = opt_int(body, "n", "n")
    if n is not None and n != 1:
        raise bad_request("n", f"only n=1 is supported (one choice per request), got {n}")
    max_tokens = opt_int(body, "max_tokens", "max_tokens", minimum=1)
    max_completion = opt_int(body, "max_completion_tokens", "max_completion_tokens", minimum=1)
    if max_tokens is not None and max_completion is not None and max_tokens != max_completion:
        warnings.append(CallWarning("max_tokens", "ignored: max_completion_tokens is set too and takes precedence"))
    tools = tuple(_tool(t, f"tools[{i}]") for i, t in enumerate(opt_list(body, "tools", "tools")))
    stream = bool(opt_bool(body, "stream", "stream"))
    stream_options = opt_obj(body, "stream_options", "stream_options") or {}
    include_usage = bool(opt_bool(stream_options, "include_usage", "stream_options.include_usage"))
    vendor: dict[str, Any] = {}
    vendor_warnings: list[CallWarning] = []
    for key, value in body.items():
        if value is None or key in _HANDLED:
            continue
        if key in VENDOR_FIELDS:
            vendor[key] = value
            vendor_warnings.append(
                CallWarning(key, "passed on only to OpenAI-dialect upstreams (no provider-neutral equivalent)")
            )
        else:
            warnings.append(CallWarning(key, "ignored: not a Chat Completions setting this gateway knows"))
    _ignored(body, warnings)
    request = ChatRequest(
        messages=messages,
        temperature=number(body, "temperature", "temperature", low=0.0, high=2.0),
        max_tokens=max_completion if max_completion is not None else max_tokens,
        top_p=number(body, "top_p", "top_p", low=0.0, high=1.0),
        stop=stop_list(body, "stop", "stop"),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls", "parallel_tool_calls"),
        response_format=_response_format(body.get("response_format")),
        seed=opt_int(body, "seed", "seed"),
        provider_options={"openai": vendor} if vendor else {},
    )
    return DecodedRequest(
        request=request,
        model=model,
        stream=stream,
        include_usage=include_usage,
        warnings=tuple(warnings),
        vendor_warnings=tuple(vendor_warnings),
        dialect="openai",
    )


def _ignored(body: dict[str, Any], warnings: list[CallWarning]) -> None:
    if body.get("user"):
        warnings.append(CallWarning("user", "ignored: the end-user id is not passed to upstreams"))
    if body.get("metadata"):
        warnings.append(CallWarning("metadata", "ignored: request metadata is not passed to upstreams"))
    if body.get("store"):
        warnings.append(CallWarning("store", "ignored: completions are not stored"))
    if body.get("logprobs"):
        warnings.append(CallWarning("logprobs", "ignored: this gateway does not return log probabilities"))
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise bad_request("modalities", "only text output is supported")


# --- messages ---------------------------------------------------------------------------------------------


def _text_of(content: Any, path: str, *, refusal_ok: bool = False, warnings: list[CallWarning]) -> str:
    """A string, or an array of ``text`` parts, as one text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(path, "expected a string or an array of text parts")
    texts: list[str] = []
    for i, part in enumerate(content):
        where = f"{path}[{i}]"
        part = obj(part, where)
        kind = part.get("type")
        if kind == "text":
            texts.append(req_str(part, "text", f"{where}.text"))
        elif kind == "refusal" and refusal_ok:
            warnings.append(CallWarning(where, "dropped: a refusal part is not sent back to the model"))
        else:
            raise bad_request(f"{where}.type", f"expected a text part here, got {kind!r}")
    return "".join(texts)


def _user_content(content: Any, path: str) -> str | list[ContentPart]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(path, "expected a string or an array of content parts")
    parts: list[ContentPart] = []
    for i, part in enumerate(content):
        where = f"{path}[{i}]"
        part = obj(part, where)
        kind = part.get("type")
        if kind == "text":
            parts.append(TextPart(req_str(part, "text", f"{where}.text")))
        elif kind == "image_url":
            image = part.get("image_url")
            if isinstance(image, str):
                parts.append(image_from_url(image, f"{where}.image_url"))
            else:
                image = obj(image, f"{where}.image_url")
                url = req_str(image, "url", f"{where}.image_url.url")
                parts.append(image_from_url(url, f"{where}.image_url", image.get("detail")))
        elif kind in ("input_audio", "file"):
            raise bad_request(f"{where}.type", f"{kind!r} parts are not supported by this gateway")
        else:
            raise bad_request(f"{where}.type", f"unknown part type {kind!r}")
    return parts


def _tool_calls(value: Any, path: str) -> list[ToolCall]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(path, "expected an array of tool calls")
    calls: list[ToolCall] = []
    for i, call in enumerate(value):
        where = f"{path}[{i}]"
        call = obj(call, where)
        kind = call.get("type", "function")
        if kind != "function":
            raise bad_request(f"{where}.type", f"only function tool calls are supported, got {kind!r}")
        call_id = req_id(call, "id", f"{where}.id")
        function = obj(call.get("function"), f"{where}.function")
        name = req_str(function, "name", f"{where}.function.name")
        arguments = function.get("arguments", "")
        if isinstance(arguments, dict):
            calls.append(ToolCall.create(name, arguments, id=call_id))
            continue
        if not isinstance(arguments, str):
            raise bad_request(f"{where}.function.arguments", "expected a JSON string")
        calls.append(ToolCall(id=call_id, name=name, arguments=parse_arguments(arguments), arguments_raw=arguments))
    return calls


def _message(value: Any, path: str, warnings: list[CallWarning]) -> Message:
    message = obj(value, path)
    role = req_str(message, "role", f"{path}.role")
    for key, item in message.items():
        if key not in _MESSAGE_KEYS and item is not None:
            warnings.append(CallWarning(f"{path}.{key}", "ignored: not a message field this gateway knows"))
    name = opt_str(message, "name", f"{path}.name")
    content = message.get("content")
    if role in ("system", "developer"):
        if name:
            warnings.append(CallWarning(f"{path}.name", "ignored on system messages"))
        return Message(role=Role.SYSTEM, content=_text_of(content, f"{path}.content", warnings=warnings))
    if role == "user":
        if content is None:
            raise bad_request(f"{path}.content", "required")
        return Message(role=Role.USER, content=_user_content(content, f"{path}.content"), name=name)
    if role == "assistant":
        if message.get("function_call") is not None:
            raise bad_request(f"{path}.function_call", "the deprecated function_call is not supported; use tool_calls")
        text = _text_of(content, f"{path}.content", refusal_ok=True, warnings=warnings)
        reasoning = opt_str(message, "reasoning_content", f"{path}.reasoning_content")
        body: str | list[ContentPart] = text
        if reasoning:
            body = [ReasoningPart(reasoning), *([TextPart(text)] if text else [])]
        calls = _tool_calls(message.get("tool_calls"), f"{path}.tool_calls")
        return Message(role=Role.ASSISTANT, content=body, tool_calls=calls, name=name)
    if role == "tool":
        call_id = req_id(message, "tool_call_id", f"{path}.tool_call_id")
        return Message.tool(call_id, _text_of(content, f"{path}.content", warnings=warnings))
    if role == "function":
        raise bad_request(f"{path}.role", "the deprecated 'function' role is not supported; use 'tool' messages")
    raise bad_request(f"{path}.role", f"unknown role {role!r} (expected system, developer, user, assistant or tool)")


# --- tools and formats ------------------------------------------------------------------------------------


def _tool(value: Any, path: str) -> ToolDef:
    tool = obj(value, path)
    kind = tool.get("type", "function")
    if kind != "function":
        raise bad_request(f"{path}.type", f"only function tools are supported, got {kind!r}")
    function = obj(tool.get("function"), f"{path}.function")
    parameters = function.get("parameters")
    return ToolDef(
        name=req_str(function, "name", f"{path}.function.name"),
        description=opt_str(function, "description", f"{path}.function.description") or "",
        parameters=obj(parameters, f"{path}.function.parameters")
        if parameters is not None
        else {"type": "object", "properties": {}},
        strict=opt_bool(function, "strict", f"{path}.function.strict"),
    )


def _tool_choice(value: Any, tools: tuple[ToolDef, ...]) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return str(value)
    if isinstance(value, str):
        raise bad_request("tool_choice", f"expected 'auto', 'none', 'required' or a function, got {value!r}")
    choice = obj(value, "tool_choice")
    if choice.get("type") != "function":
        raise bad_request("tool_choice.type", f"only a function choice is supported, got {choice.get('type')!r}")
    name = req_str(obj(choice.get("function"), "tool_choice.function"), "name", "tool_choice.function.name")
    if name not in {t.name for t in tools}:
        raise bad_request("tool_choice.function.name", f"{name!r} is not among the request's tools")
    return name


def _response_format(value: Any) -> JsonSchemaFormat | Literal["json", "text"] | None:
    if value is None:
        return None
    fmt = obj(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return "text"
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = obj(fmt.get("json_schema"), "response_format.json_schema")
        return JsonSchemaFormat(
            schema=obj(spec.get("schema", {}), "response_format.json_schema.schema"),
            name=opt_str(spec, "name", "response_format.json_schema.name") or "response",
            strict=bool(opt_bool(spec, "strict", "response_format.json_schema.strict")),
            description=opt_str(spec, "description", "response_format.json_schema.description"),
        )
    raise bad_request("response_format.type", f"expected 'text', 'json_object' or 'json_schema', got {kind!r}")
