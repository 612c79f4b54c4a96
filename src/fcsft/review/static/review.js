// The review page: keyboard-first accept / reject over the sampled trajectories.
// Every piece of record text reaches the page through textContent (see `el`), never innerHTML:
// trajectories are full of <tags> and must show as written, not run.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const state = { items: [], index: 0, rejecting: false, request: 0 };
const $ = (selector) => document.querySelector(selector);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "X-Review-Token": token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = await response.text();
    try { detail = JSON.stringify(JSON.parse(detail).detail); } catch (_) { /* plain text */ }
    throw new Error(`${method} ${path} failed (${response.status}): ${detail}`);
  }
  return response.json();
}

function itemPath(id, action) {
  return `/api/items/${encodeURIComponent(id)}/${action}`;
}

function say(message, kind) {
  const status = $("#status");
  status.textContent = message;
  status.className = kind || "";
}

// ------------------------------------------------------------------ progress and list

function renderProgress(progress) {
  const decided = state.items.filter((item) => item.decision);
  const rejected = decided.filter((item) => item.decision === "rejected").length;
  $("#progress").textContent =
    `${progress.reviewed} / ${progress.total} reviewed` +
    (decided.length ? ` (${decided.length - rejected} accepted, ${rejected} rejected)` : "");
}

function mark(decision) {
  return decision === "accepted" ? "✓" : decision === "rejected" ? "✗" : "·";
}

function renderList() {
  const list = $("#list ol");
  list.replaceChildren(...state.items.map((item, index) => el("li", {},
    el("button", {
      type: "button",
      class: "entry" + (index === state.index ? " current" : ""),
      "data-id": item.id,
      "data-decision": item.decision || "pending",
      "aria-current": index === state.index ? "true" : null,
      title: item.reason || null,
    },
    el("span", { class: `mark ${item.decision || "pending"}` }, mark(item.decision)),
    el("span", { class: "pos" }, item.position),
    el("span", { class: "id" }, item.id),
    el("span", { class: `auto ${item.auto}` }, item.auto === "accepted" ? "auto ✓" : "auto ✗")),
  )));
  list.querySelectorAll("button.entry").forEach((button, index) => {
    button.addEventListener("click", () => go(index));
  });
  const current = list.querySelector(".current");
  if (current) current.scrollIntoView({ block: "nearest" });
}

// ------------------------------------------------------------------ one trajectory

function section(title, ...content) {
  return el("section", {}, el("h3", {}, title), ...content);
}

function prose(text, cls) {
  return el("div", { class: `prose ${cls || ""}` }, text);
}

function verdictList(verdicts) {
  return el("ul", { class: "verdicts" }, verdicts.map((verdict) => el("li",
    { class: verdict.passed ? "passed" : "failed" },
    el("code", {}, verdict.rule), " ", verdict.reason || (verdict.passed ? "passed" : "failed"),
  )));
}

function renderVerdicts(view) {
  const item = view.item;
  const summary = item.auto === "accepted"
    ? el("p", {}, el("span", { class: "badge accepted" }, "accepted"),
      " by the automatic tiers: every validate rule passed.")
    : el("p", {}, el("span", { class: "badge rejected" }, "rejected"),
      ` by the automatic tiers, for ${view.reasons.length} reason(s):`);
  const earlier = view.trajectory && view.trajectory.meta && view.trajectory.meta.verdicts;
  return section("Automatic verdict", summary,
    view.reasons.length ? verdictList(view.reasons) : null,
    earlier && earlier.length ? el("p", { class: "muted" }, "Verdicts the record carries:") : null,
    earlier && earlier.length ? verdictList(earlier) : null);
}

function renderDecision(item) {
  if (!item.decision) return el("p", { class: "decision pending" }, "Not reviewed yet.");
  return el("p", { class: `decision ${item.decision}` },
    el("span", { class: `badge ${item.decision}` }, `you: ${item.decision}`),
    item.reason ? ` — ${item.reason}` : "");
}

function preview(text) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 90 ? flat.slice(0, 90) + "…" : flat;
}

function renderStep(step, names) {
  if (step.type === "think") {
    return el("div", { class: "step think" }, el("div", { class: "label" }, "Thinking"),
      prose(step.text));
  }
  if (step.type === "say") {
    return el("div", { class: "step say" }, el("div", { class: "label" }, "Shown beside the calls"),
      prose(step.text));
  }
  if (step.type === "tool_call") {
    return el("div", { class: "step call" },
      el("div", { class: "label" }, "Call ", el("code", {}, step.name),
        el("span", { class: "muted" }, ` ${step.id}`)),
      el("pre", { class: "arguments" }, JSON.stringify(step.arguments || {}, null, 2)));
  }
  if (step.type === "observation") {
    const title = `${step.error ? "Error from" : "Observation from"} ${names[step.call_id] || "?"}` +
      ` (${step.call_id}, ${step.content.length} chars): `;
    return el("details", { class: "step observation" + (step.error ? " error" : "") },
      el("summary", {}, el("span", { class: "label" }, title),
        el("span", { class: "preview" }, preview(step.content))),
      el("pre", { class: "content" }, step.content));
  }
  if (step.type === "final_answer") {
    return el("div", { class: "step final" }, el("div", { class: "label" }, "Final answer"),
      prose(step.text));
  }
  if (step.type === "user") {
    return el("div", { class: "step user" }, el("div", { class: "label" }, "User follow-up"),
      prose(step.text, "question"));
  }
  return el("pre", {}, JSON.stringify(step, null, 2));
}

