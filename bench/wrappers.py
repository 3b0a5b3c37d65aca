"""The wrapper-overhead benchmark: what ``Fallback([Retrying(RateLimited(p))])`` adds to a bare provider ``p``,
and what the Redis rate limiter adds to each call.

    .venv/bin/python bench/wrappers.py            # full run (about 3 minutes); writes bench/results/wrappers.*
    .venv/bin/python bench/wrappers.py --quick    # smaller scenarios, one minute; writes nothing
    .venv/bin/python bench/wrappers.py --layers   # also the c=64 overhead by layer (about 2 more minutes)

``p`` is ``OpenAIProvider`` as shipped, against the fake upstream of ``bench/upstream.py`` (its own
process). Scenarios:

- ``json_c64``: non-streaming requests, 64 in flight, in turns of 512 requests: ``wrapped`` against
  ``llmrelay`` (bare), target wall <= 1.05x;
- ``stream1``: one stream of 20,000 chunks per turn: the same two, target wall <= 1.05x;
- ``json_c64_layers`` (``--layers``; reported, no target): the same, for ``Fallback([Retrying(p)])``
  (``fallback-retrying``), ``RateLimited(p)`` with a backend that grants at once and keeps no books
  (``limited-nop``: the layer by itself) and with the memory backend (``limited-memory``), each paired
  with bare turns of its own; and ``bare-again``, a second bare provider paired with the first (an A/A
  run: what the instrument itself reads on the day, where the answer is 1.00);
- ``redis_c1``: 1,000 non-streaming requests one at a time: ``RateLimited(p)`` with the memory backend
  (``limited-memory``) and with ``llmrelay.limits.RedisBackend`` against a real ``redis-server`` this
  script starts on 127.0.0.1 on a free port (``limited-redis``), against bare; reported as the latency
  added per call (no target). Skipped, with a message, when ``redis-server`` or redis-py is missing.

The two targeted scenarios are **paired**: each round is one fresh process holding both the wrapped
and the bare client, which take turns (24 each, in the order ABBA), every reply checked; the ratio is
the median over every pair of turns of all rounds (wrapped / bare), and the spread shown is that of the
rounds' own medians. Turns in one process cancel what differs between processes (heap layout, hash
seed) and slow drift in background load, which moved separate-process medians by 10-20% here.
``redis_c1`` runs each client in its own fresh process per round (``bench/clients.py`` does the warm-up,
the timed repeats and the check of every reply), rounds alternating which client goes first.

The limits are far above anything a run can use (``UNLIMITED``): the benchmark measures the wrappers'
bookkeeping, never a wait. To be sure of it, every wrapper's ``sleep`` raises: a call that would have
been throttled or retried fails the run instead of hiding a wait in the timing.

Results: a table on stdout; a full run also writes ``wrappers.json`` (every sample) and ``wrappers.md`` to
``--out`` (default ``bench/results``). Exits non-zero when a target is missed or a reply was wrong. See
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RESULTS = HERE / "results"
UNLIMITED = 1e12
"""Requests and tokens per minute for the benchmark's ``RateLimited``: never reached."""
UNLIMITED_SLOTS = 1_000_000
"""``max_concurrency`` for the benchmark's ``RateLimited``: never reached."""
BASE = "llmrelay"
"""The baseline client: the bare ``OpenAIProvider`` (``bench/clients.py``)."""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # "stream" | "json"
    count: int
    concurrency: int
    tokens: int
    clients: tuple[str, ...]
    target: float | None  # client/bare wall-time ratio; None: reported only
    needs_redis: bool = False
    paired: bool = False
    """Client and bare in one process, taking turns (``paired_turns``); else a process each."""


LAYERS = ("bare-again", "fallback-retrying", "limited-nop", "limited-memory")
"""``--layers``: the c=64 overhead taken apart, each paired with bare like ``wrapped``."""


