"""A/B diagnosis in ONE process: several clients take turns on the same scenario, in small interleaved
batches, so load from elsewhere on the machine hits them alike. Reports per-operation CPU and wall time
relative to the floor. A diagnostic for attributing gaps; ``bench/run.py`` is the benchmark of record.

    .venv/bin/python bench/ab.py --kind json --concurrency 1 [--patches read,body,json]
    .venv/bin/python bench/ab.py --kind stream --tokens 20000 --count 1

Starts its own fake upstream. ``--patches`` applies ``bench/patches.py`` globally (to every llmrelay client
in the process), so compare a run with and without it, each against its own floor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients
from run import Upstream


async def amain(args: argparse.Namespace, port: int) -> None:
    names = args.clients.split(",")
    if args.patches:
        import patches

        patches.apply(args.patches.split(","))
    base = f"http://127.0.0.1:{port}/v1"
    objs = {n: clients.CLIENTS[n](base) for n in names}
    for c in objs.values():
        await c.open()
    stream = args.kind == "stream"
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    try:
        for c in objs.values():  # warm-up
            op = c.stream if stream else c.complete
            await clients.drive(lambda op=op: op(min(args.tokens, 16)), max(8, args.concurrency), args.concurrency)
        for _ in range(args.rounds):
            for n, c in objs.items():
                op = c.stream if stream else c.complete
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                results = await clients.drive(lambda op=op: op(args.tokens), args.count, args.concurrency)
                wall[n].append((time.perf_counter() - t0) / args.count)
                cpu[n].append((time.process_time() - c0) / args.count)
                assert len(results) == args.count
    finally:
        for c in objs.values():
            await c.close()
    f_cpu = statistics.median(cpu[names[0]])
    f_wall = statistics.median(wall[names[0]])
    unit, scale = ("ms", 1e3) if stream else ("us", 1e6)
    print(
        f"{args.kind} c={args.concurrency} tokens={args.tokens} batch={args.count} rounds={args.rounds} "
        f"patches={args.patches or '-'}"
    )
    print(f"  {'client':18s} {'cpu/op':>10s} {'ratio':>6s} {'wall/op':>10s} {'ratio':>6s}")
    for n in names:
        mc, mw = statistics.median(cpu[n]), statistics.median(wall[n])
        print(f"  {n:18s} {mc * scale:8.1f}{unit} {mc / f_cpu:5.2f}x {mw * scale:8.1f}{unit} {mw / f_wall:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("json", "stream"), default="json")
    parser.add_argument("--clients", default="floor,x-transport,x-codec,llmrelay")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--count", type=int, default=200, help="operations per batch")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--patches", default="")
    args = parser.parse_args()
    args.rounds = max(1, min(args.rounds, 200))
    up = Upstream(max_seconds=600)
    try:
        asyncio.run(amain(args, up.port))
    finally:
        up.stop()


if __name__ == "__main__":
    main()
