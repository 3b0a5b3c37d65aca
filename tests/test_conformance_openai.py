"""Every OpenAI-family transcript decodes to its expected value: whole, one byte at a time, and at
random split points (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.wire.openai_chat import OpenAIChatDialect

from wire_helpers import (
    Transcript,
    assert_matches_expected,
    decode_transcript,
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
