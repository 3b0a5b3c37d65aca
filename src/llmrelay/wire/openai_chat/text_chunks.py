"""A Chat Completions stream decoder for a relay of the same dialect: runs of text chunks as ``TextChunks``.

A gateway that serves Chat Completions in front of a Chat Completions upstream (OpenAI, vLLM, llama.cpp,
Groq, ...) decodes every chunk only to encode it again in the same format. ``OpenAIChatChunkingDecoder``
is the stream decoder with one more fast path, taken per read instead of per chunk: once the decoder
holds a verified ``TextTemplate`` (a plain text chunk, see ``text_template``), the longest run of
complete events at the start of a read that are each exactly ``data: HEAD + S + TAIL`` is delivered as
one ``TextChunks`` event (each chunk's content string body as sent, and their text), which the served
encoder re-frames with one ``bytes.join`` (``OpenAIChatStreamEncoder.encode_batch``). Everything else
-- the first chunks, the finish chunk, usage, tool calls, reasoning, errors, comments, ``[DONE]`` --
takes the decoder's ordinary path, so the stream laws, usage, errors and the truncation rule are the
same as ``OpenAIChatStreamDecoder``'s, event for event, except that the run's text deltas come as one
event.

A run is only taken when it is exact:

- the events are split at ``\\n\\n`` with no ``\\r`` in the read (a stream with CR line ends takes the
  ordinary path, whose SSE reader handles them), and the ordinary reader stands between two events;
  the bytes after the read's last complete event are held for the next read (at most ``_HOLD_MAX``), so
  the ordinary reader is only ever given whole events;
- each event starts with ``data: HEAD`` and ends with ``TAIL``: the template's chunk with another
  content string;
- every ``S`` is the body of a valid JSON string: the bodies are parsed together, strictly, as
  ``["S1"\\t,"S2"\\t,...]``. A raw control character inside a string is an error in strict JSON, so a
  body with a line break (an event of more than one line) fails, and no separator can be swallowed: a
  body with an unescaped quote, or one ending in a lone backslash, either breaks the parse or changes the
  count, and anything but ``count`` strings is refused;
- no ``S`` holds a ``\\uD800``-``\\uDFFF`` escape and no high surrogate is held back from the chunk
  before (the ordinary path pairs split surrogates and replaces lone ones: those reads take it).

A read that fails a check takes the ordinary path whole, so the output is the ordinary decoder's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import repeat
from operator import getitem

from ..._errors import LlmError
from ..._events import StreamEvent, TextChunks
from .decode import OpenAIChatStreamDecoder
from .text_template import TextTemplate

__all__ = ["OpenAIChatChunkingDecoder"]

_HOLD_MAX = 1024 * 1024
"""The most bytes of an unfinished event held between reads; a longer one goes to the ordinary reader
(which bounds its lines), and the fast path waits until that reader stands between events again."""

_LEAD_EVENTS = 2
"""Events a first read gives the ordinary path before it looks for a run: the role chunk, the first text."""
_loads = json.loads
_slice: Callable[[bytes, slice], bytes] = getitem  # type: ignore[assignment]  # typeshed: overloaded


class OpenAIChatChunkingDecoder(OpenAIChatStreamDecoder):
    """``OpenAIChatStreamDecoder`` that delivers runs of plain text chunks as ``TextChunks``."""

    __slots__ = ("_head", "_held", "_pattern_of", "_tail")

    def __init__(self) -> None:
        super().__init__()
        self._held = b""
        self._pattern_of: TextTemplate | None = None
        self._head = b""
        self._tail = b""

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._state.finished:
            return []
        if self._held:
            data = self._held + data
            self._held = b""
        if b"\r" in data or not self._frames.at_event_start:
            return super().feed(data)
        end = data.rfind(b"\n\n") + 2
        if end < 2:
            if len(data) > _HOLD_MAX:
                return super().feed(data)
            self._held = data
            return []
        out = self._events(data[:end])  # the whole of data when it ends with an event (no copy)
        if end < len(data) and not self._state.finished:
            rest = data[end:]
            if len(rest) > _HOLD_MAX:
                out.extend(super().feed(rest))
            else:
                self._held = rest
        return out

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._held:
            held, self._held = self._held, b""
            out = super().feed(held)
        return out + super().close()

    def fail(self, error: LlmError) -> list[StreamEvent]:
        self._held = b""
        return super().fail(error)

    def _events(self, data: bytes) -> list[StreamEvent]:
        """The events of ``data``, which is whole events."""
        template = self._template
        if template is None or not template.usable():
            # No template yet (the stream's first read): the first events take the ordinary path, which
            # makes one of the first text chunk, and the rest of the read may be a run.
            cut = 0
            for _ in range(_LEAD_EVENTS):
                cut = data.find(b"\n\n", cut) + 2
                if cut < 2:
                    return super().feed(data)
            if cut >= len(data):
                return super().feed(data)
            out = super().feed(data[:cut])
            if self._template is None or self._state.finished:
                return out + super().feed(data[cut:])
            return out + self._run(data[cut:])
        return self._run(data)

    def _run(self, data: bytes) -> list[StreamEvent]:
        """``_events`` once there is a template: the run at the start of ``data``, then the rest."""
        template = self._template
        if template is None or self._state.text_held or not template.usable():
            return super().feed(data)
        if template is not self._pattern_of:
            self._pattern_of = template
            self._head = b"data: " + template.head.encode()
            self._tail = b'"' + template.tail.encode()  # the template's tail begins after the closing quote
        head, tail = self._head, self._tail
        cut = slice(len(head), -len(tail))  # the tail is never empty: it holds the closing quote
        # The usual read is text chunks only, one line and a blank line each: checked without a Python step
        # per chunk and without a copy of the read. Every line is ``head + body + tail`` when the read begins
        # with ``head`` and ends with ``tail``, every blank line between two events has ``tail`` before it
        # and ``head`` after it (an occurrence of ``between`` has its blank line at a separator, as no line
        # holds a LF), and the lengths add up (no line is shorter than ``head + tail``, which could let the
        # two overlap or two occurrences share a line).
        lines = data.split(b"\n")
        bodies: tuple[bytes, ...] = ()
        count = size = 0
        if not any(lines[1::2]):
            bodies = tuple(map(_slice, lines[0:-1:2], repeat(cut)))
            n = len(bodies)
            if (
                data.startswith(head)
                and data.endswith(tail + b"\n\n")
                and data.count(tail + b"\n\n" + head) == n - 1
                and sum(map(len, bodies)) + n * (len(head) + len(tail) + 2) == len(data)
            ):
                count, size = n, len(data)
        if not count:
            hl, tl = len(head), len(tail)
            for event in data.split(b"\n\n"):
                if len(event) >= hl + tl and event.startswith(head) and event.endswith(tail):
                    count += 1
                    size += len(event) + 2
                else:
                    break
            if not count:
                return super().feed(data)
            bodies = tuple(map(_slice, data[: size - 2].split(b"\n\n"), repeat(cut)))
        joined = b'"\t,"'.join(bodies)
        if b"\\u" in joined and (b"\\ud" in joined or b"\\uD" in joined):
            return super().feed(data)
        try:
            texts = _loads(b'["' + joined + b'"]')
            if type(texts) is not list or len(texts) != count:
                return super().feed(data)
            text = "".join(texts)  # a TypeError unless every item is a string
        except (ValueError, TypeError, RecursionError):
            return super().feed(data)
        if b"" in bodies:  # empty content strings: the ordinary path emits nothing for them
            bodies = tuple([b for b in bodies if b])
        out: list[StreamEvent] = [TextChunks(text, "openai", bodies)] if bodies else []
        if size < len(data):
            out.extend(super().feed(data[size:]))
        return out
