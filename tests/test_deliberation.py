"""Deliberation: strategies driven by scripted providers, the runner's concurrency, limits, failures,
backpressure and cancellation, and one deliberation across three dialects' fake upstreams."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import random
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TypeVar

import pytest

from llmrelay import ChatRequest, ChatResponse, Done, FinishReason, TextDelta, Usage
from llmrelay._codec import dumps, loads, to_json
from llmrelay._errors import AuthError, ServerError, TotalTimeout
from llmrelay.config import ConfigError
from llmrelay.cost import PriceOverride, cost_of
from llmrelay.deliberation import (
    DEFAULT_ANSWER_PATTERN,
    Aggregate,
    Ask,
    Deliberation,
    DeliberationDone,
    DeliberationEvent,
    Limits,
    Participant,
    Report,
    RoundFinished,
    RoundStarted,
    StopReason,
    Transcript,
    Turn,
    TurnDelta,
    TurnFinished,
    TurnStarted,
    TurnStatus,
    borda,
    council,
    deliberate,
    extract_answer,
    run_deliberation,
    vote,
)
from llmrelay.deliberation._council import labels_for, parse_ranking
from llmrelay.registry import ProviderRegistry
from llmrelay.testing import FakeUpstream, FunctionProvider, ScriptedProvider, held_connections
from llmrelay.testing.anthropic_kit import KIT as ANTHROPIC
from llmrelay.testing.gemini_kit import KIT as GEMINI
from llmrelay.testing.openai_kit import KIT as OPENAI
from llmrelay.wrappers import Fallback

Q = "What is 6 * 7?"
E = TypeVar("E")


def said(text: str, inp: int = 10, out: int = 5) -> ChatResponse:
    return ChatResponse(text=text, finish_reason=FinishReason.STOP, usage=Usage(input_tokens=inp, output_tokens=out))


def pieces(*parts: str) -> list[TextDelta | Done]:
    """A reply streamed in several fragments (one event each, so ``delay`` paces them)."""
    return [*(TextDelta(p) for p in parts), Done(FinishReason.STOP, "stop", Usage(input_tokens=10, output_tokens=5))]


async def collect(spec: Deliberation, **kw: object) -> tuple[list[DeliberationEvent], Transcript]:
    async with deliberate(spec, **kw) as run:  # type: ignore[arg-type]
        events = [e async for e in run]
    return events, run.transcript


def check_laws(events: Sequence[DeliberationEvent]) -> None:
    """Every turn: TurnStarted, then its deltas, then one TurnFinished, inside its round; Done last."""
    assert type(events[-1]) is DeliberationDone
    assert sum(type(e) is DeliberationDone for e in events) == 1
    current: int | None = None
    open_turns: dict[str, int] = {}
    for event in events:
        match event:
            case RoundStarted(round=number):
                assert not open_turns
                current = number
            case TurnStarted(participant=name, round=number):
                assert number == current
                open_turns[name] = number
            case TurnDelta(participant=name):
                assert name in open_turns
            case TurnFinished(turn=turn):
                assert open_turns.pop(turn.participant) == turn.round == current
            case RoundFinished(round=number):
                assert number == current and not open_turns
            case _:
                pass


def by_type(events: Sequence[DeliberationEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


# --- ordering, modes, concurrency ---


async def test_debate_events_are_ordered_and_the_vote_is_the_final_answer() -> None:
    people = [
        Participant("a", ScriptedProvider([pieces("six times ", "seven\nAnswer: 42"), said("Answer: 42")], name="pa")),
        Participant("b", ScriptedProvider([said("Answer: 41"), said("Answer: 42")], name="pb")),
        Participant("c", ScriptedProvider([said("Answer: 42"), said("I keep it.\nAnswer: 42.")], name="pc")),
    ]
    events, transcript = await collect(Deliberation(Q, people, strategy="debate", rounds=2))
    check_laws(events)
    rounds = by_type(events, RoundFinished)
    assert [r.agreement.score for r in rounds] == [pytest.approx(2 / 3), 1.0]
    assert rounds[1].agreement.unanimous
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.stop is StopReason.COMPLETED and done.answer == "42"
    assert done.totals.calls == 6 and done.totals.total_tokens == 6 * 15 - 15 + 15
    # round 2 shows each participant the others' round-1 answers, never its own as "the others"
    second = people[1].models[0].requests[1]
    prompt = second.messages[0].text
    assert "### a" in prompt and "### c" in prompt and "### b" not in prompt and "Answer: 41" in prompt
    assert transcript.final is not None and transcript.final.method == "vote"


async def test_sequential_mode_shows_each_turn_the_turns_before_it() -> None:
    a = ScriptedProvider([said("Answer: 1")], name="pa", delay=0.01)
    b = ScriptedProvider([said("Answer: 1")], name="pb", delay=0.01)
    events, transcript = await collect(
        Deliberation(Q, [Participant("a", a), Participant("b", b)], rounds=1, mode="sequential")
    )
    check_laws(events)
    assert "### a" not in a.requests[0].messages[0].text
    assert "### a\nAnswer: 1" in b.requests[0].messages[0].text
    first, second = transcript.turns
    assert first.ended_s <= second.started_s  # one after the other


async def test_parallel_turns_really_overlap_and_their_deltas_interleave() -> None:
    people = [
        Participant(name, ScriptedProvider([pieces(*"abcdefgh", "\nAnswer: 1")], name=name, delay=0.02))
        for name in ("x", "y", "z")
    ]
    started = asyncio.get_running_loop().time()
    events, transcript = await collect(Deliberation(Q, people, rounds=1, agreement=None))
    wall = asyncio.get_running_loop().time() - started
    turns = transcript.turns
    assert max(t.started_s for t in turns) < min(t.ended_s for t in turns)  # all three in flight at once
    single = max(t.latency_s for t in turns)
    assert single >= 0.18 and wall < 2 * single  # sequentially it would be about 3 x single
    order = [e.participant for e in events if type(e) is TurnDelta]
    switches = sum(1 for p, q in itertools.pairwise(order) if p != q)
    assert switches >= 6  # interleaved, not one participant's deltas after another's


async def test_early_stop_when_everyone_agrees() -> None:
    people = [Participant(n, ScriptedProvider([said("Answer: 42")], name=n)) for n in "abc"]
    events, _ = await collect(Deliberation(Q, people, strategy="debate", rounds=4))
    done = events[-1]
    assert isinstance(done, DeliberationDone)
    assert done.stop is StopReason.CONVERGED and done.totals.calls == 3 and done.answer == "42"
    assert len(by_type(events, RoundStarted)) == 1


# --- limits ---


async def test_max_calls_stops_before_a_step_that_would_exceed_it() -> None:
    people = [Participant(n, ScriptedProvider([said(f"Answer: {n}")] * 3, name=n)) for n in "abc"]
    events, transcript = await collect(Deliberation(Q, people, rounds=3, limits=Limits(max_calls=5)))
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.stop is StopReason.MAX_CALLS
    assert done.totals.calls == 3 and "needs 3 calls" in done.detail
    final = transcript.final
    assert final is not None and final.method == "vote" and not final.complete


async def test_token_budget_clips_each_turn_and_stops_the_deliberation() -> None:
    providers = [ScriptedProvider([said("Answer: 1", 40, 30)] * 3, name=n) for n in "ab"]
    people = [Participant(n, p, max_tokens=500) for n, p in zip("ab", providers, strict=True)]
    events, _ = await collect(Deliberation(Q, people, rounds=3, agreement=None, limits=Limits(max_tokens=200)))
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.stop is StopReason.MAX_TOKENS
    assert done.totals.total_tokens == 280 and done.totals.calls == 4
    caps = [r.max_tokens for r in providers[0].requests]
    assert caps == [100, 30]  # 200 // 2 turns, then (200 - 140) // 2


async def test_cost_budget_sums_priced_turns_and_counts_unpriced_ones() -> None:
    priced = ScriptedProvider([said("Answer: 1", 1000, 1000)] * 3, name="priced")
    free = ScriptedProvider([said("Answer: 2", 1000, 1000)] * 3, name="unpriced")
    prices = {"priced": PriceOverride(input_per_mtok=Decimal(1), output_per_mtok=Decimal(2))}
    spec = Deliberation(
        Q,
        [Participant("p", priced), Participant("u", free)],
        rounds=3,
        agreement=None,
        prices=prices,
        limits=Limits(max_cost=Decimal("0.005")),
    )
    events, transcript = await collect(spec)
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.stop is StopReason.MAX_COST
    assert done.totals.cost == Decimal("0.006") and done.totals.cost_unknown == 2
    spend = transcript.by_participant()
    assert spend["p"].cost == Decimal("0.006") and spend["u"].cost is None and spend["u"].cost_unknown == 2
    assert all(t.cost_unknown and "unpriced" in t.cost_unknown for t in transcript.turns if t.participant == "u")


async def test_deadline_cancels_the_turns_in_flight_and_records_their_partial_text() -> None:
    fast = ScriptedProvider([said("Answer: 1")], name="fast")
    slow = ScriptedProvider([pieces("thinking", *["."] * 200)], name="slow", delay=0.01)
    spec = Deliberation(Q, [Participant("f", fast), Participant("s", slow)], rounds=2, limits=Limits(deadline=0.3))
    started = asyncio.get_running_loop().time()
    events, transcript = await collect(spec)
    assert asyncio.get_running_loop().time() - started < 1.5
    check_laws(events)
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.stop is StopReason.DEADLINE
    cut = next(t for t in transcript.turns if t.participant == "s")
    assert cut.status is TurnStatus.PARTIAL and cut.text.startswith("thinking") and isinstance(cut.error, TotalTimeout)
    assert done.answer == "1"  # the vote over the answers given


# --- failures ---


async def test_fallback_inside_a_turn_shows_requested_and_actual_model() -> None:
    bad = ScriptedProvider([ServerError("upstream down", provider="bad", status=503)], name="bad", model="m-bad")
    good = ScriptedProvider([said("Answer: 7")], name="good", model="m-good")
    events, transcript = await collect(Deliberation(Q, [Participant("a", Fallback([bad, good]))], rounds=1))
    started = by_type(events, TurnStarted)[0]
    assert isinstance(started, TurnStarted) and (started.provider, started.model) == ("good", "m-good")
    (turn,) = transcript.turns
    assert turn.status is TurnStatus.OK and turn.requested == "fallback/m-bad"
    assert [(a.provider, a.error.kind) for a in turn.attempts] == [("bad", "server")]


async def test_a_stream_broken_mid_way_is_kept_apart_from_the_next_models_answer() -> None:
    broken = ScriptedProvider(
        [[TextDelta("The answer is 4"), Done(FinishReason.ERROR, error=ServerError("stream cut", provider="one"))]],
        name="one",
    )
    backup = ScriptedProvider([said("Answer: 42")], name="two")
    events, transcript = await collect(Deliberation(Q, [Participant("a", [broken, backup])], rounds=1))
    check_laws(events)
    starts = by_type(events, TurnStarted)
    assert [(s.provider, s.attempt) for s in starts] == [("one", 1), ("two", 2)]
    (turn,) = transcript.turns
    assert turn.text == "Answer: 42" and turn.provider == "two" and turn.status is TurnStatus.OK
    assert [(p.provider, p.text, p.error.kind) for p in turn.partials] == [("one", "The answer is 4", "server")]
    assert "partial text from one" in transcript.to_markdown()


async def test_a_participant_whose_every_model_fails_is_recorded_and_the_rest_go_on() -> None:
    denied = ScriptedProvider([AuthError("key revoked", provider="dead", status=401)] * 2, name="dead")
    people = [
        Participant("ok1", ScriptedProvider([said("Answer: 3")] * 2, name="p1")),
        Participant("gone", [denied, denied]),
        Participant("ok2", ScriptedProvider([said("Answer: 3")] * 2, name="p2")),
    ]
    events, transcript = await collect(Deliberation(Q, people, rounds=2, agreement=None))
    check_laws(events)
    failed = [t for t in transcript.turns if t.participant == "gone"]
    assert len(failed) == 2 and all(t.status is TurnStatus.FAILED for t in failed)
    assert failed[0].error is not None and failed[0].error.kind == "auth" and failed[0].provider is None
    done = events[-1]
    assert isinstance(done, DeliberationDone) and done.stop is StopReason.COMPLETED and done.answer == "3"
    assert done.totals.failed == 2
    stopped, _ = await collect(
        Deliberation(
            Q,
            [Participant("ok", ScriptedProvider([said("Answer: 3")] * 2)), Participant("gone", denied)],
            rounds=2,
            stop_on_failure=True,
        )
    )
    end = stopped[-1]
    assert isinstance(end, DeliberationDone) and end.stop is StopReason.PARTICIPANT_FAILED and "gone" in end.detail


# --- backpressure and cancellation ---


async def test_a_slow_consumer_slows_the_turns_and_loses_no_event() -> None:
    texts = {n: [f"{n}{i} " for i in range(60)] for n in "abc"}
    people = [Participant(n, ScriptedProvider([pieces(*texts[n])], name=n)) for n in "abc"]
    seen: dict[str, list[str]] = {n: [] for n in "abc"}
    async with deliberate(Deliberation(Q, people, rounds=1), buffer=2) as run:
        async for event in run:
            await asyncio.sleep(0.001)
            if type(event) is TurnDelta:
                seen[event.participant].append(event.text)
    assert seen == texts
    assert {t.participant: t.text for t in run.transcript.turns} == {n: "".join(v) for n, v in texts.items()}


async def test_cancelling_the_consumer_closes_every_stream_and_leaves_no_task(upstream: FakeUpstream) -> None:
    reply = dataclasses.replace(OPENAI.text("a long slow answer " * 4, stream=True), chunk_delay=0.3)
    providers = [OPENAI.provider(upstream.url(), model=f"m{i}") for i in range(3)]
    upstream.add(reply, reply, reply)
    before = asyncio.all_tasks()
    got_delta = asyncio.Event()

    async def consume() -> None:
        people = [Participant(f"p{i}", p) for i, p in enumerate(providers)]
        async with deliberate(Deliberation(Q, people, rounds=1)) as run:
            async for event in run:
                if type(event) is TurnDelta:
                    got_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_delta.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await upstream.wait_idle(within=2)
    assert upstream.disconnects == 3 and upstream.completed == 0
    assert all(held_connections(p) == 0 for p in providers)
    left = asyncio.all_tasks() - before - {asyncio.current_task()}
    assert not [t for t in left if not t.get_coro().__qualname__.startswith("RequestHandler")]
    for p in providers:
        await p.aclose()


# --- strategies ---


def _turn(
    name: str, text: str, phase: str = "answer", *, is_answer: bool = True, labels: Mapping[str, str] | None = None
) -> Turn:
    """A successful turn, as the runner would send it to a strategy."""
    answer = extract_answer(text, DEFAULT_ANSWER_PATTERN)
    return Turn(name, 1, phase, None, TurnStatus.OK, text=text, answer=answer, is_answer=is_answer, labels=labels or {})


def test_council_shuffles_labels_per_reviewer_and_never_shows_a_reviewer_its_own_answer() -> None:
    names = ["a", "b", "c", "d"]
    spec = Deliberation(
        Q, [Participant(n, "x/m") for n in names], strategy="council", chair=Participant("chair", "x/m")
    )
    strategy = council(spec)
    strategy.send(None)  # RoundBegin
    ask = strategy.send(None)
    assert isinstance(ask, Ask) and [r.participant.name for r in ask.requests] == names
    strategy.send(tuple(_turn(n, f"I say {n}\nAnswer: {n}") for n in names))  # -> RoundEnd
    strategy.send(None)  # RoundBegin(rank)
    reviews = strategy.send(None)
    assert isinstance(reviews, Ask)
    orders = []
    for request in reviews.requests:
        me = request.participant.name
        assert sorted(request.labels.values()) == sorted(set(names) - {me})
        assert f"I say {me}" not in request.prompt and "### a\n" not in request.prompt  # anonymous
        orders.append(tuple(request.labels.values()))
    assert len(set(orders)) > 1 or len({tuple(sorted(o)) for o in orders}) == len(orders)
    # every reviewer ranks "b" first and its own answer cannot be there
    replies = []
    for request in reviews.requests:
        inverse = {v: k for k, v in request.labels.items()}
        ranked = sorted(request.labels.values(), key=lambda n: (n != "b", n))
        replies.append(
            _turn(
                request.participant.name,
                "Ranking: " + ", ".join(inverse[n] for n in ranked),
                "rank",
                is_answer=False,
                labels=request.labels,
            )
        )
    strategy.send(tuple(replies))  # -> RoundEnd(rank)
    report = strategy.send(None)
    assert isinstance(report, Report)
    ranking = report.aggregate
    assert ranking.method == "ranking" and ranking.source == ("b",)
    assert ranking.tally == borda([parse_ranking(t.text, t.labels) for t in replies], names)
    assert labels_for(0, names, 1) == labels_for(0, names, 1)  # reproducible from the seed


async def test_council_through_the_runner_ends_with_the_chairs_answer() -> None:
    def member(name: str, answer: str) -> FunctionProvider:
        def reply(request: ChatRequest) -> str:
            prompt = request.messages[0].text
            if "Ranking:" in prompt:
                labels = re.findall(r"### Answer ([A-Z])\n", prompt)
                return "Ranking: " + ", ".join(labels)
            return f"{name} thinks\nAnswer: {answer}"

        return FunctionProvider(reply, name=name)

    chair = ScriptedProvider([said("Having weighed them.\nAnswer: 42")], name="chair")
    people = [Participant(n, member(n, a)) for n, a in (("a", "42"), ("b", "42"), ("c", "41"))]
    events, transcript = await collect(
        Deliberation(Q, people, strategy="council", chair=Participant("chair", chair), seed=3)
    )
    check_laws(events)
    aggregates = by_type(events, Aggregate)
    assert [a.method for a in aggregates] == ["ranking", "synthesis"]
    assert sum(aggregates[0].tally.values()) == 3 * 1  # 3 reviewers x (2-1)
    assert "Borda points" in chair.requests[0].messages[0].text
    assert transcript.final is not None and transcript.final.answer == "42" and transcript.final.source == ("chair",)


async def test_rounds_strategy_runs_draft_critique_refine_synthesis_and_falls_back_to_the_vote() -> None:
    people = [
        Participant(n, ScriptedProvider([said("Answer: 5"), said("critique"), said("Answer: 6")], name=n)) for n in "ab"
    ]
    chair = Participant("chair", ScriptedProvider([ServerError("down", provider="c")], name="c"))
    spec = Deliberation(Q, people, strategy="rounds", rounds=3, chair=chair, agreement=None)
    events, transcript = await collect(spec)
    check_laws(events)
    assert [e.phase for e in by_type(events, RoundStarted)] == ["draft", "critique", "refine", "synthesis"]
    critique_round = next(e for e in by_type(events, RoundFinished) if e.phase == "critique")
    assert critique_round.agreement is None
    final = transcript.final
    assert final is not None and final.method == "vote" and final.answer == "6"


def test_the_vote_aggregator_matches_the_binomial_majority() -> None:
    # Three independent voters right with p = 0.6; majority is right with 3p^2 - 2p^3 = 0.648.
    rng = random.Random(20250101)
    trials, p = 4000, 0.6
    right = 0
    for _ in range(trials):
        turns = [_turn(n, "Answer: 42" if rng.random() < p else "Answer: 41") for n in "abc"]
        right += vote(turns).answer == "42"
    expected = 3 * p**2 - 2 * p**3
    sigma = (expected * (1 - expected) / trials) ** 0.5
    assert abs(right / trials - expected) < 3 * sigma


async def test_the_vote_through_the_runner_with_scripted_participants() -> None:
    rng = random.Random(7)
    p, trials = 0.6, 300

    def voter(name: str) -> FunctionProvider:
        return FunctionProvider(lambda _: "Answer: 42" if rng.random() < p else "Answer: 41", name=name)

    people = [Participant(n, voter(n)) for n in "abc"]
    right = 0
    for _ in range(trials):
        transcript = await run_deliberation(Deliberation(Q, people, rounds=1))
        right += transcript.final is not None and transcript.final.answer == "42"
    sigma = (0.648 * 0.352 / trials) ** 0.5
    assert abs(right / trials - 0.648) < 3 * sigma


# --- bad input ---


def test_bad_input_is_a_one_line_config_error_before_any_call() -> None:
    one = [Participant("a", "x/m")]
    cases = [
        lambda: Deliberation(Q, []),
        lambda: Deliberation(Q, one, strategy="rounds"),  # no chair
        lambda: Deliberation(Q, one, strategy="debate", aggregate="synthesis"),
        lambda: Deliberation(Q, [Participant("a", "x/m"), Participant("a", "y/m")]),
        lambda: Deliberation(Q, one, limits=Limits(max_calls=0)),
        lambda: Deliberation(Q, one, limits=Limits(max_cost=Decimal(0))),
        lambda: Deliberation(Q, one, answer_pattern="("),
        lambda: Participant("", "x/m"),
        lambda: Participant("a", []),
    ]
    for make in cases:
        with pytest.raises(ConfigError) as info:
            make()
        assert str(info.value).startswith("deliberation: ") and "\n" not in str(info.value)


async def test_an_unknown_model_string_fails_on_entering_before_any_call(clean_env: None) -> None:
    good = ScriptedProvider([said("Answer: 1")])
    spec = Deliberation(Q, [Participant("a", good), Participant("b", "nosuchprovider/model")])
    with pytest.raises(ConfigError):
        async with deliberate(spec, registry=ProviderRegistry()):
            pass
    assert good.requests == []


# --- transcript ---


async def test_transcript_json_reloads_equal_and_events_are_codec_lines() -> None:
    broken = ScriptedProvider(
        [[TextDelta("half"), Done(FinishReason.ERROR, error=ServerError("cut", provider="one"))]], name="one"
    )
    people = [
        Participant("a", [broken, ScriptedProvider([said("Answer: 2")], name="two")], persona="You are terse."),
        Participant("b", ScriptedProvider([said("Answer: 2")], name="three")),
    ]
    prices = {"three": PriceOverride(input_per_mtok=Decimal("0.5"), output_per_mtok=Decimal("1.5"))}
    events, transcript = await collect(Deliberation(Q, people, rounds=1, prices=prices))
    for event in events:
        line = dumps(event)
        assert dumps(loads(line)) == line  # errors compare by identity, so compare their JSON
        data = json.loads(line)
        if type(event) in (TurnStarted, TurnDelta, TurnFinished):
            assert data["participant"] in ("a", "b")  # each names its participant at the top level
    again = Transcript.loads(transcript.dumps())
    assert again.dumps() == transcript.dumps() and again.totals == transcript.totals
    assert again.turns[0].partials[0].error.kind == "server" and again.turns[0].partials[0].text == "half"
    assert dumps(loads(transcript.dumps())) == transcript.dumps()  # the plain codec finds the type too
    assert to_json(transcript)["type"] == "deliberation_transcript"
    md = transcript.to_markdown()
    assert "| a | participant | one/scripted-model → two/scripted-model |" in md
    assert "$0.0000125" in md and "unpriced" in md and "You are terse." in md and "**Answer: 2**" in md


# --- end to end across three dialects ---


async def test_a_debate_across_openai_anthropic_and_gemini_fake_upstreams(clean_env: None) -> None:
    async with FakeUpstream() as up_o, FakeUpstream() as up_a, FakeUpstream() as up_g:
        up_o.add(
            OPENAI.text("Six sevens.\nAnswer: 42", stream=True, usage=(20, 8)),
            OPENAI.text("Answer: 42", stream=True, usage=(60, 4)),
        )
        up_a.add(
            ANTHROPIC.text("I get 41.\nAnswer: 41", stream=True, usage=(22, 9)),
            ANTHROPIC.text("Right, 42.\nAnswer: 42", stream=True, usage=(70, 6)),
        )
        up_g.add(
            GEMINI.text("Answer: 42", stream=True, usage=(18, 3)), GEMINI.text("Answer: 42", stream=True, usage=(65, 3))
        )
        registry = ProviderRegistry()
        registry.register("oa", OPENAI.provider(up_o.url(), model="gpt-4o-mini"))
        anthropic = ANTHROPIC.provider(up_a.url(), model="claude-test")
        gemini = GEMINI.provider(up_g.url(), model="gemini-test")
        prices = {
            "openai": PriceOverride(input_per_mtok=Decimal(1), output_per_mtok=Decimal(4)),
        }
        people = [
            Participant("builder", "oa/gpt-4o-mini"),
            Participant("skeptic", anthropic, persona="You doubt everything."),
            Participant("checker", gemini),
        ]
        async with registry:
            events, transcript = await collect(
                Deliberation(Q, people, strategy="debate", rounds=2, prices=prices, max_tokens=300), registry=registry
            )
        check_laws(events)
        assert [len(u.requests) for u in (up_o, up_a, up_g)] == [2, 2, 2]
        assert up_a.requests[0].json["system"] == "You doubt everything."
        assert "Answer: 41" in json.dumps(up_o.requests[1].json)  # the skeptic's round-1 answer reached openai
        by = {(t.participant, t.round): t for t in transcript.turns}
        assert {t.provider for t in transcript.turns} == {"openai", "anthropic", "gemini"}
        assert by[("skeptic", 1)].answer == "41" and by[("skeptic", 2)].answer == "42"
        assert by[("builder", 1)].requested == "oa/gpt-4o-mini" and by[("builder", 1)].provider == "openai"
        # gemini answers as gemini-2.5-flash (its modelVersion), priced from genai-prices; the anthropic
        # fake's "test-model" has no price anywhere: unknown, counted, not 0
        checker = [t for t in transcript.turns if t.participant == "checker"]
        assert all(t.model == "gemini-2.5-flash" for t in checker)
        gemini_cost = sum(cost_of(t.usage, "gemini", t.model).total for t in checker)  # type: ignore[misc]
        assert all(t.cost is None and t.cost_unknown for t in transcript.turns if t.participant == "skeptic")
        totals = transcript.totals
        expected = (Decimal(20 + 60) * 1 + Decimal(8 + 4) * 4) / 1_000_000 + gemini_cost
        assert totals.cost == expected and totals.cost_unknown == 2
        spend = transcript.by_participant()
        assert spend["skeptic"].cost is None and spend["skeptic"].cost_unknown == 2 and spend["skeptic"].calls == 2
        assert totals.total_tokens == 20 + 8 + 60 + 4 + 22 + 9 + 70 + 6 + 18 + 3 + 65 + 3
        done = events[-1]
        assert isinstance(done, DeliberationDone) and done.answer == "42" and done.stop is StopReason.COMPLETED
        assert Transcript.loads(transcript.dumps()) == transcript
