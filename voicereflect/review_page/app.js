// The review page: sessions, transcript with flags/tags/recordings, search, and the prep brief.
// Plain DOM (textContent only, never innerHTML with journal text); every API call carries the token.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const state = { sessionId: null, session: null, searchTimer: null };

// -- talking to the server -------------------------------------------------------

async function api(path, options = {}) {
  const headers = { "X-Review-Token": TOKEN };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: "no-store",
    credentials: "omit",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `The server answered ${response.status}.`);
  return data;
}

function withToken(path) {
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}`;
}

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// -- small helpers -----------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function when(iso, withTime = true) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  const options = { weekday: "short", day: "numeric", month: "short", year: "numeric" };
  if (withTime) Object.assign(options, { hour: "2-digit", minute: "2-digit" });
  return date.toLocaleString(undefined, options);
}

function clock(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function timeEl(iso, text) {
  return el("time", { datetime: iso || "", text });
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function marked(text, words) {
  // The line, with each search word wrapped in <mark> (built from text nodes).
  const p = el("p", { class: "line" });
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).filter(Boolean);
  if (!escaped.length) { p.textContent = text; return p; }
  const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
  text.split(pattern).forEach((part, i) => p.append(i % 2 ? el("mark", { text: part }) : part));
  return p;
}

// -- views -------------------------------------------------------------------------

function showView(name) {
  for (const view of ["sessions", "search", "brief"]) $(`view-${view}`).hidden = view !== name;
  document.querySelectorAll("nav a").forEach((link) => {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
}

async function route() {
  const hash = location.hash || "#/";
  if (!hash.startsWith("#/")) return; // e.g. the skip link
  const [view, id, turn] = hash.slice(2).split("/").map(decodeURIComponent);
  if (view === "search") { showView("search"); $("search-input").focus(); return; }
  if (view === "brief") { showView("brief"); loadBrief(); return; }
  showView("sessions");
  if (view === "session" && id) await openSession(id, turn === undefined ? null : Number(turn));
}

// -- sessions ------------------------------------------------------------------------

async function loadSessions() {
  const rows = await api("/api/sessions");
  const list = $("sessions");
  list.replaceChildren(...rows.map(sessionRow));
  $("list-empty").hidden = rows.length > 0;
  markCurrent();
}

function sessionRow(row) {
  const details = [row.guide, plural(row.turns, "turn")];
  if (row.flagged) details.push(`${row.flagged} flagged`);
  const link = el("a", { href: `#/session/${encodeURIComponent(row.id)}`, "data-id": row.id },
    el("span", { class: "when" }, timeEl(row.started_at, when(row.started_at))),
    el("span", { class: "first-words", text: row.first_words || "(no words yet)" }),
    el("span", { class: "details muted", text: details.join(" · ") }),
    row.tags.length ? el("span", { class: "tags" }, ...row.tags.map((t) => el("span", { class: "tag", text: t }))) : null);
  if (row.flagged) link.prepend(el("span", { class: "flag-count", text: `⚑ ${row.flagged}`, "aria-hidden": "true" }));
  return el("li", {}, link);
}

function markCurrent() {
  document.querySelectorAll("#sessions a").forEach((link) => {
    if (link.dataset.id === state.sessionId) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  });
}

async function openSession(id, turn) {
  try {
    if (state.sessionId !== id || !state.session) {
      state.session = await api(`/api/sessions/${encodeURIComponent(id)}`);
      state.sessionId = id;
      renderSession();
    }
    markCurrent();
    const target = turn === null ? $("transcript-title") : $(`turn-${turn}`);
    if (target) { target.scrollIntoView({ block: "center" }); target.focus({ preventScroll: true }); }
  } catch (error) {
    say(error.message, true);
  }
}

function renderSession() {
  const s = state.session;
  $("transcript-title").textContent = when(s.started_at);
  $("transcript-hint").hidden = true;
  $("transcript-body").hidden = false;
  const meta = [`Guide: ${s.guide}`, plural(s.turns.length, "turn"), s.status];
  if (s.notes.rating) meta.push(`felt ${s.notes.rating}/10`);
  $("session-meta").textContent = meta.join(" · ");
  const recap = $("recap");
  recap.hidden = !s.notes.recap;
  recap.replaceChildren(el("h3", { text: "Recap" }), el("p", { text: s.notes.recap || "" }));
  $("tag-input").value = s.notes.tags.join(", ");
  $("turns").replaceChildren(...s.turns.map(turnItem));
}

