"""Test helpers shipped with llmrelay, for its own tests and for users' tests.

- ``FakeUpstream`` / ``Reply``: a real HTTP server on 127.0.0.1 that replays scripted or recorded
  responses in any provider's wire format, with faults (status, cut after N bytes, stall, slow headers).
"""

from __future__ import annotations

from .upstream import FakeUpstream, Reply, SeenRequest

__all__ = ["FakeUpstream", "Reply", "SeenRequest"]
