"""The console's API on a real gateway (127.0.0.1) in front of real fake upstreams: a deliberation streamed
as server-sent events and its transcript, a client's disconnect cancelling every turn in flight, bad input
answered 4xx before any model is called, usage aggregated from the ledger, the routers' breaker states,
key management (admin only) over a real SQLite key store, and ``whoami``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway_support import GATEWAY_KEY_SECRET, serving, upstream_config
from llmrelay._codec import from_json
from llmrelay.deliberation import DeliberationDone, Transcript, TurnFinished
from llmrelay.gateway._relay import StaticKey
from llmrelay.gateway._routes_admin import usage_groups
from llmrelay.gateway._routes_deliberations import TRANSCRIPTS_KEY
from llmrelay.gateway.keys import KeyStore, open_key_store
from llmrelay.metering import LedgerRow
from llmrelay.testing import FakeUpstream, Reply
from llmrelay.testing.anthropic_kit import KIT as AN
from llmrelay.testing.openai_kit import KIT as OA

ADMIN = {"authorization": f"Bearer {GATEWAY_KEY_SECRET}"}
HI = [{"role": "user", "content": "hi"}]
PRICED = '[prices.oa]\ninput_per_mtok = "1"\noutput_per_mtok = "2"\n'
"""10 input and 5 output tokens (the kits' usage) cost 0.00002 USD on ``oa``; ``an`` stays unpriced."""


@pytest.fixture(autouse=True)
def _keys(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
    monkeypatch.setenv("GW_TEST_AN_KEY", "sk-ant-upstream-000000")
    yield


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    yield open_key_store(f"sqlite:///{tmp_path / 'keys.db'}")


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, json=body, headers=headers) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except json.JSONDecodeError:
            return r.status, text


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of each server-sent event."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def two_voices(**extra: Any) -> dict[str, Any]:
    return {
        "question": "What is 6 times 7?",
        "participants": [
            {"name": "alpha", "model": "oa/gpt-4o-mini"},
            {"name": "beta", "model": "an/claude-haiku-4-5"},
        ],
        "strategy": "debate",
        "rounds": 1,
        "mode": "parallel",
        "max_tokens": 50,
        **extra,
    }


# --- deliberations --------------------------------------------------------------------------------------


async def test_a_two_participant_deliberation_streams_codec_events_and_keeps_its_transcript(
    upstream: FakeUpstream, store: KeyStore
) -> None:
    upstream.always(lambda seen: OA.text("Six sevens.\nAnswer: 42", stream=True))
    async with FakeUpstream() as second:
        second.always(lambda seen: AN.text("Forty-two.\nAnswer: 42", stream=True))
        _, other = await store.create("other")
        async with serving(
            upstream_config(upstream, second, extra=PRICED), auth=StaticKey(GATEWAY_KEY_SECRET, store)
        ) as gw:
            url = f"{gw.url}/api/deliberations"
            async with aiohttp.ClientSession() as s, s.post(url, json=two_voices(), headers=ADMIN) as r:
                assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
                text = await r.text()
            events = sse_events(text)
            first_name, first = events[0]
            ident = first["id"]
            status, saved = await call("GET", f"{gw.url}/api/deliberations/{ident}/transcript", ADMIN)
            md_status, markdown = await call("GET", f"{gw.url}/api/deliberations/{ident}/transcript?format=md", ADMIN)
            hidden, _ = await call("GET", f"{gw.url}/api/deliberations/{ident}/transcript", bearer(other))
            unknown, _ = await call("GET", f"{gw.url}/api/deliberations/dlb_nope/transcript", ADMIN)
            rows = await gw.ledger.rows()
    assert first_name == "deliberation" and ident.startswith("dlb_")
    assert first["transcript"] == f"/api/deliberations/{ident}/transcript"
    assert [seat["name"] for seat in first["seats"]] == ["alpha", "beta"]
    assert first["seats"][0]["models"] == ["oa/gpt-4o-mini"]  # the string the client sent
    decoded = [from_json(data) for _, data in events[1:]]
    assert all(name == data["type"] for name, data in events)
    assert type(decoded[-1]) is DeliberationDone and events[-1][0] == "deliberation_done"
    assert decoded[-1].answer == "42" and decoded[-1].totals.calls == 2
    finished = {e.turn.participant: e.turn for e in decoded if type(e) is TurnFinished}
    assert finished["alpha"].provider == "oa" and finished["beta"].provider == "an"
    assert finished["alpha"].cost == Decimal("0.00002") and finished["beta"].cost is None
    assert status == 200 and len(Transcript.from_json(saved).turns) == 2
    assert md_status == 200 and markdown.startswith("# Deliberation: What is 6 times 7?")
    assert hidden == 404 and unknown == 404  # another key's transcript reads as unknown
    assert sorted(r.provider for r in rows) == ["an", "oa"]
    assert {r.route for r in rows} == {"/api/deliberations"} and {r.key for r in rows} == {"admin"}


async def test_a_client_that_disconnects_cancels_every_turn_in_flight_within_200ms(upstream: FakeUpstream) -> None:
    first = OA.text("thinking hard about it", stream=True)
    upstream.always(Reply(chunks=first.chunks, content_type="text/event-stream", stall=30, stall_after=2))
    body = two_voices(participants=[{"name": "a", "model": "oa/gpt-4o-mini"}, {"name": "b", "model": "oa/gpt-4o"}])
    async with serving(upstream_config(upstream)) as gw, aiohttp.ClientSession() as s:
        response = await s.post(f"{gw.url}/api/deliberations", json=body, headers=ADMIN)
        seen = b""
        for _ in range(200):  # until both turns have started streaming
            seen += await response.content.readany()
            if seen.count(b"event: turn_started") == 2 and upstream.in_flight == 2:
                break
        assert upstream.in_flight == 2, seen
        response.close()
        began = time.perf_counter()
        assert await upstream.wait_idle(2.0)
        elapsed = time.perf_counter() - began
        for _ in range(100):
            rows = await gw.ledger.rows()
            if len(rows) == 2:
                break
            await asyncio.sleep(0.01)
    assert elapsed < 0.2, elapsed
    assert upstream.disconnects == 2
    assert [r.outcome for r in rows] == ["cancelled", "cancelled"]
    assert len(gw.app[TRANSCRIPTS_KEY]) == 0  # nothing kept for a deliberation that did not finish


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ([1], 400, None),
        ({"participants": [{"name": "a", "model": "oa/gpt-4o-mini"}]}, 400, "question"),
        ({"question": "q"}, 400, "participants"),
        ({"question": "q", "participants": [{"name": "a"}]}, 400, "participants[0].model"),
        ({"question": "q", "participants": ["just-a-model"]}, 400, "participants[0]"),
        ({"question": "q", "participants": ["a=oa/x", "b=nobody/x"]}, 404, "participants[1].model"),
        ({"question": "q", "participants": [{"name": "a", "model": "oa/x"}], "strategy": "chat"}, 400, "strategy"),
        ({"question": "q", "participants": [{"name": "a", "model": "oa/x"}], "colour": 1}, 400, "colour"),
        ({"question": "q", "participants": [{"name": "a", "model": "oa/x"}], "rounds": 0}, 400, "rounds"),
        ({"question": "q", "participants": [{"name": "a", "model": "oa/x"}], "strategy": "council"}, 400, None),
        ({"question": "q", "participants": [{"name": "a", "model": "nobody/x"}]}, 404, "participants[0].model"),
        ({"question": "q", "participants": [{"name": "a", "model": "oa/x"}], "name": "none"}, 404, "name"),
    ],
)
async def test_bad_deliberation_input_is_a_4xx_before_any_model_is_called(
    upstream: FakeUpstream, body: Any, status: int, param: str | None
) -> None:
    async with serving(upstream_config(upstream)) as gw:
        got, reply = await call("POST", f"{gw.url}/api/deliberations", ADMIN, body)
    assert got == status, reply
    assert set(reply["error"]) >= {"message", "type", "param"} and reply["error"]["param"] == param, reply
    assert not upstream.requests


