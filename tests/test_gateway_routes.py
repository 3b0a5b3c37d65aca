"""The gateway's own routes and its guarantees, against real fake upstreams on 127.0.0.1: the native
routes, bad input answered 4xx (never 500), failover before the first byte and an error event after it,
a client's disconnect closing the upstream at once, the secure-by-default binding, the SIGTERM drain of a
real ``llmrelay serve`` and two workers on one port."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway_support import GATEWAY_KEY_SECRET, DictKeys, load, serving, upstream_config
from llmrelay._codec import from_json
from llmrelay.config import ConfigError
from llmrelay.gateway._hooks import Caller
from llmrelay.gateway._server import check_binding
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import KIT as AN
from llmrelay.testing.openai_kit import KIT as OA
from local_server import serving_app
from test_gateway_sdk import start_serve

AUTH = {"authorization": f"Bearer {GATEWAY_KEY_SECRET}"}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _keys(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
    monkeypatch.setenv("GW_TEST_AN_KEY", "sk-ant-upstream-000000")
    yield


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers={**AUTH, **(headers or {})}) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text), text
        except json.JSONDecodeError:
            return r.status, None, text


def sse_data(text: str) -> list[Any]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line[6:] != "[DONE]"]


# --- native routes ----------------------------------------------------------------------------------------


async def test_api_chat_takes_and_gives_our_json_codec(upstream: FakeUpstream) -> None:
    upstream.add(OA.text("native hello", stream=False))
    async with serving(upstream_config(upstream)) as gw:
        status, body, _ = await post(f"{gw.url}/api/chat", {"model": "oa/gpt-4o-mini", "messages": [
            {"type": "message", "role": "user", "content": "hi"}]})  # fmt: skip
    assert status == 200, body
    assert body["type"] == "chat_response" and body["provider"] == "oa"
    reply = from_json(body)
    assert reply.text == "native hello"  # type: ignore[attr-defined]


async def test_api_agent_stream_sends_our_events_and_agent_refuses_a_model_without_tools(
    upstream: FakeUpstream,
) -> None:
    upstream.add(OA.tool_calls([("call_1", "weather", {"city": "Oslo"})], stream=True))
    async with serving(upstream_config(upstream)) as gw:
        request = {"model": "oa/gpt-4o-mini", "messages": [{"type": "message", "role": "user", "content": "hi"}]}
        status, _, text = await post(f"{gw.url}/api/agent/stream", request)
        refused, body, _ = await post(f"{gw.url}/api/agent", {**request, "model": "local/smollm2"})
    assert status == 200
    events = sse_data(text)
    assert events[0]["type"] == "tool_call_start" and events[-1]["type"] == "done"
    assert any(e["type"] == "tool_call" and e["arguments"] == {"city": "Oslo"} for e in events)
    assert refused == 400 and "cannot call tools" in body["error"]["message"]


# --- bad input: 4xx in the caller's dialect, never 500 ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "JSON"),
        ([1, 2], 400, "expected an object"),
        ({"model": 3, "messages": HI}, 400, "model"),
        ({"model": "oa/gpt-4o-mini", "messages": "hi"}, 400, "messages"),
        ({"model": "oa/gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0]"),
        ({"model": "oa/gpt-4o-mini", "messages": HI * 11}, 400, "at most 10"),
        ({"model": "oa/gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 5000}]}, 413, "max_body_bytes"),
        ({"model": "oa/gpt-4o-mini", "messages": HI, "fallbacks": "x"}, 400, "fallbacks"),
        ({"model": "nobody/x", "messages": HI}, 404, "nobody/x"),
    ],
)
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/api/chat"])
async def test_bad_input_is_a_4xx_in_the_routes_dialect(
    upstream: FakeUpstream, route: str, body: Any, status: int, where: str
) -> None:
    if isinstance(body, dict) and route == "/v1/messages":
        body = {**body, "max_tokens": 10}
    config = upstream_config(upstream, extra="[gateway]\nmax_body_bytes = 4096\nmax_messages = 10\n")
    async with serving(config) as gw:
        got, reply, text = await post(f"{gw.url}{route}", body)
    assert got == status, text
    if route != "/api/chat" or status != 400:  # the native route words a malformed ChatRequest its own way
        assert where in reply["error"]["message"] or where in str(reply["error"].get("param")), reply
    if route == "/v1/messages":
        assert reply["type"] == "error"
    assert not upstream.requests


async def test_a_decoder_refusal_is_a_400_on_every_anthropic_route_count_tokens_too(upstream: FakeUpstream) -> None:
    result = {"type": "tool_result", "tool_use_id": "", "content": "x"}
    bad = {"model": "an/claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [result]}]}
    async with serving(upstream_config(anthropic=upstream)) as gw:
        answers = [await post(f"{gw.url}{route}", bad) for route in ("/v1/messages", "/v1/messages/count_tokens")]
        oa_status, oa_reply, _ = await post(
            f"{gw.url}/v1/chat/completions",
            {"model": "an/claude-haiku-4-5", "messages": [{"role": "tool", "tool_call_id": "", "content": "x"}]},
        )
    for status, reply, text in answers:
        assert status == 400, text
        assert reply == {"type": "error", "error": {"type": "invalid_request_error", "message": (
            "messages[0].content[0].tool_use_id: must not be empty")}}  # fmt: skip
    assert oa_status == 400 and oa_reply["error"]["param"] == "messages[0].tool_call_id"
    assert not upstream.requests


async def test_a_bug_in_a_route_is_a_logged_500_in_the_routes_dialect(caplog: pytest.LogCaptureFixture) -> None:
    """``guard``: what a handler raises is answered in its dialect; a bug is a generic 500 (never aiohttp's
    plain text, never a traceback) and its traceback goes to the log."""
    from aiohttp import web

    from llmrelay import ModelNotFoundError
    from llmrelay.gateway._relay import GatewayRefusal, guard
    from llmrelay.wire.anthropic import AnthropicServer
    from llmrelay.wire.openai_chat import OpenAIChatServer

    async def buggy(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("a bug with a secret-looking detail sk-internal-0000")

    async def unknown(request: web.Request) -> web.StreamResponse:
        raise ModelNotFoundError("no such model 'x'", status=404)

    async def refused(request: web.Request) -> web.StreamResponse:
        raise GatewayRefusal(403, "not for you", code="model_not_allowed")

    app = web.Application()
    app.router.add_post("/an/bug", guard(AnthropicServer(), buggy))
    app.router.add_post("/oa/bug", guard(OpenAIChatServer(), buggy))
    app.router.add_post("/oa/unknown", guard(OpenAIChatServer(), unknown))
    app.router.add_post("/an/refused", guard(AnthropicServer(), refused))
    async with serving_app(app) as url:
        with caplog.at_level("ERROR", logger="llmrelay.gateway"):
            an_bug, oa_bug, oa_unknown, an_refused = [
                await post(f"{url}{path}", {}) for path in ("/an/bug", "/oa/bug", "/oa/unknown", "/an/refused")
            ]
    generic = "internal gateway error (the gateway's log has the details)"
    assert an_bug[:2] == (500, {"type": "error", "error": {"type": "api_error", "message": generic}})
    assert (
        oa_bug[0] == 500 and oa_bug[1]["error"]["type"] == "server_error" and oa_bug[1]["error"]["message"] == generic
    )
    assert "sk-internal" not in an_bug[2] + oa_bug[2] and "Traceback" not in an_bug[2] + oa_bug[2]
    assert oa_unknown[0] == 404 and oa_unknown[1]["error"]["code"] == "model_not_found"
    assert an_refused[0] == 403 and an_refused[1]["error"]["type"] == "permission_error"
    logged = [r for r in caplog.records if r.name == "llmrelay.gateway" and r.exc_info]
    assert len(logged) == 2 and "POST /an/bug" in logged[0].getMessage()
    assert logged[0].exc_info is not None and isinstance(logged[0].exc_info[1], RuntimeError)


async def test_a_provider_without_a_key_is_a_503_the_gateways_fault(upstream: FakeUpstream) -> None:
    """A built-in provider the gateway has no key for (``clean_env``: no ANTHROPIC_API_KEY) is the
    gateway's configuration, not the caller's fault and not a crash."""
    async with serving(upstream_config(upstream)) as gw:
        answers = {
            route: await post(f"{gw.url}{route}", {"model": "anthropic/claude-x", "max_tokens": 5, "messages": HI})
            for route in ("/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens")
        }
        records = list(gw.metrics.records)
    for route, (status, reply, text) in answers.items():
        assert status == 503, (route, text)
        message = reply["error"]["message"]
        assert "no credentials for the provider 'anthropic'" in message, message
        assert "ANTHROPIC_API_KEY" not in text and "sk-" not in text
    assert answers["/v1/chat/completions"][1]["error"]["code"] == "gateway_missing_credentials"
    assert answers["/v1/messages"][1]["error"]["type"] == "api_error"
    assert [(r.route, r.status, r.fault, r.error_kind) for r in records] == [
        ("/v1/chat/completions", 503, "gateway", "missing_api_key"),
        ("/v1/messages", 503, "gateway", "missing_api_key"),
    ]
    assert not upstream.requests


async def test_a_priced_request_is_counted_in_the_cost_metric(upstream: FakeUpstream) -> None:
    """The request record carries the cost its ledger row was priced at, so ``/metrics`` counts it (and a
    request is not counted as of unknown cost)."""

    from gateway_support import load
    from llmrelay.gateway._relay import StaticKey
    from llmrelay.gateway.app import app_runner_kwargs, build_app
    from llmrelay.gateway.metrics import PrometheusMetrics
    from llmrelay.metering import MemoryLedger

    upstream.add(OA.text("priced", stream=False))
    upstream.add(OA.text("priced, streamed", stream=True))
    config = load(upstream_config(upstream, extra='[prices.oa]\ninput_per_mtok = "1"\noutput_per_mtok = "2"\n'))
    ledger = MemoryLedger()
    app = build_app(config, auth=StaticKey(GATEWAY_KEY_SECRET), ledger=ledger, metrics=PrometheusMetrics())
    async with serving_app(app, **app_runner_kwargs(app)) as url:
        plain, _, _ = await post(f"{url}/v1/chat/completions", {"model": "oa/gpt-4o-mini", "messages": HI})
        streamed, _, _ = await post(
            f"{url}/v1/chat/completions", {"model": "oa/gpt-4o-mini", "messages": HI, "stream": True}
        )
        async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics") as r:
            text = await r.text()
        rows = await ledger.rows()
    assert plain == streamed == 200
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("llmrelay_cost")
    }
    (cost,) = [v for k, v in samples.items() if k.startswith("llmrelay_cost_usd_total")]
    assert cost > 0 and cost == pytest.approx(float(sum(r.cost for r in rows if r.cost is not None)))
    assert len(rows) == 2 and all(r.cost is not None for r in rows)
    assert sum(v for k, v in samples.items() if k.startswith("llmrelay_cost_unknown_total")) == 0


# --- failover ---------------------------------------------------------------------------------------------


async def test_a_requests_own_fallbacks_move_on_before_the_first_byte(upstream: FakeUpstream) -> None:
    async with FakeUpstream() as second:
        upstream.add(OA.error(503))
        second.add(AN.text("from the fallback", stream=True))
        async with serving(upstream_config(upstream, second)) as gw:
            status, _, text = await post(
                f"{gw.url}/v1/chat/completions",
                {"model": "oa/gpt-4o-mini", "messages": HI, "stream": True, "fallbacks": ["an/claude-haiku-4-5"]},
            )
        rows = await gw.ledger.rows()
    assert status == 200
    chunks = sse_data(text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "from the fallback"
    assert {c["model"] for c in chunks} == {"an/test-model"}
    assert text.endswith("data: [DONE]\n\n")
    assert len(rows) == 1 and rows[0].provider == "an" and rows[0].attempts == 1


async def test_a_fallback_the_key_may_not_use_is_refused(upstream: FakeUpstream) -> None:
    keys = DictKeys({"k1": Caller(key_id="1", name="team", allowed_models=("oa/*",))})
    async with serving(upstream_config(upstream), auth=keys) as gw:
        status, body, _ = await post(
            f"{gw.url}/v1/chat/completions",
            {"model": "oa/gpt-4o-mini", "messages": HI, "fallbacks": ["an/claude-haiku-4-5"]},
            {"authorization": "Bearer k1"},
        )
    assert status == 403 and body["error"]["param"] == "fallbacks[0]"
    assert not upstream.requests


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/api/agent/stream"])
async def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_event(
    upstream: FakeUpstream, route: str
) -> None:
    upstream.add(OA.stream_error(after_text="partial "))
    async with serving(upstream_config(upstream)) as gw:
        body: dict[str, Any] = {"model": "oa/gpt-4o-mini", "messages": HI, "stream": True, "max_tokens": 10}
        if route.startswith("/api"):
            body = {"model": "oa/gpt-4o-mini", "messages": [{"type": "message", "role": "user", "content": "hi"}]}
        status, _, text = await post(f"{gw.url}{route}", body)
    assert status == 200
    assert "partial" in text
    assert "[DONE]" not in text and "message_stop" not in text  # never a clean end
    last = sse_data(text)[-1]
    assert last.get("error") is not None or last.get("type") == "error", text


async def test_an_anthropic_client_sees_an_error_event_after_partial_text(upstream: FakeUpstream) -> None:
    import anthropic

    upstream.add(OA.stream_error(after_text="partial "))
    async with serving(upstream_config(upstream)) as gw:
        client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=GATEWAY_KEY_SECRET, max_retries=0)
        with pytest.raises(anthropic.APIStatusError):  # the SDK raises on the in-stream error event
            async with client.messages.stream(model="oa/gpt-4o-mini", max_tokens=5, messages=HI) as s:  # type: ignore[arg-type]
                async for _ in s:
                    pass


# --- disconnects ------------------------------------------------------------------------------------------


async def test_a_streaming_client_that_disconnects_closes_the_upstream_within_100ms(upstream: FakeUpstream) -> None:
    first = OA.text("first words then a long pause", stream=True)
    upstream.add(Reply(chunks=first.chunks, content_type="text/event-stream", stall=30, stall_after=2))
    async with serving(upstream_config(upstream)) as gw:
        async with aiohttp.ClientSession() as s:
            body = {"model": "oa/gpt-4o-mini", "messages": HI, "stream": True}
            response = await s.post(f"{gw.url}/v1/chat/completions", json=body, headers=AUTH)
            await response.content.readany()  # the first byte has arrived
            response.close()  # the client goes away
            began = time.perf_counter()
            assert await upstream.wait_disconnect(within=2.0)
            elapsed = time.perf_counter() - began
        assert await upstream.wait_idle(1.0)
        for _ in range(50):
            if gw.metrics.records:
                break
            await asyncio.sleep(0.01)
        rows = await gw.ledger.rows()
    assert elapsed < 0.1, elapsed
    assert [r.outcome for r in rows] == ["cancelled"]


async def test_a_non_streaming_client_that_disconnects_closes_the_upstream_within_100ms(
    upstream: FakeUpstream,
) -> None:
    upstream.add(Reply.json({}, headers_delay=30))
    async with serving(upstream_config(upstream)) as gw:
        async with aiohttp.ClientSession() as s:
            task = asyncio.ensure_future(
                s.post(f"{gw.url}/v1/chat/completions", json={"model": "oa/gpt-4o-mini", "messages": HI}, headers=AUTH)
            )
            for _ in range(200):
                if upstream.requests:
                    break
                await asyncio.sleep(0.005)
            task.cancel()
            began = time.perf_counter()
            assert await upstream.wait_disconnect(within=2.0)
            elapsed = time.perf_counter() - began
        for _ in range(100):
            rows = await gw.ledger.rows()
            if rows:
                break
            await asyncio.sleep(0.01)
    assert elapsed < 0.1, elapsed
    assert [r.outcome for r in rows] == ["cancelled"]  # its reservation dropped, its row written


# --- operations -------------------------------------------------------------------------------------------


async def test_health_ready_metrics_and_models(upstream: FakeUpstream) -> None:
    extra = '[aliases]\nfast = "oa/gpt-4o-mini"\n'
    async with serving(upstream_config(upstream, extra=extra)) as gw, aiohttp.ClientSession() as s:
        for path in ("/healthz", "/readyz"):
            async with s.get(gw.url + path) as r:
                assert r.status == 200
        async with s.get(gw.url + "/v1/models", headers=AUTH) as r:
            models = await r.json()
        async with s.get(gw.url + "/v1/models") as r:
            assert r.status == 401
        async with s.get(gw.url + "/metrics") as r:
            text = await r.text()
    assert [m["id"] for m in models["data"]] == ["fast", "oa/gpt-4o-mini"]
    assert "in_flight" in text


def test_without_keys_only_loopback_is_served_unless_explicitly_allowed() -> None:
    settings = load("[gateway]\n").gateway
    assert settings is not None
    assert "loopback" in (check_binding(settings, "127.0.0.1", keys_exist=False) or "")
    with pytest.raises(ConfigError, match=r"refusing to serve 0\.0\.0\.0 without gateway keys"):
        check_binding(settings, "0.0.0.0", keys_exist=False)
    assert check_binding(settings, "0.0.0.0", keys_exist=True) is None
    allowed = load("[gateway]\nallow_public_without_keys = true\n").gateway
    assert allowed is not None and "anyone" in (check_binding(allowed, "0.0.0.0", keys_exist=False) or "")


async def test_llmrelay_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "llmrelay.toml"
    path.write_text('[gateway]\nhost = "0.0.0.0"\n')
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    code = "import sys; from llmrelay.cli import main; sys.exit(main())"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "serve", "--config", str(path), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 3, err.decode()
    assert "refusing to serve 0.0.0.0 without gateway keys" in err.decode()


@pytest.mark.slow
async def test_sigterm_drains_an_in_flight_stream_of_a_real_serve(tmp_path: Path, upstream: FakeUpstream) -> None:
    slow = OA.text("a stream that takes a while to finish", stream=True)
    upstream.add(Reply(chunks=slow.chunks, content_type="text/event-stream", chunk_delay=0.3))
    proc, url = await start_serve(tmp_path, upstream_config(upstream))
    async with aiohttp.ClientSession() as s:
        body = {"model": "oa/gpt-4o-mini", "messages": HI, "stream": True}
        async with s.post(f"{url}/v1/chat/completions", json=body) as r:
            await r.content.readany()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            with pytest.raises(aiohttp.ClientError):  # no new connections while draining
                async with aiohttp.ClientSession() as other:
                    await other.get(f"{url}/healthz")
            rest = (await r.read()).decode()
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert rest.endswith("data: [DONE]\n\n"), rest
    assert proc.returncode == 0, err.decode()
    assert "draining" in err.decode()


@pytest.mark.slow
async def test_two_workers_both_answer_on_one_port(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.always(lambda seen: OA.text("ok", stream=False))
    proc, url = await start_serve(tmp_path, upstream_config(upstream), "--workers", "2")
    pids: set[str] = set()
    try:
        for _ in range(300):  # bounded: about 15 s, for a second worker slow to start on a loaded machine
            async with aiohttp.ClientSession() as s, s.get(f"{url}/healthz") as r:  # a new connection each time
                pids.add(r.headers["x-llmrelay-worker"])
            if len(pids) == 2:
                break
            await asyncio.sleep(0.05)
        status, _, _ = await post(f"{url}/v1/chat/completions", {"model": "oa/gpt-4o-mini", "messages": HI})
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert len(pids) == 2, pids
    assert status == 200 and proc.returncode == 0, err.decode()
