"""The gateway's optional OpenTelemetry spans (``llmrelay.gateway.tracing``): one GenAI inference span per
request, built from its ``RequestRecord``, through a real gateway in front of a real ``FakeUpstream``.

Spans go to the SDK's ``InMemorySpanExporter`` on a ``TracerProvider`` of the test's own: the global provider
is set only inside child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway_support import GATEWAY_KEY_SECRET, load, serving, upstream_config
from llmrelay.config import ConfigError
from llmrelay.gateway._hooks import RequestRecord
from llmrelay.gateway._null_metrics import CountingMetrics
from llmrelay.gateway._relay import StaticKey
from llmrelay.gateway.app import GATEWAY_KEY, app_runner_kwargs, build_app
from llmrelay.gateway.tracing import TracingMetrics, tracing_enabled
from llmrelay.metering import MemoryLedger
from llmrelay.testing import FakeUpstream
from llmrelay.testing.openai_kit import KIT as OA

AUTH = {"authorization": f"Bearer {GATEWAY_KEY_SECRET}"}
PROMPT = "a secret prompt about zebras"
REPLY = "a private answer about zebras"


@pytest.fixture(autouse=True)
def _keys(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
    monkeypatch.delenv("LLMRELAY_OTEL", raising=False)
    yield


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp
    tp.shutdown()


@asynccontextmanager
async def traced_gateway(config_text: str, provider: TracerProvider) -> AsyncIterator[tuple[str, CountingMetrics]]:
    """A gateway on 127.0.0.1 whose metrics are ``TracingMetrics`` over ``CountingMetrics`` (whose records
    the spans are checked against)."""
    inner = CountingMetrics()
    metrics = TracingMetrics(inner, tracer_provider=provider)
    app = build_app(load(config_text), auth=StaticKey(GATEWAY_KEY_SECRET), ledger=MemoryLedger(), metrics=metrics)
    assert app[GATEWAY_KEY].metrics is metrics
    runner = web.AppRunner(app, **app_runner_kwargs(app))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", inner
    finally:
        await runner.cleanup()


async def chat(url: str, *, stream: bool = False) -> int:
    body = {"model": "oa/gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/chat/completions", json=body, headers=AUTH) as r:
        await r.read()
        return r.status


def _nanos(record: RequestRecord, extra_s: float = 0.0) -> int:
    return int((record.started + timedelta(seconds=extra_s)).timestamp() * 1_000_000_000)


def _no_content(span: ReadableSpan) -> None:
    text = json.dumps(dict(span.attributes or {}), default=str) + span.name
    for secret in ("zebras", GATEWAY_KEY_SECRET, "sk-upstream"):
        assert secret not in text, (secret, text)


async def test_a_request_is_one_client_span_named_and_timed_by_its_record(
    upstream: FakeUpstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    upstream.add(OA.text(REPLY, stream=False, usage=(12, 7)))
    async with traced_gateway(upstream_config(upstream), provider) as (url, inner):
        assert await chat(url) == 200
    (record,) = inner.records  # the inner sink still gets every call
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat oa/gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.start_time == _nanos(record) and span.end_time == _nanos(record, record.latency_s)
    assert span.end_time > span.start_time
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "oa"
    assert attrs["gen_ai.request.model"] == "oa/gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == record.model and record.model
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["http.response.status_code"] == 200
    assert attrs["llmrelay.route"] == "/v1/chat/completions" and attrs["llmrelay.dialect"] == "openai"
    assert attrs["llmrelay.attempts"] == record.attempts and attrs["llmrelay.stream"] is False
    assert "error.type" not in attrs and "llmrelay.fault" not in attrs
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "llmrelay.gateway"
    _no_content(span)


async def test_a_streamed_request_records_its_time_to_first_chunk(
    upstream: FakeUpstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    upstream.add(OA.text(REPLY, stream=True, usage=(3, 4)))
    async with traced_gateway(upstream_config(upstream), provider) as (url, inner):
        assert await chat(url, stream=True) == 200
    (record,) = inner.records
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["llmrelay.stream"] is True
    assert record.ttft_s is not None and attrs["llmrelay.time_to_first_chunk_s"] == record.ttft_s
    assert attrs["gen_ai.usage.output_tokens"] == 4
    _no_content(span)


async def test_a_failed_request_is_an_error_span_with_its_error_type(
    upstream: FakeUpstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    upstream.add(OA.error(503))
    async with traced_gateway(upstream_config(upstream), provider) as (url, inner):
        status = await chat(url)
    (record,) = inner.records
    assert status == record.status and status >= 500
    assert record.error_kind is not None and record.fault == "provider"
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat oa/gpt-4o-mini"
    assert span.status.status_code is StatusCode.ERROR and span.status.description == record.error_kind
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == record.error_kind
    assert attrs["llmrelay.fault"] == "provider" and attrs["http.response.status_code"] == status
    assert attrs["gen_ai.provider.name"] == "oa"
    assert span.start_time == _nanos(record) and span.end_time == _nanos(record, record.latency_s)
    _no_content(span)


async def test_a_refused_request_names_the_key_and_never_its_secret(
    upstream: FakeUpstream, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """A body that does not decode has no model: the span is named by its operation alone, no provider was
    reached, and the caller is at fault."""
    async with (
        traced_gateway(upstream_config(upstream), provider) as (url, _),
        aiohttp.ClientSession() as s,
        s.post(f"{url}/v1/chat/completions", data=b"{not json", headers=AUTH) as r,
    ):
        assert r.status == 400
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat"
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.provider.name"] == "none" and "gen_ai.request.model" not in attrs
    assert attrs["llmrelay.fault"] == "caller" and span.status.status_code is StatusCode.ERROR
    assert attrs["llmrelay.key.name"]  # the static key's name, never its secret
    _no_content(span)


# --- configuration -----------------------------------------------------------------------------------------


async def test_tracing_is_off_by_default_and_on_by_config_or_environment(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(upstream_config(upstream)) as gw:
        assert isinstance(gw.gateway.metrics, CountingMetrics)
    async with serving(upstream_config(upstream, extra="[gateway]\ntracing = true\n")) as gw:
        traced = gw.gateway.metrics
        assert isinstance(traced, TracingMetrics) and traced.inner is gw.metrics
    monkeypatch.setenv("LLMRELAY_OTEL", "1")
    async with serving(upstream_config(upstream)) as gw:
        assert isinstance(gw.gateway.metrics, TracingMetrics)
    monkeypatch.setenv("LLMRELAY_OTEL", "0")  # set, the variable wins over the file
    async with serving(upstream_config(upstream, extra="[gateway]\ntracing = true\n")) as gw:
        assert isinstance(gw.gateway.metrics, CountingMetrics)


def test_the_tracing_settings_are_checked() -> None:
    assert load("[gateway]\n").gateway is not None and not load("[gateway]\n").gateway.tracing  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"gateway\.tracing.*true or false"):
        load('[gateway]\ntracing = "yes"\n')
    assert tracing_enabled(False, {"LLMRELAY_OTEL": "true"}) and not tracing_enabled(True, {"LLMRELAY_OTEL": "off"})
    assert tracing_enabled(True, {}) and not tracing_enabled(False, {})
    with pytest.raises(ConfigError, match=r"LLMRELAY_OTEL must be 1 or 0.*'maybe'"):
        tracing_enabled(False, {"LLMRELAY_OTEL": "maybe"})


def test_the_effective_config_shows_tracing() -> None:
    from llmrelay.cli._config import render_toml

    assert "tracing = true" in render_toml(load("[gateway]\ntracing = true\n"))
    assert "tracing = false" in render_toml(load("[gateway]\n"))


def test_tracing_without_opentelemetry_is_a_config_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # what `import opentelemetry` meets when absent
    config = load("[gateway]\ntracing = true\n")
    with pytest.raises(ConfigError, match=r"pip install 'llmrelay\[otel\]'"):
        build_app(config, auth=StaticKey(GATEWAY_KEY_SECRET), ledger=MemoryLedger(), metrics=CountingMetrics())


# --- in a child process: the global provider, and the lazy import ------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import llmrelay.gateway.app
    lazy = "opentelemetry" not in sys.modules
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from gateway_support import serving, upstream_config
    from llmrelay.testing import FakeUpstream
    from llmrelay.testing.openai_kit import KIT as OA
    import aiohttp

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    async def main():
        async with FakeUpstream() as up:
            up.add(OA.text("hello", stream=False))
            async with serving(upstream_config(up)) as gw, aiohttp.ClientSession() as s:
                body = {"model": "oa/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                headers = {"authorization": "Bearer gw-test-key-0123456789"}
                async with s.post(gw.url + "/v1/chat/completions", json=body, headers=headers) as r:
                    return r.status

    status = asyncio.run(main())
    print(json.dumps({"lazy": lazy, "status": status, "spans": [s.name for s in exporter.get_finished_spans()]}))
    """
)


def _child(env_value: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "LLMRELAY_OTEL"}
    env["GW_TEST_OA_KEY"] = "sk-upstream-openai-000000"
    tests = os.path.dirname(__file__)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
    if env_value is not None:
        env["LLMRELAY_OTEL"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_off_by_default_no_span_reaches_the_global_provider_and_opentelemetry_is_not_imported() -> None:
    assert _child(None) == {"lazy": True, "status": 200, "spans": []}


def test_llmrelay_otel_sends_the_span_to_the_global_provider() -> None:
    assert _child("1") == {"lazy": True, "status": 200, "spans": ["chat oa/gpt-4o-mini"]}
