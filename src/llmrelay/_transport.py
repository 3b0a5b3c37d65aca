"""The one HTTP seam. Everything above this module is sans-I/O or talks to a ``Transport``.

``AiohttpTransport`` is the production transport. aiohttp was chosen by benchmark: on the reference
machine raw aiohttp streamed ~1.75x faster than raw httpx and served ~25x more requests/s at 64 concurrent
requests (see ``bench/``). It is imported lazily, on the first request, so ``import llmrelay`` stays cheap.

Timeouts are four separate knobs (``Timeouts``):

- ``connect``: TCP/TLS connect (aiohttp's ``sock_connect``) -> ``ConnectTimeout``;
- ``first_byte``: from sending the request to receiving the response headers -> ``FirstByteTimeout``;
- ``idle``: the longest wait for the next body bytes while reading, and in a stream for the next event
  (see ``Timeouts.idle``) -> ``IdleTimeout``;
- ``total``: the whole call, body included -> ``TotalTimeout``.

The wait for the response headers (``first_byte``, or ``total`` when shorter) is guarded by a deadline of
the loop's queue for that length (``llmrelay._deadlines``): one loop timer for all requests in flight,
where ``asyncio.timeout`` would put a timer per request on the loop's heap.

The idle/total deadlines are enforced by one watchdog timer per response that only cancels the task while
it is blocked on a read, so per-chunk cost is a clock read, and time the caller spends between chunks
(processing events) never counts as upstream idleness.

Whole bodies (a non-streamed reply, or a JSON document answering a streaming request) are read with
``read_body``, which refuses one larger than a limit (``HttpProvider.max_body_bytes``) with
``ProtocolError`` instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._aiohttp_drain import drain, read_any
from ._deadlines import Deadline, Deadlines, expired
from ._errors import (
    ConnectTimeout,
    FirstByteTimeout,
    IdleTimeout,
    LlmError,
    NetworkError,
    ProtocolError,
    RequestTimeout,
    TotalTimeout,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "AiohttpTransport",
    "HttpRequest",
    "HttpResponse",
    "MockResponse",
    "MockTransport",
    "Timeouts",
    "Transport",
]

_MAX_ERROR_BODY = 1024 * 1024
_MAX_DEADLINE_QUEUES = 32
"""The most deadline lengths one loop's session keeps a queue for (``_deadlines``)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines in seconds; ``None`` disables one."""

    connect: float | None = 10.0
    """TCP (and TLS) connect."""
    first_byte: float | None = 300.0
    """From sending the request to the response headers. Slow reasoning models may think for minutes
    before the first byte of a non-streaming reply."""
    idle: float | None = 120.0
    """The longest wait for progress in the middle of a body. In a stream, progress means an event:
    SSE comments (``: keep-alive``), empty keep-alive lines and blank NDJSON lines do not count, so a
    server that only sends those ends the stream with ``IdleTimeout`` too, within about ``2 * idle``
    seconds of the last event (the check runs when such bytes arrive; a silent connection trips it after
    ``idle``). Only time spent waiting for the provider counts, never the time the caller spends
    between reads. An event must therefore arrive whole within ``idle``."""
    total: float | None = None
    """The whole call, body included."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request ready to send: everything a transport needs, nothing more."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Carries credentials: kept out of ``repr``."""
    body: bytes | None = field(default=None, repr=False)