def scenarios(quick: bool, layers: bool = False) -> list[Scenario]:
    n_json, n_chunks, n_redis = (256, 5_000, 300) if quick else (512, 20_000, 1_000)
    by_layer = [
        Scenario(
            "json_c64_layers",
            f"{n_json:,} requests per turn, c=64, by layer",
            "json",
            n_json,
            64,
            50,
            LAYERS,
            None,
            paired=True,
        )
    ]
    return [
        Scenario(
            "json_c64", f"{n_json:,} requests per turn, c=64", "json", n_json, 64, 50, ("wrapped",), 1.05, paired=True
        ),
        *(by_layer if layers else []),
        Scenario(
            "stream1", f"1 stream x {n_chunks:,} chunks", "stream", 1, 1, n_chunks, ("wrapped",), 1.05, paired=True
        ),
        Scenario(
            "redis_c1",
            f"{n_redis:,} requests, c=1",
            "json",
            n_redis,
            1,
            50,
            ("limited-memory", "limited-redis"),
            None,
            needs_redis=True,
        ),
    ]


# --- the clients (run in the child process) -------------------------------------------------------------


def nop_backend(limits: Any) -> Any:
    """A backend of ``limits`` (``llmrelay.limits``, or a ref's) that grants every call at once and keeps no
    books (``limited-nop``: what ``RateLimited`` costs by itself)."""

    class NopBackend(limits.LimitBackend):  # type: ignore[misc, name-defined]
        grant = limits.Grant((), ())

        async def acquire(self, buckets: Sequence[Any], cost: Mapping[str, float]) -> Any:
            return self.grant

        def acquire_nowait(self, buckets: Sequence[Any], cost: Mapping[str, float]) -> Any:
            return self.grant

        def settle_nowait(self, grant: Any, actual: Mapping[str, float] | None) -> bool:
            return True

        async def _give_back(self, grant: Any, refunds: Sequence[float]) -> None:
            return None

    return NopBackend()


def _register_clients(redis_url: str | None) -> None:
    """Add the wrapped clients to ``bench/clients.py``'s table, for a child process."""
    import clients
    import llmrelay.limits
    from llmrelay import Fallback, RateLimited, Retrying
    from llmrelay.limits import LimitBackend

    async def no_wait(seconds: float) -> None:
        raise RuntimeError(
            f"a wrapper wanted to wait {seconds:.3f}s (a throttled or retried call): the benchmark measures "
            "overhead only; raise the limits or look at the upstream"
        )

    def limited(provider: Any, backend: LimitBackend | None = None) -> RateLimited:
        return RateLimited(
            provider,
            requests_per_minute=UNLIMITED,
            tokens_per_minute=UNLIMITED,
            max_concurrency=UNLIMITED_SLOTS,
            backend=backend,
            sleep=no_wait,
        )

    class Wrapped(clients.LlmRelay):
        """``Fallback([Retrying(RateLimited(p))])`` around the bare provider, every bucket on."""

        name = "wrapped"

        async def open(self) -> None:
            await super().open()
            self.provider = Fallback([Retrying(limited(self.provider), sleep=no_wait)])

    class BareAgain(clients.LlmRelay):
        """A second bare ``OpenAIProvider``: paired with the first, the instrument's own error (A/A)."""

        name = "bare-again"

    class FallbackRetrying(clients.LlmRelay):
        """``Fallback([Retrying(p)])``: ``wrapped`` without its ``RateLimited``."""

        name = "fallback-retrying"

        async def open(self) -> None:
            await super().open()
            self.provider = Fallback([Retrying(self.provider, sleep=no_wait)])

    class LimitedNop(clients.LlmRelay):
        """``RateLimited(p)`` with every bucket on and a backend that grants at once and keeps no books:
        what the layer costs by itself (its estimate, its frame, its calls into the backend)."""

        name = "limited-nop"

        async def open(self) -> None:
            await super().open()
            self.provider = limited(self.provider, nop_backend(llmrelay.limits))

    class LimitedMemory(clients.LlmRelay):
        """``RateLimited(p)`` with the in-process backend."""

        name = "limited-memory"

        async def open(self) -> None:
            await super().open()
            self.provider = limited(self.provider)

    class LimitedRedis(clients.LlmRelay):
        """``RateLimited(p)`` with ``RedisBackend`` (one ``EVALSHA`` to acquire, one to settle, per call)."""

        name = "limited-redis"

        async def open(self) -> None:
            await super().open()
            from llmrelay.limits import RedisBackend

            if redis_url is None:
                raise RuntimeError("limited-redis needs --redis-url")
            self.backend = RedisBackend(redis_url)
            self.provider = limited(self.provider, self.backend)

        async def close(self) -> None:
            await super().close()
            await self.backend.aclose()

    for cls in (Wrapped, BareAgain, FallbackRetrying, LimitedNop, LimitedMemory, LimitedRedis):
        clients.CLIENTS[cls.name] = cls


