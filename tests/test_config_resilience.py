"""``[routers]``, ``[rate_limits]``, ``[fallbacks.NAME]`` options, ``[budgets]`` and ``[prices]``: validated
with key paths, and in effect through the registry, ``llmrelay.chat`` and the CLI, against real
``FakeUpstream`` servers (and a real ``redis-server`` for the shared limits)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import tomllib
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import llmrelay
from conftest_redis import redis_server
from llmrelay import ChatRequest, Message, RateLimitError
from llmrelay.config import (
    BudgetConfig,
    Config,
    ConfigError,
    DeploymentConfig,
    FallbackConfig,
    PriceConfig,
    RateLimitConfig,
    _resilience,
    parse_config,
)
from llmrelay.registry import ProviderRegistry
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.openai_kit import KIT
from llmrelay.wrappers import Fallback, Hedged, RateLimited, Retrying, Router

__all__ = ["redis_server"]

HELLO = ChatRequest(messages=[Message.user("Hello")], max_tokens=10)
NO_RETRY = "[retry]\nmax_attempts = 1\n"


@pytest.fixture(autouse=True)
def _clean(clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


def config(text: str, file: str | Path = "/cfg/llmrelay.toml") -> Config:
    return parse_config(tomllib.loads(text), file)


def unique(prefix: str) -> str:
    """A provider name no other test uses: the in-memory rate-limit backend is shared by the process."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def providers(**servers: FakeUpstream) -> str:
    return "".join(
        f'[providers.{name}]\ntype = "openai"\nbase_url = "{up.url("/v1")}"\n' for name, up in servers.items()
    )


# --- parsing --------------------------------------------------------------------------------------------


def test_the_documented_example_parses_to_typed_values() -> None:
    doc = _resilience.__doc__ or ""
    example = "\n".join(line[4:] for line in doc.split("::", 1)[1].splitlines() if line.startswith("    "))
    parsed = config('[providers.work]\ntype = "openai"\n' + example)
    assert parsed.fallbacks["careful"] == ("anthropic/claude-haiku-4-5", "openai/gpt-4o-mini")
    assert parsed.fallback_options == {"careful": FallbackConfig(first_event_timeout=10.0, hedge_after=2.0)}
    assert "main" not in parsed.fallback_options
    router = parsed.routers["gpt4o"]
    assert router.strategy == "least_in_flight"
    assert router.deployments == (DeploymentConfig("azure/gpt-4o"), DeploymentConfig("openai/gpt-4o", 2.0))
    assert (router.breaker.error_ratio, router.breaker.min_requests, router.breaker.cooldown) == (0.5, 5, 30.0)
    assert parsed.rate_limits.backend == "redis://127.0.0.1:6379/0"
    assert parsed.rate_limits.limits["openai"] == RateLimitConfig(500, 200000, 16, "wait", 30.0)
    assert parsed.budgets is not None and parsed.budgets.store == "sqlite:///llmrelay-ledger.db"
    assert parsed.budgets.budgets["*"] == BudgetConfig(max_cost=Decimal("25.0"), period="day")
    assert parsed.budgets.budgets["openai"] == BudgetConfig(max_tokens=2000000, period="month")
    assert parsed.prices["work/my-model"] == PriceConfig(Decimal("0.5"), Decimal("1.5"), Decimal("0.05"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[routers.r]\nstrategy = "fastest"\ndeployments = ["openai/a"]', "routers.r.strategy: expected one of"),
        ("[routers.r]\ndeployments = []", "routers.r.deployments: expected a non-empty list"),
        ('[routers.r]\ndeployments = [{ modle = "openai/a" }]', "routers.r.deployments[0].modle: unknown key"),
        ('[routers.r]\ndeployments = ["openai/a"]\nbreaker = { error_ratio = 2 }', "routers.r.breaker.error_ratio"),
        (
            '[providers.r]\ntype = "openai"\n[routers.r]\ndeployments = ["openai/a"]',
            "routers.r: a router name has the name of a provider",
        ),
        (
            '[fallbacks]\nf = ["openai/a"]\n[routers.r]\ndeployments = ["f"]',
            "routers.r.deployments[0]: a deployment is one model",
        ),
        ('[fallbacks.f]\nmodels = ["openai/a"]\nhedge_after = -1', "fallbacks.f.hedge_after: expected a positive"),
        ("[fallbacks.f]\nfirst_event_timeout = 3", "fallbacks.f.models: missing"),
        ('[rate_limits]\nbackend = "memcached://x"', 'rate_limits.backend: expected "memory" or a Redis URL'),
        ('[rate_limits.openai]\non_limit = "drop"\nrequests_per_minute = 1', "rate_limits.openai.on_limit"),
        ("[rate_limits.openai]\nmax_wait = 5", "rate_limits.openai: expected at least one of"),
        ("[rate_limits]\nopenai = 5", "rate_limits.openai: expected a table of limits"),
        ("[rate_limits.openai]\nrpm = 5", "rate_limits.openai.rpm: unknown key"),
        ('[budgets]\nstore = "postgres://x"', 'budgets.store: expected "memory" or a SQLite file'),
        ('[budgets."*"]\nperiod = "day"', "budgets.*: expected max_cost, max_tokens or both"),
        ('[budgets.openai]\nmax_cost = "ten"', "budgets.openai.max_cost: expected a decimal number"),
        ('[budgets.openai]\nmax_cost = 1\nperiod = "week"', "budgets.openai.period: expected one of: day, month"),
        ('[budgets.openai]\nmax_cost = 1\ncurrency = "dollars"', "budgets.openai.currency: expected a three-letter"),
        ('[prices."work/m"]\ninput_per_mtok = 1', "prices.work/m.output_per_mtok: missing"),
        ('[prices."work/m"]\ninput_per_mtok = -1\noutput_per_mtok = 1', "prices.work/m.input_per_mtok"),
    ],
)
def test_every_new_value_is_checked_with_its_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(text)
    assert message in str(info.value)
    assert str(info.value).startswith("/cfg/llmrelay.toml: ")


