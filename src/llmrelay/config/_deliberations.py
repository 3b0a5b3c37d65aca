"""The ``[deliberations.NAME]`` tables: named deliberations that ``llmrelay deliberate --name NAME`` runs.

::

    [deliberations.review]
    participants = [
        "skeptic=anthropic/claude-sonnet-4-5",                 # NAME=MODEL
        { name = "builder", model = "openai/gpt-4o-mini", persona = "You build things.", max_tokens = 400 },
        { name = "safe", model = ["groq/llama-3.3-70b-versatile", "local/smollm2"] },   # its own fallback chain
    ]
    strategy = "debate"          # rounds | debate | council (default: debate)
    mode = "parallel"            # parallel | sequential (default: parallel)
    rounds = 2                   # default: 2
    chair = "openai/gpt-4o"      # or a table like a participant's; "judge" is accepted as the older name
    aggregate = "synthesis"      # vote | synthesis (debate only; default: vote, synthesis when a chair is set)
    agreement = 1.0              # stop early at this share of agreeing answers; false: never stop early
    max_tokens = 300             # each turn's output cap (a participant's own max_tokens wins)
    temperature = 0.7
    system = "Be brief."         # the persona of participants that have none of their own
    answer_pattern = '(?im)^answer:\\s*(.+)$'
    stop_on_failure = false
    limits = { max_tokens = 20000, max_cost = 0.05, max_calls = 12, deadline = 120 }

``models = ["openai/gpt-4o-mini", ...]`` is the short form of ``participants``: one participant per model,
named after the model (``gpt-4o-mini``, then ``gpt-4o-mini-2`` for a repeat). Everything is checked here
with the key path (``deliberations.review.participants[1].model``), including what only makes sense
together: a strategy that needs a chair has one, names are unique, limits leave room for a first call.
What is left unset stays ``None`` so the command line can override it and the library's defaults apply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from ._check import Checker
from ._check import opt as _opt

__all__ = [
    "DeliberationConfig",
    "DeliberationLimitsConfig",
    "ParticipantConfig",
    "parse_deliberations",
    "parse_participant",
]

STRATEGIES = ("rounds", "debate", "council")
MODES = ("parallel", "sequential")
AGGREGATES = ("vote", "synthesis")
_NEEDS_CHAIR = ("rounds", "council")

_KEYS = (
    "participants",
    "models",
    "strategy",
    "mode",
    "rounds",
    "chair",
    "judge",
    "aggregate",
    "agreement",
    "max_tokens",
    "temperature",
    "system",
    "answer_pattern",
    "stop_on_failure",
    "limits",
)
_PARTICIPANT_KEYS = ("name", "model", "persona", "max_tokens")
_LIMIT_KEYS = ("max_tokens", "max_cost", "max_calls", "deadline")
_NAME = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True, slots=True)
class ParticipantConfig:
    """One participant (or the chair): a name, its model or fallback chain, a persona and a turn cap."""

    name: str
    models: tuple[str, ...]
    """One model string, or several: the participant's own fallback chain, tried in order."""
    persona: str | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class DeliberationLimitsConfig:
    """The ``limits`` of a deliberation (``None``: no cap on that axis)."""

    max_tokens: int | None = None
    max_cost: Decimal | None = None
    max_calls: int | None = None
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class DeliberationConfig:
    """One ``[deliberations.NAME]`` table (see the module docstring); ``None`` means "not set here"."""

    participants: tuple[ParticipantConfig, ...]
    strategy: Literal["rounds", "debate", "council"] | None = None
    mode: Literal["parallel", "sequential"] | None = None
    rounds: int | None = None
    chair: ParticipantConfig | None = None
    aggregate: Literal["vote", "synthesis"] | None = None
    agreement: float | Literal[False] | None = None
    """A share in (0, 1]; ``False``: never stop early; ``None``: the library's default (unanimity)."""
    max_tokens: int | None = None
    temperature: float | None = None
    system: str | None = None
    answer_pattern: str | None = None
    stop_on_failure: bool | None = None
    limits: DeliberationLimitsConfig = field(default_factory=DeliberationLimitsConfig)

    @property
    def models(self) -> tuple[str, ...]:
        """The first model of each participant, in order."""
        return tuple(p.models[0] for p in self.participants)


