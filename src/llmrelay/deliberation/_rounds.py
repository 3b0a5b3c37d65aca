"""``rounds``: Draft -> Critique -> Refinement* -> Synthesis by the chair.

1. Draft: everyone answers (sequential mode: seeing the drafts before it). Agreement is measured; if it
   already reaches ``Deliberation.agreement``, the critique and refinement are skipped.
2. Critique: everyone critiques the others' drafts (these turns do not answer; no agreement).
3. Refinement, rounds 3..``rounds``: everyone revises its answer in the light of the critiques and the
   others' latest answers; agreement is measured each round and stops the refinement once reached.
4. Synthesis: the chair writes the final answer from the latest answers and the critiques; if its turn
   fails, the majority vote over the latest answers is the final answer.
"""

from __future__ import annotations

from ._answers import vote
from ._events import Turn
from ._model import Deliberation, Participant
from ._steps import RoundEnd, Strategy, TurnRequest, answers_block, measure, question_prompt, round_of, synthesis

__all__ = ["rounds"]


def rounds(spec: Deliberation) -> Strategy:
    """The ``rounds`` strategy (see the module docstring)."""
    latest: dict[str, Turn] = {}
    critiques: list[Turn] = []

    def draft(seat: Participant, so_far: tuple[Turn, ...]) -> TurnRequest:
        earlier = answers_block((t for t in so_far if t.ok), exclude=seat.name)
        extra = f"\n\nDrafts given so far:\n\n{earlier}" if earlier else ""
        return TurnRequest(seat, 1, "draft", question_prompt(spec) + extra)

    turns = yield from round_of(spec, 1, "draft", spec.participants, draft)
    latest.update((t.participant, t) for t in turns if t.ok)
    end, done = measure(spec, 1, "draft", turns, early=True)
    yield end
    number = 1
    if not done:

        def critique(seat: Participant, so_far: tuple[Turn, ...]) -> TurnRequest | None:
            others = answers_block(latest.values(), exclude=seat.name)
            if not others:
                return None
            earlier = answers_block((t for t in so_far if t.ok), exclude=seat.name)
            extra = f"\n\nCritiques given so far:\n\n{earlier}" if earlier else ""
            prompt = (
                f"Question: {spec.question}\n\nThe other participants' drafts:\n\n{others}{extra}\n\n"
                "Critique these drafts: point out errors, gaps and strong points. Be specific and brief."
            )
            return TurnRequest(seat, 2, "critique", prompt, is_answer=False)

        critiques.extend((yield from round_of(spec, 2, "critique", spec.participants, critique)))
        yield RoundEnd(2, "critique")
        number = 2
        for number in range(3, spec.rounds + 1):

            def refine(seat: Participant, so_far: tuple[Turn, ...], number: int = number) -> TurnRequest:
                seen = dict(latest)
                seen.update((t.participant, t) for t in so_far if t.ok)
                own = latest.get(seat.name)
                mine = own.text.strip() if own is not None else "(you gave no answer yet)"
                prompt = (
                    f"Question: {spec.question}\n\nYour latest answer:\n{mine}\n\n"
                    f"Critiques:\n\n{answers_block(t for t in critiques if t.ok)}\n\n"
                    f"The others' latest answers:\n\n{answers_block(seen.values(), exclude=seat.name)}\n\n"
                    f"Refine your answer. {spec.answer_instruction}"
                )
                return TurnRequest(seat, number, "refine", prompt)

            turns = yield from round_of(spec, number, "refine", spec.participants, refine)
            latest.update((t.participant, t) for t in turns if t.ok)
            end, done = measure(spec, number, "refine", turns, early=number < spec.rounds)
            yield end
            if done:
                break
    final = vote([latest[p.name] for p in spec.participants if p.name in latest])
    context = "The participants' latest answers:\n\n" + answers_block(latest.values())
    if critiques:
        context += "\n\nTheir critiques:\n\n" + answers_block(t for t in critiques if t.ok)
    return (yield from synthesis(spec, number + 1, context, fallback=final))
