"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json``: ``openapi_document()``.

Every route of ``gateway.app`` is described with hand-written JSON Schemas (2020-12, as OpenAPI 3.1 uses) of
the subset the gateway accepts, not the vendors' full specifications:

- ``POST /v1/chat/completions``: OpenAI's Chat Completions request as ``wire.openai_chat.serve_request``
  decodes it (https://platform.openai.com/docs/api-reference/chat/create); answers a ``chat.completion``
  body or a ``text/event-stream`` of ``chat.completion.chunk`` events; errors are OpenAI's
  ``{"error": {"message", "type", "param", "code"}}``.
- ``GET /v1/models``: OpenAI's model list.
- ``POST /v1/messages``, ``POST /v1/messages/count_tokens``: Anthropic's Messages request as
  ``wire.anthropic.serve_request`` decodes it (https://platform.claude.com/docs/en/api/messages); answers a
  ``message`` body or its event stream, and ``{"input_tokens": N}``; errors are Anthropic's
  ``{"type": "error", "error": {"type", "message"}}``.
- ``POST /api/chat``, ``/api/agent``, ``/api/agent/stream``: our own ``ChatRequest`` in the tagged JSON codec
  (``llmrelay._codec``), answered with a ``ChatResponse`` or a stream of tagged events.
- ``GET /healthz``, ``/readyz``, ``/metrics`` (Prometheus text), ``/openapi.json``.

Request objects allow additional properties where the vendors add fields faster than we list them (the
decoders pass vendor settings on or answer them with a warning); the gateway's 4xx answers say what was
wrong. Response schemas require what our encoders always write and allow the rest. Errors are documented as
``4XX`` / ``5XX`` ranges in each route's dialect. Security: ``Authorization: Bearer KEY`` or ``x-api-key: KEY``;
both optional in the document because a gateway without keys (loopback only) takes anonymous requests.

The document is built once per call from plain dicts (no I/O); ``openapi_document()`` returns a fresh copy.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION = "3.1.0"

JSON = "application/json"
SSE = "text/event-stream"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, extra: bool = True, **more: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if not extra:
        out["additionalProperties"] = False
    out.update(more)
    return out


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NONNEG: Schema = {"type": "integer", "minimum": 0}
BOOL: Schema = {"type": "boolean"}
NUMBER: Schema = {"type": "number"}
ANY_OBJECT: Schema = {"type": "object"}

# --- OpenAI Chat Completions (https://platform.openai.com/docs/api-reference/chat) ---------------------------

ID: Schema = {"type": "string", "minLength": 1, "pattern": "\\S"}
"""An id or a name: not empty, not only spaces."""

_OPENAI_TEXT_PART = _obj({"type": {"const": "text"}, "text": STRING}, ("type", "text"))
_OPENAI_PART = {
    "oneOf": [
        _OPENAI_TEXT_PART,
        _obj(
            {
                "type": {"const": "image_url"},
                "image_url": _obj(
                    {
                        "url": {
                            "type": "string",
                            "pattern": "^(https?://|data:image/[A-Za-z0-9.+-]+;base64,)",
                            "description": "An http(s) URL or a base64 ``data:image/...`` URL.",
                        },
                        "detail": {"enum": ["auto", "low", "high"]},
                    },
                    ("url",),
                ),
            },
            ("type", "image_url"),
        ),
    ]
}
_OPENAI_TEXT_CONTENT: Schema = {"anyOf": [STRING, {"type": "array", "items": _OPENAI_TEXT_PART}]}
_OPENAI_TOOL_CALL = _obj(
    {
        "id": ID,
        "type": {"const": "function"},
        "function": _obj({"name": ID, "arguments": STRING}, ("name", "arguments")),
    },
    ("id", "function"),
)
_OPENAI_MESSAGE = {
    "oneOf": [
        _obj(
            {"role": {"enum": ["system", "developer"]}, "content": _OPENAI_TEXT_CONTENT, "name": STRING},
            ("role", "content"),
        ),
        _obj(
            {
                "role": {"const": "user"},
                "content": {"anyOf": [STRING, {"type": "array", "items": _ref("OpenAIContentPart")}]},
                "name": STRING,
            },
            ("role", "content"),
        ),
        _obj(
            {
                "role": {"const": "assistant"},
                "content": {"anyOf": [STRING, {"type": "array", "items": _OPENAI_TEXT_PART}, {"type": "null"}]},
                "tool_calls": {"type": "array", "items": _ref("OpenAIToolCall")},
                "reasoning_content": _nullable(STRING),
                "refusal": _nullable(STRING),
                "name": STRING,
            },
            ("role",),
        ),
        _obj(
            {"role": {"const": "tool"}, "tool_call_id": ID, "content": _OPENAI_TEXT_CONTENT},
            ("role", "tool_call_id", "content"),
        ),
    ]
}
_OPENAI_TOOL = _obj(
    {
        "type": {"const": "function"},
        "function": _obj(
            {"name": STRING, "description": STRING, "parameters": ANY_OBJECT, "strict": _nullable(BOOL)},
            ("name",),
        ),
    },
    ("type", "function"),
)
_OPENAI_REQUEST = _obj(
    {
        "model": {"type": "string", "description": "A model string, alias, fallback chain or router name."},
        "messages": {"type": "array", "items": _ref("OpenAIMessage"), "minItems": 1},
        "stream": _nullable(BOOL),
        "stream_options": _nullable(_obj({"include_usage": BOOL})),
        "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
        "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "max_tokens": _nullable(NONNEG),
        "max_completion_tokens": _nullable(NONNEG),
        "stop": {"anyOf": [STRING, {"type": "array", "items": STRING}, {"type": "null"}]},
        "seed": _nullable(INT),
        "n": _nullable({"const": 1}),
        "tools": {"type": "array", "items": _ref("OpenAITool")},
        "tool_choice": {
            "anyOf": [
                {"enum": ["auto", "none", "required"]},
                _obj(
                    {"type": {"const": "function"}, "function": _obj({"name": STRING}, ("name",))},
                    ("type", "function"),
                ),
            ]
        },
        "parallel_tool_calls": _nullable(BOOL),
        "response_format": {
            "oneOf": [
                _obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
                _obj(
                    {
                        "type": {"const": "json_schema"},
                        "json_schema": _obj(
                            {"name": STRING, "schema": ANY_OBJECT, "strict": _nullable(BOOL), "description": STRING},
                            ("name",),
                        ),
                    },
                    ("type", "json_schema"),
                ),
            ]
        },
        "fallbacks": {
            "type": "array",
            "items": ID,
            "maxItems": 8,
            "description": "Models to try in order after ``model`` (only models the caller's key may use).",
        },
        "user": STRING,
        "metadata": _nullable(ANY_OBJECT),
    },
    ("model", "messages"),
    description="The subset of OpenAI's Chat Completions request the gateway maps; OpenAI-only settings "
    "(reasoning_effort, logit_bias, penalties, ...) are passed to OpenAI-dialect upstreams or warned about.",
)
_OPENAI_USAGE = _obj(
    {
        "prompt_tokens": NONNEG,
        "completion_tokens": NONNEG,
        "total_tokens": NONNEG,
        "prompt_tokens_details": _obj({"cached_tokens": NONNEG}),
        "completion_tokens_details": _obj({"reasoning_tokens": NONNEG}),
    },
    ("prompt_tokens", "completion_tokens", "total_tokens"),
)
_OPENAI_COMPLETION = _obj(
    {
        "id": STRING,
        "object": {"const": "chat.completion"},
        "created": INT,
        "model": STRING,
        "choices": {
            "type": "array",
            "items": _obj(
                {
                    "index": INT,
                    "message": _obj(
                        {
                            "role": {"const": "assistant"},
                            "content": _nullable(STRING),
                            "refusal": _nullable(STRING),
                            "reasoning_content": STRING,
                            "tool_calls": {"type": "array", "items": _ref("OpenAIToolCall")},
                        },
                        ("role",),
                    ),
                    "finish_reason": _nullable(STRING),
                },
                ("index", "message", "finish_reason"),
            ),
        },
        "usage": _ref("OpenAIUsage"),
    },
    ("id", "object", "created", "model", "choices"),
)
_OPENAI_ERROR = _obj(
    {
        "error": _obj(
            {"message": STRING, "type": STRING, "param": _nullable(STRING), "code": _nullable(STRING)},
            ("message", "type"),
        )
    },
    ("error",),
)
_OPENAI_MODELS = _obj(
    {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": _obj(
                {"id": STRING, "object": {"const": "model"}, "created": INT, "owned_by": STRING},
                ("id", "object"),
            ),
        },
    },
    ("object", "data"),
)

