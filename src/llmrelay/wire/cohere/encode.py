"""Request encoding for Cohere's Chat API v2, ``POST /v2/chat`` (https://docs.cohere.com/reference/chat;
streaming is the same endpoint with ``"stream": true``, https://docs.cohere.com/reference/chat-stream).

How each ``ChatRequest`` field travels (the test suite checks every field is encoded or warned):

- ``system`` and system messages: ``{"role": "system", "content"}``;
- user messages: a string, or content items ``{"type": "text"}`` / ``{"type": "image_url", "image_url":
  {"url", "detail"}}`` (vision models such as Command A Vision);
- assistant messages: ``content`` (text, plus ``{"type": "thinking"}`` items for reasoning), or, when the
  message has tool calls, ``tool_calls`` (``{"id", "type": "function", "function": {"name",
  "arguments"}}`` with the arguments as a JSON string) and the reasoning as ``tool_plan``: Cohere's tool
  plan is decoded as reasoning, so it goes back where it came from;
- tool results: ``{"role": "tool", "tool_call_id", "content"}``;
- ``tools``: ``{"type": "function", "function": {"name", "description", "parameters"}}``;
  ``ToolDef.strict`` maps to the request-wide ``strict_tools``;
- ``tool_choice``: ``"required"`` -> ``"REQUIRED"``, ``"none"`` -> ``"NONE"``, ``"auto"`` is the default
  (nothing sent); a named tool is ``"REQUIRED"`` with only that tool sent, which forces exactly it;
- ``parallel_tool_calls``: Cohere may always call several tools; ``False`` is warned;
- ``response_format``: ``{"type": "json_object", "json_schema": ...}``, ``{"type": "json_object"}`` or
  ``{"type": "text"}``;
- ``temperature``, ``max_tokens``, ``seed`` by name; ``top_p`` is ``p``; ``stop`` is ``stop_sequences``;
- ``provider_options["cohere"]`` is merged into the body last: ``thinking`` (``{"type": "enabled",
  "token_budget": n}``), ``safety_mode``, ``documents``, ``citation_options``, ``k``,
  ``frequency_penalty``, ``presence_penalty``, ``logprobs``, ``priority`` ...
"""

from __future__ import annotations

import json
from typing import Any

from ..._errors import InvalidRequestError
from ..._types import (
    CallWarning,
    ChatRequest,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    Role,
    TextPart,
    ToolCall,
    ToolDef,
)

__all__ = ["CHAT_PATH", "encode_request"]

CHAT_PATH = "/v2/chat"


def encode_request(request: ChatRequest, *, model: str, stream: bool) -> tuple[dict[str, Any], list[CallWarning]]:
    """The JSON body for ``POST /v2/chat`` and the warnings for what it could not express."""
    warnings: list[CallWarning] = []
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for index, message in enumerate(request.messages):
        messages.append(_message(message, index, warnings))
    body: dict[str, Any] = {"model": model, "messages": messages}
    _tools(request, body, warnings)
    if request.response_format is not None:
        body["response_format"] = _response_format(request.response_format, warnings)
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.seed is not None:
        body["seed"] = request.seed
    if request.top_p is not None:
        body["p"] = request.top_p
    if stream:
        body["stream"] = True
    body.update(request.options_for("cohere"))
    return body, warnings


def _message(message: Message, index: int, warnings: list[CallWarning]) -> dict[str, Any]:
    where = f"messages[{index}].content"
    role = message.role
    if role is Role.USER:
        return {"role": "user", "content": _user_content(message, where, warnings)}
    if role is Role.SYSTEM:
        _warn_non_text(message, where, warnings)
        return {"role": "system", "content": message.text}
    if role is Role.TOOL:
        _warn_non_text(message, where, warnings)
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    return _assistant(message, index, warnings)


def _user_content(message: Message, where: str, warnings: list[CallWarning]) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    items: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            items.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.as_data_url()}
            if part.detail:
                image["detail"] = part.detail
            items.append({"type": "image_url", "image_url": image})
        else:
            warnings.append(CallWarning(where, "reasoning parts in user messages are not sent"))
    return items


