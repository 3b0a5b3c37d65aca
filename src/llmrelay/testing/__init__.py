"""Test helpers shipped with llmrelay, for its own tests and for users' tests.

- ``FakeUpstream`` / ``Reply``: a real HTTP server on 127.0.0.1 that replays scripted or recorded
  responses in any provider's wire format, with faults (status, cut after N bytes, stall, slow headers).
- ``ScriptedProvider`` / ``FunctionProvider``: providers with no network for testing code that uses one.
- ``<dialect>_kit`` modules: byte-exact replies per dialect for the scenario matrix (``kit.DialectKit``).
- ``faults``: every way an upstream fails, scripted for any dialect kit, each with the typed error it
  should give (``faults.CATALOGUE``), plus ``ClosedPort`` (connection refused) and ``SilentServer``
  (accepts, never answers); ``held_connections`` tells whether a provider still holds a connection.
"""

from __future__ import annotations

from . import faults
from .doubles import FunctionProvider, ScriptedProvider, ScriptItem, events_for
from .faults import ClosedPort, Fault, SilentServer
from .leaks import held_connections
from .upstream import FakeUpstream, Reply, SeenRequest

__all__ = [
    "ClosedPort",
    "FakeUpstream",
    "Fault",
    "FunctionProvider",
    "Reply",
    "ScriptItem",
    "ScriptedProvider",
    "SeenRequest",
    "SilentServer",
    "events_for",
    "faults",
    "held_connections",
]
