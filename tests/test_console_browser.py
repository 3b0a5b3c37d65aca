"""The web console (``/ui``) in a real headless Chromium, driven by Selenium, against a real gateway in front
of two fake upstreams (OpenAI and Anthropic dialects) streaming with a small delay per chunk.

Nothing is downloaded at test time: the browser is Debian's ``chromium`` and ``chromium-driver``
(``/usr/bin/chromium``, ``/usr/bin/chromedriver``; ``.ci/run`` installs them), given to Selenium
explicitly, and ``SE_OFFLINE`` keeps selenium-manager from looking for another. The gateway runs in a
thread with its own event loop (Selenium's calls block), on 127.0.0.1.

What is proved, in one browser session, in order:

- a wrong key sees the login form and a 401 message, and no page of data; a stored wrong key too;
- the page's SSE reader gives the same events at every split of a stream (LF, CRLF, CR line ends);
- a two-participant debate: both columns fill while the stream runs (text shown before the turn ends),
  the rounds and their agreement appear, per-participant tokens and cost (one participant's model has
  no price: its cost reads "unknown", never $0), the final answer, and the Markdown and JSON
  transcripts download;
- Cancel aborts the stream, and the upstream sees its connection closed;
- the Usage page shows exactly the requests just made (counted here by hand), their tokens, the priced
  cost and the unpriced requests as unknown;
- the Providers page lists both providers; the Keys page creates a key (its secret shown once), a
  sign-in with it sees no Keys tab, and the admin revokes it; a key revoked while its page is open is
  signed out at its next request, and what it was shown is cleared;
- the open loopback mode (a gateway without keys) shows the console with no login;
- the browser log has no warning or error after any step (save the 401s a refused key is answered with),
  and an image injected against the CSP is refused and logged (the control that the log check works).

Screenshots of each page go to ``tests/artifacts/`` (git-ignored); with ``LLMRELAY_UPDATE_SCREENSHOTS=1``
they are also copied to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from gateway_support import load, upstream_config
from llmrelay._events import Done, StreamEvent, TextDelta
from llmrelay._types import FinishReason, Usage
from llmrelay.gateway._relay import StaticKey
from llmrelay.gateway.app import app_runner_kwargs, build_app
from llmrelay.gateway.keys import open_key_store
from llmrelay.metering import MemoryLedger
from llmrelay.testing import FakeUpstream, Reply, SeenRequest
from llmrelay.testing._served import served
from llmrelay.testing.openai_kit import KIT as OA_KIT
from llmrelay.wire.anthropic.server import AnthropicServer
from llmrelay.wire.openai_chat.server import OpenAIChatServer

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ADMIN_SECRET = "gw-console-admin-0123456789"
ARTIFACTS = Path(__file__).parent / "artifacts"
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"

OA_USAGE = (12, 30)
AN_USAGE = (15, 25)
EXTRA = (
    '[prices.oa]\ninput_per_mtok = "1.00"\noutput_per_mtok = "2.00"\n'
    "[rate_limits.oa]\nrequests_per_minute = 600\n"
    '[routers.pool]\ndeployments = ["oa/gpt-4o-mini", "oa/gpt-4.1-mini"]\n'
)
"""oa is priced (12 in, 30 out: $0.000072 a call) and rate-limited; an's model has no price anywhere (its
cost is unknown); the router ``pool`` has two oa deployments (the same tokens and price whichever answers)."""

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):  # .ci/run installs both; a missing browser is a failure
    raise RuntimeError("the console tests need Debian's browser: apt-get install chromium chromium-driver")


def _words(text: str) -> list[str]:
    """``text`` in word-sized deltas (so a column visibly fills)."""
    parts = text.split(" ")
    return [part + (" " if i < len(parts) - 1 else "") for i, part in enumerate(parts)]


def _reply(request: SeenRequest, server: Any, text: str, usage: tuple[int, int], model: str, delay: float) -> Reply:
    """``text`` as ``server``'s dialect serves it: word by word, ``delay`` seconds apart, when streamed."""
    events: list[StreamEvent] = [TextDelta(word) for word in _words(text)]
    events.append(Done(FinishReason.STOP, usage=Usage(input_tokens=usage[0], output_tokens=usage[1])))
    stream = bool((request.json or {}).get("stream"))
    return replace(served(server, events, stream=stream, model=model, rid="console-test"), chunk_delay=delay)


