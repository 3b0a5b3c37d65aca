"""Incremental ``text/event-stream`` decoder, per the WHATWG HTML standard, section 9.2.6
("Event stream interpretation"): https://html.spec.whatwg.org/multipage/server-sent-events.html

Sans-I/O: ``feed(bytes) -> list[SseEvent]`` and ``close() -> list[SseEvent]``. Bytes may be split
anywhere, including inside a multi-byte UTF-8 sequence or between the CR and LF of a CRLF.

The rules implemented (quoted loosely from the standard):

- Lines end in CRLF, a lone LF, or a lone CR. A CR at the end of one read followed by an LF at the start
  of the next is one line end, not two.
- One leading U+FEFF BYTE ORDER MARK is ignored.
- A line starting with ``:`` is a comment (keep-alive); it is ignored.
- ``field: value`` -- one space after the colon is dropped; a line with no colon is a field with an empty
  value. Fields: ``event`` (type), ``data`` (appended, with a LF between lines), ``id`` (ignored when it
  contains NUL; it persists across events), ``retry`` (ASCII digits only). Other field names are ignored.
- A blank line dispatches the event. If no ``data`` line was seen, nothing is dispatched. The event type
  defaults to ``message``.
- At end of stream an event not closed by a blank line is discarded (``close()`` reports whether that
  happened through ``discarded_partial``).

Text is decoded as UTF-8 with replacement characters for invalid sequences, line by line, so a code point
split across reads is reassembled before decoding. Lines longer than ``max_line`` raise
``SseLineTooLong`` (carrying the events completed before the long line) so a hostile upstream cannot
grow the buffer without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SseDecoder", "SseEvent", "SseLineTooLong", "StrayLine"]

_BOM = b"\xef\xbb\xbf"
_DEFAULT_MAX_LINE = 16 * 1024 * 1024


class SseLineTooLong(ValueError):
    """A single event-stream line exceeded the decoder's ``max_line`` bytes.

    ``events`` holds the events the same read completed before the long line, so a caller can apply them
    before failing (the result must not depend on how the bytes were split)."""

    def __init__(self, message: str, events: list[SseEvent] | None = None) -> None:
        super().__init__(message)
        self.events: list[SseEvent] = events or []


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str = ""
    """The last event id seen so far in the stream (it persists across events, per the standard)."""
    retry: int | None = None
    """The last valid ``retry`` value seen so far, in milliseconds."""


_new = object.__new__
_slots: Any = SseEvent.__dict__  # the slot descriptors
_set_data = _slots["data"].__set__
_set_event = _slots["event"].__set__
_set_id = _slots["id"].__set__
_set_retry = _slots["retry"].__set__


def _event_of(data: str, event: str, id: str, retry: int | None) -> SseEvent:
    """``SseEvent(data, event, id, retry)`` in half the time: the frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__``; this sets the same slots through their descriptors directly."""
    made: SseEvent = _new(SseEvent)
    _set_data(made, data)
    _set_event(made, event)
    _set_id(made, id)
    _set_retry(made, retry)
    return made


@dataclass(frozen=True, slots=True)
class StrayLine:
    """A line whose field name the standard does not know (kept with ``keep_stray_lines``)."""

    text: str
    before: int
    """How many of the events returned by the same ``feed`` call came before this line."""


class SseDecoder:
    """Turn event-stream bytes into ``SseEvent`` objects.

    ``stray_lines`` collects lines whose field name is not one of the four the standard knows (the
    standard ignores them), each with its place among the events the same ``feed`` returned; a dialect
    whose server writes raw JSON into an event stream (Gemini on some errors, proxies) reads it from there
    and clears the list.
    """

    __slots__ = (
        "_bom_checked",
        "_data",
        "_event",
        "_has_data",
        "_id",
        "_keep_stray",
        "_max_line",
        "_parts",
        "_pending",
        "_retry",
        "_skip_lf",
        "stray_lines",
    )

    def __init__(self, *, max_line: int = _DEFAULT_MAX_LINE, keep_stray_lines: bool = False) -> None:
        self._parts: list[bytes] = []
        self._pending = 0
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._id = ""
        self._retry: int | None = None
        self._bom_checked = False
        self._skip_lf = False
        self._max_line = max_line
        self._keep_stray = keep_stray_lines
        self.stray_lines: list[StrayLine] = []

    @property
    def at_event_start(self) -> bool:
        """True between two events: nothing of a line or of an event is pending and no CR's LF is awaited
        (before the first bytes, too: the byte order mark is looked for in the first bytes fed)."""
        return not self._parts and not self._has_data and not self._skip_lf and not self._event

    @property
    def discarded_partial(self) -> bool:
        """True when bytes or fields of an unfinished event are pending (checked after ``close``)."""
        return bool(self._parts) or self._has_data

    def feed(self, data: bytes) -> list[SseEvent]:
        """Add bytes; return the events they complete."""
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
                if not data:
                    return []
        if not self._bom_checked:
            head = b"".join(self._parts) + data
            if len(head) < 3 and _BOM.startswith(head):
                self._parts = [head]
                self._pending = len(head)
                return []
            self._bom_checked = True
            self._parts = []
            self._pending = 0
            data = head[3:] if head.startswith(_BOM) else head
        if b"\n" not in data and b"\r" not in data:
            # No line end: park the bytes without copying what is already parked (a very long event
            # arriving in many small reads stays linear).
            self._pending += len(data)
            if self._pending > self._max_line:
                raise SseLineTooLong(f"event-stream line longer than {self._max_line} bytes")
            self._parts.append(data)
            return []
        if self._parts:
            self._parts.append(data)
            data = b"".join(self._parts)
            self._parts = []
        if b"\r" in data:
            if data.endswith(b"\r"):
                # The LF of a CRLF may be in the next read: treat the CR as a line end now and drop a
                # leading LF next time.
                self._skip_lf = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop()
        events = self._lines(lines)
        if rest:
            if len(rest) > self._max_line:
                raise SseLineTooLong(f"event-stream line longer than {self._max_line} bytes", events)
            self._parts = [rest]
        self._pending = len(rest)
        return events

    def close(self) -> list[SseEvent]:
        """End of stream. An event not closed by a blank line is discarded, as the standard says."""
        if self._skip_lf:
            self._skip_lf = False
        if self._parts:
            # The last line had no terminator: it is still a line, but its event is never closed.
            self._lines([b"".join(self._parts)])
            self._parts = []
            self._pending = 0
        return []

    def _lines(self, lines: list[bytes]) -> list[SseEvent]:
        out: list[SseEvent] = []
        data = self._data
        for raw in lines:
            if not raw:
                if self._has_data:
                    text = "\n".join(data) if len(data) > 1 else data[0]
                    out.append(_event_of(text, self._event or "message", self._id, self._retry))
                    data.clear()
                    self._has_data = False
                self._event = ""
                continue
            if raw[:5] == b"data:":
                # The hot path: ``data:`` lines, usually ASCII JSON.
                data.append((raw[6:] if raw[5:6] == b" " else raw[5:]).decode("utf-8", "replace"))
                self._has_data = True
                continue
            if raw[:1] == b":":
                continue
            line = raw.decode("utf-8", "replace")
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
                self._has_data = True
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\x00" not in value:
                    self._id = value
            elif name == "retry":
                if value.isascii() and value.isdigit():
                    self._retry = int(value)
            elif self._keep_stray:
                self.stray_lines.append(StrayLine(line, len(out)))
        return out
