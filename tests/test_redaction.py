"""No credential ever leaves llmrelay in an error: a matrix of dialect x where the server echoes the key x
the key's shape, against fake upstreams on 127.0.0.1, then the CLI's stderr and ``--json`` stdout.

Keys are scrubbed because the provider knows them (its key and credential-like headers), not by their
shape, and in every form a server may echo them (as is, JSON-escaped with or without ``ensure_ascii``).
Keys that hold a line break are refused before anything is sent; a trailing newline is dropped.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmrelay import (
    AnthropicProvider,
    AzureOpenAIProvider,
    ChatRequest,
    CohereProvider,
    ConfigError,
    GeminiProvider,
    LlmError,
    Message,
    NetworkError,
    OllamaProvider,
    OpenAIProvider,
    Provider,
)
from llmrelay._errors import AuthError, redact
from llmrelay.cli import EXIT_CONFIG, EXIT_OK
from llmrelay.testing import FakeUpstream, Reply

REQ = ChatRequest(messages=[Message.user("Hello")], max_tokens=16)

SPECIAL = 'sk-proj-Abc12"Def34\\Ghi56-é7890XyZ'
"""An ``sk-`` key with a quote, a backslash and a non-ASCII letter: each is escaped differently in JSON."""
CUSTOM = "corp-gateway-token-7f3a9b2c1d"
"""A gateway token with no recognisable shape (vLLM, LiteLLM and corporate gateways take any string)."""
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
KEYS = pytest.mark.parametrize("key", [SPECIAL, CUSTOM, HEX], ids=["special", "custom", "hex"])


def _dumps(payload: Any, ascii_only: bool) -> bytes:
    return json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8")


def _sse(*payloads: Mapping[str, Any], ascii_only: bool = False) -> Reply:
    chunks = []
    for payload in payloads:
        event = f"event: {payload['type']}\n" if "type" in payload else ""
        chunks.append(f"{event}data: ".encode() + _dumps(payload, ascii_only) + b"\n\n")
    return Reply(chunks=tuple(chunks), content_type="text/event-stream")


@dataclass(frozen=True)
class Dialect:
    """How one dialect's provider is built and how its server reports an error that echoes ``text``."""

    name: str
    provider: Callable[[str, str], Provider]
    error: Callable[[str], dict[str, Any]]
    """The error body of a 401."""
    in_stream: Callable[[str], Reply]
    """A 200 stream that starts answering, then ends with an error event."""
    body_error: Callable[[str], dict[str, Any]]
    """A 200 JSON body that is an error report."""


def _openai_chunk(content: str) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}


