"""``build_app(config)``: the gateway as an ``aiohttp.web.Application``.

Routes (each model route runs the one pipeline of ``gateway._relay``)::

    POST /v1/chat/completions        OpenAI Chat Completions, streamed or not
    GET  /v1/models                  the model names a caller may use (OpenAI's shape, or Anthropic's)
    POST /v1/messages                Anthropic Messages, streamed or not
    POST /v1/messages/count_tokens   Anthropic's token count
    POST /api/chat                   our own: a ChatRequest in llmrelay's JSON codec -> a ChatResponse
    POST /api/agent                  the same, only for models whose capabilities include tools
    POST /api/agent/stream           server-sent events of our stream events, in the codec
    GET  /healthz                    the process is up
    GET  /readyz                     it takes requests (503 while draining after SIGTERM)
    GET  /metrics                    the MetricsSink's rendering (Prometheus text)
                                     (and one OpenTelemetry span per request with ``[gateway] tracing``
                                     or ``LLMRELAY_OTEL=1``: ``gateway.tracing``)
    GET  /openapi.json               the OpenAPI document (``gateway.openapi``), when installed
    POST /api/deliberations          a deliberation as server-sent events (``gateway._routes_deliberations``)
    GET  /api/deliberations/{id}/transcript   a finished one's transcript (JSON or Markdown)
    GET  /api/usage, /api/providers, /api/whoami, GET/POST /api/keys, DELETE /api/keys/{name}
                                     the console's JSON routes (``gateway._routes_admin``)
    GET  /ui/...                     the web console: static files (``gateway._routes_ui``)

What the app builds it also closes (``on_cleanup``, after the ledger rows still being written, which no
response waits for, are all written): the registry (``metered=False``: the gateway meters
each request once, itself), the authenticator, the ledger and the limit backend; what a caller passes in
stays the caller's. Run it with ``handler_cancellation=True`` (``gateway._server`` does), so a client that
disconnects cancels its upstream call at once, and with ``client_max_size`` above ``max_body_bytes``
(``app_runner_kwargs`` gives both).
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

from aiohttp import web

from ..config import Config
from ..config._gateway import GatewayConfig, default_keys_url, default_ledger_url, user_data_dir
from ..limits import LimitBackend, MemoryBackend
from ..metering import UsageLedger, open_ledger
from ..registry import ProviderRegistry
from ._hooks import Authenticator, Caller, MetricsSink
from ._null_metrics import CountingMetrics
from ._relay import Gateway, StaticKey
from ._routes_admin import add_admin_routes
from ._routes_anthropic import add_anthropic_routes
from ._routes_deliberations import add_deliberation_routes
from ._routes_native import add_native_routes
from ._routes_openai import add_openai_routes
from ._routes_ui import add_ui_routes
from .tracing import TracingMetrics, tracing_enabled

__all__ = ["GATEWAY_KEY", "app_runner_kwargs", "build_app", "open_authenticator"]

log = logging.getLogger("llmrelay.gateway")

GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("llmrelay_gateway", Gateway)
"""``app[GATEWAY_KEY]``: the app's shared state (registry, ledger, metrics, ...)."""


async def open_authenticator(settings: GatewayConfig) -> Authenticator:
    """The static ``api_key_env`` key in front of the key store at ``settings.keys`` (default: the user
    data directory), its snapshot loaded. Without the key store module (``gateway.keys``), only the
    static key."""
    secret = os.environ.get(settings.api_key_env) if settings.api_key_env else None
    store: Authenticator | None = None
    try:
        from .keys import open_key_store
    except ImportError:  # pragma: no cover - the key store ships with the gateway
        open_key_store = None  # type: ignore[assignment]
    if open_key_store is not None:
        opened: Any = open_key_store(settings.keys or _in_data_dir(default_keys_url()))
        store = await opened if inspect.isawaitable(opened) else opened
    return StaticKey(secret or None, store)


def _in_data_dir(url: str) -> str:
    """A default store's URL, its directory (the user data directory) created when missing."""
    user_data_dir().mkdir(parents=True, exist_ok=True)
    return url


