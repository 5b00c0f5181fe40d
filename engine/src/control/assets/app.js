// The loop dashboard: resources, logs and the graph of a running session, kept
// current by the session API's event streams (no polling). Plain DOM, no build.

const $ = (id) => document.getElementById(id);
const LINE_HEIGHT = 18;
const MAX_LINES = 100000;

const state = {
  resources: new Map(), // name -> view, in snapshot order
  order: [],
  selected: null, // resource name, or null for all
  lines: [], // every line received, oldest first
  session: null,
  view: "resources",
};

// ---------- resources ----------

function rowFor(r) {
  const row = document.createElement("div");
  row.className = "row";
  row.dataset.name = r.name;
  row.setAttribute("role", "listitem");
  row.addEventListener("click", (e) => {
    if (e.target.closest("button, a")) return;
    select(state.selected === r.name ? null : r.name);
  });
  fillRow(row, r);
  return row;
}

function phaseOf(r) {
  return r.enabled ? r.phase : "disabled";
}

function fillRow(row, r) {
  const phase = phaseOf(r);
  const last = r.last_run
    ? r.last_run.duration_ms == null
      ? "running"
      : `${(r.last_run.duration_ms / 1000).toFixed(1)}s`
    : "";
  row.innerHTML = "";
  const dot = el("span", `dot ${phase}`);
  dot.title = phase;
  const name = el("span", "name", r.name);
  name.title = `${r.name} (${r.kind}) — ${r.defined_at}`;
  const reason = el("span", "reason", r.reason && r.reason !== phase ? `${phase}: ${r.reason}` : phase);
  reason.title = r.last_error || r.reason || phase;
  const lastRun = el("span", "last", last);
  const restarts = el("span", "restarts", r.restarts ? `↻${r.restarts}` : "");
  const actions = el("span", "actions");
  for (const link of r.links.filter((l) => /^https?:\/\//.test(l.url))) {
    const a = document.createElement("a");
    a.href = link.url;
    a.target = "_blank";
    a.rel = "noopener";
    a.textContent = link.name || link.url;
    actions.append(a);
  }
  for (const pf of r.port_forwards) actions.append(el("span", "pf", pf + " "));
  // v1alpha1.ui_buttons placed on this resource.
  for (const b of r.buttons || []) actions.append(uiButton(b));
  actions.append(button("trigger", () => act(r.name, "trigger")));
  actions.append(
    r.enabled
      ? button("disable", () => act(r.name, "disable"))
      : button("enable", () => act(r.name, "enable")),
  );
  row.append(dot, name, reason, lastRun, restarts, actions);
  row.classList.toggle("selected", state.selected === r.name);
  row.hidden = !visible(r);
}

function visible(r) {
  const text = $("filter-text").value.trim().toLowerCase();
  if ($("filter-failing").checked && !["failed", "crashing"].includes(r.phase)) return false;
  if (!text) return true;
  return r.name.toLowerCase().includes(text) || r.labels.some((l) => l.toLowerCase().includes(text));
}

function renderAllRows() {
  const list = $("resources");
  list.innerHTML = "";
  for (const name of state.order) list.append(rowFor(state.resources.get(name)));
  renderSummary();
  if (state.view === "graph") renderGraph();
}

function updateRow(r) {
  const known = state.resources.has(r.name);
  state.resources.set(r.name, r);
  if (!known) {
    state.order.push(r.name);
    $("resources").append(rowFor(r));
  } else {
    const row = $("resources").querySelector(`.row[data-name="${CSS.escape(r.name)}"]`);
    if (row) fillRow(row, r);
  }
  renderSummary();
  if (state.view === "graph") colourNode(r);
}

function removeRow(name) {
  state.resources.delete(name);
  state.order = state.order.filter((n) => n !== name);
  $("resources").querySelector(`.row[data-name="${CSS.escape(name)}"]`)?.remove();
  renderSummary();
}

function renderSummary() {
  let up = 0, bad = 0;
  for (const r of state.resources.values()) {
    if (r.phase === "ready" || r.phase === "succeeded") up++;
    if (r.phase === "failed" || r.phase === "crashing") bad++;
  }
  $("summary").textContent = `${state.resources.size} resources · ${up} up · ${bad} failing`;
}

function renderBanner() {
  // v1alpha1.ui_buttons placed on no resource, in the header.
  const nav = $("nav-buttons");
  nav.replaceChildren(...((state.session && state.session.buttons) || []).map(uiButton));
  const error = state.session && state.session.loopfile_error;
  $("banner").hidden = !error;
  $("banner").textContent = error ? `Loopfile error — the previous graph keeps running:\n${error}` : "";
}

async function act(name, verb) {
  const response = await fetch(`/api/resources/${encodeURIComponent(name)}/${verb}`, { method: "POST" });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    alert(body.error || `${verb} ${name}: ${response.status}`);
  }
}

