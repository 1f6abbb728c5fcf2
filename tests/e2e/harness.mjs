// End-to-end test harness: starts the bundled Xoxoday sandbox and the built
// worker (in workerd, through `wrangler dev`) on free loopback ports, and
// captures every log line both print so tests can scan them for leaks.
//
// The worker must already be built (scripts/test.sh builds it once).
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const ROOT = resolve(import.meta.dirname, "../..");
const SANDBOX_BIN = process.env.PLUMGATE_SANDBOX_BIN || join(ROOT, "target/release/plumgate-sandbox");
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");

/** Every log line any process printed during this test file. */
export const capturedLogs = [];
/** Every response body and header block seen by `call` (for the leak scan). */
export const capturedResponses = [];

export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function pipeLines(stream, sink, tag) {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      sink.push(line);
      capturedLogs.push(`${tag} ${line}`);
      if (process.env.PLUMGATE_E2E_VERBOSE) console.error(`${tag} ${line}`);
    }
  });
}

export function killGroup(child, signal = "SIGTERM") {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try { child.kill(signal); } catch { /* gone */ }
  }
}

export async function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await Promise.race([new Promise((r) => child.once("exit", r)), sleep(ms)]);
}

/** Start the sandbox on a free port (`bin`: another build of it). */
export async function startSandbox(extraArgs = [], { bin = SANDBOX_BIN } = {}) {
  const child = trackChild(spawn(bin, ["--host", "127.0.0.1", "--port", "0", ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  }));
  const out = [];
  pipeLines(child.stdout, out, "[sandbox]");
  pipeLines(child.stderr, [], "[sandbox]");
  const deadline = Date.now() + 20_000;
  let url;
  while (!url) {
    const line = out.find((l) => l.startsWith("SANDBOX_READY "));
    if (line) url = line.split(" ")[1].trim();
    else if (child.exitCode !== null) throw new Error("sandbox exited before it was ready");
    else if (Date.now() > deadline) throw new Error("sandbox did not start in 20 s");
    else await sleep(50);
  }
  const admin = async (path, body) => {
    const res = await fetch(`${url}/__sandbox${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`sandbox admin ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    url,
    oauthUrl: `${url}/chef`,
    pid: child.pid,
    admin,
    counters: () => admin("/counters"),
    async stop() {
      killGroup(child);
      await waitExit(child, 5000);
      killGroup(child, "SIGKILL");
    },
  };
}

/** A .dev.vars file's text: single-quoted values, no escapes needed. */
export function devVarsText(vars) {
  return Object.entries(vars)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => {
      const text = String(v);
      if (text.includes("'") || text.includes("\n")) throw new Error(`var ${k} cannot go in .dev.vars`);
      return `${k}='${text}'`;
    })
    .join("\n") + "\n";
}

/** A caller key and its GATEWAY_KEYS entry. */
export function makeKey(id, scopes) {
  const key = `pgk_${id}_${randomBytes(18).toString("hex")}`;
  const sha256 = createHash("sha256").update(key).digest("hex");
  return { id, key, scopes, sha256, entry: { id, sha256, scopes } };
}

/** The standard set of test keys. */
export function standardKeys() {
  return {
    admin: makeKey("admin", ["*"]),
    catalog: makeKey("catalog-fn", ["catalog"]),
    balance: makeKey("balance-fn", ["balance"]),
    reader: makeKey("orders-reader", ["orders:read"]),
    writer: makeKey("orders-writer", ["orders:write"]),
  };
}

// Every directory tempDir made, removed when this test file's process
// exits. Workers' own directories could not go with `stop()`: a test may
// start a worker again on the stopped one's state. Without this each full
// run left ~100 directories (~250 MB) in the temp dir.
const madeDirs = [];
// Every child started detached (the leader of a process group of its own:
// the sandbox, workers, and what tests start so), sent `signal` with its
// group if still running when the process exits (dev.sh: SIGINT, its
// Ctrl-C, so it stops what it started in sessions of their own).
const liveChildren = new Map();
export function trackChild(child, signal = "SIGKILL") {
  liveChildren.set(child, signal);
  child.once("exit", () => liveChildren.delete(child));
  return child;
}
process.on("exit", () => {
  for (const [c, signal] of liveChildren) killGroup(c, signal);
  for (const d of madeDirs) cleanup(d);
});
// Ctrl-C or a kill of the run: the children are in process groups of their
// own, which the signal does not reach, and a process a signal ends runs no
// "exit" handler. Exit as the shell would report the signal (128 + its
// number), through the handler above.
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]]) process.on(signal, () => process.exit(code));

