"""Request encoding for the Gemini API ``generateContent`` / ``streamGenerateContent``
(https://ai.google.dev/api/generate-content#request-body).

The model and the method are in the URL path (``models/{model}:generateContent``), not the body. Every
``ChatRequest`` field is either written or reported as a ``CallWarning`` (the tests check each field):

- ``system`` and every system message -> ``systemInstruction`` (https://ai.google.dev/api/caching#Content;
  Gemini has no system turns, so a system message in the middle of a conversation is moved there, with
  a warning);
- messages -> ``contents`` with roles ``user`` / ``model``. Parts (https://ai.google.dev/api/caching#Part):
  text -> ``text``; an inline image or a ``data:`` URL -> ``inlineData {mimeType, data}``; any other URL
  -> ``fileData {fileUri, mimeType?}`` (the Files API, or the URLs Gemini can fetch itself,
  https://ai.google.dev/gemini-api/docs/file-input-methods);
- assistant tool calls -> ``functionCall {name, args, id?}`` parts; tool results -> ``functionResponse
  {name, response, id?}`` parts in a ``user`` turn, consecutive results in one turn
  (https://ai.google.dev/gemini-api/docs/function-calling). ``functionResponse`` needs the function's
  name: ``Message.tool(..., name=...)``, else the name of the earlier call with that id (the most recent
  turn's call first), else -- for calls without ids -- the call at the same position among the preceding
  assistant turn's calls. The Gemini API usually returns calls without ids; the decoder gives them the
  synthetic ids of ``wire.call_ids``, which are matched here like any id but never sent (neither on the
  ``functionCall`` nor on the ``functionResponse``: the API did not issue them). The result text is
  sent as the ``response`` object when it is a JSON object, else as ``{"output": text}`` (the
  documented key for a function's output);
- reasoning: thought text is not sent back (thought summaries are output only). Thought signatures
  (https://ai.google.dev/gemini-api/docs/thought-signatures) are: the signatures of an assistant
  message's ``ReasoningPart``s go, in order, onto its ``functionCall`` parts -- the first signature on the
  first call, which Gemini 3 requires -- and any left over onto its last text part (Gemini puts the
  signature of a reply without calls on its last part). ``ToolCall`` has no signature field, so this
  pairing is positional; see ``decode`` for the other half;
- ``tools`` -> ``tools[{functionDeclarations}]`` with the schema in ``parametersJsonSchema`` (full JSON
  Schema, https://ai.google.dev/api/caching#FunctionDeclaration), not ``parameters`` (an OpenAPI subset
  that would need a lossy conversion); ``ToolDef.strict`` has no equivalent (warning);
- ``tool_choice`` -> ``toolConfig.functionCallingConfig``: auto -> ``AUTO``, none -> ``NONE``, required
  -> ``ANY``, a tool name -> ``ANY`` with ``allowedFunctionNames`` (https://ai.google.dev/api/caching#FunctionCallingConfig);
- ``parallel_tool_calls``: Gemini may always call several functions in one turn; ``False`` cannot be
  expressed (warning);
- ``temperature``, ``max_tokens`` (``maxOutputTokens``), ``top_p`` (``topP``), ``stop``
  (``stopSequences``), ``seed`` -> ``generationConfig`` (https://ai.google.dev/api/generate-content#generationconfig);
- ``response_format``: a schema -> ``responseMimeType: application/json`` + ``responseJsonSchema`` (JSON
  Schema, https://ai.google.dev/gemini-api/docs/structured-output; ``description`` goes into the schema's
  root unless it has one; ``name`` and ``strict=False`` cannot be expressed, warning);
  ``"json"`` -> ``application/json``; ``"text"`` -> ``text/plain``;
- ``provider_options["gemini"]`` is merged into the body last, recursively for objects; ``tools`` lists
  are appended (so ``{"tools": [{"googleSearch": {}}]}`` adds a built-in tool). Keys that are
  ``generationConfig`` fields (``thinkingConfig``, ``topK``, ``candidateCount``, ...) may be given at the
  top level and are moved into ``generationConfig``, so ``{"thinkingConfig": {"thinkingBudget": 0}}``
  works (https://ai.google.dev/gemini-api/docs/thinking).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

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
from ..call_ids import is_synthetic_call_id
from ..stream_state import parse_arguments

__all__ = ["GENERATION_CONFIG_FIELDS", "encode_request", "model_path"]

GENERATION_CONFIG_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    }
)
"""``GenerationConfig`` fields (https://ai.google.dev/api/generate-content#generationconfig)."""

_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def model_path(model: str, *, stream: bool) -> str:
    """``models/{model}:generateContent`` (or ``:streamGenerateContent``); a name that already has its
    collection (``models/...``, ``tunedModels/...``) is kept as given."""
    name = model if "/" in model else f"models/{model}"
    method = "streamGenerateContent" if stream else "generateContent"
    return f"{quote(name, safe='/')}:{method}"


def encode_request(
    request: ChatRequest, *, model: str, stream: bool, options_key: str = "gemini"
) -> tuple[str, dict[str, Any], list[CallWarning]]:
    """The URL path (relative to the API version), the JSON body, and the warnings."""
    warnings: list[CallWarning] = []
    system: list[str] = [request.system] if request.system else []
    contents = _Contents(warnings)
    for i, message in enumerate(request.messages):
        if message.role is Role.SYSTEM:
            if contents.turns:
                warnings.append(
                    CallWarning(
                        f"messages[{i}]",
                        "Gemini has no system turns; this system message was moved into systemInstruction",
                    )
                )
            _warn_non_text(message, i, warnings, "system instructions carry text only")
            system.append(message.text)
        else:
            contents.add(message, i)

    body: dict[str, Any] = {"contents": contents.turns}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_tool(t, warnings) for t in request.tools]}]
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _tool_choice(request.tool_choice, request.tools)}
    if request.parallel_tool_calls is False:
        warnings.append(
            CallWarning("parallel_tool_calls", "Gemini cannot be told to call one function at a time; not sent")
        )

    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.seed is not None:
        config["seed"] = request.seed
    if request.response_format is not None:
        config.update(_response_format(request.response_format, warnings))
    if config:
        body["generationConfig"] = config

    extra = request.options_for(options_key)
    if extra:
        options = dict(extra)
        moved = {k: options.pop(k) for k in list(options) if k in GENERATION_CONFIG_FIELDS}
        if moved:
            options["generationConfig"] = _merge(moved, options.get("generationConfig") or {})
        config_options = options.get("generationConfig")
        count = config_options.get("candidateCount") if isinstance(config_options, Mapping) else None
        if isinstance(count, int) and count > 1:
            warnings.append(
                CallWarning(
                    f"provider_options.{options_key}.candidateCount",
                    "only the first candidate (index 0) is decoded; others are dropped",
                )
            )
        body = _merge(body, options)
    return model_path(model, stream=stream), body, warnings


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: objects merge recursively, ``tools`` lists are appended, the rest replaces."""
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(current, value)
        elif key == "tools" and isinstance(current, list) and isinstance(value, list):
            out[key] = [*current, *value]
        else:
            out[key] = value
    return out


class _Contents:
    """Builds ``contents``, remembering earlier tool calls to name the function of each result."""

    __slots__ = ("_answered", "_calls_by_id", "_last_calls", "_tool_turn", "turns", "warnings")

    def __init__(self, warnings: list[CallWarning]) -> None:
        self.turns: list[dict[str, Any]] = []
        self.warnings = warnings
        self._calls_by_id: dict[str, ToolCall] = {}
        self._last_calls: Sequence[ToolCall] = ()
        self._answered = 0
        self._tool_turn: dict[str, Any] | None = None

    def add(self, message: Message, index: int) -> None:
        if message.role is Role.TOOL:
            part = self._function_response(message, index)
            if self._tool_turn is not None and self.turns and self.turns[-1] is self._tool_turn:
                self._tool_turn["parts"].append(part)
            else:
                self._tool_turn = {"role": "user", "parts": [part]}
                self.turns.append(self._tool_turn)
            self._answered += 1
            return
        if message.role is Role.ASSISTANT:
            self.turns.append({"role": "model", "parts": self._model_parts(message, index)})
            self._last_calls = message.tool_calls
            self._answered = 0
            for call in message.tool_calls:
                if call.id:
                    self._calls_by_id[call.id] = call
            return
        self.turns.append({"role": "user", "parts": self._user_parts(message, index)})

    def _user_parts(self, message: Message, index: int) -> list[dict[str, Any]]:
        if isinstance(message.content, str):
            return [{"text": message.content}]
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"text": part.text})
            elif isinstance(part, ImagePart):
                image = _image(part, index, self.warnings)
                if image is not None:
                    parts.append(image)
            else:
                self.warnings.append(
                    CallWarning(f"messages[{index}].content", "reasoning parts in user messages are not sent")
                )
        return parts

    def _model_parts(self, message: Message, index: int) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        signatures: list[str] = []
        if isinstance(message.content, str):
            if message.content:
                parts.append({"text": message.content})
        else:
            for part in message.content:
                if isinstance(part, TextPart):
                    parts.append({"text": part.text})
                elif isinstance(part, ImagePart):
                    image = _image(part, index, self.warnings)
                    if image is not None:
                        parts.append(image)
                elif part.signature:
                    signatures.append(part.signature)
        call_parts = [self._function_call(call, index, n) for n, call in enumerate(message.tool_calls)]
        for call_part, signature in zip(call_parts, signatures, strict=False):
            call_part["thoughtSignature"] = signature
        for signature in signatures[len(call_parts) :]:
            last_text = next((p for p in reversed(parts) if "text" in p), None)
            if last_text is not None and "thoughtSignature" not in last_text:
                last_text["thoughtSignature"] = signature
            else:
                parts.append({"text": "", "thoughtSignature": signature})
        return parts + call_parts

    def _function_call(self, call: ToolCall, index: int, n: int) -> dict[str, Any]:
        args: Any = call.arguments if call.arguments is not None else parse_arguments(call.arguments_raw)
        if args is None:
            self.warnings.append(
                CallWarning(
                    f"messages[{index}].tool_calls[{n}]",
                    "the arguments are not a JSON object (a cut-off call?); sent as {}",
                )
            )
            args = {}
        function_call: dict[str, Any] = {"name": call.name, "args": dict(args)}
        if call.id and not is_synthetic_call_id(call.id):
            function_call["id"] = call.id
        return {"functionCall": function_call}

    def _function_response(self, message: Message, index: int) -> dict[str, Any]:
        call_id = message.tool_call_id or ""
        known = self._calls_by_id.get(call_id)
        name = message.name or (known.name if known is not None else None)
        if name is None and self._answered < len(self._last_calls):
            positional = self._last_calls[self._answered]
            if not positional.id or is_synthetic_call_id(positional.id):
                name = positional.name
        if not name:
            raise InvalidRequestError(
                f"messages[{index}]: Gemini needs the function name of a tool result; pass "
                "Message.tool(tool_call_id, content, name=...) (no earlier call has the id "
                f"{call_id!r})"
            )
        _warn_non_text(message, index, self.warnings, "tool results carry text only")
        text = message.text
        parsed = _json_object(text)
        response: dict[str, Any] = {"name": name, "response": parsed if parsed is not None else {"output": text}}
        if known is not None and not is_synthetic_call_id(call_id):
            response["id"] = call_id
        return {"functionResponse": response}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _image(part: ImagePart, index: int, warnings: list[CallWarning]) -> dict[str, Any] | None:
    if part.detail is not None:
        warnings.append(
            CallWarning(
                f"messages[{index}].content",
                "ImagePart.detail is ignored (Gemini sets resolution with generationConfig.mediaResolution)",
            )
        )
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    url = part.url or ""
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not mime:
            warnings.append(
                CallWarning(f"messages[{index}].content", "image dropped: only base64 data: URLs can be sent inline")
            )
            return None
        return {"inlineData": {"mimeType": mime, "data": data}}
    file_data: dict[str, Any] = {"fileUri": url}
    if part.media_type:
        file_data["mimeType"] = part.media_type
    return {"fileData": file_data}


def _warn_non_text(message: Message, index: int, warnings: list[CallWarning], why: str) -> None:
    if isinstance(message.content, str):
        return
    for part in message.content:
        if isinstance(part, ImagePart):
            warnings.append(CallWarning(f"messages[{index}].content", f"image dropped: {why}"))
        elif isinstance(part, ReasoningPart):
            warnings.append(CallWarning(f"messages[{index}].content", f"reasoning dropped: {why}"))


def _tool(tool: ToolDef, warnings: list[CallWarning]) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    declaration["parametersJsonSchema"] = dict(tool.parameters)
    if tool.strict is not None:
        warnings.append(
            CallWarning(f"tools[{tool.name}].strict", "Gemini has no strict flag for function declarations; ignored")
        )
    return declaration


def _tool_choice(choice: str, tools: Sequence[ToolDef]) -> dict[str, Any]:
    mode = _TOOL_CHOICE_MODES.get(choice)
    if mode is not None:
        return {"mode": mode}
    names = [t.name for t in tools]
    if choice not in names:
        raise InvalidRequestError(
            f"tool_choice names {choice!r}, which is not among the request's tools ({', '.join(names) or 'none'})"
        )
    return {"mode": "ANY", "allowedFunctionNames": [choice]}


def _response_format(fmt: JsonSchemaFormat | str, warnings: list[CallWarning]) -> dict[str, Any]:
    if isinstance(fmt, JsonSchemaFormat):
        schema = dict(fmt.schema)
        if fmt.description and "description" not in schema:
            schema["description"] = fmt.description
        if fmt.name != "response":
            warnings.append(CallWarning("response_format.name", "Gemini response schemas have no name; ignored"))
        if not fmt.strict:
            warnings.append(CallWarning("response_format.strict", "Gemini always constrains the output to the schema"))
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    if fmt == "json":
        return {"responseMimeType": "application/json"}
    return {"responseMimeType": "text/plain"}
