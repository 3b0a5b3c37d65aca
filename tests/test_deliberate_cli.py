"""``llmrelay deliberate``, run as a real subprocess against fake upstreams on 127.0.0.1 (an OpenAI-dialect
one and an Anthropic-dialect one, so the participants really are on different providers): plain lines,
``--json`` events, transcripts, bad input before any call, a named ``[deliberations.NAME]``, Ctrl-C, the
live view on a pseudo-terminal, and (slow) the offline path on the embedded local model."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmrelay._codec import loads
from llmrelay.cli import EXIT_AUTH, EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from llmrelay.deliberation import DeliberationDone, Transcript, TurnDelta, TurnFinished, TurnStarted
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import KIT as ANTHROPIC
from llmrelay.testing.openai_kit import KIT as OPENAI

OA_KEY = "sk-delib-oa-SECRET-0123456789"
AN_KEY = "sk-ant-delib-SECRET-0123456789"
CHUNK = {"choices": [{"index": 0, "delta": {"content": "thinking"}, "finish_reason": None}]}


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Ups:
    oa: FakeUpstream
    an: FakeUpstream


@pytest.fixture
async def ups() -> AsyncIterator[Ups]:
    async with FakeUpstream() as oa, FakeUpstream() as an:
        yield Ups(oa, an)


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """No provider keys, URLs or configuration from the parent; ``extra`` on top."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) and k not in ("OLLAMA_HOST", "LLMRELAY_CONFIG")
    }
    env.update(XDG_CONFIG_HOME=str(home / "xdg"), HOME=str(home), **extra)
    return env


def configure(home: Path, ups: Ups, extra: str = "") -> dict[str, str]:
    """``llmrelay.toml`` naming the two upstreams as providers ``oa`` and ``an``; the environment with their keys."""
    (home / "llmrelay.toml").write_text(
        f'[providers.oa]\ntype = "openai"\nbase_url = "{ups.oa.url("/v1")}"\napi_key_env = "OA_KEY"\n'
        f'[providers.an]\ntype = "anthropic"\nbase_url = "{ups.an.url()}"\napi_key_env = "AN_KEY"\n'
        "[retry]\nmax_attempts = 1\n" + extra
    )
    return env_for(home, OA_KEY=OA_KEY, AN_KEY=AN_KEY)


async def run(home: Path, *args: str, env: dict[str, str]) -> Result:
    """``llmrelay deliberate ARGS``."""
    return await run_command(home, "deliberate", *args, env=env)


async def run_command(home: Path, *args: str, env: dict[str, str]) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        *args,
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return Result(proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode())


def two_rounds(ups: Ups) -> None:
    """Round 1: builder (oa) says 42, skeptic (an) says 41; round 2: both say 42."""
    ups.oa.add(
        OPENAI.text("Six sevens.\nAnswer: 42", stream=True, usage=(20, 8)),
        OPENAI.text("Still 42.\nAnswer: 42", stream=True, usage=(60, 5)),
    )
    ups.an.add(
        ANTHROPIC.text("I get 41.\nAnswer: 41", stream=True, usage=(22, 9)),
        ANTHROPIC.text("Right, 42.\nAnswer: 42", stream=True, usage=(70, 6)),
    )


PEOPLE = ("-p", "builder=oa/gpt-4o-mini", "-p", "skeptic=an/claude-test")


# --- output -----------------------------------------------------------------------------------------------


async def test_plain_output_one_block_per_turn_then_the_final_answer(ups: Ups, tmp_path: Path) -> None:
    two_rounds(ups)
    env = configure(tmp_path, ups, "[prices.oa]\ninput_per_mtok = 1\noutput_per_mtok = 4\n")
    args = [*PEOPLE, "--persona", "skeptic=You doubt everything.", "--rounds", "2", "--max-tokens", "300"]
    result = await run(tmp_path, *args, "What is 6 * 7?", env=env)
    assert result.code == EXIT_OK, result
    out = result.out
    assert "== round 1: answer ==" in out and "== round 2: revise ==" in out
    assert "[round 1] builder: Six sevens." in out and "[round 1] skeptic: I get 41." in out
    assert "[round 2] skeptic: Right, 42." in out
    # under each turn: who answered (the model the upstream reports), tokens, cost ([prices.oa]), time
    assert "  (oa/test-model · 28 tokens · $0.000052 · " in out and "  (an/test-model · 31 tokens · unpriced · " in out
    assert "[round 1] agreement 0.50: '42': 1, '41': 1" in out
    assert "[round 2] agreement 1.00 (unanimous)" in out
    assert "[vote] 42 (builder, skeptic)" in out
    assert out.endswith("== final answer ==\n42\n\nStill 42.\nAnswer: 42\n")  # the first 42-giver's text
    totals = [line for line in result.err.splitlines() if line.startswith("llmrelay: debate completed")]
    assert totals == [
        "llmrelay: debate completed · 4 calls · 200 tokens (172 in, 28 out) · $0.000132 + 2 unpriced · "
        + totals[0].rsplit(" · ", 1)[-1]
    ], result.err
    # each participant on its own provider, with its persona and the per-turn cap; round 2 shows the others
    assert ups.an.requests[0].json["system"] == "You doubt everything."
    assert ups.oa.requests[0].json["max_tokens"] == 300 and ups.an.requests[0].json["max_tokens"] == 300
    assert "Answer: 41" in json.dumps(ups.oa.requests[1].json)
    assert OA_KEY not in out + result.err and AN_KEY not in out + result.err


