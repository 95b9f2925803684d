// pingap admin dashboard: reads the JSON API (/api/status, /api/config,
// /api/upstreams) every few seconds and renders it; the editor loads the
// running config as TOML and PUTs it back. No framework, no build step.
// Every value from the config is inserted as text, never as HTML.
"use strict";

const REFRESH_MS = 3000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function list(a) { return (a && a.length) ? a.join(", ") : ""; }

function sortedEntries(obj) {
  return Object.entries(obj || {}).sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + r.statusText);
  return r.json();
}

function fillTable(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(cells => el("tr", null, ...cells.map(c =>
    c instanceof Node ? el("td", null, c) : el("td", typeof c === "number" ? { class: "num" } : null, c)))));
}

function renderConfig(cfg) {
  fillTable("servers", sortedEntries(cfg.servers).map(([name, s]) => [
    name, s.addr, (s.tls_cert || (s.certificates && s.certificates.length)) ? "yes" : "",
    list(s.locations), list(s.plugins)]));
  fillTable("locations", sortedEntries(cfg.locations).map(([name, l]) => [
    name, l.host || "*", l.path, l.path_type, l.priority, l.rewrite || "", l.upstream || "", list(l.plugins)]));
  fillTable("plugins", sortedEntries(cfg.plugins).map(([name, p]) => [name, p.category]));
}

function renderUpstreams(ups) {
  const box = document.getElementById("upstreams");
  if (!ups.length) { box.replaceChildren(el("p", { class: "muted" }, "no upstreams")); return; }
  box.replaceChildren(...ups.map(u => {
    const rows = u.addrs.map(a => el("tr", null,
      el("td", null, a.addr),
      el("td", null, el("span", { class: a.healthy ? "up" : "down" }, a.healthy ? "up" : "down")),
      el("td", { class: "num" }, a.weight),
      el("td", { class: "num" }, a.inflight),
      el("td", { class: "num" }, a.requests),
      el("td", { class: "num" }, a.failures)));
    return el("div", { class: "upstream" },
      el("h3", null, u.name,
        el("small", null, u.algorithm + " · " + u.healthy + "/" + u.addrs.length + " healthy" +
          (u.health_check ? " · check " + u.health_check : ""))),
      el("table", null,
        el("thead", null, el("tr", null, ...["addr", "health", "weight", "in-flight", "requests", "failures"].map(h => el("th", null, h)))),
        el("tbody", null, ...rows)));
  }));
}

let status = null;
// etag is the ETag of the config the editor was loaded from; Apply sends it
// in If-Match, so a change made meanwhile (another operator, SIGHUP) is not
// overwritten silently (412).
let etag = "";

async function refresh() {
  const state = document.getElementById("refresh-state");
  try {
    const [st, cfg, ups] = await Promise.all([getJSON("api/status"), getJSON("api/config"), getJSON("api/upstreams")]);
    status = st;
    document.getElementById("name").textContent = st.name;
    document.getElementById("meta").textContent = "source " + st.source + (st.writable ? "" : " (read-only)") +
      " · up " + formatUptime(st.uptime_seconds);
    renderConfig(cfg);
    renderUpstreams(ups.upstreams || []);
    state.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshing every " + REFRESH_MS / 1000 + "s.";
    document.getElementById("apply").disabled = !st.writable;
  } catch (e) {
    state.textContent = "Refresh failed: " + e.message;
  }
}

function formatUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m";
}

function showResult(ok, msg, errors) {
  const box = document.getElementById("result");
  box.className = ok ? "ok" : "bad";
  box.replaceChildren(msg);
  errors = (errors || []).filter(Boolean);
  if (errors.length) box.append(el("ul", null, ...errors.map(e => el("li", null, e))));
}

async function loadTOML() {
  const r = await fetch("api/config?format=toml", { cache: "no-store" });
  const text = await r.text();
  if (!r.ok) { showResult(false, "Loading the config failed: " + r.status); return; }
  document.getElementById("toml").value = text;
  etag = r.headers.get("ETag") || "";
  document.getElementById("result").className = "hidden";
}

async function send(method, url, body, okMsg) {
  const buttons = document.querySelectorAll("#editor button");
  buttons.forEach(b => b.disabled = true);
  const headers = {};
  if (method === "PUT") {
    headers["Content-Type"] = "application/toml";
    if (etag) headers["If-Match"] = etag;
  }
  try {
    const r = await fetch(url, { method, body, headers });
    if (r.ok && r.headers.get("ETag")) etag = r.headers.get("ETag");
    let j = {};
    try { j = await r.json(); } catch (_) { /* not JSON */ }
    if (r.ok) showResult(true, okMsg);
    else if (j.applied) showResult(false, "Applied, but not saved to the source:", j.errors);
    else showResult(false, r.status + " " + r.statusText + ": nothing changed.", j.errors || [j.error]);
    refresh();
    return r.ok;
  } catch (e) {
    showResult(false, "Request failed: " + e.message);
    return false;
  } finally {
    buttons.forEach(b => b.disabled = false);
    if (status && !status.writable) document.getElementById("apply").disabled = true;
  }
}

function showTab(name) {
  document.querySelectorAll(".tab").forEach(t => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".panel").forEach(p => p.classList.toggle("hidden", p.id !== name));
  if (name === "editor" && !document.getElementById("toml").value) loadTOML();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".tab").forEach(t => t.addEventListener("click", () => showTab(t.dataset.tab)));
  document.getElementById("load").addEventListener("click", loadTOML);
  document.getElementById("apply").addEventListener("click", () =>
    send("PUT", "api/config", document.getElementById("toml").value, "Applied and saved."));
  document.getElementById("reload").addEventListener("click", async () => {
    if (await send("POST", "api/reload", null, "Reloaded from the source.")) loadTOML().then(() =>
      showResult(true, "Reloaded from the source; the editor shows the running config."));
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
