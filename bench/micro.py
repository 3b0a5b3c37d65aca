"""Where llmrelay's per-request and per-chunk time goes: in-process micro-benchmarks of its pieces, each next
to what the raw-aiohttp floor does instead.

    .venv/bin/python bench/micro.py

No network (the trust_env lookups aiohttp makes per request are timed directly). The measurements run in
interleaved rounds (so a burst of load from elsewhere hits all of them alike) and the best round is reported:
microseconds per call, or milliseconds per stream for the streaming part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstream

ROUNDS = 7


def _each(fn: Callable[[Any], Any], items: list[Any]) -> None:
    for item in items:
        fn(item)


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


def stream_pieces(n: int = 20_000, read_size: int = 65_536) -> list[bytes]:
    """The SSE body of an n-chunk answer, cut into reads of ``read_size`` bytes."""
    raw = b"".join(upstream.render_stream(n))
    body = _dechunk(raw.split(b"\r\n\r\n", 1)[1])
    return [body[i : i + read_size] for i in range(0, len(body), read_size)]


class Bench:
    def __init__(self) -> None:
        self.items: list[tuple[str, Callable[[], Any], int, str, bool]] = []

    def add(self, name: str, fn: Callable[[], Any], n: int, unit: str = "us", is_async: bool = False) -> None:
        self.items.append((name, fn, n, unit, is_async))

    async def run(self) -> None:
        best: dict[str, float] = {}
        for _ in range(ROUNDS):
            for name, fn, n, _unit, is_async in self.items:
                t0 = time.perf_counter()
                for _ in range(n):
                    if is_async:
                        await fn()
                    else:
                        fn()
                per = (time.perf_counter() - t0) / n
                best[name] = min(best.get(name, per), per)
        for name, _fn, _n, unit, _a in self.items:
            if name.startswith("#"):
                print(name[1:])
                continue
            value = best[name] * (1e6 if unit == "us" else 1e3)
            print(f"  {name:74s} {value:9.1f} {unit}")


async def main() -> None:
    import aiohttp
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    import llmrelay
    from clients import _request_body, _SseLines
    from llmrelay import ChatRequest, Message
    from llmrelay._accumulate import fold
    from llmrelay._events import TextDelta
    from llmrelay._transport import MockResponse, MockTransport
    from llmrelay.wire.openai_chat.decode import OpenAIChatStreamDecoder, events_from_body
    from llmrelay.wire.sse import SseDecoder

    provider = llmrelay.OpenAIProvider("gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    json_body = upstream.render_json(50)[0].split(b"\r\n\r\n", 1)[1]
    req = ChatRequest(messages=[Message.user("hi")], max_tokens=50)
    loop = asyncio.get_running_loop()
    session = aiohttp.ClientSession(trust_env=True)
    url = URL("http://127.0.0.1:9/v1/chat/completions")

    async def with_timeout() -> None:
        async with asyncio.timeout(300.0):  # noqa: ASYNC100 - the cost of entering and leaving is the point
            pass

    async def watchdog_timer() -> None:
        loop.call_at(loop.time() + 120.0, lambda: None).cancel()

    async def env_hops() -> None:
        await loop.run_in_executor(None, session._get_netrc_auth, url.host)
        with contextlib.suppress(LookupError):
            await asyncio.to_thread(get_env_proxy_for_url, url)

    b = Bench()
    b.add("#Non-streaming request, per call (us):", lambda: None, 1)
    b.add("floor: json.dumps(request dict).encode()", lambda: _request_body(50, False), 5000)
    b.add("llmrelay: ChatRequest(...) + Message.user()", lambda: ChatRequest(messages=[Message.user("hi")]), 5000)
    b.add(
        "llmrelay: provider._build(request)  (encode + headers + json.dumps)",
        lambda: provider._build(req, stream=False),
        5000,
    )
    b.add("floor: json.loads(body)", lambda: json.loads(json_body), 5000)
    b.add("llmrelay: events_from_body(body)", lambda: events_from_body(json_body), 5000)
    b.add("llmrelay: dialect.decode_body(body)  (events + fold)", lambda: provider.dialect.decode_body(json_body), 5000)
    b.add(
        "llmrelay: fold(events_from_body(body), provider=, ...)  (what chat() does)",
        lambda: fold(events_from_body(json_body), provider="openai", request_id="x", warnings=()),
        5000,
    )
    import patches

    b.add(
        "llmrelay: patches._plain_reply(body, ...)  (proposed text-only fast path)",
        lambda: patches._plain_reply(json_body, "openai", "x", ()),
        5000,
    )
    enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    body_dict = provider.dialect.encode(req, model="gpt-4o-mini", stream=False).body
    b.add(
        "json.dumps(body, ensure_ascii=False, separators=...)  (per _build)",
        lambda: json.dumps(body_dict, ensure_ascii=False, separators=(",", ":")),
        5000,
    )
    b.add("a module-level JSONEncoder(...).encode(body) instead (proposed)", lambda: enc(body_dict), 5000)
    b.add(
        "aiohttp.ClientTimeout(total=None, sock_connect=10)  (per send)",
        lambda: aiohttp.ClientTimeout(sock_connect=10.0),
        5000,
    )
    b.add("async with asyncio.timeout(300): pass  (per send)", with_timeout, 5000, is_async=True)
    b.add("loop.call_at(...).cancel()  (the idle watchdog, per response)", watchdog_timer, 5000, is_async=True)
    b.add("aiohttp trust_env=True: netrc executor hop + proxy to_thread hop", env_hops, 300, is_async=True)

    pieces = stream_pieces()
    datas = [e.data for p in [pieces] for e in _sse_all(SseDecoder(), p) if e.data != "[DONE]"]
    texts = [upstream.token(i) for i in range(20000)]
    scan = json.JSONDecoder().scan_once

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
        d = SseDecoder()
        for p in pieces:
            d.feed(p)

    async def lr_stream_inmemory() -> None:
        transport = MockTransport(lambda r: MockResponse(200, {"content-type": "text/event-stream"}, list(pieces)))
        p = llmrelay.OpenAIProvider("m", base_url="http://127.0.0.1:9/v1", api_key="sk-x", transport=transport)
        async with p.chat_stream(ChatRequest(messages=[Message.user("hi")], max_tokens=20000)) as s:
            async for _ in s:
                pass
            s.response()

    b.add("#\nOne 20,000-chunk stream fed in 64 KiB reads, CPU only (ms per stream):", lambda: None, 1)
    b.add("floor: split lines + json.loads + pick content/usage", floor_parse, 1, "ms")
    b.add("llmrelay: SseDecoder.feed only", sse_only, 1, "ms")
    b.add("llmrelay: OpenAIChatStreamDecoder.feed (SSE + JSON + events)", lr_decode, 1, "ms")
    b.add("llmrelay: chat_stream over MockTransport (+ ChatStream, Accumulator)", lr_stream_inmemory, 1, "ms", True)

    class PatchedDecoder(OpenAIChatStreamDecoder):
        __slots__ = ()

    patches._patch_json(PatchedDecoder)

    def lr_decode_patched() -> None:
        d = PatchedDecoder()
        for p in pieces:
            d.feed(p)
        d.close()

    b.add("llmrelay: OpenAIChatStreamDecoder.feed with bench/patches.py 'json'", lr_decode_patched, 1, "ms")
    b.add("  json.loads(data) of the 20,002 payloads", lambda: _each(json.loads, datas), 1, "ms")
    b.add("  JSONDecoder().scan_once(data, 0) instead (proposed)", lambda: _each(lambda x: scan(x, 0), datas), 1, "ms")
    b.add("  TextDelta(text) x 20,000 (frozen dataclass)", lambda: _each(TextDelta, texts), 1, "ms")
    await b.run()
    await session.close()


def _sse_all(d: Any, pieces: list[bytes]) -> list[Any]:
    out = []
    for p in pieces:
        out += d.feed(p)
    return out


if __name__ == "__main__":
    asyncio.run(main())
