"""``llmrelay._aiohttp_drain.drain`` against aiohttp's own ``StreamReader.read_nowait``.

Twin readers (aiohttp's real ``StreamReader`` and ``ResponseHandler``) get the same feeds; one is read with
``read_nowait``, the other with ``drain``: the bytes and every field ``drain`` touches must agree, and the
transport must be resumed exactly when aiohttp resumes it. Then a real server on 127.0.0.1 sends a burst
large enough to pause the client's transport, read through ``AiohttpTransport``.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.streams import StreamReader
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import _aiohttp_drain
from llmrelay._aiohttp_drain import drain, read_any
from llmrelay._transport import AiohttpTransport, HttpRequest, Timeouts
from local_server import serving_app

pytestmark = pytest.mark.skipif(
    not aiohttp.__version__.startswith(_aiohttp_drain._KNOWN),
    reason="drain is read_nowait itself on this aiohttp (checked by test_other_readers_take_aiohttps_path)",
)


class _Transport(asyncio.Transport):
    """The socket end of a ``ResponseHandler``: it counts pauses and resumes of reading."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.resumes = 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        if self.paused:
            self.resumes += 1
        self.paused = False

    def is_closing(self) -> bool:
        return False


def _reader(loop: asyncio.AbstractEventLoop, limit: int) -> tuple[ResponseHandler, StreamReader, _Transport]:
    """A response in progress, as aiohttp builds one: its protocol has read the head of a chunked reply, and
    its parser made the body's ``StreamReader``."""
    protocol = ResponseHandler(loop)
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.set_response_params(read_bufsize=limit)
    protocol.data_received(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    reader = protocol._payload
    assert type(reader) is StreamReader
    return protocol, reader, transport


def _chunked(chunks: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)


def _state(reader: StreamReader) -> dict[str, Any]:
    splits = reader._http_chunk_splits
    return {
        "buffer": list(reader._buffer),
        "offset": reader._buffer_offset,
        "size": reader._size,
        "cursor": reader._cursor,
        "splits": None if splits is None else list(splits),
        "paused": reader._protocol._reading_paused,
    }


# One step: HTTP chunks arrive (cut into TCP reads at ``cuts``), n bytes are read aiohttp's way, or
# everything buffered is read.
_feed = st.tuples(
    st.just("feed"),
    st.tuples(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=30), st.lists(st.integers(0, 2000))),
)
_read_n = st.tuples(st.just("read_n"), st.integers(1, 50))
_read_all = st.tuples(st.just("read_all"), st.none())
_steps = st.lists(st.one_of(_feed, _read_n, _read_all), min_size=1, max_size=25)


def _feed_both(protocols: tuple[ResponseHandler, ...], chunks: list[bytes], cuts: list[int]) -> None:
    wire = _chunked(chunks)
    points = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    for start, end in itertools.pairwise(points):
        for protocol in protocols:
            protocol.data_received(wire[start:end])


@settings(max_examples=300, deadline=None)
@given(steps=_steps)
def test_drain_is_read_nowait_field_by_field(steps: list[tuple[str, Any]]) -> None:
    """Below the pause marks (the default 256 KiB buffer), reader for reader: the same bytes, the same
    fields after, the same resumes."""
    loop = asyncio.new_event_loop()
    try:
        our_protocol, ours, our_transport = _reader(loop, 2**18)
        their_protocol, theirs, their_transport = _reader(loop, 2**18)
        for op, arg in steps:
            if op == "feed":
                _feed_both((our_protocol, their_protocol), *arg)
            elif op == "read_n":
                assert ours.read_nowait(arg) == theirs.read_nowait(arg)
            else:
                assert drain(ours) == theirs.read_nowait()
            assert _state(ours) == _state(theirs), (op, arg)
            assert not our_transport.paused and not their_transport.paused
        assert drain(ours) == theirs.read_nowait()
        assert _state(ours) == _state(theirs)
        assert ours._size == 0 and not ours._buffer
    finally:
        loop.close()