// A v1alpha1.ui_button: one with inputs asks for them first (askInputs).
function uiButton(b) {
  const inputs = b.inputs || [];
  const asks = inputs.some((i) => i.type !== "hidden");
  const node = button(b.text, () => (asks ? askInputs(b) : press(b.name, {})));
  if (asks) node.textContent = `${b.text} …`;
  if (b.icon) node.title = `icon: ${b.icon}`;
  return node;
}

// A form for a button's inputs, in a dialog that state updates leave alone.
function askInputs(b) {
  const dialog = $("button-inputs");
  const form = el("form");
  form.append(el("strong", "", b.text));
  const fields = [];
  for (const input of b.inputs) {
    if (input.type === "hidden") continue;
    const label = el("label", "", input.label || input.name);
    let field;
    if (input.type === "bool") {
      field = el("input");
      field.type = "checkbox";
      field.checked = !!input.default;
    } else if (input.type === "choice") {
      field = el("select");
      for (const choice of input.choices) {
        const option = el("option", "", choice);
        option.value = choice;
        field.append(option);
      }
    } else {
      field = el("input");
      field.type = "text";
      field.value = input.default || "";
      field.placeholder = input.placeholder || "";
    }
    field.dataset.input = input.name;
    label.append(field);
    form.append(label);
    fields.push([input, field]);
  }
  const run = el("button", "", "Run");
  run.type = "submit";
  run.dataset.action = "run";
  const cancel = el("button", "", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => dialog.close());
  form.append(run, cancel);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = {};
    for (const [input, field] of fields) values[input.name] = input.type === "bool" ? field.checked : field.value;
    dialog.close();
    press(b.name, values);
  });
  dialog.replaceChildren(form);
  dialog.showModal();
}

