"""Ctrl-C during ``llmrelay chat``, run as a real subprocess against a fake upstream that stalls mid-stream:
exit code 130, one line on stderr, the upstream connection closed, and with ``--json`` a final ``error``
line on stdout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from llmrelay.cli import EXIT_INTERRUPTED
from llmrelay.testing import FakeUpstream, Reply, SeenRequest

KEY = "sk-cli-interrupt-0123456789abcdef"
CHUNK = {"choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}


def env_for(home: Path, upstream: FakeUpstream) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) and k not in ("OLLAMA_HOST", "LLMRELAY_CONFIG")
    }
    env.update(XDG_CONFIG_HOME=str(home), HOME=str(home), OPENAI_API_KEY=KEY, OPENAI_BASE_URL=upstream.url("/v1"))
    return env


async def interrupted_chat(home: Path, upstream: FakeUpstream, *args: str) -> tuple[int, str, str]:
    """Start ``llmrelay chat ARGS hi``, wait for the first output, send SIGINT, return (code, out, err)."""
    upstream.add(Reply.sse([CHUNK] * 3 + ["[DONE]"], stall=2.0, stall_after=1))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        "chat",
        *args,
        "hi",
        env=env_for(home, upstream),
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.read(len("partial")), 60)
        assert first, "the command printed nothing before the stall"
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1, (first + out).decode(), err.decode()


async def test_ctrl_c_during_a_stream_exits_130_and_closes_the_connection(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    code, out, err = await interrupted_chat(tmp_path, upstream)
    assert code == EXIT_INTERRUPTED, (out, err)
    assert out == "partial\n"  # the partial line is ended before "interrupted" goes to stderr
    assert err.strip().splitlines() == ["llmrelay: interrupted"]
    assert await upstream.wait_disconnect(within=5.0)


async def test_ctrl_c_with_json_ends_with_an_error_line(upstream: FakeUpstream, tmp_path: Path) -> None:
    code, out, err = await interrupted_chat(tmp_path, upstream, "--json")
    assert code == EXIT_INTERRUPTED, (out, err)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"type": "text", "text": "partial"}
    assert lines[-1] == {
        "type": "error",
        "kind": "interrupted",
        "message": "interrupted (Ctrl-C)",
        "exit_code": EXIT_INTERRUPTED,
    }
    assert "Traceback" not in err and KEY not in out + err


async def test_ctrl_c_with_json_and_no_stream_ends_with_an_error_line(upstream: FakeUpstream, tmp_path: Path) -> None:
    arrived = asyncio.Event()

    async def slow_reply(seen: SeenRequest) -> Reply:
        arrived.set()
        await asyncio.sleep(3.0)  # interrupted while waiting for the reply
        return Reply.json({"choices": []})

    upstream.add(slow_reply)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        "chat",
        "--json",
        "--no-stream",
        "hi",
        env=env_for(tmp_path, upstream),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(arrived.wait(), 60)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, (out, err)
    assert json.loads(out.decode().splitlines()[-1])["kind"] == "interrupted"
