"""The OpenAI routes: ``POST /v1/chat/completions`` (streamed or not, through the one pipeline of
``gateway._relay``) and ``GET /v1/models``.

``GET /v1/models`` lists the names a caller may use: ``[gateway] expose`` when set, else every configured
alias, fallback and router name and each configured provider's ``default_model`` and ``models`` (as
``PROVIDER/MODEL``), filtered by the caller's key. A request with an ``anthropic-version`` header (the
Anthropic SDKs send one) gets the Anthropic list shape instead, so both SDKs' ``models.list()`` work.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..wire.anthropic.server import AnthropicServer
from ..wire.openai_chat.server import OpenAIChatServer
from ._relay import Gateway, GatewayRefusal, Served, guard, json_reply, relay

__all__ = ["add_openai_routes", "model_names"]


def model_names(gw: Gateway) -> list[str]:
    """The model strings the gateway serves (see the module docstring), before filtering by key."""
    expose = gw.settings.expose
    if expose:
        return list(expose)
    config = gw.config
    names: list[str] = [*config.aliases, *config.fallbacks, *config.routers]
    for name, entry in config.providers.items():
        models = [entry.default_model] if entry.default_model else []
        models += [m for m in entry.models if m not in models]
        names += [f"{name}/{m}" for m in models]
    if config.default and config.default not in names:
        names.insert(0, config.default)
    return list(dict.fromkeys(names))


def add_openai_routes(app: web.Application, gw: Gateway) -> None:
    served = Served("/v1/chat/completions", OpenAIChatServer())

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        return await relay(gw, request, served)

    async def list_models(request: web.Request) -> web.StreamResponse:
        anthropic = "anthropic-version" in request.headers
        dialect = AnthropicServer() if anthropic else served.dialect
        try:
            caller = await gw.caller(request)
        except GatewayRefusal as refusal:
            return json_reply(dialect.error_reply(refusal.status, refusal.message, code=refusal.code))
        names = [name for name in model_names(gw) if caller.allows(name)]
        created = int(gw.clock())
        if anthropic:
            data: list[dict[str, Any]] = [
                {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"} for n in names
            ]
            first, last = (names[0], names[-1]) if names else (None, None)
            return web.json_response({"data": data, "has_more": False, "first_id": first, "last_id": last})
        data = [{"id": n, "object": "model", "created": created, "owned_by": "llmrelay"} for n in names]
        return web.json_response({"object": "list", "data": data})

    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", guard(served.dialect, list_models))