class HttpResponse(ABC):
    """A response whose headers have arrived; the body is read with ``read_chunk``/``read``."""

    status: int
    headers: Mapping[str, str]
    """Header names are lower-case."""

    @abstractmethod
    async def read_chunk(self) -> bytes:
        """The next body bytes, or ``b""`` at the end of the body."""

    async def read(self, limit: int | None = None) -> bytes:
        """The rest of the body (at most ``limit`` bytes when given)."""
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read_chunk():
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
        return b"".join(parts)

    def read_arrived(self) -> bytes | None:
        """The rest of the body when all of it has arrived already, read at once without a wait (after it
        ``read_chunk`` returns ``b""``); else ``None``, and nothing was read. The default: ``None``."""
        return None

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection: back to the pool when the body was read whole, else dropped."""


class Transport(ABC):
    """Sends ``HttpRequest`` objects. Implementations own their connection pool."""

    @abstractmethod
    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        """Send the request and return once the response headers have arrived.

        Raises ``NetworkError``, ``ConnectTimeout`` or ``FirstByteTimeout``; never an aiohttp exception.
        """

    async def aclose(self) -> None:
        """Close the pool."""


class AiohttpTransport(Transport):
    """The production transport: one aiohttp ``ClientSession`` (one connection pool) per event loop,
    shared by all calls made in that loop.

    A session is created lazily inside the running event loop on its first request. One transport (so one
    provider) may serve several loops, one after another (consecutive ``asyncio.run`` calls) or at once
    (threads): each loop gets its own session, which is closed inside that loop when the loop shuts down
    (``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio call ``loop.shutdown_asyncgens()``), or by
    ``aclose()``: no session or socket outlives a loop that shuts down that way. A loop closed without
    ``shutdown_asyncgens()`` cannot run that close any more: its session is then closed without the loop
    when the transport is next used or closed, and asyncio closes its sockets when they are collected.
    """

    def __init__(self, *, max_connections: int = 1000, trust_env: bool = True) -> None:
        self._max_connections = max_connections
        self._trust_env = trust_env
        # Proxy settings from the environment (HTTP(S)_PROXY, NO_PROXY), read once per transport. aiohttp's
        # own trust_env re-reads the environment and ~/.netrc in a thread on every request, which costs
        # more than the rest of a small request put together (see bench/).
        self._proxies: dict[str, str] = {}
        self._by_timeouts: dict[Timeouts, tuple[float | None, aiohttp.ClientTimeout]] = {}
        """Per ``Timeouts`` (a provider passes the same one on every call): the wait for the headers (the
        shorter of ``first_byte`` and ``total``) and aiohttp's timeout for the connect."""
        self._proxy_cache: dict[tuple[str, str], str | None] = {}
        self._sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}

    def _make_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        if self._trust_env:
            import urllib.request

            self._proxies = urllib.request.getproxies_environment()
            self._proxy_cache = {}
        return aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            auto_decompress=True,
            # A session-wide header rather than skip_auto_headers, which sends every request down aiohttp's
            # slow header path (bench/: 3x the floor's cost in ClientRequest.update_auto_headers).
            headers={"User-Agent": "llmrelay"},
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        import aiohttp

        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is None or entry.session.closed:
            # No await between the check and the assignment: concurrent first calls share one session.
            entry = self._open(loop)
        session = entry.session
        total_deadline = loop.time() + timeouts.total if timeouts.total is not None else None
        known = self._by_timeouts.get(timeouts)
        if known is None:
            wait_for_headers = _min_none(timeouts.first_byte, timeouts.total)
            known = (wait_for_headers, aiohttp.ClientTimeout(sock_connect=timeouts.connect))
            if len(self._by_timeouts) < _MAX_DEADLINE_QUEUES:  # bounded, as the deadline queues are
                self._by_timeouts[timeouts] = known
        wait, client_timeout = known
        # The wait for the response headers is guarded by a deadline of the session's queue for its length
        # (``_deadlines``: no timer per request); none at all without a limit.
        deadline: Deadline | None = None
        queue: Deadlines | None = None
        if wait is not None and (task := asyncio.current_task()) is not None:
            queue = entry.deadlines.get(wait)
            if queue is None:
                # Bounded: a caller passing a new length on every call gets a queue (a timer) per wait.
                shared = len(entry.deadlines) < _MAX_DEADLINE_QUEUES
                queue = Deadlines(loop, wait, shared=shared)
                if shared:
                    entry.deadlines[wait] = queue
            deadline = queue.arm(task)
        try:
            resp = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=client_timeout,
                allow_redirects=False,
                proxy=self._proxy_for(request.url) if self._proxies else None,
            )
        except asyncio.CancelledError:
            if deadline is None or not expired(deadline):
                raise
            if timeouts.total is not None and wait == timeouts.total and timeouts.total != timeouts.first_byte:
                raise TotalTimeout(f"no response within the total timeout of {timeouts.total}s") from None
            raise FirstByteTimeout(f"no response headers within {timeouts.first_byte}s (Timeouts.first_byte)") from None
        except aiohttp.ConnectionTimeoutError:
            raise ConnectTimeout(f"connecting took longer than {timeouts.connect}s (Timeouts.connect)") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _network_error(exc, request.url) from None
        finally:
            if queue is not None and deadline is not None:
                queue.disarm(deadline)  # a cancel it made that did not surface here is taken back
        return _AiohttpResponse(resp, loop, timeouts.idle, total_deadline, timeouts.total)

    def _proxy_for(self, url: str) -> str | None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key in self._proxy_cache:
            return self._proxy_cache[key]
        import urllib.request

        proxy = self._proxies.get(parts.scheme)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # public, not in typeshed
        if proxy and bypass(parts.hostname or "", self._proxies):
            proxy = None
        self._proxy_cache[key] = proxy
        return proxy

    def _open(self, loop: asyncio.AbstractEventLoop) -> _LoopSession:
        for other in list(self._sessions):
            if other.is_closed():
                stale = self._sessions.pop(other, None)
                if stale is not None:
                    stale.discard()
        entry = self._sessions[loop] = _LoopSession(self._make_session())
        return entry

    async def aclose(self) -> None:
        """Close the session of the calling loop (and of loops already closed); a session in use by a
        loop running in another thread is closed there."""
        loop = asyncio.get_running_loop()
        for other in list(self._sessions):
            if other is not loop and not other.is_closed() and not other.is_running():
                continue  # an idle loop: it closes its own session when it shuts down
            entry = self._sessions.pop(other, None)
            if entry is None:
                continue
            if other is loop:
                await entry.close()
            elif other.is_closed():
                entry.discard()
            else:
                asyncio.run_coroutine_threadsafe(entry.close(), other)


