"""Prometheus metrics for the gateway: ``PrometheusMetrics`` implements ``MetricsSink`` (``gateway._hooks``).

The app calls ``request_started(route)`` when a request arrives and ``request_finished(record)`` when it is
done; ``render()`` is the body of ``GET /metrics`` (the text exposition format). Each instance has its own
``CollectorRegistry``, so several gateways (or tests) in one process never share counters.

Names follow the OpenTelemetry semantic conventions for generative AI metrics where they define one
(semantic-conventions ``docs/gen-ai/gen-ai-metrics.md``, v1.37+, and ``model/gen-ai/metrics.yaml`` in
open-telemetry/semantic-conventions-genai; status: development), translated to Prometheus the way the OTel
Prometheus exporter does (dots become underscores, the unit ``s`` becomes the ``_seconds`` suffix):

=========================================================  ==================================================
OpenTelemetry instrument (unit, buckets from the spec)     Prometheus series here
=========================================================  ==================================================
``gen_ai.client.operation.duration`` (s, 0.01 .. 81.92)    ``gen_ai_client_operation_duration_seconds``
``gen_ai.client.token.usage`` ({token}, 1 .. 4**13)        ``gen_ai_client_token_usage`` (``gen_ai_token_type``
                                                           ``input`` / ``output``)
``gen_ai.server.time_to_first_token`` (s, 0.001 .. 10)     ``gen_ai_server_time_to_first_token_seconds``
=========================================================  ==================================================

The duration is the whole gateway request, as the client sees it (the conventions' client "operation"; the
gateway is the client of its upstream and this is the operation it performs for its caller). Time to first
token is the time to the first chunk sent to the client, the gateway-as-server view the conventions call
``gen_ai.server.time_to_first_token``; it is recorded for streams only (``RequestRecord.ttft_s``). Their
labels are the conventions' attributes: ``gen_ai_operation_name`` (``chat``, ``invoke_agent``, or our own
``count_tokens`` / ``list_models``), ``gen_ai_provider_name`` (the conventions' well-known values where one
applies: ``gcp.gemini``, ``azure.ai.openai``, ``mistral_ai``, ``x_ai``; otherwise our endpoint name; ``none``
when no provider was reached), ``gen_ai_request_model``, ``gen_ai_response_model`` and ``error_type`` (the
``LlmError`` kind; ``""`` on success).

What the conventions do not cover is prefixed ``llmrelay_``:

- ``llmrelay_requests_total``: route, dialect, provider, requested model, key, ``stream``, ``status_class``
  (``2xx``/``4xx``/``5xx``), ``error_type`` and ``fault`` (``caller``, ``policy``, ``provider``,
  ``gateway``; ``""`` on success).
- ``llmrelay_errors_total``: failed requests by ``error_type`` and ``fault`` (and route, provider).
- ``llmrelay_tokens_total``: tokens by provider, response model, key and ``gen_ai_token_type`` (``input``,
  ``output``, and the parts ``cache_read``, ``cache_write``, ``reasoning``).
- ``llmrelay_cost_usd_total``: known cost in USD by provider, response model and key. A request whose cost
  is unknown (no price, or another currency) is never counted as 0: it goes to
  ``llmrelay_cost_unknown_total`` (requests with usage but no USD cost).
- ``llmrelay_requests_in_flight``: the gauge, by route.

Cardinality is bounded: routes, providers, models, keys and error kinds each admit a fixed number of distinct
values (``max_*`` arguments; requested and response models share one table); later ones are reported as
``other``. A requested model string comes from the
client, so a new one is admitted only when the request reached a provider (a request for an unknown model
cannot fill the table); values longer than 128 characters are ``other`` too.

``prometheus_client`` is imported when a ``PrometheusMetrics`` is created (``pip install 'llmrelay[gateway]'``),
never by ``import llmrelay``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._hooks import RequestRecord

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["OTHER", "PrometheusMetrics", "operation_name", "otel_provider_name"]

_INSTALL_HINT = "pip install 'llmrelay[gateway]'"

OTHER = "other"
"""The label value that stands for every value past a dimension's cap."""

_MAX_LABEL_LENGTH = 128

# Bucket boundaries recommended by the conventions (gen-ai-metrics.md, "ExplicitBucketBoundaries").
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

_OPERATIONS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/messages": "chat",
    "/api/chat": "chat",
    "/api/agent": "invoke_agent",
    "/api/agent/stream": "invoke_agent",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/models": "list_models",
}

# Our endpoint names whose provider has a well-known ``gen_ai.provider.name`` spelled differently.
_OTEL_PROVIDERS: dict[str, str] = {
    "azure": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}


