"""Request encoding for the Anthropic Messages API (https://platform.claude.com/docs/en/api/messages).

Every ``ChatRequest`` field is either written to the body or reported as a ``CallWarning`` (the tests iterate
``dataclasses.fields(ChatRequest)`` to check it):

- ``system`` and every ``Role.SYSTEM`` message, in order, become the top-level ``system`` (the Messages API
  has no system role); a system message after the conversation began is moved there, with a warning;
- ``max_tokens`` is required by Anthropic: without one the dialect's default is sent (``DEFAULT_MAX_TOKENS``,
  plus the thinking budget when thinking is on) and a warning says so, unless the default was configured
  explicitly (``AnthropicDialect(default_max_tokens=...)``) or ``provider_options`` sets it;
- ``temperature`` (Anthropic's range is 0..1: higher values are clamped, with a warning), ``top_p``,
  ``stop`` -> ``stop_sequences``;
- ``tools`` -> ``{name, description, input_schema, strict}``; ``tool_choice`` -> ``{"type": "auto" | "any" |
  "none" | "tool"}`` (our ``required`` is ``any``); ``parallel_tool_calls`` -> ``tool_choice.
  disable_parallel_tool_use`` (https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use);
- ``response_format``: a JSON schema -> ``output_config.format`` (structured outputs,
  https://platform.claude.com/docs/en/build-with-claude/structured-outputs); plain ``"json"`` has no
  Anthropic equivalent and is warned about;
- ``seed`` does not exist in the Messages API: warned about;
- ``provider_options["anthropic"]`` is merged into the body last (one level deep for objects such as
  ``output_config``), so ``thinking``, ``top_k``, ``metadata``, ``cache_control``, ``service_tier`` ... can be
  sent. Its ``betas`` list is not a body field: it becomes the ``anthropic-beta`` header
  (https://platform.claude.com/docs/en/api/beta-headers).

Messages (https://platform.claude.com/docs/en/build-with-claude/working-with-messages): user and assistant
turns must alternate, so adjacent turns of the same role are merged; tool results (``Role.TOOL``) are
``tool_result`` blocks in a user turn, placed before any text of that turn as the tool-use guide requires;
assistant tool calls are ``tool_use`` blocks after the assistant's text (``tool_use`` ids must be unique in
a request, so synthetic ids that repeat from turn to turn -- a conversation that began with Gemini -- are
renamed by ``call_ids.unique_synthetic_ids``); ``ReasoningPart`` with a signature is
a ``thinking`` block and one with ``redacted`` data a ``redacted_thinking`` block, sent back unchanged
(https://platform.claude.com/docs/en/build-with-claude/extended-thinking#preserving-thinking-blocks). Images are
``base64`` or ``url`` sources (https://platform.claude.com/docs/en/build-with-claude/vision).

Extended thinking constrains sampling: ``temperature`` may only be 1 and ``top_p`` between 0.95 and 1; other
values are dropped with a warning rather than sent to be rejected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
from ..call_ids import unique_synthetic_ids

__all__ = ["DEFAULT_MAX_TOKENS", "encode_request"]

DEFAULT_MAX_TOKENS = 4096
"""Sent when a request has no ``max_tokens`` (Anthropic requires one); every current Claude model allows it."""

_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


def encode_request(
    request: ChatRequest,
    *,
    model: str,
    stream: bool,
    options_key: str = "anthropic",
    default_max_tokens: int | None = None,
) -> tuple[dict[str, Any], dict[str, str], list[CallWarning]]:
    """The JSON body for ``POST /v1/messages``, extra headers, and the warnings for what it could not express."""
    warnings: list[CallWarning] = []
    options = dict(request.options_for(options_key))
    headers = _beta_headers(options.pop("betas", None))
    thinking = _thinking_enabled(options.get("thinking"))

    system, turns = _conversation(request, warnings)
    body: dict[str, Any] = {"model": model, "messages": turns}
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system

    body["max_tokens"] = _max_tokens(request, options, default_max_tokens, warnings)
    if request.temperature is not None:
        _temperature(request.temperature, thinking, body, warnings)
    if request.top_p is not None:
        if thinking and not 0.95 <= request.top_p <= 1.0:
            warnings.append(CallWarning("top_p", "dropped: with extended thinking Anthropic accepts only 0.95..1"))
        else:
            body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.seed is not None:
        warnings.append(CallWarning("seed", "dropped: the Anthropic Messages API has no seed"))
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    choice = _tool_choice(request, warnings)
    if choice is not None:
        body["tool_choice"] = choice
    if request.response_format is not None:
        _response_format(request.response_format, body, warnings)
    if stream:
        body["stream"] = True
    _merge(body, options)
    return body, headers, warnings


# --- sampling and limits ----------------------------------------------------------------------------


def _thinking_enabled(thinking: Any) -> int | None:
    """The thinking budget when extended thinking is on (0 for budget-less modes such as ``adaptive``)."""
    if not isinstance(thinking, Mapping) or thinking.get("type") in (None, "disabled"):
        return None
    budget = thinking.get("budget_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else 0


def _max_tokens(
    request: ChatRequest, options: Mapping[str, Any], default: int | None, warnings: list[CallWarning]
) -> int:
    if request.max_tokens is not None:
        return request.max_tokens
    explicit = options.get("max_tokens")
    if isinstance(explicit, int) and not isinstance(explicit, bool):
        return explicit
    if default is not None:
        return default
    # The thinking budget counts towards max_tokens, so the default answer room is added on top of it.
    budget = _thinking_enabled(options.get("thinking")) or 0
    value = DEFAULT_MAX_TOKENS + budget
    how = f"the default {DEFAULT_MAX_TOKENS} plus the thinking budget" if budget else "the default"
    warnings.append(
        CallWarning("max_tokens", f"Anthropic requires max_tokens and the request has none: sent {value} ({how})")
    )
    return value


def _temperature(value: float, thinking: int | None, body: dict[str, Any], warnings: list[CallWarning]) -> None:
    if thinking is not None and value != 1.0:
        warnings.append(CallWarning("temperature", "dropped: with extended thinking Anthropic accepts only 1"))
        return
    if value > 1.0:
        warnings.append(CallWarning("temperature", f"clamped from {value} to 1.0: Anthropic's range is 0..1"))
        value = 1.0
    body["temperature"] = value


# --- tools --------------------------------------------------------------------------------------------


def _tool(tool: ToolDef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["input_schema"] = dict(tool.parameters)
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice(request: ChatRequest, warnings: list[CallWarning]) -> dict[str, Any] | None:
    choice, parallel = request.tool_choice, request.parallel_tool_calls
    if choice is None and parallel is None:
        return None
    names = [t.name for t in request.tools]
    if choice is not None and choice not in _TOOL_CHOICES and choice not in names:
        raise InvalidRequestError(
            f"tool_choice names {choice!r}, which is not among the request's tools ({', '.join(names) or 'none'})"
        )
    if not request.tools:
        # Anthropic rejects tool_choice without tools; "none" is what a tool-less request does anyway.
        for setting, value in (("tool_choice", choice), ("parallel_tool_calls", parallel)):
            if value is not None and value != "none":
                warnings.append(CallWarning(setting, "dropped: the request has no tools"))
        return None
    kind = _TOOL_CHOICES.get(choice or "auto")
    out: dict[str, Any] = {"type": kind} if kind is not None else {"type": "tool", "name": choice}
    if parallel is not None and kind != "none":
        out["disable_parallel_tool_use"] = not parallel
    return out


# --- structured output ----------------------------------------------------------------------------------


def _response_format(fmt: JsonSchemaFormat | str, body: dict[str, Any], warnings: list[CallWarning]) -> None:
    if isinstance(fmt, JsonSchemaFormat):
        body["output_config"] = {"format": {"type": "json_schema", "schema": dict(fmt.schema)}}
        if fmt.description:
            warnings.append(CallWarning("response_format.description", "dropped: Anthropic takes only the schema"))
        if not fmt.strict:
            warnings.append(
                CallWarning("response_format.strict", "ignored: Anthropic always constrains output to the schema")
            )
    elif fmt == "json":
        warnings.append(
            CallWarning(
                "response_format",
                "dropped: Anthropic has no plain JSON mode; pass a JsonSchemaFormat or ask for JSON in the prompt",
            )
        )
    # "text" is what Anthropic does by default: nothing to send.


# --- conversation ---------------------------------------------------------------------------------------


def _conversation(
    request: ChatRequest, warnings: list[CallWarning]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` text blocks and the alternating ``messages`` list."""
    system: list[dict[str, Any]] = []
    if request.system:
        system.append({"type": "text", "text": request.system})
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(unique_synthetic_ids(request.messages)):
        where = f"messages[{i}]"
        if message.role is Role.SYSTEM:
            _warn_parts(message, where, warnings, "system messages carry text only")
            if turns:
                warnings.append(
                    CallWarning(where, "moved to the top-level system prompt (Anthropic has no system turns)")
                )
            if message.text:
                system.append({"type": "text", "text": message.text})
            continue
        if message.name and message.role is not Role.TOOL:
            warnings.append(CallWarning(f"{where}.name", "dropped: Anthropic messages have no name"))
        if message.role is Role.TOOL:
            role, blocks = "user", [_tool_result(message, where, warnings)]
        elif message.role is Role.ASSISTANT:
            role, blocks = "assistant", _assistant_blocks(message, where, warnings)
        else:
            role, blocks = "user", _user_blocks(message, where, warnings)
        if not blocks:
            warnings.append(CallWarning(where, "dropped: the message is empty (Anthropic rejects empty turns)"))
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in content):
            # Tool results must come first in their user turn; sorted() is stable.
            content.sort(key=lambda b: b["type"] != "tool_result")
        if len(content) == 1 and set(content[0]) == {"type", "text"} and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return system, turns


