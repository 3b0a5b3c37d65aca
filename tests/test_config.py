"""llmrelay.toml: discovery order, every section parsed to typed values, and errors that name the file, the
key path and what was expected."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from llmrelay import LlmRelayWarning, Timeouts
from llmrelay.config import (
    Config,
    ConfigError,
    DeliberationLimitsConfig,
    GatewayConfig,
    ParticipantConfig,
    RateLimitConfig,
    RateLimitsConfig,
    RetryConfig,
    find_config,
    load_config,
    parse_config,
    read_config,
    user_config_path,
)

FULL = """
default = "fast"

[providers.groq]
default_model = "llama-3.3-70b-versatile"

[providers.work]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "WORK_LLM_KEY"
default_model = "qwen"
models = ["qwen", "llama"]
headers = { "X-Team" = "research" }
timeouts = { connect = 2, first_byte = 30.5, idle = false }
settings = { organization = "org-1" }

[providers.mine]
type = "local"
settings = { n_ctx = 1024 }

[aliases]
fast = "groq/llama-3.3-70b-versatile"
quick = "fast"

[fallbacks]
default = ["openai/gpt-4o-mini", "local/smollm2"]

[retry]
max_attempts = 4
base_delay = 0.25
max_delay = 5
deadline = 20

[rate_limits.openai]
requests_per_minute = 500
tokens_per_minute = 200000
max_concurrency = 16

[deliberations.review]
models = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
judge = "openai/gpt-4o"
rounds = 2

[gateway]
host = "0.0.0.0"
port = 8080
api_key_env = "GATEWAY_KEY"
expose = ["fast"]
"""


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config from the developer's machine: empty cwd, empty user config dir, no $LLMRELAY_CONFIG."""
    monkeypatch.delenv("LLMRELAY_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def parse_error(text: str) -> str:
    import tomllib

    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), "/etc/llmrelay.toml")
    assert info.value.kind == "config"
    return str(info.value)


def test_every_section_parses_to_typed_values(tmp_path: Path) -> None:
    from llmrelay import LlmRelayWarning
    from llmrelay.config._schema import NOT_YET_IN_EFFECT

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = read_config(write(tmp_path / "llmrelay.toml", FULL))
    warned = [str(w.message) for w in caught if issubclass(w.category, LlmRelayWarning)]
    sections = sorted(m.split("[")[1].split("]")[0] for m in warned if "not yet in effect" in m)
    assert sections == sorted(s for s in NOT_YET_IN_EFFECT if s in ("deliberations", "gateway"))
    assert "deliberations" not in sections  # `llmrelay deliberate --name NAME` runs them
    assert config.path == tmp_path / "llmrelay.toml"
    assert config.default == "fast"
    assert list(config.providers) == ["groq", "work", "mine"]
    groq = config.providers["groq"]
    assert groq.type is None and groq.kind == "groq" and groq.default_model == "llama-3.3-70b-versatile"
    work = config.providers["work"]
    assert work.kind == "openai"
    assert work.base_url == "http://127.0.0.1:9/v1"
    assert work.api_key_env == "WORK_LLM_KEY"
    assert work.models == ("qwen", "llama")
    assert work.headers == {"X-Team": "research"}
    assert work.timeouts == Timeouts(connect=2.0, first_byte=30.5, idle=None, total=None)
    assert work.settings == {"organization": "org-1"}
    assert config.providers["mine"].settings == {"n_ctx": 1024}
    assert config.aliases == {"fast": "groq/llama-3.3-70b-versatile", "quick": "fast"}
    assert config.fallbacks == {"default": ("openai/gpt-4o-mini", "local/smollm2")}
    assert config.retry == RetryConfig(max_attempts=4, base_delay=0.25, max_delay=5.0, deadline=20.0)
    assert config.rate_limits == RateLimitsConfig(
        backend="memory",
        limits={"openai": RateLimitConfig(requests_per_minute=500, tokens_per_minute=200000, max_concurrency=16)},
    )
    review = config.deliberations["review"]
    assert review.models == ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5")  # the short form
    assert [p.name for p in review.participants] == ["gpt-4o-mini", "claude-haiku-4-5"]
    assert review.chair == ParticipantConfig("chair", ("openai/gpt-4o",))  # "judge" is the older name
    assert review.rounds == 2 and review.strategy is None and review.limits == DeliberationLimitsConfig()
    assert config.gateway == GatewayConfig(host="0.0.0.0", port=8080, api_key_env="GATEWAY_KEY", expose=("fast",))


