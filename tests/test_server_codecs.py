"""The server halves of the OpenAI and Anthropic dialects, proved against the client halves.

- stream: random event sequences (text, reasoning with signatures, redacted reasoning, several tool calls
  with fragmented arguments, usage, every finish reason, an error end) -> server stream encoder -> client
  stream decoder, fed whole and at random split points -> the same events, after ``expected_*``, which
  applies exactly the normalisations each encoder's module docstring lists;
- non-stream: ``ChatResponse`` -> ``encode_response`` -> the client's ``decode_body`` -> the same response;
- requests: ``ChatRequest`` -> client encoder -> server ``decode_request`` -> the same request, normalised
  where the client encoder itself reshapes it (``canonical_*``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay import (
    ChatRequest,
    ChatResponse,
    Done,
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
    LlmError,
    Message,
    ReasoningDelta,
    ReasoningPart,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolDef,
    Usage,
    fold,
)
from llmrelay.wire.anthropic import AnthropicDialect, AnthropicServer
from llmrelay.wire.anthropic.maps import map_finish_reason as anthropic_finish
from llmrelay.wire.anthropic.serve_encode import stop_out
from llmrelay.wire.call_ids import synthetic_call_id
from llmrelay.wire.openai_chat import OpenAIChatDialect, OpenAIChatServer
from llmrelay.wire.openai_chat.maps import map_finish_reason as openai_finish
from llmrelay.wire.openai_chat.serve_encode import finish_out
from llmrelay.wire.stream_state import parse_arguments

from wire_helpers import check_stream_laws, feed_all, split_at

OPENAI, ANTHROPIC = OpenAIChatServer(), AnthropicServer()
MODEL = "served-model-1"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- event sequences ------------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=12)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
json_args = st.dictionaries(
    names, st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8), max_size=4
)


@st.composite
def fragments(draw: st.DrawFn, raw: str) -> list[str]:
    """``raw`` cut at random points into non-empty pieces."""
    if not raw:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=4))))
    points = [0, *[c for c in cuts if 0 < c < len(raw)], len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(points)]


@st.composite
def tool_call(draw: st.DrawFn, index: int) -> list[StreamEvent]:
    call_id = draw(st.none() | st.from_regex(r"[A-Za-z0-9]{4,10}", fullmatch=True).map(f"call_{index}_".__add__))
    name = draw(names)
    raw = draw(st.sampled_from(["json", "empty", "cut"]))
    if raw == "json":
        text = json.dumps(draw(json_args))
    elif raw == "empty":
        text = ""
    else:  # a call cut by max_tokens in the middle of its arguments
        text = json.dumps(draw(json_args))[: draw(st.integers(1, 6))]
    wire_id = call_id or synthetic_call_id(index)
    pieces = draw(fragments(text))
    end = ToolCallEnd(index, ToolCall(wire_id, name, parse_arguments(text), text))
    return [ToolCallStart(index, wire_id, name), *[ToolCallDelta(index, p) for p in pieces], end]


@st.composite
def reasoning_block(draw: st.DrawFn) -> list[StreamEvent]:
    if draw(st.integers(0, 5)) == 0:
        return [ReasoningDelta("", redacted=draw(st.from_regex(r"[A-Za-z0-9+/]{4,16}=?", fullmatch=True)))]
    events: list[StreamEvent] = [ReasoningDelta(t) for t in draw(st.lists(texts, min_size=1, max_size=3))]
    if draw(st.booleans()):
        events.append(ReasoningDelta("", signature=draw(st.from_regex(r"[A-Za-z0-9+/]{8,20}", fullmatch=True))))
    return events


usages = st.builds(
    lambda read, write, uncached, out, reasoning: Usage(
        input_tokens=uncached + (read or 0) + (write or 0),
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=None if reasoning is None else min(reasoning, out),
    ),
    st.none() | st.integers(0, 500),
    st.none() | st.integers(0, 500),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.none() | st.integers(0, 500),
)

ENDS = [
    (FinishReason.STOP, "stop"),
    (FinishReason.STOP, "end_turn"),
    (FinishReason.STOP, "stop_sequence"),
    (FinishReason.LENGTH, "length"),
    (FinishReason.LENGTH, "max_tokens"),
    (FinishReason.LENGTH, "MAX_TOKENS"),
    (FinishReason.TOOL_CALLS, "tool_calls"),
    (FinishReason.CONTENT_FILTER, "content_filter"),
    (FinishReason.CONTENT_FILTER, "refusal"),
    (FinishReason.OTHER, "pause_turn"),
    (FinishReason.OTHER, None),
    (FinishReason.ERROR, "error"),
]


@st.composite
def streams(draw: st.DrawFn) -> list[StreamEvent]:
    """A sequence of non-interleaved blocks and one ``Done``, as a client decoder would produce it."""
    events: list[StreamEvent] = []
    calls = 0
    for kind in draw(st.lists(st.sampled_from(["text", "reasoning", "tool"]), max_size=6)):
        if kind == "text":
            events += [TextDelta(t) for t in draw(st.lists(texts, min_size=1, max_size=4))]
        elif kind == "reasoning":
            events += draw(reasoning_block())
        else:
            events += draw(tool_call(calls))
            calls += 1
    reason, raw = draw(st.sampled_from(ENDS))
    if reason is FinishReason.STOP and calls:
        reason = FinishReason.TOOL_CALLS  # what every decoder reports (StreamState)
    usage = draw(st.none() | usages)
    refusal = draw(st.none() | texts) if reason is not FinishReason.ERROR else None
    error = LlmError("the upstream broke off") if reason is FinishReason.ERROR else None
    events.append(Done(reason, raw, usage=usage, error=error, model="upstream-model", refusal=refusal))
    return events


# --- what each dialect gives back -----------------------------------------------------------------------


def _done_of(events: Sequence[StreamEvent]) -> Done:
    done = events[-1]
    assert isinstance(done, Done)
    return done


def _calls_made(events: Sequence[StreamEvent]) -> bool:
    return any(isinstance(e, ToolCallStart) for e in events)


def _reason(decode: Any, raw: str, events: Sequence[StreamEvent]) -> FinishReason:
    reason: FinishReason = decode(raw)
    return FinishReason.TOOL_CALLS if reason is FinishReason.STOP and _calls_made(events) else reason


def openai_usage(usage: Usage | None) -> Usage | None:
    """OpenAI has no cache-write count, and every count it sends is an integer."""
    if usage is None:
        return None
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


def anthropic_usage(usage: Usage | None) -> Usage:
    """Anthropic has no reasoning-token count, and its stream always carries usage (zeros when unknown)."""
    if usage is None:
        return Usage(input_tokens=0, output_tokens=0)
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def expected_openai(events: Sequence[StreamEvent], *, include_usage: bool) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    ends: list[ToolCallEnd] = []
    for event in events[:-1]:
        if isinstance(event, ReasoningDelta):
            if event.text:  # signatures and redacted reasoning cannot be said
                out.append(ReasoningDelta(event.text))
        elif isinstance(event, ToolCallEnd):
            ends.append(event)  # a call has no end marker: all end with the finish chunk, in index order
        else:
            out.append(event)
    out += sorted(ends, key=lambda e: e.index)
    done = _done_of(events)
    usage = openai_usage(done.usage) if include_usage else None
    if done.finish_reason is FinishReason.ERROR:
        # Every chunk names the model; an error before any chunk has none to name.
        model = MODEL if any(not isinstance(e, ToolCallEnd) for e in out) or usage is not None else None
        out.append(Done(FinishReason.ERROR, "error", usage=usage, model=model))
    else:
        raw = finish_out(done.finish_reason, done.finish_reason_raw)
        reason = _reason(openai_finish, raw, events)
        out.append(Done(reason, raw, usage=usage, model=MODEL, refusal=done.refusal))
    return out


def expected_anthropic(events: Sequence[StreamEvent]) -> list[StreamEvent]:
    out = list(events[:-1])
    done = _done_of(events)
    if done.finish_reason is FinishReason.ERROR:
        out.append(Done(FinishReason.ERROR, "error", usage=anthropic_usage(done.usage), model=MODEL))
        return out
    if done.refusal:
        out.append(TextDelta(done.refusal))  # Messages has no refusal field: it is text
    raw = stop_out(done.finish_reason, done.finish_reason_raw)
    out.append(Done(_reason(anthropic_finish, raw, events), raw, usage=anthropic_usage(done.usage), model=MODEL))
    return out


def _without_error(events: Sequence[StreamEvent]) -> tuple[list[StreamEvent], LlmError | None]:
    done = _done_of(events)
    return [*events[:-1], dataclasses.replace(done, error=None)], done.error


def encode_stream(server: Any, events: Sequence[StreamEvent], *, include_usage: bool = True) -> bytes:
    encoder = server.stream_encoder(model=MODEL, created=1_700_000_000, include_usage=include_usage)
    data = b"".join(encoder.encode(e) for e in events)
    assert encoder.finished
    assert encoder.encode(TextDelta("after the end")) == b""
    return data


def check_round_trip(
    decoder: Any, data: bytes, want: list[StreamEvent], cuts: list[int], error: LlmError | None
) -> None:
    for pieces in ([data], split_at(data, cuts)):
        got = feed_all(decoder, pieces)
        check_stream_laws(got)
        got_events, got_error = _without_error(got)
        if _done_of(got).finish_reason is FinishReason.ERROR:
            # The model of an OpenAI error chunk is not sent; the message always is.
            assert got_error is not None and error is not None
            assert error.message in got_error.message
        assert got_events == want


cut_points = st.lists(st.integers(1, 4000), max_size=12)


@PROPERTY
@given(streams(), cut_points, st.booleans())
def test_openai_stream_round_trip(events: list[StreamEvent], cuts: list[int], include_usage: bool) -> None:
    data = encode_stream(OPENAI, events, include_usage=include_usage)
    want = expected_openai(events, include_usage=include_usage)
    check_round_trip(OpenAIChatDialect().stream_decoder, data, want, cuts, _done_of(events).error)


@PROPERTY
@given(streams(), cut_points)
def test_anthropic_stream_round_trip(events: list[StreamEvent], cuts: list[int]) -> None:
    data = encode_stream(ANTHROPIC, events)
    check_round_trip(AnthropicDialect().stream_decoder, data, expected_anthropic(events), cuts, _done_of(events).error)


@st.composite
def interleaved(draw: st.DrawFn) -> list[StreamEvent]:
    """Parallel tool calls whose events interleave with each other and with text (OpenAI may send that)."""
    calls = [draw(tool_call(i)) for i in range(draw(st.integers(2, 4)))]
    lanes = [list(c) for c in calls] + [[TextDelta(t) for t in draw(st.lists(texts, max_size=3))]]
    events: list[StreamEvent] = []
    while any(lanes):
        lane = draw(st.sampled_from([lane for lane in lanes if lane]))
        events.append(lane.pop(0))
    events.append(Done(FinishReason.TOOL_CALLS, "tool_calls", usage=Usage(input_tokens=3, output_tokens=4)))
    return events


def _fragments(events: Sequence[StreamEvent]) -> dict[str | None, list[str]]:
    ids = {e.index: e.id for e in events if isinstance(e, ToolCallStart)}
    out: dict[str | None, list[str]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            out.setdefault(ids[event.index], []).append(event.arguments_delta)
    return out


def _by_id(events: Sequence[StreamEvent]) -> list[Any]:
    """The events before ``Done``, calls named by id instead of index, their ends left out."""
    ids = {e.index: e.id for e in events if isinstance(e, ToolCallStart)}
    out: list[Any] = []
    for event in events:
        if isinstance(event, ToolCallStart):
            out.append(("start", event.id, event.name))
        elif isinstance(event, ToolCallDelta):
            out.append(("delta", ids[event.index], event.arguments_delta))
        elif not isinstance(event, ToolCallEnd | Done):
            out.append(event)
    return out


@PROPERTY
@given(interleaved(), cut_points)
def test_interleaved_calls_keep_their_own_index(events: list[StreamEvent], cuts: list[int]) -> None:
    """OpenAI keeps the interleaving (each call has its own index); Anthropic serialises the blocks. Either
    way each call keeps its own fragments and the folded answer is the same."""
    for server, decoder in (
        (OPENAI, OpenAIChatDialect().stream_decoder),
        (ANTHROPIC, AnthropicDialect().stream_decoder),
    ):
        data = encode_stream(server, events)
        got = feed_all(decoder, split_at(data, cuts))
        check_stream_laws(got)
        assert _fragments(got) == _fragments(events)
        want, have = fold(events), fold(got)
        # Indexes are renumbered in the order the calls started; each call is the same.
        assert sorted(have.tool_calls, key=str) == sorted(want.tool_calls, key=str)
        assert have.text == want.text
        if server is OPENAI:
            assert _by_id(got) == _by_id(events)
        else:  # blocks never interleave: each call's start, fragments and end are contiguous
            starts = [i for i, e in enumerate(got) if isinstance(e, ToolCallStart)]
            for at in starts:
                index = got[at].index  # type: ignore[union-attr]
                run = got[at:]
                stop = next(i for i, e in enumerate(run) if isinstance(e, ToolCallEnd) and e.index == index)
                assert all(isinstance(e, ToolCallDelta) and e.index == index for e in run[1:stop])


# --- non-stream -----------------------------------------------------------------------------------------


@PROPERTY
@given(streams())
def test_non_stream_round_trip(events: list[StreamEvent]) -> None:
    if _done_of(events).finish_reason is FinishReason.ERROR:
        events[-1] = dataclasses.replace(_done_of(events), finish_reason=FinishReason.STOP, error=None)
    response = fold(events)
    for server, dialect, want_events in (
        (OPENAI, OpenAIChatDialect(), expected_openai(events, include_usage=True)),
        (ANTHROPIC, AnthropicDialect(), expected_anthropic(events)),
    ):
        body = server.encode_response(response, model=MODEL, created=1_700_000_000)
        decoded = dialect.decode_body(json.dumps(body).encode())
        want = fold(want_events)
        if server is OPENAI:  # a whole body carries one reasoning text: its blocks' signatures are not said;
            # and empty arguments are written as the JSON text "{}"
            calls = tuple(c if c.arguments_raw else dataclasses.replace(c, arguments_raw="{}") for c in want.tool_calls)
            want = dataclasses.replace(want, reasoning_parts=(), tool_calls=calls)
        else:  # a tool_use block carries an object, not text: broken arguments go as {}
            calls = tuple(
                ToolCall(c.id, c.name, dict(c.arguments or {}), json.dumps(dict(c.arguments)) if c.arguments else "")
                for c in want.tool_calls
            )
            want = dataclasses.replace(want, tool_calls=calls)
        assert decoded == want


def test_a_failed_response_is_not_encoded_as_a_success() -> None:
    failed = ChatResponse(text="partial", finish_reason=FinishReason.ERROR, error=LlmError("cut"))
    for server in (OPENAI, ANTHROPIC):
        try:
            server.encode_response(failed, model=MODEL, created=0)
        except ValueError as exc:
            assert "encode_error" in str(exc)
        else:
            raise AssertionError("encode_response accepted a failed response")


# --- requests -------------------------------------------------------------------------------------------

b64 = st.from_regex(r"[A-Za-z0-9+/]{4,24}={0,2}", fullmatch=True)
images = st.builds(lambda d: ImagePart(data=d, media_type="image/png"), b64) | st.builds(
    lambda p: ImagePart(url=f"https://images.example/{p}.png"), names
)


@st.composite
def conversations(draw: st.DrawFn, *, anthropic: bool) -> list[Message]:
    """Alternating turns: user (text or parts), assistant (text, calls, signed reasoning), tool results."""
    messages: list[Message] = [Message.system(t) for t in draw(st.lists(texts, max_size=2))]
    calls_seen = 0
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            messages.append(Message.user(draw(texts)))  # after tool results: in the same Anthropic user turn
        else:
            messages.append(Message.user(draw(st.lists(st.builds(TextPart, texts) | images, min_size=1, max_size=3))))
        calls = [
            ToolCall.create(draw(names), draw(json_args), id=f"call_{calls_seen + i}")
            for i in range(draw(st.integers(0, 2)))
        ]
        calls_seen += len(calls)
        text = draw(st.just("") | texts) if calls else draw(texts)  # turns alternate: never two user turns
        parts: list[TextPart | ReasoningPart] = []
        if anthropic and draw(st.booleans()):
            parts.append(ReasoningPart(draw(texts), signature=draw(b64)))
        if text:
            parts.append(TextPart(text))
        if parts or calls:
            messages.append(
                Message.assistant(parts if any(isinstance(p, ReasoningPart) for p in parts) else text, calls)
            )
        for call in calls:
            messages.append(Message.tool(str(call.id), draw(texts)))
    return messages


tool_defs = st.builds(
    lambda name, description, strict: ToolDef(
        name, description, {"type": "object", "properties": {"q": {"type": "string"}}}, strict
    ),
    names,
    st.sampled_from(["", "looks things up"]),
    st.none() | st.booleans(),
)


@st.composite
def requests(draw: st.DrawFn, *, anthropic: bool) -> ChatRequest:
    tools = draw(st.lists(tool_defs, max_size=3, unique_by=lambda t: t.name))
    choice = (
        draw(st.none() | st.sampled_from(["auto", "none", "required", *[t.name for t in tools]])) if tools else None
    )
    fmt = draw(
        st.none()
        | st.just(JsonSchemaFormat({"type": "object"}, strict=True))
        | (st.none() if anthropic else st.sampled_from(["json", "text"]))
        | (
            st.none()
            if anthropic
            else st.just(JsonSchemaFormat({"type": "object"}, name="answer", strict=False, description="d"))
        )
    )
    return ChatRequest(
        messages=draw(conversations(anthropic=anthropic)),
        system=draw(st.none() | texts),
        temperature=draw(st.none() | st.floats(0, 1)),
        max_tokens=draw(st.none() | st.integers(1, 8000)),
        top_p=draw(st.none() | st.floats(0, 1)),
        stop=draw(st.none() | st.lists(texts, min_size=1, max_size=3)),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=draw(st.none() | st.booleans()) if tools else None,
        response_format=fmt,
        seed=None if anthropic else draw(st.none() | st.integers(0, 2**31)),
    )


def _one_text(content: Any) -> Any:
    if not isinstance(content, str) and len(content) == 1 and isinstance(content[0], TextPart):
        return content[0].text
    return content


def _systems_first(request: ChatRequest) -> list[Message]:
    return [*([Message.system(request.system)] if request.system else []), *request.messages]


def canonical_openai(request: ChatRequest) -> ChatRequest:
    """The OpenAI encoder sends ``system`` as a leading message and assistant content as its text."""
    messages = [
        dataclasses.replace(m, content=m.text) if m.role is Role.ASSISTANT else dataclasses.replace(m, name=None)
        for m in _systems_first(request)
    ]
    return dataclasses.replace(request, system=None, messages=messages)


def canonical_anthropic(request: ChatRequest) -> ChatRequest:
    """The Anthropic encoder folds system messages into ``system``, writes one text block as a string, sends
    a default ``max_tokens``, and ``tool_choice: auto`` to carry ``parallel_tool_calls`` alone."""
    messages = [dataclasses.replace(m, content=_one_text(m.content), name=None) for m in _systems_first(request)]
    choice, parallel = request.tool_choice, request.parallel_tool_calls
    if choice is None and parallel is not None:
        choice = "auto"
    if choice == "none":
        parallel = None
    return dataclasses.replace(
        request,
        system=None,
        messages=messages,
        max_tokens=request.max_tokens or 4096,
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )


@PROPERTY
@given(requests(anthropic=False), st.booleans())
def test_openai_request_round_trip(request: ChatRequest, stream: bool) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        encoded = OpenAIChatDialect(max_tokens_field=field).encode(request, model="m-1", stream=stream)
        decoded = OPENAI.decode_request(json.loads(json.dumps(encoded.body)))
        assert (decoded.model, decoded.stream, decoded.include_usage) == ("m-1", stream, stream)
        assert decoded.warnings == ()
        assert canonical_openai(decoded.request) == canonical_openai(request)


@PROPERTY
@given(requests(anthropic=True), st.booleans())
def test_anthropic_request_round_trip(request: ChatRequest, stream: bool) -> None:
    encoded = AnthropicDialect().encode(request, model="claude-x", stream=stream)
    decoded = ANTHROPIC.decode_request(json.loads(json.dumps(encoded.body)))
    assert (decoded.model, decoded.stream) == ("claude-x", stream)
    assert decoded.warnings == ()
    assert canonical_anthropic(decoded.request) == canonical_anthropic(request)