async def test_json_prints_the_event_stream_each_event_naming_its_participant(ups: Ups, tmp_path: Path) -> None:
    two_rounds(ups)
    result = await run(tmp_path, *PEOPLE, "--json", "What is 6 * 7?", env=configure(tmp_path, ups))
    assert result.code == EXIT_OK, result
    lines = result.out.splitlines()
    events = [loads(line) for line in lines]  # every line decodes with the tagged codec
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds[0] == "round_started" and kinds[-1] == "deliberation_done"
    assert kinds.count("turn_finished") == 4 and kinds.count("round_finished") == 2 and "aggregate" in kinds
    for line, event in zip(lines, events, strict=True):
        if isinstance(event, TurnStarted | TurnDelta | TurnFinished):
            assert json.loads(line)["participant"] in ("builder", "skeptic")
    text = {
        name: "".join(e.text for e in events if isinstance(e, TurnDelta) and e.participant == name and e.round == 1)
        for name in ("builder", "skeptic")
    }
    assert text == {"builder": "Six sevens.\nAnswer: 42", "skeptic": "I get 41.\nAnswer: 41"}
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.answer == "42" and done.totals.calls == 4
    assert "llmrelay: debate completed" not in result.err  # the totals are in the done event


async def test_o_writes_the_transcript_as_markdown_or_json_and_a_chair_synthesises(ups: Ups, tmp_path: Path) -> None:
    for suffix in ("md", "json"):
        ups.oa.add(
            OPENAI.text("Answer: 42", stream=True),
            OPENAI.text("Both agree on six sevens.\nAnswer: 42", stream=True),  # the chair, after the round
        )
        ups.an.add(ANTHROPIC.text("Answer: 42", stream=True))
        path = tmp_path / f"debate.{suffix}"
        args = [*PEOPLE, "--rounds", "1", "--synthesize-with", "oa/gpt-4o", "--plain", "-o", str(path)]
        result = await run(tmp_path, *args, "What is 6 * 7?", env=configure(tmp_path, ups))
        assert result.code == EXIT_OK, result
        assert "[synthesis] 42 (chair)" in result.out
        if suffix == "md":
            md = path.read_text()
            assert md.startswith("# Deliberation: What is 6 * 7?")
            assert "| chair | chair | oa/gpt-4o |" in md and "## Round 2: synthesis" in md
            assert "Both agree on six sevens." in md
        else:
            transcript = Transcript.loads(path.read_text())
            names = [t.participant for t in transcript.turns]
            assert sorted(names[:2]) == ["builder", "skeptic"] and names[2] == "chair"  # parallel, then the chair
            assert transcript.final is not None and transcript.final.method == "synthesis"
            assert transcript.done is not None and transcript.done.answer == "42"
    chair_request = ups.oa.requests[1].json
    assert chair_request["model"] == "gpt-4o" and "You are the chair" in json.dumps(chair_request)


# --- bad input: one line, the CLI's exit codes, no model called -------------------------------------------


BAD = [
    (["-p", "skeptic", "Q"], EXIT_USAGE, "-p 'skeptic': expected NAME=MODEL"),
    (["-p", "a b=oa/m", "Q"], EXIT_USAGE, "a participant name is letters"),
    (["-p", "a=nosuch/model", "Q"], EXIT_CONFIG, "unknown provider 'nosuch'"),
    (["--agents", "0", "Q"], EXIT_USAGE, "a deliberation needs at least one participant"),
    (["-p", "a=oa/m", "--strategy", "rounds", "Q"], EXIT_USAGE, "needs a chair"),
    (["-p", "a=oa/m", "--strategy", "council", "-p", "b=an/m", "Q"], EXIT_USAGE, "needs a chair"),
    (["-p", "a=oa/m", "--max-cost", "0", "Q"], EXIT_USAGE, "the budget is spent"),
    (["-p", "a=oa/m", "-p", "b=an/m", "--max-calls", "1", "Q"], EXIT_USAGE, "fewer than the 2 calls"),
    (["-p", "a=oa/m", "-p", "a=an/m", "Q"], EXIT_USAGE, "names must be unique"),
    (["-p", "a=oa/m", "--persona", "zed=hi", "Q"], EXIT_USAGE, "no participant is named 'zed'"),
    (["-p", "a=oa/m", "-m", "oa/m", "Q"], EXIT_USAGE, "-m and --agents set the default personas"),
    (["-p", "a=oa/m", "-o", "out.txt", "Q"], EXIT_USAGE, "written as .md (Markdown) or .json"),
    (["-p", "a=oa/m"], EXIT_USAGE, "no question"),
    (["--name", "nope", "Q"], EXIT_CONFIG, "no [deliberations.nope]"),
    (["-p", "a=openai/gpt-4o-mini", "Q"], EXIT_AUTH, "no API key for openai"),
]


