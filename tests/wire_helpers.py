"""Shared test helpers: load recorded transcripts, feed decoders in pieces, check the stream laws, and
compare a decoded response with a transcript's ``expected`` block."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrelay import ChatResponse, Done, ProtocolError, StreamEvent, ToolCallDelta, ToolCallEnd, ToolCallStart, fold
from llmrelay.wire.dialect import Dialect

FIXTURES = Path(__file__).parent / "fixtures" / "wire"


@dataclass(frozen=True)
class Transcript:
    name: str
    wire: bytes
    meta: dict[str, Any]

    @property
    def provider(self) -> str:
        return str(self.meta["provider"])

    @property
    def status(self) -> int:
        return int(self.meta["http_status"])

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.meta["expected"])

    @property
    def is_stream(self) -> bool:
        ctype = str(self.meta.get("content_type") or "")
        return self.status < 400 and ("event-stream" in ctype or "ndjson" in ctype)


def load(name: str) -> Transcript:
    return Transcript(
        name=name,
        wire=(FIXTURES / f"{name}.wire").read_bytes(),
        meta=json.loads((FIXTURES / f"{name}.json").read_text()),
    )


def transcripts(providers: Iterable[str]) -> list[Transcript]:
    wanted = set(providers)
    out = [load(p.stem) for p in sorted(FIXTURES.glob("*.json"))]
    return [t for t in out if t.provider in wanted]


def split_whole(data: bytes) -> list[bytes]:
    return [data]


def split_bytes(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, points: Sequence[int]) -> list[bytes]:
    cuts = sorted({p for p in points if 0 < p < len(data)})
    pieces, last = [], 0
    for cut in cuts:
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    return pieces


def split_random(data: bytes, seed: int, count: int = 12) -> list[bytes]:
    rng = random.Random(seed)
    return split_at(data, [rng.randrange(1, max(2, len(data))) for _ in range(count)])


def feed_all(make_decoder: Callable[[], Any], pieces: Iterable[bytes]) -> list[StreamEvent]:
    decoder = make_decoder()
    events: list[StreamEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


def check_stream_laws(events: Sequence[StreamEvent]) -> None:
    """Exactly one Done, last; every ToolCallStart closed by one ToolCallEnd; deltas inside their call."""
    dones = [e for e in events if isinstance(e, Done)]
    assert len(dones) == 1, f"expected exactly one Done, got {len(dones)}"
    assert isinstance(events[-1], Done), "Done must be the last event"
    open_calls: set[int] = set()
    ended: set[int] = set()
    for event in events:
        if isinstance(event, ToolCallStart):
            assert event.index not in open_calls and event.index not in ended, f"call {event.index} restarted"
            open_calls.add(event.index)
        elif isinstance(event, ToolCallDelta):
            assert event.index in open_calls, f"delta for call {event.index} outside its start/end"
        elif isinstance(event, ToolCallEnd):
            assert event.index in open_calls, f"end for call {event.index} that is not open"
            open_calls.remove(event.index)
            ended.add(event.index)
    assert not open_calls, f"calls never ended: {sorted(open_calls)}"


def decode_transcript(dialect: Dialect, t: Transcript, pieces: list[bytes] | None = None) -> ChatResponse:
    """Decode a transcript the way a provider would: error body, stream, or non-stream body."""
    if t.status >= 400:
        error = dialect.decode_error(t.status, {}, t.wire)
        return ChatResponse(error=error, finish_reason=fold([]).finish_reason)
    if t.is_stream:
        events = feed_all(dialect.stream_decoder, pieces if pieces is not None else [t.wire])
        check_stream_laws(events)
        return fold(events)
    return dialect.decode_body(t.wire)


def assert_matches_expected(response: ChatResponse, t: Transcript) -> None:
    exp = t.expected
    where = t.name
    if t.status >= 400:
        assert response.error is not None, where
        assert response.error.kind == exp["error"]["kind"], (where, response.error)
        assert response.error.status == exp["error"]["status"], (where, response.error.status)
        return
    assert response.text == exp["text"], where
    assert response.reasoning == (exp.get("reasoning") or ""), where
    if "refusal" in exp:
        assert response.refusal == exp["refusal"], where
    got_calls = [
        {"id": c.id, "name": c.name, "arguments": None if c.arguments is None else dict(c.arguments)}
        for c in response.tool_calls
    ]
    want_calls = [{"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in exp["tool_calls"]]
    assert got_calls == want_calls, where
    for call, want in zip(response.tool_calls, exp["tool_calls"], strict=True):
        if want.get("arguments") is None and "arguments_raw" in want:
            assert call.arguments_raw == want["arguments_raw"], where
    assert response.finish_reason.value == exp["finish_reason"], (where, response.finish_reason)
    assert response.finish_reason_raw == exp["finish_reason_raw"], (where, response.finish_reason_raw)
    if exp["usage"] is None:
        assert response.usage is None or (
            response.usage.input_tokens is None and response.usage.output_tokens is None
        ), where
    else:
        assert response.usage is not None, where
        assert response.usage.input_tokens == exp["usage"]["input_tokens"], where
        assert response.usage.output_tokens == exp["usage"]["output_tokens"], where
    if exp["error"] is None:
        assert response.error is None, (where, response.error)
    else:
        assert response.error is not None, where
        assert response.error.kind == exp["error"]["kind"], (where, response.error)
        assert response.error.status == exp["error"]["status"], (where, response.error.status)
    if response.error is not None and not isinstance(response.error, ProtocolError):
        assert response.finish_reason.value == "error"
