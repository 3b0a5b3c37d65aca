"""One scenario matrix for every dialect, each against its fake upstream through real sockets.

Rows are scenarios, columns are dialects. Columns come from the ``llmrelay/testing/*_kit.py`` modules
(each exposes ``KIT``), so adding a dialect adds a column without touching this file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import llmrelay.testing
from llmrelay import (
    AuthError,
    ChatRequest,
    FinishReason,
    ImagePart,
    InvalidRequestError,
    LlmError,
    Message,
    OverloadedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    TextPart,
    ToolDef,
)
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.kit import DialectKit

from wire_helpers import check_stream_laws


def _kits() -> list[DialectKit]:
    kits = []
    for info in pkgutil.iter_modules(llmrelay.testing.__path__):
        if info.name.endswith("_kit"):
            kits.append(importlib.import_module(f"llmrelay.testing.{info.name}").KIT)
    return sorted(kits, key=lambda k: k.name)


KITS = _kits()
kit_param = pytest.mark.parametrize("kit", KITS, ids=lambda k: k.name)
stream_param = pytest.mark.parametrize("stream", [True, False], ids=["stream", "body"])
TOOLS = [
    ToolDef("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ToolDef("get_time", "Time in a zone", {"type": "object", "properties": {"tz": {"type": "string"}}}),
]
REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=64)


def test_every_dialect_has_a_column() -> None:
    assert {k.name for k in KITS} >= {"openai"}


async def _call(kit: DialectKit, up: FakeUpstream, request: ChatRequest, stream: bool) -> Any:
    async with kit.provider(up.url()) as provider:
        if not stream:
            return await provider.chat(request)
        async with provider.chat_stream(request) as s:
            events = [e async for e in s]
        check_stream_laws(events)
        return s.response()


@kit_param
@stream_param
async def test_plain_text(kit: DialectKit, stream: bool, upstream: FakeUpstream) -> None:
    upstream.add(kit.text("Hello from the fake upstream", stream=stream, usage=(11, 7)))
    response = await _call(kit, upstream, REQ, stream)
    assert response.text == "Hello from the fake upstream"
    assert response.finish_reason is FinishReason.STOP
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.provider == kit.provider(upstream.url()).name


@kit_param
@stream_param
async def test_tool_call_round_trip(kit: DialectKit, stream: bool, upstream: FakeUpstream) -> None:
    upstream.add(kit.tool_calls([("call_1", "get_weather", {"city": "Paris"})], stream=stream))
    upstream.add(kit.text("It is sunny in Paris.", stream=stream))
    request = ChatRequest(messages=[Message.user("Weather in Paris?")], tools=TOOLS, max_tokens=64)
    first = await _call(kit, upstream, request, stream)
    assert len(first.tool_calls) == 1
    call = first.tool_calls[0]
    assert call.name == "get_weather" and dict(call.arguments) == {"city": "Paris"}
    follow = ChatRequest(
        messages=[*request.messages, first.message, Message.tool(call.id or "call_1", "sunny, 24C", name=call.name)],
        tools=TOOLS,
        max_tokens=64,
    )
    final = await _call(kit, upstream, follow, stream)
    assert final.text == "It is sunny in Paris."
    assert kit.sent_tool_result(upstream.requests[1], call.id, "sunny, 24C")


@kit_param
@stream_param
async def test_parallel_tool_calls(kit: DialectKit, stream: bool, upstream: FakeUpstream) -> None:
    upstream.add(
        kit.tool_calls([("c1", "get_weather", {"city": "Oslo"}), ("c2", "get_time", {"tz": "CET"})], stream=stream)
    )
    response = await _call(
        kit, upstream, ChatRequest(messages=[Message.user("both")], tools=TOOLS, max_tokens=64), stream
    )
    assert [(c.name, dict(c.arguments or {})) for c in response.tool_calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {"tz": "CET"}),
    ]


@kit_param
async def test_image_input(kit: DialectKit, upstream: FakeUpstream) -> None:
    upstream.add(kit.text("a red dot", stream=True))
    image = ImagePart(data="iVBORw0KGgo=", media_type="image/png")
    request = ChatRequest(messages=[Message.user([TextPart("What is this?"), image])], max_tokens=64)
    assert (await _call(kit, upstream, request, True)).text == "a red dot"
    assert kit.sent_image(upstream.requests[0])


@kit_param
@stream_param
async def test_reasoning(kit: DialectKit, stream: bool, upstream: FakeUpstream) -> None:
    upstream.add(kit.reasoning("First, consider the question.", "42", stream=stream))
    response = await _call(kit, upstream, REQ, stream)
    assert response.reasoning == "First, consider the question."
    assert response.text == "42"


@kit_param
@stream_param
async def test_max_tokens_cut(kit: DialectKit, stream: bool, upstream: FakeUpstream) -> None:
    upstream.add(kit.length("The answer is", stream=stream))
    response = await _call(kit, upstream, REQ, stream)
    assert response.text == "The answer is"
    assert response.finish_reason is FinishReason.LENGTH


STATUS_MATRIX: dict[int, type[LlmError]] = {
    400: InvalidRequestError,
    401: AuthError,
    403: AuthError,
    404: InvalidRequestError,
    408: RequestTimeout,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: OverloadedError,
    504: ServerError,
    529: OverloadedError,
}


@kit_param
@pytest.mark.parametrize("status", sorted(STATUS_MATRIX))
@stream_param
async def test_status_mapping(kit: DialectKit, status: int, stream: bool, upstream: FakeUpstream) -> None:
    upstream.add(kit.error(status, retry_after=3 if status == 429 else None))
    with pytest.raises(LlmError) as info:
        await _call(kit, upstream, REQ, stream)
    err = info.value
    assert isinstance(err, STATUS_MATRIX[status]), (status, type(err))
    assert err.status == status
    assert err.provider == kit.provider(upstream.url()).name
    if status == 429:
        assert err.retry_after == 3.0 and err.retryable


@kit_param
async def test_quota_exhausted(kit: DialectKit, upstream: FakeUpstream) -> None:
    upstream.add(kit.quota())
    with pytest.raises(QuotaExceededError) as info:
        await _call(kit, upstream, REQ, False)
    assert not info.value.retryable
    assert info.value.status == kit.quota_status


def test_replies_are_real_http() -> None:
    assert isinstance(KITS[0].text("x", stream=True), Reply)