def test_price_strings_are_exact_decimals() -> None:
    parsed = config('[prices.work]\ninput_per_mtok = "0.1"\noutput_per_mtok = 0.3\ncurrency = "eur"')
    assert parsed.prices["work"] == PriceConfig(Decimal("0.1"), Decimal("0.3"), currency="EUR")


def test_rate_limits_are_in_effect_and_no_longer_warned_about(recwarn: pytest.WarningsRecorder) -> None:
    config("[rate_limits.openai]\nrequests_per_minute = 5\n")
    assert not [w for w in recwarn if "not yet in effect" in str(w.message)]


# --- routers --------------------------------------------------------------------------------------------


async def test_a_router_name_round_robins_over_its_deployments(upstream: FakeUpstream, second: FakeUpstream) -> None:
    for _ in range(2):
        upstream.add(KIT.text("from a", stream=False))
        second.add(KIT.text("from b", stream=False))
    cfg = config(
        providers(a=upstream, b=second)
        + '[routers.pool]\nstrategy = "round_robin"\ndeployments = ["a/model-a", "b/model-b"]\n'
        + NO_RETRY
    )
    async with ProviderRegistry(cfg) as reg:
        stack = reg.provider("pool")
        assert isinstance(stack, Router) and stack.strategy == "round_robin"
        assert reg.provider("pool") is stack  # built once: its counters and breakers last as long as the registry
        answers = [(await reg.provider("pool").chat(HELLO)).provider for _ in range(4)]
    assert answers == ["a", "b", "a", "b"]
    assert [r.json["model"] for r in upstream.requests] == ["model-a", "model-a"]
    assert [r.json["model"] for r in second.requests] == ["model-b", "model-b"]