export function tempDir(prefix = "plumgate-e2e-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/**
 * Start the built worker under `wrangler dev` against `sandbox`.
 * opts.vars: extra/overriding vars. opts.persistDir: local KV/DO state.
 * opts.callers: Workers to run in front of plumgate (see callerConfigs);
 * opts.readyPath: the path polled until it answers 200 or 503.
 * A port found free here can be taken by another process before wrangler
 * binds it; that start is retried on new ports (twice at most) unless the
 * caller chose the port.
 */
export async function startWorker(opts) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startWorkerOnce(opts);
    } catch (e) {
      if (opts.port !== undefined || attempt >= 3 || !/Address already in use/.test(e.message)) throw e;
    }
  }
}

async function startWorkerOnce({ sandbox, keys, vars = {}, tomlVars = "", tomlEdit = (t) => t, persistDir, port, callers = [], readyPath = "/healthz" }) {
  port ??= await freePort();
  const inspector = await freePort();
  persistDir ??= tempDir();
  const allVars = {
    XOXODAY_OAUTH_URL: sandbox ? sandbox.oauthUrl : "http://127.0.0.1:9/chef",
    XOXODAY_CLIENT_ID: "plumgate-dev-client",
    XOXODAY_CLIENT_SECRET: "plumgate-dev-secret",
    XOXODAY_REFRESH_TOKEN: "plumgate-dev-refresh-token",
    GATEWAY_KEYS: JSON.stringify(Object.values(keys ?? {}).map((k) => k.entry)),
    // Xoxoday's per-minute limits are lifted on plumgate's side as the test
    // files lift them on the sandbox's (HIGH_LIMITS): a token storm or a
    // fuzz run is not about them. Tests of the limits pass
    // `XOXODAY_RATE_LIMITS: null` and get the documented budgets.
    XOXODAY_RATE_LIMITS: LIFTED_RATE_LIMITS,
    // Every other setting keeps the product's default: tests move the
    // sandbox's clock or wait, never shorten an interval or a timeout.
    ...vars,
  };
  // A config of our own beside a .dev.vars holding every value: wrangler
  // shows .dev.vars values as "(hidden)", so the captured logs contain only
  // what the worker itself prints. No [build]: the worker is already built.
  const configDir = join(persistDir, "config");
  mkdirSync(configDir, { recursive: true });
  // A private copy of the build, so a rebuild during the run (another
  // developer's, or a test's) cannot make this worker reload mid-test.
  cpSync(join(ROOT, "build"), join(configDir, "build"), { recursive: true });
  const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8")
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(configDir, "build/index.js"))}`)
    .replace(/^\[build\][\s\S]*?(?=^\[)/m, "")
    .replace(/^directory = "\.\/www"$/m, `directory = ${JSON.stringify(join(ROOT, "www"))}`)
    .replace(/^\[vars\][\s\S]*?(?=^\[)/m, "");
  // `tomlVars`: [vars] lines as an operator writes them in wrangler.toml
  // (typed TOML values), for names not in .dev.vars.
  // `tomlEdit`: wrangler.toml as an operator changed it (a binding left out, say).
  writeFileSync(join(configDir, "wrangler.toml"), tomlEdit(tomlVars ? `${toml}\n[vars]\n${tomlVars}\n` : toml));
  writeFileSync(join(configDir, ".dev.vars"), devVarsText(allVars));
  const args = [
    "dev", ...callerConfigs(configDir, callers), "--config", join(configDir, "wrangler.toml"),
    "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector),
    "--persist-to", join(persistDir, "state"), "--show-interactive-dev-session=false", "--test-scheduled",
    "--log-level", "log",
  ];
  const child = trackChild(spawn(WRANGLER, args, {
    cwd: configDir,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_HIDE_BANNER: "true",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      NO_COLOR: "1",
      PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
    },
  }));
  const lines = [];
  pipeLines(child.stdout, lines, "[worker]");
  pipeLines(child.stderr, lines, "[worker]");
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      try { process.kill(-child.pid, "SIGKILL"); } catch { /* nothing left in its group */ }
      throw new Error(`wrangler dev exited: ${lines.slice(-20).join("\n")}`);
    }
    try {
      const r = await fetch(`${url}${readyPath}`);
      await r.text();
      if (r.status === 200 || r.status === 503) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      killGroup(child, "SIGKILL");
      throw new Error(`worker did not start in 60 s: ${lines.slice(-20).join("\n")}`);
    }
    await sleep(150);
  }
  return {
    url,
    port,
    persistDir,
    lines,
    async stop() {
      killGroup(child);
      await waitExit(child, 8000);
      killGroup(child, "SIGKILL");
      await waitExit(child, 2000);
    },
    /** Kill wrangler and workerd at once, mid-work (an eviction, a deploy). */
    async crash() {
      killGroup(child, "SIGKILL");
      await waitExit(child, 5000);
    },
    /**
     * Log lines the worker printed that parse as JSON objects (wrangler
     * colours console.error lines even with NO_COLOR: the escapes go first).
     */
    jsonLogs() {
      const out = [];
      for (const raw of lines) {
        const l = raw.replace(/\x1b\[[0-9;]*m/g, "");
        const i = l.indexOf("{");
        if (i < 0) continue;
        try { out.push(JSON.parse(l.slice(i, l.lastIndexOf("}") + 1))); } catch { /* not ours */ }
      }
      return out;
    },
    /**
     * The JSON log lines of the requests with these ids, once every one has
     * arrived: the worker prints a line as it answers, and the output reaches
     * this process a little later than the response does.
     */
    async logsFor(ids, { timeout = 5_000 } = {}) {
      const want = new Set(ids);
      const found = () => this.jsonLogs().filter((l) => want.has(l.request_id));
      await waitFor(() => new Set(found().map((l) => l.request_id)).size >= want.size, { timeout, what: `log lines of ${want.size} requests` })
        .catch(() => {}); // the caller's assertions say what is missing
      return found();
    },
  };
}

/**
 * `--config` arguments for caller Workers run in the same `wrangler dev` as
 * plumgate, before it (the first config gets the port; the others are
 * reached through Service Bindings). `callers`: [{config: path of a
 * wrangler.toml, relative to the repository, vars: its .dev.vars}]. Each
 * gets a copy of its config with `main` made absolute, beside its own
 * .dev.vars.
 */
function callerConfigs(configDir, callers) {
  return callers.flatMap((c, i) => {
    const src = resolve(ROOT, c.config);
    const dir = join(configDir, `caller-${i}`);
    mkdirSync(dir, { recursive: true });
    const toml = readFileSync(src, "utf8")
      .replace(/^main = "(.*)"$/m, (_, main) => `main = ${JSON.stringify(resolve(dirname(src), main))}`);
    writeFileSync(join(dir, "wrangler.toml"), toml);
    writeFileSync(join(dir, ".dev.vars"), devVarsText(c.vars ?? {}));
    return ["--config", join(dir, "wrangler.toml")];
  });
}

/**
 * Call the worker; records body and headers for the leak scan. `text` is
 * the body as `Response.text()` reads it (bytes that are not UTF-8 become
 * U+FFFD); `bytes`, the body as sent.
 */
export async function call(worker, path, { method = "POST", key, body, headers = {}, raw } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key.key ?? key}`;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h["content-type"] ??= "application/json";
  }
  const res = await fetch(`${worker.url}${path}`, { method, headers: h, body: payload });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  const hdrs = Object.fromEntries(res.headers.entries());
  capturedResponses.push(`${res.status} ${JSON.stringify(hdrs)} ${text}`);
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: hdrs, text, bytes, json };
}

