"""The fast path of the Chat Completions stream decoder: a text chunk that repeats the last one's bytes.

A streamed answer is mostly chunks that differ only in their text::

    {"id":"chatcmpl-1","object":"chat.completion.chunk",...,"choices":[{"index":0,"delta":{"content":"Hel"},
     "logprobs":null,"finish_reason":null}]}

so once a chunk has been parsed in full and turned out to be a plain text delta (the decoder's hot path:
one choice, index 0, a delta of ``content`` and maybe ``role``, no finish reason, no usage, no error), the
decoder keeps it as a ``TextTemplate``: its *head* (every character up to and including the opening quote
of the content string), its *tail* (every character after the closing quote), and the parsed chunk. A
later event whose data starts with the head, whose content string (read with ``json.decoder.scanstring``)
ends a well-formed JSON string, and whose remaining characters are exactly the tail, is the same chunk
with other text: the decoder emits its text and parses nothing else.

Why that is exact, not a guess:

1. ``scanstring`` is the function the ``json`` scanner itself calls for every string (the C
   ``scanstring_unicode``, ``strict=True`` as in ``json.loads``), so it returns the same text -- escapes,
   ``\\uXXXX`` pairs and lone surrogates alike -- and rejects the same strings (control characters, bad
   escapes, no closing quote; those take the full path and fail there exactly as before).
2. JSON's grammar is context-free and the content of a string token does not change how the tokens after
   it are read. So ``head + S + tail`` reads as the same token sequence as the template for every valid
   string ``S``: its value is the template's chunk with one string replaced, provided that string is the
   ``choices[0].delta.content`` the decoder reads. That is *checked* before the template is first used:
   ``head + PROBE + tail`` is parsed in full once and must equal the template's chunk with its content
   replaced by the probe's text. A chunk that names ``content`` twice (the last one wins), a head whose
   quote is not where a value starts, anything unusual: the probe does not land, and the template is never
   used (every chunk takes the full path, as before).
3. Everything else the full path does with such a chunk -- set the model, skip usage, error and tool
   handling -- depends only on the fields that are the same as the template's, and the template is
   dropped by every event that takes the full path and is not itself a plain text chunk. So the decoder's
   state after a fast chunk is what it would have been, and the only output is the same ``TextDelta``.

An ``obfuscation`` field (OpenAI), a usage object per chunk (vLLM's ``continuous_usage_stats``), a new
``id`` or ``model`` mid-stream: the head or the tail differs, and the chunk takes the full path (and
becomes the template, if it is a plain text chunk).
"""

from __future__ import annotations

import json
import json.decoder
from collections.abc import Callable
from typing import Any

__all__ = ["TextTemplate"]

_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
"""The ``json`` module's own string scanner (its C ``scanstring_unicode``, strict, as ``json.loads`` calls it)."""

_KEY = '"content":'
_PROBE_TEXT = "llmrelay\x00fast-path\ufffeprobe"
_PROBE = json.dumps(_PROBE_TEXT)[1:]  # the string's body and its closing quote, as JSON text


class TextTemplate:
    """A plain text chunk's head, tail and parsed value; see the module docstring."""

    __slots__ = ("_chunk", "_content", "_tail_len", "head", "tail", "verified")

    def __init__(self, head: str, tail: str, chunk: dict[str, Any], content: str) -> None:
        self.head = head
        self.tail = tail
        self._tail_len = len(tail)
        self._chunk = chunk
        self._content = content
        self.verified: bool | None = None
        """``None`` until the probe has been parsed; then whether the template may be used."""

    @staticmethod
    def of(data: str, chunk: dict[str, Any], content: str, last: TextTemplate | None) -> TextTemplate | None:
        """The template of ``data``, a chunk the full path read as a plain text delta (``chunk`` parsed,
        ``content`` its text); ``last`` when it has the same head and tail (keeping its probe's verdict)."""
        key = data.find(_KEY)
        if key < 0:
            return None
        start = key + len(_KEY)
        while data[start : start + 1] in (" ", "\t", "\n", "\r"):
            start += 1
        if data[start : start + 1] != '"':
            return None
        start += 1
        try:
            _, end = _scanstring(data, start)
        except ValueError:
            return None
        head, tail = data[:start], data[end:]
        if last is not None and last.head == head and last.tail == tail:
            return last
        return TextTemplate(head, tail, chunk, content)

    def text_of(self, data: str) -> str | None:
        """The text of ``data`` when it is this template with other text (the caller checked that it
        starts with ``head``); ``None`` when it is not, or when the template failed its probe."""
        try:
            text, end = _scanstring(data, len(self.head))
        except ValueError:
            return None
        if end != len(data) - self._tail_len or not data.endswith(self.tail):
            return None
        if self.verified is None:
            self.verified = self._probe()
        return text if self.verified else None

    def usable(self) -> bool:
        """Whether chunks may be read through this template (its probe, parsed once, landed)."""
        if self.verified is None:
            self.verified = self._probe()
        return self.verified

    def _probe(self) -> bool:
        """Whether the content string is the one the decoder reads (module docstring, point 2)."""
        try:
            value = json.loads(self.head + _PROBE + self.tail)
        except (ValueError, RecursionError):
            return False
        try:
            delta = value["choices"][0]["delta"]
            if type(delta) is not dict or delta.get("content") != _PROBE_TEXT:
                return False
            delta["content"] = self._content
        except (KeyError, IndexError, TypeError):
            return False
        return bool(value == self._chunk)
