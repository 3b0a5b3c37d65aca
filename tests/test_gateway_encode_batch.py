"""``encode_batch``: what the gateway sends for each batch a provider stream delivers must be exactly the
bytes of ``encode`` on each event of it, for every served dialect, however the events are batched; and
``_tune_gc`` leaves a worker process collecting cycles, less often."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmrelay._errors import ProviderError
from llmrelay._events import Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from llmrelay._types import FinishReason, ToolCall, Usage
from llmrelay.gateway._routes_native import NativeDialect
from llmrelay.wire.anthropic.server import AnthropicServer
from llmrelay.wire.openai_chat.server import OpenAIChatServer
from llmrelay.wire.serve import ServedDialect

DIALECTS: dict[str, ServedDialect] = {
    "openai": OpenAIChatServer(),
    "anthropic": AnthropicServer(),
    "native": NativeDialect(),
}

TEXTS = ["Hello", "", ' "quoted" \\ and\nnewline', "caf\u00e9 \u6771\u4eac \U0001f642", "\u2028\x00\x1f", "tail"]


def _events() -> list[StreamEvent]:
    call = ToolCall(id="call_1", name="lookup", arguments={"q": "x"}, arguments_raw='{"q": "x"}')
    return [
        *(TextDelta(t) for t in TEXTS[:3]),
        ReasoningDelta("thinking..."),
        *(TextDelta(t) for t in TEXTS[3:]),
        ToolCallStart(0, "call_1", "lookup"),
        ToolCallDelta(0, '{"q": '),
        ToolCallDelta(0, '"x"}'),
        ToolCallEnd(0, call),
        TextDelta("after the call"),
        Done(FinishReason.TOOL_CALLS, "tool_calls", usage=Usage(input_tokens=9, output_tokens=12, total_tokens=21)),
        TextDelta("never sent: the stream is finished"),
    ]


def _encoder(name: str):  # type: ignore[no-untyped-def]
    return DIALECTS[name].stream_encoder(model="p/m", created=1_700_000_000, include_usage=True, response_id="id_1")


@pytest.mark.parametrize("name", sorted(DIALECTS))
@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_batches_encode_to_the_bytes_of_each_event(name: str, size: int) -> None:
    events = _events()
    one_by_one = _encoder(name)
    expected = b"".join(one_by_one.encode(e) for e in events)
    batched = _encoder(name)
    got = b"".join(batched.encode_batch(events[i : i + size]) for i in range(0, len(events), size))
    assert got == expected
    assert batched.finished and one_by_one.finished
    assert batched.encode_batch([TextDelta("late")]) == b""
    text = got.decode()
    assert "never sent" not in text
    for piece in ("Hello", "caf\u00e9", "after the call", "lookup"):
        assert piece in text or json.dumps(piece)[1:-1] in text


def test_openai_batch_is_parseable_chunks_with_the_text_in_order() -> None:
    encoder = _encoder("openai")
    data = encoder.encode_batch([TextDelta(t) for t in TEXTS]) + encoder.encode_batch([Done(FinishReason.STOP, "stop")])
    chunks = [json.loads(line[6:]) for line in data.decode().split("\n\n") if line and line != "data: [DONE]"]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "".join(TEXTS)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {"id_1"} and {c["model"] for c in chunks} == {"p/m"}
    assert data.endswith(b"data: [DONE]\n\n")


def test_a_lone_surrogate_in_a_batch_is_escaped_as_encode_escapes_it() -> None:
    texts = ["ok ", "lone \ud83d here", " and on"]
    batched = _encoder("openai").encode_batch([TextDelta(t) for t in texts])
    single = _encoder("openai")
    assert batched == b"".join(single.encode(TextDelta(t)) for t in texts)
    assert b"\\ud83d" in batched
    batched.decode("utf-8")  # valid UTF-8 on the wire


def test_fail_after_a_batch_ends_with_the_error_event() -> None:
    encoder = _encoder("openai")
    head = encoder.encode_batch([TextDelta("partial")])
    tail = encoder.fail(ProviderError("upstream broke"))
    assert b"partial" in head
    assert tail.startswith(b'data: {"error":') and b"[DONE]" not in tail
    assert encoder.finished and encoder.encode_batch([TextDelta("more")]) == b""


def test_tune_gc_freezes_startup_objects_and_keeps_collecting() -> None:
    code = (
        "import gc, weakref\n"
        "from llmrelay.gateway._server import GC_YOUNG_THRESHOLD, _tune_gc\n"
        "_tune_gc()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD\n"
        "class Node: pass\n"
        "a = Node(); a.me = a; ref = weakref.ref(a); del a\n"
        "assert ref() is not None\n"
        "gc.collect()\n"
        "assert ref() is None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
