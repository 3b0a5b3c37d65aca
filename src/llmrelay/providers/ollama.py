"""Ollama's native API: a local server (``http://localhost:11434``), a remote one, or ollama.com.

Endpoint: ``base_url``, else ``$OLLAMA_HOST`` normalised the way the ollama CLI reads it
(``envconfig.Host()`` in github.com/ollama/ollama: a missing scheme is ``http``, a missing port is 11434,
or 80 / 443 for an explicit ``http://`` / ``https://``), else ``http://localhost:11434``.

Auth: the local server needs none. ollama.com (``https://ollama.com``, docs/api/authentication.mdx) and
authenticating proxies take ``Authorization: Bearer <key>``; the key is ``api_key`` or ``$OLLAMA_API_KEY``
and is optional.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from datetime import datetime

from .._errors import ModelNotFoundError, ProtocolError
from .._http_provider import HttpProvider, require_key
from .._provider import ModelInfo
from .._transport import HttpRequest, HttpResponse, Timeouts, Transport
from ..wire.dialect import EncodedRequest
from ..wire.http_errors import json_or_none
from ..wire.ollama import CHAT_PATH, Endpoint, OllamaDialect

__all__ = ["OLLAMA_DEFAULT_URL", "OllamaProvider", "normalize_ollama_host"]

OLLAMA_DEFAULT_URL = "http://localhost:11434"
"""Where a local Ollama listens, used when neither ``base_url`` nor ``OLLAMA_HOST`` is set."""

_DEFAULT_PORT = 11434


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``: ``host:port`` or ``[v6]:port``; ``None`` when there is no port."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or hostport[end + 1 : end + 2] != ":":
            return None
        return hostport[1:end], hostport[end + 2 :]
    if hostport.count(":") != 1:
        return None
    host, _, port = hostport.partition(":")
    return host, port


def normalize_ollama_host(value: str) -> str:
    """An ``OLLAMA_HOST`` value as a base URL, following the ollama CLI (``envconfig.Host()``).

    ``"0.0.0.0:11434"`` -> ``http://0.0.0.0:11434``; ``"localhost"`` -> ``http://localhost:11434``;
    ``"https://example.com"`` -> ``https://example.com:443``; ``":8080"`` -> ``http://127.0.0.1:8080``;
    ``"example.com/ollama/"`` -> ``http://example.com:11434/ollama``; ``"::1"`` -> ``http://[::1]:11434``.
    Quotes and spaces around the value are ignored; an empty value is the local default.
    """
    raw = value.strip().strip("\"'").strip()
    if not raw:
        return OLLAMA_DEFAULT_URL
    default_port = _DEFAULT_PORT
    scheme, sep, hostport = raw.partition("://")
    if not sep:
        scheme, hostport = "http", raw
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport, _, path = hostport.partition("/")
    split = _split_host_port(hostport)
    if split is None:
        host, port_text = "127.0.0.1", ""
        bare = hostport.strip("[]")
        try:
            host = str(ipaddress.ip_address(bare))
        except ValueError:
            if hostport:
                host = hostport
    else:
        host, port_text = split
    host = host or "127.0.0.1"
    port = int(port_text) if port_text.isdigit() and int(port_text) <= 65535 else default_port
    if ":" in host:
        host = f"[{host}]"
    path = path.strip("/")
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


def _created(value: object) -> int | None:
    """``modified_at`` (RFC 3339, nanoseconds) as a Unix time, when it parses."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}" if digits else head + tail[digits:]
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return None


class OllamaProvider(HttpProvider):
    """An Ollama server speaking the native API.

    ``endpoint="generate"`` sends prompt-only requests (system text and one user message, no tools) to
    ``/api/generate``; other requests use ``/api/chat``. ``keep_alive`` (``"5m"``, seconds, ``-1``) is
    sent with every request. A missing model is a ``ModelNotFoundError`` whose message says how to pull
    it.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = "OLLAMA_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
        transport: Transport | None = None,
        name: str = "ollama",
        keep_alive: str | float | None = None,
        endpoint: Endpoint = "chat",
    ) -> None:
        if base_url:
            url = base_url if "://" in base_url else normalize_ollama_host(base_url)
        else:
            url = normalize_ollama_host(os.environ.get("OLLAMA_HOST") or "")
        key = require_key(api_key, api_key_env, name, required=False)
        super().__init__(
            name=name,
            model=model,
            base_url=url,
            dialect=OllamaDialect(endpoint=endpoint, keep_alive=keep_alive),
            api_key=key,
            headers=headers,
            timeouts=timeouts,
            transport=transport,
        )
        self._api_key_env = api_key_env

    def _url(self, encoded: EncodedRequest, *, model: str, stream: bool) -> str:
        return f"{self.base_url}{encoded.path or CHAT_PATH}"

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _auth_hint(self) -> str | None:
        where = f"api_key= or ${self._api_key_env}" if self._api_key_env else "api_key="
        return f"Check the API key ({where}); a local Ollama needs none, ollama.com and proxies do"

    async def _send(self, http_request: HttpRequest) -> HttpResponse:
        try:
            return await super()._send(http_request)
        except ModelNotFoundError as exc:
            # The model name comes from the request we sent, never from the server's message text.
            payload = json_or_none(http_request.body or b"")
            model = payload.get("model") if isinstance(payload, dict) else None
            if isinstance(model, str) and model:
                raise exc.with_context(
                    hint=f"The model {model!r} is not on the Ollama server at {self.base_url}: "
                    f"run `ollama pull {model}` there, or pick one from list_models()",
                    secrets=self._secrets(),
                ) from None
            raise

    async def list_models(self) -> list[ModelInfo]:
        """The models pulled on the server: ``GET /api/tags`` (docs/api.md, "List Local Models")."""
        payload = await self._get_json(f"{self.base_url}/api/tags")
        items = payload.get("models") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(
                f"GET /api/tags did not return {{'models': [...]}}: {json.dumps(payload)[:120]}", provider=self.name
            ).redacted(self._secrets())
        models = []
        for item in items:
            if not isinstance(item, dict):
                continue
            model_id = item.get("name") or item.get("model")
            if isinstance(model_id, str) and model_id:
                models.append(ModelInfo(id=model_id, provider=self.name, created=_created(item.get("modified_at"))))
        return models
