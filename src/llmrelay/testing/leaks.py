"""Leak checks for tests: whether a provider still holds a connection after a call.

A stream that was left, cancelled or failed must give its connection back at once (``ChatStream``'s
contract); ``held_connections`` counts the connections an HTTP provider's pool has handed out and not
had back, in the running event loop, so a test can assert it is 0 after each call.
"""

from __future__ import annotations

import asyncio

from .._provider import Provider

__all__ = ["held_connections"]


def held_connections(provider: Provider) -> int:
    """How many connections ``provider``'s connection pool (in the running loop) has lent out and not had
    back: 0 once every call and stream is over. A provider that never sent anything in this loop holds
    none. Only for HTTP providers on the default aiohttp transport (``TypeError`` otherwise)."""
    from .._http_provider import HttpProvider
    from .._transport import AiohttpTransport

    if not isinstance(provider, HttpProvider) or not isinstance(provider._transport, AiohttpTransport):
        raise TypeError(f"held_connections needs an HTTP provider on the aiohttp transport, got {provider!r}")
    entry = provider._transport._sessions.get(asyncio.get_running_loop())
    if entry is None or entry.session.closed:
        return 0
    connector = entry.session.connector
    acquired = getattr(connector, "_acquired", None)  # aiohttp keeps no public count of lent connections
    if acquired is None:
        raise TypeError("this aiohttp version's connector does not expose its lent connections")
    return len(acquired)
