"""OpenTelemetry spans for the gateway: ``TracingMetrics`` wraps a ``MetricsSink`` (``gateway._hooks``) and
adds one span per finished gateway request, built from its ``RequestRecord``.

Off by default. ``[gateway] tracing = true`` or ``LLMRELAY_OTEL=1`` turns it on (``tracing_enabled``; the
environment variable, when set, wins: ``LLMRELAY_OTEL=0`` turns a configured ``tracing = true`` off), and
``build_app`` then wraps its metrics sink in a ``TracingMetrics``. It needs ``opentelemetry-api``
(``pip install 'llmrelay[otel]'``), imported when a ``TracingMetrics`` is created, never by ``import llmrelay``
nor by ``import llmrelay.gateway.app``. Spans go to the global tracer provider unless one is passed in: the
application configures the SDK and its exporter (OTLP, console, ...); without one the API's no-op provider
drops them.

The span follows the GenAI semantic conventions' inference span (semantic-conventions
``docs/gen-ai/gen-ai-spans.md``, v1.37+; status: development), the same ones the Prometheus names of
``gateway.metrics`` follow:

- **name** ``"{gen_ai.operation.name} {gen_ai.request.model}"`` (only the operation when no model was
  decoded, as for a request whose body did not parse);
- **kind** ``CLIENT``: the conventions' span is "a client call to a Generative AI model or service", and
  RECOMMEND ``CLIENT`` when the model runs in another process or is called over HTTP, which is what the
  gateway does for its caller (its own HTTP server span, if the application instruments aiohttp, is the
  parent this span joins: it is started in the request's context);
- **timing**: from the request's arrival (``RequestRecord.started``) for ``latency_s``, with every retry and
  fallback attempt inside it, as the conventions ask of a span covering "the logical operation with all
  retries";
- **status** per the conventions' "Recording errors": ``ERROR`` with ``error.type`` when the request failed
  (any ``error_kind`` or ``fault``: a refusal, a provider error, a cancelled or a broken stream), unset
  otherwise.

Attributes (nothing a client sent or a model wrote is recorded: no prompt, no completion, no secret):

==================================  ==============================================================================
``gen_ai.operation.name``           ``chat``, ``invoke_agent``, ``count_tokens``, ... (``metrics.operation_name``)
``gen_ai.provider.name``            the conventions' well-known value where one applies, else our endpoint name;
                                    ``none`` when no provider was reached (``metrics.otel_provider_name``)
``gen_ai.request.model``            the model string the client sent (an alias or fallback name included)
``gen_ai.response.model``           the model that answered (the last one tried when it failed)
``gen_ai.usage.input_tokens``,      the request's usage, when known
``gen_ai.usage.output_tokens``
``error.type``                      the ``LlmError`` kind (``rate_limit``, ``timeout``, ``refused``,
                                    ``cancelled``, ...); the HTTP status, or ``_OTHER``, when it has none
``http.response.status_code``       the status sent to the client
``llmrelay.route``,                 the gateway route and its dialect (``openai``, ``anthropic``, ``native``)
``llmrelay.dialect``
``llmrelay.stream``                 whether the response was streamed
``llmrelay.attempts``               providers tried (retries and fallbacks)
``llmrelay.fault``                  who a failure is on: ``caller``, ``policy``, ``provider``, ``gateway``
``llmrelay.key.name``               the gateway key's *name* (never its secret); absent for the anonymous caller
``llmrelay.cost``,                  the priced cost and its currency, when known (never a guessed 0)
``llmrelay.cost.currency``
``llmrelay.usage.cache_read_tokens``, ``llmrelay.usage.cache_write_tokens``, ``llmrelay.usage.reasoning_tokens``:
                                    the parts of the usage, when the provider reported them
``llmrelay.time_to_first_chunk_s``  streams: seconds to the first chunk sent to the client
==================================  ==============================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ..config import ConfigError
from ._hooks import MetricsSink, RequestRecord
from .metrics import operation_name, otel_provider_name

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = ["ENV_VAR", "TracingMetrics", "tracing_enabled"]

ENV_VAR = "LLMRELAY_OTEL"
"""The environment variable that turns the gateway's spans on (``1``) or off (``0``), over the config."""

INSTALL_HINT = "pip install 'llmrelay[otel]'"

_SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "")


