"""What ``llmrelay deliberate`` shows while it runs: JSON lines, plain lines, or a live terminal view.

Each view takes the deliberation's events one at a time (``show``) and is closed once (``close``), on
success, failure or Ctrl-C alike:

- ``JsonView`` (``--json``): every event as one line of the tagged codec (``llmrelay._codec``), flushed
  as it comes; each names its ``participant`` where it has one. Error texts are scrubbed of credentials.
- ``PlainView`` (stdout is not a terminal, ``--plain``, or ``rich`` is not installed): one block per
  finished turn, ``[round 1] skeptic: <text>`` with its model, tokens, cost and time; the agreement of
  each round; the aggregates; the final answer. Deltas are not printed, so parallel turns never mix.
- ``LiveView`` (stdout is a terminal and ``rich`` is installed: ``pip install 'llmrelay[cli]'``): one
  panel per participant of the current round with its text as it streams, a header with the round and
  the running calls, tokens and cost; each finished round stays in the scrollback.

The totals line goes to stderr in every view but JSON (where ``deliberation_done`` carries them).
"""

from __future__ import annotations

import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from .._codec import json_line as _json_text
from .._codec import to_json
from ..deliberation import (
    Aggregate,
    DeliberationDone,
    DeliberationEvent,
    RoundFinished,
    RoundStarted,
    Tally,
    Turn,
    TurnDelta,
    TurnFinished,
    TurnStarted,
    TurnStatus,
    tally,
)
from ..deliberation._transcript import money
from ._format import _scrubbed

__all__ = ["JsonView", "LiveView", "PlainView", "View", "live_available", "totals_line"]


NO_ANSWER = "(no final answer: no reply ended with an answer line, `Answer: ...`)"


class View(Protocol):
    def show(self, event: DeliberationEvent) -> None: ...

    def close(self) -> None: ...


def live_available() -> bool:
    """Whether the ``rich`` library is installed (the live view's only dependency)."""
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def _who(turn: Turn) -> str:
    return "/".join(x for x in (turn.provider, turn.model) if x) or "no model answered"


def _turn_facts(turn: Turn, *, model: bool = True) -> str:
    usage = turn.usage.total_tokens if turn.usage is not None else None
    facts = [_who(turn)] if model else []
    facts.append(f"{usage} tokens" if usage is not None else "tokens unreported")
    facts.append(money(turn.cost, 0 if turn.cost is not None else 1, turn.currency))
    facts.append(f"{turn.latency_s:.1f} s")
    if turn.attempts:
        facts.append(f"after {len(turn.attempts)} failed attempt{'s' if len(turn.attempts) != 1 else ''}")
    return " · ".join(facts)


def _failure(turn: Turn) -> str:
    reason = f"{turn.error.kind}: {' '.join(turn.error.message.split())}" if turn.error else turn.status.value
    return f"(no reply: {reason})" if turn.status is TurnStatus.FAILED else f"(the stream broke: {reason})"


def _agreement_text(event: RoundFinished) -> str | None:
    agreement = event.agreement
    if agreement is None:
        return None
    if agreement.score is None:
        return "no answer could be extracted"
    counts = ", ".join(f"{k!r}: {n}" for k, n in agreement.counts.items())
    return f"agreement {agreement.score:.2f}{' (unanimous)' if agreement.unanimous else ''}: {counts}"


def totals_line(done: DeliberationDone, strategy: str) -> str:
    """``llmrelay: debate completed · 6 calls · 812 tokens (600 in, 212 out) · $0.0012 · 9.3 s``."""
    t = done.totals
    parts = [f"{strategy} {done.stop.value}" + (f" ({done.detail})" if done.detail else "")]
    parts.append(f"{t.calls} calls" + (f" ({t.failed} not ok)" if t.failed else ""))
    tokens = f"{t.total_tokens} tokens ({t.input_tokens} in, {t.output_tokens} out)"
    parts.append(tokens + (f" + {t.tokens_unknown} unreported" if t.tokens_unknown else ""))
    parts.append(money(t.cost, t.cost_unknown, t.currency))
    parts.append(f"{done.elapsed_s:.1f} s")
    return "llmrelay: " + " · ".join(parts)


