"""The deliberation's event stream and the records it carries: a closed set of small frozen classes.

Don't subclass these; match on them. The order of one deliberation's events (checked in the tests)::

    RoundStarted(round, phase)
      TurnStarted(participant, ...)          once the turn's stream is open (or failed to open)
      TurnDelta(participant, text)*          interleaved across participants in parallel mode
      TurnStarted(..., attempt=2)            only when a stream broke and the next model of the chain took
      TurnDelta(..., attempt=2)*             over: the text so far is partial, shown in ``Turn.partials``
      TurnFinished(turn)                     one per turn, ``turn.status`` ok / partial / failed
    RoundFinished(round, agreement)          agreement of the round's answers, where they are answers
    Aggregate(...)*                          a vote, a Borda ranking, a synthesis; the last is the final answer
    DeliberationDone(stop, totals)           always last (unless the consumer cancelled)

Each event names its ``participant`` where it has one, so a client (the CLI's panels, an SSE route) can
route it. In JSON (``llmrelay._codec``: ``to_json`` / ``dumps``) every event is tagged with its ``type``;
``TurnFinished`` writes its ``Turn``'s fields inline. Money is a ``Decimal`` (exact text in JSON); a cost
that cannot be known is ``None`` with the reason beside it, never ``0``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .._codec import register
from .._errors import Attempt, LlmError
from .._types import FinishReason, Usage
from ._model import StopReason

__all__ = [
    "Aggregate",
    "Agreement",
    "DeliberationDone",
    "DeliberationEvent",
    "Partial",
    "RoundFinished",
    "RoundStarted",
    "Tally",
    "Turn",
    "TurnDelta",
    "TurnFinished",
    "TurnStarted",
    "TurnStatus",
]


class TurnStatus(enum.StrEnum):
    """How a turn ended."""

    OK = "ok"
    """A complete reply."""
    PARTIAL = "partial"
    """The stream broke (or the deadline passed) after text began: ``Turn.text`` is incomplete."""
    FAILED = "failed"
    """No reply at all: every model of the participant failed (``Turn.error`` says why)."""


@dataclass(frozen=True, slots=True)
class Partial:
    """The text of an attempt whose stream broke half-way, kept apart from the answer that followed."""

    provider: str | None
    model: str | None
    text: str
    error: LlmError


@dataclass(frozen=True, slots=True)
class Turn:
    """One participant's turn: who was asked, who answered, what they said, and what it cost.

    ``requested`` is the model the participant was configured with; ``provider`` and ``model`` are who
    actually answered (a fallback's member, a snapshot name). ``attempts`` are the failed tries before
    the answer (a wrapper's and the participant's own chain); ``partials`` the broken streams' texts.
    ``started_s`` and ``ended_s`` are seconds from the deliberation's start.
    """

    participant: str
    round: int
    phase: str
    requested: str | None
    status: TurnStatus
    text: str = ""
    provider: str | None = None
    model: str | None = None
    answer: str | None = None
    """The final answer found in ``text`` with ``answer_pattern`` (``None`` when none matched)."""
    is_answer: bool = True
    """Whether this turn answers the question (a draft, a revision), rather than critiquing or ranking."""
    finish_reason: FinishReason | None = None
    error: LlmError | None = None
    usage: Usage | None = None
    cost: Decimal | None = None
    currency: str = "USD"
    cost_unknown: str | None = None
    """Why ``cost`` is ``None`` (no usage reported, no price for the model)."""
    attempts: tuple[Attempt, ...] = ()
    partials: tuple[Partial, ...] = ()
    started_s: float = 0.0
    ended_s: float = 0.0
    first_text_s: float | None = None
    """Seconds from the turn's start to its first text."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """For an anonymised review (the council's ranking): each label shown to this reviewer and the
    participant it stood for, so a reader can check the ranking."""

    @property
    def latency_s(self) -> float:
        """Seconds from the start of the turn to its end."""
        return self.ended_s - self.started_s

    @property
    def ok(self) -> bool:
        return self.status is TurnStatus.OK


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far a round's answers agree: ``score`` is the share of the answering turns whose answer is the
    most common one (``None`` when no turn gave an answer); ``unanimous`` when every turn of the round
    succeeded and all gave that answer. ``counts`` maps each normalised answer to its number of turns."""

    score: float | None
    unanimous: bool
    answer: str | None = None
    answered: int = 0
    """Turns of the round with an extractable answer."""
    turns: int = 0
    """Turns of the round that answered the question (failed ones included)."""
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tally:
    """Calls, tokens and cost summed over turns. Unknown parts are counted, never taken as 0:
    ``tokens_unknown`` turns reported no usage, ``cost_unknown`` turns could not be priced, and ``cost``
    is the sum of the priced turns (``None`` when none was priced)."""

    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    tokens_unknown: int = 0
    cost: Decimal | None = None
    cost_unknown: int = 0
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class RoundStarted:
    round: int
    phase: str


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """A turn's stream is open (``provider``/``model`` who answers), or failed to open (both ``None``)."""

    participant: str
    round: int
    phase: str
    requested: str | None
    provider: str | None
    model: str | None
    attempt: int = 1
    """1, then 2, 3, ... when a broken stream made the participant's next model take over."""


@dataclass(frozen=True, slots=True)
class TurnDelta:
    participant: str
    round: int
    text: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class TurnFinished:
    turn: Turn


@dataclass(frozen=True, slots=True)
class RoundFinished:
    round: int
    phase: str
    agreement: Agreement | None = None
    """``None`` for a round whose turns do not answer the question (critiques, rankings)."""


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A combined answer: ``method`` is ``vote`` (majority of extracted answers), ``ranking`` (Borda over
    peer rankings; ``tally`` has each participant's points) or ``synthesis`` (a chair's text).
    ``source`` names whose text ``text`` is. ``complete`` is false when limits cut the deliberation short
    and this is the vote over the answers so far."""

    method: str
    text: str
    answer: str | None = None
    source: tuple[str, ...] = ()
    tally: Mapping[str, float] = field(default_factory=dict)
    complete: bool = True


@dataclass(frozen=True, slots=True)
class DeliberationDone:
    """Always the last event: why it stopped, the final answer (``None`` when there is none) and totals."""

    stop: StopReason
    totals: Tally
    detail: str = ""
    answer: str | None = None
    text: str = ""
    elapsed_s: float = 0.0


DeliberationEvent = RoundStarted | TurnStarted | TurnDelta | TurnFinished | RoundFinished | Aggregate | DeliberationDone

for _tag, _cls in (
    ("round_started", RoundStarted),
    ("turn_started", TurnStarted),
    ("turn_delta", TurnDelta),
    ("round_finished", RoundFinished),
    ("aggregate", Aggregate),
    ("deliberation_done", DeliberationDone),
    ("deliberation_turn", Turn),
    ("deliberation_partial", Partial),
    ("agreement", Agreement),
    ("tally", Tally),
):
    register(_tag, _cls)
register("turn_finished", TurnFinished, flatten="turn")
