"""JSON from response bytes, the way every decoder reads it: UTF-8, with invalid bytes replaced.

A body or stream line that is not valid UTF-8 is decoded with U+FFFD for the bad bytes (and one leading
byte order mark dropped), like the event-stream decoder does, so one bad byte in a reply costs one
character, never the whole response, in every dialect and on both the streaming and the body path.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]

_BOM = b"\xef\xbb\xbf"
_decode = json.JSONDecoder().decode


def loads(data: bytes | str) -> Any:
    """Parse JSON text; raises ``ValueError`` when it is not JSON."""
    if isinstance(data, bytes):
        if data[:3] == _BOM:
            data = data[3:]
        data = data.decode("utf-8", "replace")
    return _decode(data)
