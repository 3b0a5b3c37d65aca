"""``llmrelay serve [--config FILE] [--host 127.0.0.1] [--port 8787] [--workers N]``: run the gateway.

The flags override ``[gateway]`` in the configuration; see ``llmrelay.gateway._server`` for what serving
means (workers on one port, loopback-only without keys, the drain on ``SIGTERM``). This module imports only
``argparse`` at start-up; the gateway loads when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run_serve"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="run the gateway: OpenAI, Anthropic and native routes in front of every configured model",
    )
    serve.add_argument("--host", help="address to bind (default: [gateway] host, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: [gateway] port, else 8787)")
    serve.add_argument("--workers", type=int, help="processes sharing the port (default: [gateway] workers, else 1)")
    serve.set_defaults(handler="serve")


def run_serve(args: argparse.Namespace) -> int:
    from ..config import GatewayConfig, load_config
    from ..gateway._server import serve

    config = load_config(getattr(args, "config", None))
    settings = config.gateway or GatewayConfig()
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers if args.workers is not None else settings.workers
    if not 0 <= port <= 65535:
        from . import UsageError

        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    return serve(config, host=host, port=port, workers=workers)
