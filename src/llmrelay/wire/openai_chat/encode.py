"""Request encoding for OpenAI Chat Completions
(https://platform.openai.com/docs/api-reference/chat/create).

Every ``ChatRequest`` field is either written to the body or reported as a ``CallWarning``; the test
suite checks that for each field. ``provider_options["openai"]`` is merged into the body last, so any
documented parameter not modelled here (``reasoning_effort``, ``logit_bias``, ``user``, ...) can be sent.
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
    ToolDef,
)

__all__ = ["encode_request"]


def encode_request(
    request: ChatRequest,
    *,
    model: str,
    stream: bool,
    options_key: str = "openai",
    max_tokens_field: str = "max_tokens",
) -> tuple[dict[str, Any], list[CallWarning]]:
    """The JSON body for ``POST /chat/completions`` and the warnings for what it could not express."""
    warnings: list[CallWarning] = []
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for i, message in enumerate(request.messages):
        messages.append(_message(message, i, warnings))
    body: dict[str, Any] = {"model": model, "messages": messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice, request.tools)
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.response_format is not None:
        body["response_format"] = _response_format(request.response_format)
    if stream:
        body["stream"] = True
        # Without this the stream carries no usage at all.
        body["stream_options"] = {"include_usage": True}
    extra = request.options_for(options_key)
    if extra:
        n = extra.get("n")
        if isinstance(n, int) and n > 1:
            warnings.append(
                CallWarning("provider_options.n", "only the first choice (index 0) is decoded; others are dropped")
            )
        body.update(extra)
    return body, warnings


def _message(message: Message, index: int, warnings: list[CallWarning]) -> dict[str, Any]:
    role = message.role
    if role is Role.TOOL:
        out: dict[str, Any] = {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
        _warn_non_text(message, index, warnings, "tool results carry text only")
        return out
    if role is Role.ASSISTANT:
        out = {"role": "assistant"}
        text = message.text
        _warn_non_text(message, index, warnings, "assistant messages carry text only", allow_reasoning=True)
        if message.tool_calls:
            out["content"] = text or None
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": call.arguments_raw
                        or json.dumps(call.arguments if call.arguments is not None else {}),
                    },
                }
                for call in message.tool_calls
            ]
        else:
            out["content"] = text
        if message.name:
            out["name"] = message.name
        return out
    if role is Role.SYSTEM:
        _warn_non_text(message, index, warnings, "system messages carry text only")
        return {"role": "system", "content": message.text}
    # user
    if isinstance(message.content, str):
        out = {"role": "user", "content": message.content}
    else:
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                image: dict[str, Any] = {"url": part.as_data_url()}
                if part.detail:
                    image["detail"] = part.detail
                parts.append({"type": "image_url", "image_url": image})
            else:
                warnings.append(
                    CallWarning(f"messages[{index}].content", "reasoning parts in user messages are not sent")
                )
        out = {"role": "user", "content": parts}
    if message.name:
        out["name"] = message.name
    return out


def _warn_non_text(
    message: Message, index: int, warnings: list[CallWarning], why: str, *, allow_reasoning: bool = False
) -> None:
    if isinstance(message.content, str):
        return
    for part in message.content:
        if isinstance(part, ImagePart):
            warnings.append(CallWarning(f"messages[{index}].content", f"image dropped: {why}"))
        elif isinstance(part, ReasoningPart) and not allow_reasoning:
            warnings.append(CallWarning(f"messages[{index}].content", f"reasoning dropped: {why}"))


def _tool(tool: ToolDef) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: str, tools: tuple[ToolDef, ...] | Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    names = [t.name for t in tools]
    if choice not in names:
        raise InvalidRequestError(
            f"tool_choice names {choice!r}, which is not among the request's tools ({', '.join(names) or 'none'})"
        )
    return {"type": "function", "function": {"name": choice}}


def _response_format(fmt: JsonSchemaFormat | str) -> dict[str, Any]:
    if isinstance(fmt, JsonSchemaFormat):
        schema: dict[str, Any] = {"name": fmt.name, "schema": dict(fmt.schema), "strict": fmt.strict}
        if fmt.description:
            schema["description"] = fmt.description
        return {"type": "json_schema", "json_schema": schema}
    if fmt == "json":
        return {"type": "json_object"}
    return {"type": "text"}
