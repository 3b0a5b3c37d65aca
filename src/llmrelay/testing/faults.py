"""A fault kit: the ways an upstream fails, scripted for any dialect kit, each with the error it should give.

Every fault here is built from a dialect kit (``llmrelay.testing.<dialect>_kit.KIT``), so one catalogue
covers every dialect, byte-exact to its wire format. The building blocks return a ``Reply`` (or a handler)
for a ``FakeUpstream``::

    async with FakeUpstream() as up:
        up.add(faults.cut_mid_stream(KIT), faults.rate_limited(KIT, 2.0, form="date"), KIT.text("ok", stream=True))
        provider = KIT.provider(up.url())
        ...

Two faults cannot come from a server that answers: ``ClosedPort`` (connection refused: a port bound but
not listening) and ``SilentServer`` (accepts the connection, reads the request, never writes a byte).

``CATALOGUE`` lists each fault once as a ``Fault``: a name, the typed error ``kind`` one attempt against
it should end in (``Fault.expect``), whether that failure comes after the first event of a stream
(``mid_stream``: a wrapper must not move on any more), whether it takes a timeout to notice (``slow``),
and ``serve``, which starts what the fault needs and gives its URL::

    for fault in faults.CATALOGUE:
        async with fault.serve(KIT, stream=True) as site:
            provider = KIT.provider(site.url())
            provider.timeouts = fault.timeouts
            ...   # expect fault.expect(KIT, stream=True)

The expected kinds assume the provider runs with ``fault.timeouts``: a slow fault trips exactly one short
timeout (``first_byte_timeout``, ``idle_timeout``, or ``total_timeout`` for a trickled whole body), a
tenth or two of a second, and every other deadline is far away, so a busy machine cannot change which.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, Self

from .._transport import Timeouts
from .kit import DialectKit
from .upstream import FakeUpstream, Handler, Reply, SeenRequest

__all__ = [
    "CATALOGUE",
    "FIRST_BYTE",
    "IDLE",
    "PATIENT",
    "TRICKLE",
    "ClosedPort",
    "Fault",
    "FaultSite",
    "SilentServer",
    "by_name",
    "cut_after",
    "cut_mid_stream",
    "error_body_200",
    "fails_then_recovers",
    "first_text_chunk",
    "headers_then_silence",
    "in_stream_error",
    "malformed",
    "quota",
    "rate_limited",
    "stall_before_headers",
    "status",
    "trickle",
    "truncated",
]

PATIENT = Timeouts(connect=2.0, first_byte=5.0, idle=5.0, total=10.0)
"""The timeouts of a fault that needs none (it fails at once): far from anything a busy machine trips."""
FIRST_BYTE = Timeouts(connect=2.0, first_byte=0.1, idle=5.0, total=10.0)
"""For the faults that never send headers: only ``first_byte`` is short."""
IDLE = Timeouts(connect=2.0, first_byte=2.0, idle=0.1, total=10.0)
"""For the faults that send headers and then no event: only ``idle`` is short."""
TRICKLE = Timeouts(connect=2.0, first_byte=2.0, idle=0.1, total=0.2)
"""For a trickle: ``idle`` (a stream's events) and ``total`` (a whole body) are short."""

_LONG = 30.0
"""How long a slow fault stalls: far longer than its timeouts (the server stops when the client leaves)."""


# --- servers that do not answer ---------------------------------------------------------------------------


class FaultSite(Protocol):
    """Where a fault is served: its URL, and whether anything is still going on there."""

    def url(self, path: str = "") -> str:
        """The base URL to point a provider at."""
        ...

    @property
    def in_flight(self) -> int:
        """Requests (or connections) the site is still busy with."""
        ...

    async def wait_idle(self, within: float = 5.0) -> bool:
        """Wait until ``in_flight`` is 0 (at most ``within`` seconds); whether it got there."""
        ...


class ClosedPort:
    """A port on 127.0.0.1 that refuses connections: bound (so no one else takes it) but not listening."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self.port = 0
        self.in_flight = 0
        """Always 0: nothing is ever accepted."""

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_idle(self, within: float = 5.0) -> bool:
        return True

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = sock.getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class _Silent(asyncio.Protocol):
    """One accepted connection: reads whatever comes, writes nothing, notes when the client leaves."""

    def __init__(self, server: SilentServer) -> None:
        self._server = server
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._server._opened(self)

    def data_received(self, data: bytes) -> None:
        self._server.received += len(data)

    def eof_received(self) -> bool:
        return False  # the client finished sending: close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        self._server._closed(self)

    def abort(self) -> None:
        if isinstance(self._transport, asyncio.Transport):
            self._transport.abort()


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts, reads the request, and never answers (no status, no headers).

    ``FakeUpstream`` always answers in the end; this stands for an upstream that hangs before the response
    starts. ``accepted`` counts connections, ``in_flight`` those still open, ``closed_by_client`` those the
    client closed (it gave up: the fault was noticed and the socket released). Connections are plain
    ``asyncio`` protocols: the server leaves no task behind.
    """

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._open: set[_Silent] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.port = 0
        self.accepted = 0
        """Connections accepted."""
        self.closed_by_client = 0
        """Connections the client closed."""
        self.received = 0
        """Bytes received, all connections together."""

    @property
    def in_flight(self) -> int:
        """Connections still open."""
        return len(self._open)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_idle(self, within: float = 5.0) -> bool:
        """Wait until every connection was closed (at most ``within`` seconds)."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _opened(self, conn: _Silent) -> None:
        self.accepted += 1
        self._open.add(conn)
        self._idle.clear()

    def _closed(self, conn: _Silent) -> None:
        self._open.discard(conn)
        if not self._closing:
            self.closed_by_client += 1
        if not self._open:
            self._idle.set()

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Silent(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
            for conn in list(self._open):
                conn.abort()
            await self._server.wait_closed()
            self._server = None
        await self.wait_idle(1.0)


# --- the building blocks ------------------------------------------------------------------------------------


def first_text_chunk(kit: DialectKit, reply: Reply) -> int:
    """The index of the first chunk of a streamed ``reply`` after which the dialect's own decoder has
    produced an event (the first event's last byte is in that chunk)."""
    decoder = kit.provider("http://127.0.0.1:9").dialect.stream_decoder()  # type: ignore[attr-defined]
    for index, chunk in enumerate(reply.chunks):
        if decoder.feed(chunk):
            return index
    raise ValueError(f"the {kit.name} reply produces no event before its end")


def _is_ndjson(reply: Reply) -> bool:
    return reply.content_type == "application/x-ndjson"


def stall_before_headers(kit: DialectKit, seconds: float = _LONG, *, stream: bool = True) -> Reply:
    """The answer, after ``seconds`` without even the response headers: ``first_byte_timeout``."""
    return dataclasses.replace(kit.text("late", stream=stream), headers_delay=seconds)


def headers_then_silence(
    kit: DialectKit, seconds: float = _LONG, *, stream: bool = True, keepalive: float | None = None
) -> Reply:
    """Status and headers at once, then nothing for ``seconds`` (or, in a stream with ``keepalive``, only a
    keep-alive every ``keepalive`` seconds: an SSE comment, a blank NDJSON line), then the answer:
    ``idle_timeout`` (keep-alives are not progress)."""
    reply = kit.text("late", stream=stream)
    if keepalive is None or not stream:
        return dataclasses.replace(reply, stall=seconds, stall_after=0)
    beat = b"\n" if _is_ndjson(reply) else b": keep-alive\n\n"
    beats = tuple(beat for _ in range(max(1, int(seconds / keepalive))))
    return dataclasses.replace(reply, chunks=beats + reply.chunks, chunk_delay=keepalive)


def cut_after(kit: DialectKit, nbytes: int, *, stream: bool = True) -> Reply:
    """The answer, with the connection dropped after ``nbytes`` bytes of the body: ``network``."""
    return dataclasses.replace(kit.text("cut short", stream=stream), cut_after=nbytes)


def cut_mid_stream(kit: DialectKit, *, stream: bool = True, pause: float = 0.02) -> Reply:
    """A stream whose connection drops just after its first event (``pause`` seconds after it, so the event
    surely went out first): the caller has seen text, so no wrapper may move on; the stream ends in
    ``network``. Without ``stream``, the body is dropped halfway."""
    reply = kit.text("cut short", stream=stream)
    if not stream:
        return dataclasses.replace(reply, cut_after=max(1, len(reply.chunks[0]) // 2))
    first = first_text_chunk(kit, reply)
    sent = sum(len(chunk) for chunk in reply.chunks[: first + 1])
    return dataclasses.replace(reply, cut_after=sent + 3, stall=pause, stall_after=first + 1)


def truncated(kit: DialectKit, *, stream: bool = True) -> Reply:
    """A body that ends cleanly but too early: a stream after its first event, without its end marker (or
    finish reason); a JSON body halfway. ``protocol``, after the first event in a stream."""
    reply = kit.text("truncated", stream=stream)
    if not stream:
        body = reply.chunks[0]
        return dataclasses.replace(reply, chunks=(body[: len(body) // 2],))
    return dataclasses.replace(reply, chunks=reply.chunks[: first_text_chunk(kit, reply) + 1])


def malformed(kit: DialectKit, *, stream: bool = True) -> Reply:
    """A frame that is not JSON where the first event should be (an SSE ``data:`` line, an NDJSON line), or
    a JSON body that is not JSON: ``protocol``, before any event."""
    reply = kit.text("never", stream=stream)
    if not stream:
        return dataclasses.replace(reply, chunks=(b'{"oops": [1, 2,',))
    bad = b'{"oops": [1, 2,\n' if _is_ndjson(reply) else b'data: {"oops": [1, 2,\n\n'
    return dataclasses.replace(reply, chunks=(bad, *reply.chunks))


def error_body_200(kit: DialectKit, status: int = 500) -> Reply:
    """The dialect's error body for ``status``, sent with status 200 (a proxy, a gateway): the body decides
    the error; for a streaming request too, since the answer is a JSON document, not a stream."""
    return dataclasses.replace(kit.error(status), status=200)


def in_stream_error(kit: DialectKit, *, after_text: str | None = None, stream: bool = True) -> Reply:
    """A 200 stream carrying the dialect's in-stream error event (``kit.stream_error``: OpenAI's
    ``{"error": ...}`` data event, Anthropic's ``event: error``, Gemini's error object, Ollama's
    ``{"error": ...}`` line, Cohere's ``message-end`` with an error), first or after ``after_text``. A
    whole reply cannot fail half-way: without ``stream`` it is the 200 error body (``error_body_200``)."""
    return kit.stream_error(after_text=after_text) if stream else error_body_200(kit)


def status(kit: DialectKit, code: int, *, retry_after: float | None = None) -> Reply:
    """The dialect's error response for HTTP ``code`` (401, 403, 500, 502, 503, 529, ...)."""
    return kit.error(code, retry_after=retry_after)


RetryAfterForm = Literal["seconds", "ms", "date"]


def rate_limited(kit: DialectKit, seconds: float = 2.0, *, form: RetryAfterForm = "seconds") -> Reply:
    """The dialect's 429, asking to wait ``seconds``: as ``Retry-After: <seconds>``, as ``retry-after-ms``
    (OpenAI, Azure), or as ``Retry-After: <HTTP date>`` (``seconds`` from when the reply is built, in
    whole seconds: up to a second less, and the time since, is read). ``rate_limit`` with that ``retry_after``."""
    reply = kit.error(429)
    headers = dict(reply.headers)
    if form == "seconds":
        headers["retry-after"] = f"{seconds:g}"
    elif form == "ms":
        headers["retry-after-ms"] = str(round(seconds * 1000))
    else:
        headers["retry-after"] = email.utils.formatdate(time.time() + seconds, usegmt=True)
    return dataclasses.replace(reply, headers=headers)


def quota(kit: DialectKit) -> Reply:
    """The dialect's exhausted quota or billing (``kit.quota()``): ``quota_exceeded``."""
    return kit.quota()


def trickle(kit: DialectKit, delay: float = 0.02, *, stream: bool = True) -> Reply:
    """The answer one byte every ``delay`` seconds: bytes keep coming (no byte-level idle timeout), but no
    event completes in a stream's ``Timeouts.idle`` (``idle_timeout``), and a whole body takes longer than
    ``Timeouts.total`` (``total_timeout``)."""
    reply = kit.text("a trickle of text that takes far too long", stream=stream)
    body = b"".join(reply.chunks)
    return dataclasses.replace(reply, chunks=tuple(body[i : i + 1] for i in range(len(body))), chunk_delay=delay)


def fails_then_recovers(
    kit: DialectKit, failures: int = 1, *, stream: bool = True, failure: Reply | None = None, text: str = "recovered"
) -> Handler:
    """A handler for ``FakeUpstream.add``/``route``: the first ``failures`` requests get ``failure`` (by
    default the dialect's 503), every later one the answer ``text``. It counts the requests it answers: use
    one handler for the whole test (``FakeUpstream.always``, or ``route``)."""
    bad = failure if failure is not None else kit.error(503)
    good = kit.text(text, stream=stream)
    seen = 0

    def handle(request: SeenRequest) -> Reply:
        nonlocal seen
        seen += 1
        return bad if seen <= failures else good

    return handle


# --- the catalogue ------------------------------------------------------------------------------------------

Site = Literal["upstream", "refused", "silent"]
Make = Callable[[DialectKit, bool], Reply | Handler]


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the catalogue (see the module docstring)."""

    name: str
    """A short id (a test id)."""
    kind: str
    """The ``LlmError.kind`` one attempt against this fault ends in (see ``expect``)."""
    make: Make | None = None
    """Builds the reply (or handler) for a kit, streaming or not; ``None`` for the sites that never answer."""
    site: Site = "upstream"
    """``upstream`` (a ``FakeUpstream``), ``refused`` (a ``ClosedPort``) or ``silent`` (a ``SilentServer``)."""
    mid_stream: bool = False
    """In a stream the failure comes after the first event: the stream is committed, so no wrapper may
    retry or move on; the caller sees text, then the error."""
    slow: bool = False
    """Noticed only when a timeout (one of ``timeouts``) runs out."""
    timeouts: Timeouts = PATIENT
    """The provider's timeouts ``expect`` assumes (``provider.timeouts = fault.timeouts``)."""
    stream_only: bool = False
    """Only a stream can show it (keep-alive comments): without ``stream`` it is another fault's script."""
    retry_after: float | None = None
    """The ``retry_after`` the error should carry."""
    kinds: Mapping[str, str] = field(default_factory=dict)
    """Where the kind differs: keyed ``"<dialect>/<chat|stream>"``, ``"<dialect>"`` or ``"<chat|stream>"``."""
    recovers_after: int | None = None
    """The fault goes away after this many failed attempts (the later ones answer); ``None``: never."""

    def expect(self, kit: DialectKit, *, stream: bool) -> str:
        """The kind one attempt against this fault, with ``kit``'s dialect, ends in."""
        mode = "stream" if stream else "chat"
        for key in (f"{kit.name}/{mode}", kit.name, mode):
            if key in self.kinds:
                return self.kinds[key]
        return self.kind

    def committed(self, *, stream: bool) -> bool:
        """Whether a stream commits (its first event reaches the caller) before the failure."""
        return stream and self.mid_stream

    def script(self, kit: DialectKit, *, stream: bool) -> Reply | Handler:
        """The reply (or handler) to queue on a ``FakeUpstream``."""
        if self.make is None:
            raise ValueError(f"the {self.name} fault is a server of its own: use Fault.serve")
        return self.make(kit, stream)

    @asynccontextmanager
    async def serve(self, kit: DialectKit, *, stream: bool) -> AsyncIterator[FaultSite]:
        """Start what this fault needs (a ``FakeUpstream`` answering every request with the fault, a
        ``ClosedPort`` or a ``SilentServer``) and yield it; point the provider at ``site.url()``."""
        if self.site == "refused":
            async with ClosedPort() as port:
                yield port
        elif self.site == "silent":
            async with SilentServer() as silent:
                yield silent
        else:
            async with FakeUpstream() as up:
                yield up.always(self.script(kit, stream=stream))


_BODY_ONLY: Mapping[str, str] = {"cohere": "protocol"}
"""A 200 error body is an error where the dialect's error body says so by itself; Cohere's
(``{"id", "message"}``) does not, so it is a malformed answer."""
_IN_STREAM: Mapping[str, str] = {
    "anthropic/stream": "overloaded",
    "gemini/stream": "overloaded",
    "cohere/chat": "protocol",
}
"""Anthropic's and Gemini's in-stream errors name an overloaded model; the others' a failed generation. In
``chat()`` the fault is the 200 error body (``_BODY_ONLY``)."""


def _of(build: Callable[..., Reply]) -> Make:
    return lambda kit, stream: build(kit, stream=stream)


CATALOGUE: tuple[Fault, ...] = (
    Fault("refused", "network", site="refused"),
    Fault("silent", "first_byte_timeout", site="silent", slow=True, timeouts=FIRST_BYTE),
    Fault("stall_before_headers", "first_byte_timeout", _of(stall_before_headers), slow=True, timeouts=FIRST_BYTE),
    Fault("headers_then_silence", "idle_timeout", _of(headers_then_silence), slow=True, timeouts=IDLE),
    Fault(
        "keepalive_only",
        "idle_timeout",
        lambda kit, stream: headers_then_silence(kit, stream=stream, keepalive=0.03),
        slow=True,
        timeouts=IDLE,
        stream_only=True,
    ),
    Fault("cut_before_first_event", "network", lambda kit, stream: cut_after(kit, 10, stream=stream)),
    Fault("cut_mid_stream", "network", _of(cut_mid_stream), mid_stream=True),
    Fault("truncated", "protocol", _of(truncated), mid_stream=True),
    Fault("malformed", "protocol", _of(malformed)),
    Fault("error_body_200", "server", lambda kit, stream: error_body_200(kit), kinds=_BODY_ONLY),
    Fault("in_stream_error", "server", lambda kit, stream: in_stream_error(kit, stream=stream), kinds=_IN_STREAM),
    Fault(
        "in_stream_error_mid",
        "server",
        lambda kit, stream: in_stream_error(kit, after_text="partial ", stream=stream),
        mid_stream=True,
        kinds=_IN_STREAM,
    ),
    Fault("401", "auth", lambda kit, stream: status(kit, 401)),
    Fault("403", "auth", lambda kit, stream: status(kit, 403)),
    Fault("429_seconds", "rate_limit", lambda kit, stream: rate_limited(kit, 2.0), retry_after=2.0),
    Fault("429_ms", "rate_limit", lambda kit, stream: rate_limited(kit, 1.5, form="ms"), retry_after=1.5),
    Fault("429_date", "rate_limit", lambda kit, stream: rate_limited(kit, 3.0, form="date"), retry_after=3.0),
    Fault("500", "server", lambda kit, stream: status(kit, 500)),
    Fault("502", "server", lambda kit, stream: status(kit, 502)),
    Fault("503", "overloaded", lambda kit, stream: status(kit, 503)),
    Fault("529", "overloaded", lambda kit, stream: status(kit, 529)),
    Fault("quota", "quota_exceeded", lambda kit, stream: quota(kit)),
    Fault("trickle", "idle_timeout", _of(trickle), slow=True, timeouts=TRICKLE, kinds={"chat": "total_timeout"}),
    Fault(
        "fails_then_recovers",
        "overloaded",
        lambda kit, stream: fails_then_recovers(kit, 1, stream=stream),
        recovers_after=1,
    ),
)
"""Every fault once; ``by_name`` finds one."""


def by_name(name: str) -> Fault:
    """The catalogue's fault called ``name``."""
    for fault in CATALOGUE:
        if fault.name == name:
            return fault
    raise KeyError(f"no fault named {name!r}; the catalogue has {', '.join(f.name for f in CATALOGUE)}")