def _name(c: Checker, value: object, key: str) -> str:
    text = c.string(value, key).strip()
    if not _NAME.match(text):
        raise c.fail(key, f"a participant name is letters, digits, '_', '-' or '.', got {text!r}")
    return text


def _models(c: Checker, value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(c.model_string(m, f"{key}[{i}]") for i, m in enumerate(c.strings(value, key, nonempty=True)))
    return (c.model_string(value, key),)


def parse_participant(c: Checker, value: object, key: str, *, default_name: str | None = None) -> ParticipantConfig:
    """A participant from ``"NAME=MODEL"``, a table ``{name, model, persona, max_tokens}`` or, when
    ``default_name`` is given (the chair), a bare model string."""
    if isinstance(value, str):
        name, sep, model = value.partition("=")
        if not sep:
            if default_name is None:
                raise c.fail(key, f"expected NAME=MODEL (like 'skeptic=openai/gpt-4o-mini'), got {value!r}")
            return ParticipantConfig(default_name, (c.model_string(value, key),))
        return ParticipantConfig(_name(c, name, key), (c.model_string(model, key),))
    table = c.table(value, key)
    c.keys(table, key, _PARTICIPANT_KEYS)
    if "model" not in table:
        raise c.fail(f"{key}.model", "missing; expected a model string or a list of them (a fallback chain)")
    if "name" not in table and default_name is None:
        raise c.fail(f"{key}.name", "missing; each participant needs a name")
    return ParticipantConfig(
        name=_name(c, table["name"], f"{key}.name") if "name" in table else str(default_name),
        models=_models(c, table["model"], f"{key}.model"),
        persona=_opt(table, "persona", c.string, key),
        max_tokens=_opt(table, "max_tokens", lambda v, k: c.integer(v, k, maximum=1_000_000), key),
    )


def _from_models(c: Checker, value: object, key: str) -> tuple[ParticipantConfig, ...]:
    models = [c.model_string(m, f"{key}[{i}]") for i, m in enumerate(c.strings(value, key, nonempty=True))]
    out: list[ParticipantConfig] = []
    seen: dict[str, int] = {}
    for model in models:
        base = re.sub(r"[^\w.-]", "-", model.rsplit("/", 1)[-1]) or "participant"
        seen[base] = seen.get(base, 0) + 1
        out.append(ParticipantConfig(base if seen[base] == 1 else f"{base}-{seen[base]}", (model,)))
    return tuple(out)


def _choice(c: Checker, table: Mapping[str, Any], name: str, key: str, choices: tuple[str, ...]) -> Any:
    if name not in table:
        return None
    text = c.string(table[name], f"{key}.{name}")
    if text not in choices:
        raise c.fail(f"{key}.{name}", f"expected one of: {', '.join(choices)}; got {text!r}")
    return text


def _agreement(c: Checker, value: object, key: str) -> float | Literal[False]:
    if value is False:
        return False
    share = c.positive(value, key)
    if share > 1:
        raise c.fail(key, f"expected a share in (0, 1] (1.0: unanimity) or false, got {value}")
    return share


def _limits(c: Checker, raw: object, key: str) -> DeliberationLimitsConfig:
    from ._resilience import _money

    table = c.table(raw, key)
    c.keys(table, key, _LIMIT_KEYS)
    return DeliberationLimitsConfig(
        max_tokens=_opt(table, "max_tokens", c.integer, key),
        max_cost=_opt(table, "max_cost", lambda v, k: _money(c, v, k), key),
        max_calls=_opt(table, "max_calls", c.integer, key),
        deadline=_opt(table, "deadline", c.positive, key),
    )


def _deliberation(c: Checker, name: str, raw: object) -> DeliberationConfig:
    key = f"deliberations.{name}"
    table = c.table(raw, key)
    c.keys(table, key, _KEYS)
    if "participants" in table and "models" in table:
        raise c.fail(f"{key}.models", "give either participants or models (its short form), not both")
    if "participants" in table:
        raw_list = table["participants"]
        if not isinstance(raw_list, list) or not raw_list:
            raise c.fail(f"{key}.participants", "expected a non-empty list of NAME=MODEL strings or tables")
        people = tuple(parse_participant(c, p, f"{key}.participants[{i}]") for i, p in enumerate(raw_list))
    elif "models" in table:
        people = _from_models(c, table["models"], f"{key}.models")
    else:
        raise c.fail(f"{key}.participants", "missing; expected a list of NAME=MODEL strings or tables")
    names = [p.name for p in people]
    for i, person in enumerate(people):
        if names.index(person.name) != i:
            raise c.fail(f"{key}.participants[{i}].name", f"the name {person.name!r} is used twice")
    if "chair" in table and "judge" in table:
        raise c.fail(f"{key}.judge", "give either chair or judge (they mean the same), not both")
    chair_key = "chair" if "chair" in table else "judge"
    chair = (
        parse_participant(c, table[chair_key], f"{key}.{chair_key}", default_name="chair")
        if chair_key in table
        else None
    )
    if chair is not None and chair.name in names:
        raise c.fail(f"{key}.{chair_key}", f"the chair's name {chair.name!r} is a participant's; name it apart")
    strategy = _choice(c, table, "strategy", key, STRATEGIES)
    aggregate = _choice(c, table, "aggregate", key, AGGREGATES)
    if chair is None and (strategy in _NEEDS_CHAIR or aggregate == "synthesis"):
        why = f"strategy {strategy!r}" if strategy in _NEEDS_CHAIR else "aggregate 'synthesis'"
        raise c.fail(f"{key}.chair", f"{why} needs a chair (the model that writes the final answer): set chair")
    rounds = _opt(table, "rounds", lambda v, k: c.integer(v, k, maximum=100), key)
    if rounds is not None and rounds < 2 and strategy == "rounds":
        raise c.fail(f"{key}.rounds", f"strategy 'rounds' needs rounds >= 2 (draft and critique), got {rounds}")
    if strategy == "council" and len(people) < 2:
        raise c.fail(f"{key}.participants", "a council needs at least two participants (each ranks the others)")
    pattern = _opt(table, "answer_pattern", c.string, key)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise c.fail(f"{key}.answer_pattern", f"does not compile: {exc}") from None
    stop = table.get("stop_on_failure")
    if stop is not None and not isinstance(stop, bool):
        raise c.fail(f"{key}.stop_on_failure", "expected true or false")
    temperature = table.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, int | float)):
        raise c.fail(f"{key}.temperature", "expected a number")
    limits = _limits(c, table["limits"], f"{key}.limits") if "limits" in table else DeliberationLimitsConfig()
    mode = _choice(c, table, "mode", key, MODES)
    first = len(people) if (mode or "parallel") == "parallel" else 1
    if limits.max_calls is not None and limits.max_calls < first:
        raise c.fail(
            f"{key}.limits.max_calls",
            f"{limits.max_calls} is fewer than the {first} calls of the first round: nothing could run",
        )
    return DeliberationConfig(
        participants=people,
        strategy=strategy,
        mode=mode,
        rounds=rounds,
        chair=chair,
        aggregate=aggregate,
        agreement=_opt(table, "agreement", lambda v, k: _agreement(c, v, k), key),
        max_tokens=_opt(table, "max_tokens", lambda v, k: c.integer(v, k, maximum=1_000_000), key),
        temperature=float(temperature) if temperature is not None else None,
        system=_opt(table, "system", c.string, key),
        answer_pattern=pattern,
        stop_on_failure=stop,
        limits=limits,
    )


def parse_deliberations(c: Checker, raw: object) -> dict[str, DeliberationConfig]:
    """Every ``[deliberations.NAME]`` table, checked (see the module docstring)."""
    return {name: _deliberation(c, name, value) for name, value in c.table(raw, "deliberations").items()}