def _question(request: SeenRequest) -> str:
    return json.dumps(request.json or {})


@dataclass
class Console:
    """A gateway (and its fake upstreams) running in a thread; ``url`` once started."""

    tmp: Path
    open_mode: bool = False
    url: str = ""
    oa_calls: int = 0
    an_calls: int = 0
    oa: FakeUpstream | None = None
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None
    _thread: threading.Thread | None = None

    def oa_reply(self, request: SeenRequest) -> Reply:
        if (request.json or {}).get("model") == "broken":
            return OA_KIT.error(500)
        self.oa_calls += 1
        delay = 0.5 if "slow question" in _question(request) else 0.04
        text = "Adding two and two gives four, as counting on fingers shows.\nAnswer: 4"
        return _reply(request, OpenAIChatServer(), text, OA_USAGE, "gpt-4o-mini", delay)

    def an_reply(self, request: SeenRequest) -> Reply:
        self.an_calls += 1
        delay = 0.5 if "slow question" in _question(request) else 0.04
        first = self.an_calls == 1
        text = (
            "At first sight it looks like five, but let me check that again later.\nAnswer: 5"
            if first
            else "Having read the other answer, I agree: two and two make four.\nAnswer: 4"
        )
        return _reply(request, AnthropicServer(), text, AN_USAGE, "house-model-1", delay)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with FakeUpstream() as oa, FakeUpstream() as an:
            self.oa = oa
            oa.always(self.oa_reply)
            an.always(self.an_reply)
            config = load(upstream_config(oa, an, extra=EXTRA), self.tmp)
            store = open_key_store(f"sqlite:///{self.tmp / 'keys.db'}", ttl=0.2)
            auth = StaticKey(None if self.open_mode else ADMIN_SECRET, store)
            app = build_app(config, auth=auth, ledger=self.ledger)
            from aiohttp import web

            runner = web.AppRunner(app, **app_runner_kwargs(app))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            assert site._server is not None
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()
                await store.aclose()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> Console:
        self._thread = threading.Thread(target=self._run, name="console-gateway", daemon=True)
        self._thread.start()
        assert self._ready.wait(15), "the gateway did not start within 15 s"
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on the gateway's loop (awaited when it returns an awaitable)."""
        assert self._loop is not None

        async def run() -> Any:
            out = fn()
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
        mp.setenv("GW_TEST_AN_KEY", "sk-ant-upstream-000000")
        server = Console(tmp_path_factory.mktemp("console")).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager never looks for (or downloads) a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda _: predicate(), message=what)


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def shown(driver: WebDriver, element_id: str) -> bool:
    return bool(driver.find_element(By.ID, element_id).is_displayed())


def _sign_in_probe(entry: dict[str, Any]) -> bool:
    """Chrome logs every 4xx response; the 401 of ``/api/whoami`` is how a page without a (valid) key learns
    it must show the login form, so that one alone is expected."""
    message = str(entry["message"])
    return entry.get("source") == "network" and "/api/whoami" in message and "status of 401" in message