# --- Anthropic Messages (https://platform.claude.com/docs/en/api/messages) -----------------------------------

_ANTHROPIC_TEXT = _obj({"type": {"const": "text"}, "text": STRING, "cache_control": ANY_OBJECT}, ("type", "text"))
_ANTHROPIC_IMAGE = _obj(
    {
        "type": {"const": "image"},
        "source": {
            "oneOf": [
                _obj(
                    {
                        "type": {"const": "base64"},
                        "media_type": {"type": "string", "pattern": "^image/"},
                        "data": STRING,
                    },
                    ("type", "media_type", "data"),
                ),
                _obj({"type": {"const": "url"}, "url": {"type": "string", "pattern": "^https?://"}}, ("type", "url")),
            ]
        },
    },
    ("type", "source"),
)
_ANTHROPIC_TOOL_RESULT = _obj(
    {
        "type": {"const": "tool_result"},
        "tool_use_id": ID,
        "content": {"anyOf": [STRING, {"type": "array", "items": {"oneOf": [_ANTHROPIC_TEXT, _ANTHROPIC_IMAGE]}}]},
        "is_error": BOOL,
    },
    ("type", "tool_use_id"),
)
_ANTHROPIC_THINKING = _obj(
    {"type": {"const": "thinking"}, "thinking": STRING, "signature": STRING}, ("type", "thinking")
)
_ANTHROPIC_REDACTED = _obj({"type": {"const": "redacted_thinking"}, "data": STRING}, ("type", "data"))
_ANTHROPIC_TOOL_USE = _obj(
    {"type": {"const": "tool_use"}, "id": ID, "name": ID, "input": ANY_OBJECT},
    ("type", "id", "name", "input"),
)
_ANTHROPIC_BLOCK = {
    "oneOf": [_ANTHROPIC_TEXT, _ANTHROPIC_THINKING, _ANTHROPIC_REDACTED, _ANTHROPIC_TOOL_USE],
    "description": "A content block of an answer.",
}
_ANTHROPIC_MESSAGE = {
    "oneOf": [
        _obj(
            {
                "role": {"const": "user"},
                "content": {
                    "anyOf": [
                        STRING,
                        {
                            "type": "array",
                            "items": {"oneOf": [_ANTHROPIC_TEXT, _ANTHROPIC_IMAGE, _ANTHROPIC_TOOL_RESULT]},
                        },
                    ]
                },
            },
            ("role", "content"),
        ),
        _obj(
            {
                "role": {"const": "assistant"},
                "content": {"anyOf": [STRING, {"type": "array", "items": _ref("AnthropicContentBlock")}]},
            },
            ("role", "content"),
        ),
    ]
}
_ANTHROPIC_TOOL = _obj(
    {"name": STRING, "description": STRING, "input_schema": ANY_OBJECT, "cache_control": ANY_OBJECT},
    ("name", "input_schema"),
)
_ANTHROPIC_COMMON: dict[str, Schema] = {
    "model": {"type": "string", "description": "A model string, alias, fallback chain or router name."},
    "messages": {"type": "array", "items": _ref("AnthropicMessage"), "minItems": 1},
    "system": {"anyOf": [STRING, {"type": "array", "items": _ANTHROPIC_TEXT}]},
    "tools": {"type": "array", "items": _ref("AnthropicTool")},
    "tool_choice": _obj(
        {
            "type": {"enum": ["auto", "any", "tool", "none"]},
            "name": STRING,
            "disable_parallel_tool_use": BOOL,
        },
        ("type",),
    ),
    "thinking": _obj(
        {"type": {"enum": ["enabled", "adaptive", "disabled"]}, "budget_tokens": {"description": "Passed on as sent."}},
        ("type",),
        description="Passed to Anthropic-dialect upstreams as sent (a warning elsewhere).",
    ),
}
_ANTHROPIC_REQUEST = _obj(
    {
        **_ANTHROPIC_COMMON,
        "max_tokens": {"type": "integer", "minimum": 1},
        "stream": BOOL,
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": NUMBER,
        "top_k": NONNEG,
        "stop_sequences": {"type": "array", "items": STRING},
        "metadata": ANY_OBJECT,
        "output_config": ANY_OBJECT,
        "fallbacks": {"type": "array", "items": ID, "maxItems": 8},
    },
    ("model", "max_tokens", "messages"),
    description="The subset of Anthropic's Messages request the gateway maps; thinking, top_k and the like "
    "are passed to Anthropic-dialect upstreams or warned about.",
)
_ANTHROPIC_COUNT_REQUEST = _obj(dict(_ANTHROPIC_COMMON), ("model", "messages"))
_ANTHROPIC_USAGE = _obj(
    {
        "input_tokens": NONNEG,
        "output_tokens": NONNEG,
        "cache_creation_input_tokens": _nullable(NONNEG),
        "cache_read_input_tokens": _nullable(NONNEG),
    },
    ("input_tokens", "output_tokens"),
)
_ANTHROPIC_RESPONSE = _obj(
    {
        "id": STRING,
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": STRING,
        "content": {"type": "array", "items": _ref("AnthropicContentBlock")},
        "stop_reason": _nullable(STRING),
        "stop_sequence": _nullable(STRING),
        "usage": _ref("AnthropicUsage"),
    },
    ("id", "type", "role", "model", "content", "stop_reason", "usage"),
)
_ANTHROPIC_ERROR = _obj(
    {"type": {"const": "error"}, "error": _obj({"type": STRING, "message": STRING}, ("type", "message"))},
    ("type", "error"),
)
_ANTHROPIC_COUNT = _obj({"input_tokens": NONNEG}, ("input_tokens",))
_ANTHROPIC_MODELS = _obj(
    {
        "data": {
            "type": "array",
            "items": _obj(
                {"type": {"const": "model"}, "id": STRING, "display_name": STRING, "created_at": STRING},
                ("type", "id"),
            ),
        },
        "has_more": BOOL,
        "first_id": _nullable(STRING),
        "last_id": _nullable(STRING),
    },
    ("data", "has_more"),
)

