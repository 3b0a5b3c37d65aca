"""The gateway benchmark: ``llmrelay serve`` against the floor a Python proxy can reach, and LiteLLM's proxy.

    .venv/bin/python bench/gateway.py                    # full run (about 4 minutes); writes bench/results/gateway.*
    .venv/bin/python bench/gateway.py --quick --out /tmp/gw   # one round, smaller counts

Against the fake OpenAI upstream of ``bench/upstream.py`` (its own process), the same requests go to:

- ``direct``: the upstream itself (the reference for added latency);
- ``minimal``: ``bench/minproxy.py``, aiohttp's server and client in ~30 lines (parse the JSON, forward the
  bytes, pass the answer back): the floor a Python gateway can reach;
- ``llmrelay``: ``llmrelay serve`` as a real subprocess, one worker, a configuration whose one provider is the
  fake upstream, a SQLite ledger in a temporary directory, no gateway keys (loopback);
- ``litellm``: LiteLLM's proxy (``litellm --config ... --num_workers 1``) from the virtual environment given by
  ``--litellm-venv`` (default ``/tmp/litellm-venv``; install it there with ``pip install 'litellm[proxy]'`` so it
  never touches ``.venv``); skipped with a message when absent. It runs in round 0 only (it is slow to start
  and its ratio is far from any goal's edge), with each scenario capped at ``--max-seconds``.

Scenarios, each in a **fresh load-generator process** (this script with ``--loadgen``: one aiohttp
``ClientSession``, its own warm-up, then ``--repeats`` timed repeats; medians reported): ``c1``, ``c32`` and
``c64`` (non-streaming requests with 50-token answers, 1, 32 and 64 in flight: requests/s, p50 and p99
latency) and ``stream`` (one stream of 20,000 chunks: chunks/s). Every answer is checked against what the
upstream sent (text length and CRC-32); a wrong one fails the run. A scenario stops taking new requests
after ``--max-seconds``, so a slow server cannot hold the run.

Each server gets a fresh process per round, and a round's servers run side by side: at each scenario
they take turns in the order ABBA (``minimal``, ``llmrelay``, ``llmrelay``, ``minimal``; the order of the
servers alternates between rounds), each turn its own load generator, so the turns of a pair are seconds
apart and slow drift in background load cancels out (with one server after the other, each through every
scenario, a minute passed between the two sides of a ratio, and one run's rounds spread from 0.38x to
0.53x at c=32). A server's value in a
round is the median of the repeats of both its turns. Every turn also reports the server's CPU time per
request (its process tree's user + system time over the turn, warm-up included), which does not depend
on how the scheduler shared the two cores. With ``--pin`` the server is pinned to the first CPU and the
upstream and the load generator share the last (for ``direct`` the load generator takes the first), so
the server has a core of its own -- on a quiet machine. Pinning is off by default: on a shared 2-core
machine a pinned server cannot leave a core that another job is using, and measures its neighbour (a
single-threaded ``llmrelay serve`` pinned beside a test run went from 1 ms to 5-7 ms p50 at c=1). Ratios
are the median over rounds of the ratio measured in the same round. Peak RSS is the server's ``VmHWM``
(its process tree) after ``c64``.

Goals (printed with PASS/FAIL; the exit status is non-zero when one fails):

- ``llmrelay`` requests/s at c=32 >= 0.5x ``minimal`` (the aim is 0.7x);
- ``llmrelay`` chunks/s on the stream >= 0.7x ``minimal``;
- ``llmrelay`` requests/s at c=32 >= 20x ``litellm`` (when it ran);
- ``llmrelay`` p50 at c=1 minus ``direct`` p50 <= 1 ms;
- ``llmrelay`` peak RSS under c=64 <= 150 MB.

A full run writes ``gateway.json`` (every sample) and ``gateway.md`` to ``--out`` (default
``bench/results``); ``--quick`` writes nothing unless ``--out`` is given. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

RESULTS = HERE / "results"
SERVERS = ("direct", "minimal", "llmrelay", "litellm")
JSON_TOKENS = 50
STREAM_CHUNKS = 20_000
UPSTREAM_KEY_ENV = "LLMRELAY_BENCH_UPSTREAM_KEY"
CLIENT_KEY = "sk-bench-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"
"""What the load generator sends as ``Authorization: Bearer``: LiteLLM's master key (it refuses to start
without one); the other servers ignore it."""


@dataclass(frozen=True)
class Scenario:
    key: str
    kind: str  # "json" | "stream"
    concurrency: int
    count: int
    tokens: int


def scenarios(quick: bool) -> list[Scenario]:
    n1, n32 = (300, 1000) if quick else (1000, 3000)
    chunks = 5_000 if quick else STREAM_CHUNKS
    return [
        Scenario("c1", "json", 1, n1, JSON_TOKENS),
        Scenario("c32", "json", 32, n32, JSON_TOKENS),
        Scenario("c64", "json", 64, n32, JSON_TOKENS),
        Scenario("stream", "stream", 1, 1, chunks),
    ]


# --- the load generator (a child process) -------------------------------------------------------------


def _expected(n: int) -> tuple[int, int]:
    from upstream import expected

    return expected(n)


async def _loadgen(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    url = args.url.rstrip("/") + "/v1/chat/completions"
    stream = args.kind == "stream"
    headers = {"content-type": "application/json", "authorization": f"Bearer {CLIENT_KEY}"}
    problems: list[str] = []

    def body(tokens: int) -> bytes:
        return json.dumps(
            {
                "model": args.model,
                "messages": [{"role": "user", "content": "Count to a hundred."}],
                "max_tokens": tokens,
                "stream": stream,
                **({"stream_options": {"include_usage": True}} if stream else {}),
            }
        ).encode()

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one_json(data: bytes, want: tuple[int, int]) -> float:
            t0 = time.perf_counter()
            async with session.post(url, data=data, headers=headers) as r:
                raw = await r.read()
            elapsed = time.perf_counter() - t0
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {raw[:200]!r}")
            text = json.loads(raw)["choices"][0]["message"]["content"] or ""
            got = (len(text), zlib.crc32(text.encode()))
            if got != want and len(problems) < 5:
                problems.append(f"wrong answer: {got} != {want}")
            return elapsed

        async def one_stream(data: bytes, want: tuple[int, int]) -> tuple[float, int]:
            # The bytes are kept as they arrive and split and parsed after the clock stops: at 100k+
            # chunks/s a json.loads per chunk, or even aiohttp's readline per line (``async for line in
            # r.content``, which kept this process at 90-99% of a core against direct and minimal), makes
            # the load generator the bottleneck; the server under test must be.
            t0, c0 = time.perf_counter(), time.process_time()
            received: list[bytes] = []
            async with session.post(url, data=data, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {(await r.read())[:200]!r}")
                async for piece in r.content.iter_any():
                    received.append(piece)
            elapsed = time.perf_counter() - t0
            timed_cpu[0] += time.process_time() - c0
            parts: list[str] = []
            for line in b"".join(received).replace(b"\r\n", b"\n").split(b"\n"):
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                choices = json.loads(line[6:]).get("choices") or ()
                if choices:
                    content = choices[0].get("delta", {}).get("content")
                    if content:
                        parts.append(content)
            text = "".join(parts)
            got = (len(text), zlib.crc32(text.encode()))
            if got != want and len(problems) < 5:
                problems.append(f"wrong stream: {got} != {want} ({len(parts)} deltas)")
            return elapsed, len(parts)

        async def json_run(count: int, concurrency: int, tokens: int, deadline: float) -> tuple[float, list[float]]:
            data, want = body(tokens), _expected(tokens)
            latencies: list[float] = []
            left = count

            async def worker() -> None:
                nonlocal left
                while left > 0 and time.perf_counter() < deadline:
                    left -= 1
                    latencies.append(await one_json(data, want))

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
            return time.perf_counter() - t0, latencies

        repeats: list[dict[str, Any]] = []
        timed_cpu = [0.0]
        """CPU seconds of the stream's timed parts (its answers are parsed after the clock stops)."""
        cpu0 = time.process_time()
        if stream:
            await one_stream(body(1000), _expected(1000))  # warm-up
            timed_cpu[0] = 0.0
            for _ in range(args.repeats):
                wall, chunks = await one_stream(body(args.tokens), _expected(args.tokens))
                repeats.append({"wall_s": wall, "chunks": chunks, "chunks_per_s": chunks / wall})
        else:
            warm = max(2 * args.concurrency, 20)
            await json_run(warm, args.concurrency, 5, time.perf_counter() + args.max_seconds)
            for _ in range(args.repeats):
                wall, lat = await json_run(
                    args.count, args.concurrency, args.tokens, time.perf_counter() + args.max_seconds
                )
                lat.sort()
                repeats.append(
                    {
                        "wall_s": wall,
                        "requests": len(lat),
                        "rps": len(lat) / wall,
                        "p50_ms": lat[len(lat) // 2] * 1e3,
                        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
                    }
                )
        return {
            "repeats": repeats,
            "warmup_requests": 0 if stream else warm,
            "problems": problems,
            "cpu_s": timed_cpu[0] if stream else time.process_time() - cpu0,
            "wall_s": sum(r["wall_s"] for r in repeats),
        }


def loadgen_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loadgen", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--kind", choices=("json", "stream"), required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=JSON_TOKENS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        out = asyncio.run(_loadgen(args))
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    print(json.dumps(out))


# --- the servers under test ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until ``GET path`` on 127.0.0.1:port answers (any status), the process dies, or ``timeout``."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode()
    for _ in range(100_000):
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer GET {path} within {timeout:.0f}s")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
                conn.sendall(request)
                if conn.recv(16).startswith(b"HTTP/"):
                    return
        except OSError:
            pass
        time.sleep(0.05)


def tree_hwm_mb(pid: int) -> float:
    """Peak RSS (``VmHWM``) of ``pid`` and its descendants, in MB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                pids += [int(c) for c in children]
        except (OSError, ValueError):
            continue
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


class Server:
    """One server under test in its own process (``None`` for ``direct``); ``url`` once it answers."""

    def __init__(
        self,
        name: str,
        upstream_port: int,
        tmp: Path,
        *,
        litellm_venv: Path,
        cpu: int | None,
        log: Path,
        ledger: str = "sqlite",
    ) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        upstream = f"http://127.0.0.1:{upstream_port}"
        if name == "direct":
            self.url, self.model = upstream, "gpt-4o-mini"
            return
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, UPSTREAM_KEY_ENV: "sk-bench-upstream"}
        ready, startup = "/", 30.0
        if name == "minimal":
            self.model = "gpt-4o-mini"
            cmd = [sys.executable, str(HERE / "minproxy.py"), "--upstream", upstream, "--port", str(port)]
        elif name == "llmrelay":
            self.model = "bench/gpt-4o-mini"
            ledger_url = f"sqlite:///{tmp / 'ledger.db'}" if ledger == "sqlite" else "memory"
            config = tmp / "llmrelay.toml"
            config.write_text(
                "\n".join(
                    [
                        'default = "bench/gpt-4o-mini"',
                        "[providers.bench]",
                        'type = "openai"',
                        f'base_url = "{upstream}/v1"',
                        f'api_key_env = "{UPSTREAM_KEY_ENV}"',
                        'default_model = "gpt-4o-mini"',
                        "[gateway]",
                        'host = "127.0.0.1"',
                        f"port = {port}",
                        "workers = 1",
                        f'ledger = "{ledger_url}"',
                        f'keys = "sqlite:///{tmp / "keys.db"}"',
                        "",
                    ]
                )
            )
            exe = Path(sys.executable).parent / "llmrelay"
            cmd = [str(exe), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--workers", "1"]
            env["LLMRELAY_CONFIG"] = str(config)
            ready = "/healthz"
        elif name == "litellm":
            self.model = "bench-model"
            config = tmp / "litellm.yaml"
            config.write_text(
                "model_list:\n"
                "  - model_name: bench-model\n"
                "    litellm_params:\n"
                "      model: openai/gpt-4o-mini\n"
                f"      api_base: {upstream}/v1\n"
                "      api_key: sk-bench-upstream\n"
                "litellm_settings:\n"
                "  telemetry: false\n"
                "  drop_params: true\n"
            )
            cmd = [str(litellm_venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1"]
            cmd += ["--port", str(port), "--num_workers", "1"]
            env.update(
                LITELLM_MASTER_KEY=CLIENT_KEY,
                LITELLM_LOCAL_MODEL_COST_MAP="True",
                LITELLM_TELEMETRY="False",
                NO_DOCS="True",
            )
            ready, startup = "/health/liveliness", 120.0
        else:
            raise ValueError(name)
        self._log = log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        try:
            wait_http(port, ready, self.proc, startup)
        except Exception:
            self.stop()
            raise
        if cpu is not None:
            for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(pid, {cpu})

    def peak_rss_mb(self) -> float | None:
        return tree_hwm_mb(self.proc.pid) if self.proc is not None else None

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server's process tree has used so far (0 for ``direct``)."""
        return tree_cpu_s(self.proc.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None:
            self._log.close()


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(c) for c in (task / "children").read_text().split()]
                out += kids
                todo += kids
        except (OSError, ValueError):
            continue
    return out


def run_loadgen(server: Server, sc: Scenario, *, repeats: int, max_seconds: float, cpu: int | None) -> dict[str, Any]:
    cmd = [
        sys.executable, str(HERE / "gateway.py"), "--loadgen",
        "--url", server.url, "--model", server.model,
        "--kind", sc.kind, "--count", str(sc.count), "--concurrency", str(sc.concurrency),
        "--tokens", str(sc.tokens), "--repeats", str(repeats), "--max-seconds", str(max_seconds),
        *(["--cpu", str(cpu)] if cpu is not None else []),
    ]  # fmt: skip
    timeout = 60.0 + repeats * (max_seconds + 30.0)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        return {"error": f"exit {proc.returncode}: {tail[-1][:300]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


# --- the parent ----------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One server x scenario: per round, the medians of that round's repeats."""

    by_round: dict[int, dict[str, float]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    def median(self, metric: str) -> float | None:
        values = [r[metric] for r in self.by_round.values() if metric in r]
        return statistics.median(values) if values else None


def paired(a: Cell | None, b: Cell | None, metric: str, op: str = "ratio") -> list[float]:
    if a is None or b is None:
        return []
    out = []
    for rnd, mine in a.by_round.items():
        theirs = b.by_round.get(rnd)
        if theirs is None or metric not in mine or metric not in theirs:
            continue
        if op == "ratio" and theirs[metric] > 0:
            out.append(mine[metric] / theirs[metric])
        elif op == "diff":
            out.append(mine[metric] - theirs[metric])
    return out


def litellm_missing(venv: Path) -> str | None:
    if not (venv / "bin" / "litellm").exists():
        return (
            f"no LiteLLM proxy at {venv}/bin/litellm (python -m venv {venv} && {venv}/bin/pip install 'litellm[proxy]')"
        )
    return None


def llmrelay_missing() -> str | None:
    exe = Path(sys.executable).parent / "llmrelay"
    if not exe.exists():
        return f"{exe} is not installed (pip install -e '.[gateway]')"
    probe = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True, timeout=60, check=False)
    if probe.returncode != 0:
        return f"`llmrelay serve` is not available yet: {(probe.stderr or probe.stdout).strip()[-200:]}"
    return None


def _fmt(v: float | None, spec: str, unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def table(results: dict[str, dict[str, Cell]], rss: dict[str, list[float]], servers: list[str]) -> str:
    headers = ["server", "c1 rps", "c1 p50", "c1 p99", "c32 rps", "c32 p50", "c32 p99", "c32 CPU/req", "c64 rps"]
    headers += ["c64 p99"]
    headers += ["stream chunks/s", "peak RSS"]
    rows = []
    for name in servers:
        cells = results.get(name, {})

        def m(key: str, metric: str, cells: dict[str, Cell] = cells) -> float | None:
            cell = cells.get(key)
            return cell.median(metric) if cell is not None and cell.error is None else None

        rows.append(
            [
                name,
                _fmt(m("c1", "rps"), ",.0f"),
                _fmt(m("c1", "p50_ms"), ".2f", " ms"),
                _fmt(m("c1", "p99_ms"), ".2f", " ms"),
                _fmt(m("c32", "rps"), ",.0f"),
                _fmt(m("c32", "p50_ms"), ".2f", " ms"),
                _fmt(m("c32", "p99_ms"), ".2f", " ms"),
                _fmt(m("c32", "cpu_us"), ",.0f", " us"),
                _fmt(m("c64", "rps"), ",.0f"),
                _fmt(m("c64", "p99_ms"), ".2f", " ms"),
                _fmt(m("stream", "chunks_per_s"), ",.0f"),
                _fmt(statistics.median(rss[name]) if rss.get(name) else None, ".0f", " MB"),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    out = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def goals(results: dict[str, dict[str, Cell]], rss: dict[str, list[float]]) -> list[dict[str, Any]]:
    ours, floor = results.get("llmrelay", {}), results.get("minimal", {})
    direct, lite = results.get("direct", {}), results.get("litellm", {})
    rows: list[dict[str, Any]] = []

    def add(goal: str, values: list[float], passed: Any, shown: str) -> None:
        if not values:
            rows.append({"goal": goal, "value": None, "shown": "-", "result": "FAIL (not measured)"})
            return
        value = statistics.median(values)
        spread = f" ({min(values):.2f} .. {max(values):.2f})" if len(values) > 1 else ""
        rows.append(
            {"goal": goal, "value": value, "rounds": values, "shown": shown.format(value) + spread,
             "result": "PASS" if passed(value) else "FAIL"}
        )  # fmt: skip

    add(
        "requests/s at c=32 >= 0.5x minimal (aim 0.7x)",
        paired(ours.get("c32"), floor.get("c32"), "rps"),
        lambda v: v >= 0.5,
        "{:.2f}x",
    )
    add(
        "chunks/s on the stream >= 0.7x minimal",
        paired(ours.get("stream"), floor.get("stream"), "chunks_per_s"),
        lambda v: v >= 0.7,
        "{:.2f}x",
    )
    if lite:
        add(
            "requests/s at c=32 >= 20x litellm",
            paired(ours.get("c32"), lite.get("c32"), "rps"),
            lambda v: v >= 20,
            "{:.1f}x",
        )
    add(
        "added p50 at c=1 over direct <= 1 ms",
        paired(ours.get("c1"), direct.get("c1"), "p50_ms", op="diff"),
        lambda v: v <= 1.0,
        "{:+.2f} ms",
    )
    add("peak RSS under c=64 <= 150 MB", rss.get("llmrelay", []), lambda v: v <= 150, "{:.0f} MB")
    return rows


def turns_of(names: list[str]) -> list[tuple[str, int]]:
    """The order a round's servers take their turns at one scenario: ABBA (``litellm`` once, it is slow)."""
    sequence = [(name, 0) for name in names] + [(name, 1) for name in reversed(names)]
    return [(name, turn) for name, turn in sequence if not (name == "litellm" and turn == 1)]


def run_scenario(
    sc: Scenario,
    rnd: int,
    live: dict[str, Server],
    results: dict[str, dict[str, Cell]],
    *,
    repeats: int,
    max_seconds: float,
    server_cpu: int | None,
    side_cpu: int | None,
) -> None:
    """One scenario of one round: every live server in turn, ABBA (each in a fresh load generator); a
    server's value for the round is the median of its repeats over both of its turns."""
    reps_of: dict[str, list[dict[str, float]]] = {}
    cpu_of: dict[str, list[float]] = {}
    for name, turn in turns_of(list(live)):
        server = live[name]
        cell = results[name].setdefault(sc.key, Cell())
        if cell.error is not None:
            continue
        gen_cpu = server_cpu if name == "direct" else side_cpu
        cpu_before = server.cpu_s()
        out = run_loadgen(server, sc, repeats=repeats, max_seconds=max_seconds, cpu=gen_cpu)
        cpu_used = server.cpu_s() - cpu_before
        if out.get("error"):
            cell.error = out["error"]
            print(f"  r{rnd} {name:9s} {sc.key:6s} ERROR {out['error']}", flush=True)
            continue
        reps = out["repeats"]
        served = sum(r.get("requests", 0) for r in reps) + out.get("warmup_requests", 0)
        cell.samples.append({"round": rnd, "turn": turn, "server_cpu_s": cpu_used, **out})
        cell.problems += out["problems"]
        reps_of.setdefault(name, []).extend(reps)
        shown = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
        if sc.kind == "json":
            what = f"{shown['rps']:8,.0f} req/s  p50 {shown['p50_ms']:6.2f} ms  p99 {shown['p99_ms']:6.2f} ms"
        else:
            what = f"{shown['chunks_per_s']:8,.0f} chunks/s"
        per = ""
        if sc.kind == "stream":
            served = sum(r["chunks"] for r in reps) + 1000  # and the warm-up stream's
        if served and name != "direct":
            cpu_of.setdefault(name, []).append(1e6 * cpu_used / served)
            unit = "request" if sc.kind == "json" else "chunk"
            per = f", server CPU {cpu_of[name][-1]:,.{0 if sc.kind == 'json' else 2}f} us/{unit}"
        bad = f"  WRONG: {out['problems'][0]}" if out["problems"] else ""
        print(
            f"  r{rnd}{'ab'[turn]} {name:9s} {sc.key:6s} {what}  (load generator CPU "
            f"{out['cpu_s'] / max(out['wall_s'], 1e-9):.0%}{per}){bad}",
            flush=True,
        )
    for name, reps in reps_of.items():
        medians = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
        if cpu_of.get(name):
            medians["cpu_us"] = statistics.median(cpu_of[name])
        results[name][sc.key].by_round[rnd] = medians


def main() -> int:
    if "--loadgen" in sys.argv[1:]:
        loadgen_main(sys.argv[1:])
        return 0
    from run import Upstream, _commit_span, _git_commit, _version

    parser = argparse.ArgumentParser(description="llmrelay gateway benchmark")
    parser.add_argument("--quick", action="store_true", help="one round, smaller counts; writes nothing unless --out")
    parser.add_argument("--rounds", type=int, default=None, help="fresh server processes per server (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per load-generator process")
    parser.add_argument("--only", default="", help="comma-separated servers (direct,minimal,llmrelay,litellm)")
    parser.add_argument("--litellm-venv", default="/tmp/litellm-venv", help="virtualenv holding litellm[proxy]")
    parser.add_argument("--max-seconds", type=float, default=8.0, help="cap on one timed repeat (slow servers)")
    parser.add_argument(
        "--pin", action="store_true", help="pin the server to the first CPU, upstream and load generator to the last"
    )
    parser.add_argument(
        "--ledger", choices=("sqlite", "memory"), default="sqlite", help="llmrelay's usage ledger (default sqlite)"
    )
    parser.add_argument("--out", default=None, help="directory for gateway.json / gateway.md (default bench/results)")
    args = parser.parse_args()

    quick = args.quick
    rounds = max(1, min(args.rounds if args.rounds is not None else (1 if quick else 3), 10))
    servers = [s for s in SERVERS if not args.only or s in args.only.split(",")]
    scs = scenarios(quick)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = args.pin and len(cpus) >= 2
    server_cpu, side_cpu = (cpus[0], cpus[-1]) if pin else (None, None)

    skipped: dict[str, str] = {}
    venv = Path(args.litellm_venv)
    if "litellm" in servers and (why := litellm_missing(venv)):
        skipped["litellm"] = why
    if "llmrelay" in servers and (why := llmrelay_missing()):
        skipped["llmrelay"] = why
    for name, why in skipped.items():
        print(f"SKIPPED {name}: {why}")
    servers = [s for s in servers if s not in skipped]

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    commit_start = _git_commit()
    load_before = os.getloadavg()
    results: dict[str, dict[str, Cell]] = {s: {} for s in servers}
    rss: dict[str, list[float]] = {}
    upstream = Upstream(max_seconds=1800.0, cpu=side_cpu)
    where = f"; servers on CPU {server_cpu}, upstream and load generator on CPU {side_cpu}" if pin else ""
    print(f"fake upstream on 127.0.0.1:{upstream.port}; {'quick' if quick else 'full'} run, {rounds} rounds{where}")
    tmp_root = Path(tempfile.mkdtemp(prefix="llmrelay-bench-gw-"))
    try:
        for rnd in range(rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            live: dict[str, Server] = {}
            try:
                for name in order:
                    if name == "litellm" and rnd > 0:
                        continue
                    tmp = tmp_root / f"{name}-{rnd}"
                    tmp.mkdir()
                    try:
                        live[name] = Server(
                            name,
                            upstream.port,
                            tmp,
                            litellm_venv=venv,
                            cpu=server_cpu,
                            log=tmp_root / f"{name}.log",
                            ledger=args.ledger,
                        )
                    except Exception as exc:
                        for sc in scs:
                            results[name].setdefault(sc.key, Cell()).error = f"did not start: {exc}"
                        print(f"  r{rnd} {name:9s} did not start: {exc} (log: {tmp_root / f'{name}.log'})", flush=True)
                for sc in scs:
                    run_scenario(sc, rnd, live, results, repeats=args.repeats, max_seconds=args.max_seconds,
                                 server_cpu=server_cpu, side_cpu=side_cpu)  # fmt: skip
                    if sc.key == "c64":
                        for name, server in live.items():
                            if (peak := server.peak_rss_mb()) is not None:
                                rss.setdefault(name, []).append(peak)
            finally:
                for server in live.values():
                    server.stop()
    finally:
        upstream.stop()

    text = table(results, rss, servers)
    goal_rows = goals(results, rss)
    wrong = [f"{n}/{k}: {c.problems[0]}" for n, cells in results.items() for k, c in cells.items() if c.problems]
    load_after = os.getloadavg()
    print()
    print(text)
    print()
    for g in goal_rows:
        print(f"  {g['result']:4s}  {g['goal']}: {g['shown']}")
    for line in wrong:
        print(f"  WRONG  {line}")
    for name, why in skipped.items():
        print(f"  skipped {name}: {why}")
    env = {
        "started": started,
        "commit": _commit_span(commit_start, _git_commit()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "versions": {d: _version(d) for d in ("llmrelay", "aiohttp", "prometheus-client")},
        "mode": "quick" if quick else "full",
        "rounds": rounds,
        "repeats": args.repeats,
        "pinned": {"server_cpu": server_cpu, "upstream_and_loadgen_cpu": side_cpu},
        "skipped": skipped,
        "ru_maxrss_parent_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(
        f"\ncommit {env['commit']}; python {env['python']}, {env['cpus']} CPUs, "
        f"load {load_before[0]:.2f} -> {load_after[0]:.2f}; server logs in {tmp_root}"
    )
    out_dir = Path(args.out) if args.out else (None if quick else RESULTS)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "env": env,
            "scenarios": [sc.__dict__ for sc in scs],
            "results": {
                n: {
                    k: {"by_round": c.by_round, "samples": c.samples, "problems": c.problems, "error": c.error}
                    for k, c in cells.items()
                }
                for n, cells in results.items()
            },
            "peak_rss_mb": rss,
            "goals": goal_rows,
        }
        (out_dir / "gateway.json").write_text(json.dumps(payload, indent=2) + "\n")
        md = [
            f"# llmrelay gateway benchmark ({env['mode']} run, {started})",
            "",
            "```",
            text,
            "```",
            "",
            *(f"- {g['result']}: {g['goal']}: {g['shown']}" for g in goal_rows),
            *(f"- skipped `{n}`: {why}" for n, why in skipped.items()),
            "",
            f"Commit {env['commit']}. Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, load average "
            f"{load_before[0]:.2f} before / {load_after[0]:.2f} after. Versions: "
            + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
            + ".",
            "",
        ]
        (out_dir / "gateway.md").write_text("\n".join(md))
        print(f"wrote {out_dir / 'gateway.json'} and {out_dir / 'gateway.md'}")
    if not any(c.error for cells in results.values() for c in cells.values()):
        shutil.rmtree(tmp_root, ignore_errors=True)  # kept (with the servers' logs) when something failed
    failed = [g for g in goal_rows if g["result"] != "PASS"] or wrong
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