def tracing_enabled(configured: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the gateway traces: ``LLMRELAY_OTEL`` when set (``1``/``true``/``yes``/``on`` or
    ``0``/``false``/``no``/``off``), else ``configured`` (``[gateway] tracing``)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR)
    if raw is None:
        return configured
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ConfigError(f"{ENV_VAR} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


class TracingMetrics:
    """A ``MetricsSink`` that records one OpenTelemetry span per finished request, then hands every call to
    ``inner`` (whose ``render()`` is the gateway's ``/metrics``).

    ``tracer_provider``: where the spans go (default: the global provider, set by the application).
    Raises ``ConfigError`` when ``opentelemetry-api`` is not installed.
    """

    def __init__(self, inner: MetricsSink, *, tracer_provider: TracerProvider | None = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise ConfigError(
                f"gateway tracing is on ([gateway] tracing = true or {ENV_VAR}=1) but OpenTelemetry is not "
                f"installed: {INSTALL_HINT}, or turn tracing off"
            ) from exc
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("llmrelay")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
            ours = None
        self.inner = inner
        """The wrapped sink (Prometheus metrics, usually)."""
        self._trace = trace
        self._tracer: Tracer = trace.get_tracer(
            "llmrelay.gateway", ours, tracer_provider=tracer_provider, schema_url=_SCHEMA_URL
        )

    def request_started(self, route: str) -> None:
        self.inner.request_started(route)

    def request_finished(self, record: RequestRecord) -> None:
        """Hand ``record`` to the inner sink, and record its span."""
        try:
            self.inner.request_finished(record)
        finally:
            self._record(record)

    def render(self) -> tuple[str, bytes]:
        return self.inner.render()

    def _record(self, record: RequestRecord) -> None:
        operation = operation_name(record.route)
        name = f"{operation} {record.requested_model}" if record.requested_model else operation
        start = record.started
        end = start + timedelta(seconds=max(record.latency_s, 0.0))
        span = self._tracer.start_span(
            name,
            kind=self._trace.SpanKind.CLIENT,
            attributes=span_attributes(record),
            start_time=_nanos(start.timestamp()),
        )
        error = error_type(record)
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end(end_time=_nanos(end.timestamp()))


def _nanos(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def error_type(record: RequestRecord) -> str | None:
    """The span's ``error.type``: the error kind, else the HTTP status (``_OTHER`` below 400); ``None`` when
    the request succeeded."""
    if record.error_kind is not None:
        return record.error_kind
    if record.fault is None and record.status < 400:
        return None
    return str(record.status) if record.status >= 400 else "_OTHER"


def span_attributes(record: RequestRecord) -> dict[str, AttributeValue]:
    """The attributes of ``record``'s span (see the module docstring): no content, no secret."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation_name(record.route),
        "gen_ai.provider.name": otel_provider_name(record.provider),
        "http.response.status_code": record.status,
        "llmrelay.route": record.route,
        "llmrelay.dialect": record.dialect,
        "llmrelay.stream": record.stream,
        "llmrelay.attempts": record.attempts,
    }
    if record.requested_model is not None:
        attributes["gen_ai.request.model"] = record.requested_model
    if record.model is not None:
        attributes["gen_ai.response.model"] = record.model
    error = error_type(record)
    if error is not None:
        attributes["error.type"] = error
    if record.fault is not None:
        attributes["llmrelay.fault"] = record.fault
    if record.key_name is not None:
        attributes["llmrelay.key.name"] = record.key_name
    usage = record.usage
    if usage is not None:
        for key, count in (
            ("gen_ai.usage.input_tokens", usage.input_tokens),
            ("gen_ai.usage.output_tokens", usage.output_tokens),
            ("llmrelay.usage.cache_read_tokens", usage.cache_read_tokens),
            ("llmrelay.usage.cache_write_tokens", usage.cache_write_tokens),
            ("llmrelay.usage.reasoning_tokens", usage.reasoning_tokens),
        ):
            if count is not None:
                attributes[key] = count
    if record.cost is not None:
        attributes["llmrelay.cost"] = float(record.cost)
        attributes["llmrelay.cost.currency"] = record.currency
    if record.ttft_s is not None:
        attributes["llmrelay.time_to_first_chunk_s"] = record.ttft_s
    return attributes
