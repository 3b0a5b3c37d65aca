"""The transport/speed benchmark: llmrelay against a raw-aiohttp floor, the official openai SDK and raw httpx.

    .venv/bin/python bench/run.py            # full run (a few minutes)
    .venv/bin/python bench/run.py --quick    # smaller scenarios (under 2 minutes)

A fake OpenAI-compatible upstream (``bench/upstream.py``) runs in its own process on 127.0.0.1; every
client runs in a fresh process per scenario (``bench/clients.py``), so its CPU time, warm-up and peak RSS
are its own. Each timing is repeated and the median is reported; every reply is checked against what the
upstream sent. The non-streaming scenarios are **paired**: each round is one process in which the floor and
llmrelay take turns (12 each, ABBA), and the ratio is the median over all pairs of turns; two processes
running the same client here differed by 10-30%, more than the differences measured. The streaming
scenarios (where peak RSS is a target) keep a process per client. Results: a table on stdout,
``bench/results/latest.json`` and ``bench/results/latest.md``.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CLIENTS = ("floor", "llmrelay", "openai", "httpx")
COLUMN = {"floor": "floor (raw aiohttp)", "llmrelay": "llmrelay", "openai": "openai SDK", "httpx": "raw httpx"}
EXPERIMENTS = ("llmrelay-patched",)
"""Extra clients for ``--experiments`` (diagnosis, not targets): llmrelay with all the changes proposed for
``src/`` applied at runtime (``bench/patches.py``)."""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # "stream" | "json"
    count: int
    concurrency: int
    tokens: int
    target: float  # llmrelay/floor wall-time ratio
    rss_target_mb: float | None = None
    paired: bool = False
    """Floor and llmrelay in one process per round, taking turns (``clients.paired_turns``); the other
    clients in processes of their own."""


def scenarios(quick: bool) -> list[Scenario]:
    if quick:
        return [
            Scenario("stream1", "1 stream x 5,000 chunks", "stream", 1, 1, 5_000, 1.6),
            Scenario("json_c1", "500 requests, c=1", "json", 500, 1, 50, 1.4, paired=True),
            Scenario("json_c64", "500 requests, c=64", "json", 500, 64, 50, 1.4, paired=True),
            Scenario("fanout", "100 concurrent streams x 200 chunks", "stream", 100, 100, 200, 1.5, 100.0),
        ]
    return [
        Scenario("stream1", "1 stream x 20,000 chunks", "stream", 1, 1, 20_000, 1.6),
        Scenario("json_c1", "2,000 requests, c=1", "json", 2_000, 1, 50, 1.4, paired=True),
        Scenario("json_c64", "2,000 requests, c=64", "json", 2_000, 64, 50, 1.4, paired=True),
        Scenario("fanout", "500 concurrent streams x 200 chunks", "stream", 500, 500, 200, 1.5, 100.0),
    ]


@dataclass
class Cell:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    maxrss_kb: list[int] = field(default_factory=list)
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    by_round: dict[int, float] = field(default_factory=dict)
    """Round -> median wall time of that round's process (for ratios paired by round)."""
    by_turn: dict[int, float] = field(default_factory=dict)
    """Paired scenarios: round * 1000 + turn -> that turn's wall time (for ratios paired by turn)."""

    @property
    def median(self) -> float | None:
        return statistics.median(self.wall) if self.wall else None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    @property
    def rss_mb(self) -> float | None:
        return max(self.maxrss_kb) * 1024 / 1e6 if self.maxrss_kb else None

    @property
    def valid(self) -> bool:
        return self.ok and self.error is None and bool(self.wall)

    def as_json(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "median_wall_s": self.median,
            "median_cpu_s": self.cpu_median,
            "peak_rss_mb": self.rss_mb,
            "ok": self.ok,
            "problems": self.problems,
            "error": self.error,
            "median_wall_by_round": self.by_round,
            "wall_by_turn": self.by_turn,
        }


