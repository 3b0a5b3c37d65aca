"""Helpers for the gateway tests: a gateway app served on 127.0.0.1 (a free port) in front of real fake
upstreams, configured through a real ``llmrelay.toml`` text, and a small in-memory ``Authenticator``."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from llmrelay.config import Config, parse_config
from llmrelay.gateway._hooks import Authenticator, Caller
from llmrelay.gateway._null_metrics import CountingMetrics
from llmrelay.gateway._relay import Gateway, StaticKey
from llmrelay.gateway.app import GATEWAY_KEY, app_runner_kwargs, build_app
from llmrelay.metering import MemoryLedger, UsageLedger
from llmrelay.testing import FakeUpstream
from local_server import serving_app

GATEWAY_KEY_SECRET = "gw-test-key-0123456789"
"""The static gateway key the tests' gateways accept (``Authorization: Bearer`` or ``x-api-key``)."""


def upstream_config(
    openai: FakeUpstream | None = None,
    anthropic: FakeUpstream | None = None,
    ollama: FakeUpstream | None = None,
    extra: str = "",
) -> str:
    """``[providers.oa]`` (OpenAI dialect), ``[providers.an]`` (Anthropic), ``[providers.ol]`` (Ollama)
    for the upstreams given, no retries, and ``extra``."""
    text = "[retry]\nmax_attempts = 1\n"
    if openai is not None:
        text += f'[providers.oa]\ntype = "openai"\nbase_url = "{openai.url("/v1")}"\napi_key_env = "GW_TEST_OA_KEY"\n'
        text += 'default_model = "gpt-4o-mini"\n'
    if anthropic is not None:
        text += f'[providers.an]\ntype = "anthropic"\nbase_url = "{anthropic.url()}"\napi_key_env = "GW_TEST_AN_KEY"\n'
        text += 'default_model = "claude-haiku-4-5"\n'
    if ollama is not None:
        text += f'[providers.ol]\ntype = "ollama"\nbase_url = "{ollama.url()}"\n'
    return text + extra


def load(text: str, directory: Path | None = None) -> Config:
    return parse_config(tomllib.loads(text), (directory or Path("/cfg")) / "llmrelay.toml")


class DictKeys:
    """An ``Authenticator`` over a dict of secret -> ``Caller`` (the key store's contract, in memory)."""

    def __init__(self, keys: Mapping[str, Caller]) -> None:
        self.keys = dict(keys)

    @property
    def open(self) -> bool:
        return not self.keys

    async def authenticate(self, secret: str | None) -> Caller | None:
        return self.keys.get(secret or "")

    async def aclose(self) -> None:
        return None


@dataclass
class Running:
    url: str
    app: web.Application
    ledger: UsageLedger
    metrics: CountingMetrics

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY_KEY]


@asynccontextmanager
async def serving(
    config: Config | str,
    *,
    auth: Authenticator | None = None,
    ledger: UsageLedger | None = None,
) -> AsyncIterator[Running]:
    """The gateway for ``config`` on 127.0.0.1 (a free port), with the static test key unless ``auth``."""
    if isinstance(config, str):
        config = load(config)
    ledger = ledger if ledger is not None else MemoryLedger()
    metrics = CountingMetrics()
    app = build_app(config, auth=auth or StaticKey(GATEWAY_KEY_SECRET), ledger=ledger, metrics=metrics)
    async with serving_app(app, **app_runner_kwargs(app)) as url:
        yield Running(url, app, ledger, metrics)
