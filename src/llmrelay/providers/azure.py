"""Azure OpenAI: Chat Completions on a deployment.

URL: ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``; auth with
the ``api-key`` header or a Microsoft Entra ID bearer token
(https://learn.microsoft.com/azure/ai-services/openai/reference).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from .._errors import InvalidRequestError, MissingApiKey
from .._http_provider import HttpProvider, clean_key, require_key
from .._transport import Timeouts, Transport
from ..wire.dialect import EncodedRequest
from ..wire.openai_chat import OpenAIChatDialect

__all__ = ["AzureOpenAIProvider"]

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(HttpProvider):
    """An Azure OpenAI deployment. ``endpoint`` defaults to ``$AZURE_OPENAI_ENDPOINT``; the key to
    ``$AZURE_OPENAI_API_KEY``; pass ``bearer_token=`` instead of a key for Entra ID auth. The model sent
    in the body is the deployment name unless ``model`` says otherwise."""

    def __init__(
        self,
        deployment: str,
        *,
        endpoint: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        api_key: str | None = None,
        api_key_env: str | None = "AZURE_OPENAI_API_KEY",
        bearer_token: str | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
        name: str = "azure",
    ) -> None:
        if not deployment:
            raise InvalidRequestError(
                "Azure OpenAI needs a deployment name: AzureOpenAIProvider('my-deployment', ...) "
                "or the model string 'azure/my-deployment'",
                provider=name,
            )
        url = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not url:
            raise MissingApiKey(
                "no Azure OpenAI endpoint: set AZURE_OPENAI_ENDPOINT or pass endpoint=",
                provider=name,
                code="missing_endpoint",
            )
        bearer_token = clean_key(bearer_token, name, "bearer_token=")
        key = None if bearer_token else require_key(api_key, api_key_env, name, required=True)
        super().__init__(
            name=name,
            model=model or deployment,
            base_url=url,
            dialect=OpenAIChatDialect(max_tokens_field="max_tokens"),
            api_key=key or bearer_token,
            headers=headers,
            timeouts=timeouts,
            transport=transport,
        )
        self.deployment = deployment
        self.api_version = api_version
        self._bearer = bearer_token
        self._key_env = api_key_env

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        return (
            f"{self.base_url}/openai/deployments/{quote(self.deployment, safe='')}/chat/completions"
            f"?api-version={quote(self.api_version, safe='')}"
        )

    def _auth_headers(self) -> dict[str, str]:
        if self._bearer:
            return {"authorization": f"Bearer {self._bearer}"}
        return {"api-key": self._api_key} if self._api_key else {}

    def _auth_hint(self) -> str | None:
        if self._bearer:
            return "Check the Entra ID token (bearer_token=)"
        return f"Check the API key (api_key= or ${self._key_env})"
