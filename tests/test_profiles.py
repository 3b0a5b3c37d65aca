"""Model profiles are data (``llmrelay.profiles``): table lookups, first match wins, the unknown default,
every provider's ``capabilities()`` read from its profile; and the registry package keeps its exports."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from llmrelay import AnthropicProvider, Capabilities, OpenAIProvider, Provider
from llmrelay.profiles import PROFILES, UNKNOWN, ModelProfile, ProfileRule, profile_for
from llmrelay.providers.local import LocalProvider
from llmrelay.registry import ProviderRegistry

FULL = Capabilities(vision=True, json_schema=True, reasoning=True)
"""What a dialect's API can carry: the capabilities every HTTP provider reported before profiles."""


@pytest.fixture
def keys(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "CO_API_KEY"):
        monkeypatch.setenv(var, "test-key")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    yield


def test_known_models_have_their_vendor_numbers() -> None:
    gpt = profile_for("openai", "gpt-4o-mini", dialect="openai")
    assert (gpt.context_window, gpt.max_output_tokens) == (128_000, 16_384)
    assert gpt.vision and gpt.json_schema and not gpt.reasoning
    assert profile_for("openai", "gpt-4.1-mini", dialect="openai").context_window == 1_047_576
    assert profile_for("openai", "o3", dialect="openai").reasoning
    assert profile_for("openai", "o4-mini-2025-04-16", dialect="openai").max_output_tokens == 100_000
    assert not profile_for("openai", "o3-mini", dialect="openai").vision
    assert profile_for("anthropic", "claude-haiku-4-5", dialect="anthropic").max_output_tokens == 64_000
    assert profile_for("anthropic", "claude-opus-4-1", dialect="anthropic").max_output_tokens == 32_000
    assert profile_for("anthropic", "claude-opus-4-5", dialect="anthropic").max_output_tokens == 64_000
    assert profile_for("gemini", "gemini-2.5-pro", dialect="gemini").context_window == 1_048_576
    groq = profile_for("groq", "llama-3.3-70b-versatile", dialect="openai")
    assert (groq.context_window, groq.max_output_tokens, groq.json_schema) == (131_072, 32_768, False)
    assert profile_for("ollama", "llama3.2:3b", dialect="ollama").context_window == 131_072
    assert profile_for("ollama", "llama3.2-vision", dialect="ollama").vision
    assert profile_for("ollama", "qwen3:8b", dialect="ollama").reasoning
    assert profile_for("local", "smollm2", dialect="local").context_window == 8_192


def test_globs_ignore_case_and_regexes_match_whole_names() -> None:
    assert profile_for("openai", "GPT-4o", dialect="openai").context_window == 128_000
    # "o3" is a regex rule: a longer name that merely starts with it is not o3.
    assert profile_for("openai", "o30-preview", dialect="openai").context_window is None
    rule = ProfileRule(re.compile(r"m-\d+"), ModelProfile(context_window=1))
    assert rule.matches("x", "m-12", None) and not rule.matches("x", "m-12b", None)


def test_provider_rules_follow_the_identity_and_dialect_rules_the_wire() -> None:
    # The same model name behind a provider of your own gets only what the dialect carries.
    mine = profile_for("work", "gpt-4o", dialect="openai")
    assert mine.context_window is None and mine.capabilities() == FULL
    # Groq speaks the openai dialect but OpenAI's rules are keyed on the provider name.
    assert profile_for("groq", "gpt-4o", dialect="openai").context_window is None


def test_first_match_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ModelProfile(context_window=1)
    table = [ProfileRule("m*", first), ProfileRule("m-1", ModelProfile(context_window=2)), *PROFILES]
    monkeypatch.setattr("llmrelay.profiles.PROFILES", table)
    assert profile_for("any", "m-1") is first
    # An inserted rule overrides the shipped one for the same model.
    monkeypatch.setattr("llmrelay.profiles.PROFILES", [ProfileRule("gpt-4o", first, provider="openai"), *PROFILES])
    assert profile_for("openai", "gpt-4o", dialect="openai") is first
    assert profile_for("openai", "gpt-4o-mini", dialect="openai").context_window == 128_000


