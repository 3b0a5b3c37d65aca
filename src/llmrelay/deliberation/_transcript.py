"""The transcript: everything a deliberation said and spent, as Markdown to read and JSON to reload.

A ``Transcript`` is the question, the seats (who took part, with which models) and the events of the
run except the ``TurnDelta`` fragments (each ``Turn`` holds its whole text): the rest is derived from
them (``turns``, ``final``, ``done``, ``totals``, ``by_participant``), as a ``ChatResponse`` is the fold
of its stream. ``to_json`` / ``from_json`` (and ``dumps`` / ``loads``) go through the project's tagged
codec (``llmrelay._codec``), so a saved transcript reloads equal to the one written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._codec import dumps as _dumps
from .._codec import from_json as _from_json
from .._codec import loads as _loads
from .._codec import register
from .._codec import to_json as _to_json
from ._events import (
    Aggregate,
    DeliberationDone,
    DeliberationEvent,
    RoundFinished,
    RoundStarted,
    Tally,
    Turn,
    TurnDelta,
    TurnFinished,
    TurnStarted,
    TurnStatus,
)
from ._tally import tally

__all__ = ["Seat", "Transcript"]


@dataclass(frozen=True, slots=True)
class Seat:
    """Who took part: a participant or the chair, the model(s) it was given and its persona."""

    name: str
    role: str
    models: tuple[str, ...]
    persona: str | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """A deliberation's record (see the module docstring)."""

    question: str
    strategy: str
    mode: str
    seats: tuple[Seat, ...]
    events: tuple[
        RoundStarted | TurnStarted | TurnDelta | TurnFinished | RoundFinished | Aggregate | DeliberationDone, ...
    ]

    @classmethod
    def of(
        cls, question: str, strategy: str, mode: str, seats: Sequence[Seat], events: Sequence[DeliberationEvent]
    ) -> Transcript:
        """A transcript of ``events`` (``TurnDelta`` fragments left out: each ``Turn`` has its text)."""
        kept = tuple(e for e in events if type(e) is not TurnDelta)
        return cls(question, strategy, mode, tuple(seats), kept)

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(e.turn for e in self.events if type(e) is TurnFinished)

    @property
    def final(self) -> Aggregate | None:
        """The final answer: the last ``Aggregate``."""
        aggregates = [e for e in self.events if type(e) is Aggregate]
        return aggregates[-1] if aggregates else None

    @property
    def done(self) -> DeliberationDone | None:
        last = self.events[-1] if self.events else None
        return last if type(last) is DeliberationDone else None

    @property
    def totals(self) -> Tally:
        return tally(self.turns)

    def by_participant(self) -> dict[str, Tally]:
        """Calls, tokens and cost per seat (every seat present, in seat order)."""
        turns = self.turns
        return {seat.name: tally(t for t in turns if t.participant == seat.name) for seat in self.seats}

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Transcript:
        return _from_json(data, Transcript)

    def dumps(self) -> str:
        return _dumps(self)

    @staticmethod
    def loads(text: str | bytes) -> Transcript:
        return _loads(text, Transcript)

    def to_markdown(self) -> str:
        """A readable transcript: the seats with their models and spend, each round's turns with who
        answered and what it cost, the agreement, the aggregates and the totals."""
        return _markdown(self)


register("seat", Seat)
register("deliberation_transcript", Transcript)


def money(cost: Decimal | None, unknown: int = 0, currency: str = "USD") -> str:
    """``$0.000125``, ``$0.0012 + 2 unpriced``, ``unpriced``."""
    sign = "$" if currency == "USD" else f"{currency} "
    if cost is None:
        return "unpriced" if unknown else f"{sign}0"
    text = f"{sign}{cost.normalize():f}"
    return f"{text} + {unknown} unpriced" if unknown else text


def _tokens(t: Tally) -> str:
    text = f"{t.total_tokens} ({t.input_tokens} in, {t.output_tokens} out)"
    return f"{text} + {t.tokens_unknown} unreported" if t.tokens_unknown else text


