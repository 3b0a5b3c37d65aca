"""Response decoding for the Gemini API.

A response is a ``GenerateContentResponse`` (https://ai.google.dev/api/generate-content#generatecontentresponse);
``streamGenerateContent?alt=sse`` sends a series of them as server-sent events
(https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent), each a whole object
(there are no deltas of JSON text). Only ``candidates[0]`` is decoded. Its ``content.parts``
(https://ai.google.dev/api/caching#Part) become events, one small handler per part kind:

- ``text`` -> ``TextDelta``; ``text`` with ``thought: true`` -> ``ReasoningDelta``
  (https://ai.google.dev/gemini-api/docs/thinking#summaries);
- ``thoughtSignature`` (https://ai.google.dev/gemini-api/docs/thought-signatures) is opaque and must go
  back to the model: on a thought part it rides on that part's ``ReasoningDelta``; on a text or
  ``functionCall`` part it is sent as ``ReasoningDelta("", signature=...)`` just before the part, so the
  accumulator keeps it in ``ChatResponse.reasoning_parts`` and ``ChatResponse.message`` carries it into
  the next request (see ``encode``: signatures go back onto the function calls, first signature on the
  first call, which is where Gemini 3 requires it);
- ``functionCall`` with a ``name`` and no ``willContinue`` is a whole call: ``StreamState.tool_whole``.
  The Gemini API usually sends no ``id``: such a call gets the synthetic id ``llmrelay_call_<index>``
  (``wire.call_ids``) so it can be answered with ``Message.tool``; the encoder uses it to find the
  function's name and does not send it back;
- Vertex AI's streamed arguments (``functionCallingConfig.streamFunctionCallArguments``): a
  ``functionCall`` with ``name`` and ``willContinue: true`` opens a call, later ``functionCall`` parts
  without a name add ``partialArgs`` (``{jsonPath, stringValue|numberValue|boolValue|nullValue,
  willContinue}``; a string continues while the previous fragment for the same path said
  ``willContinue``), and a ``functionCall`` without ``willContinue`` (usually ``{}``) closes it. The
  arguments are assembled as an object and sent as one ``ToolCallDelta`` when the call closes. A call
  still open when the stream ends (cut, ``MAX_TOKENS``) keeps what arrived as raw text that is not a
  complete JSON object, so ``arguments`` is ``None``, never a made-up dict;
- other parts (``inlineData`` output images, ``executableCode``, ``codeExecutionResult``) have no event.

``usageMetadata`` may appear on every chunk, with changing numbers: the last one that has token counts
wins. ``finishReason`` is kept (see ``maps``). A blocked prompt (``promptFeedback.blockReason``) ends as
``content_filter``.

A Gemini event stream has no terminator: the body ending after a candidate with ``finishReason`` (or a
prompt block) is the normal end; a body that ends without one is truncated (``ProtocolError``). An error
can arrive inside a 200 stream, as a ``data:`` event with a top-level ``error``, or as raw JSON lines
that are not SSE-framed at all (the API writes a pretty-printed ``{"error": ...}`` after the events when
the model becomes overloaded mid-stream); ``sse_stream.SseFrames`` yields both in wire order (a raw
object that is not an error is decoded like an event). Any error ends the stream with
``Done(finish_reason=ERROR)``, whatever ``finishReason`` came before.

Why ``Done`` waits for the end of the body rather than coming with the chunk that carries
``finishReason``: in this format that chunk is not known to be the last one. The API has sent
``finishReason: STOP`` on *every* chunk of a stream (2024, reported against one-api and LiteLLM), and an
overloaded model has sent its error object *after* a ``STOP`` chunk with usage (the
``gemini_stream_midstream_error_503`` transcript: one token of text, then ``STOP``, then a 503). Ending at
the first ``finishReason`` would cut the first kind of stream to its first chunk and report the second
as a success. The end of the body is the only end marker ``alt=sse`` has, and Google's servers end the
body right after the last chunk; a server that keeps it open is the transport's idle timeout's concern.

A non-streaming body is turned into the same events and folded, so both paths share one accumulator.
"""

