"""Every endpoint row reaches its service with the right URL shape and auth header (fake upstream)."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

import pytest

from llmrelay import ChatRequest, Message
from llmrelay.endpoints import Endpoint, endpoint, endpoints, provider_for, register_endpoint
from llmrelay.testing import FakeUpstream

KEY = "test-key-0123456789abcdef"
EXPECTED_ROWS = {
    "openai", "azure", "groq", "together", "deepseek", "mistral", "openrouter", "fireworks", "xai",
    "perplexity", "cerebras", "dashscope", "nvidia", "lmstudio", "vllm", "llamacpp", "ollama-openai",
    "anthropic", "gemini", "ollama", "cohere",
}  # fmt: skip
CHAT_PATHS = {
    "openai": "/chat/completions",
    "azure": "/openai/deployments/test-model/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/test-model:streamGenerateContent",
    "ollama": "/api/chat",
    "cohere": "/v2/chat",
}
AUTH = {
    "bearer": ("authorization", f"Bearer {KEY}"),
    "api-key": ("api-key", KEY),
    "x-api-key": ("x-api-key", KEY),
    "x-goog-api-key": ("x-goog-api-key", KEY),
}


def kit_for(dialect: str):  # type: ignore[no-untyped-def]
    name = "openai" if dialect == "azure" else dialect
    return importlib.import_module(f"llmrelay.testing.{name}_kit").KIT


def test_all_rows_are_present() -> None:
    assert {row.name for row in endpoints()} >= EXPECTED_ROWS


@pytest.mark.parametrize("row", endpoints(), ids=lambda r: r.name)
async def test_row_url_and_auth(row: Endpoint, upstream: FakeUpstream, clean_env: None) -> None:
    upstream.add(kit_for(row.dialect).text("hi", stream=True))
    path = urlsplit(row.base_url).path.rstrip("/") if row.base_url else ""
    provider = provider_for(row, "test-model", base_url=upstream.url(path), api_key=KEY)
    async with provider, provider.chat_stream(ChatRequest(messages=[Message.user("x")], max_tokens=16)) as stream:
        assert (await stream.until_done()).text == "hi"
    seen = upstream.requests[0]
    assert seen.path == path + CHAT_PATHS[row.dialect]
    if row.auth == "none":
        assert "authorization" not in seen.headers
    else:
        header, value = AUTH[row.auth]
        assert seen.headers[header] == value
    assert provider.name == row.name


def test_unknown_endpoint_lists_known_ones() -> None:
    with pytest.raises(Exception, match="groq"):
        endpoint("grok")


def test_adding_a_service_is_one_row() -> None:
    register_endpoint(Endpoint("acme", "openai", "https://llm.acme.test/v1", key_env=("ACME_KEY",)))
    p = provider_for("acme", "m", api_key=KEY)
    assert p.name == "acme" and p.base_url == "https://llm.acme.test/v1"
    with pytest.raises(ValueError, match="already registered"):
        register_endpoint(Endpoint("acme", "openai", "https://x"))
    with pytest.raises(ValueError, match="unknown dialect"):
        register_endpoint(Endpoint("zed", "zed-dialect", "https://x"))


def test_row_key_env_is_read(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-from-env-123456")
    p = provider_for("groq", "llama")
    assert p._auth_headers()["authorization"] == "Bearer gsk-from-env-123456"  # type: ignore[attr-defined]