@settings(max_examples=300, deadline=None)
@given(steps=_steps, limit=st.sampled_from([16, 64, 256]))
def test_drain_under_flow_control_reads_the_same_bytes(steps: list[tuple[str, Any]], limit: int) -> None:
    """With small buffers the transport pauses and resumes. ``drain`` resumes after its join where aiohttp
    resumes mid-drain, so what the parser refills in between can differ; what must not: the bytes, in
    order, and that reading everything leaves both readers empty and their transports running."""
    loop = asyncio.new_event_loop()
    try:
        our_protocol, ours, our_transport = _reader(loop, limit)
        their_protocol, theirs, their_transport = _reader(loop, limit)
        got, want = bytearray(), bytearray()

        def read_all() -> None:
            for _ in range(10_000):  # each read resumes the parser, which may refill the buffer: read to empty
                chunk = drain(ours)
                if not chunk:
                    break
                got.extend(chunk)
            for _ in range(10_000):
                chunk = theirs.read_nowait()
                if not chunk:
                    break
                want.extend(chunk)

        for op, arg in steps:
            if op == "feed":
                # A paused socket delivers nothing: feed only when neither is paused; else read first.
                if our_transport.paused or their_transport.paused:
                    read_all()
                _feed_both((our_protocol, their_protocol), *arg)
            elif op == "read_all":
                read_all()
                assert bytes(got) == bytes(want)
        read_all()
        assert bytes(got) == bytes(want)
        assert not ours._buffer and not theirs._buffer
        assert not our_transport.paused and not their_transport.paused
    finally:
        loop.close()


def test_a_paused_reader_is_resumed_once_drained() -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol, reader, transport = _reader(loop, 64)
        # far past the high-water marks (bytes and chunks): aiohttp pauses the transport
        protocol.data_received(_chunked([b"data: %d\n\n" % i for i in range(200)]))
        assert transport.paused
        got = b""
        for _ in range(200):  # each drain resumes once; the parser then goes on with what it held back
            chunk = drain(reader)
            if not chunk:
                break
            got += chunk
        assert got == b"".join(b"data: %d\n\n" % i for i in range(200))
        assert not transport.paused and transport.resumes >= 1
    finally:
        loop.close()


def test_an_error_is_raised_as_aiohttp_raises_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol, reader, _ = _reader(loop, 2**16)
        protocol.data_received(_chunked([b"a", b"b"]))
        reader.set_exception(ValueError("the connection broke"))
        with pytest.raises(ValueError, match="the connection broke"):
            drain(reader)
    finally:
        loop.close()


def test_other_readers_take_aiohttps_path() -> None:
    class Mine(StreamReader):
        pass

    loop = asyncio.new_event_loop()
    try:
        protocol = ResponseHandler(loop)
        protocol.connection_made(_Transport())
        protocol.set_response_params()
        reader = Mine(protocol, 2**16, loop=loop)
        calls = []
        original = reader.read_nowait

        def counted(n: int = -1) -> bytes:
            calls.append(n)
            return original(n)

        reader.read_nowait = counted  # type: ignore[method-assign]
        for piece in (b"x", b"y", b"z"):
            reader.begin_http_chunk_receiving()
            reader.feed_data(piece)
            reader.end_http_chunk_receiving()
        assert drain(reader) == b"xyz"
        assert calls == [-1]  # a subclass: aiohttp's own read, not ours
    finally:
        loop.close()


async def test_a_burst_over_a_real_socket_arrives_whole() -> None:
    """4,000 small HTTP chunks written at once: the client's transport pauses and resumes, every byte arrives
    in order through ``AiohttpTransport`` (whose buffered reads are ``drain``)."""
    events = [b'data: {"n": %d, "pad": "%s"}\n\n' % (i, b"x" * (i % 50)) for i in range(4000)]

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/stream", handler)
    transport = AiohttpTransport(trust_env=False)
    async with serving_app(app) as url:
        try:
            request = HttpRequest("POST", f"{url}/v1/stream", {"content-type": "application/json"}, b"{}")
            response = await transport.send(request, Timeouts())
            got = bytearray()
            reads = 0
            while chunk := await response.read_chunk():
                got += chunk
                reads += 1
                if reads % 7 == 0:
                    await asyncio.sleep(0.001)  # let the buffer fill past its marks between reads
            await response.aclose()
            assert bytes(got) == b"".join(events)
            assert reads < len(events)  # reads found many events buffered: the joined path ran
        finally:
            await transport.aclose()


async def test_read_any_waits_then_reads_everything_buffered() -> None:
    loop = asyncio.get_running_loop()
    protocol, reader, _ = _reader(loop, 2**18)
    pending = asyncio.ensure_future(read_any(reader))
    await asyncio.sleep(0)
    assert not pending.done()  # nothing buffered: it waits, as readany does
    protocol.data_received(_chunked([b"one ", b"two ", b"three"]))
    assert await asyncio.wait_for(pending, 5) == b"one two three"
    protocol.data_received(b"0\r\n\r\n")  # the last chunk: the body ends
    assert await asyncio.wait_for(read_any(reader), 5) == b""
    reader.set_exception(ValueError("reset"))
    with pytest.raises(ValueError, match="reset"):
        await read_any(reader)
