"""llmrelay: one typed, async interface over many LLM providers.

Everything public is importable from here; the modules behind it are private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._accumulate import Accumulator, fold
from ._errors import (
    AllAttemptsFailed,
    Attempt,
    AuthError,
    BudgetExceeded,
    ConnectTimeout,
    ContentFilterError,
    ContextLengthError,
    FirstByteTimeout,
    FirstEventTimeout,
    IdleTimeout,
    InvalidRequestError,
    LlmError,
    MissingApiKey,
    ModelNotFoundError,
    NetworkError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    TotalTimeout,
    UnsupportedCapability,
)
from ._events import Done, ReasoningDelta, StreamEvent, TextChunks, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from ._provider import Capabilities, ChatStream, EventSource, LlmRelayWarning, ModelInfo, Provider
from ._transport import HttpRequest, HttpResponse, MockResponse, MockTransport, Timeouts, Transport
from ._types import (
    CallWarning,
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ReasoningPart,
    Role,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolDef,
    Usage,
)

__version__ = "0.1.0"

# Providers and other heavier names load on first use, so ``import llmrelay`` stays cheap; each entry maps
# a public name to the private module that defines it.
_LAZY = {
    "AnthropicProvider": "llmrelay.providers.anthropic",
    "AzureOpenAIProvider": "llmrelay.providers.azure",
    "Budget": "llmrelay.metering",
    "CohereProvider": "llmrelay.providers.cohere",
    "CircuitBreaker": "llmrelay.wrappers",
    "Config": "llmrelay.config",
    "ConfigError": "llmrelay.config",
    "Cost": "llmrelay.cost",
    "Deployment": "llmrelay.wrappers",
    "Endpoint": "llmrelay.endpoints",
    "Fallback": "llmrelay.wrappers",
    "GeminiProvider": "llmrelay.providers.gemini",
    "HttpProvider": "llmrelay._http_provider",
    "Hedged": "llmrelay.wrappers",
    "LocalModelCrash": "llmrelay.providers.local",
    "LocalProvider": "llmrelay.providers.local",
    "Metered": "llmrelay.metering",
    "ModelRef": "llmrelay.registry",
    "OllamaProvider": "llmrelay.providers.ollama",
    "OpenAIProvider": "llmrelay.providers.openai",
    "open_ledger": "llmrelay.metering",
    "PriceOverride": "llmrelay.cost",
    "ProviderConfig": "llmrelay.config",
    "ProviderRegistry": "llmrelay.registry",
    "RateLimited": "llmrelay.wrappers",
    "Retrying": "llmrelay.wrappers",
    "Router": "llmrelay.wrappers",
    "TokenCount": "llmrelay.tokens",
    "build_provider": "llmrelay.registry",
    "chat": "llmrelay.api",
    "chat_events": "llmrelay.api",
    "chat_events_sync": "llmrelay.api",
    "chat_stream": "llmrelay.api",
    "chat_stream_sync": "llmrelay.api",
    "chat_sync": "llmrelay.api",
    "cost_of": "llmrelay.cost",
    "count_tokens": "llmrelay.tokens",
    "dumps": "llmrelay._codec",
    "from_json": "llmrelay._codec",
    "iter_sync": "llmrelay._sync",
    "load_config": "llmrelay.config",
    "load_plugins": "llmrelay.registry",
    "loads": "llmrelay._codec",
    "provider_for": "llmrelay.endpoints",
    "register_endpoint": "llmrelay.endpoints",
    "register_provider_type": "llmrelay.registry",
    "run_sync": "llmrelay._sync",
    "to_json": "llmrelay._codec",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrelay' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from ._codec import dumps, from_json, loads, to_json
    from ._http_provider import HttpProvider
    from ._sync import iter_sync, run_sync
    from .api import chat, chat_events, chat_events_sync, chat_stream, chat_stream_sync, chat_sync
    from .config import Config, ConfigError, ProviderConfig, load_config
    from .cost import Cost, PriceOverride, cost_of
    from .endpoints import Endpoint, provider_for, register_endpoint
    from .metering import Budget, Metered, open_ledger
    from .providers.anthropic import AnthropicProvider
    from .providers.azure import AzureOpenAIProvider
    from .providers.cohere import CohereProvider
    from .providers.gemini import GeminiProvider
    from .providers.local import LocalModelCrash, LocalProvider
    from .providers.ollama import OllamaProvider
    from .providers.openai import OpenAIProvider
    from .registry import ModelRef, ProviderRegistry, build_provider, load_plugins, register_provider_type
    from .tokens import TokenCount, count_tokens
    from .wrappers import CircuitBreaker, Deployment, Fallback, Hedged, RateLimited, Retrying, Router

__all__ = [
    "Accumulator",
    "AllAttemptsFailed",
    "AnthropicProvider",
    "Attempt",
    "AuthError",
    "AzureOpenAIProvider",
    "Budget",
    "BudgetExceeded",
    "CallWarning",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "CircuitBreaker",
    "CohereProvider",
    "Config",
    "ConfigError",
    "ConnectTimeout",
    "ContentFilterError",
    "ContentPart",
    "ContextLengthError",
    "Cost",
    "Deployment",
    "Done",
    "Endpoint",
    "EventSource",
    "Fallback",
    "FinishReason",
    "FirstByteTimeout",
    "FirstEventTimeout",
    "GeminiProvider",
    "Hedged",
    "HttpProvider",
    "HttpRequest",
    "HttpResponse",
    "IdleTimeout",
    "ImagePart",
    "InvalidRequestError",
    "JsonSchemaFormat",
    "LlmError",
    "LlmRelayWarning",
    "LocalModelCrash",
    "LocalProvider",
    "Message",
    "Metered",
    "MissingApiKey",
    "MockResponse",
    "MockTransport",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelRef",
    "NetworkError",
    "OllamaProvider",
    "OpenAIProvider",
    "OverloadedError",
    "PriceOverride",
    "ProtocolError",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderRegistry",
    "QuotaExceededError",
    "RateLimitError",
    "RateLimited",
    "ReasoningDelta",
    "ReasoningPart",
    "RequestTimeout",
    "Retrying",
    "Role",
    "Router",
    "ServerError",
    "StreamEvent",
    "TextChunks",
    "TextDelta",
    "TextPart",
    "Timeouts",
    "TokenCount",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolChoice",
    "ToolDef",
    "TotalTimeout",
    "Transport",
    "UnsupportedCapability",
    "Usage",
    "build_provider",
    "chat",
    "chat_events",
    "chat_events_sync",
    "chat_stream",
    "chat_stream_sync",
    "chat_sync",
    "cost_of",
    "count_tokens",
    "dumps",
    "fold",
    "from_json",
    "iter_sync",
    "load_config",
    "load_plugins",
    "loads",
    "open_ledger",
    "provider_for",
    "register_endpoint",
    "register_provider_type",
    "run_sync",
    "to_json",
]