DIALECTS = [
    Dialect(
        "openai",
        lambda url, key: OpenAIProvider("m", base_url=f"{url}/v1", api_key=key),
        lambda text: {"error": {"message": text, "type": "invalid_request_error", "code": "invalid_api_key"}},
        lambda text: _sse(_openai_chunk("Hi"), {"error": {"message": text, "type": "server_error", "code": None}}),
        lambda text: {"error": {"message": text, "type": "server_error", "code": None}},
    ),
    Dialect(
        "azure",
        lambda url, key: AzureOpenAIProvider("dep", endpoint=url, api_key=key),
        lambda text: {"error": {"message": text, "type": "invalid_request_error", "code": "401"}},
        lambda text: _sse(_openai_chunk("Hi"), {"error": {"message": text, "type": "server_error", "code": None}}),
        lambda text: {"error": {"message": text, "type": "server_error", "code": None}},
    ),
    Dialect(
        "azure-entra",
        lambda url, key: AzureOpenAIProvider("dep", endpoint=url, bearer_token=key),
        lambda text: {"error": {"message": text, "type": "invalid_request_error", "code": "401"}},
        lambda text: _sse(_openai_chunk("Hi"), {"error": {"message": text, "type": "server_error", "code": None}}),
        lambda text: {"error": {"message": text, "type": "server_error", "code": None}},
    ),
    Dialect(
        "anthropic",
        lambda url, key: AnthropicProvider("m", base_url=url, api_key=key),
        lambda text: {"type": "error", "error": {"type": "authentication_error", "message": text}},
        lambda text: _sse(
            {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": [], "model": "m"}},
            {"type": "error", "error": {"type": "overloaded_error", "message": text}},
        ),
        lambda text: {"type": "error", "error": {"type": "api_error", "message": text}},
    ),
    Dialect(
        "gemini",
        lambda url, key: GeminiProvider("m", base_url=url, api_key=key),
        lambda text: {"error": {"code": 401, "message": text, "status": "UNAUTHENTICATED"}},
        lambda text: _sse(
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]},
            {"error": {"code": 500, "message": text, "status": "INTERNAL"}},
        ),
        lambda text: {"error": {"code": 500, "message": text, "status": "INTERNAL"}},
    ),
    Dialect(
        "ollama",
        lambda url, key: OllamaProvider("m", base_url=url, api_key=key),
        lambda text: {"error": text},
        lambda text: Reply(
            chunks=(
                _dumps({"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": False}, False) + b"\n",
                _dumps({"error": text}, False) + b"\n",
            ),
            content_type="application/x-ndjson",
        ),
        lambda text: {"error": text},
    ),
    Dialect(
        "cohere",
        lambda url, key: CohereProvider("m", base_url=url, api_key=key),
        lambda text: {"id": "e1", "message": text},
        lambda text: _sse(
            {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
            {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": text}},
        ),
        lambda text: {"id": "e1", "message": text},
    ),
]


def echo(key: str) -> str:
    return f"Incorrect API key provided: {key}. Find your key at https://example.test/keys"


def where_replies(dialect: Dialect, key: str) -> dict[str, tuple[Reply, bool]]:
    """Each place a server echoes the key: (the reply, whether the request streams)."""
    text = echo(key)
    return {
        "4xx-json": (Reply.raw(_dumps(dialect.error(text), False), status=401), True),
        "4xx-json-ascii-escaped": (Reply.raw(_dumps(dialect.error(text), True), status=401), False),
        "4xx-text": (Reply.raw(text.encode(), status=401, content_type="text/plain"), False),
        "200-stream-error-event": (dialect.in_stream(text), True),
        "200-json-to-stream": (Reply.raw(_dumps(dialect.body_error(text), True)), True),
        "200-json-to-chat": (Reply.raw(_dumps(dialect.body_error(text), False)), False),
    }


WHERE = list(where_replies(DIALECTS[0], "x"))


def leaked(key: str, text: str) -> list[str]:
    """The key, its JSON-escaped forms and every 5+ character run of it between special characters
    that appear in ``text``."""
    forms = {key, json.dumps(key)[1:-1], json.dumps(key, ensure_ascii=False)[1:-1]}
    forms |= {part for part in re.split(r'["\\é]', key) if len(part) >= 5}
    return sorted(form for form in forms if form in text)


def exposed(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), *map(str, error.args), *getattr(error, "__notes__", [])]
    if isinstance(error, LlmError):
        texts += [error.message, error.body_excerpt or ""]
    return texts


async def _provoke(provider: Provider, stream: bool) -> LlmError:
    with pytest.raises(LlmError) as info:
        async with provider:
            if stream:
                async with provider.chat_stream(REQ) as s:
                    async for _ in s:
                        pass
            else:
                await provider.chat(REQ)
    return info.value


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize("where", WHERE)
@KEYS
async def test_an_echoed_key_appears_in_no_error_text(
    dialect: Dialect, where: str, key: str, upstream: FakeUpstream, clean_env: None
) -> None:
    reply, stream = where_replies(dialect, key)[where]
    upstream.add(reply)
    error = await _provoke(dialect.provider(upstream.url(), key), stream)
    (seen,) = upstream.requests
    assert any(key in value for value in seen.headers.values()), "the provider did not send the key"
    texts = exposed(error)
    for text in texts:
        assert not leaked(key, text), (leaked(key, text), text)
    assert any("[REDACTED]" in text for text in texts), texts  # the echo reached the error, scrubbed


@KEYS
async def test_credential_headers_and_url_passwords_are_secrets_too(key: str, upstream: FakeUpstream) -> None:
    """A key sent in a configured header (a gateway's ``x-api-key``, ``Authorization: Bearer``) is known
    to the provider the same way as its own key."""
    for headers in ({"x-api-key": key}, {"Authorization": f"Bearer {key}"}):
        upstream.add(Reply.json({"error": {"message": echo(key), "type": "server_error"}}, status=500))
        provider = OpenAIProvider("m", base_url=upstream.url("/v1"), api_key=None, headers=headers)
        error = await _provoke(provider, stream=False)
        assert all(not leaked(key, text) for text in exposed(error)), exposed(error)