async def raw_post(url: str, data: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers=ADMIN) as r:
        return r.status, await r.text()


async def test_a_body_that_is_not_json_is_a_400_in_the_console_shape(upstream: FakeUpstream, store: KeyStore) -> None:
    async with serving(upstream_config(upstream), auth=StaticKey(GATEWAY_KEY_SECRET, store)) as gw:
        answers = [await raw_post(f"{gw.url}{route}", b"{not json") for route in ("/api/deliberations", "/api/keys")]
        bad_records = list(gw.metrics.records)
    for status, text in answers:
        assert status == 400, text
        error = json.loads(text)["error"]
        assert error["type"] == "invalid_request" and "not valid JSON" in error["message"]
        assert set(error) == {"type", "message", "param", "code"}
    assert [(r.route, r.status, r.fault) for r in bad_records] == [("/api/deliberations", 400, "caller")]
    assert not upstream.requests


async def test_a_deliberation_with_a_provider_the_gateway_has_no_key_for_is_a_503(upstream: FakeUpstream) -> None:
    body = {"question": "q?", "participants": ["a=anthropic/claude-x"]}  # clean_env: no ANTHROPIC_API_KEY
    async with serving(upstream_config(upstream)) as gw:
        status, reply = await call("POST", f"{gw.url}/api/deliberations", ADMIN, body)
        records = list(gw.metrics.records)
    assert status == 503, reply
    assert "no credentials for the provider 'anthropic'" in reply["error"]["message"]
    assert "ANTHROPIC_API_KEY" not in json.dumps(reply)
    assert [(r.status, r.fault) for r in records] == [(503, "gateway")]
    assert not upstream.requests


