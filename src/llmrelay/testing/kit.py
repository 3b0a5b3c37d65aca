"""The per-dialect scenario kit: how the cross-dialect test matrix (``tests/test_matrix.py``) builds a
provider for a fake upstream, scripts replies in that dialect's exact wire format, and checks what the
provider sent. Each dialect ships one module ``llmrelay/testing/<dialect>_kit.py`` exposing ``KIT``;
the matrix discovers them all, so adding a dialect adds a column without editing the matrix.

Kits are also useful in users' own tests: they produce byte-exact provider responses without a network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .._provider import Provider
from .upstream import Reply, SeenRequest

__all__ = ["DialectKit", "ToolCallSpec"]

ToolCallSpec = tuple[str | None, str, Mapping[str, Any]]
"""(id, name, arguments) of a scripted tool call; dialects without call ids ignore the id."""


class DialectKit(Protocol):
    name: str
    """The dialect's name (the matrix column)."""
    quota_status: int
    """The HTTP status the provider uses for an exhausted quota or billing (OpenAI 429, others 402/403)."""

    def provider(self, base_url: str, model: str = "test-model") -> Provider:
        """A provider pointed at the fake upstream's ``base_url`` (with a dummy key where one is needed)."""
        ...

    def text(self, text: str, *, stream: bool, usage: tuple[int, int] = (10, 5)) -> Reply:
        """A plain text reply that stops naturally, reporting ``usage`` as (input, output) tokens."""
        ...

    def tool_calls(self, calls: Sequence[ToolCallSpec], *, stream: bool) -> Reply:
        """A reply that calls the given tools (in order), split into fragments when streaming."""
        ...

    def reasoning(self, reasoning: str, text: str, *, stream: bool) -> Reply:
        """A reply with reasoning ("thinking") text and then visible text."""
        ...

    def length(self, text: str, *, stream: bool) -> Reply:
        """A reply cut by ``max_tokens`` after ``text``."""
        ...

    def error(self, status: int, *, retry_after: float | None = None) -> Reply:
        """The provider's error body for ``status`` (with a ``Retry-After`` header when given)."""
        ...

    def quota(self) -> Reply:
        """The provider's quota-exhausted / billing error response."""
        ...

    def stream_error(self, *, after_text: str | None = None) -> Reply:
        """A 200 stream carrying the dialect's in-stream error event (the provider failed mid-generation),
        as its first event or after the text ``after_text`` (see ``llmrelay.testing.faults``)."""
        ...

    def sent_messages(self, request: SeenRequest) -> list[Mapping[str, Any]]:
        """The conversation turns in a request the provider sent, in the dialect's own shape."""
        ...

    def sent_image(self, request: SeenRequest) -> bool:
        """Whether the request carries an image part."""
        ...

    def sent_tool_result(self, request: SeenRequest, call_id: str | None, content: str) -> bool:
        """Whether the request carries a tool result with this content (answering ``call_id``)."""
        ...
