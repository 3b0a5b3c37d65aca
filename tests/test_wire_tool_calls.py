"""Tool calls across dialects (issue 7): parallel calls that share ``index: 0`` (item 6), a wire index
reused after its call ended (item 11), and synthetic ids for calls that arrive without one, answered
back with ``Message.tool`` (item 16d). Decoders are fed whole and byte by byte, and a property test feeds
OpenAI-style fragments in any mix of index, id and name; the round trips go through real sockets against
a fake upstream on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import (
    ChatRequest,
    FinishReason,
    GeminiProvider,
    Message,
    OllamaProvider,
    OpenAIProvider,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolDef,
    fold,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.gemini_kit import KIT as GEMINI
from llmrelay.testing.ollama_kit import KIT as OLLAMA
from llmrelay.wire.anthropic import encode_request as anthropic_encode
from llmrelay.wire.call_ids import is_synthetic_call_id, synthetic_call_id, unique_synthetic_ids
from llmrelay.wire.cohere import CohereStreamDecoder
from llmrelay.wire.gemini import encode_request as gemini_encode
from llmrelay.wire.ollama import encode_request as ollama_encode
from llmrelay.wire.openai_chat import OpenAIChatStreamDecoder

from wire_helpers import check_stream_laws, feed_all, split_at, split_bytes

TOOLS = [
    ToolDef("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolDef("get_time", "Time", {"type": "object", "properties": {"tz": {"type": "string"}}}),
]


def sse(*chunks: Any) -> bytes:
    return b"".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call(cid: str | None, name: str | None, arguments: str, index: int | None = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "function": {"arguments": arguments}}
    if index is not None:
        out["index"] = index
    if cid is not None:
        out["id"] = cid
    if name is not None:
        out["function"]["name"] = name
    return out


def calls_of(wire: bytes, *, bytewise: bool = False) -> list[ToolCall]:
    events = feed_all(OpenAIChatStreamDecoder, split_bytes(wire) if bytewise else [wire])
    check_stream_laws(events)
    assert fold(events).error is None
    starts = [e.index for e in events if isinstance(e, ToolCallStart)]
    assert len(starts) == len(set(starts)), f"event indexes must be unique: {starts}"
    return list(fold(events).tool_calls)


# --- item 6: several calls on index 0 ---------------------------------------------------------------

# Ollama's OpenAI-compatible /v1 (and LiteLLM in front of it): every call whole, each in its own chunk, all
# with index 0 and their own id.
OLLAMA_V1 = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"tool_calls": [call("call_a1", "get_weather", '{"city":"Oslo"}')]}),
    chunk({"tool_calls": [call("call_b2", "get_time", '{"tz":"CET"}')]}),
    chunk({}, "tool_calls"),
    "[DONE]",
)
# LiteLLM streaming: the first fragment of each call has its id and name, later ones repeat the id.
LITELLM = sse(
    chunk({"tool_calls": [call("call_a1", "get_weather", "")]}),
    chunk({"tool_calls": [call("call_a1", None, '{"city":')]}),
    chunk({"tool_calls": [call("call_a1", None, '"Oslo"}')]}),
    chunk({"tool_calls": [call("call_b2", "get_time", '{"tz":')]}),
    chunk({"tool_calls": [call(None, None, '"CET"}')]}),
    chunk({}, "tool_calls"),
    "[DONE]",
)
# Both calls in one chunk's list, both index 0.
ONE_CHUNK = sse(
    chunk({"tool_calls": [call("call_a1", "get_weather", '{"city":"Oslo"}'), call("call_b2", "get_time", "{}")]}),
    chunk({}, "tool_calls"),
    "[DONE]",
)


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytes"])
@pytest.mark.parametrize(
    ("wire", "second_args"),
    [(OLLAMA_V1, {"tz": "CET"}), (LITELLM, {"tz": "CET"}), (ONE_CHUNK, {})],
    ids=["ollama-v1", "litellm", "one-chunk"],
)
def test_a_new_id_on_an_open_index_starts_a_new_call(wire: bytes, second_args: Any, bytewise: bool) -> None:
    calls = calls_of(wire, bytewise=bytewise)
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_a1", "get_weather", {"city": "Oslo"}),
        ("call_b2", "get_time", second_args),
    ]


def test_the_same_id_repeated_on_every_fragment_is_one_call() -> None:
    wire = sse(
        chunk({"tool_calls": [call("call_a1", "get_weather", '{"ci')]}),
        chunk({"tool_calls": [call("call_a1", "get_weather", 'ty":"Oslo"}')]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    assert [(c.id, c.arguments) for c in calls_of(wire)] == [("call_a1", {"city": "Oslo"})]


def test_fragments_after_a_call_ended_do_not_restart_it() -> None:
    wire = sse(
        chunk({"tool_calls": [call("call_a1", "get_weather", '{"city":"Oslo"}')]}),
        chunk({}, "tool_calls"),
        chunk({"tool_calls": [call(None, None, "garbage")]}),
        "[DONE]",
    )
    assert [(c.id, c.arguments) for c in calls_of(wire)] == [("call_a1", {"city": "Oslo"})]


async def test_parallel_calls_on_index_zero_end_to_end(upstream: FakeUpstream) -> None:
    upstream.add(Reply.raw(OLLAMA_V1, content_type="text/event-stream"))
    async with (
        OpenAIProvider("qwen3", base_url=upstream.url("/v1"), api_key="ollama") as p,
        p.chat_stream(ChatRequest(messages=[Message.user("both")], tools=TOOLS)) as stream,
    ):
        events = [e async for e in stream]
    check_stream_laws(events)
    response = stream.response()
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_time"]
    assert response.finish_reason is FinishReason.TOOL_CALLS


# --- item 11: a Cohere index reused after its call ended ---------------------------------------------


def test_cohere_index_reused_after_its_call_ended_is_a_new_call() -> None:
    """The case hypothesis found: tool-call-start (no index) -> tool-call-end -> tool-call-start index 0."""
    start = {"type": "tool-call-start", "delta": {"message": {"tool_calls": {"id": "a", "function": {"name": "f"}}}}}
    wire = sse(
        start,
        {"type": "tool-call-end"},
        {**start, "index": 0, "delta": {"message": {"tool_calls": {"id": "b", "function": {"name": "g"}}}}},
        {"type": "tool-call-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL"}},
    )
    for pieces in ([wire], split_bytes(wire)):
        events = feed_all(CohereStreamDecoder, pieces)
        check_stream_laws(events)
        assert [(c.id, c.name) for c in fold(events).tool_calls] == [("a", "f"), ("b", "g")]


# --- item 16d: synthetic ids --------------------------------------------------------------------------


def test_synthetic_ids_are_recognisable_and_deterministic() -> None:
    assert synthetic_call_id(0) == "llmrelay_call_0" == synthetic_call_id(0)
    assert is_synthetic_call_id(synthetic_call_id(12))
    for real in ("call_12345678", "toolu_01A", "llmrelay_call_x", "", None):
        assert not is_synthetic_call_id(real)


def test_openai_compatible_calls_without_ids_get_synthetic_ids() -> None:
    wire = sse(
        chunk({"tool_calls": [call(None, "get_weather", '{"city":"Oslo"}', index=0)]}),
        chunk({"tool_calls": [call(None, "get_time", "{}", index=1)]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    )
    assert [c.id for c in calls_of(wire)] == ["llmrelay_call_0", "llmrelay_call_1"]


async def test_gemini_calls_without_ids_are_answered_by_their_synthetic_id(upstream: FakeUpstream) -> None:
    upstream.add(GEMINI.tool_calls([(None, "get_weather", {"city": "Oslo"}), (None, "get_time", {})], stream=True))
    upstream.add(GEMINI.text("Done.", stream=False))
    request = ChatRequest(messages=[Message.user("both")], tools=TOOLS)
    async with GeminiProvider("gemini-2.5-flash", base_url=upstream.url(), api_key="AIza-test-0000") as p:
        async with p.chat_stream(request) as stream:
            first = await stream.until_done()
        assert [c.id for c in first.tool_calls] == ["llmrelay_call_0", "llmrelay_call_1"]
        assert first.finish_reason is FinishReason.TOOL_CALLS and first.finish_reason_raw == "STOP"
        # No name= given: the encoder finds each function's name by the synthetic id.
        answers = [Message.tool(c.id or "", f"result {c.name}") for c in reversed(first.tool_calls)]
        second = await p.chat(ChatRequest(messages=[*request.messages, first.message, *answers], tools=TOOLS))
    assert second.text == "Done."
    contents = upstream.requests[1].json["contents"]
    sent_calls = [p["functionCall"] for p in contents[1]["parts"] if "functionCall" in p]
    assert sent_calls == [{"name": "get_weather", "args": {"city": "Oslo"}}, {"name": "get_time", "args": {}}]
    results = [p["functionResponse"] for p in contents[2]["parts"]]
    assert results == [
        {"name": "get_time", "response": {"output": "result get_time"}},
        {"name": "get_weather", "response": {"output": "result get_weather"}},
    ]


async def test_ollama_calls_without_ids_are_answered_by_their_synthetic_id(upstream: FakeUpstream) -> None:
    upstream.add(OLLAMA.tool_calls([(None, "get_weather", {"city": "Oslo"})], stream=True))
    upstream.add(OLLAMA.text("Sunny.", stream=False))
    request = ChatRequest(messages=[Message.user("weather?")], tools=TOOLS)
    async with OllamaProvider("qwen3:8b", base_url=upstream.url(), api_key_env=None) as p:
        async with p.chat_stream(request) as stream:
            first = await stream.until_done()
        (only,) = first.tool_calls
        assert only.id == "llmrelay_call_0"
        assert first.finish_reason is FinishReason.TOOL_CALLS and first.finish_reason_raw == "stop"
        second = await p.chat(
            ChatRequest(messages=[*request.messages, first.message, Message.tool(only.id, "sunny")], tools=TOOLS)
        )
    assert second.text == "Sunny."
    sent = upstream.requests[1].json["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_a_synthetic_id_names_the_call_of_the_most_recent_turn() -> None:
    """Synthetic ids repeat from turn to turn; a result answers the call of the turn before it."""
    turn1 = Message.assistant(tool_calls=[ToolCall.create("get_weather", {"city": "Oslo"}, id="llmrelay_call_0")])
    turn2 = Message.assistant(tool_calls=[ToolCall.create("get_time", {"tz": "CET"}, id="llmrelay_call_0")])
    messages = [
        Message.user("q"),
        turn1,
        Message.tool("llmrelay_call_0", "sunny"),
        turn2,
        Message.tool("llmrelay_call_0", "noon"),
    ]
    _, gemini_body, _ = gemini_encode(ChatRequest(messages=messages), model="m", stream=False)
    names = [
        p["functionResponse"]["name"] for t in gemini_body["contents"] for p in t["parts"] if "functionResponse" in p
    ]
    assert names == ["get_weather", "get_time"]
    _, ollama_body, _ = ollama_encode(ChatRequest(messages=messages), model="m", stream=False)
    assert [m.get("tool_name") for m in ollama_body["messages"] if m["role"] == "tool"] == ["get_weather", "get_time"]


def test_synthetic_ids_repeated_across_turns_are_made_unique_for_anthropic() -> None:
    """A conversation that began on Gemini (llmrelay_call_0 in every turn) continued on Anthropic, which
    rejects a request whose tool_use ids repeat."""
    turn1 = Message.assistant(tool_calls=[ToolCall.create("get_weather", {"city": "Oslo"}, id="llmrelay_call_0")])
    turn2 = Message.assistant(tool_calls=[ToolCall.create("get_time", {"tz": "CET"}, id="llmrelay_call_0")])
    messages = [
        Message.user("q"),
        turn1,
        Message.tool("llmrelay_call_0", "sunny"),
        turn2,
        Message.tool("llmrelay_call_0", "noon"),
        Message.user("and?"),
    ]
    body, _, _ = anthropic_encode(ChatRequest(messages=messages, max_tokens=10), model="m", stream=False)
    blocks = [b for turn in body["messages"] if isinstance(turn["content"], list) for b in turn["content"]]
    uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
    assert uses == results == ["llmrelay_call_0", "llmrelay_call_0_t3"]
    single = [Message.user("q"), turn1, Message.tool("llmrelay_call_0", "sunny")]
    assert unique_synthetic_ids(single) is single


def test_real_ids_are_still_sent_back() -> None:
    real = Message.assistant(tool_calls=[ToolCall.create("get_weather", {"city": "Oslo"}, id="call_x1")])
    messages = [Message.user("q"), real, Message.tool("call_x1", "sunny")]
    _, gemini_body, _ = gemini_encode(ChatRequest(messages=messages), model="m", stream=False)
    assert gemini_body["contents"][1]["parts"][0]["functionCall"]["id"] == "call_x1"
    assert gemini_body["contents"][2]["parts"][0]["functionResponse"]["id"] == "call_x1"
    _, ollama_body, _ = ollama_encode(ChatRequest(messages=messages), model="m", stream=False)
    assert ollama_body["messages"][1]["tool_calls"][0]["id"] == "call_x1"
    assert ollama_body["messages"][2]["tool_call_id"] == "call_x1"


# --- property: any mix of index, id and name ----------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(["a", "é", "😀", "\ud83d", "\ude00", "\udbff", '"', "{", "}"]), max_size=6)
_FRAGMENT = st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(0, 2),
        "id": st.sampled_from(["call_a", "call_b", "call_c"]),
        "name": st.sampled_from(["f", "g"]),
        "arguments": _TEXT,
    },
)


def _fragment_chunk(fragment: dict[str, Any]) -> bytes:
    function = {k: fragment[k] for k in ("name", "arguments") if k in fragment}
    call = {k: fragment[k] for k in ("index", "id") if k in fragment} | {"function": function}
    payload = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    return f"data: {json.dumps(payload)}\n\n".encode()


def _encodable(events: list[StreamEvent]) -> None:
    for event in events:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            event.text.encode("utf-8")
        elif isinstance(event, ToolCallDelta):
            event.arguments_delta.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(
    fragments=st.lists(_FRAGMENT, max_size=10),
    finish=st.booleans(),
    cuts=st.lists(st.integers(1, 2_000), max_size=6),
)
def test_tool_call_fragments_obey_the_laws(fragments: list[dict[str, Any]], finish: bool, cuts: list[int]) -> None:
    wire = b"".join(_fragment_chunk(f) for f in fragments)
    if finish:
        wire += b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}\n\n'
    whole = feed_all(OpenAIChatStreamDecoder, [wire])
    split = feed_all(OpenAIChatStreamDecoder, split_at(wire, [c % max(1, len(wire)) for c in cuts]))
    for events in (whole, split):
        check_stream_laws(events)
        _encodable(events)
        starts = [e.index for e in events if isinstance(e, ToolCallStart)]
        assert len(starts) == len(set(starts)), starts
    assert fold(whole).tool_calls == fold(split).tool_calls
    assert (fold(whole).error is None) == finish
