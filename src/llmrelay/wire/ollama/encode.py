"""Request encoding for Ollama's native API: ``POST /api/chat`` and ``POST /api/generate``
(https://github.com/ollama/ollama/blob/main/docs/api.md, "Generate a chat completion" and "Generate a
completion").

How each ``ChatRequest`` field travels (the test suite checks every field is encoded or warned):

- ``system`` and system messages: ``{"role": "system"}`` messages (``system`` on ``/api/generate``);
- ``temperature``, ``top_p``, ``seed``, ``stop``: the same-named keys of ``options`` (Modelfile parameters);
  ``max_tokens`` is ``options.num_predict``; ``provider_options["ollama"]["options"]`` is merged into
  ``options`` last, so ``num_ctx``, ``top_k``, ``repeat_penalty``, ``min_p`` ... can be set;
- ``tools``: ``[{"type": "function", "function": {...}}]``; ``ToolDef.strict`` has no Ollama equivalent;
- ``tool_choice``: Ollama has none. ``auto`` is its only behaviour; ``none`` is honoured by not sending
  the tools (with a warning); ``required`` and a named tool cannot be enforced: warned;
- ``parallel_tool_calls``: Ollama may always return several calls; ``False`` is warned;
- ``response_format``: ``format`` is ``"json"`` or a JSON schema (Ollama enforces it with a grammar);
  ``"text"`` is the default and sends nothing;
- images: Ollama takes base64 bytes only (``images`` on a message). ``data:`` URLs are unpacked; http(s)
  URLs are dropped with a warning (Ollama does not fetch them) and ``detail`` is ignored;
- assistant reasoning goes back as the message's ``thinking``; tool calls as
  ``{"function": {"name", "arguments": {...}}}`` (arguments are an object, not a string), with the call's
  ``id`` when it has one (recent servers, 0.21 for one, issue call ids although the published schema
  omits them);
- tool results: ``{"role": "tool", "content", "tool_name"}``; the name is the message's ``name`` or,
  failing that, the name of the earlier call with the same id (the most recent turn's call first).
  ``tool_call_id`` is sent too, for the servers that issue call ids (Go's JSON decoding ignores fields a
  server does not know);
- the synthetic ids the decoder gives calls that arrived without one (``wire.call_ids``, older servers)
  find the tool's name like any id but are not sent: the server did not issue them;
- every other key of ``provider_options["ollama"]`` goes into the body as is: ``think`` (``true`` /
  ``false`` / ``"low"`` ... for gpt-oss), ``keep_alive``, ``logprobs``, ``raw``, ``suffix`` ...

``stream`` is always sent: Ollama streams unless told ``false``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..._errors import InvalidRequestError
from ..._types import (
    CallWarning,
    ChatRequest,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    Role,
    ToolCall,
    ToolDef,
)
from ..call_ids import is_synthetic_call_id

__all__ = ["CHAT_PATH", "GENERATE_PATH", "Endpoint", "encode_request"]

Endpoint = Literal["chat", "generate"]

CHAT_PATH = "/api/chat"
GENERATE_PATH = "/api/generate"


def encode_request(
    request: ChatRequest,
    *,
    model: str,
    stream: bool,
    endpoint: Endpoint = "chat",
    keep_alive: str | float | None = None,
) -> tuple[str, dict[str, Any], list[CallWarning]]:
    """The path, JSON body and warnings for one request.

    With ``endpoint="generate"`` a prompt-only request (system text and one user message, no tools) goes
    to ``/api/generate``; anything else cannot be expressed there and goes to ``/api/chat`` with a warning.
    """
    warnings: list[CallWarning] = []
    extra = dict(request.options_for("ollama"))
    options = _options(request, extra)
    body: dict[str, Any] = {"model": model}
    path = CHAT_PATH
    prompt = _prompt_only(request) if endpoint == "generate" else None
    if endpoint == "generate" and prompt is None:
        warnings.append(
            CallWarning(
                "endpoint",
                "/api/generate takes one prompt (system text and a single user message, no tools); "
                "this request was sent to /api/chat instead",
            )
        )
    if prompt is not None:
        path = GENERATE_PATH
        system, user, user_index = prompt
        body["prompt"] = user.text
        if system:
            body["system"] = system
        _warn_parts(user, f"messages[{user_index}]", warnings, images_ok=True, reasoning_ok=False)
        images = _images(user, user_index, warnings)
        if images:
            body["images"] = images
        _warn_unused_tool_settings(request, warnings)
    else:
        body["messages"] = _messages(request, warnings)
        tools = _tools(request, warnings)
        if tools:
            body["tools"] = tools
    if request.response_format is not None:
        fmt = _format(request.response_format, warnings)
        if fmt is not None:
            body["format"] = fmt
    if options:
        body["options"] = options
    body["stream"] = stream
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    body.update(extra)
    return path, body, warnings


def _options(request: ChatRequest, extra: dict[str, Any]) -> dict[str, Any]:
    """Sampling settings as Modelfile parameters (docs/modelfile.md, "Valid Parameters and Values")."""
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.stop:
        options["stop"] = list(request.stop)
    if request.seed is not None:
        options["seed"] = request.seed
    user_options = extra.pop("options", None)
    if user_options is not None:
        if not isinstance(user_options, Mapping):
            raise InvalidRequestError("provider_options['ollama']['options'] must be a mapping of Modelfile parameters")
        options.update(user_options)
    return options


def _prompt_only(request: ChatRequest) -> tuple[str, Message, int] | None:
    """(system text, the user message, its index) when the request is one prompt; ``None`` otherwise."""
    if request.tools:
        return None
    systems = [request.system] if request.system else []
    user: tuple[Message, int] | None = None
    for index, message in enumerate(request.messages):
        if message.role is Role.SYSTEM and user is None:
            systems.append(message.text)
        elif message.role is Role.USER and user is None:
            user = (message, index)
        else:
            return None
    if user is None:
        return None
    return "\n\n".join(s for s in systems if s), user[0], user[1]


def _messages(request: ChatRequest, warnings: list[CallWarning]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    names: dict[str, str] = {}
    for index, message in enumerate(request.messages):
        out.append(_message(message, index, names, warnings))
        for call in message.tool_calls:
            if call.id:
                names[call.id] = call.name
    return out


def _message(message: Message, index: int, names: Mapping[str, str], warnings: list[CallWarning]) -> dict[str, Any]:
    where = f"messages[{index}]"
    role = message.role
    if role is Role.USER:
        out: dict[str, Any] = {"role": "user", "content": message.text}
        images = _images(message, index, warnings)
        if images:
            out["images"] = images
        _warn_parts(message, where, warnings, images_ok=True, reasoning_ok=False)
        return out
    if role is Role.SYSTEM:
        _warn_parts(message, where, warnings, images_ok=False, reasoning_ok=False)
        return {"role": "system", "content": message.text}
    if role is Role.TOOL:
        _warn_parts(message, where, warnings, images_ok=False, reasoning_ok=False)
        out = {"role": "tool", "content": message.text}
        name = message.name or names.get(message.tool_call_id or "")
        if name:
            out["tool_name"] = name
        else:
            warnings.append(
                CallWarning(
                    f"{where}.name",
                    "the tool's name is unknown (no name= and no earlier call with this id); "
                    "Ollama matches results to tools by tool_name",
                )
            )
        if not is_synthetic_call_id(message.tool_call_id):
            out["tool_call_id"] = message.tool_call_id
        return out
    # assistant
    out = {"role": "assistant", "content": message.text}
    thinking = _thinking(message, where, warnings)
    if thinking:
        out["thinking"] = thinking
    _warn_parts(message, where, warnings, images_ok=False, reasoning_ok=True)
    if message.tool_calls:
        out["tool_calls"] = [
            _tool_call(call, f"{where}.tool_calls[{i}]", warnings) for i, call in enumerate(message.tool_calls)
        ]
    return out


def _thinking(message: Message, where: str, warnings: list[CallWarning]) -> str:
    if isinstance(message.content, str):
        return ""
    parts = [p for p in message.content if isinstance(p, ReasoningPart)]
    if any(p.redacted and not p.text for p in parts):
        warnings.append(CallWarning(f"{where}.content", "redacted (encrypted) reasoning cannot be sent to Ollama"))
    return "".join(p.text for p in parts)


def _tool_call(call: ToolCall, where: str, warnings: list[CallWarning]) -> dict[str, Any]:
    arguments: Any = call.arguments
    if arguments is None:
        try:
            arguments = json.loads(call.arguments_raw) if call.arguments_raw else {}
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            warnings.append(
                CallWarning(f"{where}.arguments", "the arguments are not a JSON object; Ollama needs one: sent {}")
            )
            arguments = {}
    out: dict[str, Any] = {"function": {"name": call.name, "arguments": dict(arguments)}}
    if call.id and not is_synthetic_call_id(call.id):
        out["id"] = call.id
    return out


def _images(message: Message, index: int, warnings: list[CallWarning]) -> list[str]:
    """Base64 payloads of the message's images; URL images are reported (Ollama needs the bytes)."""
    if isinstance(message.content, str):
        return []
    images: list[str] = []
    for part in message.content:
        if not isinstance(part, ImagePart):
            continue
        where = f"messages[{index}].content"
        if part.detail:
            warnings.append(CallWarning(where, f"image detail={part.detail!r} is ignored: Ollama has no such setting"))
        if part.data is not None:
            images.append(part.data)
            continue
        url = part.url or ""
        head, sep, payload = url.partition(",")
        if url.startswith("data:") and sep and head.endswith(";base64"):
            images.append(payload)
        else:
            warnings.append(
                CallWarning(
                    where,
                    "image URL dropped: Ollama takes image bytes only; pass ImagePart(data=..., media_type=...)",
                )
            )
    return images


