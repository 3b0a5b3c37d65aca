"""Wrappers: providers around providers (``Retrying``, ``Fallback``, ...); each is a ``Provider``, so they compose.

The failover contract: before the first event reached the caller, a wrapper may abandon an attempt
(closing its connection) and try again or move on; after it, a failure is the stream's typed error: no
silent switch, no mixed text. ``chat()`` delivers nothing before the end, so a reply that breaks inside
``chat()`` may be retried. Every failed attempt is recorded (``stream.attempts``, ``ChatResponse.attempts``,
``AllAttemptsFailed.attempts``).
"""

from __future__ import annotations

from .breaker import CircuitBreaker
from .fallback import Fallback
from .hedge import Hedged
from .ratelimit import RateLimited
from .retry import Retrying
from .router import Deployment, Router

__all__ = ["CircuitBreaker", "Deployment", "Fallback", "Hedged", "RateLimited", "Retrying", "Router"]