def test_unknown_default() -> None:
    assert profile_for("nobody", "nothing") is UNKNOWN
    assert profile_for("nobody", None) is UNKNOWN
    assert (UNKNOWN.context_window, UNKNOWN.max_output_tokens) == (None, None)
    assert UNKNOWN.capabilities() == Capabilities()
    # No default model: only a dialect's "*" rule applies.
    assert profile_for("openai", None, dialect="openai").capabilities() == FULL
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNKNOWN.context_window = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model_string", "dialect"),
    [
        ("openai/gpt-4o", "openai"),
        ("openai/o3", "openai"),
        ("openai", "openai"),
        ("anthropic/claude-sonnet-4-5", "anthropic"),
        ("anthropic/some-future-model", "anthropic"),
        ("gemini/gemini-2.5-flash", "gemini"),
        ("groq/llama-3.3-70b-versatile", "openai"),
        ("ollama/qwen2.5:7b", "ollama"),
        ("cohere/command-a-03-2025", "cohere"),
        ("azure/my-deployment", "openai"),
        ("local/smollm2", "local"),
    ],
)
def test_every_provider_reports_its_profile(keys: None, model_string: str, dialect: str) -> None:
    registry = ProviderRegistry()
    ref = registry.resolve(model_string)
    provider = registry.provider(model_string)
    expected = profile_for(ref.provider, ref.model, dialect=dialect)
    assert provider.capabilities() == expected.capabilities()
    if dialect == "local":
        assert provider.profile() == dataclasses.replace(expected, context_window=4096)
    else:
        assert provider.profile() == expected


def test_dialect_defaults_are_what_each_provider_reported_before(keys: None) -> None:
    registry = ProviderRegistry()
    for name in ("openai", "anthropic", "gemini", "ollama", "cohere", "azure"):
        assert registry.provider(f"{name}/unknown-model").capabilities() == FULL, name
    local = Capabilities(tools=False, parallel_tools=False, vision=False, json_schema=True)
    assert registry.provider("local/my.gguf").capabilities() == local


def test_capabilities_follow_the_model() -> None:
    # Before profiles every OpenAI model claimed reasoning; gpt-4o has none, o3 has.
    assert not OpenAIProvider("gpt-4o", api_key="k").capabilities().reasoning
    assert OpenAIProvider("o3", api_key="k").capabilities().reasoning
    assert OpenAIProvider("gpt-4o", api_key="k").profile().max_output_tokens == 16_384


def test_an_explicit_capabilities_argument_still_wins() -> None:
    caps = Capabilities(tools=False)
    assert OpenAIProvider("gpt-4o", api_key="k", capabilities=caps).capabilities() is caps
    assert AnthropicProvider("claude-sonnet-4-5", api_key="k", capabilities=caps).capabilities() is caps


def test_local_reports_its_configured_context() -> None:
    profile = LocalProvider(n_ctx=2048).profile()
    assert profile.context_window == 2048 and not profile.tools and profile.json_schema
    assert LocalProvider(name="mine", model="smollm2").profile().context_window == 4096


class _Bare(Provider):
    def __init__(self, name: str, model: str | None) -> None:
        self.name, self.model = name, model

    def chat_stream(self, request: object) -> object:  # type: ignore[override]
        raise NotImplementedError


def test_a_provider_of_your_own_reads_the_table_by_name() -> None:
    assert _Bare("mine", "x").capabilities() == Capabilities()
    assert _Bare("groq", "llama-3.3-70b-versatile").profile().context_window == 131_072


def test_registry_package_keeps_its_names() -> None:
    import llmrelay.registry as registry

    assert registry.__all__ == [
        "ENV_DEFAULTS",
        "PROVIDERS_GROUP",
        "ENDPOINTS_GROUP",
        "ModelRef",
        "ProviderRegistry",
        "build_provider",
        "configured_entries",
        "known_types",
        "load_plugins",
        "price_overrides",
        "register_provider_type",
    ]
    for name in [*registry.__all__, "_row", "LOCAL_DEFAULT", "_CALLABLE_TYPES", "RegisteredProvider", "Source"]:
        assert hasattr(registry, name), name
    from llmrelay.registry import _factory, _plugins, _registry, _resolve

    assert registry._CALLABLE_TYPES is _plugins._CALLABLE_TYPES
    assert registry.ProviderRegistry is _registry.ProviderRegistry
    assert registry.build_provider is _factory.build_provider
    assert registry.ModelRef is _resolve.ModelRef
    assert registry.LOCAL_DEFAULT == ("local", "smollm2")
    assert "Where a provider name is looked up, first match wins" in (registry.__doc__ or "")


def test_import_llmrelay_loads_neither_registry_nor_profiles() -> None:
    code = (
        "import sys, llmrelay; "
        "print(','.join(m for m in ('llmrelay.registry', 'llmrelay.profiles', 'llmrelay.config') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
