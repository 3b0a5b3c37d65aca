"""Synthetic tool-call ids for providers that send none.

The Gemini API (``functionCall.id`` is optional and usually absent) and Ollama servers older than the ones
that issue ``call_...`` ids return tool calls without an id, yet a tool result is a ``Message.tool`` that
names the call it answers. So the decoders (through ``StreamState``) give an id-less call the id
``llmrelay_call_<index>``, where ``<index>`` is the call's event index in its turn (0, 1, ... in the order
the calls arrived). It is deterministic -- the same response decodes to the same ids, streamed or not --
and contains only ``[A-Za-z0-9_-]``, which every dialect accepts as a call id.

It is unique within one turn, not across a conversation: the encoders match a tool result to the call it
answers by looking at the calls of the turns before it, the most recent first, and the encoders of the
dialects that never issued the id (Gemini, Ollama) do not send it back to the server; they use it only to
find the call's function name. A dialect that wants ids unique in the whole request (Anthropic rejects a
request whose ``tool_use`` ids repeat) passes the messages through ``unique_synthetic_ids`` first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from .._types import Message, Role

__all__ = ["SYNTHETIC_PREFIX", "is_synthetic_call_id", "synthetic_call_id", "unique_synthetic_ids"]

SYNTHETIC_PREFIX = "llmrelay_call_"
_SYNTHETIC = re.compile(r"llmrelay_call_-?\d+")


def synthetic_call_id(index: int) -> str:
    """The id given to the id-less call at event ``index`` of a turn."""
    return f"{SYNTHETIC_PREFIX}{index}"


def is_synthetic_call_id(call_id: str | None) -> bool:
    """Whether ``call_id`` was made up by ``synthetic_call_id`` (rather than issued by a server)."""
    return call_id is not None and _SYNTHETIC.fullmatch(call_id) is not None


def unique_synthetic_ids(messages: Sequence[Message]) -> Sequence[Message]:
    """``messages`` with a synthetic id that an earlier turn already used renamed ``<id>_t<turn>``, on the
    assistant turn's call and on the tool results that follow it (the result answers the most recent call
    with its id). Real ids are never touched; a conversation without repeats is returned as it is."""
    seen: set[str] = set()
    renamed: dict[str, str] = {}
    out: list[Message] = []
    changed = False
    for turn, message in enumerate(messages):
        if message.role is Role.ASSISTANT and message.tool_calls:
            renamed = {}
            calls = []
            for call in message.tool_calls:
                call_id = call.id
                if call_id is not None and is_synthetic_call_id(call_id):
                    if call_id in seen:
                        renamed[call_id] = f"{call_id}_t{turn}"
                        call = dataclasses.replace(call, id=renamed[call_id])
                    else:
                        seen.add(call_id)
                calls.append(call)
            if renamed:
                message = dataclasses.replace(message, tool_calls=calls)
                changed = True
        elif message.role is Role.TOOL and message.tool_call_id in renamed:
            message = dataclasses.replace(message, tool_call_id=renamed[message.tool_call_id])
            changed = True
        out.append(message)
    return out if changed else messages
