"""``llmrelay chat``: stream one answer to stdout, usage to stderr.

With ``--json`` every stream event is one JSON line in the codec's form (``llmrelay.to_json``, see
``_format.event_json``), and a call that fails or is interrupted ends with ``{"type": "error", "kind": ...,
"message": ..., "exit_code": ...}``: the error's own JSON form (``LlmError.to_json``) plus the exit code, or
``kind`` ``interrupted`` for Ctrl-C, exit code 130.

The model goes through the stack the configuration describes (``ProviderRegistry.provider``: the
``[retry]`` policy, a ``[fallbacks]`` chain). With ``--json``, each attempt that failed before the answer
is one line ``{"type": "attempt", "provider", "model", "error", "elapsed_ms"}`` before the answer's
events, and the ``done`` line names the ``provider`` and ``model`` that answered; when every attempt
failed, the ``error`` line (``all_attempts_failed``) carries them in ``attempts``, and the exit code is
the last attempt's. The usage line on stderr says who answered when it is not the model asked for
(``via groq/llama-3.3-70b-versatile after 1 failed attempt``).
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import sys
from pathlib import Path

from .._errors import AllAttemptsFailed, Attempt, LlmError
from .._events import Done, TextChunks, TextDelta
from .._types import FinishReason, ImagePart, Usage
from ..api import build_request, open_provider
from ..cost import Cost
from . import EXIT_INTERRUPTED, EXIT_OK, UsageError, _classify, describe_error
from ._format import attempt_json, done_json, error_json, event_json, json_line, scrub_secrets, usage_line

__all__ = ["run_chat"]


def _prompt(args: argparse.Namespace) -> str:
    text = " ".join(args.prompt).strip()
    piped = ""
    stdin = sys.stdin
    if stdin is not None and not stdin.isatty():
        piped = stdin.read().strip()
    if text and piped:
        return f"{text}\n\n{piped}"
    if text or piped:
        return text or piped
    raise UsageError('no prompt: give one as an argument (llmrelay chat "Hello") or pipe it on stdin')


def _image(spec: str) -> ImagePart:
    if spec.startswith(("http://", "https://", "data:")):
        return ImagePart(url=spec)
    path = Path(spec).expanduser()
    media_type = mimetypes.guess_type(path.name)[0]
    if media_type is None or not media_type.startswith("image/"):
        raise UsageError(f"--image {spec}: not an image file (expected .png, .jpg, .gif or .webp)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--image {spec}: cannot read it: {exc.strerror or exc}") from None
    return ImagePart.from_bytes(data, media_type)


def run_chat(args: argparse.Namespace) -> int:
    prompt = _prompt(args)
    images = [_image(spec) for spec in args.image]
    try:
        return asyncio.run(_guarded(args, prompt, images))
    except KeyboardInterrupt:
        # asyncio.run has cancelled the call (closing the stream) and turned the cancellation back into
        # KeyboardInterrupt; the caller (``main``) says "interrupted" on stderr and exits 130.
        if args.json:
            interrupted = {"type": "error", "kind": "interrupted", "message": "interrupted (Ctrl-C)"}
            _write_line(json_line({**interrupted, "exit_code": EXIT_INTERRUPTED}))
        raise


async def _guarded(args: argparse.Namespace, prompt: str, images: list[ImagePart]) -> int:
    try:
        return await _chat(args, prompt, images)
    except LlmError as exc:
        return _fail(exc, bool(args.json))


async def _chat(args: argparse.Namespace, prompt: str, images: list[ImagePart]) -> int:
    out = sys.stdout
    as_json = bool(args.json)
    async with open_provider(args.model, config=getattr(args, "config", None)) as (provider, ref):
        request = build_request(
            prompt,
            model=ref.model,
            system=args.system,
            images=images,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            stop=args.stop or None,
        )
        label = str(ref) if ref.chain else f"{ref.provider}/{ref.model or provider.model or '(default)'}"
        requested = None if ref.chain else ref.model or provider.model
        if args.no_stream:
            reply = await provider.chat(request)
            cost = _cost(args, reply.usage, reply.provider, reply.model, requested)
            if as_json:
                for line in [*map(attempt_json, reply.attempts), *_events_of(reply, cost)]:
                    out.write(line + "\n")
            else:
                out.write(reply.text if reply.text.endswith("\n") or not reply.text else reply.text + "\n")
            out.flush()
            via = _answered(reply.provider, reply.model) if ref.chain else None
            _report(label, reply.usage, reply.finish_reason, reply.finish_reason_raw, via, reply.attempts, cost)
            return EXIT_OK
        done: Done | None = None
        ends_with_newline = True
        try:
            async with provider.chat_stream(request) as stream:
                if as_json and stream.attempts:
                    out.write("".join(attempt_json(attempt) + "\n" for attempt in stream.attempts))
                    out.flush()
                async for event in stream:
                    if as_json:
                        if isinstance(event, Done):
                            cost = _cost(args, event.usage, stream.provider, stream.model, requested)
                            out.write(done_json(event, stream.provider, stream.model, cost) + "\n")
                        else:
                            out.write(event_json(event) + "\n")
                        out.flush()
                    elif (type(event) is TextDelta or type(event) is TextChunks) and event.text:
                        out.write(event.text)
                        out.flush()
                        ends_with_newline = event.text.endswith("\n")
                    if type(event) is Done:
                        done = event
        except LlmError as exc:
            if not as_json and not ends_with_newline:
                out.write("\n")
            return _fail(exc, as_json)
        except asyncio.CancelledError:  # Ctrl-C: end the partial line before "interrupted" goes to stderr
            if not as_json and not ends_with_newline:
                out.write("\n")
                out.flush()
            raise
        if not as_json and not ends_with_newline:
            out.write("\n")
            out.flush()
        if done is not None:
            via = _answered(stream.provider, stream.model) if ref.chain else None
            cost = _cost(args, done.usage, stream.provider, stream.model, requested)
            _report(label, done.usage, done.finish_reason, done.finish_reason_raw, via, stream.attempts, cost)
        return EXIT_OK


def _answered(provider: str | None, model: str | None) -> str | None:
    """``provider/model`` of the fallback member that answered, when known (only a chain says "via": a
    single model's own name for itself, ``gpt-4o-mini-2024-07-18``, is not news)."""
    if provider is None:
        return None
    return f"{provider}/{model}" if model else provider


def _cost(
    args: argparse.Namespace, usage: Usage | None, provider: str | None, model: str | None, requested: str | None
) -> Cost:
    """What the answer cost, priced by the provider that answered (its reported model, else the model the
    call asked for: ``requested``, known for a single model), with the configuration's ``[prices]``."""
    from ..api import default_config
    from ..cost import cost_of
    from ..registry import price_overrides

    overrides = price_overrides(default_config(getattr(args, "config", None)))
    return cost_of(usage, provider, model, overrides=overrides, requested=requested)


def _report(
    label: str,
    usage: Usage | None,
    finish: FinishReason,
    raw: str | None,
    via: str | None = None,
    attempts: tuple[Attempt, ...] = (),
    cost: Cost | None = None,
) -> None:
    line = usage_line(label, usage, finish.value, via=via, failed=len(attempts), cost=cost)
    print(line, file=sys.stderr)
    if finish is FinishReason.LENGTH:
        print("llmrelay: the answer was cut at the token limit (raise --max-tokens for more)", file=sys.stderr)


def _fail(exc: LlmError, as_json: bool) -> int:
    code, line = describe_error(exc)
    if isinstance(exc, AllAttemptsFailed) and exc.attempts:
        # Every attempt on one line, with the exit code and hint of the last one (a 429 retried twice is
        # still "unavailable", with its Retry-After).
        code, hint = _classify(exc.attempts[-1].error)
        message = " ".join(str(exc).split()).rstrip(".")
        line = scrub_secrets(f"llmrelay: error: {message}" + (f". {hint}" if hint else ""))
    if as_json:
        _write_line(error_json(exc, code))
    print(line, file=sys.stderr)
    return code


def _write_line(line: str) -> None:
    """Write the final ``--json`` line of a failed or interrupted call."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _events_of(reply: object, cost: Cost) -> list[str]:
    """The JSON lines of a non-streamed reply: its text, tool calls and a final ``done``."""
    from .._events import StreamEvent, ToolCallEnd
    from .._types import ChatResponse

    assert isinstance(reply, ChatResponse)
    events: list[StreamEvent] = []
    if reply.text:
        events.append(TextDelta(reply.text))
    events.extend(ToolCallEnd(index=i, call=call) for i, call in enumerate(reply.tool_calls))
    done = Done(
        finish_reason=reply.finish_reason,
        finish_reason_raw=reply.finish_reason_raw,
        usage=reply.usage,
        model=reply.model,
    )
    return [*(event_json(event) for event in events), done_json(done, reply.provider, reply.model, cost)]
