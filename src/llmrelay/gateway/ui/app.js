/* The llmrelay console: one page, four tabs, no build step, no inline script (see the CSP in _routes_ui.py).
 *
 * Every figure comes from the gateway's JSON/SSE routes with the key the person typed (kept in sessionStorage,
 * sent as Authorization: Bearer). A 401 anywhere signs out and clears what was shown: a wrong key sees the
 * login form, never data. In open loopback mode (/api/whoami says anonymous) there is no login.
 *
 * The deliberation stream is read with fetch and a ReadableStream (EventSource cannot send a header); an
 * AbortController's abort() closes the connection, which cancels the handler and the upstream calls.
 */
"use strict";

const KEY_STORE = "llmrelay.key";
const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem(KEY_STORE),
  who: null,
  tab: null,
  run: null, // the deliberation in progress: {controller, id, columns: Map}
  lastDeliberationId: null,
  charts: {},
  providersTimer: null,
};

class Unauthorized extends Error {}

// ---------------------------------------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function num(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString("en-US");
}

function ms(value) {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toLocaleString("en-US", { maximumFractionDigits: Number(value) < 10 ? 1 : 0 })} ms`;
}

function pct(value) {
  return value === null || value === undefined ? "—" : `${(Number(value) * 100).toFixed(Number(value) < 0.1 ? 1 : 0)}%`;
}

/** Exact decimal addition of two non-negative decimal strings (money arrives as exact text). */
function decAdd(a, b) {
  const [ai, af = ""] = String(a).split(".");
  const [bi, bf = ""] = String(b).split(".");
  const scale = Math.max(af.length, bf.length);
  const sum = BigInt(ai + af.padEnd(scale, "0")) + BigInt(bi + bf.padEnd(scale, "0"));
  if (scale === 0) return sum.toString();
  const digits = sum.toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, -scale);
  const frac = digits.slice(-scale).replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : whole;
}

function money(amount, currency = "USD") {
  const text = String(amount);
  const shown = Number(text) !== 0 && Math.abs(Number(text)) < 0.01 ? text : Number(text).toFixed(2);
  return `${currency === "USD" ? "$" : `${currency} `}${shown}`;
}

/** A cost for display: `known` is {currency: "amount"} (possibly empty), `unknown` how many parts had no
 * price. Unknown is never shown as 0: all unknown -> "unknown"; some -> "$0.0012 + unknown (N)". */
function costNode(known, unknown, unknownWhat = "unpriced") {
  const parts = Object.entries(known || {}).map(([cur, amount]) => money(amount, cur));
  const span = el("span", { class: "cost" });
  if (parts.length) span.append(parts.join(" + "));
  if (unknown > 0) {
    if (parts.length) span.append(" + ");
    span.append(el("span", { class: "unknown", title: `${unknown} ${unknownWhat}`, text: parts.length ? `unknown (${unknown} ${unknownWhat})` : "unknown" }));
  }
  if (!parts.length && !(unknown > 0)) span.append(money("0"));
  return span;
}

function table(columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return el("p", { class: "empty", text: empty });
  const head = el("tr", {}, ...columns.map((c) => el("th", { class: c.num ? "num" : null, text: c.title })));
  const body = rows.map((row) =>
    el("tr", {}, ...columns.map((c) => {
      const value = c.value(row);
      return el("td", { class: c.num ? "num" : null }, value instanceof Node ? value : String(value));
    })),
  );
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function banner(message) {
  const node = $("banner");
  node.textContent = message || "";
  node.hidden = !message;
}

async function errorText(response) {
  try {
    const data = await response.json();
    const error = data && data.error;
    if (error && error.message) return `${response.status}: ${error.message}`;
  } catch (_) {
    /* not JSON */
  }
  return `${response.status} ${response.statusText}`;
}

// ---------------------------------------------------------------------------------------------- the API

function headers(extra = {}) {
  const out = { ...extra };
  if (state.key) out.Authorization = `Bearer ${state.key}`;
  return out;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (response.status === 401) {
    signOut("The gateway refused this key (401). Sign in with a valid key.");
    throw new Unauthorized("401");
  }
  return response;
}

async function apiJson(path, options = {}) {
  const response = await api(path, options);
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

// ---------------------------------------------------------------------------------------------- sign-in

async function whoami() {
  const response = await fetch("/api/whoami", { headers: headers() });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`/api/whoami: ${await errorText(response)}`);
  return response.json();
}

function showLogin(message) {
  $("tabs").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  for (const page of document.querySelectorAll(".page")) page.hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-error").hidden = !message;
  $("login-key").focus();
}

/** Forget the key and everything shown with it. */
function signOut(message) {
  if (state.run) state.run.controller.abort();
  state.key = null;
  state.who = null;
  sessionStorage.removeItem(KEY_STORE);
  stopProviders();
  for (const chart of Object.values(state.charts)) chart.destroy();
  state.charts = {};
  for (const id of ["usage-totals", "usage-by-model", "usage-by-provider", "usage-by-key", "usage-errors",
    "providers-table", "keys-table", "columns", "rounds"]) clear($(id));
  $("final").hidden = true;
  $("key-secret-box").hidden = true;
  $("key-secret").textContent = "";
  banner("");
  showLogin(message);
}

function signedIn(who) {
  state.who = who;
  $("login").hidden = true;
  $("tabs").hidden = false;
  $("logout").hidden = !!who.anonymous;
  $("who").textContent = who.anonymous ? "open mode (loopback, no keys configured)" : `signed in as ${who.name}${who.admin ? " (admin)" : ""}`;
  $("tab-keys").hidden = !who.admin;
  const wanted = (location.hash || "").replace("#", "");
  showTab(["deliberate", "usage", "providers", "keys"].includes(wanted) ? wanted : "deliberate");
}

async function boot() {
  try {
    const who = await whoami();
    if (who) signedIn(who);
    else signOut(state.key ? "The gateway refused the stored key (401)." : "");
  } catch (error) {
    showLogin(String(error.message || error));
  }
}

async function onLogin(event) {
  event.preventDefault();
  const key = $("login-key").value.trim();
  if (!key) return;
  state.key = key;
  try {
    const who = await whoami();
    if (!who) {
      $("login-key").value = "";
      signOut("The gateway refused this key (401).");
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    $("login-key").value = "";
    signedIn(who);
  } catch (error) {
    state.key = null;
    showLogin(String(error.message || error));
  }
}

// ---------------------------------------------------------------------------------------------- tabs

function showTab(name) {
  if (name === "keys" && !(state.who && state.who.admin)) name = "deliberate";
  state.tab = name;
  history.replaceState(null, "", `#${name}`);
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
  stopProviders();
  const load = { usage: loadUsage, providers: startProviders, keys: loadKeys }[name];
  if (load) load().catch(report);
}