# --- Native routes: our types in the tagged JSON codec (llmrelay._codec) -----------------------------------

_NATIVE_TEXT = _obj({"type": {"const": "text_part"}, "text": STRING}, ("type", "text"))
_NATIVE_IMAGE = {
    "oneOf": [
        _obj(
            {
                "type": {"const": "image_part"},
                "data": {"type": "string", "description": "base64"},
                "media_type": {"type": "string", "pattern": "^image/"},
                "detail": {"enum": ["auto", "low", "high"]},
            },
            ("type", "data", "media_type"),
            extra=False,
        ),
        _obj(
            {
                "type": {"const": "image_part"},
                "url": {"type": "string", "pattern": "^https?://"},
                "detail": {"enum": ["auto", "low", "high"]},
            },
            ("type", "url"),
            extra=False,
        ),
    ]
}
_NATIVE_REASONING = _obj(
    {"type": {"const": "reasoning_part"}, "text": STRING, "signature": STRING, "redacted": STRING},
    ("type", "text"),
)
_NATIVE_PART = {"oneOf": [_NATIVE_TEXT, _NATIVE_IMAGE, _NATIVE_REASONING]}
_NATIVE_CALL = _obj(
    {"id": _nullable(ID), "name": ID, "arguments": _nullable(ANY_OBJECT), "arguments_raw": STRING},
    ("name",),
)
_NATIVE_MESSAGE = {
    "oneOf": [
        _obj(
            {
                "type": {"const": "message"},
                "role": {"enum": ["system", "user"]},
                "content": {"anyOf": [STRING, {"type": "array", "items": {"oneOf": [_NATIVE_TEXT, _NATIVE_IMAGE]}}]},
                "name": STRING,
            },
            ("role", "content"),
        ),
        _obj(
            {
                "type": {"const": "message"},
                "role": {"const": "assistant"},
                "content": {
                    "anyOf": [STRING, {"type": "array", "items": {"oneOf": [_NATIVE_TEXT, _NATIVE_REASONING]}}]
                },
                "tool_calls": {"type": "array", "items": _ref("NativeToolCall")},
                "name": STRING,
            },
            ("role", "content"),
        ),
        _obj(
            {
                "type": {"const": "message"},
                "role": {"const": "tool"},
                "content": {"anyOf": [STRING, {"type": "array", "items": _NATIVE_TEXT}]},
                "tool_call_id": ID,
                "name": STRING,
            },
            ("role", "content", "tool_call_id"),
        ),
    ]
}
_NATIVE_USAGE = _obj(
    {
        "input_tokens": _nullable(NONNEG),
        "output_tokens": _nullable(NONNEG),
        "total_tokens": _nullable(NONNEG),
        "cache_read_tokens": _nullable(NONNEG),
        "cache_write_tokens": _nullable(NONNEG),
        "reasoning_tokens": _nullable(NONNEG),
    }
)
_NATIVE_REQUEST = _obj(
    {
        "type": {"const": "chat_request"},
        "model": {"type": "string", "description": "A model string, alias, fallback chain or router name."},
        "messages": {"type": "array", "items": _ref("NativeMessage"), "minItems": 1},
        "system": STRING,
        "temperature": NUMBER,
        "max_tokens": NONNEG,
        "top_p": NUMBER,
        "stop": {"type": "array", "items": STRING},
        "tools": {
            "type": "array",
            "items": _obj(
                {"name": STRING, "description": STRING, "parameters": ANY_OBJECT, "strict": BOOL},
                ("name",),
            ),
        },
        "tool_choice": STRING,
        "parallel_tool_calls": BOOL,
        "response_format": {
            "anyOf": [
                {"enum": ["json", "text"]},
                _obj(
                    {"type": {"const": "json_schema"}, "name": STRING, "schema": ANY_OBJECT, "strict": BOOL},
                    ("type", "schema"),
                ),
            ]
        },
        "seed": INT,
        "provider_options": {"type": "object", "additionalProperties": ANY_OBJECT},
        "fallbacks": {"type": "array", "items": ID, "maxItems": 8},
    },
    ("model", "messages"),
    description="``ChatRequest`` in llmrelay's tagged JSON codec (``llmrelay.to_json``).",
)
_NATIVE_RESPONSE = _obj(
    {
        "type": {"const": "chat_response"},
        "text": STRING,
        "reasoning": STRING,
        "tool_calls": {"type": "array", "items": _ref("NativeToolCall")},
        "finish_reason": STRING,
        "finish_reason_raw": STRING,
        "usage": _ref("NativeUsage"),
        "model": STRING,
        "provider": STRING,
        "request_id": STRING,
        "warnings": {"type": "array", "items": ANY_OBJECT},
        "attempts": {"type": "array", "items": ANY_OBJECT},
    },
    ("type",),
    description="``ChatResponse`` in the tagged JSON codec.",
)
_NATIVE_ERROR = _obj(
    {
        "error": _obj(
            {
                "type": {"type": "string", "description": "The error category (invalid_request, not_found, ...)."},
                "kind": {"type": "string", "description": "The ``LlmError`` kind, when an error of ours caused it."},
                "message": STRING,
                "code": STRING,
                "param": STRING,
            },
            ("type", "message"),
        )
    },
    ("error",),
)

