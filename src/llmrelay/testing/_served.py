"""Kit replies built by the server half of a dialect (``llmrelay.wire.serve``): the events a reply should
decode to, encoded as the gateway would send them.

So the OpenAI and Anthropic kits and the gateway share one encoder: a kit reply is what ``llmrelay serve``
writes, and the client decoders are tested against it (and against the 40 recorded transcripts, which are
the vendors' own bytes). Error replies stay hand-written in each kit: they copy the vendors' exact error
bodies for each status, which a gateway deliberately does not (an upstream 401 is its own 502).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .._accumulate import Accumulator
from .._events import Done, StreamEvent, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from .._types import FinishReason, ToolCall, Usage
from ..wire.serve import ServedDialect
from .kit import ToolCallSpec
from .upstream import Reply

__all__ = ["call_events", "served", "text_events"]


def served(dialect: ServedDialect, events: Sequence[StreamEvent], *, stream: bool, model: str, rid: str) -> Reply:
    """``events`` as ``dialect`` serves them: one event-stream chunk per event when ``stream``, else the
    non-streaming body of their fold."""
    if stream:
        encoder = dialect.stream_encoder(model=model, created=1, include_usage=True, response_id=rid)
        chunks = tuple(chunk for chunk in (encoder.encode(event) for event in events) if chunk)
        return Reply(chunks=chunks, content_type="text/event-stream")
    fold = Accumulator()
    for event in events:
        fold.add(event)
    body = dialect.encode_response(fold.response(), model=model, created=1, response_id=rid)
    return Reply.json(body)


def text_events(text: str, finish: FinishReason, usage: tuple[int, int]) -> list[StreamEvent]:
    """``text`` in two deltas (split in the middle), then the ``Done``."""
    mid = len(text) // 2
    deltas: list[StreamEvent] = [TextDelta(part) for part in (text[:mid], text[mid:]) if part]
    return [*deltas, Done(finish, usage=Usage(input_tokens=usage[0], output_tokens=usage[1]))]


def call_events(calls: Sequence[ToolCallSpec], id_prefix: str) -> list[StreamEvent]:
    """Each call started, its JSON arguments in two fragments, ended; then a ``tool_calls`` ``Done``."""
    events: list[StreamEvent] = []
    for i, (cid, name, args) in enumerate(calls):
        call_id = cid or f"{id_prefix}{i}"
        raw = json.dumps(args)
        cut = len(raw) // 2
        events.append(ToolCallStart(index=i, id=call_id, name=name))
        events += [ToolCallDelta(index=i, arguments_delta=part) for part in (raw[:cut], raw[cut:]) if part]
        call = ToolCall(id=call_id, name=name, arguments=dict(args), arguments_raw=raw)
        events.append(ToolCallEnd(index=i, call=call))
    events.append(Done(FinishReason.TOOL_CALLS, usage=Usage(input_tokens=10, output_tokens=5)))
    return events
