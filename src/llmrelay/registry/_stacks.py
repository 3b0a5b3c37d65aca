"""Wrapper stacks from configuration: what ``ProviderRegistry.provider`` returns for a model string.

A single model ``P/M`` is, from the inside out::

    bare provider (ProviderRegistry.get)
      -> RateLimited per matching [rate_limits] table: "P/M" innermost, then "P"   (each attempt is a request)
      -> Retrying with the [retry] policy (three attempts by default; max_attempts = 1: none)
      -> Metered when there is a [budgets] table (one ledger row per call, its budgets checked before it),
         unless the registry was built with metered=False (the gateway meters each request itself)

A ``[fallbacks]`` name is a ``Fallback`` over its members, in order, each member its own stack (so each is
retried by its own policy and checked against its own budgets before the next is tried) bound to its own
model: vendor A's model name never reaches vendor B. The table form's ``first_event_timeout`` abandons a
member that has not produced its first event in time; ``hedge_after`` makes it ``Hedged`` instead. A member
may be an alias, a router or another fallback name; the configuration rejects cycles (``config._schema``).

A ``[routers]`` name is a ``Router`` over its deployments (each ``Metered(RateLimited(bare))``: no
``Retrying`` inside, the router moves to the next healthy deployment itself), with the router's strategy
and breaker settings, under ``Retrying``; its breakers keep their state in ``resources.breaker_store()``
(Redis when the ``[rate_limits] backend`` is, so replicas share them).

A member naming an unknown provider is a ``ConfigError`` with the member's key path
(``fallbacks.main[1]``); a member whose key is missing is not an error while the chain is built: its
attempts fail with ``MissingApiKey`` (which fails over), so ``["openai/gpt-4o-mini", "local/smollm2"]``
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
    from ._resources import StackResources

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


def build_stack(registry: ProviderRegistry, ref: ModelRef, resources: StackResources) -> Provider:
    """The configured wrapper stack for a resolved model string (see the module docstring)."""
    config = registry.config
    if ref.group == "router":
        return with_retry(_router(registry, ref, resources), config.retry)
    if ref.group == "fallback":
        return _fallback(registry, ref, resources)
    bare = registry.get(ref.provider, ref.model)
    stack = with_retry(_limited(bare, ref, resources), config.retry)
    return _metered(stack, resources) if registry.metered else stack


def _limited(bare: Provider, ref: ModelRef, resources: StackResources) -> Provider:
    limits = resources.config.rate_limits.limits
    if not limits:
        return bare
    from ..wrappers.ratelimit import RateLimited

    model = ref.model or bare.model
    stack = bare
    for scope in (f"{ref.provider}/{model}", ref.provider):
        limit = limits.get(scope)
        if limit is None:
            continue
        stack = RateLimited(
            stack,
            requests_per_minute=limit.requests_per_minute,
            tokens_per_minute=limit.tokens_per_minute,
            max_concurrency=limit.max_concurrency,
            on_limit=limit.on_limit,
            max_wait=limit.max_wait,
            backend=resources.limit_backend(),
            scope=scope,
        )
    return stack


def _metered(stack: Provider, resources: StackResources) -> Provider:
    if resources.config.budgets is None:
        return stack
    from ..metering import Metered

    return Metered(stack, ledger=resources.ledger(), budgets=resources.budgets(), overrides=resources.prices())


def _members(registry: ProviderRegistry, ref: ModelRef, section: str) -> list[ModelRef]:
    out: list[ModelRef] = []
    for i, member in enumerate(ref.chain):
        try:
            out.append(registry.resolve(member))
        except ConfigError as exc:
            if exc.key is not None:
                raise
            raise ConfigError(exc.message, file=registry.config.path, key=f"{section}.{ref.provider}[{i}]") from None
    return out


def _fallback(registry: ProviderRegistry, ref: ModelRef, resources: StackResources) -> Provider:
    members: list[tuple[Provider, str | None]] = []
    for member_ref in _members(registry, ref, "fallbacks"):
        try:
            stack = registry.provider(member_ref)
        except MissingApiKey as exc:
            stack = _Unavailable(member_ref, exc)
        members.append((stack, member_ref.model))
    options = registry.config.fallback_options.get(ref.provider)
    if options is not None and options.hedge_after is not None:
        from ..wrappers.hedge import Hedged

        return Hedged(members, threshold=options.hedge_after, name=ref.provider)
    timeout = options.first_event_timeout if options is not None else None
    return Fallback(members, name=ref.provider, first_event_timeout=timeout)


def _router(registry: ProviderRegistry, ref: ModelRef, resources: StackResources) -> Provider:
    from ..wrappers.router import Deployment, Router

    router = registry.config.routers[ref.provider]
    deployments: list[Deployment] = []
    for member_ref, spec in zip(_members(registry, ref, "routers"), router.deployments, strict=True):
        try:
            bare = registry.get(member_ref.provider, member_ref.model)
            stack = _limited(bare, member_ref, resources)
            stack = _metered(stack, resources) if registry.metered else stack
        except MissingApiKey as exc:
            stack = _Unavailable(member_ref, exc)
        deployments.append(
            Deployment(stack, member_ref.model, weight=spec.weight, name=str(member_ref) if member_ref.model else "")
        )
    b = router.breaker
    return Router(
        deployments,
        strategy=router.strategy,
        name=ref.provider,
        error_ratio=b.error_ratio,
        min_requests=b.min_requests,
        window=b.window,
        cooldown=b.cooldown,
        breaker_store=resources.breaker_store(),
    )


class _Unavailable(Provider):
    """A member that cannot be built (its key is missing): every attempt fails with that error."""

    def __init__(self, ref: ModelRef, error: MissingApiKey) -> None:
        self.name = ref.provider
        self.model = ref.model
        self._error = error

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def fail() -> ChatStream:
            raise self._error

        return ChatStream(fail, provider=self.name, model=request.model or self.model)