# --- Server-sent events: one schema per event (``data`` and ``event``), as schemathesis and OpenAPI 3.2's
# ``itemSchema`` read a ``text/event-stream`` body; ``data`` is JSON text described by ``contentSchema``.


def _sse_event(data: Schema, event: Schema | None = None, description: str = "") -> Schema:
    properties: dict[str, Schema] = {"data": data, "event": event or STRING, "id": STRING, "retry": NONNEG}
    return _obj(properties, ("data",), description=description)


def _json_text(schema: Schema) -> Schema:
    return {"type": "string", "contentMediaType": JSON, "contentSchema": schema}


_OPENAI_CHUNK = _obj(
    {
        "id": STRING,
        "object": {"const": "chat.completion.chunk"},
        "created": INT,
        "model": STRING,
        "choices": {
            "type": "array",
            "items": _obj({"index": INT, "delta": ANY_OBJECT, "finish_reason": _nullable(STRING)}, ("index", "delta")),
        },
        "usage": _nullable(_ref("OpenAIUsage")),
    },
    ("id", "object", "choices"),
)
_OPENAI_EVENT = _sse_event(
    {"anyOf": [{"const": "[DONE]"}, _json_text({"anyOf": [_ref("OpenAIChatCompletionChunk"), _ref("OpenAIError")]})]},
    description="``data:`` lines of ``chat.completion.chunk`` objects (usage last with ``include_usage``), then "
    '``data: [DONE]``; a failure after the first byte is an ``{"error": ...}`` event.',
)
_ANTHROPIC_EVENT = _sse_event(
    _json_text(_obj({"type": STRING}, ("type",))),
    {
        "enum": [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "ping",
            "error",
        ]
    },
    description="Anthropic's named events, ending with ``message_stop`` (or an ``error`` event).",
)
_NATIVE_EVENT = _sse_event(
    _json_text(
        _obj(
            {"type": {"enum": ["text", "reasoning", "tool_call_start", "tool_call_delta", "tool_call", "done"]}},
            ("type",),
        )
    ),
    description="One stream event per ``data:`` line in the tagged JSON codec; the last is ``done`` (with "
    "``finish_reason: error`` and its ``error`` when the stream failed after it began).",
)

