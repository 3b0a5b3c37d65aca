"""Pure functions over answers: extraction, agreement, the majority vote and the Borda count.

- ``extract_answer(text, pattern)``: the last match of ``pattern`` in ``text`` (its group 1 when it has
  groups), stripped of Markdown emphasis and trailing punctuation; ``None`` when nothing matches.
- ``normalise(answer)``: the key answers are compared by: case-folded, inner whitespace collapsed, a
  trailing ``.`` dropped, and ``1,000`` / ``1000.0`` read as the number ``1000``.
- ``agreement(turns)``: the share of answering turns that give the most common answer.
- ``vote(turns)``: the most common answer; a tie goes to the answer given first (participant order),
  so the result is deterministic.
- ``borda(rankings, candidates)``: each ranking of ``k`` candidates gives ``k-1`` points to its first,
  ``k-2`` to the next, ... and 0 to the last; a candidate a ranking leaves out gets 0 from it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from ._events import Aggregate, Agreement, Turn

__all__ = ["agreement", "borda", "extract_answer", "normalise", "vote"]

_EMPHASIS = re.compile(r"^[\s*_`\"']+|[\s*_`\"'.,;:!]+$")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"^[-+]?\$?\d[\d,]*(\.\d+)?%?$")


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def extract_answer(text: str, pattern: str) -> str | None:
    """The final answer in ``text`` (see the module docstring), or ``None``."""
    compiled = _compiled(pattern)
    last: re.Match[str] | None = None
    for last in compiled.finditer(text):  # noqa: B007 - the last match is the final answer
        pass
    if last is None:
        return None
    raw = last.group(1) if compiled.groups else last.group(0)
    answer = _EMPHASIS.sub("", raw or "")
    return answer or None


def normalise(answer: str) -> str:
    """The comparison key of an answer (see the module docstring)."""
    key = _SPACES.sub(" ", answer.strip()).casefold().rstrip(".")
    if _NUMBER.match(key):
        try:
            number = Decimal(key.replace(",", "").replace("$", "").rstrip("%"))
        except InvalidOperation:
            return key
        text = format(number.normalize(), "f")
        return text + ("%" if key.endswith("%") else "")
    return key


def _answers(turns: Iterable[Turn]) -> list[tuple[str, str]]:
    """``(key, answer)`` of each successful answering turn with an answer, in order."""
    return [(normalise(t.answer), t.answer) for t in turns if t.ok and t.is_answer and t.answer is not None]


def agreement(turns: Sequence[Turn]) -> Agreement:
    """How far the answering turns in ``turns`` agree (``Agreement``)."""
    answering = [t for t in turns if t.is_answer]
    answers = _answers(answering)
    if not answers:
        return Agreement(score=None, unanimous=False, answered=0, turns=len(answering))
    counts = Counter(key for key, _ in answers)
    leader = _leader(answers, counts)
    top = counts[leader]
    return Agreement(
        score=top / len(answers),
        unanimous=top == len(answering) and all(t.ok for t in answering),
        answer=next(a for k, a in answers if k == leader),
        answered=len(answers),
        turns=len(answering),
        counts=dict(counts),
    )


def _leader(answers: Sequence[tuple[str, str]], counts: Mapping[str, int]) -> str:
    best = max(counts.values())
    return next(key for key, _ in answers if counts[key] == best)


def vote(turns: Sequence[Turn], *, complete: bool = True) -> Aggregate:
    """The majority answer of ``turns`` (ties: first given), with the text of its first giver."""
    answers = _answers(turns)
    if not answers:
        return Aggregate(method="vote", text="", answer=None, complete=complete)
    counts = Counter(key for key, _ in answers)
    leader = _leader(answers, counts)
    winners = [t for t in turns if t.ok and t.is_answer and t.answer is not None and normalise(t.answer) == leader]
    return Aggregate(
        method="vote",
        text=winners[0].text,
        answer=winners[0].answer,
        source=tuple(t.participant for t in winners),
        tally={key: float(n) for key, n in counts.items()},
        complete=complete,
    )


def borda(rankings: Iterable[Sequence[str]], candidates: Sequence[str]) -> dict[str, float]:
    """Borda points per candidate (see the module docstring), every candidate present (0 by default)."""
    points = dict.fromkeys(candidates, 0.0)
    for ranking in rankings:
        k = len(ranking)
        for position, name in enumerate(ranking):
            if name in points:
                points[name] += k - 1 - position
    return points