async def test_a_key_may_deliberate_only_with_models_it_may_use(upstream: FakeUpstream, store: KeyStore) -> None:
    _, secret = await store.create("narrow", models=["oa/*"])
    body = two_voices()  # beta asks for an/...
    async with serving(upstream_config(upstream), auth=StaticKey(GATEWAY_KEY_SECRET, store)) as gw:
        got, reply = await call("POST", f"{gw.url}/api/deliberations", bearer(secret), body)
        wrong, _ = await call("POST", f"{gw.url}/api/deliberations", bearer("llmr_wrong"), body)
    assert got == 403 and reply["error"]["param"] == "participants[1].model"
    assert wrong == 401
    assert not upstream.requests


async def test_a_named_deliberation_from_the_configuration_is_merged_with_the_body(upstream: FakeUpstream) -> None:
    upstream.always(lambda seen: OA.text("Answer: yes", stream=True))
    extra = '[deliberations.pair]\nparticipants = ["x=oa/gpt-4o-mini", "y=oa/gpt-4o"]\nrounds = 3\n'
    async with serving(upstream_config(upstream, extra=extra)) as gw, aiohttp.ClientSession() as s:
        body = {"question": "Is it?", "name": "pair", "rounds": 1}
        async with s.post(f"{gw.url}/api/deliberations", json=body, headers=ADMIN) as r:
            events = sse_events(await r.text())
    assert [s["name"] for s in events[0][1]["seats"]] == ["x", "y"]
    assert [d["round"] for name, d in events if name == "round_started"] == [1]  # the body's rounds won
    assert events[-1][1]["answer"] == "yes"


# --- usage ----------------------------------------------------------------------------------------------


