"""Anthropic's Claude through the native Messages API.

Endpoint: ``POST {base}/v1/messages`` with ``x-api-key: <key>`` and ``anthropic-version`` (required on every
request; ``2023-06-01`` is the current version, https://platform.claude.com/docs/en/api/versioning).
``{base}`` defaults to ``$ANTHROPIC_BASE_URL`` (the variable the official SDKs read), then the public API
(https://platform.claude.com/docs/en/api/overview). Models are listed by ``GET {base}/v1/models``
(https://platform.claude.com/docs/en/api/models-list), which pages with ``limit`` / ``after_id``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .._errors import ProtocolError
from .._http_provider import HttpProvider, require_key
from .._provider import Capabilities, ModelInfo
from .._transport import HttpRequest, Timeouts, Transport
from .._types import ChatRequest
from ..wire.anthropic import AnthropicDialect
from ..wire.dialect import EncodedRequest

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
"""The public Anthropic API, used only when neither ``base_url`` nor ``ANTHROPIC_BASE_URL`` is set."""

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent unless another is given."""

_MODELS_PAGE = 1000
"""The largest ``limit`` ``GET /v1/models`` accepts."""
_MAX_MODEL_PAGES = 50


class AnthropicProvider(HttpProvider):
    """A Messages API endpoint (the Anthropic API, or a proxy that speaks it).

    ``api_key`` defaults to the value of the environment variable ``api_key_env`` (``ANTHROPIC_API_KEY``);
    surrounding whitespace (a pasted trailing newline) is dropped, and a line break or another control
    character inside the key is a ``ConfigError`` raised here, before anything is sent.
    A key is required for the public API; a custom ``base_url`` may have none unless
    ``require_api_key=True``. ``default_max_tokens`` is sent when a request has no ``max_tokens`` (Anthropic
    requires one; left ``None`` the dialect sends 4096 and warns). ``betas`` are sent as the
    ``anthropic-beta`` header on every request (a request's ``provider_options["anthropic"]["betas"]`` adds
    to them).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
        name: str = "anthropic",
        anthropic_version: str = ANTHROPIC_VERSION,
        betas: list[str] | tuple[str, ...] = (),
        default_max_tokens: int | None = None,
        require_api_key: bool | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_BASE_URL
        is_public = url.rstrip("/") == ANTHROPIC_BASE_URL
        required = is_public if require_api_key is None else require_api_key
        key = require_key(api_key, api_key_env, name, required=required)
        super().__init__(
            name=name,
            model=model,
            base_url=url,
            dialect=AnthropicDialect(default_max_tokens=default_max_tokens),
            api_key=key,
            headers=headers,
            timeouts=timeouts,
            transport=transport,
        )
        self._api_key_env = api_key_env
        self.anthropic_version = anthropic_version
        self.betas = tuple(betas)
        self._capabilities = capabilities

    def capabilities(self) -> Capabilities:
        """``capabilities=`` when given, else the model's profile (``llmrelay.profiles``)."""
        return self._capabilities if self._capabilities is not None else super().capabilities()

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        return f"{self.base_url}/v1/messages"

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.anthropic_version}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        if self.betas:
            headers["anthropic-beta"] = ",".join(self.betas)
        return headers

    def _auth_hint(self) -> str | None:
        if self._api_key_env:
            return f"Check the API key (api_key= or ${self._api_key_env})"
        return "Check the API key (api_key=)"

    def _build(self, request: ChatRequest, *, stream: bool) -> tuple[HttpRequest, EncodedRequest]:
        http_request, encoded = super()._build(request, stream=stream)
        beta = encoded.headers.get("anthropic-beta")
        if beta and self.betas:
            # The request's betas add to the provider's instead of replacing them.
            merged = dict(http_request.headers)
            merged["anthropic-beta"] = ",".join(dict.fromkeys([*self.betas, *beta.split(",")]))
            http_request = HttpRequest(http_request.method, http_request.url, merged, http_request.body)
        return http_request, encoded

    async def list_models(self) -> list[ModelInfo]:
        """Every model ``GET /v1/models`` lists, following its pages."""
        models: list[ModelInfo] = []
        after: str | None = None
        for _ in range(_MAX_MODEL_PAGES):
            query = {"limit": str(_MODELS_PAGE), **({"after_id": after} if after else {})}
            payload = await self._get_json(f"{self.base_url}/v1/models?{urlencode(query)}")
            items = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(payload, dict) or not isinstance(items, list):
                raise ProtocolError("GET /v1/models did not return {'data': [...]}", provider=self.name)
            models.extend(
                self._model_info(item) for item in items if isinstance(item, dict) and _is_str(item.get("id"))
            )
            last = payload.get("last_id")
            if not payload.get("has_more") or not _is_str(last) or last == after:
                break
            after = last
        return models

    def _model_info(self, item: dict[str, Any]) -> ModelInfo:
        return ModelInfo(id=item["id"], provider=self.name, created=_epoch(item.get("created_at")))


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _epoch(value: Any) -> int | None:
    """An RFC 3339 ``created_at`` as Unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None