def child_main(argv: list[str]) -> None:
    """``wrappers.py --child [--redis-url URL] [--paired] <bench/clients.py options>``: one client in this
    process (``bench/clients.py``), or with ``--paired`` the client and the bare baseline, taking turns."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--paired", action="store_true")
    ours, rest = parser.parse_known_args(argv)
    _register_clients(ours.redis_url)
    import clients

    sys.argv = [str(HERE / "clients.py"), *rest, *(["--paired-with", BASE] if ours.paired else [])]
    clients.main()


# --- the parent ----------------------------------------------------------------------------------------


@dataclass
class Cell:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    by_round: dict[int, float] = field(default_factory=dict)
    """Round -> median wall time of that round's process."""
    cpu_by_round: dict[int, float] = field(default_factory=dict)
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.ok and self.error is None and bool(self.wall)

    def as_json(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "median_wall_s": statistics.median(self.wall) if self.wall else None,
            "median_cpu_s": statistics.median(self.cpu) if self.cpu else None,
            "median_wall_by_round": self.by_round,
            "median_cpu_by_round": self.cpu_by_round,
            "ok": self.ok,
            "problems": self.problems,
            "error": self.error,
        }


def paired(cell: Cell, base: Cell, *, cpu: bool = False) -> list[float]:
    """Per round both ran in: client median / bare median."""
    mine, theirs = (cell.cpu_by_round, base.cpu_by_round) if cpu else (cell.by_round, base.by_round)
    return [mine[r] / theirs[r] for r in sorted(mine) if r in theirs and theirs[r] > 0]


def added_per_call(cell: Cell, base: Cell, count: int) -> list[float]:
    """Per round both ran in: (client median - bare median) / count, in seconds per call."""
    return [(cell.by_round[r] - base.by_round[r]) / count for r in sorted(cell.by_round) if r in base.by_round]


class Redis:
    """A ``redis-server`` on 127.0.0.1 on a free port, no persistence, in a temporary directory (as
    ``tests/conftest_redis.py`` starts it); ``url`` once it answers ``PING``."""

    def __init__(self, exe: str, cpu: int | None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="llmrelay-bench-redis-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*args, "--dir", self._tmp.name], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10.0
        for _ in range(1000):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port} (exit code {self.proc.poll()})")
            time.sleep(0.02)
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})
        self.url = f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._tmp.cleanup()


