"""``TextChunks`` (``wire/openai_chat/text_chunks``): the chunking decoder gives the ordinary decoder's
events, with runs of plain text chunks as one event each, for every input split anywhere; the served
encoder re-frames them into chunks that decode to the same text; and the gateway asks for them on the
OpenAI route, so an OpenAI SDK client reads the same stream through it."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_support import GATEWAY_KEY_SECRET, serving, upstream_config
from llmrelay import ChatRequest, Done, Message, StreamEvent, TextChunks, TextDelta, fold, to_json
from llmrelay._events import TEXT_CHUNKS_OPTION
from llmrelay.providers.openai import OpenAIProvider
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.wire.openai_chat import OpenAIChatServer, OpenAIChatStreamDecoder
from llmrelay.wire.openai_chat.text_chunks import OpenAIChatChunkingDecoder
from test_decode_fast_path import FINISH, OPENAI_FAMILY, body, chunk, comparable
from test_decode_fast_path import _events as chunk_sequences
from test_decode_fast_path import _wire as wire_of

from wire_helpers import check_stream_laws, feed_all, split_bytes, split_random, transcripts


def merged(events: list[StreamEvent]) -> list[Any]:
    """``comparable`` events with each ``TextChunks`` read as its text and adjacent texts joined: what a
    consumer of the text sees, whichever decoder delivered it."""
    out: list[StreamEvent] = []
    for event in events:
        if type(event) is TextChunks:
            event = TextDelta(event.text)
        if type(event) is TextDelta and out and type(out[-1]) is TextDelta:
            out[-1] = TextDelta(out[-1].text + event.text)
        else:
            out.append(event)
    return comparable(out)


def chunking_matches(data: bytes, *, seeds: int = 4, by_byte: bool = False) -> list[StreamEvent]:
    """The chunking decoder's events for ``data`` (whole), checked against the ordinary decoder's, whole
    and split at random (and byte by byte)."""
    plain = merged(feed_all(OpenAIChatStreamDecoder, [data]))
    whole = feed_all(OpenAIChatChunkingDecoder, [data])
    check_stream_laws(whole)
    assert merged(whole) == plain
    for seed in range(seeds):
        assert merged(feed_all(OpenAIChatChunkingDecoder, split_random(data, seed))) == plain
    if by_byte:
        assert merged(feed_all(OpenAIChatChunkingDecoder, split_bytes(data))) == plain
    return whole


def reads_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def chunked(events: list[StreamEvent]) -> int:
    """How many chunks came as ``TextChunks``."""
    return sum(len(e.bodies) for e in events if type(e) is TextChunks)


# --- the decoder -----------------------------------------------------------------------------------------


def test_plain_text_chunks_come_as_runs() -> None:
    texts = [f"t{i} " for i in range(200)]
    data = body(*(chunk(json.dumps(t)) for t in texts), FINISH, "[DONE]")
    events = chunking_matches(data, by_byte=True)
    # the first two chunks take the ordinary path (template, then its probe); the rest come in one run
    assert chunked(events) == 198
    runs = [e for e in events if type(e) is TextChunks]
    assert len(runs) == 1 and runs[0].text == "".join(texts[2:]) and runs[0].dialect == "openai"
    assert runs[0].bodies[0] == b"t2 " and len(runs[0].bodies) == 198
    # read in pieces the size of a socket read: one run per read once the template is known
    pieced = feed_all(OpenAIChatChunkingDecoder, reads_of(data, 2048))
    assert merged(pieced) == merged(events) and chunked(pieced) >= 190


@pytest.mark.parametrize(
    "content",
    [
        r'"a\"b\\c\/d\n\t\r\b\f"',
        r'"\u00e9\u4e2d"',
        r'"\ud83d\ude00"',  # an escaped surrogate pair: the ordinary path (it joins and replaces)
        '"é中😀"',
        r'"\ud800"',  # a lone high surrogate
        r'"\udc00x"',
        r'"\ud83d"',  # half a pair; the other half is the next chunk
        r'"\uD83D"',
        '""',
        '"a"b"',  # an unescaped quote: not JSON
        '"p\\',  # a lone backslash escaping the closing quote ...
        '"\\","q"',  # ... and a body with quotes that would re-pair with it
        '"line\nbreak"',  # a raw line break: an event of two lines
        '"tab\there"',  # a raw control character: not JSON
        '"x"}],"extra":{"a":"b"',  # other JSON where the tail should be
    ],
)
def test_escapes_and_malformed_bodies_decode_as_the_ordinary_decoder_does(content: str) -> None:
    chunks = [chunk('"x"'), chunk('"y"'), chunk('"z"'), chunk(content), chunk(r'"\ude00"'), chunk('"w"'), chunk('"v"')]
    chunking_matches(body(*chunks, FINISH, "[DONE]"), by_byte=True)


def test_the_counterexample_of_a_naive_join_is_refused() -> None:
    # bodies 'p\' and '","q' joined as ["p\",","q"] would parse as two strings: the raw tab separator cannot
    # be swallowed, so the parse fails and the read takes the ordinary path
    data = body(chunk('"a"'), chunk('"b"'), chunk('"p\\'), chunk('"","q"'), FINISH, "[DONE]")
    events = chunking_matches(data)
    assert chunked(events) == 0


@pytest.mark.parametrize(
    "wire",
    [
        # CR line ends
        body(*(chunk(f'"c{i}"') for i in range(20)), FINISH, "[DONE]").replace(b"\n", b"\r\n"),
        body(*(chunk(f'"c{i}"') for i in range(20)), FINISH, "[DONE]").replace(b"\n", b"\r"),
        # a byte order mark, keep-alive comments, an event name, "data:" without its space, blank lines
        b"\xef\xbb\xbf" + body(*(chunk(f'"c{i}"') for i in range(10)), FINISH, "[DONE]"),
        body(*(chunk(f'"c{i}"') for i in range(5))) + b": keep-alive\n\n" + body(chunk('"d"'), FINISH, "[DONE]"),
        body(*(chunk(f'"c{i}"') for i in range(5))) + body(chunk('"e"'), event="message") + body(FINISH, "[DONE]"),
        body(*(chunk(f'"c{i}"') for i in range(5))) + b"data:" + chunk('"f"').encode() + b"\n\n" + body(FINISH),
        body(*(chunk(f'"c{i}"') for i in range(5))) + b"\n\n\n" + body(chunk('"g"'), FINISH, "[DONE]"),
        # an error mid-run, as an event and as a chunk, and as raw JSON without SSE framing
        body(*(chunk(f'"c{i}"') for i in range(5))) + body('{"error":{"message":"boom"}}', event="error"),
        body(*(chunk(f'"c{i}"') for i in range(5)), '{"error":{"message":"overloaded","code":503}}'),
        body(*(chunk(f'"c{i}"') for i in range(5))) + b'{"error": {"message": "proxy"}}\n',
        # invalid UTF-8 inside a body
        body(*(chunk(f'"c{i}"') for i in range(5))) + b"data: " + chunk('"\xff"').encode("latin-1") + b"\n\n",
        # usage chunk, then a truncation: no [DONE] after text, and a cut inside an event
        body(*(chunk(f'"c{i}"') for i in range(5)), FINISH, '{"choices":[],"usage":{"prompt_tokens":1}}'),
        body(*(chunk(f'"c{i}"') for i in range(8))),
        body(*(chunk(f'"c{i}"') for i in range(8)))[:-30],
    ],
    ids=lambda w: repr(w[-24:]),
)
def test_framing_errors_and_truncation_decode_as_the_ordinary_decoder_does(wire: bytes) -> None:
    chunking_matches(wire, seeds=6, by_byte=True)


def test_lines_shaped_to_pass_a_structural_check_are_refused() -> None:
    # The run check asks that the read begin with the template's head, end with its tail, that every blank
    # line between events sit between a tail and a head, and that the lengths add up. Each read below
    # breaks exactly one of those, and must decode as the ordinary decoder decodes it.
    good = chunk('"x"')
    at = good.index('"x"')
    head, tail = (
        good[: at + 1],
        good[at + 2 :],
    )  # the head ends with the opening quote, the tail starts with the closing one
    short = head + tail[1:]  # head and tail share the quote: shorter than head + tail
    other_head = good.replace('"index":0', '"index":1')  # a line whose head differs
    unclosed = head + "y"  # no tail: ends where a tail should
    for odd in (short, other_head, unclosed):
        lead = [chunk(f'"c{i}"') for i in range(6)]
        for where in (0, 3, 6):
            lines = [*lead[:where], odd, *lead[where:]]
            chunking_matches(body(*lines, FINISH, "[DONE]"), seeds=3)
            chunking_matches(body(*lines), seeds=3)


def test_a_long_unfinished_event_is_handed_to_the_ordinary_reader() -> None:
    long_text = "x" * (2 * 1024 * 1024)  # longer than the held bytes (1 MiB), under the line limit
    data = body(*(chunk(f'"c{i}"') for i in range(5)), chunk(json.dumps(long_text)), chunk('"after"'), FINISH)
    chunking_matches(data, seeds=2)
    events = feed_all(OpenAIChatChunkingDecoder, reads_of(data, 65536))
    assert fold(events).text == "c0c1c2c3c4" + long_text + "after"


def test_recorded_openai_transcripts_decode_the_same() -> None:
    streams = [t for t in transcripts(OPENAI_FAMILY) if t.is_stream]
    assert len(streams) >= 10
    for t in streams:
        chunking_matches(t.wire, seeds=6, by_byte=True)


@settings(max_examples=300, deadline=None)
@given(chunk_sequences(), st.lists(st.integers(min_value=1, max_value=4000), max_size=8))
def test_random_chunk_sequences_decode_the_same(events: list[tuple[str, str]], cuts: list[int]) -> None:
    data = wire_of(events)
    plain = merged(feed_all(OpenAIChatStreamDecoder, [data]))
    pieces, last = [], 0
    for cut in sorted(set(cuts)):
        if last < cut < len(data):
            pieces.append(data[last:cut])
            last = cut
    pieces.append(data[last:])
    assert merged(feed_all(OpenAIChatChunkingDecoder, pieces)) == plain
    assert merged(feed_all(OpenAIChatChunkingDecoder, [data])) == plain


# --- the served encoder ------------------------------------------------------------------------------------


def served_bytes(events: list[StreamEvent], *, include_usage: bool = True) -> bytes:
    encoder = OpenAIChatServer().stream_encoder(
        model="oa/m", created=7, include_usage=include_usage, response_id="chatcmpl-t"
    )
    return encoder.encode_batch(events)


_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(['"', "\\", "\n", "\x00", "é", "😀"]),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=40), st.booleans(), st.integers(min_value=1, max_value=4096))
def test_reframed_chunks_decode_to_the_same_stream(texts: list[str], ascii_only: bool, read: int) -> None:
    upstream = body(
        *(chunk(json.dumps(t, ensure_ascii=ascii_only)) for t in ["a", "b", *texts]),
        FINISH,
        '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}',
        "[DONE]",
    )
    chunking = feed_all(OpenAIChatChunkingDecoder, reads_of(upstream, read))
    ordinary = feed_all(OpenAIChatStreamDecoder, [upstream])
    # what a client of the gateway reads back, through our own client decoder
    via_chunks = feed_all(OpenAIChatStreamDecoder, [served_bytes(chunking)])
    via_events = feed_all(OpenAIChatStreamDecoder, [served_bytes(ordinary)])
    assert merged(via_chunks) == merged(via_events)
    assert fold(via_chunks).text == "ab" + "".join(texts)
    usage = fold(via_chunks).usage
    assert usage is not None and usage.total_tokens == 7


def test_reframed_chunks_are_the_bytes_of_the_same_text_deltas() -> None:
    texts = ["x", "y", *[f'w{i} "q"\\' for i in range(30)]]
    upstream = body(*(chunk(json.dumps(t, ensure_ascii=False)) for t in texts), FINISH, "[DONE]")
    chunking = feed_all(OpenAIChatChunkingDecoder, [upstream])
    assert chunked(chunking) == 30
    # json.dumps(ensure_ascii=False) escapes as the encoder's own quoting does: the bytes are the same
    expanded: list[StreamEvent] = [TextDelta(t) for t in texts] + [chunking[-1]]
    assert served_bytes(chunking) == served_bytes(expanded)


def test_a_run_before_any_other_output_starts_with_the_role_chunk() -> None:
    out = served_bytes([TextChunks("ab", "openai", (b"a", b"b")), Done(finish_reason=fold([]).finish_reason)])
    first = json.loads(out.split(b"\n\n")[0][len(b"data: ") :])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert fold(feed_all(OpenAIChatStreamDecoder, [out])).text == "ab"


def test_other_consumers_read_text_chunks_as_text() -> None:
    run = TextChunks("héllo", "openai", (b"h\\u00e9", b"llo"))
    assert to_json(run) == to_json(TextDelta("héllo"))
    assert fold([run, Done(finish_reason=fold([]).finish_reason)]).text == "héllo"
    # another dialect's chunks are encoded from their text
    other = served_bytes([TextChunks("hi", "anthropic", (b"garbage",)), Done(finish_reason=fold([]).finish_reason)])
    assert fold(feed_all(OpenAIChatStreamDecoder, [other])).text == "hi"


# --- through a provider and the gateway ----------------------------------------------------------------------


def _stream_wire(texts: list[str]) -> bytes:
    return body(
        '{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,'
        '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
        *(chunk(json.dumps(t), model="gpt-4o-mini") for t in texts),
        FINISH.replace('"model":"m"', '"model":"gpt-4o-mini"'),
        '{"id":"c1","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,'
        '"total_tokens":14}}',
        "[DONE]",
    )


TEXTS = [f'tok{i} "q" é\\ ' for i in range(400)]


def reads_reply(wire: bytes) -> Reply:
    """The stream written in writes of 4 KiB, so the gateway reads it in several pieces."""
    return Reply(chunks=tuple(reads_of(wire, 4096)), content_type="text/event-stream")


async def test_a_provider_delivers_text_chunks_only_when_asked() -> None:
    async with FakeUpstream() as up:
        up.always(reads_reply(_stream_wire(TEXTS)))
        provider = OpenAIProvider(api_key="sk-test", base_url=up.url("/v1"), model="gpt-4o-mini")
        try:
            asked = ChatRequest(
                messages=[Message.user("hi")], provider_options={TEXT_CHUNKS_OPTION: {"text_chunks": "openai"}}
            )
            for request, wants in ((asked, True), (ChatRequest(messages=[Message.user("hi")]), False)):
                async with provider.chat_stream(request) as stream:
                    events = [e async for e in stream]
                    response = stream.response()
                assert response.text == "".join(TEXTS)
                assert response.usage is not None and response.usage.total_tokens == 14
                assert (chunked(events) > 300) is wants
                # the option is ours: it never reaches the upstream
                assert TEXT_CHUNKS_OPTION not in json.loads(up.requests[-1].body)
            other = ChatRequest(
                messages=[Message.user("hi")], provider_options={TEXT_CHUNKS_OPTION: {"text_chunks": "anthropic"}}
            )
            async with provider.chat_stream(other) as stream:
                assert chunked([e async for e in stream]) == 0
        finally:
            await provider.aclose()


async def test_an_openai_sdk_client_reads_the_same_stream_through_the_gateway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
    async with FakeUpstream() as up:
        up.always(reads_reply(_stream_wire(TEXTS)))
        async with serving(upstream_config(openai=up)) as gw:
            client = openai.AsyncOpenAI(api_key=GATEWAY_KEY_SECRET, base_url=f"{gw.url}/v1", max_retries=0)
            try:
                stream = await client.chat.completions.create(
                    model="oa/gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                ids, models, texts, usage, finish = set(), set(), [], None, None
                async for part in stream:
                    ids.add(part.id)
                    models.add(part.model)
                    if part.choices:
                        texts.append(part.choices[0].delta.content or "")
                        finish = part.choices[0].finish_reason or finish
                    if part.usage is not None:
                        usage = part.usage
            finally:
                await client.close()
        assert "".join(texts) == "".join(TEXTS)
        assert len(ids) == 1 and models == {"oa/gpt-4o-mini"}  # one id and the answering model throughout
        assert finish == "stop" and usage is not None and usage.total_tokens == 14
        assert len(texts) >= len(TEXTS)  # chunk for chunk, never merged
        sent = json.loads(up.requests[-1].body)
        assert TEXT_CHUNKS_OPTION not in sent and sent["stream"] is True
