"""The Anthropic routes: ``POST /v1/messages`` (streamed or not, through the one pipeline of
``gateway._relay``) and ``POST /v1/messages/count_tokens``.

``count_tokens`` takes the same body as ``/v1/messages`` (``max_tokens`` may be left out) and answers
``{"input_tokens": N}`` from ``llmrelay.tokens.count_tokens`` for the model that would answer first: exact
for models whose tokenizer is bundled, an estimate (characters / 4) otherwise; the ``x-llmrelay-count``
header says which (``tiktoken:o200k_base``, ``estimate``, ...).
"""

from __future__ import annotations

from aiohttp import web

from ..tokens import count_tokens
from ..wire.anthropic.server import AnthropicServer
from ._relay import Gateway, Served, guard, relay

__all__ = ["add_anthropic_routes"]


def add_anthropic_routes(app: web.Application, gw: Gateway) -> None:
    dialect = AnthropicServer()
    served = Served("/v1/messages", dialect)

    async def messages(request: web.Request) -> web.StreamResponse:
        return await relay(gw, request, served)

    async def count(request: web.Request) -> web.StreamResponse:
        caller = await gw.caller(request)
        body = await gw.body(request)
        if isinstance(body, dict):
            body.pop("fallbacks", None)
            body.setdefault("max_tokens", 1)
            body.pop("stream", None)
        decoded = dialect.decode_request(body)
        ref, _ = gw.resolve(caller, decoded.model)
        while ref.chain:
            ref = gw.registry.resolve(ref.chain[0])
        counted = count_tokens(decoded.request, gw.registry.get(ref.provider, ref.model))
        return web.json_response({"input_tokens": counted.tokens}, headers={"x-llmrelay-count": counted.method})

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", guard(dialect, count))
