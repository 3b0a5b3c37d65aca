"""The ``llmrelay`` command, run as a real subprocess against a fake upstream on 127.0.0.1 (and, with
nothing configured, against the embedded local model)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmrelay.cli import EXIT_AUTH, EXIT_CONFIG, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT

KEY = "sk-cli-SECRET-abcdefghij0123456789"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "xdg").mkdir()
    return tmp_path


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without any provider keys, URLs or config, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) and k not in ("OLLAMA_HOST", "LLMRELAY_CONFIG")
    }
    env.update(XDG_CONFIG_HOME=str(home / "xdg"), HOME=str(home), **extra)
    return env


async def run(home: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        *args,
        env=env or base_env(home),
        cwd=home,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    return Result(proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode())


def openai_env(home: Path, upstream: FakeUpstream) -> dict[str, str]:
    return base_env(home, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=upstream.url("/v1"))


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("llmrelay: ")
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert KEY not in result.err and KEY not in result.out


# --- chat ---------------------------------------------------------------------------------------------------


async def test_chat_streams_from_env_configured_openai(upstream: FakeUpstream, home: Path) -> None:
    upstream.add(KIT.text("Hello world", stream=True))
    result = await run(home, "chat", "Say hello", env=openai_env(home, upstream))
    assert result.code == EXIT_OK, result
    assert result.out == "Hello world\n"
    # Priced from genai-prices: 10 x $0.15/M + 5 x $0.60/M (gpt-4o-mini), whatever base URL served it.
    assert "openai/gpt-4o-mini · 10 in + 5 out = 15 tokens · $0.0000045 · finish: stop" in result.err
    assert "local model" not in result.err
    body = upstream.requests[0].json
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_chat_through_a_config_file_with_every_option(upstream: FakeUpstream, home: Path) -> None:
    config = home / "custom.toml"
    config.write_text(
        f'[providers.work]\ntype = "openai"\nbase_url = "{upstream.url("/v1")}"\napi_key_env = "WORK_KEY"\n'
        '[aliases]\nw = "work/m1"\n'
    )
    image = home / "dot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    upstream.add(KIT.text("done", stream=True))
    env = base_env(home, WORK_KEY="sk-work-0123456789")
    args = ["--config", str(config), "-m", "w", "-s", "be brief", "--temperature", "0.5", "--max-tokens", "7"]
    result = await run(home, "chat", *args, "--stop", "END", "--image", str(image), "Describe", env=env)
    assert result.code == EXIT_OK, result
    assert result.out == "done\n"
    body = upstream.requests[0].json
    assert body["model"] == "m1" and body["temperature"] == 0.5 and body["max_tokens"] == 7
    assert body["stop"] == ["END"]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    parts = body["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": "Describe"}
    encoded = base64.b64encode(image.read_bytes()).decode()
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{encoded}"
    assert "work/m1" in result.err


async def test_json_mode_prints_one_object_per_event(upstream: FakeUpstream, home: Path) -> None:
    upstream.add(KIT.text("Hello world", stream=True))
    result = await run(home, "chat", "--json", "hi", env=openai_env(home, upstream))
    assert result.code == EXIT_OK, result
    events = [json.loads(line) for line in result.out.splitlines()]
    assert [e["type"] for e in events] == ["text", "text", "done"]
    assert "".join(e["text"] for e in events if e["type"] == "text") == "Hello world"
    assert events[-1]["finish_reason"] == "stop"
    assert events[-1]["usage"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    assert "15 tokens" in result.err


async def test_no_stream_mode(upstream: FakeUpstream, home: Path) -> None:
    upstream.add(KIT.text("whole answer", stream=False))
    result = await run(home, "chat", "--no-stream", "hi", env=openai_env(home, upstream))
    assert (result.code, result.out) == (EXIT_OK, "whole answer\n")
    assert upstream.requests[0].json.get("stream") in (None, False)


async def test_stdin_is_the_prompt_or_is_appended_to_it(upstream: FakeUpstream, home: Path) -> None:
    upstream.add(KIT.text("a", stream=True), KIT.text("b", stream=True))
    env = openai_env(home, upstream)
    only = await run(home, "chat", env=env, stdin=b"piped question\n")
    both = await run(home, "chat", "Summarise:", env=env, stdin=b"some text")
    assert only.code == both.code == EXIT_OK
    assert upstream.requests[0].json["messages"][-1]["content"] == "piped question"
    assert upstream.requests[1].json["messages"][-1]["content"] == "Summarise:\n\nsome text"


async def test_no_prompt_is_a_usage_error(home: Path) -> None:
    assert_one_line_error(await run(home, "chat"), EXIT_USAGE, "no prompt")
    assert (await run(home, "chat", "--max-tokens", "lots", "x")).code == EXIT_USAGE


async def test_a_missing_key_is_one_line_naming_the_variable(home: Path) -> None:
    result = await run(home, "chat", "-m", "groq/llama-3.3-70b-versatile", "hi")
    assert_one_line_error(result, EXIT_AUTH, "GROQ_API_KEY", "api_key_env")


async def test_an_unknown_provider_is_one_line_with_a_suggestion(home: Path) -> None:
    result = await run(home, "chat", "-m", "opnai/gpt-4o-mini", "hi")
    assert_one_line_error(result, EXIT_CONFIG, "unknown provider 'opnai'", "did you mean 'openai'")


async def test_a_rejected_key_is_one_line_and_never_shows_the_key(upstream: FakeUpstream, home: Path) -> None:
    upstream.add(KIT.error(401))
    result = await run(home, "chat", "hi", env=openai_env(home, upstream))
    assert_one_line_error(result, EXIT_AUTH, "HTTP 401", "OPENAI_API_KEY")


async def test_json_mode_reports_errors_as_an_event_too(upstream: FakeUpstream, home: Path) -> None:
    (home / "llmrelay.toml").write_text("[retry]\nmax_attempts = 1\n")  # no retries: the 429 itself
    upstream.add(KIT.error(429, retry_after=3))
    result = await run(home, "chat", "--json", "hi", env=openai_env(home, upstream))
    assert result.code == EXIT_UNAVAILABLE
    event = json.loads(result.out.strip())
    assert event["type"] == "error" and event["kind"] == "rate_limit" and event["exit_code"] == EXIT_UNAVAILABLE
    assert "retry after 3s" in result.err
    assert len(upstream.requests) == 1


async def test_retries_that_all_fail_are_one_error_with_every_attempt(upstream: FakeUpstream, home: Path) -> None:
    # The default policy (three attempts), its waits capped so the Retry-After of 3 s is not slept.
    (home / "llmrelay.toml").write_text("[retry]\nbase_delay = 0.01\nmax_delay = 0.02\n")
    upstream.add(*[KIT.error(429, retry_after=3) for _ in range(3)])
    result = await run(home, "chat", "--json", "hi", env=openai_env(home, upstream))
    assert result.code == EXIT_UNAVAILABLE, result  # the last attempt's exit code
    event = json.loads(result.out.strip())
    assert (event["type"], event["kind"], event["exit_code"]) == ("error", "all_attempts_failed", EXIT_UNAVAILABLE)
    assert [a["error"]["kind"] for a in event["attempts"]] == ["rate_limit"] * 3
    assert len(upstream.requests) == 3
    line = result.err.strip()
    assert len(line.splitlines()) == 1 and "all 3 attempts failed" in line and "retry after 3s" in line, line
    assert KEY not in result.err and KEY not in result.out


def fallback_config(home: Path, first: FakeUpstream, second: FakeUpstream) -> dict[str, str]:
    """``main`` = the first server's ``a/model-a``, then the second's ``b/model-b``; no retries."""
    (home / "llmrelay.toml").write_text(
        f'[providers.a]\ntype = "openai"\nbase_url = "{first.url("/v1")}"\napi_key_env = "A_KEY"\n'
        f'[providers.b]\ntype = "openai"\nbase_url = "{second.url("/v1")}"\napi_key_env = "B_KEY"\n'
        '[fallbacks]\nmain = ["a/model-a", "b/model-b"]\n[retry]\nmax_attempts = 1\n'
    )
    return base_env(home, A_KEY=KEY, B_KEY="sk-b-key-0123456789")


@pytest.mark.parametrize("mode", [[], ["--no-stream"]], ids=["stream", "no-stream"])
async def test_json_mode_shows_each_failed_attempt_and_who_answered(
    upstream: FakeUpstream, home: Path, mode: list[str]
) -> None:
    async with FakeUpstream() as second:
        env = fallback_config(home, upstream, second)
        upstream.add(KIT.error(503))
        second.add(KIT.text("Hello world", stream=not mode))
        result = await run(home, "chat", "-m", "main", "--json", *mode, "hi", env=env)
    assert result.code == EXIT_OK, result
    events = [json.loads(line) for line in result.out.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "attempt" and types.count("attempt") == 1 and types[-1] == "done"
    attempt = events[0]
    assert (attempt["provider"], attempt["model"]) == ("a", "model-a")
    assert attempt["error"]["type"] == "error" and attempt["error"]["status"] == 503
    assert isinstance(attempt["elapsed_ms"], float) and attempt["elapsed_ms"] >= 0
    assert (events[-1]["provider"], events[-1]["model"]) == ("b", "test-model")
    assert "".join(e["text"] for e in events if e["type"] == "text") == "Hello world"
    assert (upstream.requests[0].json["model"], second.requests[0].json["model"]) == ("model-a", "model-b")
    assert KEY not in result.out and KEY not in result.err


async def test_the_usage_line_says_which_fallback_member_answered(upstream: FakeUpstream, home: Path) -> None:
    async with FakeUpstream() as second:
        env = fallback_config(home, upstream, second)
        upstream.add(KIT.error(503))
        second.add(KIT.text("Hello world", stream=True))
        result = await run(home, "chat", "-m", "main", "hi", env=env)
    assert result.code == EXIT_OK, result
    assert result.out == "Hello world\n"
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("llmrelay: main · 10 in + 5 out")
    assert line.endswith("· via b/test-model after 1 failed attempt")


async def test_the_default_policy_retries_a_429_in_the_cli(upstream: FakeUpstream, home: Path) -> None:
    (home / "llmrelay.toml").write_text("[retry]\nbase_delay = 0.01\nmax_delay = 0.02\n")
    upstream.add(KIT.error(429), KIT.text("Hello world", stream=True))
    result = await run(home, "chat", "--json", "hi", env=openai_env(home, upstream))
    assert result.code == EXIT_OK, result
    events = [json.loads(line) for line in result.out.splitlines()]
    assert events[0]["type"] == "attempt" and events[0]["error"]["kind"] == "rate_limit"
    assert (events[-1]["provider"], events[-1]["type"]) == ("openai", "done")
    assert result.err.strip().endswith("after 1 failed attempt") and len(upstream.requests) == 2


async def test_an_unreachable_server_is_exit_code_5(home: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = base_env(home, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1")
    result = await run(home, "chat", "hi", env=env)
    assert_one_line_error(result, EXIT_UNAVAILABLE, "connection", "base_url")


async def test_a_stream_cut_after_output_began_ends_the_line_and_fails(upstream: FakeUpstream, home: Path) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}
    first = len(f"data: {json.dumps(chunk)}\n\n")
    upstream.add(Reply.sse([chunk, chunk], cut_after=first + 10))
    result = await run(home, "chat", "hi", env=openai_env(home, upstream))
    assert result.code in (1, EXIT_UNAVAILABLE)
    assert result.out.startswith("partial") and result.out.endswith("\n")
    assert len(result.err.strip().splitlines()) == 1


# --- the local model, with nothing configured -----------------------------------------------------------------


async def test_with_nothing_configured_the_local_model_answers_and_says_so(home: Path) -> None:
    result = await run(home, "chat", "--max-tokens", "12", "What is the capital of France?")
    assert result.code == EXIT_OK, result
    assert result.out.strip()
    assert result.err.count("no provider configured and no API key found") == 1
    assert "local/smollm2" in result.err
    assert "in + 12 out" in result.err or "finish: stop" in result.err


# --- config, models, providers --------------------------------------------------------------------------------


async def test_config_show_redacts_every_secret(home: Path) -> None:
    (home / "llmrelay.toml").write_text(
        f'[providers.openai]\napi_key = "{KEY}"\nheaders = {{ Authorization = "Bearer {KEY}", X-Team = "r" }}\n'
        f'settings = {{ project = "p" }}\n[providers.groq]\napi_key_env = "MY_GROQ"\n'
    )
    env = base_env(home, MY_GROQ="gsk_env_SECRET_987654321", ANTHROPIC_API_KEY="sk-ant-SECRET-1234567890")
    result = await run(home, "config", "show", env=env)
    assert result.code == EXIT_OK, result
    for secret in (KEY, "gsk_env_SECRET_987654321", "sk-ant-SECRET-1234567890"):
        assert secret not in result.out and secret not in result.err
    assert 'api_key = "[REDACTED]"' in result.out
    assert '"[REDACTED]"' in result.out.split("headers = ")[1].splitlines()[0]
    assert 'X-Team = "r"' in result.out
    assert "key from $MY_GROQ" in result.out
    assert "warning" in result.err and "api_key_env" in result.err  # the literal key is warned about
    import tomllib

    tomllib.loads(result.out)  # what it prints is valid TOML
    assert "[retry]\n# the default retry policy" in result.out and "max_attempts = 3" in result.out
    for command in (["models"], ["providers"], ["config", "check"]):
        shown = await run(home, *command, env=env)
        for secret in (KEY, "gsk_env_SECRET_987654321", "sk-ant-SECRET-1234567890"):
            assert secret not in shown.out and secret not in shown.err


async def test_config_show_prints_fallbacks_and_the_retry_policy(home: Path) -> None:
    import tomllib

    (home / "llmrelay.toml").write_text(
        '[fallbacks]\nmain = ["openai/gpt-4o-mini", "local/smollm2"]\n'
        "[retry]\nmax_attempts = 5\nbase_delay = 0.25\nmax_delay = 4\ndeadline = 30\n"
    )
    result = await run(home, "config", "show")
    assert result.code == EXIT_OK, result
    shown = tomllib.loads(result.out)
    assert shown["fallbacks"] == {"main": ["openai/gpt-4o-mini", "local/smollm2"]}
    assert shown["retry"] == {"max_attempts": 5, "base_delay": 0.25, "max_delay": 4.0, "deadline": 30.0}
    assert "not yet in effect" not in result.err


async def test_config_check_names_the_file_and_key_path(home: Path) -> None:
    path = home / "llmrelay.toml"
    path.write_text('[providers.groq]\nbase_url = "groq.com"\n')
    result = await run(home, "config", "check")
    assert_one_line_error(result, EXIT_CONFIG, str(path), "providers.groq.base_url: not a URL")
    path.write_text('[providers.work]\ntype = "opneai"\n')
    result = await run(home, "config", "check")
    assert_one_line_error(result, EXIT_CONFIG, "providers.work.type", "did you mean 'openai'")
    path.write_text('[providers.groq]\ndefault_model = "x"\n[providers.mine]\ntype = "local"\n')
    result = await run(home, "config", "check")
    assert result.code == EXIT_AUTH
    assert "problem  groq" in result.out and "GROQ_API_KEY" in result.out and "ok       mine" in result.out


async def test_config_init_writes_a_valid_starter_file(home: Path) -> None:
    result = await run(home, "config", "init")
    target = home / "xdg" / "llmrelay" / "llmrelay.toml"
    assert result.code == EXIT_OK and str(target) in result.out
    assert 'default = "local/smollm2"' in target.read_text()
    assert (await run(home, "config", "check")).code == EXIT_OK
    again = await run(home, "config", "init")
    assert_one_line_error(again, EXIT_CONFIG, "already exists", "--force")
    assert (await run(home, "config", "init", "--force")).code == EXIT_OK


async def test_models_and_providers_list_what_is_reachable(home: Path) -> None:
    (home / "llmrelay.toml").write_text(
        '[providers.work]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\ndefault_model = "qwen"\n'
        'models = ["qwen", "llama"]\n[aliases]\nfast = "work/qwen"\n'
    )
    models = await run(home, "models", env=base_env(home, OPENAI_API_KEY=KEY))
    assert models.code == EXIT_OK, models
    header = models.out.splitlines()[0].split()
    assert header == ["MODEL", "FROM", "STREAM", "TOOLS", "VISION", "JSON", "REASONING", "STATUS"]
    assert "work/qwen*" in models.out and "work/llama" in models.out
    assert "openai/gpt-4o-mini" in models.out and "key from $OPENAI_API_KEY" in models.out
    assert "local/smollm2" in models.out
    assert "alias fast -> work/qwen" in models.out
    providers = await run(home, "providers")
    assert providers.code == EXIT_OK
    for name in ("openai", "anthropic", "gemini", "groq", "ollama", "azure", "local"):
        assert f"\n{name} " in providers.out
    assert "missing key: set $GROQ_API_KEY" in providers.out


# --- start-up -------------------------------------------------------------------------------------------------


async def test_help_is_fast_and_imports_nothing_heavy(home: Path) -> None:
    started = time.perf_counter()
    result = await run(home, "--help")
    elapsed = time.perf_counter() - started
    assert result.code == EXIT_OK and "chat" in result.out and "Exit codes" in result.out
    assert elapsed < 5, f"--help took {elapsed:.2f}s"
    probe = "import sys; from llmrelay.cli import main; main(['--help']); print(sorted(sys.modules))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(home)
    )
    out, _ = await proc.communicate()
    loaded = out.decode().splitlines()[-1]
    for heavy in ("aiohttp", "llama_cpp", "numpy", "platformdirs"):
        assert f"'{heavy}'" not in loaded, heavy


async def test_version_and_the_console_script(home: Path) -> None:
    result = await run(home, "--version")
    assert result.code == EXIT_OK and result.out.startswith("llmrelay ")
    script = Path(sys.executable).with_name("llmrelay")
    if script.exists():
        proc = await asyncio.create_subprocess_exec(str(script), "--version", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0 and out.decode().startswith("llmrelay ")


async def test_sections_not_yet_in_effect_are_warned_about_never_silently_ignored(home: Path) -> None:
    path = home / "llmrelay.toml"
    path.write_text(
        'default = "mine/smollm2"\n[providers.mine]\ntype = "local"\n'
        '[fallbacks]\ndefault = ["local/smollm2"]\n'
        "[rate_limits.openai]\nrequests_per_minute = 5\n"
        '[deliberations.review]\nmodels = ["local/smollm2"]\njudge = "local/smollm2"\n'
        '[gateway]\nhost = "127.0.0.1"\n'
    )
    result = await run(home, "config", "check")
    assert result.code == EXIT_OK, result
    warned = [line for line in result.err.splitlines() if line.startswith("llmrelay: warning: ")]
    from llmrelay.config._schema import NOT_YET_IN_EFFECT

    for section in NOT_YET_IN_EFFECT:
        assert any(f"[{section}] is valid but not yet in effect" in line for line in warned), result.err
    assert "fallbacks" not in NOT_YET_IN_EFFECT and not any("[fallbacks]" in line for line in warned)
    assert "deliberations" not in NOT_YET_IN_EFFECT and not any("[deliberations]" in line for line in warned)
    assert "gateway" not in NOT_YET_IN_EFFECT and not any("[gateway]" in line for line in warned)  # llmrelay serve
    assert all(str(path) in line for line in warned)
    path.write_text('[providers.mine]\ntype = "local"\n')
    assert "not yet in effect" not in (await run(home, "config", "check")).err


@pytest.mark.parametrize("mode", [[], ["--json"], ["--no-stream"]], ids=["text", "json", "no-stream"])
async def test_a_surrogate_pair_split_across_events_prints_whole(
    upstream: FakeUpstream, home: Path, mode: list[str]
) -> None:
    """Item 13: `\\ud83d` in one event and `\\ude00` in the next is one emoji, and a lone half never costs
    the answer (before: nothing printed, exit 1 "internal error")."""
    if mode == ["--no-stream"]:
        body = '{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant",'
        body += '"content":"ok \\ud83d\\ude00 lone \\ud83d"},"finish_reason":"stop"}]}'
        upstream.add(Reply(chunks=(body.encode(),), content_type="application/json"))
    else:
        wire = b"".join(
            b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"'
            + part
            + b'"},"finish_reason":null}]}\n\n'
            for part in (b"ok \\ud83d", b"\\ude00 lone \\ud83d")
        )
        wire += b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},'
        wire += b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
        upstream.add(Reply.raw(wire, content_type="text/event-stream"))
    result = await run(home, "chat", *mode, "hi", env=openai_env(home, upstream))
    assert result.code == EXIT_OK, result
    text = result.out
    if mode == ["--json"]:
        text = "".join(json.loads(line).get("text", "") for line in result.out.splitlines())
    assert "ok \U0001f600 lone \ufffd" in text, text
