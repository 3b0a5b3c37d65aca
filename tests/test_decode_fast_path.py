"""The Chat Completions stream decoder's fast path (``wire/openai_chat/text_template``) is exact: any
sequence of chunks, split anywhere, decodes to the same events with it as through the full parse of every
chunk; and it is taken for the chunks it is meant for."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import Done, StreamEvent, TextDelta
from llmrelay.wire.openai_chat.decode import OpenAIChatStreamDecoder
from llmrelay.wire.openai_chat.text_template import TextTemplate
from llmrelay.wire.sse import SseEvent, _event_of

from wire_helpers import feed_all, split_bytes, split_random, transcripts


class FullPathDecoder(OpenAIChatStreamDecoder):
    """The decoder with the fast path off: every event is parsed in full."""

    __slots__ = ()

    def _event(self, kind: str, data: str) -> None:
        self._template = None
        super()._event(kind, data)


class CountingDecoder(OpenAIChatStreamDecoder):
    """The decoder, counting the events that took the full path."""

    __slots__ = ("full",)

    def __init__(self) -> None:
        super().__init__()
        self.full = 0

    def _event(self, kind: str, data: str) -> None:
        template = self._template
        if template is None or not data.startswith(template.head) or template.text_of(data) is None:
            self.full += 1
        super()._event(kind, data)


def comparable(events: list[StreamEvent]) -> list[Any]:
    """Events with their errors as (class, message, kind): exceptions do not compare by value."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, Done) and event.error is not None:
            error = event.error
            out.append((dataclasses.replace(event, error=None), type(error), str(error), error.kind))
        else:
            out.append(event)
    return out