def errors_in_log(driver: WebDriver) -> list[str]:
    """The browser log's warnings and errors (reading it empties it): script errors, CSP violations,
    failed loads, ... less the sign-in probe's 401."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] in ("SEVERE", "WARNING") and not _sign_in_probe(e)]


def screenshot(driver: WebDriver, name: str, height: int | None = None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    if height is not None:
        driver.set_window_size(1400, height)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    if height is not None:
        driver.set_window_size(1400, 1000)
    if os.environ.get("LLMRELAY_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"console-{name}.png")


def sign_in(driver: WebDriver, url: str, key: str) -> None:
    driver.get(f"{url}/ui/")
    wait(driver, lambda: shown(driver, "login") or shown(driver, "tabs"), what="the page did not boot")
    if shown(driver, "tabs"):
        driver.find_element(By.ID, "logout").click()
    driver.find_element(By.ID, "login-key").send_keys(key)
    driver.find_element(By.ID, "login-submit").click()


def test_wrong_key_sees_the_login_and_a_401_never_data(console: Console, browser: WebDriver) -> None:
    browser.get(f"{console.url}/ui/")
    wait(browser, lambda: shown(browser, "login"), what="no login form")
    assert not shown(browser, "tabs")
    browser.find_element(By.ID, "login-key").send_keys("not-the-key")
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda: "401" in text_of(browser, "login-error"), what="no 401 message")
    assert not shown(browser, "tabs")
    for page in ("page-deliberate", "page-usage", "page-providers", "page-keys"):
        assert not shown(browser, page)
    assert browser.execute_script("return sessionStorage.getItem('llmrelay.key')") is None
    screenshot(browser, "login")
    # A wrong key already in sessionStorage (a key revoked since) is refused the same way, on load.
    browser.execute_script("sessionStorage.setItem('llmrelay.key', 'revoked-since')")
    browser.get(f"{console.url}/ui/#usage")
    browser.refresh()  # the hash alone does not reload the page
    wait(browser, lambda: "401" in text_of(browser, "login-error"), what="a stored wrong key was not refused")
    assert not shown(browser, "page-usage")
    assert browser.find_element(By.ID, "usage-totals").text == ""
    assert browser.execute_script("return sessionStorage.getItem('llmrelay.key')") is None
    assert errors_in_log(browser) == []


SSE_SPLITS = """
const whole = "event: a\\ndata: {\\"x\\":1}\\n\\n: comment\\r\\ndata: l1\\r\\ndata:l2\\r\\n\\r\\n"
  + "id: 3\\nevent: b\\rdata: z\\r\\r";
const expected = JSON.stringify(
  [{event: "a", data: '{"x":1}'}, {event: "message", data: "l1\\nl2"}, {event: "b", data: "z"}]);
