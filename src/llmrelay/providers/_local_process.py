"""The parent side of the local model's worker process (see ``_local_worker`` for the protocol).

One ``WorkerProcess`` per loaded model (GGUF file and load settings) per Python process, shared by every
``LocalProvider`` and every event loop that names it: the pipes are read by plain threads, and each
generation hands its messages to the event loop that asked for it with ``call_soon_threadsafe``. A worker
that dies (a native crash, a kill, running out of memory) fails every request it had with
``LocalModelCrash``, which names the signal, the last lines the process printed and how to rebuild
llama-cpp-python portably; the next request starts a new worker.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any

from .._errors import ContextLengthError, LlmError, ProviderError
from ..config._errors import ConfigError

__all__ = ["PORTABLE_CMAKE_ARGS", "Generation", "LocalModelCrash", "WorkerProcess", "worker_for"]

PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
"""The build the README installs: llama.cpp's default native build enables AMX and AVX-512 code paths that
crash on some CPUs that advertise them (see the README)."""

REBUILD_HINT = (
    f'rebuild llama-cpp-python portably: CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" '
    "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python"
)

_STDERR_TAIL = 4096
_KILL_AFTER = 5.0
"""How long a cancelled generation may take to stop before the worker is killed."""


class LocalModelCrash(ProviderError):
    """The local model's worker process died (a native crash of llama.cpp, a kill, out of memory).

    Not retryable as is: a crash at the first evaluation almost always means a llama-cpp-python build for
    the wrong CPU, and the message says how to rebuild it. The next request starts a new worker.
    """

    kind = "local_crash"


class Generation:
    """One request's messages from the worker, delivered on the event loop that started it."""

    def __init__(self, worker: WorkerProcess, job_id: int, loop: asyncio.AbstractEventLoop) -> None:
        self.worker = worker
        self.id = job_id
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.completion_tokens = 0
        """Tokens the worker sampled, once the generation has ended."""

    def deliver(self, message: dict[str, Any]) -> None:
        """Called from the worker's reader thread."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self.loop.call_soon_threadsafe(self._put, message)

    def _put(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(message)
        if message.get("t") in ("done", "error", "cancelled", "crash") and not self.finished.done():
            self.completion_tokens = int(message.get("completion_tokens") or 0)
            self.finished.set_result(None)

    async def cancel(self) -> None:
        """Ask the worker to stop this generation; kill the worker if it does not within a few seconds."""
        if self.finished.done():
            return
        self.worker.send({"op": "cancel", "id": self.id})
        try:
            async with asyncio.timeout(_KILL_AFTER):
                await asyncio.shield(self.finished)
        except TimeoutError:
            self.worker.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_KILL_AFTER):
                    await asyncio.shield(self.finished)


class WorkerProcess:
    """A running ``_local_worker`` process and the threads that read its pipes."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self._lock = threading.Lock()
        self._next_id = 1
        self._jobs: dict[int, Generation] = {}
        self._ready = threading.Event()
        self._load_error: LlmError | None = None
        self._ready_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self.dead: LlmError | None = None
        env = dict(os.environ)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.providers._local_worker", json.dumps(self.settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches the caller, which then cancels
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        # Unbuffered pipes (each request is written at once), read through a buffer: a raw pipe's readline
        # is one system call per byte.
        raw_out: Any = self.process.stdout
        raw_err: Any = self.process.stderr
        stdout, stderr = io.BufferedReader(raw_out), io.BufferedReader(raw_err)
        threading.Thread(target=self._read_stdout, args=(stdout,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(stderr,), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    # --- requests ---------------------------------------------------------------------------------------

    async def wait_ready(self) -> None:
        """Wait until the model has loaded; raise its load error (or the crash) otherwise."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._ready.is_set():
                future: asyncio.Future[None] = loop.create_future()
                self._ready_waiters.append((loop, future))
            else:
                future = loop.create_future()
                future.set_result(None)
        await future
        error = self._load_error or self.dead
        if error is not None:
            raise error

    def start(self, kwargs: Mapping[str, Any], *, prompt_cache: bool) -> Generation:
        """Queue one generation; its messages arrive on the calling loop's ``Generation.queue``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.dead is not None:
                raise self.dead
            job = Generation(self, self._next_id, loop)
            self._next_id += 1
            self._jobs[job.id] = job
        self.send({"op": "chat", "id": job.id, "kwargs": dict(kwargs), "prompt_cache": prompt_cache})
        return job

    def send(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
        stdin = self.process.stdin
        with self._lock:
            if stdin is None or self.dead is not None:
                return
            with contextlib.suppress(OSError, ValueError):  # the worker died; its reader thread reports it
                stdin.write(data)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            self.process.kill()

    def close(self, timeout: float = 2.0) -> None:
        """End the worker: close its stdin (it cancels and exits), kill it if it does not."""
        stdin = self.process.stdin
        if stdin is not None:
            with self._lock, contextlib.suppress(OSError, ValueError):
                stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)

    # --- the reader threads -------------------------------------------------------------------------------

    def _read_stdout(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("t")
            if kind in ("ready", "load_error"):
                if kind == "load_error":
                    self._load_error = ConfigError(str(message.get("message")), provider="local")
                self._set_ready()
                continue
            with self._lock:
                job = self._jobs.get(int(message.get("id", 0)))
                if job is not None and kind in ("done", "error", "cancelled"):
                    del self._jobs[job.id]
            if job is not None:
                job.deliver(message)
        code = self.process.wait()
        error = self._crash_error(code)
        with self._lock:
            self.dead = error
            jobs, self._jobs = list(self._jobs.values()), {}
        self._set_ready()
        for job in jobs:
            job.deliver({"t": "crash", "completion_tokens": 0})
        with _workers_lock:
            for key, worker in list(_workers.items()):
                if worker is self:
                    del _workers[key]

    def _read_stderr(self, stderr: IO[bytes]) -> None:
        for line in stderr:
            with self._lock:
                self._stderr.append(line)
                self._stderr_size += len(line)
                while self._stderr_size > _STDERR_TAIL and len(self._stderr) > 1:
                    self._stderr_size -= len(self._stderr.popleft())

    def _set_ready(self) -> None:
        with self._lock:
            self._ready.set()
            waiters, self._ready_waiters = self._ready_waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def _crash_error(self, code: int) -> LlmError:
        if code < 0:
            try:
                how = f"was killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        with self._lock:
            lines = b"".join(self._stderr).decode("utf-8", "replace").strip().splitlines()
        printed = _report(lines)
        printed = f"; it printed: {printed}" if printed else ""
        hint = f". If this happens at the first answer, llama.cpp's build does not run on this CPU: {REBUILD_HINT}"
        return LocalModelCrash(f"the local model's worker process {how}{printed}{hint}", provider="local")

    def error_for(self, message: Mapping[str, Any]) -> LlmError:
        """The typed error for a worker's ``error`` or ``crash`` message."""
        if message.get("t") == "crash":
            return self.dead or LocalModelCrash("the local model's worker process died", provider="local")
        text = f"the local model failed: {message.get('message')}"
        if message.get("kind") == "context_length":
            return ContextLengthError(text, provider="local")
        return ProviderError(text, provider="local")


def _report(lines: list[str]) -> str:
    """The gist of what a dying worker printed: faulthandler's fatal line and the innermost frames."""
    fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
    if not fatal:
        return " | ".join(line.strip() for line in lines[-4:])
    start = fatal[-1]
    frames = [line.strip() for line in lines[start + 1 :] if line.strip().startswith("File ")][:3]
    return " | ".join([lines[start].strip(), *frames])


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_workers: dict[str, WorkerProcess] = {}
_workers_lock = threading.Lock()


def worker_for(settings: Mapping[str, Any]) -> WorkerProcess:
    """The worker for these load settings, started on first use (and again after it died)."""
    key = json.dumps(settings, sort_keys=True)
    with _workers_lock:
        worker = _workers.get(key)
        if worker is None or worker.dead is not None:
            worker = _workers[key] = WorkerProcess(settings)
        return worker


def _close_workers() -> None:
    with _workers_lock:
        workers = list(_workers.values())
        _workers.clear()
    for worker in workers:
        worker.close()


atexit.register(_close_workers)
