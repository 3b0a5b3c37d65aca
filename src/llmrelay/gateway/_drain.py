"""The gateway's graceful drain: stop accepting, let every connection already accepted reach its handler,
then aiohttp's own shutdown (close idle connections, wait for the requests in flight, ``on_cleanup``).

Why not ``runner.cleanup()`` alone: it closes the listening socket and, one loop turn later, marks every
connection it knows of as closing. Two races sit in that turn (both reproduced in
``tests/test_gateway_drain.py``; the second failed ``tests/test_gateway_replicas.py``'s SIGTERM test in
3 of 15 runs on a 2-core machine):

- CPython 3.11: a connection ``accept()``-ed just before the listening socket closes gets its transport a
  turn later, ``Server._attach`` asserts the server is still open, the error is swallowed and the socket is
  left open, unanswered, until the garbage collector finds it. The client waits for its timeout.
- aiohttp 3.14 on CPython 3.11: a connection made but whose handler task has not run yet is marked closing
  with nothing to wake; its request bytes are then dropped (``data_received`` ignores a closing
  connection) and the drain waits the whole ``drain_timeout`` for a request that will never come
  (the same family as aio-libs/aiohttp#2298).

So the drain first only stops reading the listening sockets (``loop.remove_reader``: nothing new is
accepted, nothing is closed), gives the loop ``ACCEPT_TURNS`` turns, enough for every accepted connection
to get its transport, its handler and the request bytes already sent, and only then runs aiohttp's
shutdown. A connection still in the kernel's accept queue is reset when the socket closes (the client
sees a refused connection, never a hang); every accepted request is answered.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

__all__ = ["ACCEPT_TURNS", "drain"]

ACCEPT_TURNS = 16
"""Loop turns between no longer accepting and closing the idle connections. From ``accept()`` to a request
being handled takes about six (transport, ``connection_made``, handler task, reader, parse, request task);
the count does not depend on load, as each turn runs every callback that is ready."""


async def drain(runner: web.BaseRunner) -> None:
    """Drain ``runner``'s sites (see the module docstring); returns when aiohttp's cleanup has."""
    loop = asyncio.get_running_loop()
    for site in runner.sites:
        server = getattr(site, "_server", None)  # the asyncio Server of a TCPSite / UnixSite
        for sock in getattr(server, "sockets", None) or ():
            with contextlib.suppress(NotImplementedError, ValueError, OSError):
                loop.remove_reader(sock.fileno())
    for _ in range(ACCEPT_TURNS):
        await asyncio.sleep(0)
    await runner.cleanup()
