"""``council``: independent answers -> anonymised peer ranking -> Borda count -> the chair's answer.

1. Answer: everyone answers on its own (no one sees another's answer, in either mode; sequential mode
   only takes the turns one at a time).
2. Rank: each reviewer sees the *other* participants' successful answers under the labels ``A``, ``B``,
   ... shuffled afresh for each reviewer (``random.Random`` seeded from ``Deliberation.seed`` and the
   reviewer's position, so a transcript can be reproduced), never its own, and ends with a line
   ``Ranking: B, A, C``. The label map is recorded on its ``Turn`` (``labels``). Unknown labels and
   repeats are ignored; the labels it leaves out get no points from it.
3. Aggregate: Borda points over the rankings (``_answers.borda``), reported as an ``Aggregate`` with
   ``method="ranking"`` (ties: participant order).
4. Chair: the chair writes the final answer from the answers ordered by points; if its turn fails, the
   top-ranked answer is the final answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from ._answers import borda
from ._events import Aggregate, Turn
from ._model import Deliberation, Participant
from ._steps import Report, RoundEnd, Strategy, TurnRequest, measure, question_prompt, round_of, synthesis

__all__ = ["council", "labels_for", "parse_ranking"]

_RANKING = re.compile(r"(?im)^[\s*_#>-]*ranking\s*[:=]\s*(.+?)\s*$")
_LABEL = re.compile(r"\b([A-Z])\b")


def labels_for(reviewer: int, others: Sequence[str], seed: int) -> dict[str, str]:
    """Label -> participant for one reviewer: ``others`` in an order shuffled for this reviewer."""
    order = list(others)
    random.Random(f"{seed}:{reviewer}").shuffle(order)
    return {chr(ord("A") + i): name for i, name in enumerate(order)}


def parse_ranking(text: str, labels: Mapping[str, str]) -> tuple[str, ...]:
    """The participants a review ranks, best first: its last ``Ranking:`` line read through ``labels``."""
    found = _RANKING.findall(text)
    if not found:
        return ()
    ranked: list[str] = []
    for label in _LABEL.findall(found[-1].upper()):
        name = labels.get(label)
        if name is not None and name not in ranked:
            ranked.append(name)
    return tuple(ranked)


def council(spec: Deliberation) -> Strategy:
    """The ``council`` strategy (see the module docstring)."""

    def answer(seat: Participant, so_far: tuple[Turn, ...]) -> TurnRequest:
        return TurnRequest(seat, 1, "answer", question_prompt(spec))

    turns = yield from round_of(spec, 1, "answer", spec.participants, answer)
    end, _ = measure(spec, 1, "answer", turns, early=False)
    yield end
    answers = {t.participant: t for t in turns if t.ok}
    position = {p.name: i for i, p in enumerate(spec.participants)}

    def review(seat: Participant, so_far: tuple[Turn, ...]) -> TurnRequest | None:
        others = [name for name in answers if name != seat.name]
        if len(others) < 2:
            return None  # nothing to rank
        labels = labels_for(position[seat.name], others, spec.seed)
        shown = "\n\n".join(f"### Answer {label}\n{answers[name].text.strip()}" for label, name in labels.items())
        prompt = (
            f"Question: {spec.question}\n\nAnonymous answers:\n\n{shown}\n\n"
            "Rank these answers from best to worst for correctness and reasoning. End your reply with one "
            f"line of the form `Ranking: {', '.join(labels)}` (best first)."
        )
        return TurnRequest(seat, 2, "rank", prompt, is_answer=False, labels=labels)

    reviews = yield from round_of(spec, 2, "rank", spec.participants, review)
    yield RoundEnd(2, "rank")
    rankings = [parse_ranking(t.text, t.labels) for t in reviews if t.ok]
    points = borda(rankings, list(answers))
    order = sorted(answers, key=lambda name: (-points[name], position[name]))
    if order:
        top = answers[order[0]]
        ranking = Aggregate(method="ranking", text=top.text, answer=top.answer, source=(top.participant,), tally=points)
    else:
        ranking = Aggregate(method="ranking", text="")
    yield Report(ranking)
    if not order:
        return ranking  # no answer to build on: the chair is not asked
    shown = "\n\n".join(f"### {name} ({points[name]:g} Borda points)\n{answers[name].text.strip()}" for name in order)
    context = f"The council's answers, best ranked first:\n\n{shown}"
    return (yield from synthesis(spec, 3, context, fallback=ranking))
