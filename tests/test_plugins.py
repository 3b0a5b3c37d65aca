"""Third-party provider types and endpoint rows plug in through entry points.

A tiny plugin package is written to a temporary directory with its own ``pyproject.toml``, really
installed by pip into a throwaway ``--target`` directory, discovered through ``importlib.metadata`` once
that directory is on ``sys.path``, used, and removed again."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay import ChatRequest, LlmRelayWarning, Message
from llmrelay.api import chat
from llmrelay.config import parse_config
from llmrelay.endpoints import DIALECT_PROVIDERS, endpoints
from llmrelay.registry import ProviderRegistry, known_types, load_plugins

PLUGIN = '''
"""An echo provider: answers with the user's words, one event per word."""

from llmrelay import ChatStream, Done, FinishReason, Provider, TextDelta, Usage
from llmrelay.endpoints import Endpoint


class _Source:
    request_id = None

    def __init__(self, events, model):
        self._events = events
        self.model = model

    async def read(self):
        events, self._events = self._events, []
        return events

    async def aclose(self):
        pass


class EchoProvider(Provider):
    def __init__(self, *, name, model=None, base_url=None, api_key=None, api_key_env=None, headers=None,
                 timeouts=None, transport=None, shout=False):
        self.name = name
        self.model = model
        self.base_url = base_url
        self.shout = shout

    def chat_stream(self, request):
        words = request.messages[-1].text.split()
        if self.shout:
            words = [w.upper() for w in words]
        events = [TextDelta(w if i == 0 else " " + w) for i, w in enumerate(words)]
        events.append(Done(FinishReason.STOP, "stop", Usage(input_tokens=len(words), output_tokens=len(words))))
        model = request.model or self.model

        async def opener():
            return _Source(events, model)

        return ChatStream(opener, provider=self.name, model=model)


ENDPOINTS = [Endpoint("echo-cloud", "echo", "http://127.0.0.1:9/echo", auth="none", key_required=False)]
'''

PYPROJECT = """
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "relay-echo-plugin"
version = "0.1.0"

[project.entry-points."llmrelay.providers"]
echo = "relay_echo_plugin:EchoProvider"

[project.entry-points."llmrelay.endpoints"]
echo-cloud = "relay_echo_plugin:ENDPOINTS"
broken = "relay_echo_plugin.broken:ROWS"

[tool.hatch.build.targets.wheel]
packages = ["relay_echo_plugin"]
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and pip-install the plugin into a throwaway target directory (no index, no network: the build
    backend is hatchling from the dev extra, used without build isolation)."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    (source / "relay_echo_plugin").mkdir(parents=True)
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "relay_echo_plugin" / "__init__.py").write_text(PLUGIN)
    (source / "relay_echo_plugin" / "broken.py").write_text('raise RuntimeError("this plugin is broken")\n')
    site = root / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        check=False,
        timeout=240,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(site.glob("relay_echo_plugin-0.1.0.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The plugin on sys.path and discovered; everything it registered is removed afterwards."""
    monkeypatch.syspath_prepend(str(plugin_site))
    importlib.invalidate_caches()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        added = load_plugins(force=True)
    try:
        yield [str(w.message) for w in caught if issubclass(w.category, LlmRelayWarning)]
    finally:
        from llmrelay import endpoints as endpoints_module

        DIALECT_PROVIDERS.pop("echo", None)
        endpoints_module._rows.pop("echo-cloud", None)
        for name in [m for m in sys.modules if m.startswith("relay_echo_plugin")]:
            del sys.modules[name]
        assert set(added) == {"echo", "echo-cloud"}


async def test_a_plugin_provider_type_is_reached_by_model_string(installed: list[str]) -> None:
    assert "echo" in known_types() and "echo" in ProviderRegistry().list()
    reply = await chat("echo/any-model", "hello plugin world")
    assert reply.text == "hello plugin world"
    assert reply.provider == "echo" and reply.model == "any-model"
    assert reply.usage is not None and reply.usage.output_tokens == 3


async def test_a_config_entry_can_use_a_plugin_type_with_its_settings(installed: list[str]) -> None:
    import tomllib

    cfg = parse_config(tomllib.loads('[providers.loud]\ntype = "echo"\nsettings = { shout = true }'))
    reply = await chat("loud/m", "quiet words", config=cfg)
    assert (reply.text, reply.provider) == ("QUIET WORDS", "loud")
    bad = parse_config(tomllib.loads('[providers.loud]\ntype = "echo"\nsettings = { shoot = true }'))
    with pytest.raises(Exception, match=r"providers.loud.settings.shoot.*did you mean 'shout'"):
        await chat("loud/m", "x", config=bad)


async def test_a_plugin_endpoint_row_uses_the_plugin_dialect(installed: list[str]) -> None:
    row = next(r for r in endpoints() if r.name == "echo-cloud")
    assert row.dialect == "echo"
    async with ProviderRegistry() as reg:
        provider = reg.get("echo-cloud", "m1")  # the bare provider: provider() wraps it in Retrying
        assert type(provider).__name__ == "EchoProvider"
        assert (provider.name, provider.model, provider.base_url) == ("echo-cloud", "m1", "http://127.0.0.1:9/echo")  # type: ignore[attr-defined]
        reply = await provider.chat(ChatRequest(messages=[Message.user("a b")]))
    assert reply.text == "a b"


def test_a_broken_plugin_is_a_warning_not_a_crash(installed: list[str]) -> None:
    assert any("'broken'" in message and "this plugin is broken" in message for message in installed)


async def test_the_cli_discovers_the_plugin_in_a_fresh_process(plugin_site: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "LLMRELAY_CONFIG"}
    env["PYTHONPATH"] = str(plugin_site)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llmrelay",
            *args,
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await run("chat", "-m", "echo/x", "hi from the cli")
    assert (code, out) == (0, "hi from the cli\n"), err
    code, out, err = await run("providers")
    assert code == 0 and "echo-cloud" in out and "echo" in out.split("dialects:")[1]
    assert "this plugin is broken" in err