def body(*datas: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return b"".join(f"{head}data: {d}\n\n".encode() for d in datas)


def chunk(content_json: str, *, id: str = "c1", model: str = "m", tail: str = "") -> str:
    """A plain text chunk whose content is the raw JSON string text ``content_json`` (quotes included)."""
    return (
        f'{{"id":"{id}","object":"chat.completion.chunk","model":"{model}","choices":[{{"index":0,'
        f'"delta":{{"content":{content_json}}},"logprobs":null,"finish_reason":null}}]{tail}}}'
    )


FINISH = '{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


def both(data: bytes) -> list[StreamEvent]:
    fast = feed_all(OpenAIChatStreamDecoder, [data])
    full = feed_all(FullPathDecoder, [data])
    assert comparable(fast) == comparable(full)
    for seed in range(3):
        assert comparable(feed_all(OpenAIChatStreamDecoder, split_random(data, seed))) == comparable(full)
    return fast


def full_count(data: bytes) -> int:
    decoder = CountingDecoder()
    decoder.feed(data)
    decoder.close()
    return decoder.full


# --- targeted cases ------------------------------------------------------------------------------------


def test_plain_chunks_take_the_fast_path() -> None:
    data = body(*(chunk(json.dumps(f"t{i} ")) for i in range(50)), FINISH, "[DONE]")
    events = both(data)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "".join(f"t{i} " for i in range(50))
    # the first chunk becomes the template, the second checks its probe; the finish chunk and [DONE] are full
    assert full_count(data) == 3


@pytest.mark.parametrize(
    "content",
    [
        r'"a\"b\\c\/d\n\t\r\b\f"',
        r'"\u00e9\u4e2d\ud83d\ude00"',  # an escaped surrogate pair
        '"é中😀"',  # raw UTF-8
        r'"\ud800"',  # a lone high surrogate
        r'"\udc00x"',  # a lone low surrogate
        r'"\ud83d"',  # half a pair: the other half comes in the next chunk
        '""',  # empty content
        '"      "',
    ],
)
def test_escapes_and_unicode_match_the_full_path(content: str) -> None:
    data = body(chunk('"x"'), chunk('"y"'), chunk(content), chunk(r'"\ude00"'), chunk('"z"'), FINISH, "[DONE]")
    both(data)


def test_a_split_surrogate_pair_across_fast_chunks_is_joined() -> None:
    data = body(chunk('"a"'), chunk('"b"'), chunk(r'"\ud83d"'), chunk(r'"\ude00"'), FINISH, "[DONE]")
    events = both(data)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "ab\U0001f600"


def test_a_change_of_id_or_model_mid_stream_takes_the_full_path() -> None:
    data = body(
        chunk('"a"'),
        chunk('"b"'),
        chunk('"c"', model="m2"),
        chunk('"d"', model="m2"),
        chunk('"e"', id="c2", model="m2"),
        FINISH.replace('"model":"m"', '"model":"m3"'),
        "[DONE]",
    )
    events = both(data)
    done = events[-1]
    assert isinstance(done, Done) and done.model == "m3"
    data = body(chunk('"a"'), chunk('"b"'), chunk('"c"', model="m2"), chunk('"d"', model="m2"))
    done = both(data)[-1]
    assert isinstance(done, Done) and done.model == "m2"  # no finish: truncated, but the model is m2's


@pytest.mark.parametrize(
    "tail",
    [
        ',"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}',
        ',"obfuscation":"x1"',
        ',"error":{"message":"overloaded","type":"server_error"}',
        ',"system_fingerprint":"fp"',
    ],
)
def test_a_chunk_that_differs_only_in_its_tail_takes_the_full_path(tail: str) -> None:
    data = body(chunk('"a"'), chunk('"b"'), chunk('"c"', tail=tail), chunk('"d"'), FINISH, "[DONE]")
    events = both(data)
    done = events[-1]
    assert isinstance(done, Done)
    if '"error"' in tail:
        assert done.error is not None  # the error ends the stream at the third chunk
        assert full_count(data) == 2  # the first, and the third
    else:
        assert full_count(data) == 5  # all but the second


def test_a_finish_reason_or_tool_call_after_plain_chunks_is_parsed_in_full() -> None:
    finish_inline = '{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":"length"}]}'  # noqa: E501
    tool = (
        '{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"",'
        '"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,'
        '"finish_reason":null}]}'
    )
    events = both(body(chunk('"a"'), chunk('"b"'), tool, chunk('"c"'), finish_inline, "[DONE]"))
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason_raw == "length"


def test_an_obfuscation_field_that_changes_per_chunk_is_never_fast() -> None:
    data = body(*(chunk(f'"t{i}"', tail=f',"obfuscation":"{"x" * (i % 7)}{i}"') for i in range(20)), FINISH)
    both(data)
    assert full_count(data) == 21


def test_a_duplicate_content_key_never_uses_the_template() -> None:
    # json keeps the last "content"; the template's string is the first one: its probe fails
    def dup(first: str, second: str) -> str:
        return (
            '{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":'
            f'{first},"content":{second}}},"finish_reason":null}}]}}'
        )

    data = body(dup('"a"', '"B"'), dup('"c"', '"B"'), dup('"d"', '"B"'), FINISH, "[DONE]")
    events = both(data)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "BBB"


def test_the_template_is_the_decoder_read_content_after_a_key_elsewhere() -> None:
    # a "content": key before the delta's (in another object): the template's head ends there, the probe fails
    def odd(text: str) -> str:
        return (
            '{"id":"c1","meta":{"content":"same"},"choices":[{"index":0,"delta":{"content":'
            f'{json.dumps(text)}}},"finish_reason":null}}]}}'
        )

    data = body(odd("a"), odd("b"), odd("c"), FINISH)
    events = both(data)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "abc"


def test_bad_strings_after_a_template_fail_as_before() -> None:
    bad_escape = chunk(r'"\x41"')
    control = chunk('"a\x01b"')
    unterminated = (
        '{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"abc'
    )
    for bad in (bad_escape, control, unterminated):
        events = both(body(chunk('"a"'), chunk('"b"'), bad, chunk('"c"'), FINISH))
        done = events[-1]
        assert isinstance(done, Done) and done.error is not None


def test_an_error_event_with_a_template_shape_is_an_error() -> None:
    data = body(chunk('"a"'), chunk('"b"')) + body(chunk('"c"'), event="error") + body(chunk('"d"'), FINISH)
    events = both(data)
    done = events[-1]
    assert isinstance(done, Done) and done.error is not None and done.finish_reason.value == "error"


def test_whitespace_variants_and_role_chunks() -> None:
    def spaced(text: str) -> str:
        return (
            '{"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": '
            f'{json.dumps(text)}}}, "finish_reason": null}}]}}  '
        )

    data = body(spaced("a"), spaced("b"), spaced("c"), FINISH, "[DONE]")
    assert [e.text for e in both(data) if isinstance(e, TextDelta)] == ["a", "b", "c"]
    assert full_count(data) == 3  # the first, the finish, [DONE]


def test_template_of_refuses_what_has_no_content_string() -> None:
    assert TextTemplate.of('{"choices":[]}', {}, "", None) is None
    assert TextTemplate.of('{"content":5}', {}, "", None) is None
    assert TextTemplate.of('{"content":"abc', {}, "", None) is None


OPENAI_FAMILY = ("openai", "azure", "groq", "deepseek", "dashscope", "openrouter", "vllm", "llamacpp")


def test_recorded_openai_transcripts_decode_the_same_through_both_paths() -> None:
    streams = [t for t in transcripts(OPENAI_FAMILY) if t.is_stream]
    assert len(streams) >= 10
    for t in streams:
        full = comparable(feed_all(FullPathDecoder, [t.wire]))
        assert comparable(feed_all(OpenAIChatStreamDecoder, [t.wire])) == full, t.name
        assert comparable(feed_all(OpenAIChatStreamDecoder, split_bytes(t.wire))) == full, t.name
        for seed in range(5):
            assert comparable(feed_all(OpenAIChatStreamDecoder, split_random(t.wire, seed))) == full, t.name


# --- property: random chunk sequences ------------------------------------------------------------------

_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(['"', "\\", "\n", "\x00", "é", "😀"]),
    max_size=12,
)
_raw_strings = st.sampled_from([r'"\ud800"', r'"\udfff"', r'"\ud83d"', r'"\ude00"', r'"a\u0000"', r'"\x"', '"\x01"'])
_content = st.one_of(
    *[_texts.map(json.dumps)] * 4, *[_texts.map(lambda t: json.dumps(t, ensure_ascii=False))] * 4, _raw_strings
)
_HEADS = (
    '{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":',
    '{"id":"c2","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":',
    '{"id":"c1","object":"chat.completion.chunk","model":"m2","choices":[{"index":0,"delta":{"content":',
    '{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":',
    '{"id":"c1","model":"m","choices":[{"index":1,"delta":{"content":',
    '{"id": "c1", "choices": [{"index": 0, "delta": {"content": ',
    '{"id":"c1","choices":[{"index":0,"delta":{"content":"x","content":',
)
_heads = st.sampled_from(_HEADS)
_TAILS = (
    '},"logprobs":null,"finish_reason":null}]}',
    '},"finish_reason":null}],"usage":null}',
    '},"finish_reason":null}],"obfuscation":"ab"}',
    '},"finish_reason":null}],"obfuscation":"abc"}',
    '},"finish_reason":"stop"}]}',
    '},"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2}}',
    ',"refusal":null},"finish_reason":null}]}',
    ',"tool_calls":[{"index":0,"id":"t1","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}',
    '},"finish_reason":null}]} ',
    '},"finish_reason":null}]',
    '},"finish_reason":null}],"error":{"message":"boom"}}',
)
_tails = st.sampled_from(_TAILS)
_other = st.sampled_from(["[DONE]", FINISH, '{"choices":[]}', "not json", '{"error":{"message":"x"}}', "[1]"])


