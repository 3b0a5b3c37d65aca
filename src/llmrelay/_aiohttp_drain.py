"""``drain(content)``: every byte an aiohttp response has buffered now, as ``content.read_nowait()`` returns
them, at one flow-control check per call instead of one per HTTP chunk; ``read_any(content)``: the same
for ``await content.readany()``.

Why: a streamed reply comes as one HTTP chunk per event, so a read that finds 60 events buffered finds
60 entries in aiohttp's ``StreamReader``. aiohttp 3.14 drains them one by one, and after each one it
calls the protocol's ``resume_reading()`` whenever the buffer is under its low-water marks (nearly
always), which runs ``data_received(b"")``: about 0.5 us per event on this machine. Here the buffered
entries are joined at once and the same check runs once, at the end: the same bytes, the same reader
state after, and the same resume when one is due. Nothing re-entrant is absorbed (aiohttp's own
``_read_nowait(-1)`` snapshots the entries for the same reason): resuming comes after the join.

This reads aiohttp's private ``StreamReader`` fields, so it is used only where they are known: aiohttp
3.14, on a ``StreamReader`` of exactly that class with every field present (checked once per
process); anywhere else ``drain`` is ``content.read_nowait()``. ``tests/test_aiohttp_drain.py`` checks
it against ``read_nowait`` on the installed aiohttp, field by field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import StreamReader

__all__ = ["drain", "read_any"]

_FIELDS = (
    "_buffer",
    "_buffer_offset",
    "_cursor",
    "_eof",
    "_exception",
    "_http_chunk_splits",
    "_low_water",
    "_low_water_chunks",
    "_protocol",
    "_size",
    "_timer",
    "_wait",
    "_waiter",
)
"""The private fields ``drain`` reads and writes."""
_KNOWN = ("3.14.",)
"""aiohttp versions whose ``StreamReader._read_nowait`` ``drain`` reproduces."""

_usable: bool | None = None
"""Whether this process's aiohttp is one ``drain`` knows (decided on the first call)."""
_reader_class: type[Any] | None = None


def _decide(content: StreamReader) -> bool:
    global _usable, _reader_class
    import aiohttp
    from aiohttp.streams import StreamReader as reader_class

    _reader_class = reader_class
    _usable = (
        aiohttp.__version__.startswith(_KNOWN)
        and type(content) is reader_class
        and all(hasattr(content, name) for name in _FIELDS)
    )
    return _usable


def drain(content: StreamReader) -> bytes:
    """``content.read_nowait()``: the bytes buffered now (``b""`` when none), with aiohttp's flow-control
    check once per call (see the module docstring)."""
    if _usable is None:
        _decide(content)
    buffer = content._buffer
    if (
        not _usable
        or len(buffer) < 2  # one entry: aiohttp's own path costs the same
        or type(content) is not _reader_class
        or content._exception is not None
        or content._waiter is not None
    ):
        return content.read_nowait()
    content._timer.assert_timeout()
    offset = content._buffer_offset
    if offset:
        buffer[0] = buffer[0][offset:]
        content._buffer_offset = 0
    data = b"".join(buffer)
    buffer.clear()
    size = len(data)
    content._size -= size
    cursor = content._cursor = content._cursor + size
    splits = content._http_chunk_splits
    while splits and splits[0] < cursor:  # as aiohttp drops the splits it has read past
        splits.popleft()
    if content._size < content._low_water and (splits is None or len(splits) < content._low_water_chunks):
        content._protocol.resume_reading()
    return data


async def read_any(content: StreamReader) -> bytes:
    """``await content.readany()``: wait until bytes are buffered (or the body ended), then ``drain``."""
    if _usable is None:
        _decide(content)
    if not _usable or type(content) is not _reader_class:
        return await content.readany()
    # aiohttp's ``readany``, its last step ``drain``
    if content._exception is not None:
        raise content._exception
    while not content._buffer and not content._eof:
        await content._wait("readany")
    return drain(content)
