"""``serving_app``: an aiohttp application served on 127.0.0.1, on a free port, for the length of a block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


@asynccontextmanager
async def serving_app(app: web.Application, **runner_kwargs: Any) -> AsyncIterator[str]:
    """Serve ``app`` (``runner_kwargs`` go to its ``AppRunner``); yields its base URL, cleans up after."""
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