async def _close_at_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Suspended for the session's life; its ``finally`` closes the session inside its loop when the loop
    shuts down (``shutdown_asyncgens``), or when ``_LoopSession.close`` closes it."""
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


class _LoopSession:
    """The aiohttp session of one event loop, and the async generator that closes it with the loop."""

    __slots__ = ("_guard", "deadlines", "session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.deadlines: dict[float, Deadlines] = {}
        """The loop's deadline queues, by length (``Timeouts.first_byte`` / ``total``)."""
        self._guard = _close_at_shutdown(session)
        # Run the guard to its ``yield``, synchronously: the running loop records it (asyncgen first-iter
        # hook), so the loop's ``shutdown_asyncgens()`` will close it, and so the session.
        with contextlib.suppress(StopIteration):
            self._guard.asend(None).send(None)

    async def close(self) -> None:
        await self._guard.aclose()

    def discard(self) -> None:
        """Close a session whose loop was closed without ``shutdown_asyncgens()``, without that loop: the
        pool is marked closed and emptied (its sockets are closed by asyncio when collected), and the
        guard is finished here, so that it does not try to run on the dead loop."""
        if not self.session.closed:
            _drive(self.session.close())
            self.session.detach()
        _drive(self._guard.aclose())


def _drive(awaitable: Awaitable[None]) -> None:
    """Run an awaitable that completes without waiting (a close on a closed loop) to its end."""
    step = awaitable.__await__()
    try:
        step.send(None)
    except StopIteration:
        return
    except Exception:
        pass
    step.close()


def _network_error(exc: BaseException, url: str) -> NetworkError:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"
    return NetworkError(f"connection to {where} failed: {type(exc).__name__}: {exc}")


