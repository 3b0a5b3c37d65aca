"""The official ``openai`` and ``anthropic`` SDKs, unchanged, as clients of the gateway on 127.0.0.1, in
front of fake upstreams of other dialects: an OpenAI client reaching an Anthropic or Ollama upstream, an
Anthropic client reaching an OpenAI-dialect upstream, with text, streams, parallel tool calls, thinking,
usage and errors translated; one test runs the real ``llmrelay serve`` process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from gateway_support import GATEWAY_KEY_SECRET, serving, upstream_config
from llmrelay.testing import FakeUpstream
from llmrelay.testing.anthropic_kit import KIT as AN
from llmrelay.testing.ollama_kit import KIT as OL
from llmrelay.testing.openai_kit import KIT as OA

HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture(autouse=True)
def _keys(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
    monkeypatch.setenv("GW_TEST_AN_KEY", "sk-ant-upstream-000000")
    yield


@pytest.fixture
async def ups() -> AsyncIterator[tuple[FakeUpstream, FakeUpstream, FakeUpstream]]:
    async with FakeUpstream() as o, FakeUpstream() as a, FakeUpstream() as ol:
        yield o, a, ol


def oai(url: str, key: str = GATEWAY_KEY_SECRET) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def ant(url: str, key: str = GATEWAY_KEY_SECRET) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0)


# --- OpenAI SDK -> other dialects -------------------------------------------------------------------------


async def test_openai_sdk_to_an_anthropic_upstream_text_and_usage(ups: tuple[FakeUpstream, ...]) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, oai(gw.url) as client:
        a.add(AN.text("Hello from Claude", stream=False, usage=(12, 4)))
        reply = await client.chat.completions.create(model="an/claude-haiku-4-5", messages=HI)
    assert reply.choices[0].message.content == "Hello from Claude"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "an/test-model"  # the model that answered, as its upstream named it
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 4)
    sent = a.requests[0]
    assert sent.path == "/v1/messages" and sent.json["model"] == "claude-haiku-4-5"
    assert sent.headers["x-api-key"] == "sk-ant-upstream-000000"  # the provider key, never the gateway's
    assert GATEWAY_KEY_SECRET not in json.dumps(dict(sent.headers))


async def test_openai_sdk_streams_from_an_ollama_upstream_with_usage_at_the_end(
    ups: tuple[FakeUpstream, ...],
) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, oai(gw.url) as client:
        ol.add(OL.text("streamed words", stream=True, usage=(7, 3)))
        stream = await client.chat.completions.create(
            model="ol/llama3.2", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed words"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 7
    assert {c.model for c in chunks} == {"ol/llama3.2"} or all(c.model.startswith("ol/") for c in chunks)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_openai_sdk_parallel_tool_calls_from_an_anthropic_upstream(
    ups: tuple[FakeUpstream, ...], stream: bool
) -> None:
    o, a, ol = ups
    calls = [("toolu_1", "weather", {"city": "Paris"}), ("toolu_2", "weather", {"city": "Oslo"})]
    async with serving(upstream_config(o, a, ol)) as gw, oai(gw.url) as client:
        a.add(AN.tool_calls(calls, stream=stream))
        if stream:
            s = await client.chat.completions.create(
                model="an/claude-haiku-4-5",
                messages=HI,
                tools=[WEATHER],
                stream=True,  # type: ignore[list-item]
            )
            pieces: dict[int, dict[str, str]] = {}
            async for chunk in s:
                for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    got = pieces.setdefault(call.index, {"id": "", "name": "", "args": ""})
                    got["id"] += call.id or ""
                    got["name"] += (call.function.name or "") if call.function else ""
                    got["args"] += (call.function.arguments or "") if call.function else ""
            result = [(p["id"], p["name"], json.loads(p["args"])) for _, p in sorted(pieces.items())]
        else:
            reply = await client.chat.completions.create(
                model="an/claude-haiku-4-5",
                messages=HI,
                tools=[WEATHER],  # type: ignore[list-item]
            )
            assert reply.choices[0].finish_reason == "tool_calls"
            result = [
                (c.id, c.function.name, json.loads(c.function.arguments))
                for c in reply.choices[0].message.tool_calls or []
                if c.type == "function"
            ]
    assert result == calls
    assert a.requests[0].json["tools"][0]["name"] == "weather"


# --- Anthropic SDK -> other dialects ----------------------------------------------------------------------


async def test_anthropic_sdk_to_an_openai_upstream_text_and_stream(ups: tuple[FakeUpstream, ...]) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, ant(gw.url) as client:
        o.add(OA.text("Hi from GPT", stream=False, usage=(9, 3)))
        message = await client.messages.create(model="oa/gpt-4o-mini", max_tokens=50, messages=HI)  # type: ignore[arg-type]
        o.add(OA.text("streamed GPT", stream=True))
        async with client.messages.stream(model="oa/gpt-4o-mini", max_tokens=50, messages=HI) as s:  # type: ignore[arg-type]
            text = "".join([t async for t in s.text_stream])
            final = await s.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == "Hi from GPT"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 3)
    assert message.model == "oa/test-model" and message.stop_reason == "end_turn"
    assert text == "streamed GPT" and final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    assert o.requests[0].headers["authorization"] == "Bearer sk-upstream-openai-000000"


async def test_anthropic_sdk_gets_thinking_and_parallel_tool_calls_from_an_openai_upstream(
    ups: tuple[FakeUpstream, ...],
) -> None:
    o, a, ol = ups
    calls = [("call_1", "weather", {"city": "Rome"}), ("call_2", "weather", {"city": "Lima"})]
    tool = {"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    async with serving(upstream_config(o, a, ol)) as gw, ant(gw.url) as client:
        o.add(OA.reasoning("let me think", "the answer", stream=True))
        async with client.messages.stream(model="oa/gpt-4o-mini", max_tokens=50, messages=HI) as s:  # type: ignore[arg-type]
            thought = await s.get_final_message()
        o.add(OA.tool_calls(calls, stream=True))
        async with client.messages.stream(
            model="oa/gpt-4o-mini",
            max_tokens=50,
            messages=HI,
            tools=[tool],  # type: ignore[arg-type,list-item]
        ) as s:
            used = await s.get_final_message()
    assert [b.type for b in thought.content] == ["thinking", "text"]
    assert thought.content[0].thinking == "let me think"  # type: ignore[union-attr]
    assert used.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in used.content if b.type == "tool_use"] == calls


async def test_anthropic_sdk_counts_tokens_and_lists_models(ups: tuple[FakeUpstream, ...]) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, ant(gw.url) as client:
        counted = await client.messages.count_tokens(model="oa/gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
        listed = await client.models.list()
    assert counted.input_tokens > 0
    assert {"oa/gpt-4o-mini", "an/claude-haiku-4-5"} <= {m.id for m in listed.data}
    assert not o.requests and not a.requests  # counted here, nothing sent upstream


# --- errors, in each SDK's own types ----------------------------------------------------------------------


async def test_a_wrong_or_missing_gateway_key_is_401_in_both_dialects(ups: tuple[FakeUpstream, ...]) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw:
        async with oai(gw.url, "wrong-key") as client:
            with pytest.raises(openai.AuthenticationError) as info:
                await client.chat.completions.create(model="oa/gpt-4o-mini", messages=HI)
        async with ant(gw.url, "wrong-key") as aclient:
            with pytest.raises(anthropic.AuthenticationError) as ainfo:
                await aclient.messages.create(model="oa/gpt-4o-mini", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    assert info.value.status_code == 401 and ainfo.value.status_code == 401
    assert "wrong-key" not in str(info.value) and "wrong-key" not in str(ainfo.value)
    assert ainfo.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert not o.requests


async def test_unknown_model_is_404_in_both_dialects(ups: tuple[FakeUpstream, ...]) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, oai(gw.url) as client, ant(gw.url) as aclient:
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="nobody/nothing", messages=HI)
        with pytest.raises(anthropic.NotFoundError):
            await aclient.messages.create(model="nobody/nothing", max_tokens=5, messages=HI)  # type: ignore[arg-type]
    assert "nobody/nothing" in str(info.value)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_upstream_429_passes_retry_after_through(ups: tuple[FakeUpstream, ...], stream: bool) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, oai(gw.url) as client, ant(gw.url) as aclient:
        a.add(AN.error(429, retry_after=7))
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="an/claude-haiku-4-5", messages=HI, stream=stream)
        o.add(OA.error(429, retry_after=3))
        with pytest.raises(anthropic.RateLimitError) as ainfo:
            await aclient.messages.create(model="oa/gpt-4o-mini", max_tokens=5, messages=HI, stream=stream)  # type: ignore[arg-type]
    assert info.value.status_code == 429 and info.value.response.headers["retry-after"] == "7"
    assert ainfo.value.response.headers["retry-after"] == "3"


async def test_an_upstream_500_is_a_502_and_its_key_trouble_is_not_the_callers_401(
    ups: tuple[FakeUpstream, ...],
) -> None:
    o, a, ol = ups
    async with serving(upstream_config(o, a, ol)) as gw, oai(gw.url) as client:
        o.add(OA.error(500))
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="oa/gpt-4o-mini", messages=HI)
        o.add(OA.error(401))
        with pytest.raises(openai.APIStatusError) as auth:
            await client.chat.completions.create(model="oa/gpt-4o-mini", messages=HI)
    assert info.value.status_code == 502
    assert auth.value.status_code == 502 and "not about the key you sent" in str(auth.value)
    assert "sk-upstream-openai" not in str(auth.value)


# --- the real `llmrelay serve` ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str, proc: asyncio.subprocess.Process, within: float = 15.0) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"llmrelay serve exited with {proc.returncode}")
            try:
                async with session.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("llmrelay serve did not become ready")


async def start_serve(tmp_path: Path, config: str, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    path = tmp_path / "llmrelay.toml"
    path.write_text(config)
    port = free_port()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    code = "import sys; from llmrelay.cli import main; sys.exit(main())"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "serve", "--config", str(path), "--port", str(port), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, proc)
    return proc, url


async def test_the_real_llmrelay_serve_answers_the_openai_sdk(tmp_path: Path, upstream: FakeUpstream) -> None:
    config = upstream_config(upstream, extra='[gateway]\napi_key_env = "GW_TEST_GATEWAY_KEY"\n')
    os.environ["GW_TEST_GATEWAY_KEY"] = GATEWAY_KEY_SECRET
    try:
        proc, url = await start_serve(tmp_path, config)
    finally:
        del os.environ["GW_TEST_GATEWAY_KEY"]
    try:
        upstream.add(OA.text("served for real", stream=False))
        async with oai(url) as client:
            reply = await client.chat.completions.create(model="oa/gpt-4o-mini", messages=HI)
            with pytest.raises(openai.AuthenticationError):
                await oai(url, "bad").chat.completions.create(model="oa/gpt-4o-mini", messages=HI)
        assert reply.choices[0].message.content == "served for real"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()
    log = err.decode()
    assert "listening on http://127.0.0.1:" in log
    assert GATEWAY_KEY_SECRET not in log and "sk-upstream" not in log
