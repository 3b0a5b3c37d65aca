"""Folding a stream equals decoding the matching non-stream body (one accumulator for both)."""

from __future__ import annotations

import dataclasses

import pytest

from llmrelay import ChatResponse, fold
from llmrelay.testing.openai_kit import KIT
from llmrelay.testing.upstream import Reply
from llmrelay.wire.openai_chat import OpenAIChatStreamDecoder, decode_body

from wire_helpers import check_stream_laws, feed_all


def _body(reply: Reply) -> bytes:
    return b"".join(reply.chunks)


def _strip(response: ChatResponse) -> ChatResponse:
    return dataclasses.replace(response, model=None)


SCENARIOS = {
    "text": lambda stream: KIT.text("Hello there, world", stream=stream, usage=(12, 4)),
    "tools": lambda stream: KIT.tool_calls(
        [("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_time", {"tz": "CET", "n": [1, 2]})],
        stream=stream,
    ),
    "reasoning": lambda stream: KIT.reasoning("Let me think.", "42", stream=stream),
    "length": lambda stream: KIT.length("cut he", stream=stream),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fold_of_stream_equals_body_decode(name: str) -> None:
    make = SCENARIOS[name]
    events = feed_all(OpenAIChatStreamDecoder, [_body(make(True))])
    check_stream_laws(events)
    assert _strip(fold(events)) == _strip(decode_body(_body(make(False))))