def _warn_parts(
    message: Message, where: str, warnings: list[CallWarning], *, images_ok: bool, reasoning_ok: bool
) -> None:
    if isinstance(message.content, str):
        return
    role = message.role.value
    for part in message.content:
        if isinstance(part, ImagePart) and not images_ok:
            warnings.append(CallWarning(f"{where}.content", f"image dropped: {role} messages carry text only"))
        elif isinstance(part, ReasoningPart) and not reasoning_ok:
            warnings.append(CallWarning(f"{where}.content", f"reasoning dropped: {role} messages carry no reasoning"))


def _tools(request: ChatRequest, warnings: list[CallWarning]) -> list[dict[str, Any]]:
    tools: Sequence[ToolDef] = request.tools
    choice = request.tool_choice
    if choice is not None and choice not in ("auto", "none", "required") and choice not in {t.name for t in tools}:
        names = ", ".join(t.name for t in tools) or "none"
        raise InvalidRequestError(f"tool_choice names {choice!r}, which is not among the request's tools ({names})")
    if choice == "none":
        if tools:
            warnings.append(
                CallWarning("tool_choice", "Ollama has no tool_choice; 'none' is honoured by not sending the tools")
            )
        tools = ()
    elif choice is not None and choice != "auto":
        warnings.append(
            CallWarning("tool_choice", f"Ollama cannot force a tool call ({choice!r}); the model may answer in text")
        )
    if request.parallel_tool_calls is False:
        warnings.append(
            CallWarning("parallel_tool_calls", "Ollama cannot limit a turn to one call; it may return several")
        )
    out = []
    for i, tool in enumerate(tools):
        function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
        if tool.description:
            function["description"] = tool.description
        if tool.strict:
            warnings.append(CallWarning(f"tools[{i}].strict", "Ollama has no strict tool schemas; not enforced"))
        out.append({"type": "function", "function": function})
    return out


def _warn_unused_tool_settings(request: ChatRequest, warnings: list[CallWarning]) -> None:
    if request.tool_choice not in (None, "auto"):
        warnings.append(CallWarning("tool_choice", "/api/generate has no tools; ignored"))
    if request.parallel_tool_calls is False:
        warnings.append(CallWarning("parallel_tool_calls", "/api/generate has no tools; ignored"))


def _format(fmt: JsonSchemaFormat | str, warnings: list[CallWarning]) -> Any:
    if isinstance(fmt, JsonSchemaFormat):
        if fmt.description:
            warnings.append(
                CallWarning("response_format.description", "Ollama's format takes the schema only; dropped")
            )
        if not fmt.strict:
            warnings.append(
                CallWarning(
                    "response_format.strict", "Ollama always enforces the schema (grammar); strict=False ignored"
                )
            )
        return dict(fmt.schema)
    if fmt == "json":
        return "json"
    return None
