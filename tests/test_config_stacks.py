"""Wrapper stacks from configuration: ``[fallbacks]`` names and the ``[retry]`` policy, against real
``FakeUpstream`` servers, through the registry and ``llmrelay.chat``."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import llmrelay
from llmrelay import ChatRequest, Message, OpenAIProvider, RateLimitError
from llmrelay.config import Config, ConfigError, parse_config
from llmrelay.registry import ProviderRegistry
from llmrelay.testing import FakeUpstream
from llmrelay.testing.openai_kit import KIT
from llmrelay.wrappers import Fallback, Retrying

HELLO = ChatRequest(messages=[Message.user("Hello")])
FAST_RETRY = "[retry]\nbase_delay = 0.01\nmax_delay = 0.02\n"
"""The default three attempts, with waits short enough for a test."""


@pytest.fixture(autouse=True)
def _clean(clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


def config(text: str) -> Config:
    return parse_config(tomllib.loads(text), "/cfg/llmrelay.toml")


def two_servers(first: FakeUpstream, second: FakeUpstream, extra: str = "") -> Config:
    return config(
        f'[providers.a]\ntype = "openai"\nbase_url = "{first.url("/v1")}"\n'
        f'[providers.b]\ntype = "openai"\nbase_url = "{second.url("/v1")}"\n'
        f'[fallbacks]\nmain = ["a/model-a", "b/model-b"]\n{extra}'
    )


# --- [fallbacks] --------------------------------------------------------------------------------------------


async def test_a_fallback_name_moves_on_from_a_503_to_the_next_member(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(KIT.error(503))
    second.add(KIT.text("from b", stream=False))
    async with ProviderRegistry(two_servers(upstream, second, "[retry]\nmax_attempts = 1\n")) as reg:
        stack = reg.provider("main")
        assert isinstance(stack, Fallback) and stack.name == "main"
        reply = await stack.chat(HELLO)
    assert (reply.text, reply.provider, reply.model) == ("from b", "b", "test-model")  # the model b says answered
    assert [(a.provider, a.model, a.error.status) for a in reply.attempts] == [("a", "model-a", 503)]
    # Per-attempt model binding: each member got its own model name, never the other's.
    assert upstream.requests[0].json["model"] == "model-a"
    assert second.requests[0].json["model"] == "model-b"


async def test_each_member_is_retried_by_the_default_policy_before_the_next_one_streaming(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    upstream.add(*[KIT.error(503) for _ in range(3)])
    second.add(KIT.text("streamed from b", stream=True))
    reg = ProviderRegistry(two_servers(upstream, second, FAST_RETRY))
    async with reg, reg.provider("main").chat_stream(HELLO) as stream:
        reply = await stream.until_done()
        assert (stream.provider, stream.model) == ("b", "test-model")
    assert reply.text == "streamed from b"
    assert [a.provider for a in reply.attempts] == ["a", "a", "a"]
    assert len(upstream.requests) == 3 and len(second.requests) == 1


async def test_llmrelay_chat_takes_a_fallback_name(upstream: FakeUpstream, second: FakeUpstream) -> None:
    upstream.add(KIT.error(503))
    second.add(KIT.text("via chat()", stream=False))
    reply = await llmrelay.chat("main", "Hello", config=two_servers(upstream, second, "[retry]\nmax_attempts = 1\n"))
    assert (reply.text, reply.provider) == ("via chat()", "b")
    assert len(reply.attempts) == 1 and second.requests[0].json["model"] == "model-b"


async def test_aliases_point_at_fallbacks_and_members_may_be_aliases_or_fallbacks(
    upstream: FakeUpstream, second: FakeUpstream
) -> None:
    cfg = config(
        f'[providers.a]\ntype = "openai"\nbase_url = "{upstream.url("/v1")}"\n'
        f'[providers.b]\ntype = "openai"\nbase_url = "{second.url("/v1")}"\n'
        '[aliases]\nbest = "outer"\nquick = "a/model-a"\n'
        '[fallbacks]\nouter = ["inner"]\ninner = ["quick", "b/model-b"]\n[retry]\nmax_attempts = 1\n'
    )
    upstream.add(KIT.error(503))
    second.add(KIT.text("nested", stream=False))
    async with ProviderRegistry(cfg) as reg:
        ref = reg.resolve("best")
        assert (ref.provider, ref.alias, ref.chain) == ("outer", "best", ("inner",))
        reply = await reg.provider("best").chat(HELLO)
    assert (reply.text, reply.provider) == ("nested", "b")
    assert [(a.provider, a.model) for a in reply.attempts] == [("a", "model-a")]


async def test_a_member_without_its_key_fails_over_instead_of_breaking_the_chain(second: FakeUpstream) -> None:
    cfg = config(
        f'[providers.b]\ntype = "openai"\nbase_url = "{second.url("/v1")}"\n'
        '[fallbacks]\nmain = ["groq/llama-3.3-70b-versatile", "b/model-b"]\n'
    )
    second.add(KIT.text("b answered", stream=False))
    async with ProviderRegistry(cfg) as reg:
        reply = await reg.provider("main").chat(HELLO)
    assert reply.text == "b answered"
    assert [(a.provider, a.error.kind) for a in reply.attempts] == [("groq", "missing_api_key")]


def test_an_unknown_member_is_a_config_error_naming_its_key_path() -> None:
    reg = ProviderRegistry(config('[fallbacks]\nmain = ["openai/gpt-4o-mini", "opnai/gpt-4o"]'))
    with pytest.raises(ConfigError) as info:
        reg.provider("main")
    assert info.value.key == "fallbacks.main[1]" and info.value.file == "/cfg/llmrelay.toml"
    assert "unknown provider 'opnai'" in str(info.value) and "did you mean 'openai'" in str(info.value)


def test_a_cycle_through_an_alias_is_a_config_error_naming_its_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        config('[aliases]\nagain = "main"\n[fallbacks]\nmain = ["openai/gpt-4o-mini", "again"]')
    assert info.value.key == "fallbacks.main[1]"
    assert str(info.value) == "/cfg/llmrelay.toml: fallbacks.main[1]: fallback cycle: main -> main"


# --- the default retry policy and [retry] -------------------------------------------------------------------


async def test_a_429_then_200_answers_through_the_default_retry_policy(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url("/v1"))
    upstream.add(KIT.error(429), KIT.text("second time lucky", stream=False))
    async with ProviderRegistry() as reg:
        stack = reg.provider("openai/x")
        assert isinstance(stack, Retrying) and stack.max_attempts == 3 and stack.inner is reg.get("openai", "x")
        reply = await stack.chat(HELLO)
    assert reply.text == "second time lucky"
    assert [a.error.kind for a in reply.attempts] == ["rate_limit"]
    assert [r.json["model"] for r in upstream.requests] == ["x", "x"]


async def test_max_attempts_1_disables_retries(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url("/v1"))
    upstream.add(KIT.error(429), KIT.text("never reached", stream=False))
    async with ProviderRegistry(config("[retry]\nmax_attempts = 1")) as reg:
        provider = reg.provider("openai/x")
        assert isinstance(provider, OpenAIProvider)  # no wrapper at all
        with pytest.raises(RateLimitError):
            await provider.chat(HELLO)
    assert len(upstream.requests) == 1


def test_the_retry_table_sets_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    cfg = config("[retry]\nmax_attempts = 5\nbase_delay = 0.1\nmax_delay = 2\ndeadline = 9")
    stack = ProviderRegistry(cfg).provider("openai/x")
    assert isinstance(stack, Retrying)
    assert (stack.max_attempts, stack.base_delay, stack.max_delay, stack.deadline) == (5, 0.1, 2.0, 9.0)
    # Forwarded to the bare provider: what the wrapper reports is the model's own profile.
    assert stack.profile() == stack.inner.profile() and stack.capabilities() == stack.inner.capabilities()
