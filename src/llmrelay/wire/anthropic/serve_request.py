"""Request decoding for a served Anthropic Messages endpoint: the reverse of ``encode``
(https://platform.claude.com/docs/en/api/messages).

- ``system``: a string -> ``ChatRequest.system``; an array of text blocks -> one leading ``Role.SYSTEM``
  message per block (so an Anthropic upstream gets the same blocks back);
- ``messages``: ``user`` turns hold ``text`` and ``image`` blocks (``base64`` or ``url`` sources) and
  ``tool_result`` blocks, each of which becomes a ``Role.TOOL`` message in place (the text and images
  around them stay user messages, in order); ``assistant`` turns hold ``text``, ``thinking`` (with its
  signature), ``redacted_thinking`` and ``tool_use`` blocks (-> ``ToolCall``, ``arguments`` the ``input``
  object). Documents, files, search results and server-tool blocks are refused (400): dropping them would
  change what the model sees;
- ``max_tokens`` (required, as in Anthropic's API), ``temperature`` (0..1), ``top_p``, ``stop_sequences``,
  ``tools`` (custom tools; server tools are refused), ``tool_choice`` (``auto`` / ``any`` -> ``required``
  / ``none`` / ``tool`` -> its name; ``disable_parallel_tool_use`` -> ``parallel_tool_calls``),
  ``output_config.format`` (and the older ``output_format``) -> ``JsonSchemaFormat``, ``stream``;
- ``thinking``, ``top_k``, ``service_tier`` and the rest of ``output_config`` have no provider-neutral
  equivalent: they go into ``provider_options["anthropic"]`` with a *vendor* warning, so an Anthropic
  upstream receives them as sent and any other reports them (``DecodedRequest.warnings_for``);
- ``cache_control`` breakpoints and a tool result's ``is_error`` cannot be carried: warned about;
  ``metadata`` is ignored (warned when it carries a ``user_id``); unknown fields are warned about.
"""

from __future__ import annotations

from typing import Any