async def test_usage_aggregates_requests_tokens_cost_and_unpriced_by_model_and_by_key(
    upstream: FakeUpstream, store: KeyStore
) -> None:
    upstream.add(OA.text("one", stream=False), OA.text("two", stream=True), OA.error(500))
    async with FakeUpstream() as second:
        second.always(lambda seen: AN.text("three", stream=False))
        _, team = await store.create("team")
        config = upstream_config(upstream, second, extra=PRICED)
        async with serving(config, auth=StaticKey(GATEWAY_KEY_SECRET, store)) as gw:
            for body in (
                {"model": "oa/gpt-4o-mini", "messages": HI},
                {"model": "oa/gpt-4o-mini", "messages": HI, "stream": True},
                {"model": "oa/gpt-4o-mini", "messages": HI},
            ):
                await call("POST", f"{gw.url}/v1/chat/completions", bearer(team), body)
            await call(
                "POST",
                f"{gw.url}/v1/chat/completions",
                ADMIN,
                {"model": "an/claude-haiku-4-5", "messages": HI, "max_tokens": 50},
            )
            _, by_model = await call("GET", f"{gw.url}/api/usage?by=model", ADMIN)
            _, by_key = await call("GET", f"{gw.url}/api/usage?by=key", ADMIN)
            _, own = await call("GET", f"{gw.url}/api/usage?by=provider", bearer(team))
            peek, _ = await call("GET", f"{gw.url}/api/usage?key=admin", bearer(team))
            bad, reply = await call("GET", f"{gw.url}/api/usage?by=colour", ADMIN)
            bad_since, _ = await call("GET", f"{gw.url}/api/usage?since=yesterday", ADMIN)
            _, later = await call("GET", f"{gw.url}/api/usage?since=2999-01-01T00:00:00Z", ADMIN)
    groups = {g["group"]: g for g in by_model["groups"]}
    assert set(groups) == {"oa/test-model", "oa/gpt-4o-mini", "an/test-model"}  # who answered, or was asked
    oa, failed, an = groups["oa/test-model"], groups["oa/gpt-4o-mini"], groups["an/test-model"]
    assert (oa["requests"], oa["ok"], oa["errors"], oa["unpriced"]) == (2, 2, 0, 0)
    assert (oa["input_tokens"], oa["output_tokens"]) == (20, 10) and oa["cost"] == {"USD": "0.00004"}
    assert (failed["requests"], failed["errors"], failed["error_kinds"]) == (1, 1, {"server": 1})
    assert failed["unpriced"] == 1 and failed["cost"] == {}  # the failed call's cost is unknown, not 0
    assert an["requests"] == 1 and an["cost"] == {} and an["unpriced"] == 1
    assert oa["ttft_ms"] is not None and set(oa["latency_ms"]) == {"p50", "p95", "p99"}
    assert an["ttft_ms"] is None  # no stream
    totals = by_model["totals"]
    assert totals["group"] == "total" and totals["requests"] == 4 and totals["unpriced"] == 2
    assert totals["cost"] == {"USD": "0.00004"} and by_model["truncated"] is False
    keys = {g["group"]: g["requests"] for g in by_key["groups"]}
    assert keys == {"team": 3, "admin": 1}
    assert [g["group"] for g in own["groups"]] == ["oa"] and own["totals"]["requests"] == 3  # its own rows only
    assert peek == 403
    assert bad == 400 and reply["error"]["param"] == "by" and bad_since == 400
    assert later["groups"] == [] and later["totals"]["requests"] == 0


def test_usage_groups_by_hour_in_time_order_with_nearest_rank_percentiles() -> None:
    from datetime import UTC, datetime

    def row(hour: int, ms: int) -> LedgerRow:
        return LedgerRow(None, datetime(2025, 1, 1, hour, 5, tzinfo=UTC), "oa", "m", None, elapsed_ms=ms)

    groups, totals = usage_groups([row(3, 10), row(1, 30), row(1, 20), *[row(2, i) for i in range(1, 101)]], "hour")
    assert [g["group"] for g in groups] == ["2025-01-01T01:00Z", "2025-01-01T02:00Z", "2025-01-01T03:00Z"]
    assert groups[1]["latency_ms"] == {"p50": 50, "p95": 95, "p99": 99}
    assert groups[0]["ttft_ms"] is None and totals["requests"] == 103


# --- providers ------------------------------------------------------------------------------------------


async def test_providers_shows_a_router_deployments_breaker_opened_by_a_401(upstream: FakeUpstream) -> None:
    upstream.add(OA.error(401))
    async with FakeUpstream() as second:
        second.always(lambda seen: AN.text("from the second", stream=False))
        extra = (
            f'[providers.rlconsole]\ntype = "openai"\nbase_url = "{upstream.url("/v1")}"\n'
            'api_key_env = "GW_TEST_OA_KEY"\ndefault_model = "m"\n'
            "[rate_limits.rlconsole]\nrequests_per_minute = 60\n"
            '[routers.pool]\ndeployments = ["rlconsole/m", "an/claude-haiku-4-5"]\n'
        )
        async with serving(upstream_config(None, second, extra=extra)) as gw:
            status, _ = await call(
                "POST", f"{gw.url}/v1/chat/completions", ADMIN, {"model": "pool", "messages": HI, "max_tokens": 50}
            )
            _, body = await call("GET", f"{gw.url}/api/providers", ADMIN)
    assert status == 200
    rows = {(r["kind"], r["name"]): r for r in body["providers"]}
    assert rows[("provider", "an")]["state"] is None and rows[("provider", "an")]["rate_limit"] is None
    first, other = rows[("deployment", "rlconsole/m")], rows[("deployment", "an/claude-haiku-4-5")]
    assert first["router"] == "pool" and first["state"] == "open"
    assert other["state"] == "closed" and other["in_flight"] == 0 and other["latency_ms"] is not None
    limit = rows[("provider", "rlconsole")]["rate_limit"]
    assert limit["scope"] == "rlconsole" and limit["backend"] == "memory"
    assert 58.5 < limit["requests_left"] < 60 and limit["tokens_left"] is None  # the 401 request counted
    assert first["rate_limit"]["scope"] == "rlconsole"
    assert [r["scope"] for r in body["rate_limits"]] == ["rlconsole"]


