"""llmrelay: one typed, async interface over many LLM providers.

Everything public is importable from here; the modules behind it are private.
"""

from __future__ import annotations

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
from ._http_provider import HttpProvider
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
from .providers.azure import AzureOpenAIProvider
from .providers.openai import OpenAIProvider

__version__ = "0.1.0"

__all__ = [
    "Accumulator",
    "AuthError",
    "AzureOpenAIProvider",
    "CallWarning",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ChatStream",
    "ConnectTimeout",
    "ContentFilterError",
    "ContentPart",
    "ContextLengthError",
    "Done",
    "EventSource",
    "FinishReason",
    "FirstByteTimeout",
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
