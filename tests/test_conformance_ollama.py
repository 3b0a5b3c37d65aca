"""Every Ollama transcript decodes to its expected value: whole, one byte at a time, and at random split
points (hypothesis). The decoder follows the transcript's ``endpoint`` (``/api/chat`` or ``/api/generate``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import FinishReason, ModelNotFoundError
from llmrelay.wire.ollama import OllamaDialect

from wire_helpers import (
    Transcript,
    assert_matches_expected,
    decode_transcript,
    split_at,
    split_bytes,
    transcripts,
)

CASES = transcripts(["ollama"])


def dialect_for(t: Transcript) -> OllamaDialect:
    endpoint = str(t.meta["endpoint"])
    assert endpoint in ("/api/chat", "/api/generate"), endpoint
    return OllamaDialect(endpoint="generate" if endpoint == "/api/generate" else "chat")


def test_the_corpus_has_every_ollama_transcript() -> None:
    assert len(CASES) == 5
    assert {str(t.meta["endpoint"]) for t in CASES} == {"/api/chat", "/api/generate"}


@pytest.mark.parametrize("t", CASES, ids=lambda t: t.name)
def test_whole(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(dialect_for(t), t), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
def test_byte_by_byte(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(dialect_for(t), t, split_bytes(t.wire)), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.integers(min_value=1, max_value=30_000), max_size=40))
def test_random_splits(t: Transcript, points: list[int]) -> None:
    cuts = [p % max(1, len(t.wire)) for p in points]
    assert_matches_expected(decode_transcript(dialect_for(t), t, split_at(t.wire, cuts)), t)


@pytest.mark.parametrize("t", [t for t in CASES if t.is_stream], ids=lambda t: t.name)
def test_trailing_garbage_after_the_end_is_ignored(t: Transcript) -> None:
    assert_matches_expected(decode_transcript(dialect_for(t), t, [t.wire, b"not json at all\n"]), t)


def test_missing_model_is_model_not_found() -> None:
    t = next(t for t in CASES if t.status == 404)
    error = dialect_for(t).decode_error(t.status, {}, t.wire)
    assert isinstance(error, ModelNotFoundError)
    assert error.kind == "model_not_found" and error.status == 404


def test_the_tool_call_transcript_calls_without_an_id() -> None:
    """The docs' call has no id: it gets the synthetic one, and the turn is a tool-call turn although
    Ollama says ``stop`` (issue 7, items 7 and 16d)."""
    t = next(t for t in CASES if t.expected["tool_calls"])
    assert b'"id"' not in t.wire
    response = decode_transcript(dialect_for(t), t)
    assert response.tool_calls[0].id == "llmrelay_call_0"
    assert response.tool_calls[0].arguments_raw == '{"city": "Tokyo"}'
    assert response.finish_reason is FinishReason.TOOL_CALLS and response.finish_reason_raw == "stop"