async def test_a_dead_key_opens_a_deployments_breaker_and_traffic_moves_to_the_next(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(KIT.error(401))
    for _ in range(3):
        second.add(KIT.text("from b", stream=True))
    cfg = config(
        providers(a=upstream, b=second)
        + '[routers.pool]\ndeployments = ["a/model-a", "b/model-b"]\nbreaker = { cooldown = 600 }\n'
        + NO_RETRY
    )
    async with ProviderRegistry(cfg) as reg:
        router = reg.provider("pool")
        for _ in range(3):
            async with router.chat_stream(HELLO) as stream:
                reply = await stream.until_done()
            assert (reply.text, stream.provider) == ("from b", "b")
        assert isinstance(router, Router)
        assert [h.state for h in router.health()] == ["open", "closed"]
    assert len(upstream.requests) == 1  # the open breaker kept every later request away from a


# --- [fallbacks.NAME] options ---------------------------------------------------------------------------


async def test_hedge_after_starts_the_next_member_when_the_first_is_slow(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(Reply(**{**_fields(KIT.text("slow a", stream=True)), "headers_delay": 3.0}))
    second.add(KIT.text("quick b", stream=True))
    cfg = config(
        providers(a=upstream, b=second) + '[fallbacks.main]\nmodels = ["a/m", "b/m"]\nhedge_after = 0.05\n' + NO_RETRY
    )
    start = time.monotonic()
    async with ProviderRegistry(cfg) as reg:
        stack = reg.provider("main")
        assert isinstance(stack, Hedged) and stack.threshold == 0.05
        async with stack.chat_stream(HELLO) as stream:
            reply = await stream.until_done()
    assert (reply.text, stream.provider) == ("quick b", "b")
    assert time.monotonic() - start < 2.0
    assert await upstream.wait_disconnect(2.0)  # the slow loser's connection was closed


async def test_first_event_timeout_abandons_a_member_that_sends_headers_and_then_nothing(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    silent = KIT.text("never seen", stream=True)
    upstream.add(Reply(**{**_fields(silent), "stall": 5.0, "stall_after": 0}))
    second.add(KIT.text("b answered", stream=True))
    cfg = config(
        providers(a=upstream, b=second)
        + '[fallbacks.main]\nmodels = ["a/m", "b/m"]\nfirst_event_timeout = 0.2\n'
        + NO_RETRY
    )
    start = time.monotonic()
    async with ProviderRegistry(cfg) as reg:
        stack = reg.provider("main")
        assert isinstance(stack, Fallback)
        async with stack.chat_stream(HELLO) as stream:
            reply = await stream.until_done()
    assert (reply.text, stream.provider) == ("b answered", "b")
    assert [(a.provider, a.error.kind) for a in reply.attempts] == [("a", "first_event_timeout")]
    assert time.monotonic() - start < 2.0


def _fields(reply: Reply) -> dict[str, object]:
    return {name: getattr(reply, name) for name in reply.__dataclass_fields__}


# --- [rate_limits] --------------------------------------------------------------------------------------


async def test_a_provider_limit_with_on_limit_fail_refuses_the_call_over_the_budget(upstream: FakeUpstream) -> None:
    name = unique("rl")
    for _ in range(3):
        upstream.add(KIT.text("ok", stream=False))
    cfg = config(
        providers(**{name: upstream}) + f'[rate_limits.{name}]\nrequests_per_minute = 2\non_limit = "fail"\n' + NO_RETRY
    )
    async with ProviderRegistry(cfg) as reg:
        stack = reg.provider(f"{name}/m")
        assert isinstance(stack, RateLimited) and stack.scope == name
        for _ in range(2):
            await stack.chat(HELLO)
        with pytest.raises(RateLimitError) as info:
            await stack.chat(HELLO)
    assert info.value.code == "llmrelay_rate_limit" and info.value.retry_after and info.value.retry_after > 1
    assert len(upstream.requests) == 2  # the refused call never reached the upstream


async def test_model_and_provider_limits_both_apply_and_the_retry_policy_wraps_them(upstream: FakeUpstream) -> None:
    name = unique("rl")
    cfg = config(
        providers(**{name: upstream})
        + f'[rate_limits.{name}]\nrequests_per_minute = 100\n[rate_limits."{name}/big"]\nmax_concurrency = 1\n'
    )
    async with ProviderRegistry(cfg) as reg:
        stack = reg.provider(f"{name}/big")
        assert isinstance(stack, Retrying)
        outer = stack.inner
        assert isinstance(outer, RateLimited) and outer.scope == name
        inner = outer.inner
        assert isinstance(inner, RateLimited) and inner.scope == f"{name}/big"
        small = reg.provider(f"{name}/small")
        assert isinstance(small, Retrying) and isinstance(small.inner, RateLimited)
        assert not isinstance(small.inner.inner, RateLimited)


async def test_limits_hold_across_llmrelay_chat_calls_without_a_registry(upstream: FakeUpstream) -> None:
    name = unique("rl")
    for _ in range(2):
        upstream.add(KIT.text("ok", stream=False))
    cfg = config(
        providers(**{name: upstream}) + f'[rate_limits.{name}]\nrequests_per_minute = 1\non_limit = "fail"\n' + NO_RETRY
    )
    await llmrelay.chat(f"{name}/m", "one", config=cfg)
    with pytest.raises(RateLimitError):
        await llmrelay.chat(f"{name}/m", "two", config=cfg)
    assert len(upstream.requests) == 1


async def test_a_redis_backend_shares_one_budget_between_registries(upstream: FakeUpstream, redis_server: str) -> None:
    name = unique("rl")
    for _ in range(4):
        upstream.add(KIT.text("ok", stream=False))
    text = (
        providers(**{name: upstream})
        + f'[rate_limits]\nbackend = "{redis_server}"\n'
        + f'[rate_limits.{name}]\nrequests_per_minute = 3\non_limit = "fail"\n'
        + NO_RETRY
    )
    accepted = refused = 0
    async with ProviderRegistry(config(text)) as one, ProviderRegistry(config(text)) as two:
        for reg in (one, two, one, two, one):
            try:
                await reg.provider(f"{name}/m").chat(HELLO)
                accepted += 1
            except RateLimitError:
                refused += 1
    assert (accepted, refused) == (3, 2)
    assert len(upstream.requests) == 3


# --- [budgets] and [prices] -----------------------------------------------------------------------------


async def test_a_spent_budget_moves_a_fallback_to_the_next_member_and_every_call_is_a_ledger_row(
    upstream: FakeUpstream, second: FakeUpstream, tmp_path: Path
) -> None:
    a, b = unique("a"), unique("b")
    for _ in range(2):
        upstream.add(KIT.text("from a", stream=False, usage=(1000, 1000)))
        second.add(KIT.text("from b", stream=False, usage=(10, 5)))
    cfg = config(
        providers(**{a: upstream, b: second})
        + f'[fallbacks]\nmain = ["{a}/m", "{b}/m"]\n'
        + '[budgets]\nstore = "sqlite:///ledger.db"\n'
        + f'[budgets.{a}]\nmax_cost = "0.002"\n'
        + f"[prices.{a}]\ninput_per_mtok = 1\noutput_per_mtok = 1\n"
        + f'[prices.{b}]\ninput_per_mtok = "0.5"\noutput_per_mtok = "0.5"\n'
        + NO_RETRY,
        file=tmp_path / "llmrelay.toml",
    )
    async with ProviderRegistry(cfg) as reg:
        first = await reg.provider("main").chat(HELLO)
        later = await reg.provider("main").chat(HELLO)
    assert (first.text, first.provider) == ("from a", a)  # 2000 tokens at $1/M: $0.002, the whole budget
    assert (later.text, later.provider) == ("from b", b)
    assert [x.error.kind for x in later.attempts] == ["budget_exceeded"]
    assert len(upstream.requests) == 1
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # relative to the configuration file
        rows = db.execute("SELECT provider, outcome FROM ledger ORDER BY id").fetchall()
    assert (a, "ok") in rows and (b, "ok") in rows


# --- CLI ------------------------------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) and k not in ("OLLAMA_HOST", "LLMRELAY_CONFIG")
    }
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path), **extra)
    return env


