"""A fake upstream: a real HTTP server on 127.0.0.1 that answers with scripted replies.

It speaks whatever wire format its replies carry (SSE, NDJSON, JSON), so one server stands in for every
dialect. Each ``Reply`` can replay bytes in chunks with a delay, stall for a while, or cut the connection
after N bytes, so tests exercise real sockets, real timeouts and real disconnects::

    async with FakeUpstream() as up:
        up.add(Reply.sse(["{...}", "[DONE]"]))
        provider = OpenAIProvider(base_url=up.url("/v1"), api_key="sk-test")
        ...
        assert up.requests[0].json["model"] == "gpt-4o-mini"

Replies are served in the order added; when the queue is empty the server answers with ``always``'s reply
if one was set, else 500 with a body that says so. ``route(path, reply_or_handler)`` pins replies to a
path instead.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["FakeUpstream", "Reply", "SeenRequest"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted HTTP response.

    ``chunks`` are written one by one, ``chunk_delay`` seconds apart. ``stall_after`` chunks have been
    written, the server waits ``stall`` seconds (to trip idle timeouts). ``cut_after`` bytes, the
    connection is closed without finishing the body. ``headers_delay`` delays the response headers (to
    trip first-byte timeouts).
    """

    status: int = 200
    chunks: tuple[bytes, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    chunk_delay: float = 0.0
    headers_delay: float = 0.0
    stall: float = 0.0
    stall_after: int = 0
    cut_after: int | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200, **kw: Any) -> Reply:
        body = json.dumps(payload).encode()
        return cls(status=status, chunks=(body,), content_type="application/json", **kw)

    @classmethod
    def raw(cls, body: bytes, status: int = 200, content_type: str = "application/json", **kw: Any) -> Reply:
        return cls(status=status, chunks=(body,), content_type=content_type, **kw)

    @classmethod
    def sse(cls, data: Iterable[str | Mapping[str, Any]], status: int = 200, **kw: Any) -> Reply:
        """An event stream: one ``data:`` event per item (dicts are JSON-encoded), one chunk each."""
        chunks = tuple(f"data: {item if isinstance(item, str) else json.dumps(item)}\n\n".encode() for item in data)
        return cls(status=status, chunks=chunks, content_type="text/event-stream", **kw)

    @classmethod
    def ndjson(cls, lines: Iterable[Mapping[str, Any]], status: int = 200, **kw: Any) -> Reply:
        chunks = tuple((json.dumps(line) + "\n").encode() for line in lines)
        return cls(status=status, chunks=chunks, content_type="application/x-ndjson", **kw)

    @classmethod
    def transcript(cls, directory: str | Path, name: str, *, chunk_size: int | None = None, **kw: Any) -> Reply:
        """Replay a recorded ``NAME.wire`` with the status and content type from ``NAME.json``."""
        base = Path(directory)
        body = (base / f"{name}.wire").read_bytes()
        meta = json.loads((base / f"{name}.json").read_text())
        step = chunk_size or len(body) or 1
        chunks = tuple(body[i : i + step] for i in range(0, len(body), step)) or (b"",)
        return cls(
            status=int(meta.get("http_status", 200)),
            chunks=chunks,
            content_type=str(meta.get("content_type") or "application/json").split(";")[0],
            **kw,
        )


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """A request the fake upstream received."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[SeenRequest], Reply | Awaitable[Reply]]


class FakeUpstream:
    """A scripted HTTP server on 127.0.0.1 (a free port); use with ``async with``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._queue: deque[Reply | Handler] = deque()
        self._routes: dict[str, Reply | Handler] = {}
        self._always: Reply | Handler | None = None
        self.requests: list[SeenRequest] = []
        self.disconnects = 0
        """How many responses the client abandoned before the server finished writing them."""
        self.completed = 0
        """How many responses the server wrote to the end."""
        self.cut = 0
        """How many responses the server cut on purpose (``Reply.cut_after``)."""
        self.in_flight = 0
        """Requests being handled right now (a stalled or streaming response counts until it ends)."""
        self._disconnected = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def add(self, *replies: Reply | Handler) -> Self:
        """Queue replies (or handlers computing them), served in order."""
        self._queue.extend(replies)
        return self

    def route(self, path: str, reply: Reply | Handler) -> Self:
        """Always answer ``path`` with this reply (or handler)."""
        self._routes[path] = reply
        return self

    def always(self, reply: Reply | Handler) -> Self:
        """Answer every request that no route or queued reply claims with this reply (or handler)."""
        self._always = reply
        return self

    def url(self, path: str = "") -> str:
        return f"http://{self._host}:{self.port}{path}"

    async def wait_disconnect(self, within: float = 5.0) -> bool:
        """Wait (at most ``within`` seconds) until the server has seen a client abandon a response."""
        try:
            async with asyncio.timeout(within):
                await self._disconnected.wait()
        except TimeoutError:
            return False
        return True

    async def wait_idle(self, within: float = 5.0) -> bool:
        """Wait (at most ``within`` seconds) until no request is being handled: every response was written
        to the end, cut, or abandoned by the client (the server notices a client that left at once, even
        while it stalls)."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a handler whose client disconnected is cancelled at once, as a real server
        # stops generating, so a stalled reply counts as abandoned when the client leaves, not later.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = SeenRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(seen)
        script = self._routes.get(request.path)
        if script is None and not self._queue:
            script = self._always
        if script is None:
            if not self._queue:
                return web.json_response(
                    {"error": {"message": f"fake upstream: no reply scripted for {request.path}"}}, status=500
                )
            script = self._queue.popleft()
        reply = script if isinstance(script, Reply) else script(seen)
        if not isinstance(reply, Reply):
            reply = await reply
        return await self._write(request, reply)

    async def _write(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers={"content-type": reply.content_type})
        for name, value in reply.headers.items():
            response.headers[name] = value
        single = len(reply.chunks) == 1 and reply.cut_after is None and not reply.stall
        if single:
            response.content_length = len(reply.chunks[0])
        else:
            response.enable_chunked_encoding()
        try:
            if reply.headers_delay:
                await asyncio.sleep(reply.headers_delay)
            await response.prepare(request)
            sent = 0
            for i, chunk in enumerate(reply.chunks):
                if reply.stall and i == reply.stall_after:
                    await asyncio.sleep(reply.stall)
                if reply.cut_after is not None and sent + len(chunk) >= reply.cut_after:
                    await response.write(chunk[: reply.cut_after - sent])
                    await asyncio.sleep(0.01)
                    if request.transport is not None:
                        request.transport.abort()
                    self.cut += 1
                    return response
                await response.write(chunk)
                sent += len(chunk)
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
            await response.write_eof()
            self.completed += 1
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.disconnects += 1
            self._disconnected.set()
            raise
        return response
