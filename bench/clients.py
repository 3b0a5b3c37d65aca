"""One benchmark client, run in its own process for one scenario (``bench/run.py`` starts it).

    python bench/clients.py --client floor --port 8000 --kind stream --count 1 --concurrency 1 --tokens 20000

With ``--paired-with OTHER`` the process runs both clients, taking turns (``paired_turns``), and the wall
and CPU seconds are per client.

Prints one JSON object on stdout: the wall and CPU seconds of each timed repeat, the process's peak RSS,
and a correctness check of every reply (text length and CRC-32, number of text deltas, reported usage)
against what the fake upstream sent, so a fast-but-wrong client cannot win.

Clients:

- ``floor``: raw aiohttp, one ``ClientSession`` with ``TCPConnector(limit=1000, limit_per_host=0)`` (the
  same pool llmrelay builds). It does the work any correct client must: JSON-encode the request, read the
  SSE body, split lines, ``json.loads`` each ``data:`` payload and pick the delta's content and the usage
  (non-streaming: ``json.loads`` the body). No validation, no typed objects, no timeouts.
- ``llmrelay``: ``OpenAIProvider`` with the default transport; ``chat_stream`` events / ``chat``.
- ``openai``: the official SDK's ``AsyncOpenAI(max_retries=0)``; its httpx pool raised to
  ``Limits(max_connections=1000, max_keepalive_connections=1000)`` (the SDK's default keeps 100 idle
  connections, which would make it reconnect at c=500) and its connect timeout raised from 5 s to 60 s.
- ``httpx``: raw httpx ``AsyncClient`` (same limits as above, no timeouts) with the floor's parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

MODEL = "gpt-4o-mini"
RUN_TIMEOUT = 300.0
"""Seconds one timed repeat may take before the child gives up."""

Result = tuple[str, int, int | None]
"""(text, number of text deltas, completion tokens reported in usage)."""


def _rss_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _request_body(tokens: int, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


class _SseLines:
    """The floor's SSE handling: split on LF, ``json.loads`` every ``data:`` payload."""

    __slots__ = ("buf", "done", "parts", "usage")

    def __init__(self) -> None:
        self.buf = b""
        self.parts: list[str] = []
        self.usage: int | None = None
        self.done = False

    def feed(self, chunk: bytes) -> None:
        lines = (self.buf + chunk).split(b"\n")
        self.buf = lines.pop()
        loads = json.loads
        parts = self.parts
        for line in lines:
            if line[:6] != b"data: " or self.done:
                continue
            payload = line[6:]
            if payload == b"[DONE]":
                self.done = True
                continue
            obj = loads(payload.decode())
            choices = obj.get("choices")
            if choices:
                content = choices[0]["delta"].get("content")
                if content:
                    parts.append(content)
            usage = obj.get("usage")
            if usage:
                self.usage = usage["completion_tokens"]

    def result(self) -> Result:
        if not self.done:
            raise RuntimeError("stream ended without [DONE]")
        return "".join(self.parts), len(self.parts), self.usage


class Client:
    name = ""

    def __init__(self, base: str) -> None:
        self.base = base  # http://127.0.0.1:PORT/v1

    async def open(self) -> None: ...

    async def stream(self, tokens: int) -> Result:
        raise NotImplementedError

    async def complete(self, tokens: int) -> Result:
        raise NotImplementedError

    async def close(self) -> None: ...


class Floor(Client):
    name = "floor"

    async def open(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self.url = self.base + "/chat/completions"
        self.h_stream = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "authorization": "Bearer sk-x",
        }
        self.h_json = {"content-type": "application/json", "accept": "application/json", "authorization": "Bearer sk-x"}

    async def stream(self, tokens: int) -> Result:
        body = _request_body(tokens, True)
        async with self.session.post(self.url, data=body, headers=self.h_stream) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            sse = _SseLines()
            async for chunk in resp.content.iter_any():
                sse.feed(chunk)
        return sse.result()

    async def complete(self, tokens: int) -> Result:
        body = _request_body(tokens, False)
        async with self.session.post(self.url, data=body, headers=self.h_json) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            payload = json.loads(await resp.read())
        return payload["choices"][0]["message"]["content"], 1, payload["usage"]["completion_tokens"]

    async def close(self) -> None:
        await self.session.close()


