"""Every OpenAI-family transcript decodes to its expected value: whole, one byte at a time, and at
random split points (hypothesis); without its ``[DONE]`` it decodes the same, and cut before its finish
chunk it is a truncation."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import Done, ProtocolError
from llmrelay.wire.openai_chat import OpenAIChatDialect, OpenAIChatStreamDecoder

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

OPENAI_FAMILY = ("openai", "azure", "groq", "deepseek", "dashscope", "openrouter", "vllm", "llamacpp")
CASES = transcripts(OPENAI_FAMILY)
DIALECT = OpenAIChatDialect()


def test_the_corpus_has_every_openai_family_transcript() -> None:
    assert len(CASES) == 17
    assert {t.provider for t in CASES} == set(OPENAI_FAMILY)


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


COMPLETE = [t for t in CASES if t.is_stream and b"data: [DONE]" in t.wire and t.expected["error"] is None]
_FINISH = re.compile(rb'"finish_reason":\s*"')


@pytest.mark.parametrize("t", COMPLETE, ids=lambda t: t.name)
def test_without_the_done_marker_the_answer_is_the_same(t: Transcript) -> None:
    """Issue 7, item 10: a stream whose finish chunk arrived is complete, [DONE] or not."""
    cut = dataclasses.replace(t, wire=t.wire[: t.wire.rindex(b"data: [DONE]")])
    assert_matches_expected(decode_transcript(DIALECT, cut), t)
    assert_matches_expected(decode_transcript(DIALECT, cut, split_bytes(cut.wire)), t)


@pytest.mark.parametrize("t", COMPLETE, ids=lambda t: t.name)
def test_cut_before_the_finish_chunk_is_a_truncation(t: Transcript) -> None:
    finish = _FINISH.search(t.wire)
    assert finish is not None
    end = t.wire.index(b"\n\n", finish.start())  # the finish event is dispatched by this blank line
    for cut in range(0, end + 1, max(1, end // 30)):
        events = feed_all(OpenAIChatStreamDecoder, [t.wire[:cut]])
        check_stream_laws(events)
        done = events[-1]
        assert isinstance(done, Done) and isinstance(done.error, ProtocolError), (t.name, cut)