from __future__ import annotations

import json
from typing import Any

from ..._accumulate import fold
from ..._errors import InvalidRequestError, LlmError, ProtocolError, ProviderError
from ..._events import StreamEvent
from ..._types import ChatResponse, FinishReason
from ..json_text import loads
from ..sse import SseEvent
from ..sse_stream import Frame, FramingError, RawJson, SseFrames
from ..stream_state import StreamState
from .errors import error_from_payload
from .maps import FAILED_GENERATION, map_finish_reason, parse_usage

__all__ = ["GeminiStreamDecoder", "decode_body", "events_from_body"]

_COUNTS = frozenset(
    {
        "promptTokenCount",
        "toolUsePromptTokenCount",
        "candidatesTokenCount",
        "totalTokenCount",
        "cachedContentTokenCount",
        "thoughtsTokenCount",
    }
)
"""The ``usageMetadata`` keys that carry token counts (``maps.parse_usage`` says how they become ``Usage``)."""


class _BadPath(ValueError):
    pass


def _parse_json_path(path: str) -> list[str | int]:
    """The steps of a JSON Path (RFC 9535) of the simple form Gemini sends: ``$.a.b[0]['c d']``."""
    if not path.startswith("$"):
        raise _BadPath(path)
    steps: list[str | int] = []
    i, n = 1, len(path)
    while i < n:
        c = path[i]
        if c == ".":
            j = i + 1
            while j < n and path[j] not in ".[":
                j += 1
            if j == i + 1:
                raise _BadPath(path)
            steps.append(path[i + 1 : j])
            i = j
        elif c == "[":
            end = path.find("]", i)
            if end < 0:
                raise _BadPath(path)
            inner = path[i + 1 : end].strip()
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                steps.append(inner[1:-1])
            elif inner.isdigit():
                steps.append(int(inner))
            else:
                raise _BadPath(path)
            i = end + 1
        else:
            raise _BadPath(path)
    if not steps:
        raise _BadPath(path)
    return steps


