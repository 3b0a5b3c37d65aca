"""``llmrelay deliberate``: several models discuss one question in rounds (``llmrelay.deliberation``).

::

    llmrelay deliberate "Is 1001 prime?"                                   # three personas, default model
    llmrelay deliberate "Q" -p "skeptic=anthropic/claude-sonnet-4-5" -p "builder=openai/gpt-4o-mini" \\
        --strategy debate --rounds 2 --mode parallel --synthesize-with openai/gpt-4o --max-tokens 300 -o debate.md
    llmrelay deliberate --name review "Q"                                  # a [deliberations.review] table
    llmrelay deliberate --json "Q"                                         # the event stream, one JSON per line

Who takes part, first match wins:

1. ``-p NAME=MODEL`` (repeatable; ``NAME=MODEL1,MODEL2`` is the participant's own fallback chain);
2. ``--name NAME``: the participants of ``[deliberations.NAME]`` in llmrelay.toml;
3. ``[deliberations.default]``, when the file has one;
4. ``--agents N`` personas (solver, skeptic, pragmatist, ...; 3 by default) on ``-m MODEL``, else on the
   default model: with no key and no file at all, the embedded local model (``local/smollm2``), whose
   turns are then capped at 160 tokens unless ``--max-tokens`` says otherwise.

Every other option overrides the named table's value (``-p`` replaces its participants). ``--persona
NAME=TEXT`` gives one participant (or the chair) its system prompt.

Everything is checked before any model is called, each fault one line on stderr: a malformed ``-p``, no
participants, a strategy that needs a chair (``rounds``, ``council``, or ``--aggregate synthesis``) with
none, a limit already spent (``--max-cost 0``, ``--max-calls`` under the first round's calls), an ``-o``
that is neither ``.md`` nor ``.json`` (exit 2, or 3 when the fault is in llmrelay.toml); an unknown
provider (exit 3); a missing key (exit 4).

Output: ``--json`` prints every event (``llmrelay._codec``), one per line, each naming its
``participant`` where it has one; on a terminal (with ``rich``: ``pip install 'llmrelay[cli]'``) a live
view shows one panel per participant as its text streams, the round and the running cost; otherwise (or
with ``--plain``) each finished turn is printed as ``[round 1] skeptic: <text>``. The totals go to stderr.
``-o FILE.md`` / ``-o FILE.json`` writes the transcript (Markdown, or JSON that ``Transcript.loads``
reads back), also after Ctrl-C (what was said until then).

Exit code: 0 when the deliberation ran (failed turns are in the transcript; a limit that stopped it is in
the totals line); when every turn failed, the exit code of the first turn's error (4 for a rejected key,
5 for an unreachable provider, ...); 130 on Ctrl-C, which stops every stream in flight at once.
"""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..config import Config, DeliberationConfig, ParticipantConfig
    from ..deliberation import Deliberation, Transcript

__all__ = ["DEFAULT_PERSONAS", "add_parser", "run_deliberate"]

DEFAULT_PERSONAS: tuple[tuple[str, str], ...] = (
    ("solver", "You solve problems carefully, step by step, and check each step."),
    ("skeptic", "You look for mistakes in every argument, your own included, and say plainly what is wrong."),
    ("pragmatist", "You give the simplest answer that is correct and explain it in a few sentences."),
)
"""The personas of ``--agents N`` (cycled, numbered after the third)."""

LOCAL_TURN_TOKENS = 160
"""The turn cap of the default personas on the built-in local model, unless ``--max-tokens`` is given."""

