"""``PrometheusMetrics``: records in, the text exposition out, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from llmrelay import Usage
from llmrelay.gateway._hooks import MetricsSink, RequestRecord
from llmrelay.gateway.metrics import OTHER, PrometheusMetrics, operation_name, otel_provider_name

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _record(**overrides: object) -> RequestRecord:
    fields: dict[str, object] = {
        "route": "/v1/chat/completions",
        "dialect": "openai",
        "status": 200,
        "started": T0,
        "latency_s": 0.05,
        "key_name": "team-a",
        "requested_model": "openai/gpt-4o-mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "attempts": 1,
        "usage": Usage(input_tokens=100, output_tokens=20, cache_read_tokens=40, reasoning_tokens=5),
        "cost": Decimal("0.0015"),
    }
    fields.update(overrides)
    return RequestRecord(**fields)  # type: ignore[arg-type]


def _samples(metrics: PrometheusMetrics) -> list[Sample]:
    content_type, body = metrics.render()
    assert content_type.startswith("text/plain")
    return [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels`` (fails when none or several match)."""
    found = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name} {labels}: {len(found)} samples: {found}"
    return found[0].value


def test_is_a_metrics_sink() -> None:
    sink: MetricsSink = PrometheusMetrics()
    assert sink.render()[0].startswith("text/plain")


def test_requests_counter_labels_and_values() -> None:
    m = PrometheusMetrics()
    for _ in range(3):
        m.request_started("/v1/chat/completions")
        m.request_finished(_record())
    m.request_started("/v1/messages")
    m.request_finished(
        _record(
            route="/v1/messages",
            dialect="anthropic",
            status=429,
            provider=None,
            model=None,
            usage=None,
            cost=None,
            error_kind="rate_limit",
            fault="policy",
        )
    )
    s = _samples(m)
    ok = _value(
        s,
        "llmrelay_requests_total",
        route="/v1/chat/completions",
        dialect="openai",
        gen_ai_provider_name="openai",
        gen_ai_request_model="openai/gpt-4o-mini",
        llmrelay_key="team-a",
        stream="false",
        status_class="2xx",
        error_type="",
        fault="",
    )
    assert ok == 3
    limited = _value(s, "llmrelay_requests_total", route="/v1/messages", status_class="4xx")
    assert limited == 1
    # No provider reached: "none", and the requested model (not admitted without a provider) is "other".
    limited_sample = next(x for x in s if x.name == "llmrelay_requests_total" and x.labels["route"] == "/v1/messages")
    assert limited_sample.labels["gen_ai_provider_name"] == "none"
    assert limited_sample.labels["gen_ai_request_model"] == "openai/gpt-4o-mini"  # already known: kept
    assert limited_sample.labels["error_type"] == "rate_limit"
    assert limited_sample.labels["fault"] == "policy"


def test_errors_by_kind_and_fault() -> None:
    m = PrometheusMetrics()
    cases = [
        (400, "invalid_request", "caller"),
        (400, "invalid_request", "caller"),
        (429, "rate_limit", "policy"),
        (502, "server", "provider"),
        (500, "internal", "gateway"),
    ]
    for status, kind, fault in cases:
        m.request_started("/api/chat")
        m.request_finished(_record(route="/api/chat", dialect="native", status=status, error_kind=kind, fault=fault))
    m.request_finished(_record(route="/api/chat", dialect="native"))  # a success is not an error
    s = _samples(m)
    assert _value(s, "llmrelay_errors_total", error_type="invalid_request", fault="caller") == 2
    assert _value(s, "llmrelay_errors_total", error_type="rate_limit", fault="policy") == 1
    assert _value(s, "llmrelay_errors_total", error_type="server", fault="provider") == 1
    assert _value(s, "llmrelay_errors_total", error_type="internal", fault="gateway") == 1
    assert sum(x.value for x in s if x.name == "llmrelay_errors_total") == 5
    assert _value(s, "llmrelay_requests_total", status_class="5xx", fault="gateway") == 1


