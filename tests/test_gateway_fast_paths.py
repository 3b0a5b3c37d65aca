"""The gateway's per-request shortcuts give what the general paths give.

- ``decode_request``'s plain-body path (``_decode_plain``) returns exactly what the general decoder
  (``_decode``) returns for the bodies it takes, and leaves every other body (and every bad one) to it;
- ``PrometheusMetrics`` keeps the children per record shape, yet its series appear only when a request
  first needs them and its counts are the plain sums, whatever the order of the records;
- ``Gateway.resolve`` keeps what a model string resolved to, never what failed.
"""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from llmrelay import LlmError, Usage
from llmrelay.gateway._hooks import RequestRecord
from llmrelay.gateway.metrics import OTHER, PrometheusMetrics
from llmrelay.wire.openai_chat.serve_request import _decode, _decode_plain, decode_request
from test_gateway_metrics import _record as metrics_record
from test_gateway_metrics import _samples

MODEL = "bench/gpt-4o-mini"

PLAIN_BODIES: list[dict[str, Any]] = [
    {"model": MODEL, "messages": [{"role": "user", "content": "Count to a hundred."}]},
    {"model": MODEL, "messages": [{"role": "user", "content": ""}], "max_tokens": 50, "stream": False},
    {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True, "temperature": 0.2},
    {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "really"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        "max_completion_tokens": 7,
        "top_p": 1,
        "temperature": 2,
    },
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 9, "max_completion_tokens": 9},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": None, "stream": None},
]

OTHER_BODIES: list[Any] = [
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 50.0},  # integral float
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 6},
    {"model": MODEL, "messages": [{"role": "user", "content": "x", "name": "ann"}]},
    {"model": MODEL, "messages": [{"role": "tool", "content": "x", "tool_call_id": "c1"}]},
    {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "user": "u-1"},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"},
]

BAD_BODIES: list[Any] = [
    [],
    {"messages": [{"role": "user", "content": "x"}]},
    {"model": 3, "messages": [{"role": "user", "content": "x"}]},
    {"model": MODEL, "messages": []},
    {"model": MODEL, "messages": "hi"},
    {"model": MODEL, "messages": [{"role": "user", "content": None}]},
    {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": True},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": 2.5},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": True},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_p": float("nan")},
    {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
]


@pytest.mark.parametrize("body", PLAIN_BODIES)
def test_a_plain_body_decodes_as_the_general_path_decodes_it(body: dict[str, Any]) -> None:
    plain = _decode_plain(dict(body))
    assert plain is not None
    assert plain == _decode(dict(body))
    assert decode_request(dict(body)) == plain
    assert plain.request.messages and not plain.warnings and not plain.vendor_warnings


@pytest.mark.parametrize("body", OTHER_BODIES)
def test_any_other_body_goes_the_general_way(body: dict[str, Any]) -> None:
    assert _decode_plain(dict(body)) is None
    assert decode_request(dict(body)) == _decode(dict(body))


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_bad_body_is_refused_by_the_general_path(body: Any) -> None:
    assert _decode_plain(body) is None
    with pytest.raises(LlmError) as general:
        _decode(body)
    with pytest.raises(LlmError) as served:
        decode_request(body)
    assert str(served.value) == str(general.value)
    assert served.value.status == general.value.status == 400


# --- metrics ------------------------------------------------------------------------------------------


def _record(**overrides: Any) -> RequestRecord:
    """``test_gateway_metrics``'s record, answered by the ``bench`` provider of this file."""
    bench = {"requested_model": MODEL, "provider": "bench", "model": MODEL}
    usage = {"usage": Usage(input_tokens=10, output_tokens=3), "cost": Decimal("0.5")}
    return metrics_record(**{**bench, **usage, **overrides})


def _names(metrics: PrometheusMetrics) -> set[str]:
    return {s.name for s in _samples(metrics) if not s.name.endswith("_created")}


def test_series_appear_only_when_a_request_first_needs_them() -> None:
    m = PrometheusMetrics()
    m.request_started("/v1/chat/completions")
    m.request_finished(_record(usage=None, cost=None))
    names = _names(m)
    assert "llmrelay_requests_total" in names
    assert not any(n.startswith(("gen_ai_client_token_usage", "llmrelay_tokens", "llmrelay_cost")) for n in names)
    assert not any(n.startswith("gen_ai_server_time_to_first_token") for n in names)
    # The same shape again, now with usage, cost and a time to first token: the series appear.
    m.request_started("/v1/chat/completions")
    m.request_finished(_record(ttft_s=0.01))
    samples = _samples(m)
    names = {s.name for s in samples}
    assert {"gen_ai_client_token_usage_count", "llmrelay_tokens_total", "llmrelay_cost_usd_total"} <= names
    assert "gen_ai_server_time_to_first_token_seconds_count" in names
    tokens = {s.labels["gen_ai_token_type"]: s.value for s in samples if s.name == "llmrelay_tokens_total"}
    assert tokens == {"input": 10.0, "output": 3.0}  # no zero-valued series for the parts it lacks
    # A zero count is not a series; a known zero cost is.
    m.request_started("/v1/chat/completions")
    m.request_finished(_record(model="bench/free", usage=Usage(input_tokens=4, output_tokens=0), cost=Decimal(0)))
    samples = _samples(m)
    free = [s for s in samples if s.labels.get("gen_ai_response_model") == "bench/free"]
    assert {s.labels["gen_ai_token_type"] for s in free if s.name == "llmrelay_tokens_total"} == {"input"}
    assert [s.value for s in free if s.name == "llmrelay_cost_usd_total"] == [0.0]