def _assistant(message: Message, index: int, warnings: list[CallWarning]) -> dict[str, Any]:
    where = f"messages[{index}].content"
    _warn_non_text(message, where, warnings, allow_reasoning=True)
    reasoning = ""
    if not isinstance(message.content, str):
        parts = [p for p in message.content if isinstance(p, ReasoningPart)]
        if any(p.redacted and not p.text for p in parts):
            warnings.append(CallWarning(where, "redacted (encrypted) reasoning cannot be sent to Cohere"))
        reasoning = "".join(p.text for p in parts)
    out: dict[str, Any] = {"role": "assistant"}
    text = message.text
    if message.tool_calls:
        if reasoning:
            out["tool_plan"] = reasoning
        out["tool_calls"] = [
            _tool_call(call, f"messages[{index}].tool_calls[{i}]", warnings)
            for i, call in enumerate(message.tool_calls)
        ]
        if text:
            out["content"] = text
        return out
    if reasoning:
        items: list[dict[str, Any]] = [{"type": "thinking", "thinking": reasoning}]
        if text:
            items.append({"type": "text", "text": text})
        out["content"] = items
    else:
        out["content"] = text
    return out


def _tool_call(call: ToolCall, where: str, warnings: list[CallWarning]) -> dict[str, Any]:
    arguments = call.arguments_raw or json.dumps(call.arguments if call.arguments is not None else {})
    out: dict[str, Any] = {"type": "function", "function": {"name": call.name, "arguments": arguments}}
    if call.id:
        out = {"id": call.id, **out}
    else:
        warnings.append(
            CallWarning(f"{where}.id", "the call has no id; Cohere matches tool results to calls by tool_call_id")
        )
    return out


def _warn_non_text(message: Message, where: str, warnings: list[CallWarning], *, allow_reasoning: bool = False) -> None:
    if isinstance(message.content, str):
        return
    role = message.role.value
    for part in message.content:
        if isinstance(part, ImagePart):
            warnings.append(CallWarning(where, f"image dropped: {role} messages carry text only"))
        elif isinstance(part, ReasoningPart) and not allow_reasoning:
            warnings.append(CallWarning(where, f"reasoning dropped: {role} messages carry no reasoning"))


def _tool(tool: ToolDef) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tools(request: ChatRequest, body: dict[str, Any], warnings: list[CallWarning]) -> None:
    tools = list(request.tools)
    choice = request.tool_choice
    wire_choice: str | None = None
    if choice is not None and choice not in ("auto", "none", "required"):
        chosen = [t for t in tools if t.name == choice]
        if not chosen:
            names = ", ".join(t.name for t in tools) or "none"
            raise InvalidRequestError(f"tool_choice names {choice!r}, which is not among the request's tools ({names})")
        # Cohere can force "some tool"; sending only the named one forces exactly that tool.
        tools = chosen
        wire_choice = "REQUIRED"
    elif choice == "required":
        wire_choice = "REQUIRED"
    elif choice == "none":
        wire_choice = "NONE"
    if tools:
        body["tools"] = [_tool(t) for t in tools]
        strict = {t.strict for t in tools if t.strict is not None}
        if strict:
            body["strict_tools"] = True in strict
            if len(strict) > 1:
                warnings.append(
                    CallWarning("tools.strict", "Cohere's strict_tools covers every tool; mixed values sent as true")
                )
        if wire_choice:
            body["tool_choice"] = wire_choice
    elif wire_choice == "REQUIRED":
        warnings.append(CallWarning("tool_choice", "'required' without tools cannot be honoured; not sent"))
    if request.parallel_tool_calls is False:
        warnings.append(
            CallWarning("parallel_tool_calls", "Cohere cannot limit a turn to one tool call; it may return several")
        )


def _response_format(fmt: JsonSchemaFormat | str, warnings: list[CallWarning]) -> dict[str, Any]:
    if isinstance(fmt, JsonSchemaFormat):
        if fmt.description:
            warnings.append(
                CallWarning("response_format.description", "Cohere's response_format takes the schema only; dropped")
            )
        if not fmt.strict:
            warnings.append(
                CallWarning("response_format.strict", "Cohere always enforces a json_schema; strict=False ignored")
            )
        return {"type": "json_object", "json_schema": dict(fmt.schema)}
    if fmt == "json":
        return {"type": "json_object"}
    return {"type": "text"}
