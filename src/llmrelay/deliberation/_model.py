"""What a deliberation is: its participants, its strategy, its turn mode and its limits.

Everything here is plain data, checked when it is built (a ``ConfigError`` keyed ``deliberation``,
before any model is called): a strategy that needs a chair and has none, two participants with one name, a limit that is
already spent (``max_calls=0``, or fewer calls than the first round needs), an answer pattern that does not compile.

A participant's ``model`` is a model string (resolved by ``ProviderRegistry.provider``, so it gets the
configured stack: retries, a ``[fallbacks]`` chain, rate limits, budgets), a ``Provider`` used as it is,
or a sequence of them: the participant's own fallback chain. A chain moves on when a model fails before
its first event (as ``Fallback`` does) *and* when its stream breaks half-way; the broken attempt's text
is kept apart, marked partial, and never joined to the next model's answer.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from .._provider import Provider
from ..config import ConfigError
from ..cost import PriceOverride

__all__ = [
    "DEFAULT_ANSWER_PATTERN",
    "Deliberation",
    "Limits",
    "Participant",
    "StopReason",
    "TurnMode",
]

ModelSpec = str | Provider
TurnMode = Literal["parallel", "sequential"]
StrategyName = Literal["rounds", "debate", "council"]
Aggregator = Literal["vote", "synthesis"]

DEFAULT_ANSWER_PATTERN = r"(?im)^[\s*_#>-]*(?:final\s+)?answer\s*[:=]\s*(.+?)\s*$"
"""The last line ``Answer: X`` (or ``Final answer: X``, in bold or a list item) gives the answer ``X``."""

DEFAULT_ANSWER_INSTRUCTION = "End your reply with one line of the form `Answer: <your final answer>`."


def _invalid(message: str) -> ConfigError:
    """The ``ConfigError`` for a deliberation set up wrong (found before any model is called), keyed
    ``deliberation`` so it reads ``deliberation: <what to change>`` and the CLI's exit codes apply."""
    return ConfigError(message, key="deliberation")


class StopReason(enum.StrEnum):
    """Why a deliberation ended (``DeliberationDone.stop``)."""

    COMPLETED = "completed"
    """Every round the strategy planned ran."""
    CONVERGED = "converged"
    """The participants agreed (``Deliberation.agreement``) before the last round."""
    MAX_TOKENS = "max_tokens"
    """The token limit was reached; no further step was started."""
    MAX_COST = "max_cost"
    """The cost limit was reached (priced turns only; see ``Tally.cost_unknown``)."""
    MAX_CALLS = "max_calls"
    """The next step would have made more calls than allowed."""
    DEADLINE = "deadline"
    """The wall-clock deadline passed; turns in flight were cancelled and recorded as such."""
    PARTICIPANT_FAILED = "participant_failed"
    """A turn failed and ``stop_on_failure`` is set."""


