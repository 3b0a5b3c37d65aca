"""OpenAI and every server that speaks OpenAI Chat Completions (vLLM, llama.cpp server, Groq, DeepSeek,
OpenRouter, LM Studio, ...).

Auth: ``Authorization: Bearer <key>`` plus the optional ``OpenAI-Organization`` / ``OpenAI-Project``
headers (https://platform.openai.com/docs/api-reference/authentication).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .._http_provider import HttpProvider, require_key
from .._provider import Capabilities, ModelInfo
from .._transport import Timeouts, Transport
from ..wire.dialect import EncodedRequest
from ..wire.openai_chat import OpenAIChatDialect

__all__ = ["OPENAI_BASE_URL", "OpenAIProvider"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""The public OpenAI API, used only when neither ``base_url`` nor ``OPENAI_BASE_URL`` is set."""


class OpenAIProvider(HttpProvider):
    """A Chat Completions endpoint.

    ``api_key`` defaults to the value of the environment variable ``api_key_env`` (``OPENAI_API_KEY``);
    surrounding whitespace (a pasted trailing newline) is dropped, and a line break or another control
    character inside the key is a ``ConfigError`` raised here, before anything is sent.
    A key is required for the public OpenAI URL; a custom ``base_url`` (a local server) may have none,
    unless ``require_api_key=True``. ``base_url`` defaults to ``$OPENAI_BASE_URL``, then the public API.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        organization: str | None = None,
        project: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
        name: str = "openai",
        require_api_key: bool | None = None,
        max_tokens_field: str | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        is_public = url.rstrip("/") == OPENAI_BASE_URL
        required = is_public if require_api_key is None else require_api_key
        key = require_key(api_key, api_key_env, name, required=required)
        if max_tokens_field is None:
            max_tokens_field = "max_completion_tokens" if is_public else "max_tokens"
        super().__init__(
            name=name,
            model=model,
            base_url=url,
            dialect=OpenAIChatDialect(max_tokens_field=max_tokens_field),
            api_key=key,
            headers=headers,
            timeouts=timeouts,
            transport=transport,
        )
        self._api_key_env = api_key_env
        self._organization = organization
        self._project = project
        self._capabilities = capabilities

    def capabilities(self) -> Capabilities:
        """``capabilities=`` when given, else the model's profile (``llmrelay.profiles``)."""
        return self._capabilities if self._capabilities is not None else super().capabilities()

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        return f"{self.base_url}/chat/completions"

    def _auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        if self._organization:
            headers["openai-organization"] = self._organization
        if self._project:
            headers["openai-project"] = self._project
        return headers

    def _auth_hint(self) -> str | None:
        if self._api_key_env:
            return f"Check the API key (api_key= or ${self._api_key_env})"
        return "Check the API key (api_key=)"

    async def list_models(self) -> list[ModelInfo]:
        """``GET /models`` (https://platform.openai.com/docs/api-reference/models/list)."""
        payload = await self._get_json(f"{self.base_url}/models")
        items = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            from .._errors import ProtocolError

            raise ProtocolError("GET /models did not return {'data': [...]}", provider=self.name)
        models = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                created = item.get("created")
                owner = item.get("owned_by")
                models.append(
                    ModelInfo(
                        id=item["id"],
                        provider=self.name,
                        owned_by=owner if isinstance(owner, str) else None,
                        created=created if isinstance(created, int) else None,
                    )
                )
        return models