def _parts(message: Message) -> Sequence[TextPart | ImagePart | ReasoningPart]:
    return [TextPart(message.content)] if isinstance(message.content, str) else message.content


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image_block(part: ImagePart, where: str, warnings: list[CallWarning]) -> dict[str, Any]:
    if part.detail is not None:
        warnings.append(CallWarning(f"{where}.detail", "ignored: Anthropic has no image detail setting"))
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    elif part.url is not None and part.url.startswith("data:") and ";base64," in part.url:
        media_type, _, data = part.url[len("data:") :].partition(";base64,")
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": part.url}
    return {"type": "image", "source": source}


def _user_blocks(message: Message, where: str, warnings: list[CallWarning]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in _parts(message):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(_text_block(part.text))
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, f"{where}.content", warnings))
        else:
            warnings.append(CallWarning(f"{where}.content", "reasoning dropped: user messages carry no reasoning"))
    return blocks


def _assistant_blocks(message: Message, where: str, warnings: list[CallWarning]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in _parts(message):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(_text_block(part.text))
        elif isinstance(part, ReasoningPart):
            if part.redacted is not None:
                blocks.append({"type": "redacted_thinking", "data": part.redacted})
            elif part.signature:
                blocks.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
            else:
                warnings.append(
                    CallWarning(
                        f"{where}.content",
                        "reasoning dropped: Anthropic accepts thinking back only with its signature",
                    )
                )
        else:
            warnings.append(CallWarning(f"{where}.content", "image dropped: assistant messages carry no images"))
    for n, call in enumerate(message.tool_calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{n}]", warnings))
    return blocks


def _tool_use(call: ToolCall, where: str, warnings: list[CallWarning]) -> dict[str, Any]:
    arguments: Any = call.arguments
    if arguments is None:
        try:
            arguments = json.loads(call.arguments_raw) if call.arguments_raw.strip() else {}
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            warnings.append(CallWarning(f"{where}.arguments", "sent as {}: the raw arguments are not a JSON object"))
            arguments = {}
    if not call.id:
        warnings.append(CallWarning(f"{where}.id", "the call has no id; Anthropic needs one to match its result"))
    return {"type": "tool_use", "id": call.id or "", "name": call.name, "input": dict(arguments)}


def _tool_result(message: Message, where: str, warnings: list[CallWarning]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if isinstance(message.content, str):
        block["content"] = message.content
        return block
    content: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            if part.text:
                content.append(_text_block(part.text))
        elif isinstance(part, ImagePart):
            content.append(_image_block(part, f"{where}.content", warnings))
        else:
            warnings.append(CallWarning(f"{where}.content", "reasoning dropped: tool results carry no reasoning"))
    block["content"] = content
    return block


def _warn_parts(message: Message, where: str, warnings: list[CallWarning], why: str) -> None:
    if isinstance(message.content, str):
        return
    for part in message.content:
        if isinstance(part, ImagePart):
            warnings.append(CallWarning(f"{where}.content", f"image dropped: {why}"))
        elif isinstance(part, ReasoningPart):
            warnings.append(CallWarning(f"{where}.content", f"reasoning dropped: {why}"))


# --- options ---------------------------------------------------------------------------------------------


def _beta_headers(betas: Any) -> dict[str, str]:
    if isinstance(betas, str) and betas:
        return {"anthropic-beta": betas}
    if isinstance(betas, Sequence) and betas:
        return {"anthropic-beta": ",".join(str(b) for b in betas)}
    return {}


def _merge(body: dict[str, Any], options: Mapping[str, Any]) -> None:
    """``provider_options`` win; objects present on both sides are merged one level deep."""
    for key, value in options.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            body[key] = {**current, **value}
        else:
            body[key] = value