class _NotYet:
    """The key store before startup has opened it: closed to everyone."""

    open = False

    async def authenticate(self, secret: str | None) -> Caller | None:
        return None

    async def aclose(self) -> None:
        return None


_NOT_YET = _NotYet()


def _limit_backend(config: Config) -> tuple[LimitBackend, bool]:
    url = config.rate_limits.backend
    if url == "memory":
        return MemoryBackend(), False
    from ..limits import RedisBackend

    return RedisBackend(url), True


def app_runner_kwargs(app: web.Application) -> dict[str, Any]:
    """What ``web.AppRunner`` needs for this app: cancel a handler whose client left, no access log."""
    return {"handler_cancellation": True, "access_log": None}


def build_app(
    config: Config,
    *,
    registry: ProviderRegistry | None = None,
    auth: Authenticator | None = None,
    ledger: UsageLedger | None = None,
    metrics: MetricsSink | None = None,
    limit_backend: LimitBackend | None = None,
) -> web.Application:
    """The gateway for ``config`` (see the module docstring); parts not given are built from it."""
    settings = config.gateway or GatewayConfig()
    owned: list[Any] = []
    if registry is None:
        registry = ProviderRegistry(config, metered=False)
        owned.append(registry)
    open_auth = auth is None
    if auth is None:
        auth = StaticKey(None, _NOT_YET)  # replaced on startup, before the first request
    if ledger is None:
        ledger = open_ledger(settings.ledger or _in_data_dir(default_ledger_url()))
        owned.append(ledger)
    if metrics is None:
        metrics = _default_metrics()
    if tracing_enabled(settings.tracing) and not isinstance(metrics, TracingMetrics):
        metrics = TracingMetrics(metrics)  # ConfigError without opentelemetry: pip install 'llmrelay[otel]'
    if limit_backend is None:
        limit_backend, close_backend = _limit_backend(config)
        if close_backend:
            owned.append(limit_backend)
    gw = Gateway(
        config,
        registry=registry,
        auth=auth,
        ledger=ledger,
        metrics=metrics,
        limit_backend=limit_backend,
    )
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app[GATEWAY_KEY] = gw
    add_openai_routes(app, gw)
    add_anthropic_routes(app, gw)
    add_native_routes(app, gw)
    add_deliberation_routes(app, gw)
    add_admin_routes(app, gw)
    _add_operations(app, gw)
    add_ui_routes(app)

    async def authenticator(app: web.Application) -> None:
        gw.auth = await open_authenticator(settings)
        owned.append(gw.auth)

    if open_auth:
        app.on_startup.append(authenticator)

    async def draining(app: web.Application) -> None:
        gw.draining = True

    async def close(app: web.Application) -> None:
        await gw.writes.flush()  # every accepted request's row, before the ledger closes
        for part in reversed(owned):
            try:
                await part.aclose()
            except Exception:
                log.exception("closing %s", type(part).__name__)

    app.on_shutdown.append(draining)
    app.on_cleanup.append(close)
    return app


def _default_metrics() -> MetricsSink:
    try:
        from . import metrics as prometheus  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return CountingMetrics()
    sink = getattr(prometheus, "PrometheusMetrics", None)
    if not callable(sink):
        return CountingMetrics()
    try:
        made: MetricsSink = sink()
    except ImportError:  # prometheus_client is not installed (the `gateway` extra)
        return CountingMetrics()
    return made


def _add_operations(app: web.Application, gw: Gateway) -> None:
    async def healthz(request: web.Request) -> web.Response:
        pid = str(os.getpid())  # which worker answered (``--workers N``)
        return web.json_response({"status": "ok"}, headers={"x-llmrelay-worker": pid})

    async def readyz(request: web.Request) -> web.Response:
        if gw.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        content_type, body = gw.metrics.render()
        return web.Response(body=body, headers={"content-type": content_type})

    async def openapi(request: web.Request) -> web.Response:
        try:
            from .openapi import openapi_document  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return web.json_response(
                {"error": {"type": "not_found", "message": "this build has no OpenAPI document"}}, status=404
            )
        return web.json_response(openapi_document())

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
