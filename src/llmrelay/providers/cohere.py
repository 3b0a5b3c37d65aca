"""Cohere's Chat API v2.

Endpoint: ``base_url``, else ``$CO_API_URL`` (the variable Cohere's SDKs read), else the documented
default ``https://api.cohere.com``; chat is ``POST /v2/chat``.

Auth: ``Authorization: Bearer <key>`` (https://docs.cohere.com/reference/about). The key is ``api_key``,
else ``$CO_API_KEY`` (the SDKs' variable), else ``$COHERE_API_KEY``. It is required for the public API;
a custom ``base_url`` (a private deployment, a proxy) may have none unless ``require_api_key=True``.
``client_name`` is sent as ``X-Client-Name`` (Cohere's optional attribution header).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlencode

from .._errors import MissingApiKey, ProtocolError
from .._http_provider import HttpProvider, require_key
from .._provider import ModelInfo
from .._transport import Timeouts, Transport
from ..wire.cohere import CHAT_PATH, CohereDialect
from ..wire.dialect import EncodedRequest

__all__ = ["COHERE_BASE_URL", "CohereProvider"]

COHERE_BASE_URL = "https://api.cohere.com"
"""Cohere's public API, used when neither ``base_url`` nor ``CO_API_URL`` is set."""

_FALLBACK_KEY_ENV = "COHERE_API_KEY"
_MAX_MODEL_PAGES = 50


class CohereProvider(HttpProvider):
    """Cohere's ``/v2/chat``. ``list_models()`` lists the models usable with chat (``GET /v1/models``)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "CO_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
        name: str = "cohere",
        client_name: str | None = None,
        require_api_key: bool | None = None,
    ) -> None:
        url = base_url or os.environ.get("CO_API_URL") or COHERE_BASE_URL
        required = url.rstrip("/") == COHERE_BASE_URL if require_api_key is None else require_api_key
        key = require_key(api_key, api_key_env, name, required=False) or require_key(
            None, _FALLBACK_KEY_ENV, name, required=False
        )
        if not key and required:
            where = f"set {api_key_env} (or {_FALLBACK_KEY_ENV})" if api_key_env else f"set {_FALLBACK_KEY_ENV}"
            raise MissingApiKey(f"no API key for {name}: {where} or pass api_key=", provider=name)
        super().__init__(
            name=name,
            model=model,
            base_url=url,
            dialect=CohereDialect(),
            api_key=key,
            headers=headers,
            timeouts=timeouts,
            transport=transport,
        )
        self._api_key_env = api_key_env
        self._client_name = client_name

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        return f"{self.base_url}{encoded.path or CHAT_PATH}"

    def _auth_headers(self) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        if self._client_name:
            headers["x-client-name"] = self._client_name
        return headers

    def _auth_hint(self) -> str | None:
        envs = [e for e in (self._api_key_env, _FALLBACK_KEY_ENV) if e]
        return f"Check the API key (api_key= or {' / '.join('$' + e for e in envs)})"

    async def list_models(self) -> list[ModelInfo]:
        """``GET /v1/models?endpoint=chat`` (https://docs.cohere.com/reference/list-models), every page."""
        models: list[ModelInfo] = []
        token: str | None = None
        for _ in range(_MAX_MODEL_PAGES):
            query = {"endpoint": "chat", "page_size": "1000", **({"page_token": token} if token else {})}
            payload = await self._get_json(f"{self.base_url}/v1/models?{urlencode(query)}")
            items = payload.get("models") if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise ProtocolError("GET /v1/models did not return {'models': [...]}", provider=self.name)
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    owner = None if item.get("finetuned") else "cohere"
                    models.append(ModelInfo(id=item["name"], provider=self.name, owned_by=owner))
            next_token = payload.get("next_page_token") if isinstance(payload, dict) else None
            if not isinstance(next_token, str) or not next_token or next_token == token:
                break
            token = next_token
        return models