@pytest.mark.parametrize(("args", "code", "needle"), BAD, ids=[b[2][:30] for b in BAD])
async def test_bad_input_is_one_line_and_calls_no_model(
    ups: Ups, tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    result = await run(tmp_path, *args, env=configure(tmp_path, ups))
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmrelay: ") and needle in lines[0], result.err
    assert "Traceback" not in result.err and result.out == ""
    assert ups.oa.requests == [] and ups.an.requests == []


async def test_bad_input_with_json_ends_with_an_error_line(ups: Ups, tmp_path: Path) -> None:
    result = await run(tmp_path, "--json", "-p", "a=openai/gpt-4o-mini", "Q", env=configure(tmp_path, ups))
    assert result.code == EXIT_AUTH, result
    (line,) = result.out.splitlines()
    error = json.loads(line)
    assert (error["type"], error["kind"], error["provider"], error["exit_code"]) == (
        "error",
        "missing_api_key",
        "openai",
        EXIT_AUTH,
    )
    assert "set OPENAI_API_KEY" in error["message"]


async def test_when_every_turn_fails_the_exit_code_is_the_errors(ups: Ups, tmp_path: Path) -> None:
    ups.oa.always(OPENAI.error(401))
    ups.an.always(ANTHROPIC.error(401))
    result = await run(tmp_path, *PEOPLE, "--rounds", "1", "Q", env=configure(tmp_path, ups))
    assert result.code == EXIT_AUTH, result
    assert "[round 1] builder: (no reply: auth" in result.out
    errors = [line for line in result.err.splitlines() if "error" in line]
    assert len(errors) == 1 and "every turn failed (2)" in errors[0] and OA_KEY not in result.err


# --- a named deliberation from llmrelay.toml ----------------------------------------------------------------


REVIEW = """
[deliberations.review]
participants = [
    "builder=oa/gpt-4o-mini",
    { name = "skeptic", model = "an/claude-test", persona = "You doubt everything.", max_tokens = 50 },
]
rounds = 1
max_tokens = 120
system = "Be brief."
limits = { max_calls = 10, deadline = 60 }
"""


async def test_a_named_deliberation_from_the_config_file(ups: Ups, tmp_path: Path) -> None:
    ups.oa.add(OPENAI.text("Answer: 42", stream=True))
    ups.an.add(ANTHROPIC.text("Answer: 42", stream=True))
    env = configure(tmp_path, ups, REVIEW)
    result = await run(tmp_path, "--name", "review", "--plain", "What is 6 * 7?", env=env)
    assert result.code == EXIT_OK, result
    assert "not yet in effect" not in result.err
    assert "[round 1] builder: Answer: 42" in result.out and "== final answer ==\n42" in result.out
    oa, an = ups.oa.requests[0].json, ups.an.requests[0].json
    assert oa["messages"][0] == {"role": "system", "content": "Be brief."} and oa["max_tokens"] == 120
    assert an["system"] == "You doubt everything." and an["max_tokens"] == 50
    assert "debate completed" in result.err and "2 calls" in result.err


async def test_a_named_deliberation_that_is_wrong_is_a_config_error_naming_its_key(ups: Ups, tmp_path: Path) -> None:
    env = configure(tmp_path, ups, '[deliberations.bad]\nparticipants = ["a=oa/m"]\nstrategy = "rounds"\n')
    result = await run(tmp_path, "--name", "bad", "Q", env=env)
    assert result.code == EXIT_CONFIG, result
    assert "llmrelay.toml: deliberations.bad.chair: strategy 'rounds' needs a chair" in result.err
    # a combination only the command line makes wrong is reported against the table it changes
    env = configure(tmp_path, ups, REVIEW)
    result = await run(tmp_path, "--name", "review", "--strategy", "council", "Q", env=env)
    assert result.code == EXIT_CONFIG and "deliberations.review: strategy 'council' needs a chair" in result.err
    assert ups.oa.requests == [] and ups.an.requests == []


async def test_config_show_prints_the_deliberation_so_that_it_reloads_equal(ups: Ups, tmp_path: Path) -> None:
    import tomllib

    from llmrelay.config import parse_config, read_config

    extra = REVIEW + '[deliberations.panel]\nmodels = ["oa/m", "oa/m"]\nstrategy = "council"\njudge = "an/j"\n'
    extra += 'agreement = false\nlimits = { max_cost = "0.05" }\n'
    env = configure(tmp_path, ups, extra)
    result = await run_command(tmp_path, "config", "show", env=env)
    assert result.code == EXIT_OK, result
    shown = tomllib.loads(result.out)
    assert shown["deliberations"]["review"]["participants"][0] == "builder=oa/gpt-4o-mini"
    assert shown["deliberations"]["panel"]["chair"] == "an/j" and shown["deliberations"]["panel"]["agreement"] is False
    assert parse_config(shown).deliberations == read_config(tmp_path / "llmrelay.toml").deliberations


# --- Ctrl-C -------------------------------------------------------------------------------------------------


async def test_ctrl_c_stops_every_stream_in_flight(ups: Ups, tmp_path: Path) -> None:
    stalled = Reply.sse([CHUNK] * 3 + ["[DONE]"], stall=10.0, stall_after=1)
    (tmp_path / "llmrelay.toml").write_text(
        f'[providers.oa]\ntype = "openai"\nbase_url = "{ups.oa.url("/v1")}"\napi_key_env = "OA_KEY"\n'
        f'[providers.ob]\ntype = "openai"\nbase_url = "{ups.an.url("/v1")}"\napi_key_env = "OA_KEY"\n'
    )
    ups.oa.add(stalled)
    ups.an.add(stalled)
    transcript = tmp_path / "partial.json"
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "llmrelay", "deliberate", "--json", "-o", str(transcript)),
        *("-p", "a=oa/m", "-p", "b=ob/m", "Q"),
        env=env_for(tmp_path, OA_KEY=OA_KEY),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            deltas: set[str] = set()
            while len(deltas) < 2:  # both participants are streaming (and stalled) now
                line = (await proc.stdout.readline()).decode()
                assert line, "the command ended before both streams were in flight"
                seen.append(line)
                event = json.loads(line)
                if event["type"] == "turn_delta":
                    deltas.add(event["participant"])
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, (out, err)
    assert err.decode().strip().splitlines() == ["llmrelay: interrupted"]
    last = json.loads(out.decode().splitlines()[-1])
    assert last == {"type": "error", "kind": "interrupted", "message": "interrupted (Ctrl-C)"}
    assert await ups.oa.wait_disconnect(within=5.0) and await ups.an.wait_disconnect(within=5.0)
    assert ups.oa.disconnects == 1 and ups.an.disconnects == 1
    partial = Transcript.loads(transcript.read_text())  # what was said until then
    assert partial.done is None and {e.participant for e in partial.events if isinstance(e, TurnStarted)} == {"a", "b"}


