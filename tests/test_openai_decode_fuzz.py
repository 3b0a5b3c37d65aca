"""Arbitrary bytes into the OpenAI stream decoder produce events or a ProtocolError, nothing else, and
always obey the stream laws."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import Done, LlmError, ProtocolError
from llmrelay.wire.openai_chat import OpenAIChatStreamDecoder, events_from_body

from wire_helpers import check_stream_laws, feed_all

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "content",
                    "tool_calls",
                    "index",
                    "id",
                    "function",
                    "name",
                    "arguments",
                    "finish_reason",
                    "usage",
                    "error",
                    "reasoning",
                    "refusal",
                    "prompt_tokens",
                    "code",
                    "message",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _check(events: list) -> None:  # type: ignore[type-arg]
    check_stream_laws(events)
    done = events[-1]
    assert isinstance(done, Done)
    if done.error is not None:
        assert isinstance(done.error, LlmError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 300), max_size=6))
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    from wire_helpers import split_at

    _check(feed_all(OpenAIChatStreamDecoder, split_at(data, cuts)))


def _finishes(chunk: object) -> bool:
    """Whether a chunk carries a finish reason for choice 0 (the end of the answer, ``[DONE]`` or not)."""
    if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
        return False
    return any(
        isinstance(c, dict)
        and c.get("index", 0) == 0
        and isinstance(c.get("finish_reason"), str)
        and c["finish_reason"]
        for c in chunk["choices"]
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=6), st.booleans())
def test_arbitrary_json_chunks(chunks: list[object], terminate: bool) -> None:
    wire = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
    if terminate:
        wire += b"data: [DONE]\n\n"
    events = feed_all(OpenAIChatStreamDecoder, [wire])
    _check(events)
    done = events[-1]
    assert isinstance(done, Done)
    if not terminate and done.error is None and not any(_finishes(c) for c in chunks):
        raise AssertionError("a stream without [DONE] and without a finish reason must end in an error")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_bodies(value: object) -> None:
    events = events_from_body(json.dumps(value).encode())
    _check(events)


def test_garbage_body_is_protocol_error() -> None:
    done = events_from_body(b"<html>")[-1]
    assert isinstance(done, Done) and isinstance(done.error, ProtocolError)