function turnItem(turn, index) {
  const mine = turn.role === "user";
  const flagged = state.session.notes.flagged.includes(index);
  const item = el("li", { id: `turn-${index}`, tabindex: "-1", class: `turn ${mine ? "mine" : "guide"}${flagged ? " flagged" : ""}` },
    el("div", { class: "turn-head" },
      el("span", { class: "who", text: mine ? "You" : "Guide" }),
      timeEl(turn.started_at, clock(turn.started_at))),
    el("p", { class: "text", text: turn.text }));
  if (turn.events.some((e) => e.type === "safety")) {
    item.append(el("p", { class: "small muted", text: "Crisis resources were shown here." }));
  }
  if (!mine) return item;
  const actions = el("div", { class: "actions" });
  // A toggle keeps one name; aria-pressed (and the filled style) carries the state.
  const flag = el("button", { type: "button", class: "flag", "aria-pressed": String(flagged) },
    el("span", { class: "icon", "aria-hidden": "true" }), "Flag for therapy");
  flag.addEventListener("click", () => toggleFlag(index, flag));
  actions.append(flag);
  if (turn.has_audio) {
    actions.append(el("audio", { controls: true, preload: "metadata", class: "recording",
      src: withToken(`/api/audio/${encodeURIComponent(state.sessionId)}/${index}`),
      "aria-label": `Recording of what you said at ${clock(turn.started_at)}` }));
  }
  item.append(actions);
  return item;
}

async function toggleFlag(index, button) {
  const want = button.getAttribute("aria-pressed") !== "true";
  button.disabled = true;
  try {
    const notes = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}/flags`,
      { method: "POST", body: { turn: index, flagged: want } });
    state.session.notes = notes;
    button.setAttribute("aria-pressed", String(want));
    $(`turn-${index}`).classList.toggle("flagged", want);
    say(want ? "Flagged. It will be in your prep brief." : "Flag removed.");
    loadSessions();
  } catch (error) {
    say(error.message, true);
  } finally {
    button.disabled = false;
    button.focus();
  }
}

async function saveTags(event) {
  event.preventDefault();
  const tags = $("tag-input").value.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    const notes = await api(`/api/sessions/${encodeURIComponent(state.sessionId)}/tags`, { method: "POST", body: { tags } });
    state.session.notes = notes;
    $("tag-input").value = notes.tags.join(", ");
    say(notes.tags.length ? `Tags saved: ${notes.tags.join(", ")}.` : "Tags cleared.");
    loadSessions();
  } catch (error) {
    say(error.message, true);
  }
}

// -- search ------------------------------------------------------------------------------

async function runSearch() {
  const query = $("search-input").value.trim();
  const list = $("search-results");
  if (!query) { list.replaceChildren(); $("search-summary").textContent = ""; return; }
  try {
    const found = await api(`/api/search?q=${encodeURIComponent(query)}`);
    if (query !== $("search-input").value.trim()) return; // a newer search is on its way
    $("search-summary").textContent = found.results.length
      ? `${plural(found.results.length, "line")}${found.more ? " (the first ones)" : ""}.`
      : "Nothing found. Try fewer or shorter words.";
    list.replaceChildren(...found.results.map((hit) => el("li", {},
      el("a", { href: `#/session/${encodeURIComponent(hit.session_id)}/${hit.turn}` },
        timeEl(hit.at, when(hit.at)), ` · ${hit.role === "user" ? "You" : "Guide"}`),
      marked(hit.line, found.words))));
  } catch (error) {
    say(error.message, true);
  }
}

// -- prep brief --------------------------------------------------------------------------

function loadBrief() {
  const url = withToken(`/api/brief?since=${encodeURIComponent($("brief-since").value)}`);
  $("brief-open").href = url;
  if ($("brief-frame").getAttribute("src") !== url) $("brief-frame").src = url;
}

// -- start -------------------------------------------------------------------------------

function start() {
  $("tag-form").addEventListener("submit", saveTags);
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  $("search-input").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(runSearch, 250);
  });
  $("brief-since").addEventListener("change", loadBrief);
  document.querySelector(".skip").addEventListener("click", (event) => { event.preventDefault(); $("main").focus(); });
  window.addEventListener("hashchange", route);
  loadSessions().then(route).catch((error) => say(error.message, true));
}

start();