class _PartialCall:
    """A streamed call being assembled from ``partialArgs``."""

    __slots__ = ("args", "continuing", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.args: dict[str, Any] = {}
        self.continuing: set[str] = set()

    def apply(self, fragment: dict[str, Any]) -> None:
        path = fragment.get("jsonPath")
        if not isinstance(path, str):
            raise _BadPath(repr(path))
        steps = _parse_json_path(path)
        if "stringValue" in fragment:
            value: Any = fragment["stringValue"]
            if path in self.continuing:
                current = self._get(steps)
                if isinstance(current, str) and isinstance(value, str):
                    value = current + value
        elif "numberValue" in fragment:
            value = fragment["numberValue"]
        elif "boolValue" in fragment:
            value = fragment["boolValue"]
        else:
            value = None  # nullValue, or a fragment that only says more is coming
            if "nullValue" not in fragment and path in self.continuing:
                value = self._get(steps)
        self._set(steps, value)
        if fragment.get("willContinue") is True:
            self.continuing.add(path)
        else:
            self.continuing.discard(path)

    def _get(self, steps: list[str | int]) -> Any:
        node: Any = self.args
        for step in steps:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return None
                node = node[step]
            else:
                if not isinstance(node, dict):
                    return None
                node = node.get(step)
        return node

    def _set(self, steps: list[str | int], value: Any) -> None:
        node: Any = self.args
        for step, following in zip(steps, [*steps[1:], None], strict=True):
            empty: Any = value if following is None else ([] if isinstance(following, int) else {})
            if isinstance(step, int):
                if not isinstance(node, list):
                    raise _BadPath(f"index {step} into a non-array")
                while len(node) <= step:
                    node.append(None)
                if following is None or node[step] is None:
                    node[step] = empty
                node = node[step]
            else:
                if not isinstance(node, dict):
                    raise _BadPath(f"key {step!r} into a non-object")
                if following is None or node.get(step) is None:
                    node[step] = empty
                node = node[step]


class _Decoder:
    """Maps ``GenerateContentResponse`` objects onto ``StreamState``; shared by streams and bodies."""

    __slots__ = ("block_reason", "finish_seen", "partial", "saw_candidate", "state", "usage")

    def __init__(self) -> None:
        self.state = StreamState(map_finish_reason)
        self.finish_seen = False
        self.saw_candidate = False
        self.block_reason: str | None = None
        self.partial: _PartialCall | None = None
        self.usage: dict[str, Any] | None = None
        """The last ``usageMetadata`` with token counts, parsed once at the end."""

    # --- one response object -------------------------------------------------------------------------

    def chunk(self, payload: Any, raw: str) -> None:
        state = self.state
        if state.finished:
            return
        if isinstance(payload, list):
            # The JSON-array form of streamGenerateContent (without alt=sse), or Vertex's wrapped error.
            for item in payload:
                self.chunk(item, raw)
            return
        if not isinstance(payload, dict):
            self.fail(ProtocolError(f"a response object is not a JSON object: {raw[:120]!r}"))
            return
        usage = payload.get("usageMetadata")
        if isinstance(usage, dict) and not _COUNTS.isdisjoint(usage):
            self.usage = usage
        if payload.get("error"):
            self.fail(error_from_payload(payload, body=raw))
            return
        model = payload.get("modelVersion")
        if isinstance(model, str) and model:
            state.model = model
        feedback = payload.get("promptFeedback")
        if isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str):
            self.block_reason = feedback["blockReason"]
        candidates = payload.get("candidates")
        if isinstance(candidates, list):
            for candidate in candidates:
                if isinstance(candidate, dict) and candidate.get("index", 0) == 0:
                    self._candidate(candidate)
                    break

    def _candidate(self, candidate: dict[str, Any]) -> None:
        self.saw_candidate = True
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict):
                    self._part(part)
                if self.state.finished:
                    return
        finish = candidate.get("finishReason")
        if isinstance(finish, str) and finish:
            self.state.finish_raw = finish
            self.finish_seen = True

    def _part(self, part: dict[str, Any]) -> None:
        state = self.state
        signature = part.get("thoughtSignature")
        sig = signature if isinstance(signature, str) and signature else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._function_call(call, sig)
            return
        text = part.get("text")
        if part.get("thought") is True:
            state.reasoning(text if isinstance(text, str) else "", sig)
            return
        if sig is not None:
            state.reasoning("", sig)
        if isinstance(text, str):
            state.text(text)

    def _function_call(self, call: dict[str, Any], sig: str | None) -> None:
        state = self.state
        name = call.get("name")
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        fragments = call.get("partialArgs")
        more = call.get("willContinue") is True
        try:
            if isinstance(name, str) and name:
                self._abort_partial()
                if sig is not None:
                    state.reasoning("", sig)
                index = state.new_index()
                if not more and not isinstance(fragments, list):
                    state.tool_whole(index, call_id, name, call.get("args"))
                    return
                state.tool_start(index, call_id, name)
                partial = self.partial = _PartialCall(index)
                args = call.get("args")
                if isinstance(args, dict):
                    partial.args.update(args)
            else:
                if sig is not None:
                    state.reasoning("", sig)
                partial_or_none = self.partial
                if partial_or_none is None:
                    return  # a fragment of no open call: nothing to attach it to
                partial = partial_or_none
            if isinstance(fragments, list):
                for fragment in fragments:
                    if isinstance(fragment, dict):
                        partial.apply(fragment)
        except _BadPath as exc:
            self.fail(ProtocolError(f"a streamed function-call argument has an unusable jsonPath: {exc}"))
            return
        if not more:
            self._close_partial()

    def _close_partial(self) -> None:
        partial, self.partial = self.partial, None
        if partial is not None:
            self.state.tool_delta(partial.index, json.dumps(partial.args))
            self.state.tool_end(partial.index)

    def _abort_partial(self) -> None:
        """End an unfinished streamed call with the arguments that arrived, as text that is not a complete
        JSON object (so ``ToolCall.arguments`` is ``None``)."""
        partial, self.partial = self.partial, None
        if partial is not None:
            self.state.tool_delta(partial.index, json.dumps(partial.args)[:-1])
            self.state.tool_end(partial.index)

    # --- ends ---------------------------------------------------------------------------------------

    def fail(self, error: LlmError) -> None:
        if not self.state.finished:
            self._abort_partial()
            self.state.usage = parse_usage(self.usage)
            self.state.fail(error)

    def finish(self) -> None:
        """The body ended normally (after a ``finishReason``, a prompt block, or a whole JSON body)."""
        state = self.state
        if state.finished:
            return
        state.usage = parse_usage(self.usage)
        raw = state.finish_raw
        if raw is None and self.block_reason is not None:
            state.finish_raw = self.block_reason
            self._abort_partial()
            state.done(FinishReason.CONTENT_FILTER)
            return
        failed = FAILED_GENERATION.get(raw) if raw is not None else None
        if failed is not None:
            retryable, what = failed
            cls = ProviderError if retryable else InvalidRequestError
            self.fail(cls(f"Gemini ended the turn with finishReason {raw}: {what}", code=raw, retryable=retryable))
            return
        self._abort_partial()
        state.done()


