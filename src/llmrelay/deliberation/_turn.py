"""One turn: stream a participant's reply through its chain of providers, emitting events as it goes.

For each provider of the chain, in order:

- The stream is entered. An error there (every member of a ``Fallback`` failed, a bad key, ...) is a
  failed attempt (a wrapper's ``AllAttemptsFailed`` is recorded as its own attempts); the chain moves on
  when ``should_fail_over`` allows it, as ``Fallback`` does.
- Once open, ``TurnStarted`` names who answers (``stream.provider`` / ``stream.model``: a wrapper's
  member) and every text fragment is a ``TurnDelta``. If the stream breaks after text began, the text
  so far becomes a ``Partial`` (with its error) and the next provider answers afresh: a new
  ``TurnStarted`` with ``attempt`` one higher tells a client to start the participant's text over. The
  broken text is never joined to the next answer. With no provider left, the turn is ``PARTIAL``
  (its ``text`` is the broken text, its ``error`` the break) or ``FAILED`` (nothing at all).

``TurnState`` is what the turn has so far; the runner reads it when the deadline cancels the turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .._errors import AllAttemptsFailed, Attempt, LlmError
from .._events import TextChunks, TextDelta
from .._policy import should_fail_over
from .._provider import Provider
from .._types import ChatRequest, ChatResponse, Message
from ..cost import cost_of
from ._answers import extract_answer
from ._events import DeliberationEvent, Partial, Turn, TurnDelta, TurnStarted, TurnStatus
from ._model import Deliberation
from ._steps import TurnRequest

__all__ = ["TurnState", "finish", "run_turn"]

Emit = Callable[[DeliberationEvent], Awaitable[None]]


@dataclass(slots=True)
class TurnState:
    """A turn in progress (mutable; owned by the task running it)."""

    request: TurnRequest
    requested: str | None
    started: float
    text: list[str] = field(default_factory=list)
    provider: str | None = None
    model: str | None = None
    asked_model: str | None = None
    attempt: int = 0
    first_text: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    partials: list[Partial] = field(default_factory=list)
    response: ChatResponse | None = None
    turn: Turn | None = None
    """The finished turn, once there is one."""


def chat_request(spec: Deliberation, request: TurnRequest, max_tokens: int | None) -> ChatRequest:
    """The provider request of one turn: the persona as system prompt, the prompt as the user turn."""
    return ChatRequest(
        messages=[Message.user(request.prompt)],
        system=request.participant.system,
        max_tokens=max_tokens,
        temperature=spec.temperature,
    )


def _record_failure(state: TurnState, provider: Provider, error: LlmError, elapsed: float) -> None:
    if isinstance(error, AllAttemptsFailed) and error.attempts:
        state.attempts.extend(error.attempts)
    else:
        state.attempts.append(Attempt(provider.name, provider.model, error, elapsed))


async def run_turn(
    state: TurnState,
    chain: Sequence[Provider],
    request: ChatRequest,
    emit: Emit,
    clock: Callable[[], float],
) -> tuple[TurnStatus, LlmError | None]:
    """Take the turn (see the module docstring); the outcome and its error, the rest is on ``state``."""
    participant, number = state.request.participant.name, state.request.round
    last: LlmError | None = None
    for index, provider in enumerate(chain):
        more = index + 1 < len(chain)
        began = clock()
        opened = False
        state.text, state.provider, state.model, state.response = [], None, None, None
        try:
            async with provider.chat_stream(request) as stream:
                opened = True
                state.attempt += 1
                state.provider, state.model, state.asked_model = stream.provider, stream.model, provider.model
                state.attempts.extend(stream.attempts)
                await emit(
                    TurnStarted(
                        participant,
                        number,
                        state.request.phase,
                        state.requested,
                        stream.provider,
                        stream.model,
                        attempt=state.attempt,
                    )
                )
                try:
                    async for event in stream:
                        if (type(event) is TextDelta or type(event) is TextChunks) and event.text:
                            if state.first_text is None:
                                state.first_text = clock()
                            state.text.append(event.text)
                            await emit(TurnDelta(participant, number, event.text, attempt=state.attempt))
                finally:
                    state.response = stream.response()
                    state.model = state.response.model or state.model
                return TurnStatus.OK, None
        except LlmError as error:
            last = error
            text = "".join(state.text)
            if not opened or not text:  # nothing was said: a failed attempt, as a Fallback sees it
                if opened:
                    state.attempts.append(Attempt(state.provider or provider.name, state.model, error, clock() - began))
                else:
                    _record_failure(state, provider, error, clock() - began)
                if more and should_fail_over(error):
                    continue
                break
            state.attempts.append(Attempt(state.provider or provider.name, state.model, error, clock() - began))
            if not more:
                return TurnStatus.PARTIAL, error
            state.partials.append(Partial(state.provider, state.model, text, error))
    if state.attempt == 0:
        await emit(TurnStarted(participant, number, state.request.phase, state.requested, None, None))
    state.text, state.provider, state.model = [], None, None
    return TurnStatus.FAILED, last


def finish(
    state: TurnState,
    spec: Deliberation,
    status: TurnStatus,
    error: LlmError | None,
    ended: float,
    origin: float,
) -> Turn:
    """The ``Turn`` record of a turn that ended (or was cancelled) with ``status``: usage, cost, times."""
    response = state.response
    usage = response.usage if response is not None else None
    text = "".join(state.text)
    cost = cost_of(usage, state.provider, state.model, requested=state.asked_model, overrides=spec.prices)
    turn = Turn(
        participant=state.request.participant.name,
        round=state.request.round,
        phase=state.request.phase,
        requested=state.requested,
        status=status,
        text=text,
        provider=state.provider,
        model=state.model,
        answer=extract_answer(text, spec.answer_pattern) if status is TurnStatus.OK else None,
        is_answer=state.request.is_answer,
        finish_reason=response.finish_reason if response is not None else None,
        error=error,
        usage=usage,
        cost=cost.total,
        currency=cost.currency,
        cost_unknown=cost.unknown,
        attempts=tuple(state.attempts),
        partials=tuple(state.partials),
        started_s=state.started - origin,
        ended_s=ended - origin,
        first_text_s=None if state.first_text is None else state.first_text - state.started,
        labels=dict(state.request.labels),
    )
    return turn
