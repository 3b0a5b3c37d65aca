"""A/B of the working tree against a git ref, in one process: is a change to ``src/`` faster?

    .venv/bin/python bench/ab_ref.py HEAD                 # the uncommitted change against HEAD
    .venv/bin/python bench/ab_ref.py HEAD~3 --turns 60     # the last three commits together
    .venv/bin/python bench/ab_ref.py HEAD --wrap wrapped   # a wrapper change: both sides in their own stack

The ref's ``src/llmrelay`` is unpacked into a temporary directory as a package named ``llmrelay_ref``
(the package imports itself relatively), so both versions' ``OpenAIProvider`` run in one process against
one fake upstream (``bench/upstream.py``), taking turns (ABBA) of ``--count`` non-streaming requests at
``--concurrency``; every reply is checked. Printed: the median over pairs of turns of (working tree /
ref). Two processes of one client differ here by 10-30%, turns in one process by 1-2%: this is the
instrument for a change worth a few percent (``bench/run.py`` for the targets).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def unpack(ref: str, into: Path) -> None:
    """``ref``'s ``src/llmrelay`` as ``into/llmrelay_ref``."""
    archive = subprocess.run(
        ["git", "archive", ref, "src/llmrelay"], cwd=HERE.parent, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "src" / "llmrelay").rename(into / "llmrelay_ref")


async def turns(port: int, args: argparse.Namespace) -> dict[str, list[float]]:
    import llmrelay_ref  # type: ignore[import-not-found]
    from llmrelay_ref.providers.openai import OpenAIProvider  # type: ignore[import-not-found]

    import clients
    import llmrelay

    def wrapped(package: Any, provider: Any) -> Any:
        """``provider`` as ``--wrap`` asks, built from ``package``'s own wrappers (from its ``wrappers``
        module: the package's lazy top-level names import ``llmrelay.*`` by absolute name)."""
        if args.wrap == "none":
            return provider
        package = importlib.import_module(package.__name__ + ".wrappers")
        limited = package.RateLimited(
            provider, requests_per_minute=1e12, tokens_per_minute=1e12, max_concurrency=1_000_000
        )
        if args.wrap == "limited":
            return limited
        return package.Fallback([package.Retrying(limited)])

    class Tree(clients.LlmRelay):
        name = "tree"

        async def open(self) -> None:
            await super().open()
            self.provider = wrapped(llmrelay, self.provider)

    class Ref(clients.LlmRelay):
        name = "ref"

        async def open(self) -> None:
            self.llmrelay: Any = llmrelay_ref
            self.provider = wrapped(llmrelay_ref, OpenAIProvider(clients.MODEL, base_url=self.base, api_key="sk-x"))

    base = f"http://127.0.0.1:{port}/v1"
    objs = {"tree": Tree(base), "ref": Ref(base)}
    walls: dict[str, list[float]] = {n: [] for n in objs}
    for c in objs.values():
        await c.open()
    try:
        for c in objs.values():
            for _ in range(3):
                await clients.drive(lambda c=c: c.complete(16), 64, 64)
        for turn in range(args.turns):
            for name in ("tree", "ref") if turn % 2 == 0 else ("ref", "tree"):
                c = objs[name]
                gc.collect()
                t0 = time.perf_counter()
                results = await clients.drive(lambda c=c: c.complete(50), args.count, args.concurrency)
                walls[name].append(time.perf_counter() - t0)
                check = clients._check(results, args.count, 50, False)
                if not check["ok"]:
                    raise SystemExit(f"{name}: wrong replies: {check['problems']}")
    finally:
        for c in objs.values():
            await c.close()
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="a git ref (commit, branch, HEAD~N)")
    parser.add_argument("--turns", type=int, default=40, help="turns each (default 40)")
    parser.add_argument("--count", type=int, default=2000, help="requests per turn (default 2000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--wrap",
        choices=("none", "limited", "wrapped"),
        default="none",
        help="compare OpenAIProvider bare (default), in RateLimited (every bucket on, limits never reached), or in "
        "Fallback([Retrying(RateLimited(p))]): bench/wrappers.py's stack",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the upstream and this process to CPUs")
    args = parser.parse_args()
    from run import Upstream

    tmp = Path(tempfile.mkdtemp(prefix="llmrelay-ab-ref-"))
    try:
        unpack(args.ref, tmp)
        sys.path.insert(0, str(tmp))
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        pin = not args.no_pin and len(cpus) >= 2
        upstream = Upstream(max_seconds=1200.0, cpu=cpus[-1] if pin else None)
        if pin:
            os.sched_setaffinity(0, {cpus[0]})
        try:
            walls = asyncio.run(turns(upstream.port, args))
        finally:
            upstream.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pairs = [a / b for a, b in zip(walls["tree"], walls["ref"], strict=True)]
    per_call = {n: statistics.median(w) / args.count * 1e6 for n, w in walls.items()}
    print(
        f"working tree / {args.ref}: {statistics.median(pairs):.3f}x (median of {len(pairs)} pairs of turns; "
        f"quartiles {statistics.quantiles(pairs, n=4)[0]:.3f} .. {statistics.quantiles(pairs, n=4)[2]:.3f}); "
        f"{per_call['tree']:.1f} vs {per_call['ref']:.1f} us per call at c={args.concurrency}"
    )


if __name__ == "__main__":
    main()
