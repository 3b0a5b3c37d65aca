"""The event-stream decoder against the WHATWG rules, whole, byte by byte, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.wire.ndjson import NdjsonDecoder, NdjsonError
from llmrelay.wire.sse import SseDecoder, SseEvent, SseLineTooLong, StrayLine
from llmrelay.wire.sse_stream import RawJson, SseFrames

from wire_helpers import split_at, split_bytes


def decode(data: bytes, pieces: list[bytes] | None = None) -> list[SseEvent]:
    d = SseDecoder()
    out: list[SseEvent] = []
    for piece in pieces if pieces is not None else [data]:
        out.extend(d.feed(piece))
    out.extend(d.close())
    return out


def all_ways(data: bytes) -> list[SseEvent]:
    whole = decode(data)
    assert decode(data, split_bytes(data)) == whole
    for step in (2, 3, 5, 7):
        assert decode(data, split_at(data, list(range(step, len(data), step)))) == whole
    return whole


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    data = eol.join([b"data: a", b"", b"data: b", b"", b""])
    assert [e.data for e in all_ways(data)] == ["a", "b"]


def test_mixed_line_endings_and_crlf_split_across_reads() -> None:
    data = b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n"
    assert [e.data for e in all_ways(data)] == ["a", "b", "c", "d"]
    assert decode(data, [b"data: a\r", b"\n\r", b"\ndata: b\n\n"])[:2] == [SseEvent("a"), SseEvent("b")]


def test_comments_and_keepalives_are_ignored() -> None:
    data = b": keep-alive\n\n:\n: OPENROUTER PROCESSING\n\ndata: x\n\n"
    assert [e.data for e in all_ways(data)] == ["x"]


def test_multi_line_data_joined_with_lf() -> None:
    assert all_ways(b"data: line1\ndata: line2\ndata\ndata:x\n\n")[0].data == "line1\nline2\n\nx"


def test_event_id_retry_fields() -> None:
    events = all_ways(b"event: error\nid: 7\nretry: 1500\ndata: {}\n\nretry: x1\ndata: y\n\n")
    assert events[0] == SseEvent(data="{}", event="error", id="7", retry=1500)
    # the type resets after dispatch; id and a valid retry persist; an invalid retry is ignored
    assert events[1] == SseEvent(data="y", event="message", id="7", retry=1500)


def test_id_with_nul_is_ignored() -> None:
    assert all_ways(b"id: a\x00b\ndata: z\n\n")[0].id == ""


def test_only_one_leading_space_is_stripped_and_no_colon_means_empty_value() -> None:
    events = all_ways(b"data:  two spaces\n\nevent\ndata: v\n\n")
    assert events[0].data == " two spaces"
    assert events[1].event == "message"


def test_event_without_data_is_not_dispatched() -> None:
    assert all_ways(b"event: ping\n\nid: 3\n\ndata: real\n\n") == [SseEvent("real", id="3")]


def test_bom_is_stripped_once_even_when_split() -> None:
    data = b"\xef\xbb\xbfdata: a\n\n"
    assert all_ways(data) == [SseEvent("a")]
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []  # a second BOM is part of the field name


def test_utf8_split_across_reads() -> None:
    data = "data: 你好😊°\n\n".encode()
    assert all_ways(data)[0].data == "你好😊°"


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\xfe\n\n")[0].data == "\ufffd\ufffd"


def test_unterminated_event_is_discarded_at_close() -> None:
    d = SseDecoder()
    assert d.feed(b"data: a\n\ndata: partial") == [SseEvent("a")]
    assert d.close() == []
    assert d.discarded_partial


def test_very_long_event_in_many_small_reads() -> None:
    payload = b"x" * 2_000_000
    d = SseDecoder()
    out = []
    out += d.feed(b"data: ")
    for i in range(0, len(payload), 1000):
        out += d.feed(payload[i : i + 1000])
    out += d.feed(b"\n\n")
    assert len(out) == 1 and len(out[0].data) == 2_000_000


def test_line_length_limit() -> None:
    d = SseDecoder(max_line=100)
    with pytest.raises(SseLineTooLong):
        d.feed(b"data: " + b"x" * 200)


def test_stray_lines_are_kept_when_asked() -> None:
    d = SseDecoder(keep_stray_lines=True)
    assert d.feed(b'data: a\n\n{\n  "error": {}\n}\ndata: b\n\n') == [SseEvent("a"), SseEvent("b")]
    assert d.stray_lines == [StrayLine("{", 1), StrayLine('  "error": {}', 1), StrayLine("}", 1)]


def test_a_long_line_keeps_the_events_before_it() -> None:
    d = SseDecoder(max_line=100)
    with pytest.raises(SseLineTooLong) as info:
        d.feed(b"data: a\n\ndata: " + b"x" * 200)
    assert info.value.events == [SseEvent("a")]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_fuzz_split_invariance(data: bytes, cuts: list[int]) -> None:
    assert decode(data, split_at(data, cuts)) == decode(data)


def test_frames_keep_raw_json_in_wire_order() -> None:
    f = SseFrames()
    wire = b'data: a\n\n{"error": {"code": 503}}\ndata: b\n\n{\n  "x": [1,\n 2]\n}\n'
    assert f.feed(wire) == [
        SseEvent("a"),
        RawJson({"error": {"code": 503}}, '{"error": {"code": 503}}'),
        SseEvent("b"),
        RawJson({"x": [1, 2]}, '{\n  "x": [1,\n 2]\n}'),
    ]
    assert not f.in_raw_json


_FRAME_LINES = st.sampled_from(
    [
        b"data: a\n",
        b'data: {"x": 1}\n',
        b"\n",
        b"\r\n",
        b'{"error": {"code": 1}}\n',
        b"{\n",
        b'  "k": [1,\n',
        b"  2]\n",
        b"}\n",
        b"[1]\r",
        b"junk: x\n",
        b"event: e\n",
        b": comment\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_FRAME_LINES, max_size=20), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_fuzz_frames_are_split_invariant(lines: list[bytes], cuts: list[int]) -> None:
    """SSE events and raw JSON come out in the same order however the bytes are split."""
    data = b"".join(lines)

    def frames(pieces: list[bytes]) -> list[object]:
        f = SseFrames()
        return [x for p in pieces for x in f.feed(p)] + list(f.close())

    assert frames(split_at(data, cuts)) == frames([data])


def test_ndjson_replaces_invalid_utf8() -> None:
    assert NdjsonDecoder().feed(b'{"a": "caf\xc3"}\n') == [{"a": "caf\ufffd"}]


def test_ndjson_lines_splits_and_errors() -> None:
    data = b'{"a": 1}\r\n\n{"b": "\xc3\xa9"}\n{"c": 3}'
    for pieces in ([data], split_bytes(data)):
        d = NdjsonDecoder()
        out = [v for p in pieces for v in d.feed(p)] + d.close()
        assert out == [{"a": 1}, {"b": "é"}, {"c": 3}]
    with pytest.raises(NdjsonError, match="line 2"):
        NdjsonDecoder().feed(b'{"a":1}\nnot json\n')
