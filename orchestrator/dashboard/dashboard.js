// pgherald dashboard: polls /api/clusters and /api/clusters/<c> every second and renders them
// into the DOM (no framework, no CDN). Heartbeat ages are recomputed locally every 200 ms from
// the observation znode's mtime and the server's clock, so they keep moving between refreshes.
// Test hooks: body[data-updates] counts successful refreshes; #master-<c>[data-master] names the
// published master; tr[data-node][data-role] per node; td.age[data-age-ms].
"use strict";

const state = { clusters: {}, offsetMs: 0, updates: 0 };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fmtAge(ms) {
  if (ms === null || ms === undefined || ms < 0) return "-";
  if (ms < 1000) return ms + "ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s";
  const s = Math.floor(ms / 1000);
  return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
}

function fmtBytes(b) {
  if (b === null || b === undefined) return "-";
  if (b < 1024) return b + " B";
  if (b < 1048576) return (b / 1024).toFixed(1) + " KiB";
  return (b / 1048576).toFixed(1) + " MiB";
}

function fmtTime(ms) {
  if (!ms) return "-";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function serverNow() { return Date.now() + state.offsetMs; }

function renderMaster(c) {
  const m = c.master || {};
  const verified = !!m.verified;
  const box = el("div", { class: "master" },
    el("span", { class: "muted" }, "master"),
    el("span", { class: "node", id: "master-" + c.name, "data-master": m.state === "ok" ? m.node : "",
                 "data-epoch": m.epoch, "data-verified": verified },
       m.state === "ok" ? m.node : "none yet"),
    m.state === "ok" ? el("span", {}, m.host + ":" + m.port + " · timeline " + m.timeline + " · epoch " + m.epoch) : null,
    el("span", { class: "badge " + (verified ? "ok" : "bad") },
       verified ? "verified · " + m.vouchers.length + " voucher" + (m.vouchers.length === 1 ? "" : "s")
                : (m.unbound_vouchers && m.unbound_vouchers.length ? "unverified: no bound voucher" : "unverified: no voucher")),
    m.state === "ok" && m.backed === false ? el("span", { class: "badge bad" }, "not backed by history") : null,
    m.vouchers && m.vouchers.length ? el("span", { class: "muted" }, "vouched by " + m.vouchers.join(", ")) : null,
    c.paused ? el("span", { class: "badge warn", id: "paused-" + c.name },
                  "paused" + (c.control && c.control.reason ? ": " + c.control.reason : "")) : null);
  return box;
}

// The cluster's switchover (the API's "switchover" object): the active one with its phase and
// since when; an expired one; the last finished one, briefly. Test hook: #switchover-<c>
// [data-switchover-id][data-phase][data-active].
function renderSwitchover(c) {
  const sw = c.switchover;
  if (!sw || !sw.id) return null;
  const terminal = ["done", "aborted", "failed"].includes(sw.phase);
  const what = sw.id + " · " + sw.from + " → " + sw.to;
  let text, cls;
  if (sw.active) {
    text = "switchover " + what + " · phase " + sw.phase + " since " + fmtTime(sw.phase_at);
    cls = "warn";
  } else if (!terminal) {
    text = "switchover " + what + " · phase " + sw.phase + " expired at " + fmtTime(sw.deadline_at);
    cls = "bad";
  } else {
    text = "last switchover " + what + " · " + sw.phase + " at " + fmtTime(sw.phase_at) +
           (sw.error ? ": " + sw.error : "");
    cls = sw.phase === "done" ? "ok" : "bad";
  }
  return el("div", { class: "switchover" },
    el("span", { class: "badge " + cls, id: "switchover-" + c.name, "data-switchover-id": sw.id,
                 "data-phase": sw.phase, "data-active": !!sw.active }, text));
}

function renderNodes(c) {
  const head = el("tr", {}, ...["node", "role", "host", "TL", "LSN", "lag", "heartbeat", "repmgrd", "poller", "fencing"]
    .map((h) => el("th", {}, h)));
  const rows = c.nodes.map((n) => el("tr", { class: "role-" + n.role, "data-node": n.node, "data-role": n.role },
    el("td", {}, n.node + (n.is_master ? " ★" : "")),
    el("td", { class: "role" }, n.role),
    el("td", {}, n.host ? n.host + ":" + n.port : "-"),
    el("td", { class: "num" }, n.timeline || "-"),
    el("td", {}, n.lsn || "-"),
    el("td", { class: "num lag", "data-lag-bytes": n.lag_bytes }, fmtBytes(n.lag_bytes)),
    el("td", { class: "num age", "data-mtime": n.mtime || 0, "data-age-ms": n.heartbeat_age_ms }, fmtAge(n.heartbeat_age_ms)),
    el("td", {}, n.repmgrd_running === undefined ? "-" : n.repmgrd_running ? "running" : "not running"),
    el("td", {}, n.poller),
    el("td", {}, n.fencing || "-")));
  return el("table", { class: "nodes" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

function renderTimeline(c) {
  const hist = c.history || [];
  const wrap = el("div", {});
  if (!hist.length) {
    wrap.append(el("p", { class: "muted" }, "no decisions recorded"));
    return wrap;
  }
  const t0 = hist[0].decided_at, t1 = Math.max(serverNow(), hist[hist.length - 1].decided_at + 1);
  const bar = el("div", { class: "timeline" });
  for (const h of hist) {
    const x = 2 + 96 * (h.decided_at - t0) / Math.max(1, t1 - t0);
    bar.append(el("span", { class: "dot " + h.action, title: fmtTime(h.decided_at) + " " + h.action + " " + (h.chosen || "") }));
    bar.lastChild.style.left = x + "%";
    bar.append(el("span", { class: "label" }, h.chosen || h.action));
    bar.lastChild.style.left = x + "%";
  }
  wrap.append(bar);
  const list = el("ol", { class: "decisions" });
  for (const h of hist.slice().reverse()) {
    const prev = h.previous && h.previous.state === "ok" ? " (was " + h.previous.node + ")" : "";
    const li = el("li", { "data-epoch": h.epoch },
      el("span", { class: "when" }, fmtTime(h.decided_at)),
      el("b", {}, h.action + " " + (h.chosen || "")), prev + " · epoch " + h.epoch + " · by " + (h.decided_by || "?"));
    for (const r of h.reasons || []) {
      li.append(el("span", { class: "reason" }, r.code + (r.node ? " [" + r.node + "]" : "") + ": " + r.text));
    }
    if (h.data_loss) {
      li.append(el("span", { class: "reason" }, "data loss estimate: " + h.data_loss.gap_bytes + " bytes (" +
        h.data_loss.old_master + " → " + h.data_loss.new_master + ")"));
    }
    list.append(li);
  }
  wrap.append(list);
  return wrap;
}

function renderCluster(c) {
  const card = el("section", { class: "card", id: "cluster-" + c.name, "data-cluster": c.name },
    el("h2", {}, "cluster " + c.name + " ",
       el("span", { class: "badge " + (c.healthy ? "ok" : "bad") }, c.healthy ? "healthy" : "attention")),
    renderMaster(c),
    renderSwitchover(c),
    el("h3", {}, "nodes"),
    renderNodes(c));
  if (c.problems && c.problems.length) {
    card.append(el("ul", { class: "problems" }, ...c.problems.map((p) => el("li", {}, p))));
  }
  card.append(el("h3", {}, "decisions"), renderTimeline(c));
  return card;
}

function render(summary) {
  const o = summary.orchestrator;
  document.getElementById("orchestrator").textContent =
    "orchestrator " + o.id + " · " + o.role + " · ZooKeeper " + o.zookeeper +
    " · lease " + (o.lease_remaining_ms / 1000).toFixed(1) + "s";
  const main = document.getElementById("clusters");
  const cards = summary.clusters.map((s) => state.clusters[s.name]).filter(Boolean).map(renderCluster);
  main.replaceChildren(...cards);
  tickAges();
}

function tickAges() {
  const now = serverNow();
  for (const td of document.querySelectorAll("td.age")) {
    const mtime = Number(td.getAttribute("data-mtime"));
    if (!mtime) continue;
    const age = Math.max(0, now - mtime);
    td.setAttribute("data-age-ms", age);
    td.textContent = fmtAge(age);
    td.classList.toggle("old", age > 10000);
  }
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

async function refresh() {
  try {
    const summary = await getJson("/api/clusters");
    state.offsetMs = summary.orchestrator.now - Date.now();
    const details = await Promise.all(summary.clusters.map((c) => getJson("/api/clusters/" + encodeURIComponent(c.name))));
    state.clusters = {};
    for (const d of details) state.clusters[d.name] = d;
    render(summary);
    state.updates += 1;
    document.body.setAttribute("data-updates", state.updates);
    document.body.setAttribute("data-last-update", Date.now());
    document.getElementById("connection").hidden = true;
  } catch (e) {
    document.getElementById("connection").hidden = false;
    document.body.setAttribute("data-last-error", String(e));
  } finally {
    setTimeout(refresh, 1000);
  }
}

setInterval(tickAges, 200);
refresh();