def paired_ratio(cell: Cell | None, floor: Cell | None) -> float | None:
    """Median over turns of (client's turn / the floor's turn next to it), in a paired scenario; else the
    median over rounds of (client's median / the floor's median in the same round).

    A paired scenario runs the floor and llmrelay in one process per round, taking turns, which cancels
    what differs between processes (10-30% here from one process to the next) and the drift in background
    load. Otherwise each round runs them back to back in fresh processes, so pairing by round cancels most
    of the drift. Clients that ran in fewer rounds are paired with the floor of the rounds they ran in.
    """
    if cell is None or floor is None or not cell.valid or not floor.valid:
        return None
    if cell.by_turn and floor.by_turn:
        turns = [t / floor.by_turn[k] for k, t in cell.by_turn.items() if floor.by_turn.get(k, 0) > 0]
        if turns:
            return statistics.median(turns)
    ratios = [m / floor.by_round[r] for r, m in cell.by_round.items() if r in floor.by_round and floor.by_round[r] > 0]
    if not ratios:
        return cell.median / floor.median  # type: ignore[operator]
    return statistics.median(ratios)


class Upstream:
    """The fake upstream process; ``port`` once ready."""

    def __init__(self, max_seconds: float, cpu: int | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "upstream.py"), "--port", "0", "--max-seconds", str(int(max_seconds))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = self._wait_ready(timeout=20.0)
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})

    def _wait_ready(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("READY "):
                    return int(line.split()[1])
        self.stop()
        raise RuntimeError("the fake upstream did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def run_client(
    client: str,
    sc: Scenario,
    port: int,
    *,
    repeats: int,
    time_budget: float,
    min_time: float,
    timeout: float,
    cpu: int | None,
    paired_with: str | None = None,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "clients.py"),
        "--client", client,
        *(["--paired-with", paired_with] if paired_with else []),
        "--port", str(port),
        "--kind", sc.kind,
        "--count", str(sc.count),
        "--concurrency", str(sc.concurrency),
        "--tokens", str(sc.tokens),
        "--repeats", str(repeats),
        "--time-budget", str(time_budget),
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
    return json.loads(lines[-1])


def run_paired_round(
    sc: Scenario,
    cells: dict[str, Cell],
    rnd: int,
    port: int,
    turns: int,
    timeout: float,
    cpu: int | None,
    deadline: float,
) -> None:
    """One round of a paired scenario: one process running llmrelay and the floor, ``turns`` each in turn."""
    floor, ours = cells.setdefault("floor", Cell()), cells.setdefault("llmrelay", Cell())
    if time.monotonic() > deadline:
        for cell in (floor, ours):
            cell.error = cell.error or "skipped: run time limit"
        return
    out = run_client(
        "llmrelay",
        sc,
        port,
        repeats=turns,
        time_budget=1e9,
        min_time=0.0,
        timeout=timeout,
        cpu=cpu,
        paired_with="floor",
    )
    if out.get("error"):
        for cell in (floor, ours):
            cell.error = out["error"]
        print(f"  {sc.key:9s} r{rnd} floor+llmrelay {out['error']}", flush=True)
        return
    for name, cell in (("floor", floor), ("llmrelay", ours)):
        walls = out["wall_s"][name]
        cell.wall += walls
        cell.cpu += out["cpu_s"][name]
        cell.maxrss_kb.append(out["maxrss_kb"])
        cell.by_round[rnd] = statistics.median(walls)
        for turn, wall in enumerate(walls):
            cell.by_turn[rnd * 1000 + turn] = wall
        cell.ok = cell.ok and out["ok"]
        cell.problems += out["problems"]
    pairs = [a / b for a, b in zip(out["wall_s"]["llmrelay"], out["wall_s"]["floor"], strict=True)]
    print(
        f"  {sc.key:9s} r{rnd} llmrelay vs floor, one process: {len(pairs)} turns each, ratio median "
        f"{statistics.median(pairs):.3f} ({min(pairs):.3f} .. {max(pairs):.3f})  "
        f"{'ok' if out['ok'] else 'WRONG: ' + '; '.join(out['problems'][:2])}",
        flush=True,
    )


def time_imports(runs: int) -> dict[str, list[float]]:
    """Wall time of ``python -c "import X"`` in fresh interpreters, alternating modules; one untimed run each."""
    stmts = {
        "python -c pass": "pass",
        "llmrelay": "import llmrelay",
        "openai": "import openai",
        "httpx": "import httpx",
    }
    out: dict[str, list[float]] = {k: [] for k in stmts}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    for i in range(runs + 1):
        for key, stmt in stmts.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], check=True, timeout=60, env=env, capture_output=True)
            if i:
                out[key].append(time.perf_counter() - t0)
    return out