def test_a_stream_that_failed_after_its_first_byte_is_200_with_an_error() -> None:
    m = PrometheusMetrics()
    m.request_finished(_record(status=200, stream=True, ttft_s=0.02, error_kind="idle_timeout", fault="provider"))
    s = _samples(m)
    assert _value(s, "llmrelay_requests_total", status_class="2xx", error_type="idle_timeout", stream="true") == 1
    assert _value(s, "llmrelay_errors_total", error_type="idle_timeout", fault="provider") == 1


def test_duration_histogram_buckets_follow_the_conventions() -> None:
    m = PrometheusMetrics()
    for latency in (0.005, 0.015, 0.5, 100.0):
        m.request_finished(_record(latency_s=latency))
    s = _samples(m)
    name = "gen_ai_client_operation_duration_seconds"
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": "openai/gpt-4o-mini",
        "gen_ai_response_model": "gpt-4o-mini",
        "error_type": "",
    }
    assert _value(s, f"{name}_count", **labels) == 4
    assert _value(s, f"{name}_sum", **labels) == pytest.approx(100.52)
    buckets = {x.labels["le"]: x.value for x in s if x.name == f"{name}_bucket"}
    # The spec's boundaries [0.01, 0.02, ..., 81.92], cumulative.
    assert list(buckets)[:3] == ["0.01", "0.02", "0.04"]
    assert buckets["0.01"] == 1
    assert buckets["0.02"] == 2
    assert buckets["0.64"] == 3
    assert buckets["81.92"] == 3
    assert buckets["+Inf"] == 4


def test_time_to_first_token_only_for_streams() -> None:
    m = PrometheusMetrics()
    m.request_finished(_record(stream=True, ttft_s=0.003))
    m.request_finished(_record(stream=True, ttft_s=0.3))
    m.request_finished(_record(stream=False))
    s = _samples(m)
    name = "gen_ai_server_time_to_first_token_seconds"
    assert _value(s, f"{name}_count", gen_ai_response_model="gpt-4o-mini") == 2
    assert _value(s, f"{name}_sum", gen_ai_response_model="gpt-4o-mini") == pytest.approx(0.303)
    assert _value(s, f"{name}_bucket", le="0.005") == 1
    assert _value(s, f"{name}_bucket", le="0.5") == 2