class JsonView:
    """``--json``: one codec line per event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, event: DeliberationEvent) -> None:
        payload = to_json(event)
        for key in ("error", "attempts", "partials"):
            if key in payload:
                payload[key] = _scrubbed(payload[key])
        self.out.write(_json_text(payload) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


class PlainView:
    """Plain lines, one block per finished turn (see the module docstring)."""

    def __init__(self, out: TextIO, err: TextIO, strategy: str) -> None:
        self.out, self.err, self.strategy = out, err, strategy

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def show(self, event: DeliberationEvent) -> None:
        match event:
            case RoundStarted(round=number, phase=phase):
                self._write(f"== round {number}: {phase} ==")
            case TurnFinished(turn=turn):
                body = turn.text.strip() if turn.status is not TurnStatus.FAILED else ""
                if turn.status is not TurnStatus.OK:
                    body = f"{body}\n{_failure(turn)}".strip()
                lines = (body or "(empty reply)").splitlines()
                self._write(f"[round {turn.round}] {turn.participant}: {lines[0]}")
                for line in [*lines[1:], f"({_turn_facts(turn)})"]:
                    self._write(f"  {line}".rstrip())
            case RoundFinished(round=number) as finished:
                text = _agreement_text(finished)
                if text is not None:
                    self._write(f"[round {number}] {text}")
            case Aggregate() as aggregate:
                by = f" ({', '.join(aggregate.source)})" if aggregate.source else ""
                answer = aggregate.answer if aggregate.answer is not None else "(no answer line found)"
                self._write(f"[{aggregate.method}] {answer}{by}{'' if aggregate.complete else ' (cut short)'}")
            case DeliberationDone() as done:
                self._write("== final answer ==")
                self._write(done.answer if done.answer is not None else NO_ANSWER)
                if done.text.strip() and done.text.strip() != (done.answer or ""):
                    self._write("")
                    self._write(done.text.strip())
                print(totals_line(done, self.strategy), file=self.err)
            case _:
                pass

    def close(self) -> None:
        self.out.flush()


# --- the live view ---------------------------------------------------------------------------------------


@dataclass
class _Panel:
    name: str
    model: str = ""
    text: list[str] = field(default_factory=list)
    status: str = "waiting"
    facts: str = ""


_REFRESH_S = 0.08


class LiveView:
    """A ``rich.live.Live`` view (see the module docstring); ``rich`` is imported here, lazily."""

    def __init__(self, out: TextIO, err: TextIO, strategy: str, seats: list[tuple[str, str]], question: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.err, self.strategy, self.question = err, strategy, question
        self.models = dict(seats)
        self.console = Console(file=out, highlight=False)
        self.round: tuple[int, str] | None = None
        self.panels: dict[str, _Panel] = {}
        self.turns: list[Turn] = []
        self.live = Live(console=self.console, auto_refresh=False, transient=True, redirect_stdout=False)
        self.live.start()
        self._last = 0.0
        self._closed = False

    # state

    def _spent(self) -> Tally:
        return tally(self.turns)

    def show(self, event: DeliberationEvent) -> None:
        urgent = True
        match event:
            case RoundStarted(round=number, phase=phase):
                self.round = (number, phase)
                self.panels = {}
            case TurnStarted(participant=name, provider=provider, model=model, attempt=attempt):
                panel = self.panels.setdefault(name, _Panel(name, self.models.get(name, "")))
                panel.model = "/".join(x for x in (provider, model) if x) or panel.model
                if attempt > 1:
                    panel.text = [f"[the previous model's stream broke; attempt {attempt}]\n"]
                panel.status = "thinking"
            case TurnDelta(participant=name, text=text):
                panel = self.panels.setdefault(name, _Panel(name, self.models.get(name, "")))
                panel.text.append(text)
                panel.status = "streaming"
                urgent = False
            case TurnFinished(turn=turn):
                self.turns.append(turn)
                panel = self.panels.setdefault(turn.participant, _Panel(turn.participant))
                panel.model = _who(turn)
                panel.status = turn.status.value
                panel.facts = _turn_facts(turn, model=False)
                if turn.status is not TurnStatus.OK:
                    panel.text = [turn.text, "\n" + _failure(turn)]
            case RoundFinished() as finished:
                self._print_round(finished)
                self.panels = {}
            case Aggregate() as aggregate:
                self._print_aggregate(aggregate)
            case DeliberationDone() as done:
                self.close()
                self._print_done(done)
                return
            case _:
                pass
        self._refresh(force=urgent)

    def _refresh(self, *, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._last >= _REFRESH_S:
            self._last = now
            self.live.update(self._render(), refresh=True)

    # rendering

    def _header(self) -> Any:
        from rich.text import Text

        spent = self._spent()
        where = f"round {self.round[0]} · {self.round[1]}" if self.round else "starting"
        cost = money(spent.cost, spent.cost_unknown, spent.currency)
        line = Text()
        line.append(f"{self.strategy} ", style="bold")
        line.append(f"· {where} · {spent.calls} calls · {spent.total_tokens} tokens · {cost}")
        return line

    @staticmethod
    def _wrapped(panel: _Panel, inner: int) -> list[str]:
        lines: list[str] = []
        for line in "".join(panel.text).splitlines() or [""]:
            lines += textwrap.wrap(line, inner, replace_whitespace=False, drop_whitespace=False) or [""]
        return lines

    def _panel(self, panel: _Panel, lines: list[str], width: int, height: int) -> Any:
        from rich.panel import Panel
        from rich.text import Text

        shown = lines[-height:] + [""] * (height - len(lines))
        style = {"ok": "green", "failed": "red", "partial": "yellow"}.get(panel.status, "cyan")
        title = f"[bold]{panel.name}[/] · {panel.model}" if panel.model else f"[bold]{panel.name}[/]"
        return Panel(
            Text("\n".join(shown)),
            title=title,
            subtitle=panel.facts or panel.status,
            border_style=style,
            width=width,
            height=height + 2,
        )

    def _render(self) -> Any:
        """The header, then the round's panels in rows of up to three, as tall as the longest text needs
        (within the terminal's height: a long text shows its last lines)."""
        from rich.console import Group
        from rich.table import Table

        panels = list(self.panels.values())
        if not panels:
            return Group(self._header())
        width = self.console.width
        per_row = min(len(panels), 3 if width >= 90 else 1)
        rows = -(-len(panels) // per_row)
        cell = width // per_row
        texts = [self._wrapped(p, max(10, cell - 4)) for p in panels]
        room = max(3, (self.console.height - 3) // rows - 2)
        height = min(room, max(len(t) for t in texts))
        grid = Table.grid(expand=True)
        for _ in range(per_row):
            grid.add_column(ratio=1)
        for start in range(0, len(panels), per_row):
            chunk = [
                self._panel(panel, lines, cell, height)
                for panel, lines in zip(panels[start : start + per_row], texts[start : start + per_row], strict=True)
            ]
            grid.add_row(*chunk, *[""] * (per_row - len(chunk)))
        return Group(self._header(), grid)

    def _print_round(self, finished: RoundFinished) -> None:
        from rich.panel import Panel
        from rich.rule import Rule
        from rich.text import Text

        self.console.print(Rule(f"round {finished.round}: {finished.phase}"))
        for turn in self.turns:
            if turn.round != finished.round or turn.phase != finished.phase:
                continue
            body = turn.text.strip() if turn.status is not TurnStatus.FAILED else ""
            if turn.status is not TurnStatus.OK:
                body = f"{body}\n{_failure(turn)}".strip()
            style = {"ok": "green", "failed": "red", "partial": "yellow"}[turn.status.value]
            title = f"[bold]{turn.participant}[/]"
            self.console.print(
                Panel(Text(body or "(empty reply)"), title=title, subtitle=_turn_facts(turn), border_style=style)
            )
        text = _agreement_text(finished)
        if text is not None:
            self.console.print(Text(text, style="bold"))

    def _print_aggregate(self, aggregate: Aggregate) -> None:
        from rich.text import Text

        by = f" ({', '.join(aggregate.source)})" if aggregate.source else ""
        answer = aggregate.answer if aggregate.answer is not None else "(no answer line found)"
        self.console.print(Text(f"[{aggregate.method}] {answer}{by}", style="bold"))

    def _print_done(self, done: DeliberationDone) -> None:
        from rich.panel import Panel
        from rich.text import Text

        body = done.text.strip() or NO_ANSWER
        title = f"final answer: {done.answer}" if done.answer is not None else "final answer"
        self.console.print(Panel(Text(body), title=f"[bold]{title}[/]", border_style="bold green"))
        print(totals_line(done, self.strategy), file=self.err)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.live.stop()


def pick_view(
    *, as_json: bool, plain: bool, strategy: str, seats: list[tuple[str, str]], question: str
) -> JsonView | PlainView | LiveView:
    """The view for this run: JSON, the live view on a terminal (with ``rich``), else plain lines."""
    out, err = sys.stdout, sys.stderr
    if as_json:
        return JsonView(out)
    import os

    terminal = out.isatty() and os.environ.get("TERM") != "dumb"
    if terminal and not plain and live_available():
        return LiveView(out, err, strategy, seats, question)
    return PlainView(out, err, strategy)