class Httpx(Client):
    name = "httpx"

    async def open(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000), timeout=None
        )
        self.url = self.base + "/chat/completions"
        self.h_stream = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "authorization": "Bearer sk-x",
        }
        self.h_json = {"content-type": "application/json", "accept": "application/json", "authorization": "Bearer sk-x"}

    async def stream(self, tokens: int) -> Result:
        body = _request_body(tokens, True)
        async with self.client.stream("POST", self.url, content=body, headers=self.h_stream) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            sse = _SseLines()
            async for chunk in resp.aiter_bytes():
                sse.feed(chunk)
        return sse.result()

    async def complete(self, tokens: int) -> Result:
        body = _request_body(tokens, False)
        resp = await self.client.post(self.url, content=body, headers=self.h_json)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}")
        payload = json.loads(resp.content)
        return payload["choices"][0]["message"]["content"], 1, payload["usage"]["completion_tokens"]

    async def close(self) -> None:
        await self.client.aclose()


class LlmRelay(Client):
    name = "llmrelay"

    async def open(self) -> None:
        import llmrelay

        self.llmrelay = llmrelay
        self.provider = llmrelay.OpenAIProvider(MODEL, base_url=self.base, api_key="sk-x")

    async def stream(self, tokens: int) -> Result:
        lr = self.llmrelay
        text_delta = lr.TextDelta
        request = lr.ChatRequest(messages=[lr.Message.user("hi")], max_tokens=tokens)
        deltas = 0
        async with self.provider.chat_stream(request) as stream:
            async for event in stream:
                if type(event) is text_delta:
                    deltas += 1
            reply = stream.response()
        if reply.error is not None:
            raise reply.error
        return reply.text, deltas, reply.usage.output_tokens if reply.usage else None

    async def complete(self, tokens: int) -> Result:
        lr = self.llmrelay
        reply = await self.provider.chat(lr.ChatRequest(messages=[lr.Message.user("hi")], max_tokens=tokens))
        return reply.text, 1, reply.usage.output_tokens if reply.usage else None

    async def close(self) -> None:
        await self.provider.aclose()


class LlmRelayPatched(LlmRelay):
    """Experiment: llmrelay with the proposed src/ changes applied at runtime (``bench/patches.py``)."""

    name = "llmrelay-patched"
    patches: tuple[str, ...] = ()

    async def open(self) -> None:
        import patches

        patches.apply(self.patches)
        await super().open()


class TransportOnly(Floor):
    """Experiment: llmrelay's ``AiohttpTransport`` (trust_env=False) with the floor's request/response handling."""

    name = "x-transport"

    async def open(self) -> None:
        from llmrelay._transport import AiohttpTransport, HttpRequest, Timeouts

        self.transport = AiohttpTransport(trust_env=False)
        self.timeouts = Timeouts()
        self.http_request = HttpRequest
        await super().open()

    async def complete(self, tokens: int) -> Result:
        req = self.http_request("POST", self.url, self.h_json, _request_body(tokens, False))
        resp = await self.transport.send(req, self.timeouts)
        try:
            body = await resp.read()
        finally:
            await resp.aclose()
        payload = json.loads(body)
        return payload["choices"][0]["message"]["content"], 1, payload["usage"]["completion_tokens"]

    async def close(self) -> None:
        await self.transport.aclose()
        await super().close()


