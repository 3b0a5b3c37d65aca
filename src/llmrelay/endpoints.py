"""Endpoints as data: which dialect a service speaks, where it lives, and how it authenticates.

Groq, DeepSeek, vLLM, OpenRouter and the rest differ only in data, so each is one ``Endpoint`` row;
adding a service is adding a row (here, with ``register_endpoint``, or through the ``llmrelay.endpoints``
entry-point group). ``provider_for(row, model)`` builds the ``Provider`` for a row through the dialect's
provider class, so no code anywhere branches on a service's name.

The base URLs are the vendors' documented defaults; each can be overridden per call, by configuration,
or by the row's ``base_url_env`` environment variable.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._errors import InvalidRequestError
from ._provider import Provider

__all__ = [
    "DIALECT_PROVIDERS",
    "Endpoint",
    "endpoint",
    "endpoints",
    "provider_for",
    "register_endpoint",
]

AuthStyle = Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "none"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One service: a name, the dialect it speaks, its base URL and its auth."""

    name: str
    dialect: str
    """Key in ``DIALECT_PROVIDERS``: ``openai``, ``azure``, ``anthropic``, ``gemini``, ``ollama``, ``cohere``."""
    base_url: str | None
    auth: AuthStyle = "bearer"
    key_env: tuple[str, ...] = ()
    """Environment variables holding the key, tried in order."""
    key_required: bool = True
    base_url_env: str | None = None
    """An environment variable that overrides ``base_url``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    docs: str = ""

    def resolved_base_url(self) -> str | None:
        if self.base_url_env:
            from_env = os.environ.get(self.base_url_env)
            if from_env:
                return from_env
        return self.base_url

    def resolved_key(self) -> str | None:
        for var in self.key_env:
            value = os.environ.get(var)
            if value:
                return value
        return None


def _openai_compatible(
    name: str,
    base_url: str,
    key_env: tuple[str, ...],
    docs: str,
    *,
    key_required: bool = True,
    base_url_env: str | None = None,
) -> Endpoint:
    auth: AuthStyle = "bearer" if key_required or key_env else "none"
    return Endpoint(
        name, "openai", base_url, auth, key_env, key_required=key_required, base_url_env=base_url_env, docs=docs
    )


_BUILTIN: tuple[Endpoint, ...] = (
    _openai_compatible(
        "openai",
        "https://api.openai.com/v1",
        ("OPENAI_API_KEY",),
        "https://platform.openai.com/docs/api-reference",
        base_url_env="OPENAI_BASE_URL",
    ),
    Endpoint(
        "azure",
        "azure",
        None,
        "api-key",
        ("AZURE_OPENAI_API_KEY",),
        base_url_env="AZURE_OPENAI_ENDPOINT",
        docs="https://learn.microsoft.com/azure/ai-services/openai/reference",
    ),
    _openai_compatible(
        "groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), "https://console.groq.com/docs/openai"
    ),
    _openai_compatible(
        "together",
        "https://api.together.xyz/v1",
        ("TOGETHER_API_KEY",),
        "https://docs.together.ai/docs/openai-api-compatibility",
    ),
    _openai_compatible("deepseek", "https://api.deepseek.com", ("DEEPSEEK_API_KEY",), "https://api-docs.deepseek.com/"),
    _openai_compatible("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), "https://docs.mistral.ai/api/"),
    _openai_compatible(
        "openrouter",
        "https://openrouter.ai/api/v1",
        ("OPENROUTER_API_KEY",),
        "https://openrouter.ai/docs/api-reference/overview",
    ),
    _openai_compatible(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_KEY",),
        "https://docs.fireworks.ai/tools-sdks/openai-compatibility",
    ),
    _openai_compatible("xai", "https://api.x.ai/v1", ("XAI_API_KEY",), "https://docs.x.ai/docs/api-reference"),
    _openai_compatible(
        "perplexity",
        "https://api.perplexity.ai",
        ("PERPLEXITY_API_KEY", "PPLX_API_KEY"),
        "https://docs.perplexity.ai/api-reference/chat-completions-post",
    ),
    _openai_compatible(
        "cerebras",
        "https://api.cerebras.ai/v1",
        ("CEREBRAS_API_KEY",),
        "https://inference-docs.cerebras.ai/resources/openai",
    ),
    _openai_compatible(
        "dashscope",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        ("DASHSCOPE_API_KEY",),
        "https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope",
    ),
    _openai_compatible(
        "nvidia",
        "https://integrate.api.nvidia.com/v1",
        ("NVIDIA_API_KEY",),
        "https://docs.api.nvidia.com/nim/reference/llm-apis",
    ),
    _openai_compatible(
        "lmstudio",
        "http://localhost:1234/v1",
        ("LMSTUDIO_API_KEY",),
        "https://lmstudio.ai/docs/app/api/endpoints/openai",
        key_required=False,
        base_url_env="LMSTUDIO_BASE_URL",
    ),
    _openai_compatible(
        "vllm",
        "http://localhost:8000/v1",
        ("VLLM_API_KEY",),
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
        key_required=False,
        base_url_env="VLLM_BASE_URL",
    ),
    _openai_compatible(
        "llamacpp",
        "http://localhost:8080/v1",
        ("LLAMACPP_API_KEY",),
        "https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
        key_required=False,
        base_url_env="LLAMACPP_BASE_URL",
    ),
    _openai_compatible(
        "ollama-openai",
        "http://localhost:11434/v1",
        ("OLLAMA_API_KEY",),
        "https://ollama.com/blog/openai-compatibility",
        key_required=False,
        base_url_env="OLLAMA_OPENAI_BASE_URL",
    ),
    Endpoint(
        "anthropic",
        "anthropic",
        "https://api.anthropic.com",
        "x-api-key",
        ("ANTHROPIC_API_KEY",),
        base_url_env="ANTHROPIC_BASE_URL",
        docs="https://docs.anthropic.com/en/api/messages",
    ),
    Endpoint(
        "gemini",
        "gemini",
        "https://generativelanguage.googleapis.com",
        "x-goog-api-key",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        docs="https://ai.google.dev/api/generate-content",
    ),
    Endpoint(
        "ollama",
        "ollama",
        None,  # OllamaProvider resolves $OLLAMA_HOST the way the ollama CLI does (default localhost:11434)
        "bearer",  # optional: only for deployments behind an authenticating proxy
        ("OLLAMA_API_KEY",),
        key_required=False,
        docs="https://github.com/ollama/ollama/blob/main/docs/api.md",
    ),
    Endpoint(
        "cohere",
        "cohere",
        "https://api.cohere.com",
        "bearer",
        ("CO_API_KEY", "COHERE_API_KEY"),
        base_url_env="CO_API_URL",
        docs="https://docs.cohere.com/reference/chat",
    ),
)

DIALECT_PROVIDERS: dict[str, str] = {
    "openai": "llmrelay.providers.openai:OpenAIProvider",
    "azure": "llmrelay.providers.azure:AzureOpenAIProvider",
    "anthropic": "llmrelay.providers.anthropic:AnthropicProvider",
    "gemini": "llmrelay.providers.gemini:GeminiProvider",
    "ollama": "llmrelay.providers.ollama:OllamaProvider",
    "cohere": "llmrelay.providers.cohere:CohereProvider",
}
"""Dialect name -> ``module:Class`` of the provider that speaks it (loaded on first use)."""

_lock = threading.Lock()
_rows: dict[str, Endpoint] = {row.name: row for row in _BUILTIN}


def register_endpoint(row: Endpoint, *, replace_existing: bool = False) -> None:
    """Add a service row (thread-safe). Re-registering a name needs ``replace_existing=True``."""
    if row.dialect not in DIALECT_PROVIDERS:
        raise ValueError(
            f"endpoint {row.name!r}: unknown dialect {row.dialect!r} (known: {', '.join(sorted(DIALECT_PROVIDERS))})"
        )
    with _lock:
        if row.name in _rows and not replace_existing:
            raise ValueError(f"endpoint {row.name!r} is already registered")
        _rows[row.name] = row


def endpoints() -> list[Endpoint]:
    """All known rows, sorted by name."""
    with _lock:
        return sorted(_rows.values(), key=lambda r: r.name)


def endpoint(name: str) -> Endpoint:
    """The row named ``name``; an unknown name is an error that lists the known ones."""
    with _lock:
        row = _rows.get(name)
        known = sorted(_rows)
    if row is None:
        raise InvalidRequestError(f"unknown endpoint {name!r}; known endpoints: {', '.join(known)}")
    return row


def _provider_class(dialect: str) -> Any:
    target = DIALECT_PROVIDERS.get(dialect)
    if target is None:
        raise InvalidRequestError(f"no provider for dialect {dialect!r}; known: {', '.join(sorted(DIALECT_PROVIDERS))}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def provider_for(row: Endpoint | str, model: str | None = None, **overrides: Any) -> Provider:
    """Build the provider for a row. ``overrides`` (``base_url``, ``api_key``, ``headers``, ``timeouts``,
    ``transport``, ...) are passed to the dialect's provider class."""
    if isinstance(row, str):
        row = endpoint(row)
    cls = _provider_class(row.dialect)
    kwargs: dict[str, Any] = {"name": row.name}
    base_url = overrides.pop("base_url", None) or row.resolved_base_url()
    headers = {**row.headers, **(overrides.pop("headers", None) or {})}
    if headers:
        kwargs["headers"] = headers
    if row.dialect == "azure":
        kwargs["endpoint"] = base_url
        kwargs["deployment"] = overrides.pop("deployment", None) or model
        if model:
            kwargs["model"] = model
    else:
        kwargs["model"] = model
        if base_url:
            kwargs["base_url"] = base_url
    if "api_key" not in overrides:
        kwargs["api_key"] = row.resolved_key()
    kwargs["api_key_env"] = row.key_env[0] if row.key_env else None
    if row.dialect == "openai":
        kwargs["require_api_key"] = row.key_required
    kwargs.update(overrides)
    provider: Provider = cls(**kwargs)
    return provider


def with_base_url(row: Endpoint, base_url: str) -> Endpoint:
    """A copy of ``row`` pointed elsewhere (tests, proxies)."""
    return replace(row, base_url=base_url, base_url_env=None)
