"""Running the gateway: aiohttp's own HTTP server, one or more worker processes on one port, a graceful
drain on ``SIGTERM``.

Why aiohttp's server and not an ASGI stack (uvicorn, granian): llmrelay already depends on aiohttp for
its client side, so the server adds no dependency, and the handlers write the vendor's bytes straight to
the transport (``StreamResponse.write``) with no ASGI message dict per chunk in between (see the README's
Gateway section and ``bench/gateway.py`` for the measured numbers).

- ``workers = N`` (or ``--workers N``): N processes forked before any event loop starts, each with its own
  app, registry and connection pools, all listening on the one port with ``SO_REUSEPORT`` (the kernel
  spreads connections across them). Limits, budgets and breaker state are shared only through what the
  configuration shares (Redis for ``[rate_limits]``, the SQLite file or PostgreSQL for the ledger).
- Secure by default (``check_binding``): with no gateway key at all (no ``api_key_env`` key, an empty key
  store) the gateway serves loopback addresses only and says so; any other address is refused unless
  ``allow_public_without_keys = true``.
- ``SIGTERM`` (or ``SIGINT``) drains (``_drain``): nothing new is accepted, every connection already
  accepted is served, the listening socket is closed, ``/readyz`` answers 503, requests in flight
  (streams included) get ``drain_timeout`` seconds to finish, then are cancelled; the ledger and the
  other resources are closed last, so every row is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import warnings
from collections.abc import Callable

from aiohttp import web

from .._provider import LlmRelayWarning
from ..config import Config, ConfigError
from ..config._gateway import GatewayConfig
from ._relay import is_loopback

__all__ = ["check_binding", "serve"]

Say = Callable[[str], None]

GC_YOUNG_THRESHOLD = 5000
"""Allocations between two collections of the youngest generation in a worker (CPython's default: 700)."""


def _say(line: str) -> None:
    print(f"llmrelay: {line}", file=sys.stderr, flush=True)


def check_binding(settings: GatewayConfig, host: str, keys_exist: bool) -> str | None:
    """Refuse (``ConfigError``) a non-loopback ``host`` without keys unless allowed; the line to print
    about it, if any."""
    if keys_exist:
        return None
    if is_loopback(host):
        return "no gateway keys exist: serving loopback clients only, every request is anonymous"
    if settings.allow_public_without_keys:
        return (
            f"no gateway keys exist and allow_public_without_keys = true: anyone who reaches {host} can use "
            "the provider keys of this gateway"
        )
    raise ConfigError(
        f"refusing to serve {host} without gateway keys: anyone could use this gateway's provider keys. "
        "Create a key (llmrelay keys create NAME), set [gateway] api_key_env, bind 127.0.0.1, "
        "or set [gateway] allow_public_without_keys = true",
        key="gateway.host",
    )


async def _keys_exist(settings: GatewayConfig) -> bool:
    from .app import open_authenticator

    auth = await open_authenticator(settings)
    try:
        return not auth.open
    finally:
        await auth.aclose()


def serve(config: Config, *, host: str, port: int, workers: int = 1, say: Say = _say) -> int:
    """Serve ``config``'s gateway on ``host:port`` with ``workers`` processes until ``SIGTERM``; the exit code."""
    settings = config.gateway or GatewayConfig()
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and port == 0:
        raise ConfigError("several workers need a fixed port (they share it): give --port")
    note = check_binding(settings, host, asyncio.run(_keys_exist(settings)))
    if note:
        say(note)
    if workers == 1:
        return asyncio.run(_worker(config, host, port, settings, say, announce=True))
    return _supervise(config, host, port, workers, settings, say)


def _supervise(config: Config, host: str, port: int, workers: int, settings: GatewayConfig, say: Say) -> int:
    children: list[int] = []
    for number in range(workers):
        pid = os.fork()
        if pid == 0:  # the child: its own event loop, app and pools
            code = 1
            try:
                code = asyncio.run(_worker(config, host, port, settings, say, announce=number == 0))
            finally:
                os._exit(code)
        children.append(pid)
    say(f"{workers} workers share http://{_url_host(host)}:{port} (pids {', '.join(map(str, children))})")

    def forward(signum: int, frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    for child in children:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        code = code or os.waitstatus_to_exitcode(status)
    return max(code, 0)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _worker(config: Config, host: str, port: int, settings: GatewayConfig, say: Say, *, announce: bool) -> int:
    from ._drain import drain
    from .app import GATEWAY_KEY, app_runner_kwargs, build_app

    # A request's unsupported settings are per request, not the operator's to read on stderr each time.
    warnings.filterwarnings("ignore", category=LlmRelayWarning)
    app = build_app(config)
    runner = web.AppRunner(app, shutdown_timeout=settings.drain_timeout, **app_runner_kwargs(app))
    await runner.setup()
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port, reuse_port=True, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            say(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}")
            return 3
        if announce:
            say(f"gateway listening on http://{_url_host(host)}:{_bound_port(site, port)} (pid {os.getpid()})")
        await stop.wait()
        app[GATEWAY_KEY].draining = True
        say(f"draining (pid {os.getpid()}): in-flight requests get {settings.drain_timeout:g}s")
    finally:
        await drain(runner)
    return 0


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path of a worker whose app has started.

    Everything alive after startup (modules, the app, the registry: tens of thousands of objects that live
    as long as the process) is moved out of the collector's generations (``gc.freeze``), so a full
    collection no longer walks it; and the youngest generation is collected every ``GC_YOUNG_THRESHOLD``
    allocations instead of 700. A request allocates a few dozen container objects and frees nearly all of
    them by reference counting; measured under ``bench/gateway.py``'s c=32 load the collector went from
    about 50 us per request to about 6 (cycles are still collected, only less often).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _bound_port(site: web.TCPSite, port: int) -> int:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else port
