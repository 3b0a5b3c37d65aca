"""Where llmrelay's per-request and per-chunk time goes: in-process micro-benchmarks of its pieces, each next
to what the raw-aiohttp floor does instead.

    .venv/bin/python bench/micro.py

No network (the trust_env lookups aiohttp does per request are timed directly). Each figure is the median
of 5 batches, in microseconds per call. Use it with ``bench/run.py --experiments`` to attribute a gap.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstream  # noqa: E402

BATCHES = 5


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


async def per_call_us_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    samples = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def row(name: str, us: float, note: str = "") -> None:
    print(f"  {name:62s} {us:9.1f} us  {note}")


def main() -> None:
    import llmrelay
    from llmrelay import ChatRequest, Message
    from llmrelay._http_provider import _replace
    from llmrelay._transport import MockResponse, MockTransport
    from llmrelay.wire.openai_chat.decode import OpenAIChatStreamDecoder, events_from_body

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from clients import _request_body, _SseLines

    provider = llmrelay.OpenAIProvider("gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    json_body = upstream.render_json(50)[0].split(b"\r\n\r\n", 1)[1]

    print("Non-streaming request, per call:")
    row("floor: json.dumps(request dict).encode()", per_call_us(lambda: _request_body(50, False), 20000))
    row(
        "llmrelay: ChatRequest(...) + Message.user()",
        per_call_us(lambda: ChatRequest(messages=[Message.user("hi")], max_tokens=50), 20000),
    )
    req = ChatRequest(messages=[Message.user("hi")], max_tokens=50)
    row("llmrelay: provider._build(request)  (encode + json.dumps)", per_call_us(lambda: provider._build(req, stream=False), 20000))
    row("floor: json.loads(body) + pick content/usage", per_call_us(lambda: json.loads(json_body)["choices"][0], 20000))
    row("llmrelay: events_from_body(body)", per_call_us(lambda: events_from_body(json_body), 20000))
    row("llmrelay: dialect.decode_body(body)  (events + fold)", per_call_us(lambda: provider.dialect.decode_body(json_body), 20000))
    decoded = provider.dialect.decode_body(json_body)
    row(
        "llmrelay: _replace(response, provider=, request_id=, warnings=)",
        per_call_us(lambda: _replace(decoded, provider="openai", request_id="x", warnings=()), 20000),
    )

    async def transport_bits() -> None:
        import aiohttp
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        row("aiohttp.ClientTimeout(total=None, sock_connect=10)", per_call_us(lambda: aiohttp.ClientTimeout(total=None, sock_connect=10.0), 20000))

        async def with_timeout() -> None:
            async with asyncio.timeout(300.0):
                pass

        row("async with asyncio.timeout(300): pass", await per_call_us_async(with_timeout, 20000))
        loop = asyncio.get_running_loop()

        async def watchdog_timer() -> None:
            loop.call_at(loop.time() + 120.0, lambda: None).cancel()

        row("loop.call_at(...).cancel()  (the idle watchdog's timer)", await per_call_us_async(watchdog_timer, 20000))
        session = aiohttp.ClientSession(trust_env=True)
        url = URL("http://127.0.0.1:9/v1/chat/completions")

        async def hops() -> None:
            await loop.run_in_executor(None, session._get_netrc_auth, url.host)
            try:
                await asyncio.to_thread(get_env_proxy_for_url, url)
            except LookupError:
                pass

        row(
            "trust_env=True: netrc executor hop + proxy to_thread hop",
            await per_call_us_async(hops, 2000),
            "(aiohttp ClientSession._request, per request)",
        )
        await session.close()

    asyncio.run(transport_bits())

    print("\nStreaming, 20,000-chunk body fed in 64 KiB reads (CPU only, no I/O), per stream:")
    writes = upstream.render_stream(20000)
    raw = b"".join(writes)
    body = _dechunk(raw.split(b"\r\n\r\n", 1)[1])
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    def floor_parse() -> None:
        sse = _SseLines()
        for p in pieces:
            sse.feed(p)
        sse.result()

    def lr_decode() -> None:
        d = OpenAIChatStreamDecoder()
        for p in pieces:
            d.feed(p)
        d.close()

    def sse_only() -> None:
        from llmrelay.wire.sse import SseDecoder

        d = SseDecoder()
        for p in pieces:
            d.feed(p)

    row("floor: split lines + json.loads + pick content", per_call_us(floor_parse, 5) / 1000, "ms")
    row("llmrelay: SseDecoder.feed only", per_call_us(sse_only, 5) / 1000, "ms")
    row("llmrelay: OpenAIChatStreamDecoder.feed (SSE + JSON + events)", per_call_us(lr_decode, 5) / 1000, "ms")

    async def lr_stream_inmemory() -> None:
        transport = MockTransport(lambda r: MockResponse(200, {"content-type": "text/event-stream"}, list(pieces)))
        p = llmrelay.OpenAIProvider("m", base_url="http://127.0.0.1:9/v1", api_key="sk-x", transport=transport)
        async with p.chat_stream(ChatRequest(messages=[Message.user("hi")], max_tokens=20000)) as s:
            async for _ in s:
                pass
            s.response()

    async def stream_bits() -> None:
        us = await per_call_us_async(lr_stream_inmemory, 5)
        row("llmrelay: chat_stream over MockTransport (decode + ChatStream + fold)", us / 1000, "ms")

    asyncio.run(stream_bits())


def _dechunk(data: bytes) -> bytes:
    out = []
    pos = 0
    for _ in range(10_000_000):
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            break
        out.append(data[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2
    return b"".join(out)


if __name__ == "__main__":
    main()