function report(error) {
  if (error instanceof Unauthorized) return;
  banner(String(error.message || error));
}

// ---------------------------------------------------------------------------------------------- deliberate

function addParticipant(name = "", models = "", persona = "") {
  const row = $("participant-row").content.firstElementChild.cloneNode(true);
  row.querySelector(".p-name").value = name;
  row.querySelector(".p-models").value = models;
  row.querySelector(".p-persona").value = persona;
  row.querySelector(".p-remove").addEventListener("click", () => row.remove());
  $("participants").append(row);
}

function deliberationBody() {
  const participants = [];
  for (const row of $("participants").querySelectorAll(".participant")) {
    const name = row.querySelector(".p-name").value.trim();
    const models = row.querySelector(".p-models").value.split(",").map((m) => m.trim()).filter(Boolean);
    const persona = row.querySelector(".p-persona").value.trim();
    if (!name && !models.length) continue;
    const one = models.length === 1 ? { name, model: models[0] } : { name, models };
    if (persona) one.persona = persona;
    participants.push(one);
  }
  const body = {
    question: $("delib-question").value.trim(),
    participants,
    strategy: $("delib-strategy").value,
    rounds: Number($("delib-rounds").value) || 2,
    mode: $("delib-mode").value,
  };
  const chair = $("delib-chair").value.trim();
  if (chair) body.chair = chair;
  const maxTokens = Number($("delib-max-tokens").value);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  return body;
}

/** Server-sent events from text chunks (the WHATWG rules: fields, multi-line data, CR/LF/CRLF endings). */
class SseParser {
  constructor() {
    this.buffer = "";
    this.event = "";
    this.data = [];
  }