@dataclass(frozen=True, slots=True)
class Participant:
    """One voice: a name (unique), its model(s), an optional persona (system prompt) and per-turn token cap."""

    name: str
    model: ModelSpec | Sequence[ModelSpec]
    persona: str | None = None
    """The system prompt giving this participant its role (``"You are a careful skeptic."``)."""
    max_tokens: int | None = None
    """The most output tokens of each of its turns (``Deliberation.max_tokens`` when ``None``)."""

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise _invalid("a participant needs a non-empty name")
        models = self.models
        if not models:
            raise _invalid(f"participant {self.name!r} needs a model (a model string or a Provider)")
        for model in models:
            if not isinstance(model, str | Provider) or (isinstance(model, str) and not model.strip()):
                raise _invalid(f"participant {self.name!r}: {model!r} is not a model string or a Provider")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise _invalid(f"participant {self.name!r}: max_tokens must be at least 1")

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        """The chain of models to try, first to last (one for a single model)."""
        model = self.model
        return (model,) if isinstance(model, str | Provider) else tuple(model)

    @property
    def system(self) -> str | None:
        """The persona, the system prompt of each of its turns."""
        return self.persona


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on the whole deliberation; a step is started only while every cap has room.

    ``max_tokens`` counts every token reported (prompt and output); the output cap of each turn is also
    clipped to what is left of it, split among the step's turns. ``max_cost`` compares the sum of the
    priced turns (an unpriced turn is counted in ``Tally.cost_unknown``, never as 0). ``deadline`` is
    seconds of wall-clock time from the start: when it passes, turns in flight are cancelled.
    """

    max_tokens: int | None = None
    max_cost: Decimal | None = None
    max_calls: int | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise _invalid(f"max_tokens must be at least 1, got {self.max_tokens}: the budget is spent")
        if self.max_cost is not None and not self.max_cost > 0:
            raise _invalid(f"max_cost must be more than 0, got {self.max_cost}: the budget is spent")
        if self.max_calls is not None and self.max_calls < 1:
            raise _invalid(f"max_calls must be at least 1, got {self.max_calls}: the budget is spent")
        if self.deadline is not None and not self.deadline > 0:
            raise _invalid(f"deadline must be positive seconds, got {self.deadline}")


_NEEDS_CHAIR = {"rounds": "writes the synthesis", "council": "writes the final answer"}


@dataclass(frozen=True, slots=True)
class Deliberation:
    """A question, participants, a strategy and its settings; run it with ``deliberate``.

    - ``strategy``: ``rounds`` (draft, critique, refinement, synthesis by ``chair``), ``debate``
      (everyone revises after seeing the others; ``aggregate`` decides the final answer) or ``council``
      (independent answers, anonymised peer ranking, Borda count, ``chair`` writes the final answer).
    - ``rounds``: participant rounds (``rounds`` counts draft and critique, so at least 2; ``debate``
      counts its answer rounds; ``council`` always has 2 and ignores it).
    - ``mode``: ``parallel`` (everyone answers the same transcript at once) or ``sequential`` (each
      turn sees every turn before it, this round's too).
    - ``agreement``: stop early once this share of the answers agree (1.0: unanimity; ``None``: never).
    - ``answer_pattern``: a regular expression whose group 1 (else whole match) is a reply's final
      answer, for votes and agreement; the last match in a reply counts.
    - ``prices``: ``PriceOverride`` per ``PROVIDER`` or ``PROVIDER/MODEL`` for ``cost_of``.
    - ``seed``: the seed for the council's label shuffles (reproducible transcripts).
    """

    question: str
    participants: Sequence[Participant]
    strategy: StrategyName = "debate"
    rounds: int = 2
    mode: TurnMode = "parallel"
    chair: Participant | None = None
    aggregate: Aggregator = "vote"
    agreement: float | None = 1.0
    limits: Limits = field(default_factory=Limits)
    max_tokens: int | None = None
    """The default output cap of each turn (a participant's own ``max_tokens`` wins)."""
    temperature: float | None = None
    stop_on_failure: bool = False
    answer_pattern: str = DEFAULT_ANSWER_PATTERN
    answer_instruction: str = DEFAULT_ANSWER_INSTRUCTION
    prices: Mapping[str, PriceOverride] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "participants", tuple(self.participants))
        if not self.question.strip():
            raise _invalid("the question is empty")
        if not self.participants:
            raise _invalid("a deliberation needs at least one participant")
        names = [p.name for p in self.participants] + ([self.chair.name] if self.chair else [])
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice and not (self.chair and twice == [self.chair.name] and self.chair in self.participants):
            raise _invalid(f"participant names must be unique; repeated: {', '.join(twice)}")
        if self.strategy not in ("rounds", "debate", "council"):
            raise _invalid(f"unknown strategy {self.strategy!r}: use rounds, debate or council")
        if self.mode not in ("parallel", "sequential"):
            raise _invalid(f"unknown mode {self.mode!r}: use parallel or sequential")
        needs = _NEEDS_CHAIR.get(self.strategy) or ("writes the synthesis" if self.aggregate == "synthesis" else None)
        if needs and self.chair is None:
            raise _invalid(f"strategy {self.strategy!r} needs a chair (the model that {needs}): set chair=")
        minimum = 2 if self.strategy == "rounds" else 1
        if self.rounds < minimum:
            raise _invalid(f"strategy {self.strategy!r} needs rounds >= {minimum}, got {self.rounds}")
        if self.strategy == "council" and len(self.participants) < 2:
            raise _invalid("a council needs at least two participants (each ranks the others)")
        first = len(self.participants) if self.mode == "parallel" else 1
        if self.limits.max_calls is not None and self.limits.max_calls < first:
            raise _invalid(
                f"max_calls={self.limits.max_calls} is fewer than the {first} calls of the first round: the budget "
                "is spent before anything could run"
            )
        if self.agreement is not None and not 0 < self.agreement <= 1:
            raise _invalid(f"agreement must be in (0, 1] or None, got {self.agreement}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise _invalid(f"max_tokens must be at least 1, got {self.max_tokens}")
        try:
            re.compile(self.answer_pattern)
        except re.error as exc:
            raise _invalid(f"answer_pattern does not compile: {exc}") from None

    @property
    def seats(self) -> tuple[Participant, ...]:
        """Everyone who may take a turn: the participants, then the chair (when not one of them)."""
        chair = self.chair
        extra = (chair,) if chair is not None and chair not in self.participants else ()
        return (*self.participants, *extra)