function renderTrajectory(trajectory) {
  const names = {};
  for (const step of trajectory.steps) if (step.type === "tool_call") names[step.id] = step.name;
  const tools = trajectory.tools || [];
  return [
    section("Question", prose(trajectory.question, "question")),
    trajectory.system ? el("details", { class: "system" },
      el("summary", {}, "System prompt"), prose(trajectory.system)) : null,
    section(`Steps (${trajectory.steps.length})`,
      trajectory.steps.length ? trajectory.steps.map((step) => renderStep(step, names))
        : el("p", { class: "muted" }, "No steps.")),
    el("details", { class: "tools" }, el("summary", {}, `${tools.length} tool(s) offered`),
      tools.map((tool) => el("div", { class: "tool" }, el("code", {}, tool.name), " ",
        tool.description || "", el("pre", {}, JSON.stringify(tool.parameters || {}, null, 2))))),
  ];
}

function renderItem(view) {
  const item = view.item;
  const stratum = item.stratum;
  const body = view.trajectory ? renderTrajectory(view.trajectory)
    : [section("Unreadable record", el("p", { class: "failed" }, view.parse_error),
      el("pre", {}, JSON.stringify(view.record, null, 2)))];
  $("#item").replaceChildren(
    el("div", { class: "title" },
      el("h2", {}, `#${item.position} `, el("span", { class: "id" }, item.id)),
      el("span", { class: "chips" },
        ["tool", "how", "source"].map((key) => el("span", { class: "chip" },
          `${key}: `, el("b", {}, stratum[key]))))),
    renderDecision(item),
    renderVerdicts(view),
    ...body.filter((node) => node),  // optional parts come back as null when absent
  );
}

// ------------------------------------------------------------------ actions

async function go(index) {
  if (!state.items.length) return;
  state.index = Math.max(0, Math.min(state.items.length - 1, index));
  const item = state.items[state.index];
  history.replaceState(null, "", "#" + encodeURIComponent(item.id));
  renderList();
  const request = ++state.request;
  try {
    const view = await api("GET", itemPath(item.id, "view"));
    if (request !== state.request) return;  // the reviewer has moved on meanwhile
    renderItem(view);
    $("#item").scrollTop = 0;
    window.scrollTo(0, 0);
  } catch (error) {
    say(error.message, "error");
  }
}

function updated(response) {
  const index = state.items.findIndex((item) => item.id === response.item.id);
  if (index >= 0) state.items[index] = response.item;
  renderProgress(response.progress);
}

async function decide(decision, reason) {
  const item = state.items[state.index];
  if (!item) return;
  try {
    updated(await api("POST", itemPath(item.id, "decision"), { decision, reason: reason || "" }));
    say(`${item.id}: ${decision}` + (reason ? ` (${reason})` : ""), "ok");
    const last = state.index === state.items.length - 1;
    await go(last ? state.index : state.index + 1);
  } catch (error) {
    say(error.message, "error");
  }
}

async function undo() {
  const item = state.items[state.index];
  if (!item || !item.decision) return;
  try {
    updated(await api("DELETE", itemPath(item.id, "decision")));
    say(`${item.id}: decision removed`, "ok");
    await go(state.index);
  } catch (error) {
    say(error.message, "error");
  }
}

function openReject() {
  if (!state.items.length) return;
  state.rejecting = true;
  $("#reject").hidden = false;
  const input = $("#reason");
  input.value = state.items[state.index].reason || "";
  input.focus();
}

function closeReject() {
  state.rejecting = false;
  $("#reject").hidden = true;
  $("#reason").blur();
}

function toggleObservations() {
  const folded = [...document.querySelectorAll("#item details.observation")];
  const open = folded.some((details) => !details.open);
  folded.forEach((details) => { details.open = open; });
}

$("#reason").addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    const reason = event.target.value.trim();
    if (!reason) { say("A rejection needs a reason.", "error"); return; }
    closeReject();
    decide("rejected", reason);
  } else if (event.key === "Escape") {
    event.preventDefault();
    closeReject();
  }
});

const KEYS = {
  a: () => decide("accepted"),
  r: openReject,
  u: undo,
  o: toggleObservations,
  j: () => go(state.index + 1),
  k: () => go(state.index - 1),
  ArrowDown: () => go(state.index + 1),
  ArrowRight: () => go(state.index + 1),
  ArrowUp: () => go(state.index - 1),
  ArrowLeft: () => go(state.index - 1),
};

document.addEventListener("keydown", (event) => {
  if (state.rejecting || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement) return;
  const action = KEYS[event.key];
  if (!action) return;
  event.preventDefault();  // also keeps the `r` from being typed into the reason box
  action();
});

window.addEventListener("hashchange", () => {  // a pasted or edited #id link
  const index = state.items.findIndex((item) => item.id === decodeURIComponent(location.hash.slice(1)));
  if (index >= 0 && index !== state.index) go(index);
});

async function start() {
  try {
    const data = await api("GET", "/api/items");
    state.items = data.items;
    renderProgress(data.progress);
    if (!state.items.length) {
      $("#item").replaceChildren(el("p", {}, "The sample is empty."));
      return;
    }
    const wanted = decodeURIComponent(location.hash.slice(1));
    let index = state.items.findIndex((item) => item.id === wanted);
    if (index < 0) index = state.items.findIndex((item) => !item.decision);
    await go(index < 0 ? 0 : index);
  } catch (error) {
    say(error.message, "error");
  }
}

start();