/**
 * The sandbox's counts of calls Xoxoday documents otherwise, which it
 * answers as usual: refresh and API calls without `Content-Type:
 * application/json`, and API calls whose envelope lacks `"tag":
 * "plumProAPI"` (xoxoday-api.md §1.3, §2). Every suite's end-of-run check
 * (`leakScan`) wants both at 0: a gateway passing its tests on them would
 * meet a real Xoxoday that may not.
 */
export const ENVELOPE_COUNTERS = ["not_json_content_type", "not_plum_tag"];

/**
 * One line per counter of `ENVELOPE_COUNTERS` not at 0 on `sandbox`.
 * `callerEnvelopes`: the suite sends plumgate's drop-in route envelopes
 * it forwards as sent (a `plumProAPI.<kind>.<name>` query plumgate does not
 * know, for a `*` key), whose tag is the caller's to get right, not
 * plumgate's: `not_plum_tag` is left out (still counted by the sandbox).
 */
export async function envelopeHits(sandbox, { callerEnvelopes = false } = {}) {
  const c = await sandbox.counters();
  return ENVELOPE_COUNTERS.filter((name) => !(callerEnvelopes && name === "not_plum_tag"))
    .filter((name) => c[name] !== 0)
    .map((name) => `sandbox ${sandbox.url}: ${name} = ${c[name]}, expected 0 (calls Xoxoday documents otherwise)`);
}

