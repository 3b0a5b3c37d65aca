"""``Router``: one logical model served by several deployments, each behind its own ``CircuitBreaker``.

Each request ranks the deployments by the ``strategy`` and tries them in that order, skipping those whose
breaker refuses (``open``, or ``half_open`` with its probe already out):

- ``priority``: the order given; the first is the primary, and traffic returns to it once its breaker
  closes again;
- ``round_robin``: each request starts one deployment further along;
- ``weighted``: smooth weighted round robin (deterministic: with weights 3 and 1, three of every four
  requests start at the first), the others after it by weight;
- ``least_in_flight``: the fewest requests in progress first (a stream is in progress until it ends or
  is closed);
- ``latency``: the lowest EWMA of time to first event first (``chat``: time to the whole reply);
  a deployment not yet measured goes first, so each is measured.

When a deployment fails before its first event reached the caller, the error is counted by its breaker and,
when ``llmrelay._policy.should_fail_over`` allows, the next healthy deployment is tried, as in ``Fallback``
(after the first event, a failure is the stream's error). Errors that say nothing about the deployment
(``should_fail_over`` false: a 400, a content filter) don't count against it. When every deployment is open
or failed: ``AllAttemptsFailed`` with the attempts made (a single attempt's error that does not fail over is
raised unchanged). One attempt loop (``_run``) serves ``chat`` and ``chat_stream``.

``health()`` reports each deployment: name, breaker state, error ratio in the window, latency EWMA and
requests in flight.

With a ``breaker_store`` (``llmrelay.wrappers.breaker_store``; ``RedisBreakerStore`` between processes), each
deployment's breaker keeps its state there under the name ``ROUTER:DEPLOYMENT`` (``#INDEX`` added to a name
that repeats), so replicas of one configuration share their breakers: a deployment opened by one is skipped
by all. Everything else (strategy cursors, in-flight counts, latency EWMAs) stays per process.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

from .._errors import AllAttemptsFailed, Attempt, LlmError
from .._events import Done, StreamEvent
from .._policy import should_fail_over
from .._provider import Capabilities, ChatStream, ModelInfo, Provider
from .._types import ChatRequest, ChatResponse
from ..profiles import ModelProfile
from ._attempt import (
    Call,
    PassThrough,
    call_chat,
    close_each,
    failure,
    open_stream,
    record,
    response_with,
    stream_of,
)
from .breaker import BreakerState, CircuitBreaker
from .breaker_store import BreakerStore

__all__ = ["Deployment", "DeploymentHealth", "Router", "Strategy"]

T = TypeVar("T")
Strategy = Literal["priority", "round_robin", "weighted", "least_in_flight", "latency"]
_STRATEGIES: tuple[str, ...] = ("priority", "round_robin", "weighted", "least_in_flight", "latency")


@dataclass(eq=False)
class Deployment:
    """One deployment of the router's model: a provider, the model to ask it for, and a weight."""

    provider: Provider
    model: str | None = None
    """The model name at this deployment (``None``: the provider's default)."""
    weight: float = 1.0
    """Share of requests under the ``weighted`` strategy."""
    name: str = ""
    """The name in ``health()`` and attempts (default ``provider:model``)."""
    breaker: CircuitBreaker | None = None
    """Its circuit breaker (default: one with the router's settings)."""
    in_flight: int = field(default=0, init=False)
    latency_ewma: float | None = field(default=None, init=False)
    _current: float = field(default=0.0, init=False, repr=False)


class DeploymentHealth(NamedTuple):
    """One row of ``Router.health()``."""

    name: str
    state: BreakerState
    error_ratio: float
    latency_ewma: float | None
    in_flight: int


