"""The gateway's drain (``gateway._drain.drain``) against the two races of a plain ``runner.cleanup()``:
a connection accepted in the last loop turns before the drain is answered, never left hanging.

The client is a raw socket that connects and sends its request before the drain starts; the test then
lets the server's loop run ``turns`` turns (0 to 13), which lands the drain at each step between
``accept()`` and the request being handled. With ``runner.cleanup()`` alone, turns 1 and 2 leave the
client waiting (CPython's transport after a closed server; aiohttp's closing connection dropping the
request bytes) and the drain itself waits the whole shutdown timeout.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from llmrelay.gateway._drain import drain

SHUTDOWN_TIMEOUT = 5.0


async def ok(request: web.Request) -> web.Response:
    await asyncio.sleep(0.01)  # in flight while the drain runs
    return web.Response(text="ok")


async def one_connection_then_drain(turns: int) -> tuple[bytes, float]:
    """What a client that sent a request ``turns`` loop turns before the drain receives, and how long the
    drain took."""
    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    client = socket.create_connection(("127.0.0.1", port))  # in the kernel's accept queue at once
    client.setblocking(False)
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(turns):
            await asyncio.sleep(0)
        started = loop.time()
        drained = asyncio.create_task(drain(runner))
        try:
            received = await asyncio.wait_for(loop.sock_recv(client, 4096), SHUTDOWN_TIMEOUT - 1)
        except ConnectionResetError:
            received = b"<reset>"
        except TimeoutError:
            received = b"<no answer>"
        await drained
        return received, loop.time() - started
    finally:
        client.close()


@pytest.mark.parametrize("turns", range(14))
async def test_a_connection_accepted_before_the_drain_is_answered(turns: int) -> None:
    received, took = await one_connection_then_drain(turns)
    assert received != b"<no answer>", f"the client hung {turns} turns in"
    if turns == 0:  # not accepted yet: the closing socket resets it, the client is told at once
        assert received in (b"<reset>", b"") or received.startswith(b"HTTP/1.1 200"), received
    else:  # accepted: answered in full
        assert received.startswith(b"HTTP/1.1 200 OK") and received.endswith(b"ok"), received
    assert took < 1.0, took  # the drain waited for the one request in flight, not for its timeout