class GeminiStreamDecoder:
    """Incremental decoder of one ``streamGenerateContent?alt=sse`` body."""

    __slots__ = ("_d", "_frames")

    def __init__(self) -> None:
        self._frames = SseFrames()
        self._d = _Decoder()

    def feed(self, data: bytes) -> list[StreamEvent]:
        d = self._d
        if d.state.finished:
            return []
        self._frames_in(self._frames.feed(data))
        return d.state.take()

    def close(self) -> list[StreamEvent]:
        d = self._d
        if not d.state.finished:
            self._frames_in(self._frames.close())
        if not d.state.finished:
            if self._frames.in_raw_json:
                d.fail(ProtocolError("the stream ended inside a raw JSON object (an error report was cut off)"))
            elif self._frames.discarded_partial:
                d.fail(ProtocolError("the stream ended in the middle of an event; the connection was probably cut"))
            elif d.finish_seen or d.block_reason is not None:
                d.finish()
            else:
                d.fail(
                    ProtocolError(
                        "the stream ended before any candidate had a finishReason; the connection was probably cut"
                    )
                )
        return d.state.take()

    def fail(self, error: LlmError) -> list[StreamEvent]:
        self._d.fail(error)
        return self._d.state.take()

    def _frames_in(self, frames: list[Frame]) -> None:
        d = self._d
        for frame in frames:
            if type(frame) is SseEvent:
                try:
                    payload = json.loads(frame.data)
                except ValueError:
                    d.fail(ProtocolError(f"a stream event is not JSON: {frame.data[:120]!r}"))
                else:
                    d.chunk(payload, frame.data)
            elif isinstance(frame, RawJson):
                # Raw JSON in the stream: an error report, or a response object that lost its framing.
                d.chunk(frame.value, frame.text)
            elif isinstance(frame, FramingError):
                d.fail(ProtocolError(frame.message))
            if d.state.finished:
                break


def events_from_body(body: bytes) -> list[StreamEvent]:
    """The events a non-streaming ``generateContent`` body stands for."""
    d = _Decoder()
    text = body.decode("utf-8", "replace")
    try:
        payload = loads(body)
    except ValueError:
        d.fail(ProtocolError(f"the response body is not JSON: {body[:120]!r}"))
        return d.state.take()
    d.chunk(payload, text)
    if not d.state.finished:
        if d.saw_candidate or d.block_reason is not None:
            d.finish()
        else:
            d.fail(ProtocolError("the response has no candidates"))
    return d.state.take()


def decode_body(body: bytes) -> ChatResponse:
    """Decode a complete non-streaming body into a ``ChatResponse``."""
    return fold(events_from_body(body))