class Router(Provider):
    """Route each request to a healthy deployment (see the module docstring); a ``Provider``, so it composes."""

    def __init__(
        self,
        deployments: Sequence[Deployment | Provider | tuple[Provider, str | None]],
        *,
        strategy: Strategy = "priority",
        name: str = "router",
        error_ratio: float = 0.5,
        min_requests: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
        latency_alpha: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        breaker_store: BreakerStore | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(_STRATEGIES)}")
        items = [
            d if isinstance(d, Deployment) else Deployment(*d) if isinstance(d, tuple) else Deployment(d)
            for d in deployments
        ]
        if not items:
            raise ValueError("a Router needs at least one deployment")
        shared: set[str] = set()
        for i, d in enumerate(items):
            d.model = d.model or d.provider.model
            d.name = d.name or f"{d.provider.name}:{d.model}"
            key = f"{name}:{d.name}" if f"{name}:{d.name}" not in shared else f"{name}:{d.name}#{i}"
            shared.add(key)
            if d.weight <= 0:
                raise ValueError(f"deployment {d.name}: weight must be positive, got {d.weight}")
            if d.breaker is None:
                d.breaker = CircuitBreaker(
                    error_ratio=error_ratio,
                    min_requests=min_requests,
                    window=window,
                    cooldown=cooldown,
                    clock=clock,
                    name=key,
                    store=breaker_store,
                )
        self.deployments: tuple[Deployment, ...] = tuple(items)
        self.strategy = strategy
        self.name = name
        self.model = items[0].model
        self.latency_alpha = latency_alpha
        self._clock = clock
        self._cursor = 0

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.deployments)
        return f"Router([{names}], strategy={self.strategy!r}, name={self.name!r})"

    def capabilities(self) -> Capabilities:
        return self.deployments[0].provider.capabilities()

    def profile(self) -> ModelProfile:
        return self.deployments[0].provider.profile()

    async def list_models(self) -> list[ModelInfo]:
        return await self.deployments[0].provider.list_models()

    def health(self) -> list[DeploymentHealth]:
        """Each deployment's name, breaker state, error ratio in the window, latency EWMA, requests in flight."""
        return [
            DeploymentHealth(d.name, _breaker(d).state, _breaker(d).observed_error_ratio, d.latency_ewma, d.in_flight)
            for d in self.deployments
        ]

    def _ranked(self) -> list[Deployment]:
        deployments = list(self.deployments)
        if self.strategy == "round_robin":
            start = self._cursor % len(deployments)
            self._cursor += 1
            return deployments[start:] + deployments[:start]
        if self.strategy == "weighted":  # smooth weighted round robin (as nginx)
            total = sum(d.weight for d in deployments)
            for d in deployments:
                d._current += d.weight
            first = max(deployments, key=lambda d: d._current)
            first._current -= total
            return [first, *sorted((d for d in deployments if d is not first), key=lambda d: -d.weight)]
        if self.strategy == "least_in_flight":
            return sorted(deployments, key=lambda d: d.in_flight)
        if self.strategy == "latency":
            return sorted(deployments, key=lambda d: -1.0 if d.latency_ewma is None else d.latency_ewma)
        return deployments

    def _observe(self, d: Deployment, seconds: float) -> None:
        a = self.latency_alpha
        d.latency_ewma = seconds if d.latency_ewma is None else a * seconds + (1 - a) * d.latency_ewma

    async def _run(self, request: ChatRequest, call: Call[T]) -> tuple[T, list[Attempt], Deployment]:
        attempts: list[Attempt] = []
        tries = skipped = 0
        last: LlmError | None = None
        for d in self._ranked():
            breaker = _breaker(d)
            if not await breaker.aacquire():
                skipped += 1
                continue
            tries += 1
            d.in_flight += 1
            began = self._clock()
            try:
                result = await call(d.provider, dataclasses.replace(request, model=d.model))
            except LlmError as error:
                d.in_flight -= 1
                elapsed = self._clock() - began
                record(attempts, d.provider, d.model, error, elapsed)
                last = error
                if not should_fail_over(error):
                    await breaker.arelease()
                    break
                await breaker.afailure(error)
                continue
            except BaseException:
                d.in_flight -= 1
                breaker.release()
                raise
            self._observe(d, self._clock() - began)
            await breaker.asuccess()
            return result, attempts, d  # ``d.in_flight`` is released by the caller
        if last is None:
            raise AllAttemptsFailed(
                [],
                f"all {len(self.deployments)} deployments of {self.name} are open (circuit breakers)",
                provider=self.name,
            )
        if skipped and should_fail_over(last):
            raise AllAttemptsFailed(attempts, provider=self.name)
        raise failure(attempts, last, tries=tries, provider=self.name)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response, attempts, d = await self._run(request, call_chat)
        d.in_flight -= 1
        return response_with(response, attempts)

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def run() -> tuple[ChatStream, list[Attempt]]:
            inner, attempts, d = await self._run(request, open_stream)
            return await _held(inner, d), attempts

        return stream_of(run, provider=self.name, model=self.model)

    async def aclose(self) -> None:
        await close_each([d.provider for d in self.deployments])


def _breaker(d: Deployment) -> CircuitBreaker:
    assert d.breaker is not None  # set by Router.__init__
    return d.breaker


class _InFlight(PassThrough):
    """An entered stream passed through unchanged, counted in its deployment's ``in_flight`` until it ends
    or is closed. A stream that fails after its first event (a ``Done`` with an error the deployment is to
    blame for) also counts a failure on its breaker: the commit point counted a success, so a deployment
    that always breaks mid-stream reaches the error ratio and opens instead of staying healthy forever."""

    __slots__ = ("_deployment",)

    def __init__(self, inner: ChatStream, deployment: Deployment) -> None:
        super().__init__(inner)
        self._deployment: Deployment | None = deployment

    def _release(self) -> None:
        if self._deployment is not None:
            self._deployment.in_flight -= 1
            self._deployment = None

    async def read(self) -> Sequence[StreamEvent]:
        batch = await self._inner.read()
        if not batch:
            self._release()
        elif type(batch[-1]) is Done and self._deployment is not None:
            error = batch[-1].error
            if error is not None and should_fail_over(error):
                await _breaker(self._deployment).afailure(error)
        return batch

    async def aclose(self) -> None:
        self._release()
        await self._inner.aclose()


async def _held(inner: ChatStream, deployment: Deployment) -> ChatStream:
    """``inner`` as an entered stream that keeps ``deployment``'s in-flight count until it ends."""
    source = _InFlight(inner, deployment)

    async def opener() -> _InFlight:
        return source

    held = ChatStream(opener, warnings=inner.warnings)
    try:
        await held.__aenter__()
    except BaseException:
        await source.aclose()
        raise
    return held
