"""Test helpers shipped with llmrelay, for its own tests and for users' tests.

- ``FakeUpstream`` / ``Reply``: a real HTTP server on 127.0.0.1 that replays scripted or recorded
  responses in any provider's wire format, with faults (status, cut after N bytes, stall, slow headers).
- ``ScriptedProvider`` / ``FunctionProvider``: providers with no network for testing code that uses one.
- ``<dialect>_kit`` modules: byte-exact replies per dialect for the scenario matrix (``kit.DialectKit``).
"""

from __future__ import annotations

from .doubles import FunctionProvider, ScriptedProvider, ScriptItem, events_for
from .upstream import FakeUpstream, Reply, SeenRequest

__all__ = [
    "FakeUpstream",
    "FunctionProvider",
    "Reply",
    "ScriptItem",
    "ScriptedProvider",
    "SeenRequest",
    "events_for",
]
