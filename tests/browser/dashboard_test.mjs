// Drives headless Chromium through the DevTools protocol (node's built-in WebSocket: run with
// `node --experimental-websocket` on node 20) against a running orchestrator's dashboard:
//   1. the page shows a verified master and N nodes with live heartbeat ages;
//   2. it runs --kill (a shell command that kills the primary);
//   3. the page shows a different verified master without a reload (a marker set in the page
//      before the kill survives, and the refresh counter kept growing).
// Screenshots go to --screenshots DIR (before.png, after.png). Exit 0 on success, 1 on failure
// with the last page state on stderr.
//
// node --experimental-websocket dashboard_test.mjs --chromium /usr/bin/chromium \
//   --url http://127.0.0.1:30001/ --debug-port 30002 --kill "labctl pg-kill 1 --dir D" \
//   --screenshots DIR [--nodes 3] [--timeout-s 90]
import { spawn, execSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function args() {
  const out = { nodes: "3", "timeout-s": "90", chromium: "/usr/bin/chromium" };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    if (!a[i].startsWith("--") || a[i + 1] === undefined) throw new Error("bad argument " + a[i]);
    out[a[i].slice(2)] = a[i + 1];
  }
  for (const k of ["url", "debug-port", "kill", "screenshots"]) {
    if (!out[k]) throw new Error("--" + k + " is required");
  }
  return out;
}

const opt = args();
const timeoutMs = Number(opt["timeout-s"]) * 1000;
const expectedNodes = Number(opt.nodes);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...m) => console.log(new Date().toISOString(), ...m);

if (typeof WebSocket !== "function") {
  console.error("no global WebSocket: run node with --experimental-websocket (node 20) or node >= 22");
  process.exit(1);
}

const profile = mkdtempSync(join(tmpdir(), "pgherald-chromium-"));
const chromium = spawn(opt.chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage", "--window-size=1280,900",
  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=" + opt["debug-port"],
  "--user-data-dir=" + profile, "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });
let chromiumErr = "";
chromium.stderr.on("data", (d) => { chromiumErr += d.toString(); });

let exitCode = 1;
let lastState = null;
try {
  // The browser-level DevTools endpoint, printed by Chromium on stderr.
  const deadline = Date.now() + 20000;
  let wsUrl = null;
  while (!wsUrl && Date.now() < deadline) {
    const m = chromiumErr.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) wsUrl = m[1];
    else await sleep(50);
  }
  if (!wsUrl) throw new Error("Chromium did not start its DevTools endpoint:\n" + chromiumErr);
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  let nextId = 1;
  const pending = new Map();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(JSON.stringify(msg.error))); else resolve(msg.result);
    }
  };
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
  });

  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  const page = (method, params) => send(method, params, sessionId);
  await page("Page.enable");
  await page("Emulation.setDeviceMetricsOverride", { width: 1280, height: 900, deviceScaleFactor: 1, mobile: false });
  await page("Page.navigate", { url: opt.url });

  const evaluate = async (expression) => {
    const r = await page("Runtime.evaluate", { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error("page exception: " + JSON.stringify(r.exceptionDetails));
    return r.result.value;
  };
  const stateExpr = `(() => {
    const m = document.querySelector("[id^='master-']");
    return {
      updates: Number(document.body && document.body.getAttribute("data-updates") || 0),
      master: m ? m.getAttribute("data-master") : null,
      verified: m ? m.getAttribute("data-verified") === "true" : false,
      nodes: [...document.querySelectorAll("tr[data-node]")].map((tr) => ({
        node: tr.getAttribute("data-node"), role: tr.getAttribute("data-role"),
        age: Number(tr.querySelector("td.age").getAttribute("data-age-ms")) })),
      marker: window.__pgheraldMarker || null,
      error: document.body ? document.body.getAttribute("data-last-error") : null,
      banner: !document.getElementById("connection").hidden,
    };
  })()`;
  const waitFor = async (what, predicate) => {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      try { lastState = await evaluate(stateExpr); } catch (e) { lastState = { error: String(e) }; }
      if (lastState && predicate(lastState)) return lastState;
      await sleep(200);
    }
    throw new Error("timed out waiting for " + what);
  };
  const screenshot = async (name) => {
    const { data } = await page("Page.captureScreenshot", { format: "png" });
    mkdirSync(opt.screenshots, { recursive: true });
    const path = join(opt.screenshots, name);
    writeFileSync(path, Buffer.from(data, "base64"));
    log("screenshot", path);
  };

  const agesOk = (s) => s.nodes.length === expectedNodes && s.nodes.every((n) => Number.isFinite(n.age) && n.age >= 0);
  const before = await waitFor("a verified master and " + expectedNodes + " nodes with heartbeat ages",
    (s) => s.master && s.verified && agesOk(s) && s.updates >= 2);
  log("before:", JSON.stringify(before));
  if (before.banner) throw new Error("the 'orchestrator unreachable' banner shows while the API answers");
  // The ages are live: some node's age changes between two looks.
  const firstAges = before.nodes.map((n) => n.age).join(",");
  await waitFor("heartbeat ages to move", (s) => s.nodes.map((n) => n.age).join(",") !== firstAges);
  await evaluate("window.__pgheraldMarker = 'set-before-kill'");
  await screenshot("before.png");

  log("running:", opt.kill);
  execSync(opt.kill, { stdio: "inherit" });
  const after = await waitFor("a different verified master",
    (s) => s.master && s.master !== before.master && s.verified);
  log("after:", JSON.stringify(after));
  if (after.marker !== "set-before-kill") throw new Error("the page was reloaded (marker lost)");
  if (!(after.updates > before.updates)) throw new Error("the refresh counter did not grow");
  const oldRow = after.nodes.find((n) => n.node === before.master);
  log("old master's row:", JSON.stringify(oldRow));
  await screenshot("after.png");
  console.log(JSON.stringify({ ok: true, before: before.master, after: after.master }));
  exitCode = 0;
  ws.close();
} catch (e) {
  console.error("FAILED:", e.message);
  console.error("last page state:", JSON.stringify(lastState));
} finally {
  chromium.kill("SIGKILL");
  await new Promise((r) => { if (chromium.exitCode !== null) r(); else chromium.on("exit", r); });
  try { rmSync(profile, { recursive: true, force: true }); } catch {}
  process.exit(exitCode);
}
