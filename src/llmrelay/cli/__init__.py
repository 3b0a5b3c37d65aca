"""The ``llmrelay`` command: a thin layer over the public API.

::

    llmrelay chat "Why is the sky blue?"            # streams the answer; -m PROVIDER/MODEL to choose
    echo "some text" | llmrelay chat "Summarise:"   # stdin is appended to the prompt
    llmrelay chat --json "Hi"                       # one JSON object per stream event, per line
    llmrelay deliberate "Is 1001 prime?"            # several models (or personas) discuss it in rounds
    llmrelay models                                 # configured providers and models, with capabilities
    llmrelay providers                              # dialects and endpoint rows, and which keys are set
    llmrelay config check | show | init
    llmrelay serve --port 8787                      # the gateway: OpenAI, Anthropic and native routes
    llmrelay keys create NAME | list | revoke NAME  # the gateway's keys (the secret is printed once)
    llmrelay usage --by key|model|day               # the usage ledger, summed

Start-up imports only ``argparse``; each command imports what it needs when it runs, so ``--help`` is fast.
Every failure is one line on stderr saying what to do next, and the exit code says what kind it was:

====  ===========================================================================================
code  meaning
====  ===========================================================================================
0     success
1     the provider answered with an error (bad request, server error), or an unexpected failure
2     bad command line (unknown option, no prompt, unreadable --image)
3     configuration problem: invalid llmrelay.toml, unknown provider or type, model file missing,
      the ``local`` extra not installed
4     credentials: no API key found, the key was rejected, or the account's quota is exhausted
5     temporarily unavailable: network failure, timeout, rate limit, overloaded provider (retry)
130   interrupted (Ctrl-C)
====  ===========================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_AUTH = 4
EXIT_UNAVAILABLE = 5
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line found after parsing (no prompt, an unreadable file)."""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="llmrelay.toml to use (default: $LLMRELAY_CONFIG, ./llmrelay.toml, then the user config dir)",
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for unexpected errors"
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="llmrelay",
        description="One interface to many LLM providers. With nothing configured, a small local model answers.",
        epilog="Exit codes: 0 ok, 1 provider error, 2 usage, 3 configuration, 4 credentials, "
        "5 unavailable (retry), 130 interrupted.",
        parents=[common],
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = sub.add_parser("chat", parents=[common], help="ask a model; the answer streams to stdout")
    chat.add_argument("prompt", nargs="*", help="the prompt (stdin, when piped, is appended)")
    chat.add_argument("-m", "--model", help="PROVIDER/MODEL or an alias (default: the configured default)")
    chat.add_argument("-s", "--system", help="system prompt")
    chat.add_argument("--temperature", type=float, help="sampling temperature")
    chat.add_argument("--max-tokens", type=int, dest="max_tokens", help="most tokens to generate")
    chat.add_argument("--stop", action="append", default=[], help="stop sequence (repeatable)")
    chat.add_argument("--image", action="append", default=[], metavar="FILE", help="attach an image file or URL")
    chat.add_argument("--json", action="store_true", help="one JSON object per stream event, one per line")
    chat.add_argument("--no-stream", action="store_true", dest="no_stream", help="wait for the whole answer")
    chat.set_defaults(handler="chat")

    from ._deliberate import add_parser as add_deliberate

    add_deliberate(sub, common)

    from ._serve import add_parser as add_serve

    add_serve(sub, common)

    from ._keys import add_parser as add_keys
    from ._usage import add_parser as add_usage

    add_keys(sub, common)
    add_usage(sub, common)

    models = sub.add_parser("models", parents=[common], help="configured providers and models, with capabilities")
    models.add_argument("--remote", action="store_true", help="also ask each provider for its model list")
    models.set_defaults(handler="models")

    providers = sub.add_parser("providers", parents=[common], help="dialects and endpoint rows, and their keys")
    providers.set_defaults(handler="providers")

    config = sub.add_parser("config", parents=[common], help="check, show or create llmrelay.toml")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", parents=[common], help="validate the file and every provider's key")
    check.set_defaults(handler="config_check")
    show = config_sub.add_parser("show", parents=[common], help="print the effective configuration (keys redacted)")
    show.set_defaults(handler="config_show")
    init = config_sub.add_parser("init", parents=[common], help="write a starter llmrelay.toml")
    init.add_argument("--path", help="where to write it (default: the user config dir)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler="config_init")
    return parser


def _run(handler: str, args: argparse.Namespace) -> int:
    if handler == "chat":
        from ._chat import run_chat

        return run_chat(args)
    if handler == "deliberate":
        from ._deliberate import run_deliberate

        return run_deliberate(args)
    if handler == "serve":
        from ._serve import run_serve

        return run_serve(args)
    if handler.startswith("keys_"):
        from ._keys import run_keys

        return run_keys(handler, args)
    if handler == "usage":
        from ._usage import run_usage

        return run_usage(args)
    if handler in ("models", "providers"):
        from ._info import run_models, run_providers

        return run_models(args) if handler == "models" else run_providers(args)
    from ._config import run_config

    return run_config(handler, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.version:
        from .. import __version__

        print(f"llmrelay {__version__}")
        return EXIT_OK
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False) or os.environ.get("LLMRELAY_DEBUG"))
    _route_warnings()
    _tolerant_output()
    try:
        return _run(handler, args)
    except KeyboardInterrupt:
        print("llmrelay: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except UsageError as exc:
        print(f"llmrelay: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        code, line = describe_error(exc)
        if debug:
            import traceback

            traceback.print_exc()
        print(line, file=sys.stderr)
        return code


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an error, with every credential scrubbed from it."""
    from ._format import scrub_secrets

    code, line = _describe(exc)
    return code, scrub_secrets(line)


def _describe(exc: BaseException) -> tuple[int, str]:
    from .._errors import LlmError

    if not isinstance(exc, LlmError):
        return EXIT_ERROR, (
            f"llmrelay: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(run again with --debug for a traceback, and please report it)"
        )
    code, hint = _classify(exc)
    if getattr(exc, "kind", None) == "config" and getattr(exc, "file", None) is None:
        hint = None  # about the command line (a model string), not the file
    message = _one_line(str(exc))
    if hint and hint.lower() not in message.lower():
        message = f"{message.rstrip('.')}. {hint}"
    return code, f"llmrelay: error: {message}"


def _classify(exc: Any) -> tuple[int, str | None]:
    from .. import _errors as e
    from ..config import ConfigError
    from ..providers._local_process import LocalModelCrash

    retry = f"; retry after {exc.retry_after:g}s" if getattr(exc, "retry_after", None) else ""
    table: list[tuple[type[BaseException], int, str | None]] = [
        (ConfigError, EXIT_CONFIG, "Fix it, then check with: llmrelay config check"),
        (LocalModelCrash, EXIT_CONFIG, None),  # a llama-cpp-python build for another CPU: rebuild it
        (e.MissingApiKey, EXIT_AUTH, None),
        (e.AuthError, EXIT_AUTH, "Check the API key"),
        (e.QuotaExceededError, EXIT_AUTH, "Top up the account, or use another provider with -m"),
        (e.RateLimitError, EXIT_UNAVAILABLE, f"Rate limited{retry}"),
        (e.OverloadedError, EXIT_UNAVAILABLE, "The provider is overloaded; retry later or use another with -m"),
        (e.ServerError, EXIT_UNAVAILABLE, "The provider failed; retry later or use another with -m"),
        (e.NetworkError, EXIT_UNAVAILABLE, "Check the network and the provider's base_url"),
        (e.RequestTimeout, EXIT_UNAVAILABLE, "Retry, or raise the timeouts in llmrelay.toml"),
        (e.ContextLengthError, EXIT_ERROR, "Shorten the prompt or lower --max-tokens"),
        (e.ModelNotFoundError, EXIT_ERROR, "Check the model name (llmrelay models --remote lists them)"),
        (e.UnsupportedCapability, EXIT_ERROR, None),
    ]
    for cls, code, hint in table:
        if isinstance(exc, cls):
            return code, hint
    return EXIT_ERROR, None


def _route_warnings() -> None:
    """Show llmrelay's warnings as one ``llmrelay: warning: ...`` line each."""
    import warnings

    from .._provider import LlmRelayWarning

    original = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, LlmRelayWarning):
            print(f"llmrelay: warning: {_one_line(str(message))}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _tolerant_output() -> None:
    """Text a terminal cannot encode (a lone surrogate from a server, a character outside a legacy
    encoding) is printed as a replacement character, never an exception that loses the whole answer."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")


def _silence_stdout() -> None:
    # The reader went away (`llmrelay chat ... | head -1`); stop Python complaining when it flushes at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