def redis_unavailable() -> str | None:
    """Why the Redis scenario cannot run here, or ``None``."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: `apt-get install -y redis-server`)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "redis-py is not installed (`pip install 'llmrelay[redis]'`)"
    return None


def run_child(
    client: str,
    sc: Scenario,
    port: int,
    *,
    redis_url: str | None,
    min_time: float,
    timeout: float,
    cpu: int | None,
    turns: int = 3,
) -> dict[str, Any]:
    cmd = [
        sys.executable, str(HERE / "wrappers.py"), "--child",
        *(["--paired"] if sc.paired else []),
        *(["--redis-url", redis_url] if redis_url else []),
        "--client", client,
        "--port", str(port),
        "--kind", sc.kind,
        "--count", str(sc.count),
        "--concurrency", str(sc.concurrency),
        "--tokens", str(sc.tokens),
        "--repeats", str(turns if sc.paired else 3),
        "--min-time", str(min_time),
        *(["--cpu", str(cpu)] if cpu is not None else []),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        return {"error": f"exit {proc.returncode}: {lines[-1][:240]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def run_paired(
    sc: Scenario,
    cells: dict[str, Cell],
    rounds: int,
    port: int,
    turns: int,
    min_time: float,
    timeout: float,
    cpu: int | None,
    deadline: float,
) -> None:
    """A paired scenario: per round and client, one process running it and the bare baseline in turns.
    Each pair of turns is one sample of ``paired``: ``by_round`` is keyed by round * 1000 + turn."""
    for rnd in range(rounds):
        for client in sc.clients:
            cell, base = cells.setdefault(client, Cell()), cells.setdefault(_base_key(sc, client), Cell())
            if time.monotonic() > deadline:
                cell.error = cell.error or "skipped: run time limit"
                continue
            out = run_child(client, sc, port, redis_url=None, min_time=min_time, timeout=timeout, cpu=cpu, turns=turns)
            if out.get("error"):
                cell.error = out["error"]
                print(f"  {sc.key:9s} r{rnd} {client:15s} {out['error']}", flush=True)
                continue
            for name, target in ((client, cell), (BASE, base)):
                target.wall += out["wall_s"][name]
                target.cpu += out["cpu_s"][name]
                for turn, (w, c) in enumerate(zip(out["wall_s"][name], out["cpu_s"][name], strict=True)):
                    target.by_round[rnd * 1000 + turn] = w
                    target.cpu_by_round[rnd * 1000 + turn] = c
            cell.ok = cell.ok and out["ok"]
            cell.problems += out["problems"]
            pairs = [w / b for w, b in zip(out["wall_s"][client], out["wall_s"][BASE], strict=True)]
            print(
                f"  {sc.key:9s} r{rnd} {client:15s} vs {BASE}: {len(pairs)} turns each, ratio median "
                f"{statistics.median(pairs):.3f} ({min(pairs):.3f} .. {max(pairs):.3f})  "
                f"{'ok' if out['ok'] else 'WRONG: ' + '; '.join(out['problems'][:2])}",
                flush=True,
            )


def _base_key(sc: Scenario, client: str) -> str:
    """The cell of the bare turns paired with ``client``'s: one per client when a paired scenario has
    several (each client's process has bare turns of its own)."""
    return BASE if not sc.paired or len(sc.clients) == 1 else f"{BASE} (with {client})"


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{fmt.format(min(values))} .. {fmt.format(max(values))}"


def build_rows(results: dict[str, dict[str, Cell]], scs: list[Scenario]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for sc in scs:
        cells = results.get(sc.key)
        if not cells:
            continue
        for client in sc.clients:
            base = cells.get(_base_key(sc, client))
            cell = cells.get(client)
            row: dict[str, Any] = {"scenario": sc.title, "key": sc.key, "client": client}
            if cell is None or base is None or not cell.valid or not base.valid:
                bad = next((c for c in (cell, base) if c is not None and not c.valid), None)
                why = "missing" if bad is None else (bad.error or "WRONG: " + "; ".join(bad.problems[:2]))
                row.update(wall_ratio=None, text="-", spread="-", cpu_ratio="-", per_call="-", result=f"FAIL ({why})")
                rows.append(row)
                continue
            walls, cpus = paired(cell, base), paired(cell, base, cpu=True)
            ratio = statistics.median(walls)
            spread_of = walls
            if sc.paired:  # the spread shown: of the rounds' (processes') medians, not of single turns
                by_process: dict[int, list[float]] = {}
                for key in sorted(cell.by_round):
                    if key in base.by_round and base.by_round[key] > 0:
                        by_process.setdefault(key // 1000, []).append(cell.by_round[key] / base.by_round[key])
                spread_of = [statistics.median(v) for v in by_process.values()]
            added = added_per_call(cell, base, sc.count) if sc.kind == "json" else []
            base_call = statistics.median(base.wall) / sc.count
            result = "reported" if sc.target is None else ("PASS" if ratio <= sc.target else "FAIL")
            row.update(
                wall_ratio=ratio,
                text=f"{ratio:.3f}x",
                spread=_spread(spread_of, "{:.3f}"),
                cpu_ratio=f"{statistics.median(cpus):.3f}x" if cpus else "-",
                base=f"{base_call * 1e6:.0f} us/call" if sc.kind == "json" else f"{base_call * 1e3:.0f} ms",
                per_call=(
                    f"{statistics.median(added) * 1e6:+.1f} us ({_spread([a * 1e6 for a in added], '{:+.1f}')})"
                    if added
                    else "-"
                ),
                target="-" if sc.target is None else f"<= {sc.target:.2f}x",
                result=result,
                rounds=len(walls),
            )
            rows.append(row)
    return rows


HEADERS = ["scenario", "client", "bare", "wall vs bare", "rounds low..high", "CPU vs bare", "added per call", "target"]


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        row["scenario"],
        row["client"],
        row.get("base", "-"),
        row["text"],
        row["spread"],
        row["cpu_ratio"],
        row["per_call"],
        row.get("target", "-"),
        row["result"],
    ]


def text_table(rows: list[dict[str, Any]]) -> str:
    headers = [*HEADERS, "result"]
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), "  ".join("-" * w for w in widths)]
    for b in body:
        out.append(
            "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths, strict=True)))
        )
    return "\n".join(out)


