"""The sans-I/O protocol between a strategy and the runner, and the pieces strategies share.

A strategy is a generator: it yields ``Step`` values and receives the turns it asked for::

    def my_strategy(spec: Deliberation) -> Strategy:
        yield RoundBegin(1, "answer")
        turns = yield from ask([TurnRequest(p, 1, "answer", prompt) for p in spec.participants])
        yield RoundEnd(1, "answer", agreement(turns))
        return vote(turns)                         # the final Aggregate

- ``RoundBegin`` / ``RoundEnd`` become ``RoundStarted`` / ``RoundFinished`` events; ``RoundEnd``'s
  ``converged`` tells the runner that the strategy stopped early because the participants agreed.
- ``Ask(requests)``: the runner runs the turns (concurrently: a strategy that wants turn B to see turn A
  asks for them in two steps; ``round_of`` does so in sequential mode) and sends back one ``Turn`` per
  request, in order, whatever happened to it (failed turns included).
- ``Report(aggregate)``: an intermediate aggregate (the council's Borda ranking), emitted as is.

The runner may close a strategy at any step (a limit was reached): a strategy holds no resources.
Strategies never see providers, clocks or sockets, so they are tested by sending them ``Turn`` values.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ._answers import agreement, extract_answer
from ._events import Aggregate, Agreement, Turn
from ._model import Deliberation, Participant

__all__ = [
    "Ask",
    "Reply",
    "Report",
    "RoundBegin",
    "RoundEnd",
    "Step",
    "Strategy",
    "TurnRequest",
    "ask",
    "converged",
    "round_of",
    "synthesis",
]


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One turn to take: who, in which round and phase, with which prompt (the persona is the system)."""

    participant: Participant
    round: int
    phase: str
    prompt: str
    is_answer: bool = True
    """Whether the reply answers the question (counted in agreement and votes)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Anonymous labels shown in the prompt and whom they stand for (recorded on the ``Turn``)."""


@dataclass(frozen=True, slots=True)
class RoundBegin:
    round: int
    phase: str


@dataclass(frozen=True, slots=True)
class RoundEnd:
    round: int
    phase: str
    agreement: Agreement | None = None
    converged: bool = False


@dataclass(frozen=True, slots=True)
class Ask:
    requests: tuple[TurnRequest, ...]


@dataclass(frozen=True, slots=True)
class Report:
    aggregate: Aggregate


Step = RoundBegin | RoundEnd | Ask | Report
Reply = tuple[Turn, ...] | None
Strategy = Generator[Step, Reply, Aggregate]
"""A strategy yields steps, receives the turns of each ``Ask``, and returns the final ``Aggregate``."""


def ask(requests: Iterable[TurnRequest]) -> Generator[Step, Reply, tuple[Turn, ...]]:
    """Yield one ``Ask`` and return its turns (``yield from ask(...)``)."""
    batch = tuple(requests)
    if not batch:
        return ()
    reply = yield Ask(batch)
    if not isinstance(reply, tuple) or len(reply) != len(batch):
        raise RuntimeError("a deliberation runner must answer an Ask with one Turn per request")
    return reply


def round_of(
    spec: Deliberation,
    number: int,
    phase: str,
    seats: Sequence[Participant],
    build: Callable[[Participant, tuple[Turn, ...]], TurnRequest | None],
) -> Generator[Step, Reply, tuple[Turn, ...]]:
    """One round: ``RoundBegin``, then a turn for each seat ``build`` gives a request for. In parallel
    mode they are asked at once, and ``build`` sees no turn of this round; in sequential mode one at a
    time, and ``build`` sees the turns this round has had so far. The caller yields the ``RoundEnd``."""
    yield RoundBegin(number, phase)
    if spec.mode == "parallel":
        requests = [r for r in (build(p, ()) for p in seats) if r is not None]
        return (yield from ask(requests))
    turns: tuple[Turn, ...] = ()
    for seat in seats:
        request = build(seat, turns)
        if request is not None:
            turns += yield from ask([request])
    return turns


def converged(spec: Deliberation, measured: Agreement) -> bool:
    """Whether ``measured`` reaches ``spec.agreement`` (two answers at least; ``None`` never stops)."""
    threshold = spec.agreement
    if threshold is None or measured.score is None or measured.answered < 2:
        return False
    return measured.unanimous if threshold >= 1.0 else measured.score >= threshold


def question_prompt(spec: Deliberation) -> str:
    return f"Question: {spec.question}\n\n{spec.answer_instruction}"


def answers_block(turns: Iterable[Turn], *, exclude: str | None = None) -> str:
    """The others' answers, one section per participant (failed turns say so)."""
    sections = []
    for turn in turns:
        if turn.participant == exclude:
            continue
        body = turn.text.strip() if turn.ok else f"(no answer: the turn {turn.status.value})"
        sections.append(f"### {turn.participant}\n{body}")
    return "\n\n".join(sections)


def synthesis(
    spec: Deliberation, number: int, context: str, *, fallback: Aggregate
) -> Generator[Step, Reply, Aggregate]:
    """A synthesis round: the chair writes the final answer from ``context``; if its turn fails,
    ``fallback`` (a vote, a ranking) is the final answer."""
    chair = spec.chair
    if chair is None:
        return fallback
    prompt = (
        f"Question: {spec.question}\n\n{context}\n\n"
        "You are the chair. Weigh the contributions above and write the single best final answer. "
        f"{spec.answer_instruction}"
    )
    yield RoundBegin(number, "synthesis")
    (turn,) = yield from ask([TurnRequest(chair, number, "synthesis", prompt, is_answer=False)])
    yield RoundEnd(number, "synthesis")
    if not turn.ok:
        return fallback
    answer = extract_answer(turn.text, spec.answer_pattern)
    return Aggregate(method="synthesis", text=turn.text, answer=answer, source=(chair.name,))


def measure(
    spec: Deliberation, number: int, phase: str, turns: Sequence[Turn], *, early: bool
) -> tuple[RoundEnd, bool]:
    """The ``RoundEnd`` of an answering round, and whether to stop now because the answers agree:
    only when ``early`` (rounds would follow this one), so a deliberation that ran every round it
    planned reports ``COMPLETED``, not ``CONVERGED``."""
    measured = agreement(turns)
    done = early and converged(spec, measured)
    return RoundEnd(number, phase, measured, converged=done), done