def test_an_unreached_requests_model_is_labelled_as_it_is_admitted_later() -> None:
    m = PrometheusMetrics()
    unreached = _record(provider=None, model=None, usage=None, cost=None, status=404, error_kind="not_found")

    def requested_models() -> Counter[str]:
        found: Counter[str] = Counter()
        for s in _samples(m):
            if s.name == "llmrelay_requests_total":
                found[s.labels["gen_ai_request_model"]] += int(s.value)
        return found

    m.request_finished(unreached)
    assert requested_models() == {OTHER: 1}
    m.request_finished(_record())  # reached: admits the model string
    m.request_finished(unreached)
    assert requested_models() == {OTHER: 1, MODEL: 2}


def test_counts_are_the_plain_sums_whatever_the_order() -> None:
    shapes = [
        _record(),
        _record(key_name="team-b", stream=True, ttft_s=0.02),
        _record(status=502, error_kind="upstream", fault="provider", usage=None, cost=None),
        _record(provider=None, model=None, usage=None, cost=None, status=401, error_kind="refused", fault="caller"),
        _record(cost=None),
        _record(requested_model="bench/alias", currency="EUR"),
    ]
    records = [shapes[i % len(shapes)] for i in range(60)]
    random.Random(7).shuffle(records)
    m = PrometheusMetrics(max_models=2)  # the third model string is "other"
    for record in records:
        m.request_started(record.route)
        m.request_finished(record)
    samples = _samples(m)
    total = sum(s.value for s in samples if s.name == "llmrelay_requests_total")
    assert total == len(records)
    errors = sum(s.value for s in samples if s.name == "llmrelay_errors_total")
    assert errors == sum(1 for r in records if r.error_kind is not None or r.fault is not None)
    inputs = sum(
        s.value for s in samples if s.name == "llmrelay_tokens_total" and s.labels["gen_ai_token_type"] == "input"
    )
    assert inputs == sum(r.usage.input_tokens or 0 for r in records if r.usage is not None)
    cost = sum(s.value for s in samples if s.name == "llmrelay_cost_usd_total")
    assert cost == pytest.approx(sum(float(r.cost) for r in records if r.cost is not None and r.currency == "USD"))
    unknown = sum(s.value for s in samples if s.name == "llmrelay_cost_unknown_total")
    assert unknown == sum(1 for r in records if r.usage is not None and (r.cost is None or r.currency != "USD"))
    ttft = sum(s.value for s in samples if s.name == "gen_ai_server_time_to_first_token_seconds_count")
    assert ttft == sum(1 for r in records if r.ttft_s is not None)
    in_flight = [s.value for s in samples if s.name == "llmrelay_requests_in_flight"]
    assert in_flight == [0.0]
    models = {s.labels["gen_ai_request_model"] for s in samples if s.name == "llmrelay_requests_total"}
    assert len(models - {OTHER}) <= 2


# --- resolving model strings ----------------------------------------------------------------------------


async def test_resolve_keeps_what_resolved_and_never_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_support import load
    from llmrelay import ModelNotFoundError
    from llmrelay.gateway._hooks import Caller
    from llmrelay.gateway._relay import StaticKey
    from llmrelay.gateway.app import GATEWAY_KEY, build_app
    from llmrelay.metering import MemoryLedger

    monkeypatch.setenv("GW_TEST_OA_KEY", "sk-test-not-a-secret")
    config = load(
        '[providers.oa]\ntype = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "GW_TEST_OA_KEY"\n'
        '[aliases]\nfast = "oa/gpt-4o-mini"\n[gateway]\nexpose = ["fast", "oa/gpt-4o-mini", "nope/x"]\n'
    )
    app = build_app(config, auth=StaticKey(None), ledger=MemoryLedger(), metrics=PrometheusMetrics())
    gw = app[GATEWAY_KEY]
    try:
        ref, stack = gw.resolve(Caller(), "fast")
        again = gw.resolve(Caller(), "fast")
        assert again == (ref, stack) and (ref.provider, ref.model, ref.alias) == ("oa", "gpt-4o-mini", "fast")
        assert gw.resolve(Caller(), "oa/gpt-4o-mini")[1] is stack  # one stack per model, as the registry keeps it
        for _ in range(2):
            with pytest.raises(ModelNotFoundError):
                gw.resolve(Caller(), "nope/x")  # an unknown provider: refused each time, never kept
        assert set(gw._resolved) == {"fast", "oa/gpt-4o-mini"}
        # The per-request checks still run before the kept answer: the key's allowed models.
        with pytest.raises(Exception, match="may not use the model 'fast'"):
            gw.resolve(Caller(key_id="k", name="k", allowed_models=("oa/*",)), "fast")
    finally:
        await gw.registry.aclose()