# --- The console's routes (``gateway._routes_admin``, ``_routes_deliberations``, ``_routes_ui``) ------------

_ADMIN_ERROR = _obj(
    {
        "error": _obj(
            {"type": STRING, "message": STRING, "param": _nullable(STRING), "code": _nullable(STRING)},
            ("type", "message"),
        )
    },
    ("error",),
)
_KEY = _obj(
    {
        "id": STRING,
        "name": STRING,
        "prefix": STRING,
        "created": STRING,
        "models": _nullable({"type": "array", "items": STRING}),
        "rpm": _nullable(NUMBER),
        "tpm": _nullable(NUMBER),
        "max_cost": _nullable({"type": "string", "description": "An exact decimal."}),
        "max_tokens": _nullable(NONNEG),
        "period": {"enum": ["day", "month", "total"]},
        "revoked": _nullable(STRING),
        "active": BOOL,
    },
    ("id", "name", "active"),
    description="A gateway key, never its secret.",
)
_KEY_REQUEST = _obj(
    {
        "name": ID,
        "models": _nullable({"type": "array", "items": ID}),
        "rpm": _nullable({"type": "number", "exclusiveMinimum": 0}),
        "tpm": _nullable({"type": "number", "exclusiveMinimum": 0}),
        "max_cost": _nullable({"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}),
        "max_tokens": _nullable({"type": "integer", "minimum": 1}),
        "period": {"enum": ["day", "month", "total"]},
    },
    ("name",),
    extra=False,
)
_USAGE_GROUP = _obj(
    {
        "group": STRING,
        "requests": NONNEG,
        "ok": NONNEG,
        "errors": NONNEG,
        "cancelled": NONNEG,
        "cost": {"type": "object", "additionalProperties": STRING},
        "unpriced": NONNEG,
    },
    ("group", "requests"),
)
_USAGE = _obj(
    {
        "by": STRING,
        "since": STRING,
        "truncated": BOOL,
        "groups": {"type": "array", "items": _USAGE_GROUP},
        "totals": _USAGE_GROUP,
    },
    ("by", "groups", "totals"),
)
_WHOAMI = _obj(
    {
        "name": _nullable(STRING),
        "admin": BOOL,
        "anonymous": BOOL,
        "models": _nullable({"type": "array", "items": STRING}),
    },
    ("admin", "anonymous"),
)
_PROVIDERS = _obj(
    {
        "providers": {"type": "array", "items": _obj({"name": STRING, "kind": STRING}, ("name", "kind"))},
        "rate_limits": {"type": "array", "items": ANY_OBJECT},
    },
    ("providers",),
)
_DELIBERATION_REQUEST = _obj(
    {
        "question": {"type": "string", "minLength": 1},
        "participants": {"type": "array", "items": {"anyOf": [STRING, ANY_OBJECT]}},
        "strategy": {"enum": ["debate", "rounds", "council"]},
        "rounds": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["parallel", "sequential"]},
        "chair": {"anyOf": [STRING, ANY_OBJECT, {"type": "null"}]},
        "aggregate": {"enum": ["vote", "synthesis"]},
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": NUMBER,
        "limits": ANY_OBJECT,
        "name": _nullable(STRING),
    },
    ("question",),
    description="A deliberation (``llmrelay.deliberation``); see ``gateway._routes_deliberations``.",
)
_DELIBERATION_EVENT = _sse_event(
    _json_text(_obj({"type": STRING}, ("type",))),
    description="One deliberation event per ``event:``/``data:`` pair (deliberation, round_started, turn "
    "events, ..., the outcome), in the tagged JSON codec.",
)

_SCHEMAS: dict[str, Schema] = {
    "OpenAIContentPart": _OPENAI_PART,
    "OpenAIToolCall": _OPENAI_TOOL_CALL,
    "OpenAIMessage": _OPENAI_MESSAGE,
    "OpenAITool": _OPENAI_TOOL,
    "OpenAIChatCompletionRequest": _OPENAI_REQUEST,
    "OpenAIUsage": _OPENAI_USAGE,
    "OpenAIChatCompletion": _OPENAI_COMPLETION,
    "OpenAIModelList": _OPENAI_MODELS,
    "OpenAIChatCompletionChunk": _OPENAI_CHUNK,
    "OpenAIStreamEvent": _OPENAI_EVENT,
    "AnthropicStreamEvent": _ANTHROPIC_EVENT,
    "NativeStreamEvent": _NATIVE_EVENT,
    "AnthropicModelList": _ANTHROPIC_MODELS,
    "OpenAIError": _OPENAI_ERROR,
    "AnthropicContentBlock": _ANTHROPIC_BLOCK,
    "AnthropicMessage": _ANTHROPIC_MESSAGE,
    "AnthropicTool": _ANTHROPIC_TOOL,
    "AnthropicMessagesRequest": _ANTHROPIC_REQUEST,
    "AnthropicCountTokensRequest": _ANTHROPIC_COUNT_REQUEST,
    "AnthropicUsage": _ANTHROPIC_USAGE,
    "AnthropicMessageResponse": _ANTHROPIC_RESPONSE,
    "AnthropicCountTokens": _ANTHROPIC_COUNT,
    "AnthropicError": _ANTHROPIC_ERROR,
    "NativeContentPart": _NATIVE_PART,
    "NativeToolCall": _NATIVE_CALL,
    "NativeMessage": _NATIVE_MESSAGE,
    "NativeUsage": _NATIVE_USAGE,
    "NativeChatRequest": _NATIVE_REQUEST,
    "NativeChatResponse": _NATIVE_RESPONSE,
    "NativeError": _NATIVE_ERROR,
    "ConsoleError": _ADMIN_ERROR,
    "Key": _KEY,
    "KeyRequest": _KEY_REQUEST,
    "Usage": _USAGE,
    "WhoAmI": _WHOAMI,
    "Providers": _PROVIDERS,
    "DeliberationRequest": _DELIBERATION_REQUEST,
    "DeliberationEvent": _DELIBERATION_EVENT,
}


_HELLO = [{"role": "user", "content": "Say hello."}]
_EXAMPLES: dict[str, dict[str, Any]] = {
    "OpenAIChatCompletionRequest": {"model": "openai/gpt-4o-mini", "messages": _HELLO, "max_tokens": 64},
    "AnthropicMessagesRequest": {"model": "anthropic/claude-haiku-4-5", "max_tokens": 64, "messages": _HELLO},
    "AnthropicCountTokensRequest": {"model": "anthropic/claude-haiku-4-5", "messages": _HELLO},
    "NativeChatRequest": {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": [{"type": "text_part", "text": "Say hello."}]}],
        "max_tokens": 64,
    },
}
"""One valid request body per request schema (``examples`` of each operation's body)."""


def _json_body(name: str) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(name)}
    if name in _EXAMPLES:
        media["examples"] = {"hello": {"summary": "A one-line chat", "value": _EXAMPLES[name]}}
    return {"required": True, "content": {JSON: media}}