# --- keys and whoami ------------------------------------------------------------------------------------


async def test_keys_are_created_listed_and_revoked_by_the_admin_only(upstream: FakeUpstream, store: KeyStore) -> None:
    _, member = await store.create("member")
    async with serving(upstream_config(upstream), auth=StaticKey(GATEWAY_KEY_SECRET, store)) as gw:
        url = f"{gw.url}/api/keys"
        body = {"name": "ci", "models": ["oa/*"], "rpm": 30, "max_cost": "5.50", "period": "day"}
        created, made = await call("POST", url, ADMIN, body)
        again, dup = await call("POST", url, ADMIN, body)
        invalid, _ = await call("POST", url, ADMIN, {"name": "bad name!"})
        listed, keys = await call("GET", url, ADMIN)
        who, me = await call("GET", f"{gw.url}/api/whoami", bearer(made["secret"]))
        forbidden = [
            (await call("GET", url, bearer(member)))[0],
            (await call("POST", url, bearer(member), {"name": "x"}))[0],
            (await call("DELETE", f"{url}/ci", bearer(member)))[0],
        ]
        wrong, _ = await call("GET", url, bearer("llmr_not-a-key"))
        revoked, gone = await call("DELETE", f"{url}/ci", ADMIN)
        missing, _ = await call("DELETE", f"{url}/ci", ADMIN)
        after, _ = await call("GET", f"{gw.url}/api/whoami", bearer(made["secret"]))
    assert created == 201 and made["secret"].startswith("llmr_")
    key = made["key"]
    assert key["name"] == "ci" and key["models"] == ["oa/*"] and key["max_cost"] == "5.5" and key["active"]
    assert "secret" not in key and made["secret"][:11] == key["prefix"]
    assert again == 409 and dup["error"]["param"] == "name" and invalid == 400
    assert listed == 200 and [k["name"] for k in keys["keys"]] == ["member", "ci"]
    assert made["secret"] not in json.dumps(keys)
    assert who == 200 and me == {"name": "ci", "admin": False, "anonymous": False, "models": ["oa/*"]}
    assert forbidden == [403, 403, 403] and wrong == 401
    assert revoked == 200 and gone["key"]["active"] is False and missing == 404
    assert after == 401  # a revoked key no longer authenticates


async def test_whoami_for_the_admin_the_anonymous_loopback_caller_and_a_wrong_key(upstream: FakeUpstream) -> None:
    async with serving(upstream_config(upstream)) as gw:
        _, admin = await call("GET", f"{gw.url}/api/whoami", ADMIN)
        wrong, reply = await call("GET", f"{gw.url}/api/whoami", bearer("nope"))
        no_store, _ = await call("GET", f"{gw.url}/api/keys", ADMIN)
        no_store_post, post_reply = await call("POST", f"{gw.url}/api/keys", ADMIN, {"name": "x"})
    async with serving(upstream_config(upstream), auth=StaticKey(None)) as gw:
        _, anonymous = await call("GET", f"{gw.url}/api/whoami", {})
    assert admin == {"name": "admin", "admin": True, "anonymous": False, "models": None}
    assert wrong == 401 and reply["error"]["type"] == "authentication"
    assert no_store == no_store_post == 501  # built without a key store: intentional, and documented
    assert post_reply["error"]["code"] == "no_key_store"
    from llmrelay.gateway.openapi import openapi_document

    keys = openapi_document()["paths"]["/api/keys"]
    assert all("501" in keys[method]["responses"] for method in ("get", "post"))
    assert "501" in openapi_document()["paths"]["/api/keys/{name}"]["delete"]["responses"]
    assert anonymous == {"name": None, "admin": True, "anonymous": True, "models": None}