from ..._types import (
    CallWarning,
    ChatRequest,
    ContentPart,
    ImagePart,
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

__all__ = ["decode_request"]

VENDOR_FIELDS = frozenset({"top_k", "service_tier", "thinking"})
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "stream",
        "metadata",
        "output_config",
        "output_format",
    }
)
_UNSUPPORTED_BLOCKS = frozenset(
    {
        "document",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)


class _Decoding:
    """What one request's decoding collects besides the messages."""

    __slots__ = ("cache_control", "warnings")

    def __init__(self) -> None:
        self.warnings: list[CallWarning] = []
        self.cache_control = False

    def block(self, value: Any, path: str) -> dict[str, Any]:
        block = obj(value, path)
        if block.get("cache_control") is not None:
            self.cache_control = True
        return block


def decode_request(body: Any) -> DecodedRequest:
    """The caller's ``POST /v1/messages`` body as a ``DecodedRequest``; bad input is ``bad_request``."""
    body = obj(body, "")
    d = _Decoding()
    model = req_str(body, "model", "model")
    max_tokens = opt_int(body, "max_tokens", "max_tokens", minimum=1)
    if max_tokens is None:
        raise bad_request("max_tokens", "required (the Messages API always takes one)")
    system, messages = _system(body.get("system"), d)
    turns = req_list(body, "messages", "messages")
    if not turns:
        raise bad_request("messages", "at least one message is required")
    for i, turn in enumerate(turns):
        messages.extend(_turn(turn, f"messages[{i}]", d))
    tools = tuple(_tool(t, f"tools[{i}]", d) for i, t in enumerate(opt_list(body, "tools", "tools")))
    tool_choice, parallel = _tool_choice(body.get("tool_choice"), tools)
    vendor: dict[str, Any] = {}
    vendor_warnings: list[CallWarning] = []
    response_format = _output(body, vendor)
    for key, value in body.items():
        if value is None or key in _HANDLED:
            continue
        if key in VENDOR_FIELDS:
            vendor[key] = value
            if key == "thinking":
                thinking = obj(value, "thinking")
                if not isinstance(thinking.get("type"), str):
                    raise bad_request("thinking.type", "required: 'enabled', 'adaptive' or 'disabled'")
                if thinking["type"] == "disabled":
                    continue
            vendor_warnings.append(
                CallWarning(key, "passed on only to Anthropic-dialect upstreams (no provider-neutral equivalent)")
            )
        else:
            d.warnings.append(CallWarning(key, "ignored: not a Messages API setting this gateway knows"))
    if "output_config" in vendor:
        vendor_warnings.append(CallWarning("output_config", "passed on only to Anthropic-dialect upstreams"))
    metadata = opt_obj(body, "metadata", "metadata")
    if metadata and metadata.get("user_id"):
        d.warnings.append(CallWarning("metadata.user_id", "ignored: the end-user id is not passed to upstreams"))
    if d.cache_control:
        d.warnings.append(CallWarning("cache_control", "ignored: prompt-caching breakpoints are not passed on"))
    request = ChatRequest(
        messages=messages,
        system=system,
        temperature=number(body, "temperature", "temperature", low=0.0, high=1.0),
        max_tokens=max_tokens,
        top_p=number(body, "top_p", "top_p", low=0.0, high=1.0),
        stop=stop_list(body, "stop_sequences", "stop_sequences"),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        response_format=response_format,
        provider_options={"anthropic": vendor} if vendor else {},
    )
    return DecodedRequest(
        request=request,
        model=model,
        stream=bool(opt_bool(body, "stream", "stream")),
        include_usage=True,
        warnings=tuple(d.warnings),
        vendor_warnings=tuple(vendor_warnings),
        dialect="anthropic",
    )


# --- system and turns -----------------------------------------------------------------------------------


def _system(value: Any, d: _Decoding) -> tuple[str | None, list[Message]]:
    if value is None or isinstance(value, str):
        return value or None, []
    if not isinstance(value, list):
        raise bad_request("system", "expected a string or an array of text blocks")
    messages = []
    for i, block in enumerate(value):
        block = d.block(block, f"system[{i}]")
        if block.get("type") != "text":
            raise bad_request(f"system[{i}].type", f"expected 'text', got {block.get('type')!r}")
        messages.append(Message.system(req_str(block, "text", f"system[{i}].text")))
    return None, messages


def _turn(value: Any, path: str, d: _Decoding) -> list[Message]:
    turn = obj(value, path)
    role = req_str(turn, "role", f"{path}.role")
    if role not in ("user", "assistant"):
        raise bad_request(f"{path}.role", f"expected 'user' or 'assistant', got {role!r}")
    content = turn.get("content")
    if isinstance(content, str):
        return [Message(role=Role(role), content=content)]
    if not isinstance(content, list):
        raise bad_request(f"{path}.content", "expected a string or an array of content blocks")
    if role == "assistant":
        return [_assistant(content, f"{path}.content", d)]
    return _user(content, f"{path}.content", d)


def _user(blocks: list[Any], path: str, d: _Decoding) -> list[Message]:
    out: list[Message] = []
    parts: list[ContentPart] = []
    for i, value in enumerate(blocks):
        where = f"{path}[{i}]"
        block = d.block(value, where)
        kind = opt_str(block, "type", f"{where}.type")
        if kind == "tool_result":
            if parts:
                out.append(Message(role=Role.USER, content=parts))
                parts = []
            out.append(_tool_result(block, where, d))
        else:
            parts.append(_part(block, kind, where))
    if parts or not out:
        out.append(Message(role=Role.USER, content=parts))
    return out


def _part(block: dict[str, Any], kind: str | None, where: str) -> ContentPart:
    if kind == "text":
        return TextPart(req_str(block, "text", f"{where}.text"))
    if kind == "image":
        return _image(block.get("source"), f"{where}.source")
    if kind in _UNSUPPORTED_BLOCKS:
        raise bad_request(f"{where}.type", f"{kind!r} blocks are not supported by this gateway")
    raise bad_request(f"{where}.type", f"unknown block type {kind!r}")


def _image(value: Any, path: str) -> ImagePart:
    source = obj(value, path)
    kind = source.get("type")
    if kind == "base64":
        media_type = req_id(source, "media_type", f"{path}.media_type")
        if not media_type.startswith("image/"):
            raise bad_request(f"{path}.media_type", f"expected an image type like 'image/png', got {media_type!r}")
        return ImagePart(data=req_id(source, "data", f"{path}.data"), media_type=media_type)
    if kind == "url":
        return image_from_url(req_str(source, "url", f"{path}.url"), path)
    raise bad_request(f"{path}.type", f"expected 'base64' or 'url', got {kind!r}")


def _tool_result(block: dict[str, Any], where: str, d: _Decoding) -> Message:
    call_id = req_id(block, "tool_use_id", f"{where}.tool_use_id")
    if block.get("is_error"):
        d.warnings.append(CallWarning(f"{where}.is_error", "dropped: a tool result's error flag is not carried"))
    content = block.get("content", "")
    if isinstance(content, str):
        return Message(role=Role.TOOL, content=content, tool_call_id=call_id)
    if not isinstance(content, list):
        raise bad_request(f"{where}.content", "expected a string or an array of text and image blocks")
    parts: list[ContentPart] = []
    for j, value in enumerate(content):
        inner = d.block(value, f"{where}.content[{j}]")
        parts.append(_part(inner, opt_str(inner, "type", f"{where}.content[{j}].type"), f"{where}.content[{j}]"))
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return Message(role=Role.TOOL, content=parts[0].text, tool_call_id=call_id)
    return Message(role=Role.TOOL, content=parts, tool_call_id=call_id)


def _assistant(blocks: list[Any], path: str, d: _Decoding) -> Message:
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    for i, value in enumerate(blocks):
        where = f"{path}[{i}]"
        block = d.block(value, where)
        kind = opt_str(block, "type", f"{where}.type")
        if kind == "text":
            parts.append(TextPart(req_str(block, "text", f"{where}.text")))
        elif kind == "thinking":
            text = req_str(block, "thinking", f"{where}.thinking")
            parts.append(ReasoningPart(text, signature=opt_str(block, "signature", f"{where}.signature") or None))
        elif kind == "redacted_thinking":
            parts.append(ReasoningPart("", redacted=req_str(block, "data", f"{where}.data")))
        elif kind == "tool_use":
            arguments = obj(block.get("input", {}), f"{where}.input")
            calls.append(
                ToolCall.create(
                    req_str(block, "name", f"{where}.name"), arguments, id=req_id(block, "id", f"{where}.id")
                )
            )
        elif kind in _UNSUPPORTED_BLOCKS:
            raise bad_request(f"{where}.type", f"{kind!r} blocks are not supported by this gateway")
        else:
            raise bad_request(f"{where}.type", f"unknown block type {kind!r}")
    content: str | list[ContentPart] = parts
    if not parts:
        content = ""
    elif len(parts) == 1 and isinstance(parts[0], TextPart):
        content = parts[0].text
    return Message(role=Role.ASSISTANT, content=content, tool_calls=calls)


# --- tools and output -----------------------------------------------------------------------------------


def _tool(value: Any, path: str, d: _Decoding) -> ToolDef:
    tool = d.block(value, path)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise bad_request(f"{path}.type", f"server tools ({kind!r}) are not supported by this gateway")
    schema = tool.get("input_schema")
    if schema is None:
        raise bad_request(f"{path}.input_schema", "required")
    return ToolDef(
        name=req_str(tool, "name", f"{path}.name"),
        description=opt_str(tool, "description", f"{path}.description") or "",
        parameters=obj(schema, f"{path}.input_schema"),
        strict=opt_bool(tool, "strict", f"{path}.strict"),
    )


_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _tool_choice(value: Any, tools: tuple[ToolDef, ...]) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    choice = obj(value, "tool_choice")
    kind = opt_str(choice, "type", "tool_choice.type")
    disable = opt_bool(choice, "disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use")
    parallel = None if disable is None else not disable
    if kind is not None and kind in _CHOICES:
        return _CHOICES[kind], parallel
    if kind == "tool":
        name = req_str(choice, "name", "tool_choice.name")
        if name not in {t.name for t in tools}:
            raise bad_request("tool_choice.name", f"{name!r} is not among the request's tools")
        return name, parallel
    raise bad_request("tool_choice.type", f"expected 'auto', 'any', 'tool' or 'none', got {kind!r}")


def _output(body: dict[str, Any], vendor: dict[str, Any]) -> JsonSchemaFormat | None:
    """``output_config.format`` (or the beta's ``output_format``) as a schema; other ``output_config``
    keys (``effort``, ...) are passed on in ``vendor``."""
    config = opt_obj(body, "output_config", "output_config") or {}
    rest = {k: v for k, v in config.items() if k != "format" and v is not None}
    if rest:
        vendor["output_config"] = rest
    fmt, where = config.get("format"), "output_config.format"
    if fmt is None:
        fmt, where = body.get("output_format"), "output_format"
    if fmt is None:
        return None
    fmt = obj(fmt, where)
    if fmt.get("type") != "json_schema":
        raise bad_request(f"{where}.type", f"expected 'json_schema', got {fmt.get('type')!r}")
    return JsonSchemaFormat(schema=obj(fmt.get("schema"), f"{where}.schema"), strict=True)