@pytest.mark.parametrize(
    "provider",
    [
        lambda: OpenAIProvider("m", base_url=f"http://user:{CUSTOM}@127.0.0.1:9/v1", api_key=None),
        lambda: OpenAIProvider("m", base_url=f"http://127.0.0.1:99999/v1?key={CUSTOM}", api_key=None),
        lambda: GeminiProvider("m", base_url=f"http://127.0.0.1:99999?key={CUSTOM}", api_key=None),
    ],
    ids=["password", "openai-query", "gemini-query"],
)
async def test_a_credential_in_the_base_url_is_not_in_a_network_error(provider: Callable[[], Provider]) -> None:
    """A connection failure names where it tried to connect (aiohttp's invalid-URL errors quote the
    whole URL): a password or a ``?key=`` in the base URL is scrubbed from it."""
    error = await _provoke(provider(), stream=False)
    assert isinstance(error, NetworkError)
    assert all(not leaked(CUSTOM, text) for text in exposed(error)), exposed(error)


async def test_an_excerpt_cut_inside_the_key_keeps_no_stub(upstream: FakeUpstream) -> None:
    """Error bodies are excerpted (500 characters); when the cut falls inside an echoed key, the key's
    first characters go too."""
    prefix = '{"error": {"message": "'
    message = "x" * (490 - len(prefix)) + " " + CUSTOM
    upstream.add(Reply.sse([{"error": {"message": message, "type": "server_error"}}]))
    error = await _provoke(OpenAIProvider("m", base_url=upstream.url("/v1"), api_key=CUSTOM), stream=True)
    assert error.body_excerpt is not None and len(error.body_excerpt) < len(prefix + message)
    assert CUSTOM[:9] not in error.body_excerpt and error.body_excerpt.endswith("[REDACTED]"), error.body_excerpt
    assert all(not leaked(CUSTOM, text) for text in exposed(error))


def test_the_shape_fallback_does_not_stop_at_a_special_character() -> None:
    """Keys the provider does not know are caught by shape; an ``sk-`` key is removed whole."""
    for text in (f"bad key {SPECIAL}. Retry", json.dumps({"error": {"message": f"bad {SPECIAL}", "x": 1}})):
        clean = redact(text)
        assert not leaked(SPECIAL, clean), clean
    assert redact("task-management-system-v2 and risk-assessment") == "task-management-system-v2 and risk-assessment"
    assert redact("x-api-key: abcdefgh123, next") == "x-api-key: [REDACTED], next"
    assert (
        redact("GET https://h/v1?key=AIzaSyA1234567890abcdefghij&alt=sse") == "GET https://h/v1?key=[REDACTED]&alt=sse"
    )
    hint = "Check the API key (api_key= or $OPENAI_API_KEY)"
    assert redact(hint) == hint


def test_redacted_scrubs_every_text_field_and_note() -> None:
    error = AuthError(f"no {CUSTOM}", body=json.dumps({"k": CUSTOM}), code=CUSTOM, provider="gw")
    error.add_note(f"sent {CUSTOM}")
    original = exposed(error)
    error = error.redacted([CUSTOM])
    assert any(leaked(CUSTOM, text) for text in original)  # a copy: the original is left as it was
    assert error.provider == "gw"
    assert all(not leaked(CUSTOM, text) for text in [*exposed(error), error.code or ""]), exposed(error)
    # Placeholder keys (Ollama's OpenAI-compatible docs use "ollama", vLLM "EMPTY") are not scrubbed from hints.
    assert AuthError("run `ollama pull m` there").redacted(["ollama", "EMPTY"]).message == "run `ollama pull m` there"


# --- keys with line breaks (item 14 / 15) -----------------------------------------------------------------

BUILDERS: dict[str, Callable[..., Provider]] = {
    "openai": lambda url, **kw: OpenAIProvider("m", base_url=f"{url}/v1", **kw),
    "azure": lambda url, **kw: AzureOpenAIProvider("dep", endpoint=url, **kw),
    "anthropic": lambda url, **kw: AnthropicProvider("m", base_url=url, **kw),
    "gemini": lambda url, **kw: GeminiProvider("m", base_url=url, **kw),
    "ollama": lambda url, **kw: OllamaProvider("m", base_url=url, **kw),
    "cohere": lambda url, **kw: CohereProvider("m", base_url=url, **kw),
}
ENV = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "ollama": "OLLAMA_API_KEY",
    "cohere": "CO_API_KEY",
}
INJECTED = "abc\r\nX-Injected: yes"