/**
 * Secret values that must never appear in any response or log: the client
 * secret, every refresh and access token the sandbox has issued, and every
 * caller key. Also, as every suite calls this at its end for each of its
 * sandboxes, the place where every suite checks `envelopeHits`: its
 * lines come back among the hits (`options` are its options).
 */
export async function leakScan(sandbox, keys, extraSecrets = [], options = {}) {
  const secrets = new Set(["plumgate-dev-secret", "plumgate-dev-refresh-token", "plumgate-dev-access-token", ...extraSecrets]);
  const hits = [];
  if (sandbox) {
    // Every token value the sandbox holds, its bootstrap pair included.
    // The route always exists: its failure is a hit, never a smaller scan
    // (and not a throw, which would leave this sandbox running and the
    // test process waiting on it). Each refresh the sandbox answered with
    // a pair added two values (none is dropped below 20,000 pairs; a
    // counters reset only lowers the count), so a list short of them
    // would leave Xoxoday tokens out of the scan.
    try {
      const issued = await sandbox.admin("/tokens/issued");
      const tokens = Array.isArray(issued?.tokens) ? issued.tokens : [];
      for (const t of tokens) secrets.add(t);
      const { refresh_success: refreshed } = await sandbox.counters();
      const rotated = tokens.filter((t) => t !== "plumgate-dev-access-token" && t !== "plumgate-dev-refresh-token").length;
      if (tokens.length === 0) hits.push(`sandbox ${sandbox.url}: /tokens/issued listed no token (not even its bootstrap pair): the scan would look for none`);
      else if (rotated < 2 * refreshed) hits.push(`sandbox ${sandbox.url}: /tokens/issued listed ${rotated} tokens besides the bootstrap pair after ${refreshed} refreshes answered with a pair: some would escape the scan`);
      hits.push(...await envelopeHits(sandbox, options));
    } catch (e) {
      hits.push(`sandbox ${sandbox.url}: ${e.message}: its tokens and envelope counters could not be checked`);
    }
  }
  for (const k of Object.values(keys ?? {})) secrets.add(k.key);
  const haystacks = [
    ...capturedResponses.map((t) => ["response", t]),
    ...capturedLogs.filter((l) => !l.startsWith("[sandbox]")).map((t) => ["log", t]),
  ];
  // A value written with JSON escapes (`\/`, `\u…`) is the value all the
  // same to whoever decodes it: each escaped JSON text's strings are
  // scanned decoded too.
  for (const [kind, text] of [...haystacks]) {
    const decoded = decodedStrings(text);
    if (decoded !== null) haystacks.push([`${kind} (decoded)`, decoded]);
  }
  for (const s of secrets) {
    if (!s || s.length < 8) continue;
    for (const [kind, text] of haystacks) {
      if (text.includes(s)) hits.push(`${kind}: ${text.slice(0, 200)}`);
    }
  }
  return hits;
}

/**
 * The strings (keys and values) of a JSON text, decoded, one a line; null
 * for a text with no escape (raw, it reads the same) or not JSON.
 */
function decodedStrings(text) {
  if (!text.includes("\\")) return null;
  let value;
  try { value = JSON.parse(text); } catch { return null; }
  const out = [];
  const walk = (v) => {
    if (typeof v === "string") out.push(v);
    else if (v && typeof v === "object") for (const [k, inner] of Object.entries(v)) { out.push(k); walk(inner); }
  };
  walk(value);
  return out.join("\n");
}

/**
 * Wait past the next day boundary (UTC midnight, or IST midnight at 18:30
 * UTC: Xoxoday's day may be either) when less than `secs` are left before
 * it, so that a test that reads "today" or counts to midnight does not
 * straddle one.
 */
export async function roomInDay(secs) {
  const DAY = 86_400_000;
  const now = Date.now();
  const next = Math.min(...[0, (18 * 60 + 30) * 60_000].map((offset) => Math.floor((now - offset) / DAY) * DAY + offset + DAY));
  if (next - now < secs * 1000) await sleep(next - now + 500);
}

export async function waitFor(fn, { timeout = 10_000, interval = 100, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(interval);
  }
}

export function cleanup(dir) {
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* ignore */ }
}