@st.composite
def _events(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Mostly chunks of one head and tail (the stream's usual shape), with others mixed in."""
    base_head = draw(st.one_of(st.sampled_from(_HEADS[:4]), _heads))
    base_tail = draw(st.one_of(st.sampled_from(_TAILS[:4]), _tails))
    out: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        kind = draw(st.sampled_from(["error", "message", *[""] * 18]))
        pick = draw(st.integers(min_value=0, max_value=19))
        if pick < 16:
            out.append((kind, base_head + draw(_content) + base_tail))
        elif pick < 19:
            out.append((kind, draw(_heads) + draw(_content) + draw(_tails)))
        else:
            out.append((kind, draw(_other)))
    return out


def _wire(events: list[tuple[str, str]]) -> bytes:
    return b"".join(
        (f"event: {kind}\n" if kind else "").encode() + f"data: {data}\n\n".encode("utf-8", "surrogatepass")
        for kind, data in events
    )


@settings(max_examples=400, deadline=None)
@given(_events(), st.lists(st.integers(min_value=1, max_value=4000), max_size=8))
def test_random_chunk_sequences_decode_the_same_through_both_paths(
    events: list[tuple[str, str]], cuts: list[int]
) -> None:
    data = _wire(events)
    full = comparable(feed_all(FullPathDecoder, [data]))
    assert comparable(feed_all(OpenAIChatStreamDecoder, [data])) == full
    pieces, last = [], 0
    for cut in sorted({c for c in cuts if c < len(data)}):
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    assert comparable(feed_all(OpenAIChatStreamDecoder, pieces)) == full


def test_the_sse_decoder_s_events_are_the_frozen_dataclass_s() -> None:
    made = _event_of("a\nb", "error", "7", 1500)
    assert made == SseEvent("a\nb", "error", "7", 1500) and hash(made) == hash(SseEvent("a\nb", "error", "7", 1500))
    assert type(made) is SseEvent and repr(made) == repr(SseEvent("a\nb", "error", "7", 1500))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.data = "x"  # type: ignore[misc]