const failures = [];
for (let cut = 0; cut <= whole.length; cut++) {
  const parser = new SseParser();
  const got = [...parser.feed(whole.slice(0, cut)), ...parser.feed(whole.slice(cut)), ...parser.flush()];
  if (JSON.stringify(got) !== expected) failures.push(cut);
}
const bytewise = new SseParser();
const one = [];
for (const ch of whole) one.push(...bytewise.feed(ch));
one.push(...bytewise.flush());
return {failures, bytewise: JSON.stringify(one) === expected};
"""


def test_the_page_s_sse_parser_gives_the_same_events_at_every_split(console: Console, browser: WebDriver) -> None:
    """The console's own event-stream reader, run in the browser: LF, CRLF and CR line ends, comments,
    multi-line data, split at every offset and fed one character at a time."""
    browser.get(f"{console.url}/ui/")
    wait(browser, lambda: shown(browser, "login"), what="the page did not boot")
    assert browser.execute_script(SSE_SPLITS) == {"failures": [], "bytewise": True}
    assert errors_in_log(browser) == []


def fill_deliberation(driver: WebDriver, question: str) -> None:
    driver.find_element(By.ID, "tab-deliberate").click()
    area = driver.find_element(By.ID, "delib-question")
    area.clear()
    area.send_keys(question)
    rows = driver.find_elements(By.CSS_SELECTOR, "#participants .participant")
    assert len(rows) == 2
    for row, (name, model) in zip(rows, (("skeptic", "oa/gpt-4o-mini"), ("builder", "an/house-model-1")), strict=True):
        for css, value in ((".p-name", name), (".p-models", model)):
            box = row.find_element(By.CSS_SELECTOR, css)
            box.clear()
            box.send_keys(value)
    Select(driver.find_element(By.ID, "delib-strategy")).select_by_value("debate")
    rounds = driver.find_element(By.ID, "delib-rounds")
    rounds.clear()
    rounds.send_keys("2")
    cap = driver.find_element(By.ID, "delib-max-tokens")
    cap.clear()
    cap.send_keys("200")


def column_text(driver: WebDriver, participant: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f'.column[data-participant="{participant}"] .turns').text)


def test_a_two_participant_debate_streams_into_two_columns(
    console: Console, browser: WebDriver, downloads: Path
) -> None:
    sign_in(browser, console.url, ADMIN_SECRET)
    wait(browser, lambda: shown(browser, "page-deliberate"), what="not signed in")
    assert "admin" in text_of(browser, "who")
    fill_deliberation(browser, "What is two plus two?")
    started = time.monotonic()
    browser.find_element(By.ID, "delib-start").click()

    # Both columns show text while their turns are still streaming (the cursor class is on).
    def both_streaming() -> bool:
        live = browser.find_elements(By.CSS_SELECTOR, ".column .text.live")
        owners = {
            e.find_element(By.XPATH, "ancestor::article").get_attribute("data-participant") for e in live if e.text
        }
        return owners == {"skeptic", "builder"}

    wait(browser, both_streaming, what="the two columns did not fill while streaming")
    partial = column_text(browser, "skeptic")
    assert partial and "Answer: 4" not in partial  # mid-stream: part of the reply only
    wait(browser, lambda: shown(browser, "final") and text_of(browser, "final-answer") == "4", 15, "no final answer")
    elapsed = time.monotonic() - started
    assert text_of(browser, "delib-status") == "done"

    for name, first, second in (("skeptic", "Answer: 4", "Answer: 4"), ("builder", "Answer: 5", "Answer: 4")):
        text = column_text(browser, name)
        assert "ROUND 1" in text.upper() and "ROUND 2" in text.upper()
        assert text.count("Answer:") == 2 and first in text and second in text
    assert console.oa_calls == 2 and console.an_calls == 2
    chips = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#rounds .round")]
    assert len(chips) == 2 and "agreement 50%" in chips[0] and "agreement 100% (unanimous)" in chips[1]
    skeptic = browser.find_element(By.CSS_SELECTOR, '.column[data-participant="skeptic"] footer').text
    builder = browser.find_element(By.CSS_SELECTOR, '.column[data-participant="builder"] footer').text
    assert "24 in · 60 out tokens" in skeptic and "$0.000144" in skeptic, skeptic
    assert "30 in · 50 out tokens" in builder and "unknown" in builder and "$0" not in builder, builder
    totals = text_of(browser, "final-totals")
    assert "4 calls" in totals and "54 in / 110 out tokens" in totals and "$0.000144" in totals, totals
    assert "unknown" in totals
    screenshot(browser, "deliberate", height=1300)

    browser.find_element(By.ID, "transcript-md").click()
    files = wait(browser, lambda: [p for p in downloads.glob("deliberation-*.md")], what="no transcript download")
    markdown = files[0].read_text()
    assert "What is two plus two?" in markdown and "skeptic" in markdown and "builder" in markdown
    browser.find_element(By.ID, "transcript-json").click()
    saved = wait(browser, lambda: [p for p in downloads.glob("deliberation-*.json")], what="no JSON transcript")
    transcript = json.loads(saved[0].read_text())
    assert transcript["question"] == "What is two plus two?"
    assert errors_in_log(browser) == []
    assert elapsed < 10


def test_cancel_aborts_the_stream_and_the_upstream_call(console: Console, browser: WebDriver) -> None:
    oa = console.oa
    assert oa is not None
    before = oa.disconnects
    fill_deliberation(browser, "A slow question: what is two plus two?")
    browser.find_element(By.ID, "delib-start").click()
    wait(browser, lambda: column_text(browser, "skeptic").strip() != "", what="the slow turn never began")
    browser.find_element(By.ID, "delib-cancel").click()
    wait(browser, lambda: text_of(browser, "delib-status") == "cancelled", what="not cancelled")
    assert not shown(browser, "final")
    assert console.call(lambda: oa.wait_disconnect(5.0))
    assert oa.disconnects > before
    # The aborted fetch is the page's own doing: no error logged.
    assert errors_in_log(browser) == []


def chat(console: Console, model: str) -> int:
    """One ``/v1/chat/completions`` call through the gateway (from this thread: the gateway has its own)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    request = urllib.request.Request(
        f"{console.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN_SECRET}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_usage_page_shows_the_requests_just_made(console: Console, browser: WebDriver) -> None:
    assert chat(console, "pool") == 200  # one more priced call: 12 in, 30 out, $0.000072
    assert chat(console, "oa/broken") == 502  # an upstream 500: an error row, its kind counted
    browser.find_element(By.ID, "tab-usage").click()
    wait(browser, lambda: text_of(browser, "usage-status").startswith("updated"), what="usage did not load")
    # By hand: the debate's 4 turns, the cancelled deliberation's 2 turns, the pool call, the failed call.
    rows = console.call(lambda: console_rows(console))
    assert len(rows) == 8
    assert text_of(browser, "total-requests").endswith("8")
    assert text_of(browser, "total-outcomes").endswith("5 / 1 / 2")
    assert text_of(browser, "total-input").endswith("66") and text_of(browser, "total-output").endswith("140")
    cost = text_of(browser, "total-cost")
    assert "$0.000216" in cost and "unknown" in cost and "$0.00 " not in cost, cost
    by_model = text_of(browser, "usage-by-model")
    assert "oa/gpt-4o-mini" in by_model and "an/house-model-1" in by_model
    an_row = browser.find_element(By.XPATH, '//div[@id="usage-by-model"]//tr[td[1]="an/house-model-1"]').text
    assert an_row.split()[1:4] == ["3", "2", "0"] and "unknown" in an_row and "$" not in an_row, an_row
    assert "admin" in text_of(browser, "usage-by-key")
    errors = text_of(browser, "usage-errors")
    assert "No errors" not in errors and errors.strip().endswith("1"), errors
    for chart_id in (
        "chart-requests",
        "chart-tokens",
        "chart-cost-time",
        "chart-cost",
        "chart-latency",
        "chart-errors",
    ):
        assert browser.execute_script(f"return !!Chart.getChart('{chart_id}')")
    screenshot(browser, "usage", height=1700)
    assert errors_in_log(browser) == []


async def console_rows(console: Console) -> list[Any]:
    return list(await console.ledger.rows())


def provider_cells(driver: WebDriver, name: str) -> list[str]:
    row = driver.find_element(By.XPATH, f'//div[@id="providers-table"]//tr[td[1]="{name}"]')
    return [str(td.text) for td in row.find_elements(By.TAG_NAME, "td")]


def test_the_providers_page_lists_both_providers(console: Console, browser: WebDriver) -> None:
    browser.find_element(By.ID, "tab-providers").click()
    wait(browser, lambda: text_of(browser, "providers-status").startswith("updated"), what="providers did not load")
    table = text_of(browser, "providers-table")
    assert "oa" in table and "an" in table
    deployment = provider_cells(browser, "oa/gpt-4o-mini")
    assert deployment[1:4] == ["deployment", "pool", "closed"] and deployment[4] == "0.0%", deployment
    assert deployment[5].endswith(" ms") and deployment[7] == "oa", deployment  # answered the pool call
    oa = provider_cells(browser, "oa")
    assert oa[1] == "provider" and oa[7] == "oa" and 590 <= float(oa[8].replace(",", "")) <= 600, oa
    assert provider_cells(browser, "an")[7] == "no limit"
    screenshot(browser, "providers")
    assert errors_in_log(browser) == []


def test_keys_are_created_once_shown_and_revoked_by_the_admin(console: Console, browser: WebDriver) -> None:
    browser.find_element(By.ID, "tab-keys").click()
    wait(browser, lambda: shown(browser, "keys-admin"), what="no key management for the admin")
    browser.find_element(By.ID, "key-name").send_keys("team-a")
    browser.find_element(By.ID, "key-models").send_keys("oa/*")
    browser.find_element(By.ID, "key-create").click()
    wait(browser, lambda: shown(browser, "key-secret-box"), what="no secret shown")
    secret = text_of(browser, "key-secret")
    assert secret.startswith("llmr_")
    wait(browser, lambda: "team-a" in text_of(browser, "keys-table"), what="the new key is not listed")
    assert secret not in text_of(browser, "keys-table")
    browser.find_element(By.ID, "key-secret-hide").click()
    assert text_of(browser, "key-secret") == ""
    screenshot(browser, "keys")

    # The new key signs in, and sees no Keys tab.
    sign_in(browser, console.url, secret)
    wait(browser, lambda: shown(browser, "tabs"), what="the new key could not sign in")
    assert "team-a" in text_of(browser, "who") and not shown(browser, "tab-keys")

    sign_in(browser, console.url, ADMIN_SECRET)
    wait(browser, lambda: shown(browser, "tab-keys"), what="the admin sees no Keys tab")
    browser.find_element(By.ID, "tab-keys").click()
    button = wait(browser, lambda: browser.find_element(By.CSS_SELECTOR, '.revoke[data-key="team-a"]'))
    button.click()
    assert button.text == "Confirm revoke"
    button.click()
    wait(browser, lambda: "revoked" in text_of(browser, "keys-table"), what="not revoked")
    assert errors_in_log(browser) == []


def admin_call(console: Console, method: str, path: str, body: Any = None) -> Any:
    """One admin request to the gateway's JSON API (from this thread), its JSON answer."""
    request = urllib.request.Request(
        f"{console.url}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN_SECRET}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_key_revoked_mid_session_is_signed_out_and_its_data_cleared(console: Console, browser: WebDriver) -> None:
    secret = admin_call(console, "POST", "/api/keys", {"name": "team-b"})["secret"]
    sign_in(browser, console.url, secret)
    wait(browser, lambda: shown(browser, "tabs"), what="team-b could not sign in")
    browser.find_element(By.ID, "tab-usage").click()
    wait(browser, lambda: text_of(browser, "usage-status").startswith("updated"), what="usage did not load")
    assert text_of(browser, "total-requests").endswith("0")  # a key sees its own rows: none yet
    admin_call(console, "DELETE", "/api/keys/team-b")
    browser.find_element(By.ID, "usage-refresh").click()
    wait(browser, lambda: shown(browser, "login") and "401" in text_of(browser, "login-error"), what="not signed out")
    assert not shown(browser, "tabs") and not shown(browser, "page-usage")
    assert browser.find_element(By.ID, "usage-totals").get_attribute("innerHTML") == ""
    assert browser.execute_script("return sessionStorage.getItem('llmrelay.key')") is None
    refused = [m for m in errors_in_log(browser) if not ("/api/usage" in m and "status of 401" in m)]
    assert refused == []


def test_open_loopback_mode_needs_no_login(tmp_path: Path, browser: WebDriver) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GW_TEST_OA_KEY", "sk-upstream-openai-000000")
        mp.setenv("GW_TEST_AN_KEY", "sk-ant-upstream-000000")
        server = Console(tmp_path, open_mode=True).start()
        try:
            browser.execute_script("sessionStorage.clear()")
            browser.get(f"{server.url}/ui/")
            wait(browser, lambda: shown(browser, "tabs"), what="open mode asked for a key")
            assert not shown(browser, "login")
            assert "open mode" in text_of(browser, "who")
            assert errors_in_log(browser) == []
            # The control: the CSP is enforced, and a violation is what errors_in_log would catch.
            browser.execute_script(
                "document.body.insertAdjacentHTML('beforeend', '<img src=\"http://192.0.2.1/x.png\">')"
            )
            logged = wait(browser, lambda: errors_in_log(browser), what="a CSP violation was not logged")
            assert any("Content Security Policy" in message for message in logged), logged
        finally:
            server.stop()
