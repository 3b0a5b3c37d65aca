"""Every Gemini transcript decodes to its expected value: whole, one byte at a time, and at random split
points (hypothesis); the decoder never raises on arbitrary bytes; folding a stream equals decoding the
matching non-stream body."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import ChatResponse, Done, ProtocolError, fold
from llmrelay.testing.gemini_kit import KIT
from llmrelay.testing.upstream import Reply
from llmrelay.wire.gemini import GeminiDialect, GeminiStreamDecoder, decode_body

from wire_helpers import (
    Transcript,
    assert_matches_expected,
    check_stream_laws,
    decode_transcript,
    feed_all,
    split_at,
    split_bytes,
    transcripts,
)

CASES = transcripts(["gemini"])
DIALECT = GeminiDialect()


def test_the_corpus_has_every_gemini_transcript() -> None:
    assert len(CASES) == 7


@pytest.mark.parametrize("t", CASES, ids=lambda t: t.name)
def test_whole(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(DIALECT, t), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
def test_byte_by_byte(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(DIALECT, t, split_bytes(t.wire)), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.integers(min_value=1, max_value=30_000), max_size=40))
def test_random_splits(t: Transcript, points: list[int]) -> None:
    cuts = [p % max(1, len(t.wire)) for p in points]
    assert_matches_expected(decode_transcript(DIALECT, t, split_at(t.wire, cuts)), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
def test_every_truncation_obeys_the_laws(t: Transcript) -> None:
    """Cut anywhere: the laws hold, and a stream cut before its finishReason is never a success."""
    step = max(1, len(t.wire) // 60)
    for cut in range(0, len(t.wire), step):
        events = feed_all(GeminiStreamDecoder, [t.wire[:cut]])
        check_stream_laws(events)
        done = events[-1]
        assert isinstance(done, Done)
        if b"finishReason" not in t.wire[:cut]:
            assert isinstance(done.error, ProtocolError), (cut, done)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400), pieces=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_arbitrary_bytes_decode_or_fail_cleanly(data: bytes, pieces: list[int]) -> None:
    events = feed_all(GeminiStreamDecoder, split_at(b"data: " + data, pieces))
    check_stream_laws(events)


_JSONISH = st.sampled_from(
    [
        b'data: {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}\r\n\r\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "willContinue": true}}]}}]}\n\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {"partialArgs": '
        b'[{"jsonPath": "$.a[1].b", "stringValue": "x", "willContinue": true}]}}]}}]}\n\n',
        b'data: {"candidates": [{"content": {"parts": [{"functionCall": {}}]}, "finishReason": "STOP"}]}\n\n',
        b'data: {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}\n\n',
        b'data: {"promptFeedback": {"blockReason": "SAFETY"}}\n\n',
        b'{\n  "error": {"code": 503, "status": "UNAVAILABLE"}\n}\n',
        b'data: {"candidates": [{"content": {"parts": [{"thought": true, "text": "t", "thoughtSignature": "s"}]}}]}'
        b"\n\n",
        b"data: [1, 2]\n\n",
        b"data: {\n\n",
        b"garbage: line\n",
        b"[\n",
    ]
)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(_JSONISH, max_size=8), seed_cuts=st.lists(st.integers(min_value=1, max_value=500), max_size=6))
def test_shuffled_frames_obey_the_laws(frames: list[bytes], seed_cuts: list[int]) -> None:
    wire = b"".join(frames)
    events = feed_all(GeminiStreamDecoder, split_at(wire, [c % max(1, len(wire)) for c in seed_cuts]))
    check_stream_laws(events)
    whole = feed_all(GeminiStreamDecoder, [wire])
    assert _comparable(fold(events)) == _comparable(fold(whole))


def _comparable(response: ChatResponse) -> tuple[ChatResponse, object]:
    error = response.error
    return dataclasses.replace(response, error=None), (type(error), str(error)) if error else None


# --- fold(stream) == decode(body) -----------------------------------------------------------------------


def _wire(reply: Reply) -> bytes:
    return b"".join(reply.chunks)


def _strip(response: ChatResponse) -> ChatResponse:
    return dataclasses.replace(response, model=None)


SCENARIOS = {
    "text": lambda stream: KIT.text("Hello there, wörld", stream=stream, usage=(12, 4)),
    "tools": lambda stream: KIT.tool_calls(
        [(None, "get_weather", {"city": "Paris"}), ("call-2", "get_time", {"tz": "CET", "n": [1, 2]})], stream=stream
    ),
    "reasoning": lambda stream: KIT.reasoning("Let me think.", "42", stream=stream),
    "length": lambda stream: KIT.length("cut he", stream=stream),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fold_of_stream_equals_body_decode(name: str) -> None:
    make = SCENARIOS[name]
    events = feed_all(GeminiStreamDecoder, [_wire(make(True))])
    check_stream_laws(events)
    assert _strip(fold(events)) == _strip(decode_body(_wire(make(False))))


def test_fold_of_recorded_stream_equals_an_equivalent_body() -> None:
    """The recorded text stream against the non-stream body with the same content."""
    t = next(t for t in CASES if t.name == "gemini_stream_text")
    streamed = fold(feed_all(GeminiStreamDecoder, [t.wire]))
    body = (
        b'{"candidates": [{"content": {"parts": [{"text": "The capital of France is Paris.\\n"}], "role": "model"},'
        b' "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 13,'
        b' "candidatesTokenCount": 8, "totalTokenCount": 21}, "modelVersion": "gemini-2.0-flash-exp"}'
    )
    assert decode_body(body) == streamed
