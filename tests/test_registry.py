"""ProviderRegistry: model strings, the default model, the factory from config entries, endpoint rows and
environment variables, and safety under threads and tasks. HTTP goes to a fake upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmrelay import (
    AzureOpenAIProvider,
    ChatRequest,
    Message,
    MissingApiKey,
    OpenAIProvider,
    Provider,
    Timeouts,
)
from llmrelay.config import Config, ConfigError, ProviderConfig, parse_config
from llmrelay.providers.local import LocalProvider
from llmrelay.registry import ModelRef, ProviderRegistry, build_provider, known_types, register_provider_type
from llmrelay.testing import FakeUpstream
from llmrelay.testing.openai_kit import KIT
from llmrelay.wrappers import Retrying

HELLO = ChatRequest(messages=[Message.user("Hello")])


@pytest.fixture(autouse=True)
def _clean(clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    yield


def config(text: str) -> Config:
    import tomllib

    return parse_config(tomllib.loads(text), "/cfg/llmrelay.toml")


def bare(reg: ProviderRegistry, model: str) -> Provider:
    """The bare provider for a model string (``provider()`` returns the configured stack around it)."""
    ref = reg.resolve(model)
    return reg.get(ref.provider, ref.model)


# --- model strings ------------------------------------------------------------------------------------------


def test_model_strings_resolve_to_provider_and_model() -> None:
    reg = ProviderRegistry(config('[aliases]\nfast = "groq/llama-3.3-70b"\nquick = "fast"\nbare = "groq"'))
    assert reg.resolve("openai/gpt-4o-mini") == ModelRef("openai", "gpt-4o-mini")
    assert reg.resolve("anthropic/claude-sonnet-4-5") == ModelRef("anthropic", "claude-sonnet-4-5")
    assert reg.resolve("ollama/llama3.2") == ModelRef("ollama", "llama3.2")
    assert reg.resolve("local/smollm2") == ModelRef("local", "smollm2")
    assert reg.resolve("openrouter/meta-llama/llama-3.3-70b") == ModelRef("openrouter", "meta-llama/llama-3.3-70b")
    assert reg.resolve("groq") == ModelRef("groq", None)
    assert reg.resolve("fast") == ModelRef("groq", "llama-3.3-70b", source="alias", alias="fast")
    assert reg.resolve("quick") == ModelRef("groq", "llama-3.3-70b", source="alias", alias="quick")
    assert reg.resolve("bare") == ModelRef("groq", None, source="alias", alias="bare")
    assert str(reg.resolve("groq/llama-3.3-70b")) == "groq/llama-3.3-70b"


def test_an_unknown_provider_is_a_clear_error_listing_what_is_available() -> None:
    reg = ProviderRegistry(config('[providers.work]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"'))
    with pytest.raises(ConfigError) as info:
        reg.resolve("grok/llama")
    message = str(info.value)
    assert "unknown provider 'grok' (did you mean 'groq'?)" in message
    for name in ("work", "openai", "anthropic", "groq", "local"):
        assert name in message
    assert "[providers.grok]" in message


def test_default_model_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ProviderRegistry().default_model() == ModelRef("local", "smollm2", source="builtin")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-test")
    assert ProviderRegistry().default_model() == ModelRef("gemini", "gemini-2.5-flash", source="env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert ProviderRegistry().default_model() == ModelRef("anthropic", "claude-haiku-4-5", source="env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert ProviderRegistry().default_model() == ModelRef("openai", "gpt-4o-mini", source="env")
    assert ProviderRegistry().resolve(None) == ModelRef("openai", "gpt-4o-mini", source="env")

    with_model = config('[providers.groq]\ndefault_model = "llama-3.3-70b"')
    assert ProviderRegistry(with_model).default_model() == ModelRef("groq", "llama-3.3-70b", source="config")
    explicit = config('default = "fast"\n[aliases]\nfast = "groq/x"')
    assert ProviderRegistry(explicit).default_model() == ModelRef("groq", "x", source="config", alias="fast")
    without = config('[providers.groq]\ntype = "groq"')
    with pytest.raises(ConfigError, match=r"/cfg/llmrelay.toml: default: no default model"):
        ProviderRegistry(without).default_model()


# --- the factory --------------------------------------------------------------------------------------------


async def test_env_only_openai_reaches_the_base_url_with_the_key(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0000000000")
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url("/v1"))
    upstream.add(KIT.text("Hello there", stream=True))
    async with ProviderRegistry() as reg:
        stack = reg.provider("openai/gpt-4o-mini")
        provider = bare(reg, "openai/gpt-4o-mini")
        assert isinstance(provider, OpenAIProvider)
        assert isinstance(stack, Retrying) and stack.inner is provider and stack.max_attempts == 3
        async with provider.chat_stream(HELLO) as stream:
            reply = await stream.until_done()
    assert reply.text == "Hello there"
    seen = upstream.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "gpt-4o-mini"
    assert seen.headers["authorization"] == "Bearer sk-env-key-0000000000"


async def test_a_config_entry_sets_url_key_variable_headers_timeouts_and_settings(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORK_LLM_KEY", "sk-work-key-1111111111")
    cfg = config(
        f"""
        [providers.work]
        type = "openai"
        base_url = "{upstream.url("/v1")}"
        api_key_env = "WORK_LLM_KEY"
        default_model = "qwen"
        headers = {{ "X-Team" = "research" }}
        timeouts = {{ connect = 3, idle = 7 }}
        settings = {{ organization = "org-42" }}
        """
    )
    upstream.add(KIT.text("ok", stream=False))
    async with ProviderRegistry(cfg) as reg:
        provider = bare(reg, "work")
        assert isinstance(provider, OpenAIProvider)
        assert provider.name == "work" and provider.model == "qwen"
        assert provider.timeouts == Timeouts(connect=3, idle=7)
        reply = await provider.chat(HELLO)
    assert reply.text == "ok" and reply.provider == "work"
    seen = upstream.requests[0]
    assert seen.json["model"] == "qwen"
    assert seen.headers["authorization"] == "Bearer sk-work-key-1111111111"
    assert seen.headers["x-team"] == "research"
    assert seen.headers["openai-organization"] == "org-42"


async def test_a_server_of_your_own_needs_no_key(upstream: FakeUpstream) -> None:
    cfg = config(f'[providers.box]\ntype = "openai"\nbase_url = "{upstream.url("/v1")}"')
    upstream.add(KIT.text("local answer", stream=False))
    async with ProviderRegistry(cfg) as reg:
        reply = await reg.provider("box/some-model").chat(HELLO)
    assert reply.text == "local answer"
    assert "authorization" not in upstream.requests[0].headers
    assert upstream.requests[0].json["model"] == "some-model"


def test_endpoint_rows_are_reached_by_name_with_their_own_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_test_0123456789")
    provider = bare(ProviderRegistry(), "groq/llama-3.3-70b")
    assert isinstance(provider, OpenAIProvider)
    assert (provider.name, provider.model, provider.base_url) == (
        "groq",
        "llama-3.3-70b",
        "https://api.groq.com/openai/v1",
    )


async def test_azure_env_vars_and_the_deployment_from_the_model_string(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", upstream.url(""))
    upstream.add(KIT.text("from azure", stream=False))
    async with ProviderRegistry() as reg:
        provider = bare(reg, "azure/my-deploy")
        assert isinstance(provider, AzureOpenAIProvider) and provider.deployment == "my-deploy"
        reply = await provider.chat(HELLO)
    assert reply.text == "from azure"
    assert upstream.requests[0].path == "/openai/deployments/my-deploy/chat/completions"
    assert upstream.requests[0].headers["api-key"] == "azure-key-0123456789"


def test_ollama_host_moves_the_ollama_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:12345")
    provider = bare(ProviderRegistry(), "ollama/llama3.2")
    assert getattr(provider, "base_url", None) == "http://127.0.0.1:12345"


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", ":8080", "https://ollama.example", "::1", "box/ollama/"])
def test_ollama_host_is_read_one_way_whichever_way_the_provider_is_built(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    from llmrelay.providers.ollama import OllamaProvider

    monkeypatch.setenv("OLLAMA_HOST", host)
    through_registry = bare(ProviderRegistry(), "ollama/llama3.2")
    assert getattr(through_registry, "base_url", None) == OllamaProvider("llama3.2").base_url


def test_a_missing_azure_endpoint_is_told_apart_by_its_code_not_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789")
    with pytest.raises(MissingApiKey) as info:
        ProviderRegistry().provider("azure/my-deploy")
    assert info.value.code == "missing_endpoint" and "AZURE_OPENAI_ENDPOINT" in str(info.value)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    with pytest.raises(MissingApiKey, match="AZURE_OPENAI_API_KEY"):
        ProviderRegistry().provider("azure/my-deploy")


def test_a_missing_key_names_the_variable_and_the_config_key() -> None:
    with pytest.raises(MissingApiKey) as info:
        ProviderRegistry().provider("groq/llama-3.3-70b")
    message = str(info.value)
    assert "GROQ_API_KEY" in message and "api_key_env under [providers.groq]" in message
    with pytest.raises(MissingApiKey, match="MY_VAR"):
        ProviderRegistry(config('[providers.groq]\napi_key_env = "MY_VAR"')).provider("groq/x")


def test_a_typo_in_a_type_suggests_the_closest_known_one() -> None:
    with pytest.raises(ConfigError) as info:
        ProviderRegistry(config('[providers.work]\ntype = "opneai"')).provider("work/x")
    assert str(info.value).startswith("/cfg/llmrelay.toml: providers.work.type: unknown provider type 'opneai'")
    assert "(did you mean 'openai'?)" in str(info.value)
    assert info.value.key == "providers.work.type"
    with pytest.raises(ConfigError, match=r"providers.mygroq: 'mygroq' is not a known provider type .* needs type"):
        ProviderRegistry(config('[providers.mygroq]\ndefault_model = "x"')).provider("mygroq")


def test_an_unknown_setting_is_named_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    cfg = config('[providers.openai]\nsettings = { organisation = "x" }')
    with pytest.raises(ConfigError) as info:
        ProviderRegistry(cfg).provider("openai/gpt-4o-mini")
    assert "providers.openai.settings.organisation" in str(info.value)
    assert "did you mean 'organization'?" in str(info.value)
    with pytest.raises(ConfigError, match=r"providers.mine.base_url: the provider type 'local' does not take base_url"):
        build_provider(ProviderConfig(name="mine", type="local", base_url="http://x"))


def test_the_local_type_builds_a_local_provider_without_loading_anything() -> None:
    cfg = config('[providers.mine]\ntype = "local"\nsettings = { n_ctx = 512 }')
    provider = bare(ProviderRegistry(cfg), "mine/smollm2")
    assert isinstance(provider, LocalProvider)
    assert (provider.name, provider.model) == ("mine", "smollm2")
    assert isinstance(bare(ProviderRegistry(), "local"), LocalProvider)


def test_check_reports_each_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    cfg = config('[providers.openai]\n[providers.groq]\n[providers.mine]\ntype = "local"')
    results = dict(ProviderRegistry(cfg).check())
    assert results["openai"] is None and results["mine"] is None
    assert isinstance(results["groq"], MissingApiKey)
    with pytest.raises(ConfigError, match=r"/cfg/llmrelay.toml: fallbacks.main\[1\]: unknown provider 'opnai'"):
        ProviderRegistry(config('[fallbacks]\nmain = ["openai/a", "opnai/b"]')).check()


# --- registration and concurrency ---------------------------------------------------------------------------


class Scripted(Provider):
    """A provider with no I/O, for registry bookkeeping tests."""

    def __init__(self, model: str | None = None, name: str = "scripted") -> None:
        self.name = name
        self.model = model

    def chat_stream(self, request: ChatRequest):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_register_get_and_list() -> None:
    reg = ProviderRegistry(config('[providers.work]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"'))
    instance = Scripted()
    reg.register("mine", instance)
    assert reg.get("mine") is instance and reg.get("mine", "any-model") is instance
    assert reg.resolve("mine/x") == ModelRef("mine", "x")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("mine", Scripted())
    reg.register("made", lambda model: Scripted(model, name="made"))
    assert reg.get("made", "a").model == "a" and reg.get("made", "a") is reg.get("made", "a")
    names = reg.list()
    for name in ("mine", "made", "work", "openai", "groq", "anthropic", "local"):
        assert name in names
    assert names == sorted(names)
    with pytest.raises(ValueError):
        reg.register("a/b", instance)


async def test_one_build_per_provider_under_threads_and_tasks() -> None:
    builds = 0
    lock = threading.Lock()

    def factory(model: str | None) -> Provider:
        nonlocal builds
        with lock:
            builds += 1
        time.sleep(0.02)  # widen the race window
        return Scripted(model)

    reg = ProviderRegistry()
    reg.register("slow", factory)
    with ThreadPoolExecutor(max_workers=8) as pool:
        from_threads = list(pool.map(lambda _: reg.get("slow", "m"), range(16)))
    from_tasks = await asyncio.gather(*(asyncio.to_thread(reg.get, "slow", "m") for _ in range(16)))
    assert builds == 1
    assert all(p is from_threads[0] for p in [*from_threads, *from_tasks])

    with ThreadPoolExecutor(max_workers=8) as pool:
        built = list(pool.map(lambda i: reg.get("local", f"model-{i % 2}"), range(16)))
    assert len({id(p) for p in built}) == 2


def test_register_provider_type_with_a_callable() -> None:
    register_provider_type("scripted-test", lambda **kw: Scripted(kw["model"], name=kw["name"]))
    try:
        assert "scripted-test" in known_types()
        provider = bare(ProviderRegistry(config('[providers.s]\ntype = "scripted-test"')), "s/m1")
        assert isinstance(provider, Scripted) and (provider.name, provider.model) == ("s", "m1")
        assert isinstance(bare(ProviderRegistry(), "scripted-test/m2"), Scripted)
        with pytest.raises(ValueError, match="already registered"):
            register_provider_type("scripted-test", "x:y")
    finally:
        from llmrelay import registry
        from llmrelay.endpoints import DIALECT_PROVIDERS

        DIALECT_PROVIDERS.pop("scripted-test", None)
        registry._CALLABLE_TYPES.pop("scripted-test", None)


async def test_aclose_closes_the_shared_pool(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url("/v1"))
    upstream.add(KIT.text("one", stream=False), KIT.text("two", stream=False))
    reg = ProviderRegistry()
    a = bare(reg, "openai/a")
    b = bare(reg, "openai/b")
    assert a is not b
    assert (await a.chat(HELLO)).text == "one"
    assert (await b.chat(HELLO)).text == "two"
    transport = reg._transport
    assert transport is not None and a._transport is transport and b._transport is transport  # type: ignore[attr-defined]
    await reg.aclose()
    assert not transport._sessions  # type: ignore[attr-defined]