@pytest.mark.parametrize("name", list(BUILDERS))
async def test_a_key_with_a_line_break_inside_is_refused_before_sending(
    name: str, upstream: FakeUpstream, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as explicit:
        BUILDERS[name](upstream.url(), api_key=INJECTED)
    monkeypatch.setenv(ENV[name], INJECTED)
    with pytest.raises(ConfigError) as from_env:
        BUILDERS[name](upstream.url())
    for error, source in ((explicit.value, "api_key="), (from_env.value, f"${ENV[name]}")):
        assert name in str(error) and source in str(error), str(error)
        assert all("abc" not in text and "Injected" not in text for text in exposed(error)), exposed(error)
    assert upstream.requests == []


@pytest.mark.parametrize("name", list(BUILDERS))
async def test_a_trailing_newline_is_dropped_from_a_key(
    name: str, upstream: FakeUpstream, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV[name], f"  {CUSTOM}\r\n")
    upstream.add(Reply.raw(b'{"error": "nope"}', status=401))
    with pytest.raises(LlmError):
        async with BUILDERS[name](upstream.url()) as provider:
            await provider.chat(REQ)
    (seen,) = upstream.requests
    sent = [value for value in seen.headers.values() if CUSTOM in value]
    assert sent in ([CUSTOM], [f"Bearer {CUSTOM}"]), seen.headers


async def test_a_header_with_a_line_break_is_refused(upstream: FakeUpstream) -> None:
    with pytest.raises(ConfigError) as info:
        OpenAIProvider("m", base_url=upstream.url("/v1"), headers={"x-api-key": INJECTED})
    assert "x-api-key" in str(info.value) and "Injected" not in str(info.value)
    provider = OpenAIProvider("m", base_url=upstream.url("/v1"), organization="org\nX-Injected: yes")
    with pytest.raises(ConfigError):
        await provider.chat(REQ)
    await provider.aclose()
    assert upstream.requests == []


# --- the CLI ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


async def cli(home: Path, upstream: FakeUpstream, key: str, *args: str, **more_env: str) -> Result:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_BASE_URL", "_ENDPOINT")) and k not in ("OLLAMA_HOST", "LLMRELAY_CONFIG")
    }
    env.update(
        XDG_CONFIG_HOME=str(home / "xdg"),
        HOME=str(home),
        OPENAI_API_KEY=key,
        OPENAI_BASE_URL=upstream.url("/v1"),
        **more_env,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmrelay",
        "chat",
        "-m",
        "openai/m",
        *args,
        "Hi",
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return Result(proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "xdg").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("key", "where", "args"),
    [
        (CUSTOM, "200-stream-error-event", ("--json",)),
        (SPECIAL, "4xx-json-ascii-escaped", ()),
        (SPECIAL, "4xx-json", ("--json",)),
        (HEX, "200-json-to-chat", ("--json", "--no-stream")),
    ],
)
async def test_the_cli_never_prints_the_key(
    key: str, where: str, args: tuple[str, ...], upstream: FakeUpstream, home: Path
) -> None:
    upstream.add(where_replies(DIALECTS[0], key)[where][0])
    result = await cli(home, upstream, key, *args)
    assert result.code not in (EXIT_OK, 1), result
    assert not leaked(key, result.err) and not leaked(key, result.out), result
    assert "[REDACTED]" in result.err, result
    if "--json" in args:
        last = json.loads(result.out.strip().splitlines()[-1])
        assert last["type"] == "error" and "[REDACTED]" in last["message"], result.out


async def test_the_cli_drops_a_trailing_newline_and_refuses_a_line_break(upstream: FakeUpstream, home: Path) -> None:
    upstream.add(Reply.sse([_openai_chunk("Hello"), {**_openai_chunk(""), "choices": []}, "[DONE]"]))
    ok = await cli(home, upstream, f"{CUSTOM}\n")
    assert ok.code == EXIT_OK and ok.out.startswith("Hello"), ok
    assert upstream.requests[0].headers["authorization"] == f"Bearer {CUSTOM}"
    refused = await cli(home, upstream, INJECTED)
    assert refused.code == EXIT_CONFIG, refused
    (line,) = refused.err.strip().splitlines()
    assert "openai" in line and "OPENAI_API_KEY" in line and "internal error" not in line, line
    assert "Injected" not in refused.err + refused.out
    assert len(upstream.requests) == 1


async def test_the_cli_scrubs_the_value_of_any_credential_like_variable(upstream: FakeUpstream, home: Path) -> None:
    """A server may echo a credential the provider does not hold (another service's token, set in the
    environment): the CLI scrubs the values of ``*_KEY`` / ``*_TOKEN`` / ``*_SECRET`` variables too."""
    other = "zz-other-service-secret-42"
    upstream.add(Reply.json({"error": {"message": f"upstream saw {other}", "type": "server_error"}}, status=500))
    result = await cli(home, upstream, CUSTOM, "--json", OTHER_SERVICE_TOKEN=other)
    assert result.code != EXIT_OK and "[REDACTED]" in result.err, result
    assert other not in result.err and other not in result.out, result
