"""Wrapper stacks from configuration: what ``ProviderRegistry.provider`` returns for a model string.

A single model is its bare provider (``ProviderRegistry.get``) under ``Retrying`` with the ``[retry]``
policy (by default three attempts: two retries of retryable errors; ``max_attempts = 1`` leaves the bare
provider). A ``[fallbacks]`` name is a ``Fallback`` over its members, in order, each member its own stack
(so each is retried by its own policy before the next is tried) bound to its own model: vendor A's model
name never reaches vendor B. A member may be an alias or another fallback name; the configuration rejects
cycles (``config._schema``). A member naming an unknown provider is a ``ConfigError`` with the member's key
path (``fallbacks.main[1]``); a member whose key is missing is not an error while the chain is built:
its attempts fail with ``MissingApiKey`` (which fails over), so ``["openai/gpt-4o-mini", "local/smollm2"]``
answers locally on a machine without ``OPENAI_API_KEY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import MissingApiKey
from .._provider import ChatStream, Provider
from .._types import ChatRequest
from ..config import ConfigError, RetryConfig
from ..wrappers.fallback import Fallback
from ..wrappers.retry import Retrying
from ._resolve import ModelRef

if TYPE_CHECKING:
    from ._registry import ProviderRegistry

__all__ = ["build_stack", "with_retry"]


def with_retry(provider: Provider, policy: RetryConfig) -> Provider:
    """``provider`` under ``Retrying`` with ``policy``; the provider itself when ``max_attempts`` is 1."""
    if policy.max_attempts <= 1:
        return provider
    return Retrying(
        provider,
        max_attempts=policy.max_attempts,
        base_delay=policy.base_delay,
        max_delay=policy.max_delay,
        deadline=policy.deadline,
    )


def build_stack(registry: ProviderRegistry, ref: ModelRef) -> Provider:
    """The configured wrapper stack for a resolved model string (see the module docstring)."""
    config = registry.config
    if not ref.chain:
        return with_retry(registry.get(ref.provider, ref.model), config.retry)
    members: list[tuple[Provider, str | None]] = []
    for i, member in enumerate(ref.chain):
        try:
            member_ref = registry.resolve(member)
        except ConfigError as exc:
            if exc.key is not None:
                raise
            raise ConfigError(exc.message, file=config.path, key=f"fallbacks.{ref.provider}[{i}]") from None
        try:
            stack = build_stack(registry, member_ref)
        except MissingApiKey as exc:
            stack = _Unavailable(member_ref, exc)
        members.append((stack, member_ref.model))
    return Fallback(members, name=ref.provider)


class _Unavailable(Provider):
    """A fallback member that cannot be built (its key is missing): every attempt fails with that error."""

    def __init__(self, ref: ModelRef, error: MissingApiKey) -> None:
        self.name = ref.provider
        self.model = ref.model
        self._error = error

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def fail() -> ChatStream:
            raise self._error

        return ChatStream(fail, provider=self.name, model=request.model or self.model)
