"""Deliberation: several models, each through its own provider stack, discuss one question in rounds.

The pieces, one concern each:

- ``_model``: ``Participant``, ``Limits``, ``Deliberation`` (checked when built: a ``ConfigError``
  before any model is called) and ``StopReason``.
- ``_steps``: the sans-I/O protocol. A strategy is a generator that yields ``RoundBegin``, ``Ask``
  (turn requests), ``RoundEnd`` (agreement) and ``Report`` (an aggregate) and receives the ``Turn`` of
  each request; it returns the final ``Aggregate``. Strategies, one module each: ``_rounds`` (draft,
  critique, refinement, synthesis), ``_debate`` (revise after seeing the others; vote or synthesis),
  ``_council`` (anonymised peer ranking, Borda, chair).
- ``_answers``: answer extraction, agreement, majority vote, Borda points (pure functions).
- ``_turn``: one turn through a participant's provider chain, with partial text kept apart.
- ``_runner``: ``deliberate(spec)`` drives a strategy as one async event stream (parallel turns as
  tasks, a bounded queue for backpressure, limits, deadline, cancellation).
- ``_from_config``: ``from_config(question, DeliberationConfig)``, a ``[deliberations.NAME]`` table as a
  ``Deliberation`` (``merge_config`` lays command-line options over one).
- ``_events`` / ``_transcript``: the events (frozen dataclasses, tagged JSON via ``llmrelay._codec``) and
  the ``Transcript`` (Markdown, JSON that reloads equal).

Use::

    spec = Deliberation(
        "Is 1001 prime?",
        [Participant("skeptic", "anthropic/claude-sonnet-4-5", persona="You doubt everything."),
         Participant("builder", "openai/gpt-4o-mini")],
        strategy="debate", rounds=2, limits=Limits(max_cost=Decimal("0.05"), deadline=120),
    )
    async with deliberate(spec, registry=registry) as run:
        async for event in run:          # RoundStarted, TurnStarted, TurnDelta, TurnFinished, ...
            print(llmrelay._codec.dumps(event))
    print(run.transcript.to_markdown())
"""

from __future__ import annotations

from ._answers import agreement, borda, extract_answer, normalise, vote
from ._council import council
from ._debate import debate
from ._events import (
    Aggregate,
    Agreement,
    DeliberationDone,
    DeliberationEvent,
    Partial,
    RoundFinished,
    RoundStarted,
    Tally,
    Turn,
    TurnDelta,
    TurnFinished,
    TurnStarted,
    TurnStatus,
)
from ._from_config import from_config, merge_config
from ._model import DEFAULT_ANSWER_PATTERN, Deliberation, Limits, Participant, StopReason
from ._rounds import rounds
from ._runner import STRATEGIES, DeliberationRun, deliberate, model_label, run_deliberation
from ._steps import Ask, Report, RoundBegin, RoundEnd, Strategy, TurnRequest
from ._tally import tally
from ._transcript import Seat, Transcript

__all__ = [
    "DEFAULT_ANSWER_PATTERN",
    "STRATEGIES",
    "Aggregate",
    "Agreement",
    "Ask",
    "Deliberation",
    "DeliberationDone",
    "DeliberationEvent",
    "DeliberationRun",
    "Limits",
    "Partial",
    "Participant",
    "Report",
    "RoundBegin",
    "RoundEnd",
    "RoundFinished",
    "RoundStarted",
    "Seat",
    "StopReason",
    "Strategy",
    "Tally",
    "Transcript",
    "Turn",
    "TurnDelta",
    "TurnFinished",
    "TurnRequest",
    "TurnStarted",
    "TurnStatus",
    "agreement",
    "borda",
    "council",
    "debate",
    "deliberate",
    "extract_answer",
    "from_config",
    "merge_config",
    "model_label",
    "normalise",
    "rounds",
    "run_deliberation",
    "tally",
    "vote",
]
