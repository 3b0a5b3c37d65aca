"""Errors are values: one ``kind`` per class, ``with_context`` / ``redacted`` return copies, a JSON round
trip for every class, ``AllAttemptsFailed`` with its attempts, and retry / fail-over tables keyed on kind."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import pytest

import llmrelay
from llmrelay import (
    AllAttemptsFailed,
    Attempt,
    AuthError,
    ChatRequest,
    ConfigError,
    ConnectTimeout,
    ContentFilterError,
    ContextLengthError,
    Done,
    FirstByteTimeout,
    FirstEventTimeout,
    IdleTimeout,
    LlmError,
    LocalModelCrash,
    Message,
    ModelNotFoundError,
    OpenAIProvider,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    StreamEvent,
    TotalTimeout,
)
from llmrelay._policy import (
    FAIL_OVER_ON,
    FAIL_OVER_TO_BIGGER_WINDOW,
    NOT_FAILED_OVER,
    NOT_RETRIED,
    RETRY_ON,
    should_fail_over,
    should_retry,
)
from llmrelay.testing import FakeUpstream, Reply

SECRET = "corp-gateway-token-7f3a9b2c1d"


def error_classes() -> list[type[LlmError]]:
    """Every class of the tree, including those defined outside ``_errors`` (all imported above)."""
    seen: list[type[LlmError]] = [LlmError]
    pending = [LlmError]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub.__module__.startswith("llmrelay.") and sub not in seen:
                seen.append(sub)
                pending.append(sub)
    return seen


def example(cls: type[LlmError]) -> LlmError:
    """An instance of ``cls`` with every field set."""
    if cls is ConfigError:
        return ConfigError("not a URL", file="/etc/llmrelay.toml", key="providers.groq.base_url", provider="groq")
    if cls is AllAttemptsFailed:
        return AllAttemptsFailed(
            [
                Attempt("openai", "gpt-4o", RateLimitError("slow down", status=429, retry_after=2.5), 0.25),
                Attempt("anthropic", None, ConfigError("bad", file="f.toml", key="k"), 1.0),
                Attempt("groq", "llama", AllAttemptsFailed([Attempt("x", "m", ServerError("boom"), 0.5)]), 2.0),
            ],
            provider="fallback",
        )
    return cls(
        f"{cls.__name__} happened",
        provider="openai",
        status=499,
        code="some_code",
        error_type="some_type",
        retry_after=1.5,
        request_id="req_123",
        body='{"error": "x"}',
        retryable=not cls.retryable,
    )


KINDS = {
    LlmError: "error",
    ModelNotFoundError: "model_not_found",
    ContextLengthError: "context_length",
    RequestTimeout: "timeout",
    ConnectTimeout: "connect_timeout",
    FirstByteTimeout: "first_byte_timeout",
    FirstEventTimeout: "first_event_timeout",
    IdleTimeout: "idle_timeout",
    TotalTimeout: "total_timeout",
    ConfigError: "config",
    LocalModelCrash: "local_crash",
    AllAttemptsFailed: "all_attempts_failed",
}


def test_each_class_has_its_own_kind() -> None:
    classes = error_classes()
    assert set(KINDS) <= set(classes) and len(classes) == 25, classes
    kinds = [cls.kind for cls in classes]
    assert len(set(kinds)) == len(kinds), sorted(kinds)
    for cls, kind in KINDS.items():
        assert cls.kind == kind, cls
    # The family is still there for code that asks for "any timeout".
    assert ConnectTimeout("x").family == ("connect_timeout", "timeout", "error")
    assert "timeout" in IdleTimeout("x").family and isinstance(IdleTimeout("x"), RequestTimeout)
    assert ModelNotFoundError("x").family == ("model_not_found", "invalid_request", "provider", "error")


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_class_round_trips_through_json(cls: type[LlmError]) -> None:
    error = example(cls)
    data = json.loads(json.dumps(error.to_json()))
    assert data["kind"] == cls.kind
    back = LlmError.from_json(data)
    assert type(back) is cls
    assert back.to_json() == error.to_json()
    assert (str(back), repr(back), back.args) == (str(error), repr(error), error.args)
    assert back.retryable == error.retryable


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_class_pickles_and_copies(cls: type[LlmError]) -> None:
    """Whatever its ``__init__`` takes (``AllAttemptsFailed`` takes attempts), an error copies and crosses a
    process boundary whole."""
    import pickle

    error = example(cls)
    for other in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(other) is cls and other is not error
        assert other.to_json() == error.to_json() and str(other) == str(error)


def test_the_json_form_has_the_documented_fields() -> None:
    data = example(RateLimitError).to_json()
    assert data == {
        "kind": "rate_limit",
        "provider": "openai",
        "status": 499,
        "code": "some_code",
        "error_type": "some_type",
        "retryable": False,
        "retry_after": 1.5,
        "request_id": "req_123",
        "message": "RateLimitError happened",
        "body_excerpt": '{"error": "x"}',
    }
    config = LlmError.from_json(example(ConfigError).to_json())
    assert isinstance(config, ConfigError)
    assert (config.file, config.key) == ("/etc/llmrelay.toml", "providers.groq.base_url")


def test_an_unknown_kind_is_an_llm_error_that_keeps_its_kind() -> None:
    error = LlmError.from_json({"kind": "teapot", "message": "short and stout", "status": 418})
    assert type(error) is LlmError and error.kind == "teapot" and error.status == 418
    assert error.to_json()["kind"] == "teapot" and LlmError("x").kind == "error"
    with pytest.raises(ValueError, match="kind"):
        LlmError.from_json({"message": "no kind"})
    with pytest.raises(ValueError, match="status"):
        LlmError.from_json({"kind": "auth", "message": "m", "status": "401"})


def test_from_json_finds_classes_defined_outside_the_tree_module() -> None:
    """``ConfigError`` and ``LocalModelCrash`` live in modules ``import llmrelay`` does not load."""
    code = (
        "import sys, llmrelay; from llmrelay import LlmError; "
        "assert 'llmrelay.providers._local_process' not in sys.modules; "
        "a = LlmError.from_json({'kind': 'local_crash', 'message': 'm'}); "
        "b = LlmError.from_json({'kind': 'config', 'message': 'm', 'file': 'f', 'key': 'k'}); "
        "print(type(a).__name__, type(b).__name__, b.file, b.key)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["LocalModelCrash", "ConfigError", "f", "k"]


def test_from_json_scrubs_credential_shapes() -> None:
    error = LlmError.from_json({"kind": "auth", "message": "bad key sk-proj-abcdefghijklmnop", "body_excerpt": None})
    assert "abcdefghijklmnop" not in error.message and "[REDACTED]" in error.message


def test_with_context_returns_a_copy_and_leaves_the_original_alone() -> None:
    cause = OSError("reset")
    try:
        try:
            raise cause
        except OSError as exc:
            raise AuthError(f"bad key {SECRET}", status=401, body=f'{{"key": "{SECRET}"}}') from exc
    except AuthError as caught:
        original = caught
    original.add_note(f"sent {SECRET}")
    before = (vars(original).copy(), original.args, list(original.__notes__))

    new = original.with_context(provider="gw", request_id="req_1", hint="Check the key", secrets=[SECRET])

    assert new is not original and type(new) is AuthError
    assert (vars(original), original.args, original.__notes__) == before
    assert original.provider is None and SECRET in original.message
    assert new.provider == "gw" and new.request_id == "req_1" and new.status == 401
    assert new.message.endswith("Check the key") and new.args == (new.message,)
    assert new.__cause__ is cause and new.__traceback__ is original.__traceback__
    texts = [str(new), repr(new), new.message, new.body_excerpt or "", *map(str, new.args), *new.__notes__]
    assert all(SECRET not in text for text in texts), texts
    assert new.__notes__ is not original.__notes__
    # Fields already known are not overwritten.
    assert new.with_context(provider="other").provider == "gw"


def test_redacted_is_a_copy_too() -> None:
    original = ServerError(f"echo {SECRET}", code=SECRET)
    clean = original.redacted([SECRET])
    assert clean is not original and type(clean) is ServerError
    assert SECRET in original.message and original.code == SECRET
    assert SECRET not in clean.message and SECRET not in (clean.code or "")
    assert copy.copy(original).to_json() == original.to_json()


def test_all_attempts_failed_carries_every_attempt() -> None:
    first = RateLimitError("slow down", provider="openai", status=429)
    second = FirstByteTimeout("no headers within 10s", provider="anthropic")
    error = AllAttemptsFailed([Attempt("openai", "gpt-4o", first, 0.25), Attempt("anthropic", "claude", second, 10.0)])
    assert isinstance(error, LlmError) and error.retryable is False and error.kind == "all_attempts_failed"
    assert [a.error for a in error.attempts] == [first, second]
    head, *lines = str(error).splitlines()
    assert head == "all 2 attempts failed:"
    assert lines == [
        "1. openai gpt-4o after 0.250s: rate_limit: [openai HTTP 429] slow down",
        "2. anthropic claude after 10.000s: first_byte_timeout: [anthropic] no headers within 10s",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.attempts[0].elapsed_s = 1.0  # type: ignore[misc]
    assert "AllAttemptsFailed" in llmrelay.__all__ and "Attempt" in llmrelay.__all__


def test_a_scrubbed_all_attempts_failed_scrubs_its_attempts() -> None:
    inner = AuthError(f"bad key {SECRET}", body=SECRET)
    error = AllAttemptsFailed([Attempt("gw", "m", inner, 0.1)])
    clean = error.with_context(secrets=[SECRET])
    assert SECRET in inner.message and SECRET in str(error)  # the originals are untouched
    assert SECRET not in json.dumps(clean.to_json()), clean.to_json()
    assert SECRET not in str(clean)


def test_every_kind_is_classified_in_both_tables() -> None:
    kinds = {cls.kind for cls in error_classes()}
    assert not RETRY_ON & NOT_RETRIED and not FAIL_OVER_ON & NOT_FAILED_OVER
    assert kinds == RETRY_ON | NOT_RETRIED, kinds ^ (RETRY_ON | NOT_RETRIED)
    assert kinds == FAIL_OVER_ON | NOT_FAILED_OVER, kinds ^ (FAIL_OVER_ON | NOT_FAILED_OVER)
    assert FAIL_OVER_TO_BIGGER_WINDOW <= NOT_FAILED_OVER


@pytest.mark.parametrize(
    ("error", "retry", "fail_over"),
    [
        (RateLimitError("x"), True, True),
        (ServerError("x"), True, True),
        (ConnectTimeout("x"), True, True),
        (IdleTimeout("x"), True, True),
        (FirstByteTimeout("x"), False, True),  # a silent upstream: move on, do not wait for it again
        (FirstEventTimeout("x"), False, True),  # a stream with no event in time: the same
        (QuotaExceededError("x"), False, True),
        (AuthError("x"), False, True),
        (ContentFilterError("x", retryable=True), False, False),  # never retried, whatever it says
        (ContextLengthError("x"), False, False),  # only to a bigger window
        (ServerError("not implemented", status=501, retryable=False), False, True),  # Cohere's 501
        (ProviderError("cancelled", status=499, retryable=True), True, True),  # Cohere's 499
        (ProviderError("in-stream error"), False, False),
        (AllAttemptsFailed([]), False, True),  # a nested fallback ran out: the outer one moves on
        (LlmError.from_json({"kind": "teapot", "message": "m", "retryable": True}), False, False),
    ],
    ids=lambda v: v.kind if isinstance(v, LlmError) else str(v),
)
def test_decisions_come_from_the_tables(error: LlmError, retry: bool, fail_over: bool) -> None:
    assert (should_retry(error), should_fail_over(error)) == (retry, fail_over)


async def test_an_error_in_a_stream_ends_with_the_copy_that_knows_its_provider(upstream: FakeUpstream) -> None:
    """The error inside the stream's ``Done`` (an in-stream error event, and a JSON error answered to a
    streaming request) is the one with the provider's context: the frozen ``Done`` is rebuilt around it."""
    upstream.add(
        Reply.sse(
            [{"error": {"message": f"upstream {SECRET}", "type": "server_error"}}], headers={"x-request-id": "req_s"}
        )
    )
    upstream.add(
        Reply.json(
            {"error": {"message": f"upstream {SECRET}", "type": "server_error"}}, headers={"x-request-id": "req_j"}
        )
    )
    request = ChatRequest(messages=[Message.user("hi")], max_tokens=4)
    async with OpenAIProvider("m", base_url=upstream.url("/v1"), api_key=SECRET) as provider:
        for request_id in ("req_s", "req_j"):
            events: list[StreamEvent] = []
            with pytest.raises(ServerError) as info:
                async with provider.chat_stream(request) as stream:
                    async for event in stream:
                        events.append(event)
            done = events[-1]
            assert isinstance(done, Done) and done.error is info.value
            assert (info.value.provider, info.value.request_id) == ("openai", request_id)
            assert SECRET not in str(info.value) and SECRET not in (info.value.body_excerpt or "")