def md_table(rows: list[dict[str, Any]]) -> str:
    headers = [*HEADERS, "result"]
    out = ["| " + " | ".join(headers) + " |", "|---|---|" + "---:|" * (len(headers) - 2)]
    out += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(out)


def main() -> int:
    if "--child" in sys.argv[1:]:
        child_main(sys.argv[1:])
        return 0
    from run import Upstream, _commit_span, _git_commit, _version

    parser = argparse.ArgumentParser(description="llmrelay wrapper-overhead benchmark")
    parser.add_argument(
        "--quick", action="store_true", help="smaller scenarios, two rounds; writes nothing unless --out is given"
    )
    parser.add_argument("--rounds", type=int, default=None, help="fresh processes per client (default 6; quick 2)")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (json_c64,stream1,redis_c1)")
    parser.add_argument(
        "--layers",
        action="store_true",
        help="also take the c=64 overhead apart: " + ", ".join(LAYERS) + ", each paired with bare (reported only)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the upstream/redis and the clients to CPUs")
    parser.add_argument(
        "--out", default=None, help="directory for wrappers.json / wrappers.md (default bench/results; full runs only)"
    )
    args = parser.parse_args()

    quick = args.quick
    rounds = max(1, min(args.rounds if args.rounds is not None else (2 if quick else 6), 10))
    only = [k for k in args.only.split(",") if k]
    scs = [s for s in scenarios(quick, args.layers) if not only or s.key in only]
    min_time = 0.5 if quick else 1.5
    turns = 8 if quick else 24
    """Turns each of a paired scenario's two clients takes per process."""
    child_timeout = 90.0 if quick else 240.0
    run_deadline = time.monotonic() + (120.0 if quick else 600.0)

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = not args.no_pin and len(cpus) >= 2
    client_cpu = cpus[0] if pin else None
    server_cpu = cpus[-1] if pin else None

    skipped: dict[str, str] = {}
    if any(s.needs_redis for s in scs):
        why = redis_unavailable()
        if why is not None:
            print(f"SKIPPED redis_c1: {why}")
            skipped["redis_c1"] = why
            scs = [s for s in scs if not s.needs_redis]

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    commit_start = _git_commit()
    load_before = os.getloadavg()
    results: dict[str, dict[str, Cell]] = {}
    upstream = Upstream(max_seconds=1200.0, cpu=server_cpu)
    redis: Redis | None = None
    where = f"; upstream and redis on CPU {server_cpu}, clients on CPU {client_cpu}" if pin else ""
    print(f"fake upstream on 127.0.0.1:{upstream.port}; {'quick' if quick else 'full'} run, {rounds} rounds{where}")
    try:
        if any(s.needs_redis for s in scs):
            exe = shutil.which("redis-server")
            assert exe is not None
            redis = Redis(exe, server_cpu)
            print(f"redis-server on {redis.url} (pid {redis.proc.pid})")
        for sc in scs:
            cells = results.setdefault(sc.key, {})
            names = [BASE, *sc.clients]
            if sc.paired:
                run_paired(sc, cells, rounds, upstream.port, turns, min_time, child_timeout, client_cpu, run_deadline)
                continue
            for rnd in range(rounds):
                order = names if rnd % 2 == 0 else names[::-1]
                for client in order:
                    cell = cells.setdefault(client, Cell())
                    if time.monotonic() > run_deadline:
                        cell.error = cell.error or "skipped: run time limit"
                        continue
                    out = run_child(
                        client,
                        sc,
                        upstream.port,
                        redis_url=redis.url if redis is not None and sc.needs_redis else None,
                        min_time=min_time,
                        timeout=child_timeout,
                        cpu=client_cpu,
                    )
                    if out.get("error"):
                        cell.error = out["error"]
                    else:
                        cell.wall += out["wall_s"]
                        cell.cpu += out["cpu_s"]
                        cell.by_round[rnd] = statistics.median(out["wall_s"])
                        cell.cpu_by_round[rnd] = statistics.median(out["cpu_s"])
                        cell.ok = cell.ok and out["ok"]
                        cell.problems += out["problems"]
                    status = "ok" if cell.valid else (cell.error or "WRONG: " + "; ".join(cell.problems[:2]))
                    walls = ", ".join(f"{w * 1000:.0f}" for w in out.get("wall_s", []))
                    print(f"  {sc.key:9s} r{rnd} {client:15s} wall ms [{walls}]  {status}", flush=True)
    finally:
        upstream.stop()
        if redis is not None:
            redis.stop()

    rows = build_rows(results, scs)
    table = text_table(rows) if rows else "(no scenario ran)"
    env = {
        "started": started,
        "commit": _commit_span(commit_start, _git_commit()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "versions": {d: _version(d) for d in ("llmrelay", "aiohttp", "redis")},
        "mode": "quick" if quick else "full",
        "rounds": rounds,
        "min_time_s": min_time,
        "pinned": {"client_cpu": client_cpu, "upstream_and_redis_cpu": server_cpu},
        "skipped": skipped,
    }
    print()
    print(table)
    for key, why in skipped.items():
        print(f"{key}: skipped: {why}")
    print(
        f"\ncommit {env['commit']}; python {env['python']}, {env['cpus']} CPUs, "
        f"load {load_before[0]:.2f} -> {env['loadavg_after'][0]:.2f}"
    )

    out_dir = Path(args.out) if args.out else (None if quick else RESULTS)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "env": env,
            "scenarios": [sc.__dict__ for sc in scs],
            "results": {k: {c: cell.as_json() for c, cell in v.items()} for k, v in results.items()},
            "rows": rows,
        }
        (out_dir / "wrappers.json").write_text(json.dumps(payload, indent=2) + "\n")
        md = [
            f"# llmrelay wrapper overhead ({env['mode']} run, {started})",
            "",
            "`wrapped` is `Fallback([Retrying(RateLimited(p))])` (requests, tokens and concurrency buckets on, "
            "limits never reached); `limited-*` is `RateLimited(p)` with the memory or the Redis backend, "
            "`limited-nop` with a backend that grants at once and keeps no books (the layer by itself), "
            "`fallback-retrying` is `Fallback([Retrying(p)])`, `bare-again` a second bare `p` "
            "(A/A: the instrument's own error) (the by-layer rows come with `--layers`); "
            "`bare` is `p`, an `OpenAIProvider`. c=64 and the stream: client and bare in one process per round, "
            "taking turns; the ratio is the median over all pairs of turns, `rounds low..high` the spread of the "
            "rounds' medians. Redis: a process per client and round; ratios are the median over rounds of "
            "(client / bare of the same round). `added per call`: the same for the difference, per request.",
            "",
            md_table(rows),
            "",
            *(f"- `{key}` skipped: {why}" for key, why in skipped.items()),
            f"Commit {env['commit']}. Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, load "
            f"average {load_before[0]:.2f} before / {env['loadavg_after'][0]:.2f} after. Versions: "
            + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
            + ".",
            "",
        ]
        (out_dir / "wrappers.md").write_text("\n".join(md))
        print(f"wrote {out_dir / 'wrappers.json'} and {out_dir / 'wrappers.md'}")
    failed = [r for r in rows if not (r["result"].startswith("PASS") or r["result"] == "reported")]
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