def _turn_lines(turn: Turn) -> list[str]:
    who = "/".join(x for x in (turn.provider, turn.model) if x) or "no model answered"
    asked = f" (asked for {turn.requested})" if turn.requested and turn.requested != who else ""
    usage = turn.usage.total_tokens if turn.usage is not None and turn.usage.total_tokens is not None else None
    cost = money(turn.cost, 0 if turn.cost is not None else 1, turn.currency)
    facts = [f"{turn.latency_s:.2f} s", f"{usage} tokens" if usage is not None else "tokens unreported", cost]
    status = "" if turn.status is TurnStatus.OK else f" — **{turn.status.value.upper()}**"
    lines = [f"### {turn.participant} · {who}{asked}{status}", "", f"_{' · '.join(facts)}_", ""]
    for attempt in turn.attempts:
        lines.append(
            f"- failed attempt: {attempt.provider}/{attempt.model}: {attempt.error.kind}: {attempt.error.message}"
        )
    for partial in turn.partials:
        lines.append(f"- partial text from {partial.provider}/{partial.model} (broke: {partial.error.kind}), not used:")
        lines.append("")
        lines += [f"  > {line}" for line in partial.text.splitlines() or [""]]
    if turn.attempts or turn.partials:
        lines.append("")
    if turn.labels:
        lines += [", ".join(f"{label} = {name}" for label, name in turn.labels.items()), ""]
    if turn.status is TurnStatus.FAILED:
        lines.append(f"(no reply: {turn.error.kind + ': ' + turn.error.message if turn.error else 'failed'})")
    else:
        if turn.status is TurnStatus.PARTIAL and turn.error is not None:
            lines += [f"(the stream broke: {turn.error.kind}: {turn.error.message}; the text below is partial)", ""]
        lines.append(turn.text.strip() or "(empty reply)")
    lines.append("")
    return lines


def _markdown(t: Transcript) -> str:
    done = t.done
    out = [f"# Deliberation: {t.question}", ""]
    head = f"Strategy **{t.strategy}**, {t.mode} turns"
    if done is not None:
        head += f"; stopped: **{done.stop.value}**" + (f" ({done.detail})" if done.detail else "")
        head += f"; {done.elapsed_s:.1f} s"
    out += [
        head,
        "",
        "## Participants",
        "",
        "| name | role | model(s) | turns | tokens | cost |",
        "|---|---|---|---|---|---|",
    ]
    spend = t.by_participant()
    for seat in t.seats:
        s = spend[seat.name]
        out.append(
            f"| {seat.name} | {seat.role} | {' → '.join(seat.models)} | {s.calls} | {_tokens(s)} | "
            f"{money(s.cost, s.cost_unknown, s.currency)} |"
        )
    personas = [s for s in t.seats if s.persona]
    if personas:
        out += ["", *[f"- **{s.name}**: {s.persona}" for s in personas]]
    out.append("")
    for event in t.events:
        match event:
            case RoundStarted(round=number, phase=phase):
                out += [f"## Round {number}: {phase}", ""]
            case TurnFinished(turn=turn):
                out += _turn_lines(turn)
            case RoundFinished(agreement=agreement) if agreement is not None:
                if agreement.score is None:
                    out += ["**Agreement:** no answer could be extracted", ""]
                else:
                    votes = ", ".join(f"{k!r}: {n}" for k, n in agreement.counts.items())
                    unanimous = " (unanimous)" if agreement.unanimous else ""
                    out += [f"**Agreement:** {agreement.score:.2f}{unanimous}: {votes}", ""]
            case Aggregate() as aggregate:
                title = "Final answer" if aggregate is t.final else f"Aggregate ({aggregate.method})"
                out += [f"## {title}", ""]
                by = f" by {', '.join(aggregate.source)}" if aggregate.source else ""
                out.append(f"_method: {aggregate.method}{by}{'' if aggregate.complete else ' (cut short by a limit)'}_")
                if aggregate.tally:
                    out.append("_tally: " + ", ".join(f"{k}: {v:g}" for k, v in aggregate.tally.items()) + "_")
                out += ["", f"**Answer: {aggregate.answer}**" if aggregate.answer else "", aggregate.text.strip(), ""]
            case _:
                pass
    totals = t.totals
    out += [
        "## Totals",
        "",
        f"- calls: {totals.calls} ({totals.failed} not ok)",
        f"- tokens: {_tokens(totals)}",
        f"- cost: {money(totals.cost, totals.cost_unknown, totals.currency)}",
        "",
    ]
    return "\n".join(out)