async def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        *args,
        env=env or _env(tmp_path),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode()


async def test_chat_json_done_line_carries_the_cost_and_the_usage_line_shows_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add(KIT.text("priced", stream=True, usage=(1000, 500)))
    upstream.add(KIT.text("priced again", stream=False, usage=(1000, 500)))
    (tmp_path / "llmrelay.toml").write_text(
        providers(work=upstream) + '[prices."work/m"]\ninput_per_mtok = "0.15"\noutput_per_mtok = "0.60"\n'
    )
    code, out, err = await _cli(tmp_path, "chat", "-m", "work/m", "--json", "hi")
    assert code == 0, err
    done = json.loads(out.splitlines()[-1])
    expected = {"total": "0.00045", "currency": "USD", "source": "override work/m"}
    assert done["type"] == "done" and done["cost"] == expected  # 1000 x 0.15/M + 500 x 0.60/M
    code, out, err = await _cli(tmp_path, "chat", "-m", "work/m", "--no-stream", "hi")
    assert code == 0, err
    assert re.search(r"1000 in \+ 500 out = 1500 tokens · \$0\.00045 · finish: stop", err), err


async def test_an_unpriced_provider_has_an_unknown_cost_never_zero(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.add(KIT.text("free?", stream=True))
    (tmp_path / "llmrelay.toml").write_text(providers(work=upstream))
    code, out, err = await _cli(tmp_path, "chat", "-m", "work/m", "--json", "hi")
    assert code == 0, err
    cost = json.loads(out.splitlines()[-1])["cost"]
    assert cost["total"] is None and "PriceOverride" in cost["unknown"]
    assert "$" not in err


async def test_config_show_prints_the_new_sections_and_redacts_a_redis_password(tmp_path: Path) -> None:
    (tmp_path / "llmrelay.toml").write_text(
        '[providers.work]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[fallbacks.main]\nmodels = ["work/a", "work/b"]\nfirst_event_timeout = 5\n'
        '[routers.pool]\nstrategy = "weighted"\ndeployments = ["work/a", { model = "work/b", weight = 3 }]\n'
        '[rate_limits]\nbackend = "redis://:hunter2secret@127.0.0.1:6379/0"\n'
        '[rate_limits.work]\ntokens_per_minute = 1000\non_limit = "fail"\n'
        '[budgets]\nstore = "sqlite:///ledger.db"\n[budgets."*"]\nmax_cost = "2.50"\nperiod = "month"\n'
        '[prices.work]\ninput_per_mtok = "0.1"\noutput_per_mtok = "0.2"\n'
    )
    code, out, err = await _cli(tmp_path, "config", "show")
    assert code == 0, err
    assert "hunter2secret" not in out and "[REDACTED]" in out
    shown = tomllib.loads(out.replace("[REDACTED]", "x"))
    assert shown["fallbacks"]["main"] == {"models": ["work/a", "work/b"], "first_event_timeout": 5.0}
    assert shown["routers"]["pool"]["deployments"] == ["work/a", {"model": "work/b", "weight": 3.0}]
    assert shown["rate_limits"]["work"]["on_limit"] == "fail"
    assert shown["budgets"]["*"] == {"max_cost": "2.50", "period": "month", "currency": "USD"}
    assert shown["prices"]["work"]["input_per_mtok"] == "0.1"


def test_the_readme_configuration_example_is_valid() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("### llmrelay.toml", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = config(block)
    assert not [w for w in caught if "not yet in effect" in str(w.message)]  # every section is in effect
    assert parsed.routers["gpt4o"].strategy == "least_in_flight"
    assert parsed.rate_limits.backend.startswith("redis://")
    assert parsed.budgets is not None and parsed.budgets.budgets["*"].max_cost == Decimal("25.00")
    assert parsed.fallback_options["careful"].first_event_timeout == 15.0
    assert parsed.prices["work"].output_per_mtok == Decimal("0.60")
