"""``RateLimited``: requests per minute, tokens per minute and a maximum of calls in flight, per scope.

Before each call it acquires, all or nothing, one unit from the requests bucket, the call's estimated
tokens from the tokens bucket and a slot of the concurrency bucket (see ``llmrelay.limits``). The token
estimate is only an estimate: the request's text (system, messages, tool definitions) in characters / 4,
plus ``max_tokens`` (or ``default_output_tokens`` when the request sets none). When the call ends the
reservation is settled with the real ``Usage.total_tokens`` (an overdraft makes later calls wait; an
unused part is refunded); a call that fails or is cancelled gets its tokens refunded (its request stays
counted: it was sent); the slot is freed either way. A stream settles when it is closed, by the ``Done``
it saw.

The budget is named by ``scope``: by default ``"<provider>/<model>"`` (per model); pass ``scope="openai"``
for one budget per provider, or a name per API key. Every ``RateLimited`` (in any process, with the Redis
backend) that uses the same scope and backend shares the budget.

``on_limit="wait"`` (the default) waits until the budget allows the call, at most ``max_wait`` seconds
in all; ``on_limit="fail"``, or a wait that would end after ``max_wait``, raises ``RateLimitError`` with
``retry_after`` (the seconds until the budget would allow it) and ``code="llmrelay_rate_limit"``; it is
retryable, so ``Retrying(RateLimited(p, on_limit="fail"))`` retries after ``retry_after``.

Refunds and releases are shielded from a second cancellation. A task cancelled while the backend is
granting (a Redis round trip in flight) may lose that grant: its tokens come back as the bucket refills
and its concurrency slot when the lease expires (``lease_ttl``, 600 s by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from .._errors import RateLimitError
from .._events import Done, StreamEvent
from .._provider import Capabilities, ChatStream, ModelInfo, Provider
from .._types import ChatRequest, ChatResponse, Usage
from ..limits import BucketSpec, Grant, LimitBackend, MemoryBackend
from ._attempt import PassThrough

__all__ = ["RateLimited", "estimate_tokens"]

_MAX_SCOPES = 1024
"""The most scopes whose buckets one ``RateLimited`` keeps built (others are built per call)."""


_ONE_REQUEST: Mapping[str, float] = {"requests": 1.0}


_SPECS: dict[tuple[str, float | None, float | None, int | None, float, float], tuple[BucketSpec, ...]] = {}
"""(scope, limits, window, lease) -> its buckets, for every ``RateLimited`` in the process: the same
tuple each time, so the memory backend's plan for it (keyed by the tuple) is found again, also by a
``RateLimited`` built per request (the gateway builds one per request for a key's limits)."""
_MAX_SPECS = 4096


def _buckets(
    scope: str, rpm: float | None, tpm: float | None, conc: int | None, window: float, lease_ttl: float
) -> tuple[BucketSpec, ...]:
    """The buckets of ``scope`` under these limits, built once (see ``_SPECS``)."""
    key = (scope, rpm, tpm, conc, window, lease_ttl)
    specs = _SPECS.get(key)
    if specs is None:
        out: list[BucketSpec] = []
        if rpm is not None:
            out.append(BucketSpec(f"{{{scope}}}:requests", rpm, window, "requests"))
        if tpm is not None:
            out.append(BucketSpec(f"{{{scope}}}:tokens", tpm, window, "tokens", refundable=True))
        if conc is not None:
            out.append(BucketSpec(f"{{{scope}}}:concurrency", conc, lease_ttl, "slots", "concurrency"))
        specs = tuple(out)
        if len(_SPECS) >= _MAX_SPECS:  # bounded: start over rather than grow (a caller naming endless scopes)
            _SPECS.clear()
        _SPECS[key] = specs
    return specs


def estimate_tokens(request: ChatRequest, default_output_tokens: int = 1024) -> int:
    """An estimate (not a count) of the tokens ``request`` will use: characters / 4 of its text, plus
    ``max_tokens`` (or ``default_output_tokens``)."""
    chars = len(request.system or "")
    for message in request.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
        else:
            chars += sum(len(getattr(part, "text", "") or "") for part in message.content)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(str(tool.parameters))
    output = request.max_tokens if request.max_tokens is not None else default_output_tokens
    return chars // 4 + output


_NOTHING_USED: Mapping[str, float] = {}


def _used(usage: Usage | None) -> Mapping[str, float]:
    """What a call used, by resource: the tokens of ``usage`` (nothing known: no correction)."""
    if usage is None:
        return _NOTHING_USED
    total = usage.total_tokens
    if total is None:
        if usage.input_tokens is None and usage.output_tokens is None:
            return _NOTHING_USED
        total = (usage.input_tokens or 0) + (usage.output_tokens or 0)
    return {"tokens": float(total)}


class RateLimited(Provider):
    """``provider`` within a budget (see the module docstring); a ``Provider`` itself, so it composes."""

    def __init__(
        self,
        provider: Provider,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_concurrency: int | None = None,
        backend: LimitBackend | None = None,
        scope: str | None = None,
        on_limit: Literal["wait", "fail"] = "wait",
        max_wait: float = 60.0,
        lease_ttl: float = 600.0,
        default_output_tokens: int = 1024,
        window: float = 60.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_limit not in ("wait", "fail"):
            raise ValueError(f"on_limit must be 'wait' or 'fail', got {on_limit!r}")
        self.inner = provider
        self.name = provider.name
        self.model = provider.model
        self.backend = backend if backend is not None else MemoryBackend(clock=clock)
        self.scope = scope
        self.on_limit = on_limit
        self.max_wait = max_wait
        self.default_output_tokens = default_output_tokens
        self._limits = (requests_per_minute, tokens_per_minute, max_concurrency)
        self._window = window
        self._lease_ttl = lease_ttl
        self._sleep = sleep
        self._clock = clock
        self._by_model: dict[str | None, tuple[BucketSpec, ...]] = {}
        """``request.model`` -> its scope's buckets, so a call does not format its scope name."""

    def __repr__(self) -> str:
        rpm, tpm, conc = self._limits
        return f"RateLimited({self.inner!r}, rpm={rpm}, tpm={tpm}, max_concurrency={conc})"

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    async def list_models(self) -> list[ModelInfo]:
        return await self.inner.list_models()

    def buckets(self, request: ChatRequest) -> list[BucketSpec]:
        """The buckets a call of ``request`` draws on (``requests_per_minute`` etc. are per ``window``
        seconds, 60 by default)."""
        return list(self._buckets_for(request))

    def _buckets_for(self, request: ChatRequest) -> tuple[BucketSpec, ...]:
        specs = self._by_model.get(request.model)
        if specs is not None:
            return specs
        scope = self.scope or f"{self.name}/{request.model or self.model}"
        specs = _buckets(scope, *self._limits, self._window, self._lease_ttl)
        if len(self._by_model) < _MAX_SCOPES:  # bounded: a caller naming a new model per request
            self._by_model[request.model] = specs
        return specs

    def _cost(self, request: ChatRequest) -> Mapping[str, float]:
        if self._limits[1] is None:  # no tokens bucket: the estimate would be thrown away
            return _ONE_REQUEST
        return {"requests": 1.0, "tokens": estimate_tokens(request, self.default_output_tokens)}

    async def acquire(self, request: ChatRequest) -> Grant:
        """Wait (or fail) until the budget allows one call of ``request``; the grant to settle after."""
        buckets = self._buckets_for(request)
        cost = self._cost(request)
        got = self.backend.acquire_nowait(buckets, cost)
        return got if isinstance(got, Grant) else await self._acquire(buckets, cost, got)

    async def _acquire(
        self, buckets: tuple[BucketSpec, ...], cost: Mapping[str, float], got: Grant | float | None
    ) -> Grant:
        """The slow path of ``acquire``: ``got`` (the first answer) was a wait, or ``None`` (ask ``acquire``)."""
        start = self._clock()
        while True:
            if got is None:
                got = await self.backend.acquire(buckets, cost)
            if isinstance(got, Grant):
                return got
            if self.on_limit == "fail" or self._clock() + got - start > self.max_wait:
                raise RateLimitError(
                    f"rate limit of {self.scope or self.name} reached; retry in {got:.3f}s",
                    provider=self.name,
                    code="llmrelay_rate_limit",
                    retry_after=got,
                )
            await self._sleep(got)
            got = self.backend.acquire_nowait(buckets, cost)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        # ``acquire`` inlined: this is every call's path, and a memory backend answers it without an await.
        buckets = self._by_model.get(request.model)
        if buckets is None:
            buckets = self._buckets_for(request)
        cost = (
            _ONE_REQUEST
            if self._limits[1] is None
            else {"requests": 1.0, "tokens": estimate_tokens(request, self.default_output_tokens)}
        )
        backend = self.backend
        grant = backend.acquire_nowait(buckets, cost)
        if not isinstance(grant, Grant):  # a backend's grant may be a subclass
            grant = await self._acquire(buckets, cost, grant)
        try:
            response = await self.inner.chat(request)
        except BaseException:
            if not backend.settle_nowait(grant, None):
                await asyncio.shield(backend.release(grant))  # runs to the end even if cancelled again
            raise
        usage = response.usage
        total = None if usage is None else usage.total_tokens
        used = _used(usage) if total is None else {"tokens": total}  # no total: the slow path
        if not backend.settle_nowait(grant, used):
            await backend.settle(grant, used)
        return response

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def opener() -> _Settling:
            grant = await self.acquire(request)
            inner = self.inner.chat_stream(request)
            try:
                await inner.__aenter__()
            except BaseException:
                await inner.aclose()
                if not self.backend.settle_nowait(grant, None):
                    await asyncio.shield(self.backend.release(grant))
                raise
            outer.warnings.extend(inner.warnings)
            return _Settling(inner, self.backend, grant)

        outer = ChatStream(opener, provider=self.name, model=request.model or self.model)
        return outer

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Settling(PassThrough):
    """The ``EventSource`` of a rate-limited stream: the inner stream passed through; on close, the grant
    is settled with the ``Done``'s usage, or released when the stream ended in an error or early."""

    __slots__ = ("_backend", "_done", "_grant")

    def __init__(self, inner: ChatStream, backend: LimitBackend, grant: Grant) -> None:
        super().__init__(inner)
        self._backend = backend
        self._grant: Grant | None = grant
        self._done: Done | None = None

    async def read(self) -> Sequence[StreamEvent]:
        batch = await self._inner.read()
        if batch and type(batch[-1]) is Done:
            self._done = batch[-1]
        return batch

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            grant, self._grant = self._grant, None
            if grant is not None:
                done = self._done
                used = None if done is None or done.error is not None else _used(done.usage)
                if self._backend.settle_nowait(grant, used):
                    pass
                elif used is None:
                    await asyncio.shield(self._backend.release(grant))
                else:
                    await asyncio.shield(self._backend.settle(grant, used))
