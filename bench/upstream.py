"""A fast fake OpenAI-compatible upstream for the benchmarks, run as its own process.

    python bench/upstream.py [--port 0] [--max-seconds 1800]

It prints ``READY <port>`` on stdout once listening on 127.0.0.1 and serves until it is terminated, its
parent process goes away, or ``--max-seconds`` pass (so a crashed benchmark never leaves it running).

The server is a raw ``asyncio.Protocol`` HTTP/1.1 server with pre-rendered responses, so it costs as little
CPU as possible and the client under test is what gets measured:

- ``POST /v1/chat/completions`` with ``"stream": true`` answers a ``text/event-stream`` body sent with
  chunked transfer encoding: one HTTP chunk per event, shaped like OpenAI's (``chat.completion.chunk``
  objects: a first chunk with the role, N content chunks, a finish chunk, a usage chunk with
  ``choices: []``, then ``data: [DONE]``). N is the request's ``max_tokens`` (or
  ``max_completion_tokens``), else the ``x-bench-chunks`` header, else 16.
- without ``"stream": true`` it answers a ``chat.completion`` JSON body whose content has N tokens.
- keep-alive is the default; ``connection: close`` is honoured.

The N tokens are ``token(0) .. token(N-1)`` (deterministic, some non-ASCII), so a client's output can be
checked with ``expected(n)``.

Events are written as separate HTTP chunks but coalesced into writes of up to ``WRITE_BYTES`` bytes: the
client's HTTP parser and SSE decoder see one frame per event (as with a real server), while the server
makes few syscalls. When the client reads slower than this server writes (always, here), the client would
see the same coalesced reads from a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import zlib

__all__ = ["expected", "token"]

WRITE_BYTES = 64 * 1024
MAX_CHUNKS = 1_000_000
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024

_WORDS = (
    " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", " It", "'s",
    " a", " caf\u00e9", " in", " \u6771\u4eac", ",", " with", " \u00fcber", " fast", " tokens", " \U0001f642",
    " and", " \"quoted\"", " text", "\n", " 42", " streams",
)  # fmt: skip

MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1763780000
COMPLETION_ID = "chatcmpl-BENCH8CjcvOU2jLn4n570S5qMJKcT"
FINGERPRINT = "fp_0ba0d124f1"
PROMPT_TOKENS = 9


def token(i: int) -> str:
    return _WORDS[i % len(_WORDS)]


def expected(n: int) -> tuple[int, int]:
    """``(len(text), crc32(text as UTF-8))`` of the content of an N-token answer."""
    text = "".join(token(i) for i in range(n))
    return len(text), zlib.crc32(text.encode("utf-8"))


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _chunk_json(delta: dict[str, object], finish: str | None) -> str:
    return _dumps(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None,
        }
    )


def _usage(n: int) -> dict[str, object]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": n,
        "total_tokens": PROMPT_TOKENS + n,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _head(status: str, content_type: str, extra: str) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\n"
        f"content-type: {content_type}\r\n"
        "x-request-id: req_bench0123456789\r\n"
        "openai-processing-ms: 1\r\n"
        f"{extra}"
        "\r\n"
    ).encode("ascii")


def render_stream(n: int) -> list[bytes]:
    """The whole streamed response (head + chunked body) as a list of writes of up to WRITE_BYTES."""
    events = [_chunk_json({"role": "assistant", "content": "", "refusal": None}, None)]
    events.extend(_chunk_json({"content": token(i)}, None) for i in range(n))
    events.append(_chunk_json({}, "stop"))
    usage_chunk = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": [],
        "usage": _usage(n),
    }
    events.append(_dumps(usage_chunk))
    events.append("[DONE]")
    frames = [_frame(f"data: {e}\n\n".encode()) for e in events]
    frames.append(b"0\r\n\r\n")
    writes: list[bytes] = []
    buf: list[bytes] = [
        _head("200 OK", "text/event-stream; charset=utf-8", "transfer-encoding: chunked\r\ncache-control: no-cache\r\n")
    ]
    size = len(buf[0])
    for frame in frames:
        if size + len(frame) > WRITE_BYTES and buf:
            writes.append(b"".join(buf))
            buf, size = [], 0
        buf.append(frame)
        size += len(frame)
    if buf:
        writes.append(b"".join(buf))
    return writes


def render_json(n: int) -> list[bytes]:
    content = "".join(token(i) for i in range(n))
    body = _dumps(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(n),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    ).encode()
    head = _head("200 OK", "application/json", f"content-length: {len(body)}\r\n")
    return [head + body]


def _error(status: str, message: str) -> list[bytes]:
    body = _dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}}).encode()
    return [_head(status, "application/json", f"content-length: {len(body)}\r\n") + body]


_MAX_TOKENS = re.compile(rb'"max_(?:completion_)?tokens"\s*:\s*(\d+)')
_STREAM = re.compile(rb'"stream"\s*:\s*true')

_cache: dict[tuple[bool, int], list[bytes]] = {}


def response_for(path: bytes, headers: dict[bytes, bytes], body: bytes) -> list[bytes]:
    if path.split(b"?", 1)[0].rstrip(b"/") != b"/v1/chat/completions":
        return _error("404 Not Found", f"no route for {path.decode('latin-1')}")
    match = _MAX_TOKENS.search(body)
    n = int(match.group(1)) if match else int(headers.get(b"x-bench-chunks", b"16") or b"16")
    n = max(0, min(n, MAX_CHUNKS))
    stream = _STREAM.search(body) is not None
    key = (stream, n)
    cached = _cache.get(key)
    if cached is None:
        cached = render_stream(n) if stream else render_json(n)
        if len(_cache) < 64:
            _cache[key] = cached
    return cached


class _HttpProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 server: Content-Length request bodies, pipelining, keep-alive."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        for _ in range(1024):  # bounded: at most this many pipelined requests per read
            transport = self._transport
            if transport is None:
                return
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    transport.close()
                return
            head = bytes(buf[:end]).split(b"\r\n")
            try:
                _method, path, _version = head[0].split(b" ", 2)
            except ValueError:
                transport.close()
                return
            headers: dict[bytes, bytes] = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"transfer-encoding" in headers:
                transport.writelines(_error("411 Length Required", "send Content-Length"))
                transport.close()
                return
            length = int(headers.get(b"content-length", b"0") or b"0")
            if length > MAX_BODY_BYTES:
                transport.close()
                return
            total = end + 4 + length
            if len(buf) < total:
                return
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            transport.writelines(response_for(path, headers, body))
            if headers.get(b"connection", b"").lower() == b"close":
                transport.close()
                return


async def _serve(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HttpProtocol, "127.0.0.1", port, backlog=4096, reuse_address=True)
    sock = server.sockets[0]
    print(f"READY {sock.getsockname()[1]}", flush=True)
    parent = os.getppid()
    deadline = loop.time() + max_seconds
    async with server:
        while loop.time() < deadline:
            await asyncio.sleep(0.5)
            if os.getppid() != parent:
                break


def _raise_fd_limit() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    args = parser.parse_args()
    _raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.max_seconds))
    sys.exit(0)


if __name__ == "__main__":
    main()
