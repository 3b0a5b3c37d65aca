"""The runner: drives a strategy's steps against real providers, as one async stream of events.

::

    async with deliberate(spec, registry=registry) as run:    # models resolved here: bad input raises
        async for event in run:                               # before any model is called
            ...
    run.transcript.to_markdown()

The strategy (a generator, see ``_steps``) runs in the consumer's own task; the turns of each ``Ask``
run as asyncio tasks, all at once, and put their events into one bounded queue the consumer reads, so
in parallel mode the participants' deltas interleave as they arrive. A slow consumer is backpressure,
never loss: when the queue is full the turns wait (and so do their streams), and every event is
delivered. Leaving the ``async with`` early, breaking out of the loop and closing it, or cancelling the
consuming task cancels every turn in flight, which closes their streams and connections; no task is
left behind.

Limits are checked before each step: the deadline, the calls the step would make (``max_calls``
counts turns), the tokens and the priced cost spent so far. A step is started only with room in all
of them, and each turn's output cap is clipped to the tokens left, split among the step's turns. When
the deadline passes during a step, its turns are cancelled and recorded (``PARTIAL`` with their text
so far, or ``FAILED``, with a ``TotalTimeout``). A deliberation cut short by a limit (or by a failed
turn under ``stop_on_failure``) ends with the majority vote over the answers so far
(``Aggregate.complete`` false) and ``DeliberationDone.stop`` saying which limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Self

from .._errors import TotalTimeout
from .._provider import Provider
from .._types import ChatRequest
from ..registry import ProviderRegistry
from ._answers import vote
from ._council import council
from ._debate import debate
from ._events import (
    Aggregate,
    DeliberationDone,
    DeliberationEvent,
    RoundFinished,
    RoundStarted,
    Turn,
    TurnFinished,
    TurnStatus,
)
from ._model import Deliberation, ModelSpec, Participant, StopReason
from ._rounds import rounds
from ._steps import Ask, Report, RoundBegin, RoundEnd, Strategy, TurnRequest
from ._tally import tally
from ._transcript import Seat, Transcript
from ._turn import TurnState, chat_request, finish, run_turn

__all__ = ["STRATEGIES", "DeliberationRun", "deliberate", "run_deliberation"]

STRATEGIES: dict[str, Callable[[Deliberation], Strategy]] = {"rounds": rounds, "debate": debate, "council": council}
"""Strategy name -> the generator function that plays it."""

_BUFFER = 64
"""Events the queue holds before the turns wait for the consumer."""


def model_label(model: ModelSpec) -> str:
    """How a model is named in events and transcripts: the model string, or ``PROVIDER/MODEL``."""
    if isinstance(model, str):
        return model
    return f"{model.name}/{model.model}" if model.model else model.name


class _Crash:
    """A turn task's unexpected exception (a bug, not a provider failure), handed to the consumer."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class DeliberationRun:
    """One run of a ``Deliberation``; see the module docstring. Iterate it once."""

    def __init__(
        self,
        spec: Deliberation,
        *,
        registry: ProviderRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        buffer: int = _BUFFER,
    ) -> None:
        if buffer < 1:
            raise ValueError("buffer must hold at least one event")
        self.spec = spec
        self._registry = registry
        self._owns_registry = False
        self._clock = clock
        self._buffer = buffer
        self._chains: dict[str, tuple[Provider, ...]] = {}
        self._log: list[DeliberationEvent] = []
        self._turns: list[Turn] = []
        self._origin = 0.0
        self._gen: AsyncGenerator[DeliberationEvent, None] | None = None
        self.seats = tuple(
            Seat(p.name, "chair" if p is spec.chair else "participant", tuple(map(model_label, p.models)), p.persona)
            for p in spec.seats
        )

    # --- setting up ---

    def resolve(self) -> None:
        """Turn every model string into its configured provider stack (``ProviderRegistry.provider``):
        an unknown model or provider raises its ``ConfigError`` here, before any model is called."""
        if self._chains:
            return
        chains: dict[str, tuple[Provider, ...]] = {}
        for seat in self.spec.seats:
            chains[seat.name] = tuple(self._provider(model) for model in seat.models)
        self._chains = chains

    def _provider(self, model: ModelSpec) -> Provider:
        if isinstance(model, Provider):
            return model
        if self._registry is None:
            self._registry = ProviderRegistry.from_config()
            self._owns_registry = True
        return self._registry.provider(model)

    async def __aenter__(self) -> Self:
        self.resolve()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop now: cancel the turns in flight (closing their streams), close a registry made here."""
        if self._gen is not None:
            await self._gen.aclose()
        if self._owns_registry and self._registry is not None:
            self._owns_registry = False
            await self._registry.aclose()

    def __aiter__(self) -> AsyncIterator[DeliberationEvent]:
        if self._gen is None:
            self.resolve()
            self._gen = self._events()
        return self._gen

    async def run(self) -> Transcript:
        """Run to the end, ignoring the events; the transcript."""
        async for _ in self:
            pass
        return self.transcript

    @property
    def transcript(self) -> Transcript:
        """The transcript so far (complete once ``DeliberationDone`` has been delivered)."""
        spec = self.spec
        return Transcript.of(spec.question, spec.strategy, spec.mode, self.seats, self._log)

    # --- limits ---

    def _elapsed(self) -> float:
        return self._clock() - self._origin

    def _time_left(self) -> float | None:
        deadline = self.spec.limits.deadline
        return None if deadline is None else deadline - self._elapsed()

    def _limit_reached(self, calls: int) -> tuple[StopReason, str] | None:
        limits = self.spec.limits
        left = self._time_left()
        if left is not None and left <= 0:
            return StopReason.DEADLINE, f"the deadline of {limits.deadline:g} s passed"
        spent = tally(self._turns)
        if limits.max_calls is not None and spent.calls + calls > limits.max_calls:
            return StopReason.MAX_CALLS, (
                f"the next step needs {calls} calls and {limits.max_calls - spent.calls} of max_calls="
                f"{limits.max_calls} are left"
            )
        if limits.max_tokens is not None and spent.total_tokens >= limits.max_tokens:
            return StopReason.MAX_TOKENS, f"{spent.total_tokens} tokens spent of max_tokens={limits.max_tokens}"
        if limits.max_cost is not None and spent.cost is not None and spent.cost >= limits.max_cost:
            return StopReason.MAX_COST, f"{spent.cost} spent of max_cost={limits.max_cost}"
        return None

    def _output_cap(self, participant: Participant, turns: int) -> int | None:
        cap = participant.max_tokens or self.spec.max_tokens
        budget = self.spec.limits.max_tokens
        if budget is None:
            return cap
        share = max(1, (budget - tally(self._turns).total_tokens) // turns)
        return share if cap is None else min(cap, share)

    # --- the run ---

    def _note(self, event: DeliberationEvent) -> DeliberationEvent:
        if type(event) is TurnFinished:
            self._turns.append(event.turn)
        self._log.append(event)
        return event

    async def _events(self) -> AsyncGenerator[DeliberationEvent, None]:
        spec = self.spec
        self._origin = self._clock()
        strategy = STRATEGIES[spec.strategy](spec)
        reply: tuple[Turn, ...] | None = None
        converged = False
        stopped: tuple[StopReason, str] | None = None
        final: Aggregate | None = None
        try:
            while True:
                try:
                    step = strategy.send(reply)
                except StopIteration as end:
                    final = end.value
                    break
                reply = None
                match step:
                    case RoundBegin(round=number, phase=phase):
                        yield self._note(RoundStarted(number, phase))
                    case RoundEnd(round=number, phase=phase, agreement=agreement):
                        converged = converged or step.converged
                        yield self._note(RoundFinished(number, phase, agreement))
                    case Report(aggregate=aggregate):
                        yield self._note(aggregate)
                    case Ask(requests=requests):
                        stopped = self._limit_reached(len(requests))
                        if stopped is not None:
                            break
                        results: list[Turn | None] = [None] * len(requests)
                        batch = self._batch(requests, results)
                        try:
                            async for event in batch:
                                yield self._note(event)
                        finally:
                            await batch.aclose()
                        reply = tuple(t for t in results if t is not None)
                        stopped = self._after_step(reply)
                        if stopped is not None:
                            break
        finally:
            strategy.close()
        if stopped is not None:
            answers: dict[str, Turn] = {}
            for turn in self._turns:
                if turn.ok and turn.is_answer:
                    answers[turn.participant] = turn
            final = vote([answers[p.name] for p in spec.participants if p.name in answers], complete=False)
            stop, detail = stopped
        else:
            stop, detail = (
                (StopReason.CONVERGED, "the participants agreed") if converged else (StopReason.COMPLETED, "")
            )
        if final is not None and (final.text or final.answer or stopped is None):
            yield self._note(final)
        done = DeliberationDone(
            stop=stop,
            totals=tally(self._turns),
            detail=detail,
            answer=final.answer if final is not None else None,
            text=final.text if final is not None else "",
            elapsed_s=self._elapsed(),
        )
        yield self._note(done)

    def _after_step(self, turns: Sequence[Turn]) -> tuple[StopReason, str] | None:
        left = self._time_left()
        if left is not None and left <= 0:
            return StopReason.DEADLINE, f"the deadline of {self.spec.limits.deadline:g} s passed during a step"
        if self.spec.stop_on_failure:
            failed = [t for t in turns if not t.ok]
            if failed:
                first = failed[0]
                reason = f"{first.error.kind}: {first.error.message}" if first.error else first.status.value
                return StopReason.PARTICIPANT_FAILED, f"{first.participant}'s turn {first.status.value} ({reason})"
        return None

    async def _batch(
        self, requests: Sequence[TurnRequest], results: list[Turn | None]
    ) -> AsyncGenerator[DeliberationEvent, None]:
        """Run ``requests`` at once; yield their events as they come; fill ``results`` in order."""
        queue: asyncio.Queue[tuple[int, DeliberationEvent | _Crash]] = asyncio.Queue(self._buffer)
        states = []
        for request in requests:
            participant = request.participant
            chain = self._chains[participant.name]
            state = TurnState(request, model_label(participant.models[0]), self._clock())
            cap = self._output_cap(participant, len(requests))
            states.append((state, chain, chat_request(self.spec, request, cap)))
        tasks = [
            asyncio.create_task(
                self._turn(i, state, chain, req, queue), name=f"deliberation turn {state.request.participant.name}"
            )
            for i, (state, chain, req) in enumerate(states)
        ]
        left = len(tasks)
        expired = False
        try:
            while left:
                try:
                    async with asyncio.timeout(self._time_left()):
                        index, item = await queue.get()
                except TimeoutError:
                    expired = True
                    break
                if isinstance(item, _Crash):
                    raise item.error
                if type(item) is TurnFinished:
                    results[index] = item.turn
                    left -= 1
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not expired:
            return
        while not queue.empty():  # what the turns said before the deadline is delivered too
            index, item = queue.get_nowait()
            if isinstance(item, _Crash):
                raise item.error
            if type(item) is TurnFinished:
                results[index] = item.turn
            yield item
        now = self._clock()
        for index, (state, _, _) in enumerate(states):
            if results[index] is None:
                turn = state.turn or self._cut(state, now)
                results[index] = turn
                yield TurnFinished(turn)

    def _cut(self, state: TurnState, now: float) -> Turn:
        error = TotalTimeout(
            f"the deliberation's deadline of {self.spec.limits.deadline:g} s passed during this turn",
            provider=state.provider,
        )
        status = TurnStatus.PARTIAL if state.text else TurnStatus.FAILED
        return finish(state, self.spec, status, error, now, self._origin)

    async def _turn(
        self,
        index: int,
        state: TurnState,
        chain: Sequence[Provider],
        request: ChatRequest,
        queue: asyncio.Queue[tuple[int, DeliberationEvent | _Crash]],
    ) -> None:
        async def emit(event: DeliberationEvent) -> None:
            await queue.put((index, event))

        try:
            status, error = await run_turn(state, chain, request, emit, self._clock)
            turn = finish(state, self.spec, status, error, self._clock(), self._origin)
        except Exception as exc:  # a bug in a provider or here: the consumer sees it
            await queue.put((index, _Crash(exc)))
            return
        state.turn = turn
        await queue.put((index, TurnFinished(turn)))


def deliberate(
    spec: Deliberation,
    *,
    registry: ProviderRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
    buffer: int = _BUFFER,
) -> DeliberationRun:
    """A run of ``spec``: ``async with deliberate(spec) as run: async for event in run: ...``.

    Model strings are resolved with ``registry`` (one is made from the configuration when needed, and
    closed with the run); ``clock`` times turns and the deadline; ``buffer`` is the event queue's size."""
    return DeliberationRun(spec, registry=registry, clock=clock, buffer=buffer)


async def run_deliberation(spec: Deliberation, *, registry: ProviderRegistry | None = None) -> Transcript:
    """Run ``spec`` to the end and return its transcript (no events)."""
    async with deliberate(spec, registry=registry) as run:
        return await run.run()