def _errors(error_schema: str) -> dict[str, Any]:
    reply = {"content": {JSON: {"schema": _ref(error_schema)}}}
    return {
        "4XX": {
            "description": "Bad input, a missing or wrong key, an unknown model, a limit: says what is wrong.",
            **reply,
        },
        "5XX": {
            "description": "The provider failed (502, 503, 504), the gateway has no credentials for the provider "
            "that model needs (503), or the gateway failed (500).",
            **reply,
        },
    }


def _chat_answer(body_schema: str, event_schema: str) -> dict[str, Any]:
    return {
        "description": "The answer: a JSON body, or with ``stream: true`` a server-sent event stream.",
        "content": {JSON: {"schema": _ref(body_schema)}, SSE: {"schema": _ref(event_schema)}},
    }


def _operation(
    operation_id: str, summary: str, tag: str, responses: dict[str, Any], body: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        out["requestBody"] = _json_body(body)
    return out


_UNSECURED: list[dict[str, list[str]]] = []


def _json_answer(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _static(operation_id: str, summary: str) -> dict[str, Any]:
    """A static file of the console: no key needed; 304 with ``If-None-Match``, 404 for anything else."""
    text = {"schema": STRING}
    return _operation(
        operation_id,
        summary,
        "console",
        {
            "200": {
                "description": "The file.",
                "content": {"text/html": text, "text/css": text, "text/javascript": text, "*/*": text},
            },
            "3XX": {"description": "A redirect, or 304 Not Modified."},
            "404": {"description": "No such file.", "content": {"*/*": text}},
        },
    )


_HEALTH = _obj({"status": {"enum": ["ok", "ready", "draining"]}}, ("status",))


def _build() -> dict[str, Any]:
    openai_errors = _errors("OpenAIError")
    anthropic_errors = _errors("AnthropicError")
    native_errors = _errors("NativeError")
    console_errors = _errors("ConsoleError")
    no_key_store = {
        "501": {
            "description": "This gateway has no key store (it was built with its own authenticator), so it "
            "cannot manage keys here.",
            "content": {JSON: {"schema": _ref("ConsoleError")}},
        }
    }
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": _operation(
                "createChatCompletion",
                "OpenAI Chat Completions, in front of any configured model",
                "openai",
                {
                    "200": _chat_answer("OpenAIChatCompletion", "OpenAIStreamEvent"),
                    **openai_errors,
                },
                "OpenAIChatCompletionRequest",
            )
        },
        "/v1/models": {
            "get": _operation(
                "listModels",
                "The models, aliases, fallback chains and routers this caller may use",
                "openai",
                {
                    "200": {
                        "description": "OpenAI's model list; Anthropic's shape when the request has an "
                        "``anthropic-version`` header (as the Anthropic SDKs send).",
                        "content": {JSON: {"schema": {"anyOf": [_ref("OpenAIModelList"), _ref("AnthropicModelList")]}}},
                    },
                    **openai_errors,
                },
            )
        },
        "/v1/messages": {
            "post": _operation(
                "createMessage",
                "Anthropic Messages, in front of any configured model",
                "anthropic",
                {
                    "200": _chat_answer("AnthropicMessageResponse", "AnthropicStreamEvent"),
                    **anthropic_errors,
                },
                "AnthropicMessagesRequest",
            )
        },
        "/v1/messages/count_tokens": {
            "post": _operation(
                "countMessageTokens",
                "Count a Messages request's input tokens",
                "anthropic",
                {
                    "200": {"description": "The count.", "content": {JSON: {"schema": _ref("AnthropicCountTokens")}}},
                    **anthropic_errors,
                },
                "AnthropicCountTokensRequest",
            )
        },
        "/api/chat": {
            "post": _operation(
                "chat",
                "One chat call in llmrelay's own types",
                "native",
                {
                    "200": {"description": "The response.", "content": {JSON: {"schema": _ref("NativeChatResponse")}}},
                    **native_errors,
                },
                "NativeChatRequest",
            )
        },
        "/api/agent": {
            "post": _operation(
                "agent",
                "A chat call with tools (refused with a 4xx when the resolved provider has no tool calling)",
                "native",
                {
                    "200": {"description": "The response.", "content": {JSON: {"schema": _ref("NativeChatResponse")}}},
                    **native_errors,
                },
                "NativeChatRequest",
            )
        },
        "/api/agent/stream": {
            "post": _operation(
                "agentStream",
                "The agent call as a server-sent event stream of our event union",
                "native",
                {
                    "200": {
                        "description": "The events.",
                        "content": {SSE: {"schema": _ref("NativeStreamEvent")}},
                    },
                    **native_errors,
                },
                "NativeChatRequest",
            )
        },
        "/api/deliberations": {
            "post": _operation(
                "deliberate",
                "Run a deliberation among several models, streamed as server-sent events",
                "console",
                {
                    "200": {"description": "The events.", "content": {SSE: {"schema": _ref("DeliberationEvent")}}},
                    **console_errors,
                },
                "DeliberationRequest",
            )
        },
        "/api/deliberations/{id}/transcript": {
            "get": {
                **_operation(
                    "deliberationTranscript",
                    "A finished deliberation's transcript",
                    "console",
                    {"200": _json_answer("The transcript (tagged JSON).", ANY_OBJECT), **console_errors},
                ),
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": STRING}],
            }
        },
        "/api/whoami": {
            "get": _operation(
                "whoami",
                "Who the presented key is",
                "console",
                {"200": _json_answer("The caller.", _ref("WhoAmI")), **console_errors},
            )
        },
        "/api/usage": {
            "get": {
                **_operation(
                    "usage",
                    "Usage from the ledger, grouped (a key sees its own; the admin sees all)",
                    "console",
                    {"200": _json_answer("The groups and totals.", _ref("Usage")), **console_errors},
                ),
                "parameters": [
                    {"name": "by", "in": "query", "schema": {"enum": ["model", "provider", "key", "day", "hour"]}},
                    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "key", "in": "query", "schema": STRING},
                ],
            }
        },
        "/api/providers": {
            "get": _operation(
                "providers",
                "Provider and router-deployment health, rate-limit headroom",
                "console",
                {"200": _json_answer("The rows.", _ref("Providers")), **console_errors},
            )
        },
        "/api/keys": {
            "get": _operation(
                "listKeys",
                "Gateway keys (admin only; never a secret)",
                "console",
                {
                    "200": _json_answer(
                        "The keys.", _obj({"keys": {"type": "array", "items": _ref("Key")}}, ("keys",))
                    ),
                    **console_errors,
                    **no_key_store,
                },
            ),
            "post": _operation(
                "createKey",
                "Create a gateway key (admin only); its secret is shown this once",
                "console",
                {
                    "201": _json_answer(
                        "The key and its secret.", _obj({"key": _ref("Key"), "secret": STRING}, ("key", "secret"))
                    ),
                    **console_errors,
                    **no_key_store,
                },
                "KeyRequest",
            ),
        },
        "/api/keys/{name}": {
            "delete": {
                **_operation(
                    "revokeKey",
                    "Revoke a gateway key (admin only)",
                    "console",
                    {
                        "200": _json_answer("The revoked key.", _obj({"key": _ref("Key")}, ("key",))),
                        **console_errors,
                        **no_key_store,
                    },
                ),
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": STRING}],
            }
        },
        "/ui": {"get": {**_static("uiRoot", "Redirects to /ui/"), "security": _UNSECURED}},
        "/ui/": {"get": {**_static("uiIndex", "The web console's page"), "security": _UNSECURED}},
        "/ui/{path}": {
            "get": {
                **_static("uiFile", "One of the console's static files"),
                "parameters": [{"name": "path", "in": "path", "required": True, "schema": STRING}],
                "security": _UNSECURED,
            }
        },
        "/healthz": {
            "get": {
                **_operation(
                    "healthz",
                    "Liveness: the process answers",
                    "operations",
                    {"200": {"description": "Alive.", "content": {JSON: {"schema": _HEALTH}}}},
                ),
                "security": _UNSECURED,
            }
        },
        "/readyz": {
            "get": {
                **_operation(
                    "readyz",
                    "Readiness: configuration loaded, stores reachable, not draining",
                    "operations",
                    {
                        "200": {"description": "Ready.", "content": {JSON: {"schema": _HEALTH}}},
                        "503": {
                            "description": "Not ready (starting or draining).",
                            "content": {JSON: {"schema": _HEALTH}},
                        },
                    },
                ),
                "security": _UNSECURED,
            }
        },
        "/metrics": {
            "get": {
                **_operation(
                    "metrics",
                    "Prometheus metrics (text exposition format)",
                    "operations",
                    {"200": {"description": "The metrics.", "content": {"text/plain": {"schema": STRING}}}},
                ),
                "security": _UNSECURED,
            }
        },
        "/openapi.json": {
            "get": {
                **_operation(
                    "openapi",
                    "This document",
                    "operations",
                    {"200": {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": ANY_OBJECT}}}},
                ),
                "security": _UNSECURED,
            }
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "llmrelay gateway",
            "version": _version(),
            "description": "OpenAI- and Anthropic-compatible endpoints and llmrelay's own routes, in front of "
            "any configured model string, fallback chain or router.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "openai", "description": "OpenAI Chat Completions dialect."},
            {"name": "anthropic", "description": "Anthropic Messages dialect."},
            {"name": "native", "description": "llmrelay's own types (tagged JSON)."},
            {"name": "console", "description": "The web console's routes: deliberations, usage, providers, keys."},
            {"name": "operations", "description": "Health, readiness, metrics, this document."},
        ],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "``Authorization: Bearer KEY``"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "``x-api-key: KEY``"},
            },
        },
        # Either scheme, or none at all: a gateway without keys serves loopback callers anonymously.
        "security": [{"bearer": []}, {"apiKey": []}, {}],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmrelay")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0"


_DOCUMENT: dict[str, Any] | None = None


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI 3.1 document, as a fresh dict (safe to change); see the module docstring."""
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = _build()
    return copy.deepcopy(_DOCUMENT)