class CodecOnly(Floor):
    """Experiment: raw aiohttp transport with llmrelay's request building and body decoding."""

    name = "x-codec"

    async def open(self) -> None:
        import llmrelay

        self.llmrelay = llmrelay
        self.provider = llmrelay.OpenAIProvider(MODEL, base_url=self.base, api_key="sk-x")
        await super().open()

    async def complete(self, tokens: int) -> Result:
        lr = self.llmrelay
        http_request, _encoded = self.provider._build(
            lr.ChatRequest(messages=[lr.Message.user("hi")], max_tokens=tokens), stream=False
        )
        async with self.session.post(http_request.url, data=http_request.body, headers=http_request.headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            body = await resp.read()
        reply = self.provider.dialect.decode_body(body)
        return reply.text, 1, reply.usage.output_tokens if reply.usage else None


class OpenAISdk(Client):
    name = "openai"

    async def open(self) -> None:
        import openai

        try:  # openai >= 3 is built on httpx2; older releases on httpx
            import httpx2 as hx
        except ImportError:
            import httpx as hx
        http_client = openai.DefaultAsyncHttpxClient(
            limits=hx.Limits(max_connections=1000, max_keepalive_connections=1000)
        )
        self.client = openai.AsyncOpenAI(
            base_url=self.base,
            api_key="sk-x",
            max_retries=0,
            http_client=http_client,
            # The SDK's default connect timeout (5 s) can expire while its own event loop is busy with 500
            # streams; llmrelay's is 10 s. A generous one keeps the comparison about speed, not flakiness.
            timeout=hx.Timeout(600.0, connect=60.0),
        )

    async def stream(self, tokens: int) -> Result:
        stream = await self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        usage: int | None = None
        async with stream:
            async for chunk in stream:
                if chunk.choices:
                    content = chunk.choices[0].delta.content
                    if content:
                        parts.append(content)
                if chunk.usage:
                    usage = chunk.usage.completion_tokens
        return "".join(parts), len(parts), usage

    async def complete(self, tokens: int) -> Result:
        reply = await self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=tokens
        )
        usage = reply.usage.completion_tokens if reply.usage else None
        return reply.choices[0].message.content or "", 1, usage

    async def close(self) -> None:
        await self.client.close()


CLIENTS: dict[str, type[Client]] = {
    c.name: c for c in (Floor, LlmRelay, OpenAISdk, Httpx, LlmRelayPatched, TransportOnly, CodecOnly)
}


async def drive(op: Callable[[], Awaitable[Result]], count: int, concurrency: int) -> list[Result]:
    """Run ``op`` ``count`` times with ``concurrency`` workers; every loop is bounded by ``count``."""
    results: list[Result] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        for _ in range(count):
            if next_index >= count:
                return
            next_index += 1
            results.append(await op())

    async with asyncio.timeout(RUN_TIMEOUT):
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return results


def _check(results: list[Result], count: int, tokens: int, stream: bool) -> dict[str, Any]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from upstream import expected

    want_len, want_crc = expected(tokens)
    problems: list[str] = []
    if len(results) != count:
        problems.append(f"{len(results)} replies, expected {count}")
    for i, (text, deltas, usage) in enumerate(results):
        crc = zlib.crc32(text.encode("utf-8"))
        if len(text) != want_len or crc != want_crc:
            problems.append(f"reply {i}: text length {len(text)} crc {crc:#x}, expected {want_len} {want_crc:#x}")
        if stream and deltas != tokens:
            problems.append(f"reply {i}: {deltas} text deltas, expected {tokens}")
        if usage != tokens:
            problems.append(f"reply {i}: usage.completion_tokens {usage}, expected {tokens}")
        if len(problems) > 5:
            break
    return {"ok": not problems, "problems": problems[:5], "text_len": want_len, "replies": len(results)}


