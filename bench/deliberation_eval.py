"""What deliberation buys, measured: one answer vs self-consistency vs deliberation, at equal calls and tokens.

    .venv/bin/python bench/deliberation_eval.py                           # the embedded model, ~3 min on 2 cores
    .venv/bin/python bench/deliberation_eval.py --model openai/gpt-4o-mini --questions 50 --concurrency 8
    .venv/bin/python bench/deliberation_eval.py --scripted --p 0.6 --questions 2000   # checks the harness

Tasks are synthetic, seeded (``--seed``) and have known answers:

- ``arithmetic``: ``a+b*c+d-e*f`` with six integers in 0..30, as in the debate paper (Du et al. 2023,
  "Improving Factuality and Reasoning in Language Models through Multiagent Debate"); the answer is the
  last integer of a reply.
- ``choice``: "Is x * y greater than z?" with z within 15% of the product; the answer is the last
  ``yes`` / ``no`` of a reply.

Methods, every one run through the real deliberation runner (``llmrelay.deliberation``) on the same
questions, so the numbers come from the code users run:

- ``single``: one answer (1 call).
- ``sc@calls``: self-consistency, the majority of K = agents x rounds independent samples of one model:
  the same number of calls as the debate.
- ``debate``: ``--agents`` participants x ``--rounds`` rounds, final answer by majority vote. Its first
  round alone is a plain vote of ``--agents`` samples, reported as ``debate r1 vote``, which shows how much
  of the debate's result is voting.
- ``sc@tokens``: self-consistency with K chosen so its tokens per question match the debate's (the debate's
  later rounds carry the others' answers in their prompts, so at equal calls it spends more tokens).
- ``council`` (with ``--strategies debate,council``): independent answers, anonymised peer ranking, a
  chair (the same model).

Reported per task and method: accuracy with its 95% Wilson interval, calls and tokens per question, and
for the debate the flips across rounds (a participant's answer, and the round's majority, going
right -> wrong and wrong -> right). The last lines say what the numbers show and what they do not: a
difference whose intervals overlap is reported as no detectable difference, never as a gain.

``--scripted`` replaces the model with participants that answer right with probability ``--p`` and
otherwise give one fixed wrong answer, independently of the prompt: the vote over 3 must then come out at
3p^2 - 2p^3 (0.648 at p = 0.6) within sampling error, which checks the runner, the vote and the
statistics. Its token counts are word counts, not a model's. ``--json FILE`` writes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrelay import ChatRequest, ChatResponse, FinishReason, Usage
from llmrelay.deliberation import Deliberation, Participant, Transcript, normalise, run_deliberation
from llmrelay.registry import ProviderRegistry

ARITHMETIC_PATTERN = r"(-?\d[\d,]*)"
CHOICE_PATTERN = r"(?i)\b(yes|no)\b"
PERSONAS = (
    "You solve problems carefully, step by step, and check each step.",
    "You look for mistakes in every argument, your own included.",
    "You give the simplest correct answer and explain it briefly.",
)


# --- tasks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    kind: str
    question: str
    answer: str
    wrong: str
    """One fixed wrong answer (the scripted participants' mistake)."""
    pattern: str


def arithmetic(rng: random.Random) -> Task:
    a, b, c, d, e, f = (rng.randint(0, 30) for _ in range(6))
    value = a + b * c + d - e * f
    question = f"What is the result of {a}+{b}*{c}+{d}-{e}*{f}? Make sure to state your answer at the end."
    return Task("arithmetic", question, str(value), str(value + 1), ARITHMETIC_PATTERN)


def choice(rng: random.Random) -> Task:
    x, y = rng.randint(12, 99), rng.randint(12, 99)
    product = x * y
    z = product + rng.choice((-1, 1)) * rng.randint(1, max(2, product * 15 // 100))
    truth = "yes" if product > z else "no"
    question = f"Is {x} * {y} greater than {z}? Answer yes or no."
    return Task("choice", question, truth, "no" if truth == "yes" else "yes", CHOICE_PATTERN)


def tasks(count: int, seed: int, kinds: Sequence[str]) -> list[Task]:
    makers: dict[str, Callable[[random.Random], Task]] = {"arithmetic": arithmetic, "choice": choice}
    out: list[Task] = []
    for kind in kinds:
        rng = random.Random(f"{seed}:{kind}")
        out += [makers[kind](rng) for _ in range(count)]
    return out


# --- statistics -------------------------------------------------------------------------------------------


def wilson(right: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``right / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def majority_expected(p: float, k: int) -> float:
    """P(the vote of ``k`` binary voters, each right with ``p``, is right); a tie goes to the answer given
    first (``llmrelay.deliberation.vote``), which is right half the time."""
    total = 0.0
    for j in range(k + 1):
        mass = math.comb(k, j) * p**j * (1 - p) ** (k - j)
        total += mass if 2 * j > k else mass / 2 if 2 * j == k else 0.0
    return total


@dataclass
class Score:
    right: int = 0
    n: int = 0
    calls: int = 0
    tokens: int = 0
    tokens_unknown: int = 0
    flips: dict[str, int] = field(default_factory=dict)
    vote_flips: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        low, high = wilson(self.right, self.n)
        return {
            "accuracy": self.right / self.n if self.n else None,
            "ci95": [low, high],
            "n": self.n,
            "right": self.right,
            "calls_per_question": self.calls / self.n if self.n else None,
            "tokens_per_question": self.tokens / self.n if self.n else None,
            "turns_without_usage": self.tokens_unknown,
            **({"flips": self.flips, "vote_flips": self.vote_flips} if self.flips else {}),
        }


def correct(answer: str | None, task: Task) -> bool:
    return answer is not None and normalise(answer) == normalise(task.answer)


def flips(transcript: Transcript, task: Task) -> tuple[dict[str, int], dict[str, int]]:
    """Per participant, and for each round's majority, how many answers went right->wrong / wrong->right
    from one round to the next (no answer counts as wrong)."""
    from llmrelay.deliberation import vote

    by_round: dict[int, dict[str, bool]] = {}
    votes: dict[int, bool] = {}
    for turn in transcript.turns:
        if turn.is_answer:
            by_round.setdefault(turn.round, {})[turn.participant] = turn.ok and correct(turn.answer, task)
    for number in by_round:
        votes[number] = correct(vote([t for t in transcript.turns if t.round == number]).answer, task)
    each = {"right_to_wrong": 0, "wrong_to_right": 0}
    majority = {"right_to_wrong": 0, "wrong_to_right": 0}
    numbers = sorted(by_round)
    for before, after in itertools.pairwise(numbers):
        for name, was in by_round[before].items():
            now = by_round[after].get(name, False)
            if was != now:
                each["right_to_wrong" if was else "wrong_to_right"] += 1
        if votes[before] != votes[after]:
            majority["right_to_wrong" if votes[before] else "wrong_to_right"] += 1
    return each, majority


# --- participants -----------------------------------------------------------------------------------------


def scripted(p: float, task: Task, rng: random.Random) -> Callable[[ChatRequest], ChatResponse]:
    def reply(request: ChatRequest) -> ChatResponse:
        text = f"Answer: {task.answer if rng.random() < p else task.wrong}"
        words = sum(len(m.text.split()) for m in request.messages)
        return ChatResponse(
            text=text, finish_reason=FinishReason.STOP, usage=Usage(input_tokens=words, output_tokens=2)
        )

    return reply


@dataclass
class Setup:
    model: str | None
    p: float
    rng: random.Random
    temperature: float
    max_tokens: int

    def people(self, count: int, task: Task, *, personas: bool) -> list[Participant]:
        from llmrelay.testing import FunctionProvider

        out = []
        for i in range(count):
            persona = PERSONAS[i % len(PERSONAS)] if personas else None
            if self.model is None:
                model: Any = FunctionProvider(scripted(self.p, task, self.rng), name="scripted", model=f"p={self.p}")
            else:
                model = self.model
            out.append(Participant(f"agent{i + 1}", model, persona=persona))
        return out

    def spec(self, task: Task, people: list[Participant], **kw: Any) -> Deliberation:
        return Deliberation(
            task.question,
            people,
            agreement=None,  # no early stop: every method makes exactly the calls it is charged for
            answer_pattern=task.pattern,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            **kw,
        )


async def method(setup: Setup, name: str, task: Task, k: int, args: argparse.Namespace) -> Transcript:
    if name == "single":
        spec = setup.spec(task, setup.people(1, task, personas=False), rounds=1)
    elif name.startswith("sc"):
        spec = setup.spec(task, setup.people(k, task, personas=False), rounds=1)
    elif name == "debate":
        spec = setup.spec(task, setup.people(args.agents, task, personas=True), rounds=args.rounds)
    elif name == "council":
        people = setup.people(args.agents, task, personas=True)
        chair = Participant("chair", people[0].model)
        spec = setup.spec(task, people, strategy="council", chair=chair)
    else:
        raise ValueError(name)
    return await run_deliberation(spec, registry=args.registry)


def account(score: Score, transcript: Transcript, task: Task) -> None:
    totals = transcript.totals
    final = transcript.final
    score.n += 1
    score.right += correct(final.answer if final is not None else None, task)
    score.calls += totals.calls
    score.tokens += totals.total_tokens
    score.tokens_unknown += totals.tokens_unknown


async def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    setup = Setup(
        None if args.scripted else args.model, args.p, random.Random(args.seed), args.temperature, args.max_tokens
    )
    questions = tasks(args.questions, args.seed, args.tasks)
    calls = args.agents * args.rounds
    gate = asyncio.Semaphore(args.concurrency)
    scores: dict[tuple[str, str], Score] = {}

    async def one(name: str, task: Task, k: int) -> None:
        async with gate:
            transcript = await method(setup, name, task, k, args)
        account(scores.setdefault((task.kind, name), Score()), transcript, task)
        if name == "debate":
            first = scores.setdefault((task.kind, "debate r1 vote"), Score())
            from llmrelay.deliberation import vote

            first.n += 1
            first.right += correct(vote([t for t in transcript.turns if t.round == 1]).answer, task)
            first.calls += args.agents
            each, majority = flips(transcript, task)
            score = scores[(task.kind, name)]
            for key, value in each.items():
                score.flips[key] = score.flips.get(key, 0) + value
            for key, value in majority.items():
                score.vote_flips[key] = score.vote_flips.get(key, 0) + value

    plan = [("single", 1), (f"sc@calls={calls}", calls), *((s, 0) for s in args.strategies)]
    started = time.monotonic()
    for name, k in plan:
        await asyncio.gather(*(one(name, task, k) for task in questions))
        print(f"  {name}: done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if "debate" in args.strategies:  # match the debate's tokens per question with more samples
        for kind in args.tasks:
            single, debate = scores[(kind, "single")], scores[(kind, "debate")]
            k_tokens = max(1, round(debate.tokens / max(1, single.tokens))) if single.tokens else calls
            name = f"sc@tokens={k_tokens}"
            await asyncio.gather(*(one(name, task, k_tokens) for task in questions if task.kind == kind))
        print(f"  sc@tokens: done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return {
        "model": "scripted" if args.scripted else args.model,
        "p": args.p if args.scripted else None,
        "questions_per_task": args.questions,
        "agents": args.agents,
        "rounds": args.rounds,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "seconds": time.monotonic() - started,
        "results": {f"{kind}/{name}": score.row() for (kind, name), score in scores.items()},
    }


# --- report -----------------------------------------------------------------------------------------------


def report(data: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [
        f"model: {data['model']}" + (f" (right with p = {data['p']})" if data["p"] is not None else ""),
        f"{data['questions_per_task']} questions per task, {data['agents']} agents x {data['rounds']} rounds, "
        f"temperature {data['temperature']}, max_tokens {data['max_tokens']}, seed {data['seed']}, "
        f"{data['seconds']:.0f} s",
        "",
        f"{'task/method':34} {'accuracy':>8}  {'95% CI':>13}  {'calls/q':>7}  {'tokens/q':>8}  flips (each; vote)",
    ]
    results = data["results"]
    for key, row in results.items():
        low, high = row["ci95"]
        flip = ""
        if "flips" in row:
            f, v = row["flips"], row["vote_flips"]
            flip = (
                f"R->W {f['right_to_wrong']}, W->R {f['wrong_to_right']}; "
                f"R->W {v['right_to_wrong']}, W->R {v['wrong_to_right']}"
            )
        tokens = "-" if row["tokens_per_question"] is None or "r1 vote" in key else f"{row['tokens_per_question']:.0f}"
        lines.append(
            f"{key:34} {row['accuracy']:8.3f}  [{low:.3f}, {high:.3f}]  {row['calls_per_question']:7.1f}  "
            f"{tokens:>8}  {flip}"
        )
    lines += ["", "What this shows (each method against single, on the same questions):"]
    detectable = False
    for kind in args.tasks:
        base = results.get(f"{kind}/single")
        if base is None:
            continue
        for key, row in results.items():
            if not key.startswith(f"{kind}/") or key == f"{kind}/single":
                continue
            if row["ci95"][0] > base["ci95"][1]:
                verdict = "better than single, beyond both 95% intervals"
            elif row["ci95"][1] < base["ci95"][0]:
                verdict = "worse than single, beyond both 95% intervals"
            else:
                verdict = f"no detectable difference from single at n = {row['n']} (the intervals overlap)"
            detectable = detectable or "beyond" in verdict
            lines.append(f"- {key}: {row['accuracy']:.3f} vs {base['accuracy']:.3f}: {verdict}")
    if data["p"] is not None:
        lines += [
            "",
            "Harness check (scripted participants are independent, so every vote is binomial; a tie of an even",
            "vote goes to the answer given first, right half the time):",
        ]
        p = data["p"]
        checks = [("single", 1), (f"sc@calls={args.agents * args.rounds}", args.agents * args.rounds)]
        checks.append(("debate", args.agents))  # the last round's vote over the agents
        checks.append(("debate r1 vote", args.agents))
        for kind in args.tasks:
            for name, k in checks:
                row = results.get(f"{kind}/{name}")
                if row is None:
                    continue
                expected = majority_expected(p, k)
                sigma = math.sqrt(expected * (1 - expected) / row["n"]) or 1e-12
                z = (row["accuracy"] - expected) / sigma
                ok = "ok" if abs(z) <= 3 else "WRONG: more than 3 standard errors off"
                lines.append(
                    f"- {kind}/{name}: measured {row['accuracy']:.3f}, expected {expected:.3f} (vote of {k}), "
                    f"z = {z:+.2f}: {ok}"
                )
                data.setdefault("checks", {})[f"{kind}/{name}"] = {"expected": expected, "z": z, "ok": abs(z) <= 3}
    else:
        if "smollm2" in str(data["model"]):
            lines.append(
                "- The embedded SmolLM2-135M is far too small for these tasks: accuracy near chance (choice) or near "
                "zero (arithmetic) is expected of every method."
            )
        if not detectable:
            lines.append(
                "- No method differs from a single answer beyond the 95% intervals in this run: it measured the "
                "methods' calls and tokens, and no gain from deliberation or voting."
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default="local/smollm2", help="a model string (default: the embedded model)")
    parser.add_argument("--scripted", action="store_true", help="participants right with probability --p")
    parser.add_argument("--p", type=float, default=0.6, help="the scripted participants' accuracy")
    parser.add_argument("--questions", type=int, default=None, help="per task (default 6; scripted: 2000)")
    parser.add_argument("--tasks", default="arithmetic,choice", help="comma-separated: arithmetic, choice")
    parser.add_argument("--strategies", default="debate", help="comma-separated: debate, council")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=48, dest="max_tokens", help="per turn")
    parser.add_argument("--concurrency", type=int, default=None, help="questions at once (local: 1, else 8)")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = parser.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = set(args.tasks) - {"arithmetic", "choice"} | set(args.strategies) - {"debate", "council"}
    if unknown:
        parser.error(f"unknown task or strategy: {', '.join(sorted(unknown))}")
    if args.questions is None:
        args.questions = 2000 if args.scripted else 6
    if args.concurrency is None:
        args.concurrency = 64 if args.scripted else 1 if args.model.startswith("local/") else 8
    data = asyncio.run(_evaluate(args))
    print("\n".join(report(data, args)))
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0 if all(check["ok"] for check in data.get("checks", {}).values()) else 1


async def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from llmrelay.api import default_config

    async with ProviderRegistry(default_config()) as registry:
        args.registry = registry
        return await evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
