"""The child process that runs llama.cpp for ``LocalProvider``: ``python -m llmrelay.providers._local_worker``.

One process holds one loaded model (the JSON load settings are its only argument) and runs one generation
at a time, in the order the requests arrive. Running the native library out of the caller's process means
that a crash of llama.cpp (a segfault in a build for the wrong CPU) is an error the caller can report, not
the end of the caller; generation no longer competes with the caller's event loop for the GIL; and
cancelling is a message, with killing the process as the last resort.

The protocol is one JSON object per line. The parent writes to our stdin::

    {"op": "chat", "id": 1, "kwargs": {...create_chat_completion arguments...}, "prompt_cache": false}
    {"op": "cancel", "id": 1}

and reads from the file descriptor that was our stdout (fd 1 is pointed at stderr before llama.cpp loads,
so nothing the native library prints can corrupt the protocol)::

    {"t": "ready"}                                      the model loaded
    {"t": "load_error", "message": "..."}               it did not; the process then exits
    {"id": 1, "t": "text", "v": "Hel"}                  streamed text
    {"id": 1, "t": "done", "finish": "stop", "prompt_tokens": 31, "completion_tokens": 9}
    {"id": 1, "t": "error", "kind": "context_length" | "failed", "message": "...", "completion_tokens": 0}
    {"id": 1, "t": "cancelled", "completion_tokens": 3}

Every request ends with exactly one of ``done``, ``error`` or ``cancelled``. End of stdin (the parent went
away) cancels everything and ends the process.

Prompt evaluation is canonical: the prompt is cut into segments at positions that depend only on the
tokens before them (before every control token that does not end a generation, and every 64 tokens), each
segment is evaluated as its own batch, and the KV cache of the previous prompt is reused up to the last
segment boundary both prompts share. So a request evaluates exactly the same batches whatever ran before
it: identical temperature-0 requests give identical answers, and the chat template's fixed head (and the
earlier turns of a conversation) are not evaluated again. ``prompt_cache=True`` instead lets llama.cpp
reuse every cached token, including generated ones: fewer tokens evaluated, answers that may then differ
slightly between identical requests.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import queue
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

SEGMENT = 64
"""The longest batch of prompt tokens evaluated at once (as fast as llama.cpp's 512 on this model, and
a finer grain for reuse)."""


TAIL = 8
"""A last segment this short (the chat template's generation prompt) is evaluated with the one before."""


class _Cancelled(Exception):
    """Raised inside llama.cpp's generator (from ``sample``) to stop a cancelled generation."""


class _Job:
    __slots__ = ("cancelled", "completion_tokens", "id", "prompt_tokens", "tokenized")

    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.cancelled = False
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.tokenized = 0
        """The longest text tokenized for this job (the rendered prompt), known before ``generate``."""


def segment_starts(tokens: Sequence[int], is_boundary_token: Any, limit: int = SEGMENT) -> list[int]:
    """Positions where a prompt segment starts: 0, before each boundary token, and every ``limit`` tokens.

    Each position depends only on the tokens before (and at) it, so two prompts that share a prefix share
    the segment starts inside it.
    """
    starts = [0]
    last = 0
    for pos in range(1, len(tokens)):
        if pos - last >= limit or is_boundary_token(tokens[pos]):
            starts.append(pos)
            last = pos
    return starts


def _llama_class(llama_cpp: Any) -> Any:
    class CanonicalLlama(llama_cpp.Llama):  # type: ignore[misc]
        """``Llama`` with canonical prompt evaluation, per-token cancellation and exact usage counting."""

        relay_job: _Job | None = None
        relay_vocab: Any = None
        relay_canonical = True
        relay_prompt_len = 0
        """How many tokens at the start of the KV cache were evaluated as canonical segments."""
        relay_segments: list[int] | None = None

        def _boundary(self, token: int) -> bool:
            vocab = self.relay_vocab
            return bool(
                llama_cpp.llama_vocab_is_control(vocab, token) and not llama_cpp.llama_vocab_is_eog(vocab, token)
            )

        def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
            job = self.relay_job
            if job is not None:
                job.prompt_tokens = len(tokens)
            if self.relay_canonical:
                tokens = list(tokens)
                starts = segment_starts(tokens, self._boundary)
                n_cached: int = self.n_tokens  # type: ignore[has-type]  # untyped base class
                cached = self.input_ids[: min(n_cached, self.relay_prompt_len)]
                shared = 0
                for a, b in zip(cached, tokens, strict=False):
                    if a != b:
                        break
                    shared += 1
                canonical_end = len(tokens)
                if len(starts) > 1 and len(tokens) - starts[-1] <= TAIL:
                    # The generation prompt (`<|im_start|>assistant\n`) rides with the last message: one
                    # batch fewer before the first token. Its KV is then not canonical: never reused.
                    starts.pop()
                    canonical_end = starts[-1]
                shared = min(shared, len(tokens) - 1, canonical_end)
                reuse = max(s for s in starts if s <= shared)
                # llama-cpp-python reuses the cache up to n_tokens and evaluates the rest; `eval` below cuts
                # the rest at the segment starts.
                self.n_tokens = reuse
                self.relay_segments = [s - reuse for s in starts if s > reuse] + [len(tokens) - reuse]
                self.relay_prompt_len = canonical_end
            else:
                self.relay_prompt_len = 0  # what this run leaves in the cache is not canonical
            return super().generate(tokens, *args, **kwargs)

        def eval(self, tokens: Sequence[int]) -> None:
            segments, self.relay_segments = self.relay_segments, None
            if not segments:
                super().eval(tokens)
                return
            begin = 0
            for end in segments:
                if end > begin:
                    super().eval(tokens[begin:end])
                begin = end

        def tokenize(self, *args: Any, **kwargs: Any) -> Any:
            tokens = super().tokenize(*args, **kwargs)
            job = self.relay_job
            if job is not None:
                job.tokenized = max(job.tokenized, len(tokens))
            return tokens

        def sample(self, *args: Any, **kwargs: Any) -> Any:
            job = self.relay_job
            if job is not None and job.cancelled:
                raise _Cancelled
            token = super().sample(*args, **kwargs)
            if job is not None and not llama_cpp.llama_vocab_is_eog(self.relay_vocab, token):
                job.completion_tokens += 1
            return token

    return CanonicalLlama


class _Worker:
    def __init__(self, settings: dict[str, Any], out: IO[bytes]) -> None:
        self.settings = settings
        self.out = out
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.pending: dict[int, dict[str, Any]] = {}
        self.current: _Job | None = None
        self.lock = threading.Lock()
        self.cancelled_ids: set[int] = set()
        self.llama: Any = None

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
        self.out.flush()

    # --- stdin ----------------------------------------------------------------------------------------

    def read_requests(self, stdin: IO[bytes]) -> None:
        for line in stdin:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            op = message.get("op")
            job_id = int(message.get("id", 0))
            with self.lock:
                if op == "chat":
                    self.pending[job_id] = message
                    self.jobs.put(_Job(job_id))
                elif op == "cancel":
                    self.cancelled_ids.add(job_id)
                    if self.current is not None and self.current.id == job_id:
                        self.current.cancelled = True
        with self.lock:
            self.cancelled_ids.update(self.pending)
            if self.current is not None:
                self.current.cancelled = True
        self.jobs.put(None)

    # --- the model ------------------------------------------------------------------------------------

    def load(self) -> bool:
        s = self.settings
        try:
            import llama_cpp
        except ImportError as exc:
            self.send({"t": "load_error", "message": f"llama-cpp-python is not importable: {exc}"})
            return False
        kwargs: dict[str, Any] = {
            "model_path": s["path"],
            "n_ctx": s["n_ctx"],
            "n_threads": s["n_threads"],
            "n_threads_batch": s["n_threads_batch"],
            "n_gpu_layers": s["n_gpu_layers"],
            "n_batch": SEGMENT,
            "verbose": False,
        }
        if s.get("chat_format") is not None:
            kwargs["chat_format"] = s["chat_format"]
        if s.get("seed") is not None:
            kwargs["seed"] = s["seed"]
        try:
            self.llama = _llama_class(llama_cpp)(**kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            self.send({"t": "load_error", "message": f"cannot load the GGUF model {s['path']}: {exc}"})
            return False
        self.llama.relay_vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self.send({"t": "ready"})
        return True

    def serve(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self.lock:
                message = self.pending.pop(job.id, None)
                if message is None:
                    continue
                job.cancelled = job.id in self.cancelled_ids
                self.cancelled_ids.discard(job.id)
                self.current = job
            try:
                self.run(job, message)
            finally:
                with self.lock:
                    self.current = None

    def run(self, job: _Job, message: dict[str, Any]) -> None:
        if job.cancelled:
            self.send({"id": job.id, "t": "cancelled", "completion_tokens": 0})
            return
        llama = self.llama
        llama.relay_canonical = not message.get("prompt_cache", False)
        llama.relay_job = job
        finish: str | None = None
        chunks: Any = None
        try:
            chunks = llama.create_chat_completion(stream=True, **message["kwargs"])
            for chunk in chunks:
                choices = chunk.get("choices") or ()
                if not choices:
                    continue
                choice = choices[0]
                text = (choice.get("delta") or {}).get("content")
                if text:
                    self.send({"id": job.id, "t": "text", "v": text})
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if job.cancelled:
                    raise _Cancelled
        except _Cancelled:
            self.send({"id": job.id, "t": "cancelled", "completion_tokens": job.completion_tokens})
            return
        except Exception as exc:
            # llama-cpp-python refuses a prompt too long for the context window with a ValueError before
            # `generate` starts; tell it from other failures by the token count, never by the message.
            too_long = isinstance(exc, ValueError) and job.prompt_tokens is None and job.tokenized + 1 >= llama.n_ctx()
            self.send(
                {
                    "id": job.id,
                    "t": "error",
                    "kind": "context_length" if too_long else "failed",
                    "message": f"{type(exc).__name__}: {exc}",
                    "completion_tokens": job.completion_tokens,
                }
            )
            return
        finally:
            llama.relay_job = None
            close = getattr(chunks, "close", None)
            if close is not None:
                with contextlib.suppress(_Cancelled):
                    close()
        self.send(
            {
                "id": job.id,
                "t": "done",
                "finish": finish,
                "prompt_tokens": job.prompt_tokens,
                "completion_tokens": job.completion_tokens,
            }
        )


def main() -> None:
    faulthandler.enable()  # a native crash prints its Python stack on stderr, which the parent reports
    settings = json.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever llama.cpp prints on stdout goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    worker = _Worker(settings, out)
    reader = threading.Thread(target=worker.read_requests, args=(sys.stdin.buffer,), daemon=True)
    reader.start()
    if not worker.load():
        return
    worker.serve()
    worker.llama.close()


if __name__ == "__main__":
    main()
