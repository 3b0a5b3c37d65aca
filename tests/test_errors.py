"""The error tree: classification from status and structured codes, retry hints, and redaction."""

from __future__ import annotations

import json

import pytest

from llmrelay import (
    AuthError,
    ContentFilterError,
    ContextLengthError,
    InvalidRequestError,
    LlmError,
    ModelNotFoundError,
    OverloadedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    ServerError,
)
from llmrelay._errors import redact
from llmrelay.wire.http_errors import parse_retry_after
from llmrelay.wire.openai_chat import decode_error, error_from_payload


def body(code: str | None = None, etype: str | None = None, message: str = "m") -> bytes:
    return json.dumps({"error": {"message": message, "type": etype, "code": code, "param": None}}).encode()


@pytest.mark.parametrize(
    ("status", "payload", "cls"),
    [
        (400, body("context_length_exceeded", "invalid_request_error"), ContextLengthError),
        (400, body(None, "invalid_request_error"), InvalidRequestError),
        (401, body("invalid_api_key"), AuthError),
        (403, body(None), AuthError),
        (404, body("model_not_found"), ModelNotFoundError),
        (404, body("DeploymentNotFound"), ModelNotFoundError),
        (400, body("content_filter"), ContentFilterError),
        (408, body(None), RequestTimeout),
        (429, body("rate_limit_exceeded", "requests"), RateLimitError),
        (429, body("insufficient_quota", "insufficient_quota"), QuotaExceededError),
        (500, body(None, "server_error"), ServerError),
        (503, body(None), OverloadedError),
        (529, b"", OverloadedError),
        (418, b"teapot", InvalidRequestError),
        (599, b"", ServerError),
    ],
)
def test_classification(status: int, payload: bytes, cls: type[LlmError]) -> None:
    err = decode_error(status, {}, payload)
    assert type(err) is cls
    assert err.status == status


def test_the_message_text_is_never_used_to_classify() -> None:
    err = decode_error(400, {}, body(None, "invalid_request_error", "maximum context length is 8192 tokens"))
    assert type(err) is InvalidRequestError


def test_in_stream_errors_take_status_from_the_payload() -> None:
    groq = error_from_payload(
        {"error": {"message": "x", "type": "invalid_request_error", "code": "tool_use_failed", "status_code": 400}}
    )
    assert type(groq) is InvalidRequestError and groq.status == 400 and groq.code == "tool_use_failed"
    openrouter = error_from_payload({"error": {"code": 502, "message": "upstream"}})
    assert type(openrouter) is ServerError and openrouter.status == 502


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_redaction_of_keys_and_tokens() -> None:
    text = "key sk-proj-abcdefghijklmnop, google AIzaSyA1234567890abcdefghijklmn, Authorization: Bearer abc.def.ghi123"
    clean = redact(text)
    assert "sk-proj-abcdefghijklmnop" not in clean and "AIza" not in clean and "abc.def.ghi123" not in clean
    assert redact("my custom secret value", ["custom secret"]) == "my [REDACTED] value"


def test_errors_never_show_a_key() -> None:
    key = "sk-live-0123456789abcdef"
    err = decode_error(401, {}, body("invalid_api_key", message=f"Incorrect API key provided: {key}"))
    for text in (str(err), repr(err), err.body_excerpt or ""):
        assert key not in text