class GcMeter:
    """Time spent in the cyclic garbage collector (all generations) and the number of collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t0
            self.collections[info["generation"]] += 1

    def reset(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    t_import = time.perf_counter()
    client = CLIENTS[args.client](f"http://127.0.0.1:{args.port}/v1")
    await client.open()
    open_s = time.perf_counter() - t_import
    rss_open = _rss_kb()
    stream = args.kind == "stream"

    def op() -> Awaitable[Result]:
        return client.stream(args.tokens) if stream else client.complete(args.tokens)

    try:
        # Warm-up: fill the pool at the scenario's concurrency with short replies, and run the code paths.
        warm_tokens = min(args.tokens, 16)
        warm_op: Callable[[], Awaitable[Result]] = (
            (lambda: client.stream(warm_tokens)) if stream else (lambda: client.complete(warm_tokens))
        )
        for _ in range(max(0, args.warmup_rounds)):
            await drive(warm_op, max(args.concurrency, 8), args.concurrency)
        if stream and args.tokens > 1000:
            await drive(lambda: client.stream(1000), 1, 1)

        walls: list[float] = []
        cpus: list[float] = []
        gcs: list[float] = []
        gc_counts: list[list[int]] = []
        meter = GcMeter()
        checks: list[dict[str, Any]] = []
        for i in range(max(1, args.repeats, args.max_repeats)):
            if walls and sum(walls) > args.time_budget:
                break  # a slow reference client: fewer samples rather than an unbounded run
            if i >= args.repeats and (sum(walls) >= args.min_time or i >= args.max_repeats):
                break  # enough samples: the requested repeats, and at least min_time seconds of timing
            gc.collect()
            meter.reset()
            c0 = time.process_time()
            t0 = time.perf_counter()
            results = await drive(op, args.count, args.concurrency)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            gcs.append(meter.seconds)
            gc_counts.append(meter.collections)
            checks.append(_check(results, args.count, args.tokens, stream))
            del results
    finally:
        await client.close()
    ok = all(c["ok"] for c in checks)
    return {
        "client": args.client,
        "kind": args.kind,
        "count": args.count,
        "concurrency": args.concurrency,
        "tokens": args.tokens,
        "wall_s": walls,
        "cpu_s": cpus,
        "gc_s": gcs,
        "gc_collections": gc_counts,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_after_open_kb": rss_open,
        "open_s": open_s,
        "ok": ok,
        "problems": [p for c in checks for p in c["problems"]][:5],
    }


async def paired_turns(names: tuple[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Two clients in one process, on one upstream, taking turns: ``args.repeats`` turns each, in the
    order ABBA (so neither always goes first), every reply checked. Measuring both in one process removes
    what differs between two processes (heap layout, hash seed, where the allocator put things), which on
    the reference machine moved one client's medians by 10-30% from process to process; the parent still
    runs several processes (rounds) and reports their spread."""
    base = f"http://127.0.0.1:{args.port}/v1"
    objs = {n: CLIENTS[n](base) for n in names}
    stream = args.kind == "stream"
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    problems: list[str] = []
    for c in objs.values():
        await c.open()
    try:
        for c in objs.values():  # warm-up: fill each pool, run each code path
            warm = (lambda c=c: c.stream(min(args.tokens, 16))) if stream else (lambda c=c: c.complete(16))
            for _ in range(max(0, args.warmup_rounds)):
                await drive(warm, max(args.concurrency, 8), args.concurrency)
        for turn in range(args.repeats):
            for name in names if turn % 2 == 0 else names[::-1]:
                c = objs[name]
                op = (lambda c=c: c.stream(args.tokens)) if stream else (lambda c=c: c.complete(args.tokens))
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                results = await drive(op, args.count, args.concurrency)
                walls[name].append(time.perf_counter() - t0)
                cpus[name].append(time.process_time() - c0)
                check = _check(results, args.count, args.tokens, stream)
                problems += [f"{name}: {p}" for p in check["problems"]]
                del results
    finally:
        for c in objs.values():
            await c.close()
    return {
        "paired": True,
        "wall_s": walls,
        "cpu_s": cpus,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "ok": not problems,
        "problems": problems[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=("stream", "json"), required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-rounds", type=int, default=2)
    parser.add_argument("--time-budget", type=float, default=1e9, help="stop repeating after this many timed seconds")
    parser.add_argument("--patches", default="body,send", help="for llmrelay-patched (bench/patches.py)")
    parser.add_argument(
        "--min-time", type=float, default=0.0, help="keep repeating (up to --max-repeats) until this many timed seconds"
    )
    parser.add_argument("--max-repeats", type=int, default=15)
    parser.add_argument(
        "--paired-with",
        metavar="CLIENT",
        default=None,
        help="run CLIENT in this process too, the two taking --repeats turns each (paired_turns)",
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU (Linux)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the whole run to FILE")
    parser.add_argument("--pyinstrument", metavar="FILE", help="write a pyinstrument text profile to FILE")
    args = parser.parse_args()
    LlmRelayPatched.patches = tuple(p for p in args.patches.split(",") if p)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if args.paired_with is not None:
        if args.paired_with not in CLIENTS:
            parser.error(f"unknown client {args.paired_with!r} for --paired-with")
        out = asyncio.run(paired_turns((args.client, args.paired_with), args))
    elif args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        out = asyncio.run(amain(args))
        profiler.stop()
        with open(args.pyinstrument, "w") as f:
            f.write(profiler.output_text(unicode=False, color=False, show_all=False))
    elif args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        out = asyncio.run(amain(args))
        prof.disable()
        prof.dump_stats(args.profile)
    else:
        out = asyncio.run(amain(args))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