// ---------------------------------------------------------------------------
// Added for the gateway tests (issue 4). Existing functions above are unchanged.

/** Every voucher code and PIN inside a Plum answer (any depth), added to `into`. */
export function collectVoucherSecrets(value, into = new Set()) {
  if (Array.isArray(value)) {
    for (const v of value) collectVoucherSecrets(v, into);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if ((k === "voucherCode" || k === "pin") && (typeof v === "string" || typeof v === "number") && String(v).length >= 4) {
        into.add(String(v));
      } else {
        collectVoucherSecrets(v, into);
      }
    }
  }
  return into;
}

/**
 * A pattern that finds `secret` as a value of its own: not inside a longer
 * run of letters or digits (a 6-digit PIN can sit inside a request id or a
 * longer number by chance).
 */
export function ownValue(secret) {
  const esc = secret.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![0-9A-Za-z])${esc}(?![0-9A-Za-z])`);
}

/**
 * Voucher codes and PINs must never appear in a log line (any process but
 * the sandbox) nor in an error answer (status >= 400). Successful order
 * answers carry them to the caller legitimately and are not scanned.
 * A value matches only as a whole token (not inside a longer run of letters
 * or digits), so a 6-digit PIN does not match inside a hex request id.
 */
export function voucherLeakScan(secrets) {
  const hits = [];
  const haystacks = [
    ...capturedResponses.filter((t) => Number(t.slice(0, 3)) >= 400).map((t) => ["error response", t]),
    ...capturedLogs.filter((l) => !l.startsWith("[sandbox]")).map((t) => ["log", t]),
  ];
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    const re = ownValue(s);
    for (const [kind, text] of haystacks) {
      if (re.test(text)) hits.push(`${kind}: ${text.slice(0, 200)}`);
    }
  }
  return hits;
}

/**
 * Adds every voucher code and PIN the sandboxes issued (`GET
 * vouchers/issued`: the orders they hold, delivered or not) to `secrets`,
 * so the leak scan looks for the codes of answers no test read too (a
 * reconciled order, an answer left hanging in a narrowed run); then says
 * what the scan lacked: "" when it had codes to look for, or when the
 * sandboxes created no order at all (a run narrowed with
 * --test-name-pattern may place none, and then there is nothing to find);
 * else what is missing. Once orders were created: at least `min` codes and
 * PINs, or two per order (a voucher's code and PIN) when fewer orders could
 * not give `min`. Orders are counted by the sandboxes' `orders` counter,
 * which sees the whole run (the request log keeps the last 1000 calls
 * only, and tests clear it); a test that resets the counters only makes
 * this check weaker. Call it before `voucherLeakScan` and before the
 * sandboxes stop; assert "" after.
 */
export async function voucherScanLacks(sandboxes, secrets, { min = 1 } = {}) {
  let orders = 0;
  for (const sb of [sandboxes].flat().filter(Boolean)) {
    orders += (await sb.counters()).orders;
    for (const v of (await sb.admin("/vouchers/issued")).vouchers) secrets.add(v);
  }
  const want = Math.min(min, 2 * orders);
  if (secrets.size >= want) return "";
  return `the sandbox created ${orders} order(s), but the scan had ${secrets.size} voucher codes and PINs to look for (at least ${want})`;
}

/** Last `limit` API calls the sandbox received (`{op, body, authorized, status}`), oldest first. */
export async function sandboxRequests(sandbox, limit = 1000) {
  const r = await sandbox.admin(`/requests?limit=${limit}`);
  return Array.isArray(r) ? r : (r.requests ?? []);
}

/** Deterministic PRNG (mulberry32): returns a function giving floats in [0, 1). */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Launch Debian's chromium (scripts/setup.sh --tests) through playwright-core:
 * headless, no network beyond what the page asks for, and a fresh temporary
 * profile (playwright's own user-data-dir, removed on close).
 */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.PLUMGATE_CHROMIUM || "/usr/bin/chromium",
    timeout: 60_000,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

// ---------------------------------------------------------------------------
// Durable Object storage on disk (issue 15): what an admin of a deployment
// cannot do through plumgate, a test does while the worker is stopped, so
// the authority's handling of stored state is tested end to end. Local
// workerd keeps each object in its own SQLite file; values are V8-serialized
// (the format of Node's `v8` module).

/** The token authorities' storage files under a worker's persist dir: `[{file, name}]`. */
export async function authorityFiles(persistDir) {
  return objectFiles(persistDir, "TokenAuthority");
}

/** The storage files of every object of Durable Object class `className` under a worker's persist dir: `[{file, name}]`. */
export async function objectFiles(persistDir, className) {
  const { DatabaseSync } = await import("node:sqlite");
  const dir = join(persistDir, `state/v3/do/plumgate-${className}`);
  const { readdirSync, existsSync } = await import("node:fs");
  if (!existsSync(dir)) return [];
  const out = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite")) {
    const db = new DatabaseSync(join(dir, f));
    try {
      const row = db.prepare("SELECT name FROM __miniflare_do_name").get();
      out.push({ file: join(dir, f), name: row?.name ?? null });
    } finally {
      db.close();
    }
  }
  return out;
}

/** A value an object stored under `key` (string), or undefined. */
export async function readStored(file, key) {
  const { DatabaseSync } = await import("node:sqlite");
  const v8 = await import("node:v8");
  const db = new DatabaseSync(file);
  try {
    const hasKv = db.prepare("SELECT name FROM sqlite_master WHERE name = '_cf_KV'").get();
    if (!hasKv) return undefined;
    const row = db.prepare("SELECT value FROM _cf_KV WHERE key = ?").get(key);
    return row ? v8.deserialize(Buffer.from(row.value)) : undefined;
  } finally {
    db.close();
  }
}

/** Every key an object stored. */
export async function storedKeys(file) {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file);
  try {
    return db.prepare("SELECT key FROM _cf_KV ORDER BY key").all().map((r) => r.key);
  } finally {
    db.close();
  }
}

/** Store `value` under `key` (undefined: delete it), as the object itself would. */
export async function writeStored(file, key, value) {
  const { DatabaseSync } = await import("node:sqlite");
  const v8 = await import("node:v8");
  const db = new DatabaseSync(file);
  try {
    // workerd's own table, made on an object's first write.
    db.exec("CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID");
    if (value === undefined) db.prepare("DELETE FROM _cf_KV WHERE key = ?").run(key);
    else db.prepare("INSERT OR REPLACE INTO _cf_KV (key, value) VALUES (?, ?)").run(key, v8.serialize(value));
  } finally {
    db.close();
  }
}

/** Per-minute limits high enough that no test meets the sandbox's rate limiter by accident. */
export const HIGH_LIMITS = {
  getBalance: 100000, getFilters: 100000, getVouchers: 100000, placeOrder: 100000,
  getOrderDetails: 100000, getOrderHistory: 100000, paymentHistory: 100000,
};

/** The same for plumgate's own limiter (`XOXODAY_RATE_LIMITS`). */
export const LIFTED_RATE_LIMITS = JSON.stringify(HIGH_LIMITS);

/** The operation the token tests call: never cached at the edge, so every call goes upstream. */
export const UNCACHED_OP = "getOrderHistory";

/**
 * What the token test files share: fresh sandboxes (limits out of the way),
 * temporary state directories, a worker for the length of a function
 * (`withWorker`), one uncached operation, `GET /v1/token`, and `finish()`
 * (stop the sandboxes, remove the directories, return the leak scan's hits).
 */
export function tokenFixture(keys) {
  const sandboxes = [];
  const dirs = [];
  return {
    /** Every sandbox `fresh` started (stopped by `finish`). */
    sandboxes,
    async fresh(config = {}) {
      const sb = await startSandbox();
      sandboxes.push(sb);
      await sb.admin("/config", { rate_limits: HIGH_LIMITS, ...config });
      return sb;
    },
    newDir() {
      const d = tempDir();
      dirs.push(d);
      return d;
    },
    /** A worker on `sb` with these keys (`opts` as startWorker's), `fn(w)`, then stopped. */
    async withWorker(sb, opts, fn) {
      const w = await startWorker({ sandbox: sb, keys, ...opts });
      try {
        return await fn(w);
      } finally {
        await w.stop();
      }
    },
    op: (w, key = keys.admin) =>
      call(w, `/v1/ops/${UNCACHED_OP}`, { key, body: { startDate: "2020-01-01", endDate: "2030-12-31", limit: 5, page: 1 } }),
    tokenStatus: async (w) => (await call(w, "/v1/token", { method: "GET", key: keys.admin })).json,
    async finish() {
      const hits = await Promise.all(sandboxes.map((sb) => leakScan(sb, keys)));
      for (const sb of sandboxes) await sb.stop();
      for (const d of dirs) cleanup(d);
      return hits.flat();
    },
  };
}