async function press(name, inputs) {
  const response = await fetch(`/api/buttons/${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ inputs }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    alert(body.error || `button ${name}: ${response.status}`);
  }
}

function select(name) {
  state.selected = name;
  for (const row of $("resources").children) row.classList.toggle("selected", row.dataset.name === name);
  document.querySelectorAll("#graph .node").forEach((n) => n.classList.toggle("selected", n.dataset.name === name));
  $("log-title").textContent = name || "all resources";
  renderLogs(true);
}

// ---------- logs (only the visible lines are in the DOM) ----------

let logsDirty = false;

function shownLines() {
  const search = $("log-search").value;
  return state.lines.filter(
    (l) => (!state.selected || l.resource === state.selected) && (!search || l.text.includes(search)),
  );
}

function renderLogs(jump) {
  logsDirty = false;
  const box = $("logs");
  const lines = shownLines();
  $("log-spacer").style.height = `${lines.length * LINE_HEIGHT}px`;
  if (jump || $("log-follow").checked) box.scrollTop = box.scrollHeight;
  const first = Math.max(0, Math.floor(box.scrollTop / LINE_HEIGHT) - 5);
  const count = Math.ceil(box.clientHeight / LINE_HEIGHT) + 10;
  const slice = lines.slice(first, first + count);
  const holder = $("log-lines");
  holder.style.top = `${first * LINE_HEIGHT}px`;
  holder.innerHTML = "";
  const search = $("log-search").value;
  for (const line of slice) {
    const div = el("div", line.stream === "loop" ? "line loop" : "line");
    if (!state.selected) div.append(el("span", "res", `${line.resource} │ `));
    div.append(ansi(line.text, search));
    holder.append(div);
  }
}

function scheduleLogs() {
  if (logsDirty) return;
  logsDirty = true;
  requestAnimationFrame(() => renderLogs(false));
}

// ANSI SGR colours to spans; the search term highlighted.
const COLOURS = ["#6e7681", "#f85149", "#3fb950", "#d29922", "#58a6ff", "#bc8cff", "#39c5cf", "#d8dde6"];
function ansi(text, search) {
  const out = document.createDocumentFragment();
  let style = {};
  const parts = text.split(/\x1b\[([0-9;]*)m/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      for (const code of part.split(";").map(Number)) {
        if (code === 0 || Number.isNaN(code)) style = {};
        else if (code === 1) style.bold = true;
        else if (code >= 30 && code <= 37) style.color = COLOURS[code - 30];
        else if (code >= 90 && code <= 97) style.color = COLOURS[code - 90];
        else if (code === 39) delete style.color;
      }
      return;
    }
    if (!part) return;
    const span = document.createElement("span");
    if (style.color) span.style.color = style.color;
    if (style.bold) span.style.fontWeight = "bold";
    if (search && part.includes(search)) {
      part.split(search).forEach((piece, j) => {
        if (j > 0) span.append(el("mark", "", search));
        span.append(piece);
      });
    } else {
      span.textContent = part;
    }
    out.append(span);
  });
  return out;
}

// ---------- graph ----------

function renderGraph() {
  const svg = $("graph");
  svg.innerHTML = "";
  const depth = new Map();
  const depthOf = (name, seen = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    const r = state.resources.get(name);
    const ups = r ? [...r.resource_deps, ...r.data_deps].filter((u) => state.resources.has(u)) : [];
    const d = ups.length ? 1 + Math.max(...ups.map((u) => depthOf(u, seen))) : 0;
    depth.set(name, d);
    return d;
  };
  const columns = [];
  for (const name of state.order) {
    const d = depthOf(name);
    (columns[d] ||= []).push(name);
  }
  const pos = new Map();
  const W = 170, H = 34;
  columns.forEach((col, x) => col.forEach((name, y) => pos.set(name, [20 + x * W, 20 + y * H])));
  const ns = "http://www.w3.org/2000/svg";
  for (const [name, [x, y]] of pos) {
    const r = state.resources.get(name);
    for (const [kind, ups] of [["ordering", r.resource_deps], ["data", r.data_deps]]) {
      for (const up of ups) {
        const from = pos.get(up);
        if (!from) continue;
        const line = document.createElementNS(ns, "line");
        line.setAttribute("class", kind);
        line.setAttribute("x1", from[0] + 130);
        line.setAttribute("y1", from[1] + 11);
        line.setAttribute("x2", x);
        line.setAttribute("y2", y + 11);
        svg.append(line);
      }
    }
  }
  for (const [name, [x, y]] of pos) {
    const g = document.createElementNS(ns, "g");
    g.setAttribute("class", "node");
    g.dataset.name = name;
    g.setAttribute("transform", `translate(${x},${y})`);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("width", 130);
    rect.setAttribute("height", 22);
    rect.setAttribute("rx", 4);
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", 8);
    text.setAttribute("y", 15);
    text.textContent = name.length > 18 ? name.slice(0, 17) + "…" : name;
    g.append(rect, text);
    g.addEventListener("click", () => select(state.selected === name ? null : name));
    svg.append(g);
    colourNode(state.resources.get(name));
  }
  svg.setAttribute("width", 40 + columns.length * W);
  svg.setAttribute("height", 40 + Math.max(1, ...columns.map((c) => c.length)) * H);
}

function colourNode(r) {
  const g = document.querySelector(`#graph .node[data-name="${CSS.escape(r.name)}"]`);
  if (!g) return;
  g.querySelector("rect").setAttribute("class", phaseOf(r));
  g.classList.toggle("selected", state.selected === r.name);
}

function showView(view) {
  state.view = view;
  $("tab-resources").classList.toggle("active", view === "resources");
  $("tab-graph").classList.toggle("active", view === "graph");
  $("resources").classList.toggle("off", view !== "resources");
  $("graph").classList.toggle("off", view !== "graph");
  if (view === "graph") renderGraph();
}

// ---------- streams ----------

function applySnapshot(snapshot) {
  state.resources = new Map(snapshot.resources.map((r) => [r.name, r]));
  state.order = snapshot.resources.map((r) => r.name);
  state.session = snapshot.session;
  renderBanner();
  renderAllRows();
}

function connect() {
  // EventSource resumes with Last-Event-ID after a disconnect.
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => ($("connection").textContent = "live"));
  events.addEventListener("error", () => ($("connection").textContent = "reconnecting…"));
  events.addEventListener("resync", (e) => applySnapshot(JSON.parse(e.data)));
  events.addEventListener("resource", (e) => updateRow(JSON.parse(e.data).resource));
  events.addEventListener("removed", (e) => removeRow(JSON.parse(e.data).name));
  events.addEventListener("session", (e) => {
    state.session = JSON.parse(e.data).session;
    renderBanner();
  });
  const logs = new EventSource("/api/logs?follow=1&limit=20000");
  logs.addEventListener("line", (e) => {
    state.lines.push(JSON.parse(e.data));
    if (state.lines.length > MAX_LINES) state.lines.splice(0, state.lines.length - MAX_LINES);
    scheduleLogs();
  });
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

function button(label, onClick) {
  const b = el("button", "", label);
  b.dataset.action = label;
  b.addEventListener("click", onClick);
  return b;
}

$("filter-text").addEventListener("input", renderAllRows);
$("filter-failing").addEventListener("change", renderAllRows);
$("log-search").addEventListener("input", () => renderLogs(false));
$("logs").addEventListener("scroll", () => {
  const box = $("logs");
  $("log-follow").checked = box.scrollTop + box.clientHeight >= box.scrollHeight - LINE_HEIGHT;
  scheduleLogs();
});
$("tab-resources").addEventListener("click", () => showView("resources"));
$("tab-graph").addEventListener("click", () => showView("graph"));
connect();
