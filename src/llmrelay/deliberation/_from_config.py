"""A ``Deliberation`` from a ``[deliberations.NAME]`` table (``llmrelay.config.DeliberationConfig``).

The table's unset fields take the library's defaults; a participant's persona falls back to the table's
``system``; a chair with a ``debate`` makes the final answer its synthesis unless ``aggregate`` says
``vote``. A combination the ``Deliberation`` rejects is re-raised keyed by the table
(``llmrelay.toml: deliberations.review: strategy 'rounds' needs a chair ...``) when ``name`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import ConfigError, DeliberationConfig, ParticipantConfig
from ..cost import PriceOverride
from ._model import Deliberation, Limits, Participant

__all__ = ["from_config", "merge_config"]


def _participant(entry: ParticipantConfig, system: str | None) -> Participant:
    models = entry.models[0] if len(entry.models) == 1 else entry.models
    return Participant(entry.name, models, persona=entry.persona or system, max_tokens=entry.max_tokens)


def merge_config(base: DeliberationConfig, override: DeliberationConfig) -> DeliberationConfig:
    """``base`` with every field ``override`` sets (not ``None``; ``participants`` when non-empty; each
    limit on its own) taking its place: how command-line options apply over a named table."""
    fields: dict[str, Any] = {}
    for name in DeliberationConfig.__dataclass_fields__:
        if name in ("participants", "limits"):
            continue
        value = getattr(override, name)
        if value is not None:
            fields[name] = value
    if override.participants:
        fields["participants"] = override.participants
    limit_fields = {n: getattr(override.limits, n) for n in ("max_tokens", "max_cost", "max_calls", "deadline")}
    fields["limits"] = replace(base.limits, **{n: v for n, v in limit_fields.items() if v is not None})
    return replace(base, **fields)


def from_config(
    question: str,
    config: DeliberationConfig,
    *,
    prices: Mapping[str, PriceOverride] | None = None,
    name: str | None = None,
    file: str | Path | None = None,
    seed: int = 0,
) -> Deliberation:
    """The ``Deliberation`` of ``question`` that ``config`` describes (see the module docstring)."""
    try:
        chair = _participant(config.chair, None) if config.chair is not None else None
        strategy = config.strategy or "debate"
        aggregate = config.aggregate or ("synthesis" if chair is not None and strategy == "debate" else "vote")
        settings: dict[str, Any] = {}
        if config.rounds is not None:
            settings["rounds"] = config.rounds
        if config.mode is not None:
            settings["mode"] = config.mode
        if config.agreement is not None:
            settings["agreement"] = None if config.agreement is False else config.agreement
        if config.answer_pattern is not None:
            settings["answer_pattern"] = config.answer_pattern
        if config.stop_on_failure is not None:
            settings["stop_on_failure"] = config.stop_on_failure
        limits = config.limits
        return Deliberation(
            question,
            [_participant(p, config.system) for p in config.participants],
            strategy=strategy,
            chair=chair,
            aggregate=aggregate,
            limits=Limits(
                max_tokens=limits.max_tokens,
                max_cost=limits.max_cost,
                max_calls=limits.max_calls,
                deadline=limits.deadline,
            ),
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            prices=dict(prices or {}),
            seed=seed,
            **settings,
        )
    except ConfigError as exc:
        if name is None:
            raise
        message = str(exc)
        prefix = f"{exc.key}: " if exc.key else ""
        message = message.removeprefix(prefix)
        raise ConfigError(message, file=file, key=f"deliberations.{name}") from None
