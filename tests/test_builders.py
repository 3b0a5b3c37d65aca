"""``llmrelay._builders``: what a builder makes is the same object the class's own constructor makes."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay import ChatResponse, Done, FinishReason, ServerError, Usage
from llmrelay._accumulate import _response
from llmrelay._builders import builder
from llmrelay._http_provider import _http_request
from llmrelay._transport import HttpRequest
from llmrelay.wire.dialect import EncodedRequest, encoded_request
from llmrelay.wire.openai_chat.maps import parse_usage
from llmrelay.wire.stream_state import _done

counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))
texts = st.one_of(st.none(), st.text(max_size=20))


def _same(built: Any, made: Any) -> None:
    """Equal, same class, same hash, same repr, frozen, and it survives pickle, copy and replace."""
    assert type(built) is type(made) and built == made and repr(built) == repr(made)
    try:
        hash(made)
    except TypeError:  # an unhashable field value (a dict): then neither hashes
        with pytest.raises(TypeError):
            hash(built)
    else:
        assert hash(built) == hash(made)
    assert copy.copy(built) == made
    # A copy of an error is another exception, unequal to the first (exceptions compare by identity): compared
    # by their reprs.
    assert repr(pickle.loads(pickle.dumps(built))) == repr(made) and repr(copy.deepcopy(built)) == repr(made)
    assert type(pickle.loads(pickle.dumps(built))) is type(made)
    first = dataclasses.fields(made)[0].name
    assert dataclasses.replace(built, **{first: getattr(made, first)}) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, first, getattr(made, first))


@given(
    text=st.text(max_size=30),
    reasoning=st.text(max_size=10),
    finish=st.sampled_from(list(FinishReason)),
    raw=texts,
    model=texts,
    provider=texts,
    request_id=texts,
    refusal=texts,
    usage=st.one_of(st.none(), st.builds(Usage, input_tokens=counts, output_tokens=counts)),
    error=st.one_of(st.none(), st.just(ServerError("boom", provider="p"))),
)
def test_a_built_response_is_the_constructed_one(
    text: str,
    reasoning: str,
    finish: FinishReason,
    raw: str | None,
    model: str | None,
    provider: str | None,
    request_id: str | None,
    refusal: str | None,
    usage: Usage | None,
    error: ServerError | None,
) -> None:
    made = ChatResponse(
        text=text,
        reasoning=reasoning,
        finish_reason=finish,
        finish_reason_raw=raw,
        usage=usage,
        model=model,
        provider=provider,
        request_id=request_id,
        refusal=refusal,
        error=error,
    )
    built = _response(text, reasoning, (), finish, raw, usage, model, provider, request_id, (), refusal, (), error, ())
    _same(built, made)
    if error is None:
        _same(_done(finish, raw, usage, model, refusal), Done(finish, raw, usage, None, model, refusal))


def test_built_requests_are_the_constructed_ones() -> None:
    _same(encoded_request({"model": "m"}, ()), EncodedRequest(body={"model": "m"}))
    assert (
        encoded_request({}, ()).headers == {} and encoded_request({}, ()).headers is not encoded_request({}, ()).headers
    )
    _same(_http_request("POST", "http://x/", {"a": "b"}, b"{}"), HttpRequest("POST", "http://x/", {"a": "b"}, b"{}"))


@given(
    usage=st.dictionaries(
        st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "prompt_cache_hit_tokens"]),
        st.one_of(counts, st.booleans(), st.floats(allow_nan=False), st.text(max_size=3)),
    ),
    cached=st.one_of(st.none(), counts, st.booleans()),
    reasoning=st.one_of(st.none(), counts, st.booleans()),
)
def test_parse_usage_builds_what_the_constructor_would(
    usage: dict[str, object], cached: object, reasoning: object
) -> None:
    """The usage decoder builds ``Usage`` without its ``__post_init__`` (it computes the total itself):
    the same value as the constructor's, for any mix of counts, missing fields, booleans and junk."""
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}

    def count(value: object) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    output = count(usage.get("completion_tokens"))
    cache_read = count(cached)
    if cache_read is None:
        cache_read = count(usage.get("prompt_cache_hit_tokens"))
    parts = count(reasoning)
    if parts is not None and output is not None and parts > output:
        parts = output
    want = Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=output,
        total_tokens=count(usage.get("total_tokens")),
        cache_read_tokens=cache_read,
        reasoning_tokens=parts,
    )
    got = parse_usage(usage)
    assert got is not None
    _same(got, want)


def test_a_class_the_shell_cannot_stand_in_for_is_built_by_its_constructor() -> None:
    @dataclasses.dataclass(frozen=True)  # no slots: no shell of the same layout
    class Plain:
        a: int
        b: str = "x"

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    made = builder(Plain, ("a",))(1)
    assert made == Plain(1) and type(made) is Plain
    unchecked = builder(Checked, ("a",))(-1)  # as documented: a builder runs no ``__post_init__``
    assert type(unchecked) is Checked and unchecked.a == -1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
    with pytest.raises(ValueError, match="no field"):
        builder(Plain, ("c",))
    with pytest.raises(ValueError, match="no default"):
        builder(Plain, ("b",))
