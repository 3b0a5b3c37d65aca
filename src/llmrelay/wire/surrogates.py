"""UTF-16 surrogates in decoded text: joined when a pair arrives split, replaced when one is alone.

JSON writes a character outside the Basic Multilingual Plane as a pair of ``\\uXXXX`` escapes (RFC 8259,
section 7), and Python's ``json`` turns an escape that is not part of a complete pair *in the same string*
into a lone surrogate code point. A server that cuts its deltas by UTF-16 code units (``"\\ud83d"`` at the
end of one chunk's ``content``, ``"\\ude00"`` at the start of the next) therefore yields two strings that
cannot be encoded as UTF-8, and concatenating them does not help: Python keeps two lone code points.

``SurrogateJoiner`` is kept per output channel (visible text, reasoning, each tool call's arguments) by
``StreamState``, the one place every dialect's text goes through:

- a high surrogate at the end of a delta is held back and joined with a low surrogate that starts the next
  delta of the same channel;
- any surrogate left without its partner (inside a delta, or held back when the channel ends) becomes
  U+FFFD REPLACEMENT CHARACTER, as a UTF-8 decoder does with a broken sequence.

So no text we emit contains a lone surrogate: ``text.encode("utf-8")`` always succeeds.
"""

from __future__ import annotations

import re

__all__ = ["SurrogateJoiner", "clean_text"]

_ANY = re.compile("[\ud800-\udfff]")
_PAIR_OR_LONE = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _fix(match: re.Match[str]) -> str:
    s = match.group()
    if len(s) == 2:
        return chr(0x10000 + ((ord(s[0]) - 0xD800) << 10) + (ord(s[1]) - 0xDC00))
    return "\ufffd"


def clean_text(text: str) -> str:
    """``text`` with surrogate pairs joined into their characters and lone surrogates as U+FFFD."""
    if text.isascii() or _ANY.search(text) is None:
        return text
    return _PAIR_OR_LONE.sub(_fix, text)


class SurrogateJoiner:
    """One channel's deltas, made safe to encode; see the module docstring."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""

    @property
    def holding(self) -> bool:
        """Whether a high surrogate is held back, waiting for its pair."""
        return bool(self._held)

    def push(self, text: str) -> str:
        """The part of ``text`` that can be emitted now (a trailing high surrogate is held back)."""
        if self._held:
            text = self._held + text
            self._held = ""
        elif text.isascii():
            return text
        if _ANY.search(text) is None:
            return text
        if "\ud800" <= text[-1] <= "\udbff":
            self._held = text[-1]
            text = text[:-1]
        return _PAIR_OR_LONE.sub(_fix, text)

    def flush(self) -> str:
        """The channel ended: a held-back high surrogate never got its pair, so it is U+FFFD."""
        if not self._held:
            return ""
        self._held = ""
        return "\ufffd"