_NAME = re.compile(r"^[\w.-]+$")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``deliberate`` on the ``llmrelay`` subcommand parser."""
    p = sub.add_parser(
        "deliberate",
        parents=[common],
        help="several models discuss a question in rounds; streamed live",
        description="Several models (or personas) discuss one question in rounds: debate, rounds or council.",
        epilog='examples: llmrelay deliberate "Is 1001 prime?"  |  llmrelay deliberate -p skeptic=anthropic/'
        'claude-sonnet-4-5 -p builder=openai/gpt-4o-mini --synthesize-with openai/gpt-4o -o debate.md "Q"  |  '
        'llmrelay deliberate --name review "Q" (a [deliberations.review] table in llmrelay.toml)',
    )
    p.add_argument("question", nargs="*", help="the question (stdin, when piped, is appended)")
    who = p.add_argument_group("participants")
    who.add_argument(
        "-p",
        "--participant",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="a participant (repeatable); NAME=MODEL1,MODEL2 gives it its own fallback chain",
    )
    who.add_argument("--name", help="run the [deliberations.NAME] table of llmrelay.toml")
    who.add_argument("-m", "--model", help="the model of the default personas (without -p)")
    who.add_argument("--agents", type=int, metavar="N", help="how many default personas (without -p; default 3)")
    who.add_argument(
        "--persona", action="append", default=[], metavar="NAME=TEXT", help="a participant's system prompt"
    )
    how = p.add_argument_group("strategy")
    how.add_argument("--strategy", choices=("debate", "rounds", "council"), help="default: debate")
    how.add_argument("--rounds", type=int, metavar="N", help="participant rounds (default 2)")
    how.add_argument("--mode", choices=("parallel", "sequential"), help="default: parallel")
    how.add_argument(
        "--chair",
        "--synthesize-with",
        dest="chair",
        metavar="MODEL",
        help="the model (or NAME=MODEL) that writes the final answer; with debate, its synthesis is the answer",
    )
    how.add_argument("--aggregate", choices=("vote", "synthesis"), help="debate's final answer (default: vote)")
    how.add_argument("--agreement", metavar="SHARE|off", help="stop early at this share agreeing (default 1.0)")
    how.add_argument("--answer-pattern", dest="answer_pattern", metavar="REGEX", help="where a reply's answer is")
    how.add_argument("--temperature", type=float, metavar="T", help="sampling temperature of every turn")
    how.add_argument(
        "--seed", type=int, metavar="N", default=0, help="seed of the council's label shuffles (default 0)"
    )
    how.add_argument("--stop-on-failure", action="store_true", dest="stop_on_failure", help="stop at a failed turn")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-tokens", type=int, metavar="N", dest="max_tokens", help="most output tokens of each turn")
    lim.add_argument("--max-total-tokens", type=int, metavar="N", dest="max_total_tokens", help="most tokens in all")
    lim.add_argument("--max-cost", dest="max_cost", metavar="USD", help="most cost in all (priced turns)")
    lim.add_argument("--max-calls", type=int, metavar="N", dest="max_calls", help="most model calls in all")
    lim.add_argument("--deadline", type=float, metavar="SECONDS", help="wall-clock limit of the whole run")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the event stream, one JSON object per line")
    out.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    out.add_argument("-o", "--output", metavar="FILE", help="write the transcript to FILE.md or FILE.json")
    p.set_defaults(handler="deliberate")


# --- from the command line to a Deliberation ------------------------------------------------------------


def _usage(message: str) -> Exception:
    from . import UsageError

    return UsageError(message)


def _models(text: str, flag: str, whole: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(","))
    for model in models:
        if not model or any(ch.isspace() for ch in model) or model.startswith("/"):
            raise _usage(f"{flag} {whole!r}: {model!r} is not a model string (like openai/gpt-4o-mini)")
    return models


def _participant(text: str, flag: str = "-p") -> ParticipantConfig:
    from ..config import ParticipantConfig

    name, sep, model = text.partition("=")
    name = name.strip()
    if not sep or not name or not model.strip():
        raise _usage(f"{flag} {text!r}: expected NAME=MODEL, like skeptic=openai/gpt-4o-mini")
    if not _NAME.match(name):
        raise _usage(f"{flag} {text!r}: a participant name is letters, digits, '_', '-' or '.'")
    return ParticipantConfig(name, _models(model, flag, text))


def _chair(text: str) -> ParticipantConfig:
    from ..config import ParticipantConfig

    if "=" in text:
        return _participant(text, "--chair")
    return ParticipantConfig("chair", _models(text, "--chair", text))


def _agreement(text: str | None) -> float | Literal[False] | None:
    if text is None:
        return None
    if text.strip().lower() in ("off", "none", "never", "false"):
        return False
    try:
        share = float(text)
    except ValueError:
        raise _usage(f"--agreement {text!r}: expected a share in (0, 1] or off") from None
    if not 0 < share <= 1:
        raise _usage(f"--agreement {text!r}: expected a share in (0, 1] (1 is unanimity) or off")
    return share


def _money(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise _usage(f"--max-cost {text!r}: expected an amount like 0.05") from None
    if not amount.is_finite():
        raise _usage(f"--max-cost {text!r}: expected an amount like 0.05")
    return amount


def _overrides(args: argparse.Namespace) -> DeliberationConfig:
    from ..config import DeliberationConfig, DeliberationLimitsConfig

    return DeliberationConfig(
        participants=tuple(_participant(text) for text in args.participant),
        strategy=args.strategy,
        mode=args.mode,
        rounds=args.rounds,
        chair=_chair(args.chair) if args.chair else None,
        aggregate=args.aggregate,
        agreement=_agreement(args.agreement),
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        answer_pattern=args.answer_pattern,
        stop_on_failure=True if args.stop_on_failure else None,
        limits=DeliberationLimitsConfig(
            max_tokens=args.max_total_tokens,
            max_cost=_money(args.max_cost),
            max_calls=args.max_calls,
            deadline=args.deadline,
        ),
    )


def _personas(count: int, model: str) -> tuple[ParticipantConfig, ...]:
    from ..config import ParticipantConfig

    out = []
    for i in range(count):
        name, persona = DEFAULT_PERSONAS[i % len(DEFAULT_PERSONAS)]
        suffix = f"-{i // len(DEFAULT_PERSONAS) + 1}" if i >= len(DEFAULT_PERSONAS) else ""
        out.append(ParticipantConfig(f"{name}{suffix}", (model,), persona=persona))
    return tuple(out)


def _with_personas(config: DeliberationConfig, personas: list[str]) -> DeliberationConfig:
    from dataclasses import replace

    people = list(config.participants)
    chair = config.chair
    for text in personas:
        name, sep, persona = text.partition("=")
        if not sep or not persona.strip():
            raise _usage(f"--persona {text!r}: expected NAME=TEXT, like skeptic='You doubt everything.'")
        name = name.strip()
        found = False
        for i, person in enumerate(people):
            if person.name == name:
                people[i] = replace(person, persona=persona.strip())
                found = True
        if chair is not None and chair.name == name:
            chair = replace(chair, persona=persona.strip())
            found = True
        if not found:
            names = ", ".join(p.name for p in people)
            raise _usage(f"--persona {text!r}: no participant is named {name!r} (they are: {names})")
    return replace(config, participants=tuple(people), chair=chair)


def build_spec(args: argparse.Namespace, question: str, config: Config, registry: Any) -> Deliberation:
    """The ``Deliberation`` the command line and the configuration describe (see the module docstring);
    ``UsageError`` or ``ConfigError`` when they describe none."""
    from dataclasses import replace

    from ..config import ConfigError, DeliberationConfig
    from ..deliberation import from_config, merge_config
    from ..registry import price_overrides

    override = _overrides(args)
    if override.participants and (args.model or args.agents is not None):
        raise _usage("-m and --agents set the default personas; with -p, give each participant's model in -p")
    name: str | None = args.name
    if name is not None and name not in config.deliberations:
        where = str(config.path) if config.path else "the configuration (no llmrelay.toml was found)"
        known = ", ".join(config.deliberations) or "none"
        raise ConfigError(f"no [deliberations.{name}] in {where}; the configured ones: {known}")
    if name is None and not override.participants and not args.model and args.agents is None:
        name = "default" if "default" in config.deliberations else None
    if name is not None:
        merged = merge_config(config.deliberations[name], override)
    else:
        merged = override
        count = 3 if args.agents is None else args.agents
        if not merged.participants and count > 0:
            ref = registry.resolve(args.model)
            merged = replace(merged, participants=_personas(count, str(ref)))
            if ref.source == "builtin":
                from ..api import _notice_once

                _notice_once()
                if merged.max_tokens is None:
                    merged = replace(merged, max_tokens=LOCAL_TURN_TOKENS)
    merged = _with_personas(merged, args.persona)
    if not isinstance(merged, DeliberationConfig):  # pragma: no cover - replace() keeps the type
        raise TypeError(merged)
    try:
        return from_config(
            question,
            merged,
            prices=price_overrides(config),
            name=name,
            file=config.path,
            seed=args.seed,
        )
    except ConfigError as exc:
        if name is not None:
            raise
        raise _usage(str(exc)) from None


# --- running ----------------------------------------------------------------------------------------------


def _question(args: argparse.Namespace) -> str:
    import sys

    text = " ".join(args.question).strip()
    piped = ""
    if sys.stdin is not None and not sys.stdin.isatty():
        piped = sys.stdin.read().strip()
    question = f"{text}\n\n{piped}" if text and piped else text or piped
    if not question:
        raise _usage('no question: give one as an argument (llmrelay deliberate "Is 1001 prime?") or pipe it')
    return question


def _output_path(args: argparse.Namespace) -> Any:
    from pathlib import Path

    if not args.output:
        return None
    path = Path(args.output).expanduser()
    if path.suffix.lower() not in (".md", ".json"):
        raise _usage(f"-o {args.output}: the transcript is written as .md (Markdown) or .json; name the file so")
    if not path.parent.is_dir():
        raise _usage(f"-o {args.output}: the folder {path.parent} does not exist")
    return path


def _write_transcript(path: Any, transcript: Transcript) -> None:
    text = transcript.dumps() + "\n" if path.suffix.lower() == ".json" else transcript.to_markdown()
    path.write_text(text, encoding="utf-8")


def run_deliberate(args: argparse.Namespace) -> int:
    import asyncio

    from ..api import default_config
    from ..registry import ProviderRegistry

    question = _question(args)
    output = _output_path(args)
    config = default_config(getattr(args, "config", None))
    registry = ProviderRegistry(config)
    try:
        spec = build_spec(args, question, config, registry)
        return asyncio.run(_guarded(args, spec, registry, output))
    except KeyboardInterrupt:
        if args.json:
            from ._chat import _write_line
            from ._format import json_line

            _write_line(json_line({"type": "error", "kind": "interrupted", "message": "interrupted (Ctrl-C)"}))
        raise
    except Exception as exc:
        from .._errors import LlmError

        if args.json and isinstance(exc, LlmError):
            _json_error(exc)
        raise


def _json_error(exc: Exception) -> None:
    from .._errors import LlmError
    from . import describe_error
    from ._chat import _write_line
    from ._format import error_json

    assert isinstance(exc, LlmError)
    code, _ = describe_error(exc)
    _write_line(error_json(exc, code))


async def _guarded(args: argparse.Namespace, spec: Deliberation, registry: Any, output: Any) -> int:
    async with registry:
        return await _run(args, spec, registry, output)


async def _run(args: argparse.Namespace, spec: Deliberation, registry: Any, output: Any) -> int:
    import sys

    from ..deliberation import deliberate, model_label
    from . import EXIT_OK, describe_error
    from ._deliberate_view import pick_view

    run = deliberate(spec, registry=registry)
    run.resolve()  # an unknown provider, a missing key: raised here, before any model is called or shown
    seats = [(p.name, model_label(p.models[0])) for p in spec.seats]
    view = pick_view(
        as_json=bool(args.json), plain=bool(args.plain), strategy=spec.strategy, seats=seats, question=spec.question
    )
    try:
        async with run:
            async for event in run:
                view.show(event)
    finally:
        view.close()
        if output is not None:
            _write_transcript(output, run.transcript)
    turns = run.transcript.turns
    if turns and not any(t.ok for t in turns):
        first = next((t.error for t in turns if t.error is not None), None)
        if first is not None:
            code, line = describe_error(first)
            if args.json:
                _json_error(first)
            print(
                line.replace("llmrelay: error: ", f"llmrelay: error: every turn failed ({len(turns)}); the first: ", 1),
                file=sys.stderr,
            )
            return code
    return EXIT_OK