def test_an_empty_file_is_the_empty_configuration(tmp_path: Path) -> None:
    config = read_config(write(tmp_path / "llmrelay.toml", ""))
    assert config == Config(path=tmp_path / "llmrelay.toml")
    assert config.retry == RetryConfig(max_attempts=3, base_delay=0.5, max_delay=8.0, deadline=None)


def test_discovery_order_explicit_then_env_then_cwd_then_user_dir(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_config() is None
    assert load_config() == Config()

    user = write(user_config_path(), 'default = "user/x"')
    assert user == isolated / "xdg" / "llmrelay" / "llmrelay.toml"
    assert load_config().default == "user/x"

    write(Path.cwd() / "llmrelay.toml", 'default = "cwd/x"')
    assert load_config().default == "cwd/x"

    from_env = write(isolated / "env.toml", 'default = "env/x"')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(from_env))
    assert load_config().default == "env/x"

    explicit = write(isolated / "explicit.toml", 'default = "explicit/x"')
    assert load_config(explicit).default == "explicit/x"


def test_a_named_file_that_does_not_exist_is_an_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: configuration file not found"):
        load_config(isolated / "missing.toml")
    monkeypatch.setenv("LLMRELAY_CONFIG", str(isolated / "gone.toml"))
    with pytest.raises(ConfigError, match=r"gone\.toml: .*LLMRELAY_CONFIG"):
        load_config()


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "llmrelay.toml", 'default = "a"\n[providers.x\n')
    with pytest.raises(ConfigError) as info:
        read_config(path)
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value) and "line 2" in str(info.value)
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[providers.groq]\nbase_url = "groq.com/v1"', "providers.groq.base_url: not a URL"),
        ("[providers.groq]\nbase_url = 42", "providers.groq.base_url: expected a string, got an integer"),
        (
            '[providers.groq]\ndefualt_model = "x"',
            "providers.groq.defualt_model: unknown key (did you mean 'default_model'?)",
        ),
        ('[providers.groq]\napi_key_env = "my key"', "providers.groq.api_key_env: not an environment variable name"),
        (
            "[providers.groq]\ntimeouts = { connect = -1 }",
            "providers.groq.timeouts.connect: expected a positive number",
        ),
        (
            "[providers.groq]\ntimeouts = { conect = 1 }",
            "providers.groq.timeouts.conect: unknown key (did you mean 'connect'?)",
        ),
        ('[providers.groq]\nheaders = { "X-A" = 1 }', "providers.groq.headers.X-A: expected a string"),
        ('[providers.groq]\nmodels = "a"', "providers.groq.models: expected a list of strings, got a string"),
        (
            '[providers.groq]\ntype = "openai"\ndialect = "openai"',
            "providers.groq.dialect: give either type or dialect",
        ),
        ('[providers."a/b"]\ntype = "openai"', "providers.a/b: a provider name must be non-empty and contain no '/'"),
        ("providers = 3", "providers: expected a table, got an integer"),
        ('[alias]\nfast = "x/y"', "alias: unknown key (did you mean 'aliases'?)"),
        ('default = "has space/x"', "default: expected a model string"),
        ('[aliases]\na = "b"\nb = "a"', "aliases.a: alias cycle: a -> b -> a"),
        (
            '[providers.x]\ntype = "openai"\n[aliases]\nx = "y/z"',
            "aliases.x: an alias cannot have the name of a configured provider",
        ),
        ("[fallbacks]\nmain = []", "fallbacks.main: expected at least one entry"),
        ('[fallbacks]\nmain = ["a/b", 3]', "fallbacks.main[1]: expected a string, got an integer"),
        ('[fallbacks]\na = ["x/y", "b"]\nb = ["a"]', "fallbacks.b[0]: fallback cycle: a -> b -> a"),
        ('[fallbacks]\na = ["x/y", "a"]', "fallbacks.a[1]: fallback cycle: a -> a"),
        (
            '[aliases]\nquick = "b"\n[fallbacks]\na = ["quick"]\nb = ["x/y", "a"]',
            "fallbacks.b[1]: fallback cycle: a -> b -> a",
        ),
        ('[aliases]\nx = "y/z"\n[fallbacks]\nx = ["y/z"]', "fallbacks.x: a fallback name has the name of an alias"),
        ('[providers.p]\ntype = "openai"\n[fallbacks]\np = ["y/z"]', "fallbacks.p: a fallback name has the name of a"),
        ("[retry]\nmax_attempts = 0", "retry.max_attempts: expected an integer between 1 and 100, got 0"),
        ("[retry]\nmax_attempts = 2.5", "retry.max_attempts: expected an integer, got a number"),
        ("[retry]\nbase_delay = -1", "retry.base_delay: expected a positive number, got -1"),
        ("[retry]\nmax_delay = 0.1", "retry.max_delay: base_delay (0.5) is more than max_delay (0.1)"),
        ('[retry]\ndeadline = "soon"', "retry.deadline: expected a number, got a string"),
        ("[retry]\nattempts = 2", "retry.attempts: unknown key (did you mean 'max_attempts'?)"),
        ("retry = 3", "retry: expected a table, got an integer"),
        (
            "[rate_limits.openai]\nrequests_per_minute = 0",
            "rate_limits.openai.requests_per_minute: expected a positive number",
        ),
        ("[rate_limits.openai]\nmax_concurrency = 1.5", "rate_limits.openai.max_concurrency: expected an integer"),
        ("[rate_limits.openai]\nrpm = 5", "rate_limits.openai.rpm: unknown key"),
        ("[deliberations.r]\nrounds = 2", "deliberations.r.participants: missing; expected a list of NAME=MODEL"),
        ('[deliberations.r]\nparticipants = ["a"]', "deliberations.r.participants[0]: expected NAME=MODEL"),
        (
            '[deliberations.r]\nparticipants = [{ name = "a" }]',
            "deliberations.r.participants[0].model: missing; expected a model string",
        ),
        (
            '[deliberations.r]\nparticipants = ["a=x/m", { name = "a", model = "y/m" }]',
            "deliberations.r.participants[1].name: the name 'a' is used twice",
        ),
        (
            '[deliberations.r]\nparticipants = ["a=x/m"]\nstrategy = "rounds"',
            "deliberations.r.chair: strategy 'rounds' needs a chair",
        ),
        ('[deliberations.r]\nparticipants = ["a=x/m"]\nstrategy = "vote"', "deliberations.r.strategy: expected one of"),
        ('[deliberations.r]\nparticipants = ["a=x/m"]\nagreement = 2', "deliberations.r.agreement: expected a share"),
        (
            '[deliberations.r]\nparticipants = ["a=x/m"]\nlimits = { max_cost = 0 }',
            "deliberations.r.limits.max_cost: expected a positive amount",
        ),
        (
            '[deliberations.r]\nparticipants = ["a=x/m", "b=x/m"]\nlimits = { max_calls = 1 }',
            "deliberations.r.limits.max_calls: 1 is fewer than the 2 calls of the first round",
        ),
        (
            '[deliberations.r]\nparticipants = ["a=x/m"]\nlimits = { calls = 1 }',
            "deliberations.r.limits.calls: unknown",
        ),
        (
            '[deliberations.r]\nparticipants = ["a=x/m"]\nchair = "x/m"\njudge = "x/m"',
            "deliberations.r.judge: give either chair or judge",
        ),
        ('[deliberations.r]\nparticipants = ["a=x/m"]\nanswer_pattern = "("', "deliberations.r.answer_pattern: does"),
        ("[gateway]\nport = 70000", "gateway.port: expected an integer between 0 and 65535, got 70000"),
        ('[gateway]\nhots = "x"', "gateway.hots: unknown key (did you mean 'host'?)"),
    ],
)
def test_errors_name_the_file_the_key_path_and_what_is_expected(text: str, expected: str) -> None:
    message = parse_error(text)
    assert message.startswith("/etc/llmrelay.toml: ")
    assert expected in message


def test_a_literal_key_is_accepted_with_a_warning_that_never_shows_it(tmp_path: Path) -> None:
    secret = "sk-literal-SECRET-0123456789abcdef"
    path = write(tmp_path / "llmrelay.toml", f'[providers.openai]\napi_key = "{secret}"\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = read_config(path)
    assert config.providers["openai"].api_key == secret
    messages = [str(w.message) for w in caught if issubclass(w.category, LlmRelayWarning)]
    assert len(messages) == 1
    assert "providers.openai.api_key" in messages[0] and "api_key_env" in messages[0]
    assert secret not in messages[0]
    assert secret not in repr(config)


def test_user_config_path_without_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from llmrelay.config._load import user_config_path

    monkeypatch.setitem(sys.modules, "platformdirs", None)  # as if the optional extra were not installed
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert user_config_path() == tmp_path / "llmrelay" / "llmrelay.toml"
