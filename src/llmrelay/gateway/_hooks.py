"""The seams of the gateway: who is calling (``Authenticator`` -> ``Caller``), what each request did
(``RequestRecord``), and where that goes (``MetricsSink``). The HTTP app (``gateway.app``) depends only on
these protocols; the key store (``gateway.keys``) and the Prometheus metrics (``gateway.metrics``) implement
them, and tests can pass their own.

One request's life, as the app sees it::

    caller = await auth.authenticate(secret)        # None -> 401 in the caller's dialect
    metrics.request_started(route)                  # the in-flight gauge
    ... decode, resolve the model (caller.allows), limits and budgets, call, encode ...
    metrics.request_finished(record)                # counters and histograms from the record

The usage ledger row of the request is written by ``Metered`` (one outer meter per request, with
``key=caller.name``, ``route=...``), not by these hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from .._types import Usage

__all__ = ["Authenticator", "Caller", "Fault", "MetricsSink", "RequestRecord", "model_allowed"]

Fault = Literal["caller", "policy", "provider", "gateway"]
"""Who a failed request is on: the caller (bad input, unknown model, bad key), the gateway's policy (a
limit, a budget, a model the key may not use), the provider (its errors and timeouts), or the gateway
itself (a bug: a 500)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: a gateway key, or the anonymous caller of a loopback gateway without keys."""

    key_id: str | None = None
    """The key's id (``None``: anonymous)."""
    name: str | None = None
    """The key's name, as in ledger rows and ``key:NAME`` budgets."""
    allowed_models: tuple[str, ...] | None = None
    """Model strings, aliases, fallback or router names (or ``PROVIDER/*``) this key may use; ``None``: any."""
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_cost: Decimal | None = None
    """The key's budget, with ``budget_period``; ``None``: no cost cap."""
    max_tokens: int | None = None
    budget_period: Literal["day", "month", "total"] = "total"

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    def allows(self, model: str) -> bool:
        """Whether this caller may use the model string ``model`` (as the client sent it)."""
        return model_allowed(model, self.allowed_models)


def model_allowed(model: str, allowed: Sequence[str] | None) -> bool:
    """``model`` is in ``allowed`` (``None``: everything), or ``allowed`` has ``PROVIDER/*`` for its provider."""
    if allowed is None:
        return True
    if model in allowed:
        return True
    provider = model.partition("/")[0]
    return f"{provider}/*" in allowed or "*" in allowed


class Authenticator(Protocol):
    """Turns the secret a client presented (``Authorization: Bearer``, ``x-api-key``) into a ``Caller``."""

    @property
    def open(self) -> bool:
        """True when no keys exist: every request is the anonymous caller (allowed on loopback only)."""
        ...

    async def authenticate(self, secret: str | None) -> Caller | None:
        """The caller for ``secret``, or ``None`` (missing, unknown or revoked: the app answers 401)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What one gateway request did, for metrics (and logs: it holds no secret)."""

    route: str
    """``/v1/chat/completions``, ``/v1/messages``, ``/api/chat``, ..."""
    dialect: str
    """``openai``, ``anthropic`` or ``native``."""
    status: int
    """The HTTP status sent (a stream that failed after its first byte: 200, with ``error_kind`` set)."""
    started: datetime
    latency_s: float
    stream: bool = False
    key_name: str | None = None
    requested_model: str | None = None
    provider: str | None = None
    """Who answered (the last one tried when it failed); ``None`` when no provider was reached."""
    model: str | None = None
    attempts: int = 0
    usage: Usage | None = None
    cost: Decimal | None = None
    currency: str = "USD"
    ttft_s: float | None = None
    """Time to the first chunk sent to the client (streams)."""
    error_kind: str | None = None
    fault: Fault | None = None
    warnings: tuple[str, ...] = field(default=())


class MetricsSink(Protocol):
    """Where request records go: counters, histograms and the in-flight gauge."""

    def request_started(self, route: str) -> None: ...

    def request_finished(self, record: RequestRecord) -> None: ...

    def render(self) -> tuple[str, bytes]:
        """``(content_type, body)`` for ``GET /metrics``."""
        ...
