"""``debate``: everyone answers; then, each round, everyone sees the others' latest answers and revises.

Round 1 answers the question (in sequential mode each participant also sees the answers given before
it). Rounds 2..``rounds`` show each participant its own latest answer and the others' (this round's
where already given, in sequential mode) and ask it to revise. After every round the agreement of the
answers is measured; once it reaches ``Deliberation.agreement`` the debate stops early. The final
answer is the majority vote over each participant's latest answer (``aggregate="vote"``), or the
chair's synthesis of them (``aggregate="synthesis"``; the vote if the chair fails).
"""

from __future__ import annotations

from ._answers import vote
from ._events import Turn
from ._model import Deliberation, Participant
from ._steps import Strategy, TurnRequest, answers_block, measure, question_prompt, round_of, synthesis

__all__ = ["debate"]


def _revise_prompt(spec: Deliberation, own: Turn | None, others: str) -> str:
    mine = own.text.strip() if own is not None else "(you gave no answer last round)"
    return (
        f"Question: {spec.question}\n\nYour previous answer:\n{mine}\n\n"
        f"The other participants' latest answers:\n\n{others}\n\n"
        "Consider their reasoning. Keep your answer if you still think it is right, or revise it. "
        f"{spec.answer_instruction}"
    )


def debate(spec: Deliberation) -> Strategy:
    """The ``debate`` strategy (see the module docstring)."""
    latest: dict[str, Turn] = {}
    for number in range(1, spec.rounds + 1):
        phase = "answer" if number == 1 else "revise"

        def build(seat: Participant, so_far: tuple[Turn, ...], phase: str = phase, number: int = number) -> TurnRequest:
            seen = dict(latest)
            seen.update((t.participant, t) for t in so_far if t.ok)
            others = answers_block(seen.values(), exclude=seat.name)
            if not others:
                return TurnRequest(seat, number, phase, question_prompt(spec))
            if number == 1:
                prompt = f"{question_prompt(spec)}\n\nAnswers given so far:\n\n{others}"
                return TurnRequest(seat, number, phase, prompt)
            return TurnRequest(seat, number, phase, _revise_prompt(spec, latest.get(seat.name), others))

        turns = yield from round_of(spec, number, phase, spec.participants, build)
        latest.update((t.participant, t) for t in turns if t.ok)
        end, done = measure(spec, number, phase, turns, early=number < spec.rounds)
        yield end
        if done:
            break
    final = vote([latest[p.name] for p in spec.participants if p.name in latest])
    if spec.aggregate != "synthesis":
        return final
    context = "The participants' final answers:\n\n" + answers_block(latest.values())
    return (yield from synthesis(spec, number + 1, context, fallback=final))