def operation_name(route: str) -> str:
    """The ``gen_ai.operation.name`` of a gateway route (``chat``, ``invoke_agent``, ...; else ``other``)."""
    return _OPERATIONS.get(route, OTHER)


def otel_provider_name(provider: str | None) -> str:
    """The ``gen_ai.provider.name`` for one of our endpoint names (``none`` when no provider was reached)."""
    if provider is None:
        return "none"
    return _OTEL_PROVIDERS.get(provider, provider)


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class _Capped:
    """At most ``limit`` distinct values of one label; the rest (and over-long ones) become ``other``."""

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"a label cap must be >= 0, got {limit}")
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None, *, admit: bool = True) -> str:
        if value is None:
            return ""
        if value in self._seen:
            return value
        if not admit or len(value) > _MAX_LABEL_LENGTH or value == OTHER:
            return OTHER
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
        return value


class _Family:
    """One metric with a cache of its labelled children (``labels()`` costs a lock and a tuple check)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def child(self, *values: str) -> Any:
        found = self._children.get(values)
        if found is None:
            found = self._metric.labels(*values)
            self._children[values] = found
        return found


class _Series:
    """The labelled children one kind of finished request updates, found once per distinct record shape
    (``PrometheusMetrics._series``). The children every such request updates are made with the series; the
    others (time to first token, token counts, cost) only when a request first needs them, exactly as the
    plain path would, so ``/metrics`` shows the same series either way."""

    __slots__ = ("answered", "duration", "errors", "gen_ai", "in_flight", "requests", "tokens", "usage")

    def __init__(self, m: PrometheusMetrics, record: RequestRecord) -> None:
        route = m._route(record.route)
        reached = record.provider is not None
        provider = otel_provider_name(m._provider(record.provider)) if reached else "none"
        requested = m._model(record.requested_model, admit=reached)
        answered = m._model(record.model, admit=reached)
        key = m._key(record.key_name)
        error = m._error(record.error_kind)
        fault = record.fault or ""
        operation = operation_name(record.route)
        self.in_flight = m._in_flight.child(route)
        self.requests = m._requests.child(
            route,
            record.dialect,
            provider,
            requested,
            key,
            "true" if record.stream else "false",
            _status_class(record.status),
            error,
            fault,
        )
        failed = record.error_kind is not None or record.fault is not None
        self.errors = m._errors.child(route, provider, error or OTHER, fault) if failed else None
        self.gen_ai = (operation, provider, requested, answered)
        self.duration = m._duration.child(*self.gen_ai, error)
        self.answered = (provider, answered, key)
        self.usage: dict[str, Any] = {}
        """``gen_ai_client_token_usage`` children by token type, made when first observed."""
        self.tokens: dict[str, Any] = {}
        """``llmrelay_tokens_total`` children by token type, made when first counted."""


_MAX_SERIES = 4096
"""The most record shapes ``PrometheusMetrics`` keeps the children of (past it the table starts over)."""


class PrometheusMetrics:
    """A ``MetricsSink`` that keeps the gateway's Prometheus metrics in its own registry.

    ``max_routes``, ``max_providers``, ``max_models``, ``max_keys`` and ``max_error_kinds`` bound each
    label's distinct values (past the cap: ``other``). ``namespace`` is the prefix of our own metrics.
    """

    def __init__(
        self,
        *,
        max_routes: int = 32,
        max_providers: int = 32,
        max_models: int = 100,
        max_keys: int = 200,
        max_error_kinds: int = 64,
        namespace: str = "llmrelay",
    ) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"the gateway's /metrics needs prometheus-client: {_INSTALL_HINT}") from exc
        self._prom = prom
        self.registry: CollectorRegistry = prom.CollectorRegistry(auto_describe=True)
        """The registry holding every metric of this instance (add your own collectors to it if you like)."""
        self._route = _Capped(max_routes)
        self._provider = _Capped(max_providers)
        self._model = _Capped(max_models)
        self._key = _Capped(max_keys)
        self._error = _Capped(max_error_kinds)
        reg = self.registry
        ns = namespace
        gen_ai = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model")
        self._duration = _Family(
            prom.Histogram(
                "gen_ai_client_operation_duration",
                "GenAI operation duration: one gateway request, from its arrival to its last byte.",
                (*gen_ai, "error_type"),
                unit="seconds",
                buckets=_DURATION_BUCKETS,
                registry=reg,
            )
        )
        self._token_usage = _Family(
            prom.Histogram(
                "gen_ai_client_token_usage",
                "Number of input and output tokens used, per request.",
                (*gen_ai, "gen_ai_token_type"),
                buckets=_TOKEN_BUCKETS,
                registry=reg,
            )
        )
        self._ttft = _Family(
            prom.Histogram(
                "gen_ai_server_time_to_first_token",
                "Time to the first chunk sent to the client, for streamed responses.",
                gen_ai,
                unit="seconds",
                buckets=_TTFT_BUCKETS,
                registry=reg,
            )
        )
        self._requests = _Family(
            prom.Counter(
                f"{ns}_requests",
                "Gateway requests by route, dialect, provider, requested model, key, status class and error.",
                (
                    "route",
                    "dialect",
                    "gen_ai_provider_name",
                    "gen_ai_request_model",
                    "llmrelay_key",
                    "stream",
                    "status_class",
                    "error_type",
                    "fault",
                ),
                registry=reg,
            )
        )
        self._errors = _Family(
            prom.Counter(
                f"{ns}_errors",
                "Failed gateway requests by error kind and by who is at fault (caller, policy, provider, gateway).",
                ("route", "gen_ai_provider_name", "error_type", "fault"),
                registry=reg,
            )
        )
        self._tokens = _Family(
            prom.Counter(
                f"{ns}_tokens",
                "Tokens by provider, response model, key and type (input, output; parts: cache_read, "
                "cache_write, reasoning).",
                ("gen_ai_provider_name", "gen_ai_response_model", "llmrelay_key", "gen_ai_token_type"),
                registry=reg,
            )
        )
        self._cost = _Family(
            prom.Counter(
                f"{ns}_cost_usd",
                "Known cost in USD by provider, response model and key (unknown cost is never counted as 0).",
                ("gen_ai_provider_name", "gen_ai_response_model", "llmrelay_key"),
                registry=reg,
            )
        )
        self._cost_unknown = _Family(
            prom.Counter(
                f"{ns}_cost_unknown",
                "Requests that used tokens but whose cost in USD is unknown (no price, or another currency).",
                ("gen_ai_provider_name", "gen_ai_response_model", "llmrelay_key"),
                registry=reg,
            )
        )
        self._in_flight = _Family(
            prom.Gauge(f"{ns}_requests_in_flight", "Gateway requests being served, by route.", ("route",), registry=reg)
        )
        self._started: dict[str, Any] = {}
        """The in-flight child per route string as ``request_started`` is called with it."""
        self._series: dict[tuple[Any, ...], _Series] = {}
        """The children per record shape (see ``_Series``), for requests that reached a provider: what the
        caps map their labels to can no longer change (a cap's table only grows, and a value refused at a
        full table stays refused), while an unreached request's requested model may be admitted later."""

    def request_started(self, route: str) -> None:
        """One more request in flight on ``route``."""
        child = self._started.get(route)
        if child is None:
            child = self._in_flight.child(self._route(route))
            if len(self._started) < _MAX_SERIES:
                self._started[route] = child
        child.inc()

    def request_finished(self, record: RequestRecord) -> None:
        """Count one finished request: every counter and histogram, and one fewer in flight."""
        shape = (
            record.route,
            record.dialect,
            record.provider,
            record.requested_model,
            record.model,
            record.key_name,
            record.stream,
            record.status,
            record.error_kind,
            record.fault,
        )
        series = self._series.get(shape)
        if series is None:
            series = _Series(self, record)
            if record.provider is not None:
                if len(self._series) >= _MAX_SERIES:
                    self._series.clear()
                self._series[shape] = series
        series.in_flight.dec()
        series.requests.inc()
        if series.errors is not None:
            series.errors.inc()
        series.duration.observe(max(record.latency_s, 0.0))
        if record.ttft_s is not None:
            self._ttft.child(*series.gen_ai).observe(max(record.ttft_s, 0.0))

        usage = record.usage
        if usage is None:
            return
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if count is None:
                continue
            if kind == "input" or kind == "output":
                child = series.usage.get(kind)
                if child is None:
                    child = series.usage[kind] = self._token_usage.child(*series.gen_ai, kind)
                child.observe(count)
            if count:
                child = series.tokens.get(kind)
                if child is None:
                    child = series.tokens[kind] = self._tokens.child(*series.answered, kind)
                child.inc(count)
        if record.cost is not None and record.currency == "USD":
            # A known zero (a free model) still creates the series: 0 shown is 0 known.
            self._cost.child(*series.answered).inc(max(float(record.cost), 0.0))
        elif usage.input_tokens or usage.output_tokens:
            self._cost_unknown.child(*series.answered).inc()

    def render(self) -> tuple[str, bytes]:
        """``(content_type, body)``: the Prometheus text exposition of this instance's registry."""
        return self._prom.CONTENT_TYPE_LATEST, self._prom.generate_latest(self.registry)