def _git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when src/ has uncommitted changes ("-" outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=HERE.parent, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "-"
    return (head or "-") + ("+dirty" if dirty else "")


def _commit_span(start: str, end: str) -> str:
    return start if start == end else f"{start} -> {end} (the checkout changed during the run)"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    if cell.error:
        return "ERROR"
    if not cell.ok:
        return "WRONG"
    return _fmt_s(cell.median)


def build_rows(
    results: dict[str, dict[str, Cell]], scs: list[Scenario], imports: dict[str, list[float]] | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for sc in scs:
        cells = results.get(sc.key, {})
        floor, lr = cells.get("floor"), cells.get("llmrelay")

        def ratio(c: Cell | None, floor: Cell | None = floor) -> float | None:
            return paired_ratio(c, floor)

        r = ratio(lr)
        verdict = "PASS" if r is not None and r <= sc.target else "FAIL"
        if lr is not None and not lr.valid:
            verdict = "FAIL (wrong/error)"
        rows.append(
            {
                "scenario": f"{sc.title} (wall)",
                "key": sc.key,
                "values": {c: _cell_text(cells.get(c)) for c in CLIENTS},
                "llmrelay_ratio": _fmt_ratio(r),
                "openai_ratio": _fmt_ratio(ratio(cells.get("openai"))),
                "httpx_ratio": _fmt_ratio(ratio(cells.get("httpx"))),
                "target": f"<= {sc.target:.1f}x floor",
                "result": verdict,
                "ratio": r,
            }
        )
        if sc.rss_target_mb is not None:
            rss = {c: (cells[c].rss_mb if c in cells else None) for c in CLIENTS}
            lr_rss = rss.get("llmrelay")
            floor_rss = rss.get("floor")
            rows.append(
                {
                    "scenario": f"{sc.title} (peak RSS)",
                    "key": sc.key + "_rss",
                    "values": {c: ("-" if v is None else f"{v:.0f} MB") for c, v in rss.items()},
                    "llmrelay_ratio": _fmt_ratio(lr_rss / floor_rss if lr_rss and floor_rss else None),
                    "openai_ratio": _fmt_ratio(rss["openai"] / floor_rss if rss.get("openai") and floor_rss else None),
                    "httpx_ratio": _fmt_ratio(rss["httpx"] / floor_rss if rss.get("httpx") and floor_rss else None),
                    "target": f"<= {sc.rss_target_mb:.0f} MB",
                    "result": "PASS" if lr_rss is not None and lr_rss <= sc.rss_target_mb else "FAIL",
                    "ratio": lr_rss,
                }
            )
    if imports:
        med = {k: statistics.median(v) for k, v in imports.items() if v}
        r = med["llmrelay"] / med["openai"] if med.get("llmrelay") and med.get("openai") else None
        rows.append(
            {
                "scenario": "python -c 'import X' (floor column: python -c pass)",
                "key": "import",
                "values": {
                    "floor": _fmt_s(med.get("python -c pass")),
                    "llmrelay": _fmt_s(med.get("llmrelay")),
                    "openai": _fmt_s(med.get("openai")),
                    "httpx": _fmt_s(med.get("httpx")),
                },
                "llmrelay_ratio": f"{_fmt_ratio(r)} of openai",
                "openai_ratio": "-",
                "httpx_ratio": "-",
                "target": "<= 0.30x openai",
                "result": "PASS" if r is not None and r <= 0.30 else "FAIL",
                "ratio": r,
            }
        )
    return rows


HEADERS = [
    "scenario",
    *(COLUMN[c] for c in CLIENTS),
    "llmrelay/floor",
    "openai/floor",
    "httpx/floor",
    "target",
    "result",
]


def _row_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["scenario"],
        *(row["values"][c] for c in CLIENTS),
        row["llmrelay_ratio"],
        row["openai_ratio"],
        row["httpx_ratio"],
        row["target"],
        row["result"],
    ]


def text_table(rows: list[dict[str, Any]]) -> str:
    body = [_row_cells(r) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(HEADERS)]
    line = "  ".join("-" * w for w in widths)
    fmt = [h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)]
    out = ["  ".join(fmt), line]
    for b in body:
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths, strict=True)))
        )
    return "\n".join(out)


def md_table(rows: list[dict[str, Any]]) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|"]
    out += ["| " + " | ".join(_row_cells(r)) + " |" for r in rows]
    return "\n".join(out)


