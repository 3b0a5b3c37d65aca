"""Google's Gemini API (https://ai.google.dev/api).

URLs: ``{base}/{api_version}/models/{model}:generateContent`` and
``{base}/{api_version}/models/{model}:streamGenerateContent?alt=sse``
(https://ai.google.dev/api/generate-content). Auth: the ``x-goog-api-key`` header
(https://ai.google.dev/gemini-api/docs/api-key). The key is never put in the URL's ``?key=`` query,
which the API also accepts, because URLs end up in logs, proxies and error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from .._errors import MissingApiKey, ProtocolError
from .._http_provider import HttpProvider, clean_key
from .._provider import ModelInfo
from .._transport import Timeouts, Transport
from ..wire.dialect import EncodedRequest
from ..wire.gemini import GeminiDialect, model_path

__all__ = ["GEMINI_BASE_URL", "GeminiProvider"]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
"""The public Gemini API (its documented base URL), used when ``base_url`` is not given."""

_MAX_MODEL_PAGES = 50


class GeminiProvider(HttpProvider):
    """The Gemini API.

    ``api_key`` defaults to ``$GEMINI_API_KEY`` (``api_key_env``), then ``$GOOGLE_API_KEY``; surrounding
    whitespace (a pasted trailing newline) is dropped, and a line break inside is a ``ConfigError``. A key
    is required for the public URL; a custom ``base_url`` (a proxy or a fake server) may have none.
    ``api_version`` is the path segment after the base URL (``v1beta`` carries every feature used here;
    ``v1`` is the stable subset).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "GEMINI_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
        name: str = "gemini",
        api_version: str = "v1beta",
    ) -> None:
        url = base_url or GEMINI_BASE_URL
        required = url.rstrip("/") == GEMINI_BASE_URL
        key = clean_key(api_key, name, "api_key=")
        if not key and api_key_env:
            key = clean_key(os.environ.get(api_key_env), name, f"${api_key_env}")
        if not key:
            key = clean_key(os.environ.get("GOOGLE_API_KEY"), name, "$GOOGLE_API_KEY")
        if not key and required:
            where = f"${api_key_env} or $GOOGLE_API_KEY" if api_key_env else "$GOOGLE_API_KEY"
            raise MissingApiKey(f"no API key for {name}: set {where} or pass api_key=", provider=name)
        super().__init__(
            name=name,
            model=model,
            base_url=url,
            dialect=GeminiDialect(),
            api_key=key or None,
            headers=headers,
            timeouts=timeouts,
            transport=transport,
        )
        self.api_version = api_version.strip("/")
        self._api_key_env = api_key_env

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        path = encoded.path or model_path(model, stream=stream)
        url = f"{self.base_url}/{self.api_version}/{path}"
        return f"{url}?alt=sse" if stream else url

    def _auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key} if self._api_key else {}

    def _auth_hint(self) -> str | None:
        if self._api_key_env and self._api_key_env != "GOOGLE_API_KEY":
            return f"Check the API key (api_key=, ${self._api_key_env} or $GOOGLE_API_KEY)"
        return "Check the API key (api_key= or $GOOGLE_API_KEY)"

    async def list_models(self) -> list[ModelInfo]:
        """``GET /{version}/models``, every page (https://ai.google.dev/api/models#method:-models.list)."""
        models: list[ModelInfo] = []
        token: str | None = None
        for _ in range(_MAX_MODEL_PAGES):
            url = f"{self.base_url}/{self.api_version}/models?pageSize=1000"
            if token:
                url += f"&pageToken={quote(token, safe='')}"
            payload = await self._get_json(url)
            items = payload.get("models", []) if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise ProtocolError("GET /models did not return {'models': [...]}", provider=self.name)
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    name: str = item["name"]
                    models.append(ModelInfo(id=name.removeprefix("models/"), provider=self.name, owned_by="google"))
            next_token = payload.get("nextPageToken") if isinstance(payload, dict) else None
            if not isinstance(next_token, str) or not next_token:
                break
            token = next_token
        return models
