"""Error classification for Ollama's native API.

Error bodies are ``{"error": "<message>"}``, a plain string with no code or type
(https://github.com/ollama/ollama/blob/main/docs/api/errors.mdx), so the HTTP status decides:

- 400 bad request, 401 / 403 unauthorized or forbidden (ollama.com and authenticating proxies; 403 also
  when cloud models are disabled), 429 rate limited (Ollama Cloud's session and weekly usage windows are
  429 too, with nothing structured to tell them from a rate limit), 500 server error, 502 a cloud model
  cannot be reached, 503 the server's request queue is full (``OLLAMA_MAX_QUEUE``);
- 402 Payment Required: Ollama Cloud's extra-usage balance is empty (ollama/ollama#17639);
- 404 with a JSON ``error`` body: the model is not on the server ("model 'x' not found, try pulling it
  first"). A 404 without a JSON body is Go's ``404 page not found`` for an unknown path, usually a
  ``base_url`` ending in ``/v1`` or ``/api``: an invalid request, not a missing model.

An ``{"error": ...}`` object inside a 200 stream (an error while the model was running) has no status:
it is a ``ServerError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import InvalidRequestError, LlmError, ModelNotFoundError, ServerError
from ..http_errors import error_class_for_status, json_or_none, parse_retry_after

__all__ = ["decode_error", "error_from_payload"]


def _message(payload: Any) -> str | None:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, str) and error:
            return error
        if isinstance(error, dict):
            inner = error.get("message")
            if isinstance(inner, str) and inner:
                return inner
    return None


def error_from_payload(
    payload: Any,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> LlmError:
    """The error for an Ollama ``{"error": ...}`` object: an HTTP error body, or an in-stream error line."""
    message = _message(payload)
    cls: type[LlmError]
    if status is None:
        cls = ServerError
    elif status == 404:
        cls = ModelNotFoundError if message is not None else InvalidRequestError
    else:
        cls = error_class_for_status(status)
    if message is None:
        # Not Ollama's JSON shape (a proxy page, Go's "404 page not found"): the text is the message.
        fallback = f"Ollama returned an error (HTTP {status})" if status else "Ollama returned an error"
        message = (body or "").strip()[:300] or fallback
    return cls(
        message,
        status=status,
        retry_after=parse_retry_after(headers) if headers else None,
        body=body,
    )


def decode_error(status: int, headers: Mapping[str, str], body: bytes) -> LlmError:
    """Classify an HTTP error response from Ollama."""
    return error_from_payload(json_or_none(body), status=status, headers=headers, body=body.decode("utf-8", "replace"))