# --- the live view, on a pseudo-terminal --------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


async def test_on_a_terminal_the_live_view_draws_a_panel_per_participant(ups: Ups, tmp_path: Path) -> None:
    pytest.importorskip("rich", reason="the live view needs rich (in the dev extra)")
    two_rounds(ups)
    env = configure(tmp_path, ups) | {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "llmrelay", "deliberate", *PEOPLE, "What is 6 * 7?"),
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    try:
        reader = loop.run_in_executor(None, drain)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        await asyncio.wait_for(reader, 10)
    finally:
        os.close(master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == EXIT_OK, err
    screen = _ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert "╭" in screen and "builder" in screen and "skeptic" in screen  # rich panels, one per participant
    assert "round 2: revise" in screen and "final answer: 42" in screen
    assert "debate · round 1 · answer" in screen  # the header: the round and the running totals
    assert "debate completed" in err.decode()


# --- offline: the embedded local model ----------------------------------------------------------------------


@pytest.mark.slow
async def test_with_no_keys_at_all_it_runs_on_the_embedded_local_model(tmp_path: Path) -> None:
    result = await run(tmp_path, "--max-tokens", "16", "-o", "t.json", "What is 2 + 3?", env=env_for(tmp_path))
    assert result.code == EXIT_OK, result
    for name in ("solver", "skeptic", "pragmatist"):
        assert f"[round 1] {name}: " in result.out and f"[round 2] {name}: " in result.out
    assert "(local/smollm2 · " in result.out and "== final answer ==" in result.out
    assert result.err.count("no provider configured and no API key found") == 1
    assert "debate " in result.err and "6 calls" in result.err
    transcript = Transcript.loads((tmp_path / "t.json").read_text())
    assert len(transcript.turns) == 6 and all(t.ok and t.provider == "local" for t in transcript.turns)
    assert all(t.usage is not None and (t.usage.output_tokens or 0) <= 16 for t in transcript.turns)
    assert {t.participant for t in transcript.turns} == {"solver", "skeptic", "pragmatist"}