def experiment_table(results: dict[str, dict[str, Cell]], scs: list[Scenario], extra: list[str]) -> str:
    """Median wall time (and ratio to the floor) of llmrelay as shipped and of the experimental variants."""
    names = ["floor", "llmrelay", *extra]
    header = ["scenario", *names, "target"]
    body = []
    for sc in scs:
        cells = results.get(sc.key, {})
        floor = cells.get("floor")
        row = [sc.title]
        for n in names:
            c = cells.get(n)
            if c is None or not c.valid:
                row.append(_cell_text(c))
            elif n == "floor" or floor is None or not floor.valid:
                row.append(_fmt_s(c.median))
            else:
                row.append(f"{_fmt_s(c.median)} ({paired_ratio(c, floor):.2f}x)")
        row.append(f"<= {sc.target:.1f}x")
        body.append(row)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths, strict=True)))
        for b in body
    ]
    return "\n".join(out)


def detail_table(results: dict[str, dict[str, Cell]], scs: list[Scenario], clients: list[str]) -> str:
    """Per client: median wall, median CPU, samples, peak RSS."""
    out = ["scenario | client | median wall | median CPU | samples | peak RSS | check"]
    for sc in scs:
        for c in clients:
            cell = results.get(sc.key, {}).get(c)
            if cell is None:
                continue
            check = "ok" if cell.valid else (cell.error or "; ".join(cell.problems))[:120]
            rss = "-" if cell.rss_mb is None else f"{cell.rss_mb:.0f} MB"
            out.append(
                f"{sc.key} | {c} | {_fmt_s(cell.median)} | {_fmt_s(cell.cpu_median)} | {len(cell.wall)} | "
                f"{rss} | {check}"
            )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="llmrelay transport/speed benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller scenarios, under 2 minutes")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per client process (median)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="fresh processes per scenario for floor and llmrelay (default 4; quick 1)",
    )
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS))
    parser.add_argument("--only", default="", help="comma-separated scenario keys (stream1,json_c1,json_c64,fanout)")
    parser.add_argument("--no-import", action="store_true", help="skip the import-time scenario")
    parser.add_argument("--experiments", action="store_true", help="also run " + ",".join(EXPERIMENTS))
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the upstream to the last CPU and each client to CPU 0 (pinning is the default on Linux "
        "with 2+ CPUs: the client never shares a core with the upstream, and runs vary less)",
    )
    parser.add_argument("--out", default=str(RESULTS), help="directory for latest.json / latest.md")
    args = parser.parse_args()

    quick = args.quick
    rounds = args.rounds if args.rounds is not None else (1 if quick else 4)
    rounds = max(1, min(rounds, 5))
    clients = [c for c in args.clients.split(",") if c]
    for c in clients:
        if c not in CLIENTS:
            parser.error(f"unknown client {c!r}")
    if "floor" not in clients:
        clients.insert(0, "floor")
    extra = list(EXPERIMENTS) if args.experiments else []
    scs = [s for s in scenarios(quick) if not args.only or s.key in args.only.split(",")]
    # Slow reference clients stop repeating after this many timed seconds (at least one sample).
    budget = 5.0 if quick else 20.0
    # Floor and llmrelay keep repeating until this much timed work (more samples against machine noise).
    min_time = 0.5 if quick else 1.0
    # Paired scenarios: turns each of floor and llmrelay take per round (process).
    turns = 4 if quick else 12
    child_timeout = 90.0 if quick else 240.0
    run_deadline = time.monotonic() + (105.0 if quick else 540.0) + (150.0 if extra and not quick else 0.0)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    commit_start = _git_commit()
    load_before = os.getloadavg()
    results: dict[str, dict[str, Cell]] = {}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = not args.no_pin and len(cpus) >= 2
    client_cpu = cpus[0] if pin else None
    upstream = Upstream(max_seconds=1200.0, cpu=cpus[-1] if pin else None)
    where = f"; upstream on CPU {cpus[-1]}, clients on CPU {client_cpu}" if pin else ""
    print(
        f"fake upstream on 127.0.0.1:{upstream.port} (pid {upstream.proc.pid}); "
        f"{'quick' if quick else 'full'} run{where}"
    )
    try:
        for sc in scs:
            cells = results.setdefault(sc.key, {})
            if sc.paired:  # floor and llmrelay in one process per round; the others as below
                for rnd in range(rounds):
                    run_paired_round(sc, cells, rnd, upstream.port, turns, child_timeout, client_cpu, run_deadline)
            ours = () if sc.paired else ("floor", "llmrelay")
            order: list[tuple[int, str]] = []
            for rnd in range(rounds):
                order += [(rnd, c) for c in (*ours, *(extra if rnd < 2 else []))]
                if rnd == 0:
                    order += [(rnd, c) for c in clients if c not in ("floor", "llmrelay")]
            for rnd, client in order:
                if time.monotonic() > run_deadline:
                    cells.setdefault(client, Cell(error="skipped: run time limit"))
                    continue
                slow = client in ("openai", "httpx")
                out = run_client(
                    client,
                    sc,
                    upstream.port,
                    repeats=args.repeats,
                    time_budget=budget if slow else 1e9,
                    min_time=0.0 if slow else min_time,
                    timeout=child_timeout,
                    cpu=client_cpu,
                )
                cell = cells.setdefault(client, Cell())
                if out.get("error"):
                    cell.error = out["error"]
                else:
                    cell.wall += out["wall_s"]
                    cell.by_round[rnd] = statistics.median(out["wall_s"])
                    cell.cpu += out["cpu_s"]
                    cell.maxrss_kb.append(out["maxrss_kb"])
                    cell.ok = cell.ok and out["ok"]
                    cell.problems += out["problems"]
                status = "ok" if cell.valid else (cell.error or "WRONG: " + "; ".join(cell.problems[:2]))
                walls = ", ".join(f"{w * 1000:.0f}" for w in out.get("wall_s", []))
                print(f"  {sc.key:9s} {client:15s} wall ms [{walls}]  {status}", flush=True)
        imports = None
        if not args.no_import and time.monotonic() < run_deadline:
            imports = time_imports(5 if quick else 10)
    finally:
        upstream.stop()

    rows = build_rows(results, scs, imports)
    table = text_table(rows)
    details = detail_table(results, scs, [*clients, *extra])
    env = {
        "started": started,
        "commit": _commit_span(commit_start, _git_commit()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "versions": {d: _version(d) for d in ("llmrelay", "aiohttp", "httpx", "openai", "httpx2")},
        "mode": "quick" if quick else "full",
        "repeats": args.repeats,
        "rounds_floor_llmrelay": rounds,
        "pinned": {"client_cpu": client_cpu, "upstream_cpu": cpus[-1] if pin else None},
    }
    print()
    print(table)
    experiments = experiment_table(results, scs, extra) if extra else ""
    if experiments:
        print()
        print("Experiments (not targets): the proposed src/ changes applied at runtime, bench/patches.py")
        print(experiments)
    print()
    print(details)
    print()
    print(
        f"commit {env['commit']}; python {env['python']}, {env['cpus']} CPUs, "
        f"load {load_before[0]:.2f} -> {env['loadavg_after'][0]:.2f}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    )

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "env": env,
        "scenarios": [sc.__dict__ for sc in scs],
        "results": {k: {c: cell.as_json() for c, cell in v.items()} for k, v in results.items()},
        "imports_s": imports,
        "rows": [{k: v for k, v in r.items()} for r in rows],
        "experiments": experiments,
    }
    (out_dir / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = [
        f"# llmrelay benchmark ({env['mode']} run, {started})",
        "",
        md_table(rows),
        "",
        "The c=1 and c=64 rows are paired: per round one process in which the floor and llmrelay take turns; "
        "the ratio is the median over all pairs of turns (the per-client rows below: medians of those turns, "
        "and the peak RSS of the shared process). The other rows: a process per client and round, the ratio "
        "the median over rounds of llmrelay / floor.",
        "",
        *(
            [
                "Experiments (not targets): llmrelay with all the changes proposed for `src/` applied at runtime",
                "(`llmrelay-patched`, see `bench/patches.py`):",
                "",
                "```",
                experiments,
                "```",
                "",
            ]
            if experiments
            else []
        ),
        "Per client (median wall / median CPU of the timed repeats; peak RSS of the client process):",
        "",
        "| " + " | ".join(details.splitlines()[0].split(" | ")) + " |",
        "|---|---|---:|---:|---:|---:|---|",
        *("| " + ln + " |" for ln in details.splitlines()[1:]),
        "",
        f"Commit {env['commit']}. Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, load average "
        f"{load_before[0]:.2f} before / {env['loadavg_after'][0]:.2f} after. Versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + ".",
        "",
    ]
    (out_dir / "latest.md").write_text("\n".join(md))
    failed = [r for r in rows if not r["result"].startswith("PASS")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
