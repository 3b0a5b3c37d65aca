"""``Metered``: a provider whose every call is written to a usage ledger and checked against budgets.

Before a call, each budget that applies to the provider's name, the model asked for and the meter's
``key`` is asked to hold the call's estimate, all at once (``UsageLedger.reserve``): the tokens of
``estimate_tokens`` (the request's characters / 4 plus ``max_tokens``, or ``default_output_tokens``) and
their price (``cost_of`` on that estimate, split into input and output). If one budget would be exceeded
the call is not sent: ``BudgetExceeded``, which is not retried and makes a ``Fallback`` move on.

After it, one ledger row is written and the hold dropped, in one step (``UsageLedger.settle``), whatever
the outcome: ``ok`` with the real usage and its cost (from the reply, or the stream's ``Done``), priced
for the provider and model that answered; ``error`` (the last one tried, its error's kind, the failed
attempts before it, and the usage of a stream that broke after its ``Done`` reported some); or
``cancelled`` (the task was cancelled, or a stream was closed before its ``Done``). The write is shielded
from cancellation: every call that was accepted leaves exactly one row. ``chat`` and ``chat_stream``
share that path (``_Call``); a stream is settled when it is closed.

A cost budget does not stop a call that cannot be priced (a self-hosted model, a model with no price and no
``PriceOverride``): its cost is unknown, not zero, so it holds its tokens only, and its row (``cost`` is
``None``, ``cost_unknown`` says why) is counted in ``Totals.unpriced``. Add a ``max_tokens`` budget, or a
``PriceOverride``, to cap such calls.

For the gateway, ``Metered(..., route="/v1/chat/completions", status_of=...)`` also fills the row's
``route``, ``status`` and ``ttft_ms``: ``ttft_ms`` is the time from the call's start to the first batch of
events a stream delivered; ``status`` is 200 for a call that ended ``ok`` and for a stream that failed or
was closed after delivering events (the client had its 200 by then), ``status_of(error)`` for a call that
failed before that, and ``None`` for a call cancelled before it delivered anything (the client went away:
no status was sent). Without ``status_of`` the status stays ``None``. ``on_row(row)``, when given, is
called with each row as it is written (the gateway takes the row's cost for its metrics from it, rather
than pricing the call a second time).

A server that must not hold its answer for the ledger's commit (the gateway) passes ``writes=RowWrites()``:
a call then ends without waiting for its row, which is handed to the ledger before the call returns (the
stores of this package queue it at once, with no task per row: nothing can cancel it) and written in the
background, exactly once; the owner of the ``RowWrites`` waits for them all with ``flush()`` before it
closes the ledger (the gateway does on shutdown; closing a store also writes what it has queued), and a
write that fails is logged and counted.

Put the meter on each candidate (``Fallback([Metered(a, ...), Metered(b, ...)])``): a budget on ``a`` is
checked before ``a`` is asked, and when it is spent the fallback sends the call to ``b``. A meter around a
``Fallback`` checks budgets against the fallback's own name (its rows still name who answered).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .._errors import AllAttemptsFailed, LlmError
from .._events import Done, StreamEvent
from .._provider import Capabilities, ChatStream, ModelInfo, Provider
from .._types import ChatRequest, ChatResponse, Usage
from ..cost import PriceOverride, cost_of
from ..profiles import ModelProfile
from ..wrappers._attempt import PassThrough
from ..wrappers.ratelimit import estimate_tokens
from ._ledger import UsageLedger
from ._model import Budget, Hold, LedgerRow, Outcome

__all__ = ["Metered", "RowWrites"]

log = logging.getLogger("llmrelay.metering")


def _now() -> datetime:
    return datetime.now(UTC)


class RowWrites:
    """The ledger writes meters did not wait for (``Metered(..., writes=RowWrites())``), kept until they
    end; ``flush`` waits for them. A write that fails is logged and counted in ``failed``.

    ``settle`` hands a row to a ledger that takes rows without waiting (``NowaitLedger``: the stores of
    this package) with no task per row: the row is queued (or written) before it returns, and the future
    the store gives back is kept until it ends. Any other ledger's ``settle`` runs in a task, as before."""

    __slots__ = ("_writes", "failed")

    def __init__(self) -> None:
        self._writes: set[asyncio.Future[Any]] = set()
        self.failed = 0

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, write: asyncio.Future[Any]) -> None:
        self._writes.add(write)
        write.add_done_callback(self._ended)

    def settle(self, ledger: UsageLedger, hold: Hold | None, row: LedgerRow) -> None:
        """``ledger.settle(hold, row)``, not waited for (see the class docstring)."""
        nowait: Callable[[Hold | None, LedgerRow], asyncio.Future[None] | None] | None
        nowait = getattr(ledger, "settle_nowait", None)
        if nowait is None:
            self.add(asyncio.ensure_future(ledger.settle(hold, row)))
            return
        try:
            write = nowait(hold, row)
        except Exception as exc:  # not taken (a closed ledger): the row is lost, and said so
            self._failed(exc)
            return
        if write is not None:
            self.add(write)

    def _ended(self, write: asyncio.Future[Any]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and (error := write.exception()) is not None:
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        self.failed += 1
        log.error("a ledger row could not be written", exc_info=error)

    async def flush(self) -> None:
        """Wait until every write added so far (and any added meanwhile) has ended."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


class Metered(Provider):
    """``provider`` with a usage ledger and budgets (see the module docstring); a ``Provider`` itself."""

    def __init__(
        self,
        provider: Provider,
        *,
        ledger: UsageLedger,
        budgets: Sequence[Budget] = (),
        overrides: Mapping[str, PriceOverride] | None = None,
        key: str | None = None,
        clock: Callable[[], datetime] = _now,
        default_output_tokens: int = 1024,
        route: str | None = None,
        status_of: Callable[[BaseException], int | None] | None = None,
        on_row: Callable[[LedgerRow], None] | None = None,
        writes: RowWrites | None = None,
    ) -> None:
        self.inner = provider
        self.name = provider.name
        self.model = provider.model
        self.ledger = ledger
        self.budgets = tuple(budgets)
        self.overrides = dict(overrides or {})
        self.key = key
        self.default_output_tokens = default_output_tokens
        self.route = route
        self.status_of = status_of
        self.on_row = on_row
        self.writes = writes
        """Where a call leaves its row's write instead of waiting for it (``None``: it waits)."""
        self._clock = clock
        self._pending: set[asyncio.Future[Any]] = set()
        """Writes (and late reservations) in flight, kept alive until they end."""

    def __repr__(self) -> str:
        return f"Metered({self.inner!r}, ledger={self.ledger!r}, budgets={len(self.budgets)})"

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def profile(self) -> ModelProfile:
        return self.inner.profile()

    async def list_models(self) -> list[ModelInfo]:
        return await self.inner.list_models()

    def estimate(self, request: ChatRequest, at: datetime | None = None) -> tuple[int, Decimal | None, str]:
        """What a call of ``request`` holds against budgets: ``(tokens, cost or None, currency)``."""
        output = request.max_tokens if request.max_tokens is not None else self.default_output_tokens
        prompt = estimate_tokens(request, 0) - (request.max_tokens or 0)
        model = request.model or self.model
        price = cost_of(Usage(prompt, output), self.name, model, when=at, overrides=self.overrides)
        return prompt + output, price.total, price.currency

    async def _begin(self, request: ChatRequest) -> _Call:
        at = self._clock()
        model = request.model or self.model
        call = _Call(self, at, model)
        budgets = [b for b in self.budgets if b.applies(self.name, model, self.key)]
        if not budgets:
            return call
        tokens, cost, currency = self.estimate(request, at)
        ledger = self.ledger
        reserving = asyncio.ensure_future(
            ledger.reserve(
                budgets,
                at=at,
                provider=self.name,
                model=model,
                key=self.key,
                tokens=tokens,
                cost=cost,
                currency=currency,
            )
        )
        try:
            call.hold = await asyncio.shield(reserving)
        except asyncio.CancelledError:
            # Cancelled while the store decided: once it has, an accepted call still gets its row.
            task = asyncio.ensure_future(self._cancelled_while_reserving(reserving, call))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            raise
        call.started = time.perf_counter()
        return call

    async def _cancelled_while_reserving(self, reserving: asyncio.Future[Hold], call: _Call) -> None:
        try:
            call.hold = await reserving
        except Exception:  # refused or failed: nothing was accepted, nothing to record
            return
        await call.end("cancelled")

    async def chat(self, request: ChatRequest) -> ChatResponse:
        call = await self._begin(request)
        try:
            response = await self.inner.chat(request)
        except BaseException as exc:
            await call.failed(exc)
            raise
        await call.end(
            "ok",
            usage=response.usage,
            provider=response.provider,
            model=response.model,
            attempts=len(response.attempts),
        )
        return response

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        async def opener() -> _Recording:
            call = await self._begin(request)
            inner = self.inner.chat_stream(request)
            try:
                await inner.__aenter__()
            except BaseException as exc:
                try:
                    await inner.aclose()
                finally:
                    await call.failed(exc)
                raise
            outer.warnings.extend(inner.warnings)
            return _Recording(inner, call)

        outer = ChatStream(opener, provider=self.name, model=request.model or self.model)
        return outer

    async def aclose(self) -> None:
        """Wait for the rows still being written, then close the inner provider (not the ledger, which
        may be shared: close it yourself)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.inner.aclose()


class _Call:
    """One metered call: its start, its hold, and the one row it ends with."""

    __slots__ = ("at", "ended", "first_event_ms", "hold", "meter", "model", "started")

    def __init__(self, meter: Metered, at: datetime, model: str | None) -> None:
        self.meter = meter
        self.at = at
        self.model = model
        self.hold: Hold | None = None
        self.started = time.perf_counter()
        self.ended = False
        self.first_event_ms: int | None = None
        """When a stream delivered its first events (ms after ``started``); ``None`` until then."""

    def mark_first_event(self) -> None:
        if self.first_event_ms is None:
            self.first_event_ms = max(0, round((time.perf_counter() - self.started) * 1000))

    async def failed(self, exc: BaseException) -> None:
        """End with the row of ``exc``: an ``LlmError`` is an error of the last provider tried, anything
        that is not an ``Exception`` (cancellation, ``KeyboardInterrupt``) is ``cancelled``."""
        if not isinstance(exc, Exception):
            await self.end("cancelled")
            return
        status_of = self.meter.status_of
        status = None if status_of is None or self.first_event_ms is not None else status_of(exc)
        provider, model, kind, attempts = None, None, type(exc).__name__, 0
        if isinstance(exc, AllAttemptsFailed) and exc.attempts:
            last = exc.attempts[-1]
            provider, model, kind, attempts = last.provider, last.model, last.error.kind, len(exc.attempts) - 1
        elif isinstance(exc, LlmError):
            kind = exc.kind
        await self.end("error", provider=provider, model=model, error_kind=kind, attempts=attempts, status=status)

    async def end(
        self,
        outcome: Outcome,
        *,
        usage: Usage | None = None,
        provider: str | None = None,
        model: str | None = None,
        error_kind: str | None = None,
        attempts: int = 0,
        status: int | None = None,
    ) -> None:
        """Write this call's row and drop its hold (once; shielded from cancellation). ``status`` is the
        one an error maps to (``failed``); 200 is implied for ``ok`` and after a stream's first events."""
        if self.ended:
            return
        self.ended = True
        meter = self.meter
        provider = provider or meter.name
        model = model or self.model
        cost = cost_of(usage, provider, model, when=self.at, overrides=meter.overrides, requested=self.model)
        if meter.status_of is not None and (outcome == "ok" or self.first_event_ms is not None):
            status = 200
        u = usage or Usage()
        row = LedgerRow(
            id=None,
            at=self.at,
            provider=provider,
            model=model,
            key=meter.key,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cost=cost.total,
            currency=cost.currency,
            cost_source=cost.source,
            cost_unknown=cost.unknown,
            outcome=outcome,
            error_kind=error_kind,
            elapsed_ms=max(0, round((time.perf_counter() - self.started) * 1000)),
            attempts=attempts,
            requested_model=self.model,
            route=meter.route,
            status=status,
            ttft_ms=self.first_event_ms,
        )
        if meter.on_row is not None:
            meter.on_row(row)
        if meter.writes is not None:
            meter.writes.settle(meter.ledger, self.hold, row)
            return
        writing = asyncio.ensure_future(meter.ledger.settle(self.hold, row))
        meter._pending.add(writing)
        writing.add_done_callback(meter._pending.discard)
        await asyncio.shield(writing)


class _Recording(PassThrough):
    """The ``EventSource`` of a metered stream: the inner stream passed through; on close, the call's
    row is written from the ``Done`` it saw (none: ``cancelled``)."""

    __slots__ = ("_call", "_done", "_error")

    def __init__(self, inner: ChatStream, call: _Call) -> None:
        super().__init__(inner)
        self._call = call
        self._done: Done | None = None
        self._error: BaseException | None = None

    async def read(self) -> Sequence[StreamEvent]:
        try:
            batch = await self._inner.read()
        except Exception as exc:
            self._error = exc
            raise
        if batch:
            self._call.mark_first_event()
        if batch and type(batch[-1]) is Done:
            self._done = batch[-1]
        return batch

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            inner, done, call = self._inner, self._done, self._call
            provider, model, attempts = inner.provider, inner.model, len(inner.attempts)
            if done is not None:
                outcome: Outcome = "ok" if done.error is None else "error"
                kind = None if done.error is None else done.error.kind
                await call.end(
                    outcome, usage=done.usage, provider=provider, model=model, error_kind=kind, attempts=attempts
                )
            elif self._error is not None:
                await call.failed(self._error)
            else:
                await call.end("cancelled", provider=provider, model=model, attempts=attempts)
