"""Convenience functions for the common case: one call, one model string, one answer.

::

    reply = await llmrelay.chat("openai/gpt-4o-mini", "Hello")
    async for text in llmrelay.chat_stream("groq/llama-3.3-70b-versatile", "Tell me a story"):
        print(text, end="")

    reply = llmrelay.chat_sync("local/smollm2", "Hello")          # from plain code, a thread or a notebook
    for text in llmrelay.chat_stream_sync(None, "Hello"):          # None: the default model
        print(text, end="")

The model string is resolved through the configuration (``llmrelay.toml``), aliases, fallback names,
endpoint rows and environment variables (see ``llmrelay.registry``), and the call goes through the stack
the configuration describes (the ``[retry]`` policy, a ``[fallbacks]`` chain). With no model named,
nothing configured and no key in the environment, the embedded local model answers, and a one-line notice
on stderr says so (once).

Each call builds its providers from a fresh ``ProviderRegistry`` and closes them afterwards. For many
calls, pass ``registry=`` (a registry you keep open, one per event loop) to reuse connections; the
synchronous versions run on llmrelay's background loop (``llmrelay._sync``), so give them no registry
that another loop uses.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._events import StreamEvent, TextChunks, TextDelta
from ._provider import Provider
from ._sync import iter_sync, run_sync
from ._types import ChatRequest, ChatResponse, ContentPart, ImagePart, Message, TextPart
from .config import Config, find_config, read_config
from .registry import ModelRef, ProviderRegistry

__all__ = [
    "Prompt",
    "chat",
    "chat_events",
    "chat_events_sync",
    "chat_stream",
    "chat_stream_sync",
    "chat_sync",
    "default_config",
    "open_provider",
]

Prompt = str | Message | Sequence[Message] | ChatRequest
"""Text (one user turn), a message, a conversation, or a complete ``ChatRequest``."""

ConfigArg = Config | str | os.PathLike[str] | None

LOCAL_NOTICE = (
    "llmrelay: no provider configured and no API key found; answering with the built-in local model "
    "local/smollm2 (SmolLM2-135M-Instruct, on this machine). Set OPENAI_API_KEY (or another provider's key) "
    "or run `llmrelay config init` to use another model."
)

_notice_lock = threading.Lock()
_notice_given = False
_config_cache: dict[tuple[str, float], Config] = {}


def _notice_once() -> None:
    global _notice_given
    with _notice_lock:
        if _notice_given:
            return
        _notice_given = True
    print(LOCAL_NOTICE, file=sys.stderr, flush=True)


def default_config(config: ConfigArg = None) -> Config:
    """The configuration a call uses: ``config`` itself, the file it names, or the one discovered.

    Files are re-read only when they change.
    """
    if isinstance(config, Config):
        return config
    path = find_config(config)
    if path is None:
        return Config()
    stamp = (str(path.resolve()), path.stat().st_mtime)
    cached = _config_cache.get(stamp)
    if cached is None:
        cached = read_config(Path(path))
        _config_cache.clear()
        _config_cache[stamp] = cached
    return cached


@asynccontextmanager
async def open_provider(
    model: str | None, *, config: ConfigArg = None, registry: ProviderRegistry | None = None
) -> AsyncIterator[tuple[Provider, ModelRef]]:
    """The configured provider stack (``ProviderRegistry.provider``: retries, a ``[fallbacks]`` chain) and
    the resolved model for a model string, closed on exit unless ``registry`` was given."""
    owned = registry is None
    reg = registry if registry is not None else ProviderRegistry(default_config(config))
    try:
        ref = reg.resolve(model)
        if ref.source == "builtin":
            _notice_once()
        yield reg.provider(ref), ref
    finally:
        if owned:
            await reg.aclose()


def build_request(
    prompt: Prompt,
    *,
    model: str | None = None,
    system: str | None = None,
    images: Sequence[ImagePart] = (),
    **fields: Any,
) -> ChatRequest:
    """The ``ChatRequest`` for a prompt; keyword fields left ``None`` keep the request's own values."""
    settings = {name: value for name, value in fields.items() if value is not None}
    if system is not None:
        settings["system"] = system
    if isinstance(prompt, ChatRequest):
        if images:
            raise ValueError("images= cannot be added to a ChatRequest; put ImagePart in its messages")
        return replace(prompt, model=model or prompt.model, **settings)
    if isinstance(prompt, str):
        content: str | list[ContentPart] = [TextPart(prompt), *images] if images else prompt
        messages: Sequence[Message] = [Message.user(content)]
    elif isinstance(prompt, Message):
        messages = [prompt]
    else:
        messages = list(prompt)
    if images and not isinstance(prompt, str):
        raise ValueError("images= goes with a text prompt; put ImagePart in your messages instead")
    return ChatRequest(model=model, messages=messages, **settings)


async def chat(
    model: str | None,
    prompt: Prompt,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] | None = None,
    images: Sequence[ImagePart] = (),
    config: ConfigArg = None,
    registry: ProviderRegistry | None = None,
    **fields: Any,
) -> ChatResponse:
    """One complete reply from ``model`` (``PROVIDER/MODEL``, an alias, or ``None`` for the default).

    Extra keyword ``fields`` go into the ``ChatRequest`` (``top_p``, ``seed``, ``tools``, ...).
    """
    async with open_provider(model, config=config, registry=registry) as (provider, ref):
        request = build_request(
            prompt,
            model=ref.model,
            system=system,
            images=images,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            **fields,
        )
        return await provider.chat(request)


async def chat_events(
    model: str | None,
    prompt: Prompt,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] | None = None,
    images: Sequence[ImagePart] = (),
    config: ConfigArg = None,
    registry: ProviderRegistry | None = None,
    **fields: Any,
) -> AsyncGenerator[StreamEvent, None]:
    """Every stream event of one reply (``TextDelta``, ``ToolCallStart``, ..., ``Done``).

    An error that ends the stream after it began arrives as ``Done(finish_reason=ERROR)`` and is then raised.
    """
    async with open_provider(model, config=config, registry=registry) as (provider, ref):
        request = build_request(
            prompt,
            model=ref.model,
            system=system,
            images=images,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            **fields,
        )
        async with provider.chat_stream(request) as stream:
            async for event in stream:
                yield event


async def chat_stream(
    model: str | None,
    prompt: Prompt,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] | None = None,
    images: Sequence[ImagePart] = (),
    config: ConfigArg = None,
    registry: ProviderRegistry | None = None,
    **fields: Any,
) -> AsyncGenerator[str, None]:
    """The reply's text, piece by piece as it arrives (use ``chat_events`` for everything else)."""
    events = chat_events(
        model,
        prompt,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        stop=stop,
        images=images,
        config=config,
        registry=registry,
        **fields,
    )
    try:
        async for event in events:
            if type(event) is TextDelta or type(event) is TextChunks:
                yield event.text
    finally:
        await events.aclose()


def chat_sync(model: str | None, prompt: Prompt, **kwargs: Any) -> ChatResponse:
    """``chat`` for synchronous code (scripts, threads, notebooks); same arguments."""
    return run_sync(chat(model, prompt, **kwargs))


def chat_stream_sync(model: str | None, prompt: Prompt, **kwargs: Any) -> Iterator[str]:
    """``chat_stream`` for synchronous code; same arguments."""
    return iter_sync(chat_stream(model, prompt, **kwargs))


def chat_events_sync(model: str | None, prompt: Prompt, **kwargs: Any) -> Iterator[StreamEvent]:
    """``chat_events`` for synchronous code; same arguments."""
    return iter_sync(chat_events(model, prompt, **kwargs))
