"""The minimal proxy for ``bench/gateway.py``: aiohttp's server and client, the floor a Python gateway can reach.

    python bench/minproxy.py --upstream http://127.0.0.1:UPSTREAM_PORT --port PORT

It reads the request, parses its JSON (any gateway must, to route on ``model`` and ``stream``), forwards
the bytes to the upstream on one pooled ``ClientSession``, and passes the answer back: a JSON body whole,
a stream chunk by chunk as it arrives. No auth, limits, translation, metering or error mapping. Listens on
127.0.0.1:PORT (the benchmark picks a free port and waits until it answers).
"""

from __future__ import annotations

import argparse
import json

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application()

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app["s"] = aiohttp.ClientSession(upstream, connector=aiohttp.TCPConnector(limit=1000))
        yield
        await app["s"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stream = bool(json.loads(body).get("stream"))
        headers = {"content-type": "application/json", "authorization": "Bearer sk-x"}
        async with request.app["s"].post("/v1/chat/completions", data=body, headers=headers) as up:
            if not stream or up.status != 200:
                return web.Response(body=await up.read(), status=up.status, content_type=up.content_type)
            out = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