def _min_none(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class _AiohttpResponse(HttpResponse):
    __slots__ = (
        "_eof",
        "_expired",
        "_handle",
        "_idle",
        "_loop",
        "_reading_since",
        "_resp",
        "_task",
        "_total",
        "_total_deadline",
        "headers",
        "status",
    )

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        loop: asyncio.AbstractEventLoop,
        idle: float | None,
        total_deadline: float | None,
        total: float | None,
    ) -> None:
        self._resp = resp
        self._loop = loop
        self._idle = idle
        self._total_deadline = total_deadline
        self._total = total
        self._reading_since: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expired: RequestTimeout | None = None
        self._eof = False
        self.status = resp.status
        self.headers = resp.headers  # case-insensitive already: no per-response copy

    def _next_deadline(self, now: float) -> float | None:
        since = self._reading_since
        idle_at = (since if since is not None else now) + self._idle if self._idle is not None else None
        return _min_none(idle_at, self._total_deadline)

    def _watch(self) -> None:
        self._handle = None
        now = self._loop.time()
        since = self._reading_since
        if since is not None and self._task is not None:
            if self._total_deadline is not None and now >= self._total_deadline:
                self._expired = TotalTimeout(f"the call took longer than {self._total}s (Timeouts.total)")
            elif self._idle is not None and now - since >= self._idle:
                self._expired = IdleTimeout(
                    f"no data from the provider for {self._idle}s in the middle of the response (Timeouts.idle)"
                )
            if self._expired is not None:
                self._task.cancel()
                return
        deadline = self._next_deadline(now)
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._watch)

    async def read_chunk(self) -> bytes:
        if self._eof:
            return b""
        if self._expired is not None:
            raise self._expired
        content = self._resp.content
        if self._total_deadline is None and content.exception() is None:
            # Fast path: bytes already buffered are returned without arming the watchdog (no wait, so no
            # deadline can pass). Only a read that has to wait pays for the timer bookkeeping.
            chunk = drain(content)  # ``content.read_nowait()``, one flow-control check per read
            if chunk:
                return chunk
            if content.at_eof():
                self._eof = True
                self._cancel_watch()
                return b""
        loop = self._loop
        now = loop.time()
        if self._total_deadline is not None and now >= self._total_deadline:
            raise TotalTimeout(f"the call took longer than {self._total}s (Timeouts.total)")
        self._reading_since = now
        self._task = asyncio.current_task()
        if self._handle is None and (self._idle is not None or self._total_deadline is not None):
            deadline = self._next_deadline(now)
            if deadline is not None:
                self._handle = loop.call_at(deadline, self._watch)
        try:
            chunk = await read_any(self._resp.content)  # ``content.readany()``, one flow-control check
        except asyncio.CancelledError:
            expired = self._expired
            task = self._task
            if expired is not None and task is not None and task.uncancel() == 0:
                self._resp.close()
                raise expired from None
            raise
        except Exception as exc:
            self._resp.close()
            raise _body_error(exc) from None
        finally:
            self._reading_since = None
        if not chunk:
            self._eof = True
            self._cancel_watch()
        return chunk

    def read_arrived(self) -> bytes | None:
        # A small reply usually arrives with its headers: the whole body is in aiohttp's buffer, ended.
        if self._eof or self._expired is not None or self._total_deadline is not None:
            return None
        content = self._resp.content
        if not content.is_eof() or content.exception() is not None:
            return None  # more to come (or an error to raise): ``read_chunk``
        body = drain(content)  # all that is buffered (as ``read_nowait()``), which is the rest of the body
        self._eof = True
        self._cancel_watch()
        return body

    def _cancel_watch(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    async def aclose(self) -> None:
        self._cancel_watch()
        resp = self._resp
        if self._eof or resp.content.is_eof():
            # The whole body has arrived (read or not): the connection goes back to the pool.
            resp.release()
        else:
            # Abort, without waiting for the rest: the server sees the connection close at once instead of
            # streaming on (after a stream's end marker, the pool just loses this one connection).
            resp.close()


def _body_error(exc: Exception) -> LlmError:
    import aiohttp

    if isinstance(exc, aiohttp.ClientPayloadError):
        return NetworkError(f"the connection broke in the middle of the response body: {exc}")
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return NetworkError(f"the connection failed while reading the response: {type(exc).__name__}: {exc}")
    return ProtocolError(f"could not read the response body: {type(exc).__name__}: {exc}")


async def read_body(response: HttpResponse, limit: int, *, setting: str = "max_body_bytes") -> bytes:
    """The whole body, or ``ProtocolError`` when it is larger than ``limit`` bytes: refused before reading
    when ``Content-Length`` announces more, else as soon as more has arrived (an endless body included).
    ``setting`` names the knob that raises the limit, for the message. The caller closes the response."""
    announced = response.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise ProtocolError(_too_large(f"announced a {int(announced)}-byte response body", limit, setting))
    arrived = response.read_arrived()  # a small reply: all there already, no read to wait for
    if arrived is not None:
        if len(arrived) > limit:
            raise ProtocolError(_too_large("sent a response body of more than that", limit, setting))
        return arrived
    parts: list[bytes] = []
    size = 0
    while chunk := await response.read_chunk():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(_too_large("sent a response body of more than that", limit, setting))
        parts.append(chunk)
    return b"".join(parts)


def _too_large(what: str, limit: int, setting: str) -> str:
    return (
        f"the response body is over the limit of {limit} bytes ({setting}): the provider {what}; "
        f"llmrelay stopped reading it. If such large replies are expected, raise {setting} "
        f"(provider.{setting} = {limit * 4})"
    )


async def read_error_body(response: HttpResponse) -> bytes:
    """Read an error response's body, bounded in size; a broken body yields what arrived."""
    try:
        return await response.read(limit=_MAX_ERROR_BODY)
    except LlmError:
        return b""
    finally:
        await response.aclose()


# --- An in-memory transport for tests and for users' own tests ------------------------------------------


class MockResponse(HttpResponse):
    """A response served from memory: ``body`` as bytes or as a list of chunks."""

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: bytes | list[bytes] = b"",
    ) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self._chunks = [body] if isinstance(body, bytes) else list(body)
        self.closed = False

    async def read_chunk(self) -> bytes:
        while self._chunks:
            chunk = self._chunks.pop(0)
            if chunk:
                return chunk
        return b""

    async def aclose(self) -> None:
        self.closed = True


class MockTransport(Transport):
    """Answers each request with ``handler(request)`` (sync or async); records what was sent."""

    def __init__(self, handler: Callable[[HttpRequest], MockResponse | Awaitable[MockResponse]]) -> None:
        self._handler = handler
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        self.requests.append(request)
        result = self._handler(request)
        if isinstance(result, MockResponse):
            return result
        return await result
