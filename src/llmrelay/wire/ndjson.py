"""Incremental newline-delimited JSON decoder (https://github.com/ndjson/ndjson-spec).

Sans-I/O: ``feed(bytes) -> list[object]`` and ``close() -> list[object]``. Each line is one JSON value;
lines end in LF (a CR before it is whitespace and ignored); blank lines are skipped. Text is UTF-8; bytes
that are not valid UTF-8 become U+FFFD and decoding goes on, as in the event-stream decoder (one bad byte
costs one character, not the stream). A line that is not valid JSON raises ``NdjsonError`` naming the
line, so callers turn it into a ``ProtocolError``. A final line without a newline is decoded by
``close()``.
"""

from __future__ import annotations

from typing import Any

from .json_text import loads

__all__ = ["NdjsonDecoder", "NdjsonError"]

_DEFAULT_MAX_LINE = 16 * 1024 * 1024


class NdjsonError(ValueError):
    """A line was not a JSON value, or was longer than ``max_line``.

    ``values`` holds the values decoded from the same read before the bad line, so a caller can apply
    them before failing (the result must not depend on how the bytes were split)."""

    def __init__(self, message: str, values: list[Any] | None = None) -> None:
        super().__init__(message)
        self.values: list[Any] = values or []


class NdjsonDecoder:
    """Turn NDJSON bytes into decoded JSON values."""

    __slots__ = ("_line_no", "_max_line", "_parts", "_pending")

    def __init__(self, *, max_line: int = _DEFAULT_MAX_LINE) -> None:
        self._parts: list[bytes] = []
        self._pending = 0
        self._max_line = max_line
        self._line_no = 0

    def feed(self, data: bytes) -> list[Any]:
        """Add bytes; return the values of the lines they complete."""
        if b"\n" not in data:
            self._pending += len(data)
            if self._pending > self._max_line:
                raise NdjsonError(f"NDJSON line longer than {self._max_line} bytes")
            if data:
                self._parts.append(data)
            return []
        if self._parts:
            self._parts.append(data)
            data = b"".join(self._parts)
            self._parts = []
        lines = data.split(b"\n")
        rest = lines.pop()
        self._pending = len(rest)
        if rest:
            self._parts = [rest]
        out: list[Any] = []
        for line in lines:
            try:
                value = self._decode(line)
            except NdjsonError as exc:
                raise NdjsonError(str(exc), out) from None
            if value is not _BLANK:
                out.append(value)
        return out

    def close(self) -> list[Any]:
        """End of stream: decode a last line that had no newline."""
        if not self._parts:
            return []
        line = b"".join(self._parts)
        self._parts = []
        self._pending = 0
        value = self._decode(line)
        return [] if value is _BLANK else [value]

    def _decode(self, line: bytes) -> Any:
        self._line_no += 1
        if not line.strip():
            return _BLANK
        try:
            return loads(line)
        except ValueError as exc:
            snippet = line[:80].decode("utf-8", "replace")
            raise NdjsonError(f"NDJSON line {self._line_no} is not valid JSON ({exc}): {snippet!r}") from None


_BLANK: Any = object()
