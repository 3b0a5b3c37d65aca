"""The gateway's OpenAPI document: it is a valid OpenAPI 3.1 document, it covers every route the app serves,
and schemathesis, fuzzing a real gateway on 127.0.0.1 (in front of a FakeUpstream speaking OpenAI) from the
document it serves at ``/openapi.json``, finds no 5xx and no response that breaks the schema."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from llmrelay.config import parse_config
from llmrelay.gateway._relay import StaticKey
from llmrelay.gateway.app import app_runner_kwargs, build_app
from llmrelay.gateway.metrics import PrometheusMetrics
from llmrelay.gateway.openapi import openapi_document
from llmrelay.metering import open_ledger
from llmrelay.testing import FakeUpstream, Reply, SeenRequest
from llmrelay.testing.anthropic_kit import KIT as ANTHROPIC_KIT
from llmrelay.testing.openai_kit import KIT

GATEWAY_KEY = "sk-gw-openapi-test-0000"
AUTH = {"Authorization": f"Bearer {GATEWAY_KEY}"}


def test_document_is_valid_openapi_31() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 meta-schema
    json.dumps(doc)  # plain JSON
    assert openapi_document() == doc and openapi_document() is not doc  # a fresh copy each time


def test_document_describes_every_route_of_the_app() -> None:
    config = parse_config({"gateway": {"ledger": "memory"}})
    app = build_app(config, auth=StaticKey(GATEWAY_KEY), ledger=open_ledger("memory"), metrics=PrometheusMetrics())
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, item in openapi_document()["paths"].items() for method in item}
    assert served == documented


def test_each_route_documents_its_dialects_errors() -> None:
    paths = openapi_document()["paths"]
    expected = {
        "/v1/chat/completions": "OpenAIError",
        "/v1/models": "OpenAIError",
        "/v1/messages": "AnthropicError",
        "/v1/messages/count_tokens": "AnthropicError",
        "/api/chat": "NativeError",
        "/api/agent": "NativeError",
        "/api/agent/stream": "NativeError",
    }
    for path, schema in expected.items():
        (operation,) = paths[path].values()
        for status in ("4XX", "5XX"):
            ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{schema}", (path, status)
    chat = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    assert paths["/healthz"]["get"]["security"] == []


# --- schemathesis against a real gateway -------------------------------------------------------------------


def _reply(seen: SeenRequest) -> Reply:
    """OpenAI's answer on ``/v1/chat/completions``, Anthropic's on ``/v1/messages``."""
    body = seen.json if isinstance(seen.json, dict) else {}
    kit = ANTHROPIC_KIT if seen.path.endswith("/v1/messages") else KIT
    return kit.text("Hello from the fake upstream.", stream=bool(body.get("stream")))


class _Served:
    """The gateway and its FakeUpstream, running on an event loop in a thread (schemathesis is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.base_url = self._run(self._start())

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    async def _start(self) -> str:
        from aiohttp import web

        self.upstream = FakeUpstream()
        await self.upstream.__aenter__()
        self.upstream.always(_reply)
        config = parse_config(
            {
                "default": "fake/test-model",
                # "fake", and the providers the document's examples name, all on the fake upstream.
                "providers": {
                    "fake": {
                        "type": "openai",
                        "base_url": self.upstream.url("/v1"),
                        "api_key_env": "LLMRELAY_TEST_FAKE_KEY",
                        "default_model": "test-model",
                    },
                    "openai": {"base_url": self.upstream.url("/v1"), "api_key_env": "LLMRELAY_TEST_FAKE_KEY"},
                    "anthropic": {"base_url": self.upstream.url(), "api_key_env": "LLMRELAY_TEST_FAKE_KEY"},
                },
                "gateway": {"ledger": "memory"},
            }
        )
        app = build_app(config, auth=StaticKey(GATEWAY_KEY), ledger=open_ledger("memory"), metrics=PrometheusMetrics())
        self.runner = web.AppRunner(app, handle_signals=False, **app_runner_kwargs(app))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.upstream.__aexit__(None, None, None)

    def close(self) -> None:
        try:
            self._run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@pytest.fixture(scope="module")
def gateway(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[_Served]:
    monkeypatch_module.setenv("LLMRELAY_TEST_FAKE_KEY", "sk-fake-upstream-key-0000")
    served = _Served()
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_served_document_is_the_module_document(gateway: _Served) -> None:
    reply = requests.get(f"{gateway.base_url}/openapi.json", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == openapi_document()


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

FUZZED = frozenset(
    {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/api/chat",
        "/api/agent",
        "/api/agent/stream",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
)
"""The model routes and the operations routes. The console's routes (/api/keys, /api/usage,
/api/deliberations, /ui, ...) are documented (checked above) but not fuzzed here."""


def _fuzz_operation(
    gateway: _Served, operation: Any, mode: GenerationMode, max_examples: int, seen: dict[str, int]
) -> None:
    session = requests.Session()
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @given(case=operation.as_strategy(generation_mode=mode), real_model=st.booleans())
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        derandomize=True,  # the same cases every run: a failure here is reproducible, never flaky
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case, real_model: bool) -> None:
        if real_model and mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = "fake/test-model"  # still schema-valid; reaches the upstream
        response = case.call_and_validate(
            base_url=gateway.base_url, session=session, headers=AUTH, checks=checks, timeout=10
        )
        key = f"{operation.label} {response.status_code}"
        seen[key] = seen.get(key, 0) + 1

    run()


def _fuzz(gateway: _Served, mode: GenerationMode, max_examples: int) -> dict[str, int]:
    """Run schemathesis over every operation of the served document; returns status counts per operation."""
    schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
    seen: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path not in FUZZED or (mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET"):
            continue  # nothing to break in a GET without parameters
        _fuzz_operation(gateway, operation, mode, max_examples, seen)
    return seen


def test_every_documented_example_is_answered_200_as_documented(gateway: _Served) -> None:
    """The document's example bodies, for real: each POST route answers 200, streamed and not, and every
    answer passes schemathesis' checks against the served document."""
    schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
    session = requests.Session()
    answered: dict[str, list[str]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        media = operation.definition.raw.get("requestBody", {}).get("content", {}).get("application/json", {})
        if not media or operation.path not in FUZZED:
            continue
        (example,) = (e["value"] for e in media["examples"].values())
        streams = [False, True] if "stream" in _request_schema(media) else [False]
        for stream in streams:
            body = {**example, "model": "fake/test-model", **({"stream": True} if stream else {})}
            case = operation.Case(body=body, media_type="application/json")
            response = case.call_and_validate(
                base_url=gateway.base_url, session=session, headers=AUTH, checks=CHECKS, timeout=10
            )
            assert response.status_code == 200, (operation.label, stream, response.text[:300])
            answered.setdefault(operation.path, []).append(response.headers["content-type"][0].split(";")[0])
    assert answered == {
        "/v1/chat/completions": ["application/json", "text/event-stream"],
        "/v1/messages": ["application/json", "text/event-stream"],
        "/v1/messages/count_tokens": ["application/json"],
        "/api/chat": ["application/json"],
        "/api/agent": ["application/json"],
        "/api/agent/stream": ["text/event-stream"],
    }


def _request_schema(media: dict[str, Any]) -> dict[str, Any]:
    name = media["schema"]["$ref"].rsplit("/", 1)[1]
    properties: dict[str, Any] = openapi_document()["components"]["schemas"][name]["properties"]
    return properties


@pytest.mark.slow  # about 15 s each on 2 shared cores
def test_schemathesis_valid_requests_no_5xx_and_conforming_answers(gateway: _Served) -> None:
    seen = _fuzz(gateway, GenerationMode.POSITIVE, max_examples=15)
    assert seen, "no case was generated"
    assert all(int(k.rsplit(" ", 1)[1]) < 500 for k in seen), seen


@pytest.mark.slow  # about 15 s each on 2 shared cores
def test_schemathesis_invalid_requests_get_4xx(gateway: _Served) -> None:
    seen = _fuzz(gateway, GenerationMode.NEGATIVE, max_examples=10)
    assert seen, "no negative case was generated"
    assert all(400 <= int(k.rsplit(" ", 1)[1]) < 500 for k in seen), seen