def test_token_usage_histogram_and_token_counters() -> None:
    m = PrometheusMetrics()
    m.request_finished(_record())
    m.request_finished(_record(usage=Usage(input_tokens=1000, output_tokens=1)))
    s = _samples(m)
    assert _value(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") == 1100
    assert _value(s, "gen_ai_client_token_usage_count", gen_ai_token_type="input") == 2
    assert _value(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == 21
    assert _value(s, "gen_ai_client_token_usage_bucket", gen_ai_token_type="output", le="1.0") == 1
    # The histogram holds only the conventions' two types; the parts go to our counter.
    assert not [
        x
        for x in s
        if x.name.startswith("gen_ai_client_token_usage") and x.labels.get("gen_ai_token_type") == "reasoning"
    ]
    for kind, total in (("input", 1100), ("output", 21), ("cache_read", 40), ("reasoning", 5)):
        assert _value(s, "llmrelay_tokens_total", gen_ai_token_type=kind, llmrelay_key="team-a") == total
    assert not [x for x in s if x.name == "llmrelay_tokens_total" and x.labels["gen_ai_token_type"] == "cache_write"]


def test_cost_known_summed_and_unknown_counted_apart() -> None:
    m = PrometheusMetrics()
    m.request_finished(_record(cost=Decimal("0.0015")))
    m.request_finished(_record(cost=Decimal("0.0025")))
    m.request_finished(_record(cost=None))  # no price: unknown, not zero
    m.request_finished(_record(cost=Decimal("1"), currency="EUR"))  # not USD: unknown here
    m.request_finished(_record(provider="ollama", model="llama3", requested_model="ollama/llama3", cost=Decimal(0)))
    s = _samples(m)
    assert _value(s, "llmrelay_cost_usd_total", gen_ai_response_model="gpt-4o-mini") == pytest.approx(0.004)
    assert _value(s, "llmrelay_cost_unknown_total", gen_ai_response_model="gpt-4o-mini") == 2
    # A free model's cost is a known 0: the series exists and reads 0; it is not "unknown".
    assert _value(s, "llmrelay_cost_usd_total", gen_ai_response_model="llama3") == 0
    assert not [
        x for x in s if x.name == "llmrelay_cost_unknown_total" and x.labels["gen_ai_response_model"] == "llama3"
    ]


def test_in_flight_gauge() -> None:
    m = PrometheusMetrics()
    for _ in range(3):
        m.request_started("/v1/chat/completions")
    m.request_started("/v1/messages")
    s = _samples(m)
    assert _value(s, "llmrelay_requests_in_flight", route="/v1/chat/completions") == 3
    assert _value(s, "llmrelay_requests_in_flight", route="/v1/messages") == 1
    m.request_finished(_record())
    m.request_finished(_record(route="/v1/messages", dialect="anthropic"))
    s = _samples(m)
    assert _value(s, "llmrelay_requests_in_flight", route="/v1/chat/completions") == 2
    assert _value(s, "llmrelay_requests_in_flight", route="/v1/messages") == 0


def test_cardinality_is_capped() -> None:
    m = PrometheusMetrics(max_keys=3, max_models=3)
    for i in range(10):
        m.request_finished(_record(key_name=f"key-{i}"))
    for i in range(5):
        m.request_finished(_record(requested_model=f"openai/m{i}", model=f"m{i}"))
    s = _samples(m)
    keys = {x.labels["llmrelay_key"] for x in s if x.name == "llmrelay_requests_total"}
    assert keys == {"key-0", "key-1", "key-2", OTHER}
    assert _value(s, "llmrelay_requests_total", llmrelay_key=OTHER, gen_ai_request_model="openai/gpt-4o-mini") == 7
    models = {x.labels["gen_ai_request_model"] for x in s if x.name == "llmrelay_requests_total"}
    # Requested and response models share one table of 3: "openai/gpt-4o-mini", "gpt-4o-mini", "openai/m0".
    assert models == {"openai/gpt-4o-mini", "openai/m0", OTHER}
    answered = {
        x.labels["gen_ai_response_model"] for x in s if x.name == "gen_ai_client_operation_duration_seconds_count"
    }
    assert answered == {"gpt-4o-mini", OTHER}
    assert sum(x.value for x in s if x.name == "llmrelay_requests_total") == 15


def test_unknown_models_from_clients_cannot_fill_the_table() -> None:
    m = PrometheusMetrics(max_models=2)
    for i in range(50):
        m.request_finished(
            _record(
                requested_model=f"junk-{i}",
                provider=None,
                model=None,
                usage=None,
                cost=None,
                status=404,
                error_kind="model_not_found",
                fault="caller",
            )
        )
    m.request_finished(_record())
    m.request_finished(_record(requested_model="x" * 500))
    s = _samples(m)
    models = {x.labels["gen_ai_request_model"] for x in s if x.name == "llmrelay_requests_total"}
    assert models == {OTHER, "openai/gpt-4o-mini"}
    assert _value(s, "llmrelay_requests_total", gen_ai_request_model=OTHER, status_class="4xx") == 50


def test_instances_do_not_share_a_registry() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.request_finished(_record())
    assert _value(_samples(a), "llmrelay_requests_total", route="/v1/chat/completions") == 1
    assert not [x for x in _samples(b) if x.name == "llmrelay_requests_total"]


def test_label_helpers() -> None:
    assert operation_name("/v1/messages") == "chat"
    assert operation_name("/api/agent/stream") == "invoke_agent"
    assert operation_name("/nope") == OTHER
    assert otel_provider_name("gemini") == "gcp.gemini"
    assert otel_provider_name("anthropic") == "anthropic"
    assert otel_provider_name(None) == "none"


def test_import_llmrelay_does_not_load_prometheus_client() -> None:
    code = "import sys, llmrelay, llmrelay.gateway, llmrelay.gateway._hooks; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
