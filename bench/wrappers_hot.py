"""What each wrapper layer costs per call with no I/O at all: the instrument for a change to the wrappers.

    .venv/bin/python bench/wrappers_hot.py              # the working tree, a few seconds
    .venv/bin/python bench/wrappers_hot.py --ref HEAD   # and a git ref's src/ beside it, in one process, under 10 s

The provider under the stacks answers each call after one suspension (as a real call waits once for its
reply) with a prebuilt response; each stack's ``chat`` coroutine is driven by hand (``send``), with no
event loop. Stacks: ``fallback-retrying`` (``Fallback([Retrying(p)])``), ``limited-nop`` (``RateLimited``
with every bucket on and a backend that keeps no books: the layer by itself), ``limited`` (the memory
backend) and ``wrapped`` (``Fallback([Retrying(RateLimited(p))])``, ``bench/wrappers.py``'s stack), each
printed as nanoseconds per call over the bare provider; ``--configs`` adds ``RateLimited`` with only some
of its buckets on (``rpm``, ``rpm+concurrency``, ``rpm+tpm``). Every stack runs in turn, ``--repeats`` times
(default 40) ``--calls`` calls (default 3,000), and the minimum of each is taken: this machine's noise
only ever adds time.

This measures what a layer's code costs when it is hot, not what it adds in a real run: there, between
two calls, 150 us of aiohttp work evict it, and it costs about four times as much (see ``bench/README.md``,
"Where the c=64 overhead goes"). What it is good for is comparing two versions of the same code, where the
paired in-situ runs (``ab_ref.py --wrap``) move by several percent from run to run.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from wrappers import nop_backend  # noqa: E402

UNLIMITED = 1e12
STACKS = ("fallback-retrying", "limited-nop", "limited", "wrapped")
CONFIGS = ("rpm", "rpm+concurrency", "rpm+tpm")
"""``--configs``: ``RateLimited`` (memory backend) with fewer of its buckets on."""


class _Suspend:
    """One suspension, as a real call makes waiting for its reply."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


def stacks(package: Any) -> tuple[Any, dict[str, Any]]:
    """A request and the stacks of ``package`` (``llmrelay`` or a ref unpacked as ``llmrelay_ref``)."""
    name = package.__name__
    types = importlib.import_module(f"{name}._types")
    base = importlib.import_module(f"{name}._provider")
    wrappers = importlib.import_module(f"{name}.wrappers")
    limits = importlib.import_module(f"{name}.limits")
    response = types.ChatResponse(
        text="hi", usage=types.Usage(input_tokens=10, output_tokens=50), model="gpt-4o-mini", provider="openai"
    )

    class Answering(base.Provider):  # type: ignore[misc, name-defined]
        name = "openai"
        model = "gpt-4o-mini"

        async def chat(self, request: Any) -> Any:
            await _Suspend()
            return response

        def chat_stream(self, request: Any) -> Any:
            raise NotImplementedError

    def limited(backend: Any = None, *, tpm: bool = True, concurrency: bool = True) -> Any:
        return wrappers.RateLimited(
            Answering(),
            requests_per_minute=UNLIMITED,
            tokens_per_minute=UNLIMITED if tpm else None,
            max_concurrency=1_000_000 if concurrency else None,
            backend=backend,
        )

    request = types.ChatRequest(
        messages=[types.Message(role="user", content="Say something about the weather, please.")], max_tokens=50
    )
    return request, {
        "bare": Answering(),
        "fallback-retrying": wrappers.Fallback([wrappers.Retrying(Answering())]),
        "limited-nop": limited(nop_backend(limits)),
        "limited": limited(),
        "wrapped": wrappers.Fallback([wrappers.Retrying(limited())]),
        "rpm": limited(tpm=False, concurrency=False),
        "rpm+concurrency": limited(tpm=False),
        "rpm+tpm": limited(concurrency=False),
    }


def per_call_ns(chat: Callable[[Any], Any], request: Any, calls: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        coro = chat(request)
        coro.send(None)  # up to the suspension
        try:
            coro.send(None)
        except StopIteration:
            pass
        else:
            raise RuntimeError("a stack suspended twice")
    return (time.perf_counter_ns() - t0) / calls


def unpack(ref: str, into: Path) -> None:
    from ab_ref import unpack as unpack_ref

    unpack_ref(ref, into)
    sys.path.insert(0, str(into))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="also a git ref's src/ (unpacked as llmrelay_ref), e.g. HEAD")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument(
        "--configs", action="store_true", help="also RateLimited with fewer buckets: " + ", ".join(CONFIGS)
    )
    args = parser.parse_args()
    import llmrelay

    tmp = Path(tempfile.mkdtemp(prefix="llmrelay-hot-"))
    try:
        sides = {"working tree": stacks(llmrelay)}
        if args.ref:
            unpack(args.ref, tmp)
            sides[args.ref] = stacks(importlib.import_module("llmrelay_ref"))
        keys = ("bare", *STACKS, *(CONFIGS if args.configs else ()))
        samples: dict[tuple[str, str], list[float]] = {(s, k): [] for s in sides for k in keys}
        for _ in range(args.repeats):
            for side, (request, st) in sides.items():
                for key in keys:
                    samples[(side, key)].append(per_call_ns(st[key].chat, request, args.calls))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"ns per call over the bare provider (min of {args.repeats} x {args.calls:,} calls)")
    print(f"{'':14s}" + "".join(f"{k:>19s}" for k in keys[1:]) + f"{'bare':>10s}")
    for side in sides:
        bare = min(samples[(side, "bare")])
        row = "".join(f"{min(samples[(side, k)]) - bare:19.0f}" for k in keys[1:])
        print(f"{side[:14]:14s}{row}{bare:10.0f}")


if __name__ == "__main__":
    main()