  feed(text) {
    this.buffer += text;
    const out = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone CR at the very end may be the first half of a CRLF split across chunks: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      if (line === "") {
        if (this.data.length) out.push({ event: this.event || "message", data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
    }
    return out;
  }

  /** At the end of the stream: a CR held back above was a line end after all; an unfinished event is dropped. */
  flush() {
    return this.buffer.endsWith("\r") ? this.feed("\n") : [];
  }
}

function column(run, participant) {
  let col = run.columns.get(participant);
  if (col) return col;
  const node = el("article", { class: "column", "data-participant": participant });
  const model = el("div", { class: "model", text: run.requested.get(participant) || "" });
  const turns = el("div", { class: "turns" });
  const footer = el("footer", { class: "usage" });
  node.append(el("header", {}, el("div", { class: "name", text: participant }), model), turns, footer);
  $("columns").append(node);
  col = { node, model, turns, footer, current: new Map(), input: 0, output: 0, cost: {}, costUnknown: 0, tokensUnknown: 0 };
  run.columns.set(participant, col);
  renderColumnFooter(col);
  return col;
}

function renderColumnFooter(col) {
  clear(col.footer);
  const tokens = `${num(col.input)} in · ${num(col.output)} out tokens${col.tokensUnknown ? ` (+ ${col.tokensUnknown} turn(s) unreported)` : ""}`;
  col.footer.append(el("span", { class: "tokens", text: tokens }), " · ", costNode(col.cost, col.costUnknown, "turn(s) without a price"));
}

function turnBlock(col, round, phase, attempt) {
  const key = `${round}:${attempt}`;
  let block = col.current.get(key);
  if (block) return block;
  const title = el("h3", { text: `Round ${round}${phase ? ` · ${phase}` : ""}${attempt > 1 ? ` · attempt ${attempt}` : ""}` });
  const text = el("pre", { class: "text live" });
  const node = el("section", { class: "turn", "data-round": round }, title, text);
  col.turns.append(node);
  block = { node, title, text };
  col.current.set(key, block);
  return block;
}

function roundChip(round, phase) {
  const id = `round-${round}`;
  let chip = document.getElementById(id);
  if (!chip) {
    chip = el("span", { class: "round", id });
    $("rounds").append(chip);
  }
  chip.textContent = `Round ${round} · ${phase} …`;
  return chip;
}

function onDeliberationEvent(run, type, data) {
  switch (type) {
    case "deliberation":
      run.id = data.id;
      for (const seat of data.seats || []) {
        const models = (seat.models || []).join(" → ");
        if (models) run.requested.set(seat.name, models);
        const col = column(run, seat.name);
        if (models && !col.model.textContent) col.model.textContent = models;
        if (seat.role && seat.role !== "participant") col.node.dataset.role = seat.role;
      }
      $("delib-status").textContent = `running (id ${data.id})`;
      break;
    case "round_started":
      roundChip(data.round, data.phase);
      break;
    case "turn_started": {
      const col = column(run, data.participant);
      col.model.textContent = data.provider && data.model
        ? (String(data.model).startsWith(`${data.provider}/`) ? data.model : `${data.provider}/${data.model}`)
        : `${data.requested || ""} (could not open)`;
      turnBlock(col, data.round, data.phase, data.attempt || 1);
      break;
    }
    case "turn_delta": {
      const col = column(run, data.participant);
      turnBlock(col, data.round, "", data.attempt || 1).text.append(data.text);
      col.turns.scrollTop = col.turns.scrollHeight;
      break;
    }
    case "turn_finished": {
      const col = column(run, data.participant);
      const attempts = [...col.current.keys()].filter((k) => k.startsWith(`${data.round}:`));
      const block = attempts.length ? col.current.get(attempts[attempts.length - 1]) : turnBlock(col, data.round, data.phase, 1);
      block.text.classList.remove("live");
      if (data.text !== undefined && data.text !== null) block.text.textContent = data.text;
      block.node.classList.add(data.status || "ok");
      if (data.status && data.status !== "ok") {
        const why = data.error && data.error.message ? `: ${data.error.message}` : "";
        block.node.append(el("p", { class: "error", text: `${data.status}${why}` }));
      }
      if (data.usage) {
        col.input += data.usage.input_tokens || 0;
        col.output += data.usage.output_tokens || 0;
      } else {
        col.tokensUnknown += 1;
      }
      if (data.cost !== undefined && data.cost !== null) {
        const cur = data.currency || "USD";
        col.cost[cur] = decAdd(col.cost[cur] || "0", data.cost);
      } else {
        col.costUnknown += 1;
      }
      renderColumnFooter(col);
      break;
    }
    case "round_finished": {
      const chip = roundChip(data.round, data.phase);
      chip.classList.add("done");
      const a = data.agreement;
      chip.textContent = a
        ? `Round ${data.round} · ${data.phase} · agreement ${a.score === null || a.score === undefined ? "n/a" : pct(a.score)}${a.unanimous ? " (unanimous)" : ""}${a.answer ? ` · answer ${a.answer}` : ""}`
        : `Round ${data.round} · ${data.phase} · done`;
      break;
    }
    case "aggregate":
      $("final").hidden = false;
      $("final-answer").textContent = data.answer || "";
      $("final-text").textContent = data.text || "";
      $("final-totals").textContent = `${data.method}${data.source && data.source.length ? ` of ${data.source.join(", ")}` : ""}${data.complete === false ? " (incomplete)" : ""}`;
      break;
    case "deliberation_done": {
      $("final").hidden = false;
      $("final-answer").textContent = data.answer || "(no extractable answer)";
      if (data.text) $("final-text").textContent = data.text;
      const t = data.totals || {};
      const known = t.cost !== undefined && t.cost !== null ? { [t.currency || "USD"]: t.cost } : {};
      const totals = $("final-totals");
      clear(totals);
      totals.append(
        `${data.stop}${data.detail ? ` (${data.detail})` : ""} · ${num(t.calls)} calls${t.failed ? ` (${t.failed} failed)` : ""} · `
        + `${num(t.input_tokens)} in / ${num(t.output_tokens)} out tokens · `,
        costNode(known, t.cost_unknown || 0, "turn(s) without a price"),
        data.elapsed_s !== undefined ? ` · ${Number(data.elapsed_s).toFixed(1)} s` : "",
      );
      run.done = true;
      break;
    }
    case "error":
      run.failed = data.message || (data.error && data.error.message) || "the deliberation failed";
      banner(run.failed);
      break;
    default:
      break; // a newer server's event: ignored
  }
}

async function startDeliberation(event) {
  event.preventDefault();
  if (state.run) return;
  banner("");
  const body = deliberationBody();
  clear($("columns"));
  clear($("rounds"));
  $("final").hidden = true;
  $("final-answer").textContent = "";
  $("final-text").textContent = "";
  $("transcript-md").disabled = true;
  $("transcript-json").disabled = true;
  const run = { controller: new AbortController(), id: null, columns: new Map(), requested: new Map(), done: false, failed: null };
  for (const p of body.participants) run.requested.set(p.name, p.model || (p.models || []).join(" → "));
  for (const p of body.participants) column(run, p.name);
  state.run = run;
  $("delib-start").disabled = true;
  $("delib-cancel").disabled = false;
  $("delib-status").textContent = "starting…";
  try {
    const response = await api("/api/deliberations", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      signal: run.controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      for (const message of done ? parser.flush() : parser.feed(value)) {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch (_) {
          continue;
        }
        onDeliberationEvent(run, (data && data.type) || message.event, data);
      }
      if (done) break;
    }
    $("delib-status").textContent = run.done ? "done" : run.failed ? "failed" : "the stream ended early";
  } catch (error) {
    if (error.name === "AbortError") {
      $("delib-status").textContent = "cancelled";
      for (const col of run.columns.values()) for (const block of col.current.values()) block.text.classList.remove("live");
    } else if (!(error instanceof Unauthorized)) {
      $("delib-status").textContent = "failed";
      banner(`Deliberation: ${error.message || error}`);
    }
  } finally {
    state.run = null;
    $("delib-start").disabled = false;
    $("delib-cancel").disabled = true;
    if (run.id) {
      state.lastDeliberationId = run.id;
      $("transcript-md").disabled = false;
      $("transcript-json").disabled = false;
    }
  }
}

function cancelDeliberation() {
  if (state.run) state.run.controller.abort();
}

async function downloadTranscript(format) {
  const id = state.lastDeliberationId;
  if (!id) return;
  try {
    const response = await api(`/api/deliberations/${encodeURIComponent(id)}/transcript?format=${format}`);
    if (!response.ok) throw new Error(await errorText(response));
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `deliberation-${id}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    report(error);
  }
}

// ---------------------------------------------------------------------------------------------- usage

const CHART_COLOURS = ["#1f6feb", "#2da44e", "#cf222e", "#bf8700", "#8250df", "#0a7ea4", "#e16f24", "#57606a"];

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  if (typeof Chart === "undefined") return; // the vendored file failed to load: tables still show
  config.options = { responsive: true, maintainAspectRatio: false, animation: false, ...(config.options || {}) };
  state.charts[id] = new Chart($(id), config);
}

function sinceParam() {
  const hours = $("usage-since").value;
  return hours ? `&since=${encodeURIComponent(new Date(Date.now() - Number(hours) * 3600e3).toISOString())}` : "";
}

function groupCost(g) {
  return costNode(g.cost, g.unpriced || 0, "unpriced request(s)");
}

function usageColumns(title) {
  return [
    { title, value: (g) => g.group === null || g.group === undefined || g.group === "" ? "(none)" : g.group },
    { title: "Requests", num: true, value: (g) => num(g.requests) },
    { title: "OK", num: true, value: (g) => num(g.ok) },
    { title: "Errors", num: true, value: (g) => num(g.errors) },
    { title: "Cancelled", num: true, value: (g) => num(g.cancelled) },
    { title: "Input tokens", num: true, value: (g) => num(g.input_tokens) },
    { title: "Output tokens", num: true, value: (g) => num(g.output_tokens) },
    { title: "Cost", num: true, value: groupCost },
    { title: "Latency p50 / p95 / p99", num: true, value: (g) => percentiles(g.latency_ms) },
    { title: "TTFT p50 / p95 / p99", num: true, value: (g) => percentiles(g.ttft_ms) },
  ];
}

function percentiles(p) {
  if (!p) return "—";
  return [p.p50, p.p95, p.p99].map((v) => (v === null || v === undefined ? "—" : Math.round(v))).join(" / ") + " ms";
}

function card(label, value, id) {
  return el("div", { class: "card", id }, el("div", { class: "label", text: label }), el("div", { class: "value" }, value));
}

async function loadUsage() {
  $("usage-status").textContent = "loading…";
  const since = sinceParam();
  const bucket = $("usage-bucket").value;
  const [byModel, byProvider, byKey, byTime] = await Promise.all(
    ["model", "provider", "key", bucket].map((by) => apiJson(`/api/usage?by=${by}${since}`)),
  );
  const t = byModel.totals || {};
  const totals = $("usage-totals");
  clear(totals);
  totals.append(
    card("Requests", num(t.requests), "total-requests"),
    card("OK / errors / cancelled", `${num(t.ok)} / ${num(t.errors)} / ${num(t.cancelled)}`, "total-outcomes"),
    card("Input tokens", num(t.input_tokens), "total-input"),
    card("Output tokens", num(t.output_tokens), "total-output"),
    card("Cost", groupCost(t), "total-cost"),
    card("Latency p50 / p95", t.latency_ms ? `${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p95)}` : "—", "total-latency"),
    card("TTFT p50 / p95", t.ttft_ms ? `${ms(t.ttft_ms.p50)} / ${ms(t.ttft_ms.p95)}` : "—", "total-ttft"),
  );
  for (const [id, data, title] of [["usage-by-model", byModel, "Model"], ["usage-by-provider", byProvider, "Provider"], ["usage-by-key", byKey, "Key"]]) {
    clear($(id));
    $(id).append(table(usageColumns(title), data.groups || [], "No requests in this period."));
  }
  const kinds = Object.entries(t.error_kinds || {}).sort((a, b) => b[1] - a[1]);
  clear($("usage-errors"));
  $("usage-errors").append(table(
    [{ title: "Kind", value: (r) => r[0] }, { title: "Requests", num: true, value: (r) => num(r[1]) }],
    kinds, "No errors in this period.",
  ));

  const timeGroups = [...(byTime.groups || [])].sort((a, b) => String(a.group).localeCompare(String(b.group)));
  const labels = timeGroups.map((g) => String(g.group));
  chart("chart-requests", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "ok", data: timeGroups.map((g) => g.ok), backgroundColor: "#2da44e" },
        { label: "errors", data: timeGroups.map((g) => g.errors), backgroundColor: "#cf222e" },
        { label: "cancelled", data: timeGroups.map((g) => g.cancelled), backgroundColor: "#bf8700" },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  chart("chart-tokens", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "input", data: timeGroups.map((g) => g.input_tokens), backgroundColor: "#1f6feb" },
        { label: "output", data: timeGroups.map((g) => g.output_tokens), backgroundColor: "#8250df" },
      ],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
  chart("chart-cost-time", {
    type: "bar",
    data: {
      labels: timeGroups.map((g) => `${g.group}${g.unpriced ? ` (+${g.unpriced} unknown)` : ""}`),
      datasets: [{ label: "USD (priced requests)", data: timeGroups.map((g) => (g.cost && g.cost.USD !== undefined ? Number(g.cost.USD) : null)), backgroundColor: "#0a7ea4" }],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
  const timed = (byModel.groups || []).filter((g) => g.latency_ms);
  chart("chart-latency", {
    type: "bar",
    data: {
      labels: timed.map((g) => g.group),
      datasets: [
        { label: "latency p50", data: timed.map((g) => g.latency_ms.p50), backgroundColor: "#1f6feb" },
        { label: "latency p95", data: timed.map((g) => g.latency_ms.p95), backgroundColor: "#8250df" },
        { label: "TTFT p50", data: timed.map((g) => (g.ttft_ms ? g.ttft_ms.p50 : null)), backgroundColor: "#2da44e" },
        { label: "TTFT p95", data: timed.map((g) => (g.ttft_ms ? g.ttft_ms.p95 : null)), backgroundColor: "#bf8700" },
      ],
    },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } },
  });
  // Only priced amounts are plotted; a model with unpriced requests says so in its label, never as 0.
  const models = byModel.groups || [];
  chart("chart-cost", {
    type: "bar",
    data: {
      labels: models.map((g) => `${g.group}${g.unpriced ? ` (+${g.unpriced} unknown)` : ""}`),
      datasets: [{ label: "USD (priced requests)", data: models.map((g) => (g.cost && g.cost.USD !== undefined ? Number(g.cost.USD) : null)), backgroundColor: "#0a7ea4" }],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });
  chart("chart-errors", {
    type: "doughnut",
    data: {
      labels: kinds.length ? kinds.map((k) => k[0]) : ["no errors"],
      datasets: [{ data: kinds.length ? kinds.map((k) => k[1]) : [1], backgroundColor: kinds.length ? CHART_COLOURS : ["#d7dce2"] }],
    },
  });
  const truncated = byModel.truncated || byTime.truncated;
  $("usage-status").textContent = `updated ${new Date().toLocaleTimeString()}${truncated ? " · truncated: the period has more rows than one answer reads" : ""}`;
}

// ---------------------------------------------------------------------------------------------- providers

function latency(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return ms(value);
  return percentiles(value);
}

async function loadProviders() {
  const data = await apiJson("/api/providers");
  const rows = data.providers || [];
  const limit = (r, field) => (r.rate_limit && r.rate_limit[field] !== null && r.rate_limit[field] !== undefined ? num(r.rate_limit[field]) : "—");
  clear($("providers-table"));
  $("providers-table").append(table([
    { title: "Name", value: (r) => r.name },
    { title: "Kind", value: (r) => r.kind || "—" },
    { title: "Router", value: (r) => r.router || "—" },
    { title: "Breaker", value: (r) => (r.state ? el("span", { class: `badge ${r.state}`, text: r.state.replace("_", "-") }) : "—") },
    { title: "Error ratio", num: true, value: (r) => pct(r.error_ratio) },
    { title: "Latency", num: true, value: (r) => latency(r.latency_ms) },
    { title: "In flight", num: true, value: (r) => num(r.in_flight) },
    { title: "Limit scope", value: (r) => (r.rate_limit ? r.rate_limit.scope || "—" : "no limit") },
    { title: "Requests left", num: true, value: (r) => limit(r, "requests_left") },
    { title: "Tokens left", num: true, value: (r) => limit(r, "tokens_left") },
    { title: "Slots left", num: true, value: (r) => limit(r, "slots_left") },
  ], rows, "No providers configured."));
  $("providers-status").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function startProviders() {
  await loadProviders();
  stopProviders();
  if ($("providers-auto").checked) {
    state.providersTimer = setInterval(() => {
      if (state.tab === "providers" && !document.hidden) loadProviders().catch(report);
    }, 5000);
  }
}

function stopProviders() {
  if (state.providersTimer) clearInterval(state.providersTimer);
  state.providersTimer = null;
}

// ---------------------------------------------------------------------------------------------- keys

function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

async function loadKeys() {
  $("keys-denied").hidden = !!state.who.admin;
  $("keys-admin").hidden = !state.who.admin;
  if (!state.who.admin) return;
  const response = await api("/api/keys");
  if (response.status === 403) {
    $("keys-denied").hidden = false;
    $("keys-admin").hidden = true;
    return;
  }
  if (!response.ok) throw new Error(await errorText(response));
  const data = await response.json();
  const keys = Array.isArray(data) ? data : data.keys || [];
  clear($("keys-table"));
  $("keys-table").append(table([
    { title: "Name", value: (k) => k.name },
    { title: "Prefix", value: (k) => el("code", { text: k.prefix || "" }) },
    { title: "Created", value: (k) => when(k.created) },
    { title: "Models", value: (k) => (k.models && k.models.length ? k.models.join(", ") : "any") },
    { title: "Requests/min", num: true, value: (k) => num(k.rpm) },
    { title: "Tokens/min", num: true, value: (k) => num(k.tpm) },
    { title: "Budget", value: (k) => (k.max_cost ? `${money(k.max_cost)} / ${k.period || "total"}` : k.max_tokens ? `${num(k.max_tokens)} tokens / ${k.period || "total"}` : "—") },
    { title: "State", value: (k) => el("span", { class: `badge ${k.revoked ? "revoked" : "ok"}`, text: k.revoked ? `revoked ${when(k.revoked)}` : "active" }) },
    { title: "", value: (k) => (k.revoked ? "" : revokeButton(k.name)) },
  ], keys, "No keys yet: the gateway is open on loopback only."));
  $("keys-status").textContent = `${keys.filter((k) => !k.revoked).length} active key(s)`;
}

function revokeButton(name) {
  const button = el("button", { type: "button", class: "danger revoke", "data-key": name, text: "Revoke" });
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Confirm revoke";
      return;
    }
    try {
      const response = await api(`/api/keys/${encodeURIComponent(name)}`, { method: "DELETE" });
      if (!response.ok) throw new Error(await errorText(response));
      $("keys-status").textContent = `revoked ${name}`;
      await loadKeys();
    } catch (error) {
      report(error);
    }
  });
  return button;
}

async function createKey(event) {
  event.preventDefault();
  const body = { name: $("key-name").value.trim() };
  const models = $("key-models").value.split(",").map((m) => m.trim()).filter(Boolean);
  if (models.length) body.models = models;
  if (Number($("key-rpm").value) > 0) body.rpm = Number($("key-rpm").value);
  if (Number($("key-tpm").value) > 0) body.tpm = Number($("key-tpm").value);
  try {
    const response = await api("/api/keys", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    if (!response.ok) throw new Error(await errorText(response));
    const data = await response.json();
    $("key-secret-name").textContent = (data.key && data.key.name) || body.name;
    $("key-secret").textContent = data.secret;
    $("key-secret-box").hidden = false;
    $("key-form").reset();
    await loadKeys();
  } catch (error) {
    report(error);
  }
}

// ---------------------------------------------------------------------------------------------- wiring

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => signOut(""));
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  $("add-participant").addEventListener("click", () => addParticipant());
  $("delib-form").addEventListener("submit", startDeliberation);
  $("delib-cancel").addEventListener("click", cancelDeliberation);
  $("transcript-md").addEventListener("click", () => downloadTranscript("md"));
  $("transcript-json").addEventListener("click", () => downloadTranscript("json"));
  $("usage-refresh").addEventListener("click", () => loadUsage().catch(report));
  $("usage-since").addEventListener("change", () => loadUsage().catch(report));
  $("usage-bucket").addEventListener("change", () => loadUsage().catch(report));
  $("providers-refresh").addEventListener("click", () => loadProviders().catch(report));
  $("providers-auto").addEventListener("change", () => startProviders().catch(report));
  $("key-form").addEventListener("submit", createKey);
  $("key-secret-hide").addEventListener("click", () => {
    $("key-secret").textContent = "";
    $("key-secret-box").hidden = true;
  });
  $("key-secret-copy").addEventListener("click", () => navigator.clipboard.writeText($("key-secret").textContent).catch(report));
  addParticipant("skeptic", "", "You doubt every claim until it is shown.");
  addParticipant("builder", "", "");
  boot();
}

document.addEventListener("DOMContentLoaded", wire);
