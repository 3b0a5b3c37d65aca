"""llmrelay: one typed, async interface over many LLM providers.

Everything public is importable from here; the modules behind it are private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._accumulate import Accumulator, fold
from ._errors import (
    AuthError,
    ConnectTimeout,
    ContentFilterError,
    ContextLengthError,
    FirstByteTimeout,
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
from ._events import Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
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
    "CohereProvider": "llmrelay.providers.cohere",
    "GeminiProvider": "llmrelay.providers.gemini",
    "HttpProvider": "llmrelay._http_provider",
    "OllamaProvider": "llmrelay.providers.ollama",
    "OpenAIProvider": "llmrelay.providers.openai",
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
    from ._http_provider import HttpProvider
    from .providers.anthropic import AnthropicProvider
    from .providers.azure import AzureOpenAIProvider
    from .providers.cohere import CohereProvider
    from .providers.gemini import GeminiProvider
    from .providers.ollama import OllamaProvider
    from .providers.openai import OpenAIProvider

__all__ = [
    "Accumulator",
    "AnthropicProvider",
    "AuthError",
    "AzureOpenAIProvider",
    "CallWarning",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "CohereProvider",
    "ConnectTimeout",
    "ContentFilterError",
    "ContentPart",
    "ContextLengthError",
    "Done",
    "EventSource",
    "FinishReason",
    "FirstByteTimeout",
    "GeminiProvider",
    "HttpProvider",
    "HttpRequest",
    "HttpResponse",
    "IdleTimeout",
    "ImagePart",
    "InvalidRequestError",
    "JsonSchemaFormat",
    "LlmError",
    "LlmRelayWarning",
    "Message",
    "MissingApiKey",
    "MockResponse",
    "MockTransport",
    "ModelInfo",
    "ModelNotFoundError",
    "NetworkError",
    "OllamaProvider",
    "OpenAIProvider",
    "OverloadedError",
    "ProtocolError",
    "Provider",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "ReasoningDelta",
    "ReasoningPart",
    "RequestTimeout",
    "Role",
    "ServerError",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "Timeouts",
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
    "fold",
]
