// Process and load-generator helpers for the benchmark (bench/run.mjs).
// Ports, temp dirs, caller keys and the sandbox come from the e2e harness
// (tests/e2e/harness.mjs), so both start things the same way; what is
// bench-only lives here: `wrangler dev` with CPU accounting by process
// group, wrk, and the JS baseline's config.
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { HIGH_LIMITS, ROOT, cleanup, devVarsText, freePort, killGroup, makeKey, startSandbox as startHarnessSandbox, tempDir as harnessTempDir, trackChild, waitExit } from "../tests/e2e/harness.mjs";

export { ROOT, cleanup, freePort, makeKey };
// The bench tools' medians, NaN-safe (bench/verdict.mjs).
export { median, quantile } from "./verdict.mjs";

/** Every operation Xoxoday has (the names `XOXODAY_RATE_LIMITS` and the sandbox's limits take). */
export const OPERATIONS = Object.keys(HIGH_LIMITS);

/**
 * plumgate's `XOXODAY_RATE_LIMITS` for load: every operation at the highest
 * budget it accepts (`plumgate_core::limits::MAX_BUDGET`, a million calls a
 * minute). The bench measures what plumgate costs, not Xoxoday's budgets:
 * the documented ones (getOrderHistory 200 a minute, getVouchers 50) are
 * far below what one worker serves under load here (2,000–4,000 calls a
 * second), and even the e2e files' lifted 100,000 a minute is within reach
 * of the plumgate rows that run back to back on one worker, so the limiter
 * would answer `429 rate_limited` mid-row. The limiter's check still runs
 * on every call (leases spent from memory).
 */
export const BENCH_RATE_LIMITS = JSON.stringify(Object.fromEntries(OPERATIONS.map((op) => [op, 1_000_000])));

/**
 * The sandbox's side of the same: per-minute limits far above any load
 * (it would otherwise answer Xoxoday's penalty), and no daily cap (the
 * older getVouchers cap of 500 a day; the sandbox sets none by default,
 * and the catalog's miss row makes thousands of calls).
 */
export async function liftSandboxLimits(sandbox) {
  await sandbox.admin("/config", {
    rate_limits: Object.fromEntries(OPERATIONS.map((op) => [op, 1_000_000_000])),
    daily_limits: Object.fromEntries(OPERATIONS.map((op) => [op, 0])),
  });
}

/** A temp dir for one bench worker. */
export function tempDir(prefix = "plumgate-bench-") {
  return harnessTempDir(prefix);
}

/** The bundled Xoxoday sandbox on a free loopback port, quiet. */
export function startSandbox(bin, extraArgs = []) {
  return startHarnessSandbox(["--quiet", ...extraArgs], { bin });
}

export const BIN = join(ROOT, "node_modules/.bin");
const WRANGLER = join(BIN, "wrangler");
const WRK_LUA = join(ROOT, "bench/wrk/post.lua");

export function childEnv(extra = {}) {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_HIDE_BANNER: "true",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    NO_COLOR: "1",
    PATH: `${BIN}:${process.env.PATH}`,
    ...extra,
  };
}

/** Keep the last `max` lines of a stream (and never let a pipe fill up). */
function tail(stream, sink, max = 200, onLine = () => {}) {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      sink.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (sink.length > max) sink.splice(0, sink.length - max);
      onLine();
    }
  });
}

/**
 * A wait that ends early when `tail` sees a new line: `nudge()` wakes
 * every `next()` pending, so a start-up wait notices the ready line at
 * once instead of at the next poll (a 20-ms poll put up to 20 ms of
 * jitter into every cold-start sample).
 */
function lineSignal() {
  let wakers = [];
  return {
    nudge: () => { const w = wakers; wakers = []; for (const f of w) f(); },
    next: () => new Promise((res) => wakers.push(res)),
  };
}

async function stopChild(child) {
  killGroup(child);
  await waitExit(child, 8000);
  killGroup(child, "SIGKILL");
  await waitExit(child, 2000);
}


/**
 * plumgate's wrangler.toml pointed at a prebuilt worker (no [build], no
 * [vars]). `assets: false` drops the [assets] table (the demo page): locally
 * that layer is Miniflare's asset router Worker in front of plumgate, one
 * more Worker hop on every request, which the JS baseline does not have.
 */
export function plumgateToml(buildDir, { assets = true } = {}) {
  let toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8")
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(buildDir, "index.js"))}`)
    .replace(/^\[build\][\s\S]*?(?=^\[)/m, "")
    .replace(/^directory = "\.\/www"$/m, `directory = ${JSON.stringify(join(ROOT, "www"))}`)
    .replace(/^\[vars\][\s\S]*?(?=^\[)/m, "");
  if (!assets) {
    toml = toml.replace(/^\[assets\]\n(?:(?!\[).*\n)*/m, "");
    if (/^\[assets\]/m.test(toml)) throw new Error("could not drop [assets] from wrangler.toml");
  }
  return toml;
}

/**
 * The hand-written JS baseline's wrangler.toml, main made absolute. With
 * `bindings`, plumgate's own Durable Object bindings, migrations and cron
 * trigger are added (taken from wrangler.toml; worker.js exports stub
 * classes for them): the cold-start row that prices what those bindings
 * cost any Worker, apart from the wasm.
 */
export function jsWorkerToml({ bindings = false } = {}) {
  const toml = readFileSync(join(ROOT, "bench/js-worker/wrangler.toml"), "utf8")
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(ROOT, "bench/js-worker/worker.js"))}`);
  if (!bindings) return toml;
  const block = readFileSync(join(ROOT, "wrangler.toml"), "utf8").match(/^\[durable_objects\][\s\S]*?(?=^\[assets\])/m);
  if (!block) throw new Error("could not find the [durable_objects] … [triggers] block in wrangler.toml");
  return `${toml}\n${block[0]}`;
}

/** The hand-written JS Worker's variants (bench/js-worker/worker.js): the vars each sets. */
export const JS_VARIANTS = {
  js: {},
  "js:none": { BENCH_UPSTREAM: "none" },
  "js:contract": { BENCH_UPSTREAM: "contract" },
  "js:full": { BENCH_UPSTREAM: "contract", BENCH_LOG: "long" },
  "js:nolog": { BENCH_LOG: "off" },
  // As `js`, started with plumgate's Durable Object bindings (jsWorkerToml).
  "js:bindings": {},
};

/**
 * Start one comparison target (bench/ab.mjs, bench/native-profile.mjs) in
 * local workerd: a plumgate build directory, without the demo page's
 * [assets] like the bench's like-for-like rows, or a JS_VARIANTS name. It
 * gets its own refresh token from `sandbox` (targets rotate independently)
 * and accepts `key` (makeKey). `stop()` also removes its state.
 */
export async function startTarget(sandbox, name, key, { viaEntry = false } = {}) {
  const persistDir = tempDir("plumgate-target-");
  const { refresh_token } = await sandbox.admin("/tokens/issue", {});
  const vars = {
    XOXODAY_OAUTH_URL: sandbox.oauthUrl,
    XOXODAY_CLIENT_ID: "plumgate-dev-client",
    XOXODAY_CLIENT_SECRET: "plumgate-dev-secret",
    XOXODAY_REFRESH_TOKEN: refresh_token,
  };
  const js = name in JS_VARIANTS;
  if (js) Object.assign(vars, { CALLER_KEY_SHA256: key.sha256 }, JS_VARIANTS[name]);
  else Object.assign(vars, { GATEWAY_KEYS: JSON.stringify([key.entry]), XOXODAY_RATE_LIMITS: BENCH_RATE_LIMITS });
  const toml = js ? jsWorkerToml({ bindings: name === "js:bindings" }) : plumgateToml(resolve(name), { assets: false });
  const w = await startWorkerd({ toml, persistDir, vars, viaEntry });
  return { ...w, stop: async () => { await w.stop(); cleanup(persistDir); } };
}

const WORKERD_HOST = join(ROOT, "bench/workerd-host.mjs");
// Miniflare needs Node 22.12 or later: the host runs on the project's Node 22
// (npm ci's, the node scripts/lib.sh's wrangler_env puts first on PATH), not
// on whatever Node runs this tool (`node bench/ab.mjs` with a system Node 20).
const HOST_NODE = existsSync(join(BIN, "node")) ? join(BIN, "node") : process.execPath;

/** Poll GET /healthz until it answers 200; returns ms since `t0`. */
async function waitHealthy(url, child, lines, t0, what, { pollMs, timeoutMs, signal }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited: ${lines.slice(-20).join("\n")}`);
    if (url()) {
      try {
        const r = await fetch(`${url()}/healthz`);
        await r.text();
        if (r.status === 200) return performance.now() - t0;
        if (r.status === 503) throw new Error(`/healthz answered 503: ${lines.slice(-20).join("\n")}`);
      } catch (e) {
        if (String(e.message).startsWith("/healthz")) throw e;
      }
    }
    if (Date.now() > deadline) throw new Error(`${what} did not answer in ${timeoutMs / 1000} s: ${lines.slice(-20).join("\n")}`);
    // Until the ready line has come, a new line ends the wait at once.
    await (signal && !url() ? Promise.race([sleep(pollMs), signal.next()]) : sleep(pollMs));
  }
}

/** Write the worker's wrangler.toml into `persistDir/config`; returns its path. */
function writeConfig(persistDir, toml) {
  const configDir = join(persistDir, "config");
  mkdirSync(configDir, { recursive: true });
  const path = join(configDir, "wrangler.toml");
  writeFileSync(path, toml);
  return path;
}

/**
 * Start a worker in local workerd through Miniflare (bench/workerd-host.mjs),
 * the way the bench measures: no `wrangler dev` proxy or inspector in front.
 * Resolves once GET /healthz answers 200; `startup_ms` is the time from
 * spawning the host process to that first answer (the ready line is noticed
 * when it is printed; /healthz is then polled every `pollMs`).
 */
export async function startWorkerd({ toml, vars, persistDir, port, viaEntry = false, inspect = false, pollMs = 20, timeoutMs = 90_000 }) {
  persistDir ??= tempDir();
  const inspectorPort = inspect ? await freePort() : undefined;
  const tomlPath = writeConfig(persistDir, toml);
  const cfgPath = join(persistDir, "config", "host.json");
  writeFileSync(cfgPath, JSON.stringify({ toml: tomlPath, vars, port: port ?? 0, inspectorPort, viaEntry }));
  const t0 = performance.now();
  const child = trackChild(spawn(HOST_NODE, [WORKERD_HOST, cfgPath], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true, env: childEnv() }));
  const lines = [];
  const signal = lineSignal();
  tail(child.stdout, lines, 200, signal.nudge);
  tail(child.stderr, lines, 200, signal.nudge);
  let url;
  const urlNow = () => (url ??= lines.find((l) => l.startsWith("WORKERD_READY "))?.split(" ")[1]);
  let startupMs;
  try {
    startupMs = await waitHealthy(urlNow, child, lines, t0, "workerd host", { pollMs, timeoutMs, signal });
  } catch (e) {
    await stopChild(child);
    throw e;
  }
  return { url, port: Number(new URL(url).port), inspectorPort, persistDir, lines, startupMs, pid: child.pid, stop: () => stopChild(child) };
}

/**
 * Start `wrangler dev` (local workerd behind wrangler's dev proxy) for
 * `toml`, with `vars` in a generated .dev.vars. Same result shape as
 * startWorkerd; used for the "under wrangler dev" reference figures.
 */
export async function startWrangler({ toml, vars, persistDir, port, pollMs = 20, timeoutMs = 90_000 }) {
  port ??= await freePort();
  const inspectorPort = await freePort();
  persistDir ??= tempDir();
  const tomlPath = writeConfig(persistDir, toml);
  const configDir = dirname(tomlPath);
  writeFileSync(join(configDir, ".dev.vars"), devVarsText(vars));
  const args = [
    "dev", "--config", tomlPath,
    "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort),
    "--persist-to", join(persistDir, "state"), "--show-interactive-dev-session=false",
    "--log-level", "log",
  ];
  const t0 = performance.now();
  const child = trackChild(spawn(WRANGLER, args, { cwd: configDir, stdio: ["ignore", "pipe", "pipe"], detached: true, env: childEnv() }));
  const lines = [];
  tail(child.stdout, lines);
  tail(child.stderr, lines);
  const url = `http://127.0.0.1:${port}`;
  let startupMs;
  try {
    startupMs = await waitHealthy(() => url, child, lines, t0, "wrangler dev", { pollMs, timeoutMs });
  } catch (e) {
    await stopChild(child);
    throw e;
  }
  return { url, port, inspectorPort, persistDir, lines, startupMs, pid: child.pid, stop: () => stopChild(child) };
}

/** Run `cmd args` and collect stdout/stderr (rejects on non-zero exit). */
export function run(cmd, args, opts = {}) {
  return new Promise((res, rej) => {
    execFile(cmd, args, { maxBuffer: 64 << 20, env: childEnv(opts.env), cwd: opts.cwd, timeout: opts.timeout ?? 120_000 },
      (err, stdout, stderr) => (err ? rej(Object.assign(err, { stdout, stderr })) : res({ stdout, stderr })));
  });
}

/**
 * One wrk phase. Returns requests/s, latency percentiles (ms) and errors.
 * `connections` = fixed concurrency; one wrk thread (the machine has 2 cores
 * and the system under test needs them). `vary`: a field every request sets
 * to a value no other request of this process has (bench/wrk/post.lua;
 * `nonce: true` is `vary: "excludeProducts"`, a field of getVouchers' cache
 * key). `expectCache`: count the answers whose `x-plumgate-cache` is not
 * this (`cache_mismatch`).
 */
let varySeed = 0;
export async function wrk({ url, body, auth, vary, nonce = false, expectCache, method = "POST", connections, seconds }) {
  const { stdout } = await run("wrk", [
    "-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", WRK_LUA, url,
  ], {
    env: {
      BENCH_BODY: body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body),
      BENCH_AUTH: auth ?? "",
      BENCH_VARY: vary ?? (nonce ? "excludeProducts" : ""),
      BENCH_VARY_SEED: String(++varySeed),
      BENCH_EXPECT_CACHE: expectCache ?? "",
      BENCH_METHOD: method,
    },
    timeout: (seconds + 30) * 1000,
  });
  const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const j = JSON.parse(line.slice(9));
  const secs = j.duration_us / 1e6;
  const errors = j.connect_errors + j.read_errors + j.write_errors + j.timeouts;
  return {
    connections,
    seconds,
    requests: j.requests,
    rps: j.requests / secs,
    p50_ms: j.p50_us / 1000,
    p90_ms: j.p90_us / 1000,
    p99_ms: j.p99_us / 1000,
    mean_ms: j.mean_us / 1000,
    max_ms: j.max_us / 1000,
    // Not 2xx, 3xx included (post.lua; wrk's status_errors are > 399 only).
    non2xx: j.non2xx,
    socket_errors: errors,
    cache_mismatch: j.cache_mismatch,
  };
}

/**
 * A bench tool's command line: `opt(name, default)` reads `--name value`,
 * `flag(name)` whether `--name` is there, `positional` is every other
 * argument. `flags` names the tool's options that take no value (ab.mjs's
 * `--threads`): the word after one of them is a positional argument, not
 * its value (`ab.mjs --runtime-key A B` has the targets A and B).
 */
export function cliArgs(flags = [], argv = process.argv.slice(2)) {
  const takesValue = (a) => a.startsWith("--") && !flags.includes(a);
  const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
  const flag = (name) => argv.includes(name);
  const positional = argv.filter((a, i) => !a.startsWith("--") && !(i > 0 && takesValue(argv[i - 1])));
  return { opt, flag, positional };
}

/**
 * The settings bench/run.mjs reads from the environment: a run with any of
 * them set (shorter phases, fewer rounds, other connections) is not the
 * record's run.
 */
export const SETTINGS_ENV = ["BENCH_ROUNDS", "BENCH_SECONDS", "BENCH_LATENCY_SECONDS", "BENCH_CONNECTIONS", "BENCH_CATALOG_ROUNDS"];

/**
 * Why bench/run.mjs, given `argv` and `env`, leaves BENCHMARKS.md's
 * generated block and bench/last-run.json alone ("" when it refreshes
 * them): a full run of one build in workerd with the default settings
 * does (`--no-write`: not); a `--quick`, `--wrangler-dev` or `--compare`
 * run, or one with a setting from the environment (`SETTINGS_ENV`, set to
 * anything but ""), measures something else, and writes only
 * bench/results/ unless `--write`.
 */
export function recordSkipped(argv, env = process.env) {
  const has = (name) => argv.includes(name);
  if (has("--write")) return "";
  const flags = ["--no-write", "--quick", "--wrangler-dev", "--compare"].filter(has);
  const vars = SETTINGS_ENV.filter((name) => env[name]);
  return [
    ...(flags.length ? [flags.join(" ")] : []),
    ...(vars.length ? [`settings from the environment: ${vars.map((name) => `${name}=${env[name]}`).join(", ")}`] : []),
  ].join("; ");
}

/** Whether bench/run.mjs refreshes the record (`recordSkipped` is ""). */
export function writesRecord(argv, env = process.env) {
  return recordSkipped(argv, env) === "";
}

/**
 * bench/last-run.json's text for a run's `results`: without the run-wide
 * `rounds` and the cold start's `samples` (bench/results/latest.json keeps
 * them whole), and with each row's `rounds` cut to what the paired figures
 * and their spreads are computed from: per round, the load phase's
 * requests, rps, p50 and p99, the latency phase's p50 and p99, and the CPU
 * per request, in the shape verdict.mjs's `pairedIn` and `spreadIn` read.
 * So a record can be read again at another statistic or rank.
 */
export function recordText(results) {
  const pick = (o, keys) => (o ? Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]])) : undefined);
  const cut = (x) => ({ load: pick(x.load, ["requests", "rps", "p50_ms", "p99_ms"]), lat: pick(x.lat, ["p50_ms", "p99_ms"]), cpu_ms_per_req: x.cpu_ms_per_req });
  const { rounds: _all, ...rest } = results;
  const replacer = (k, v) => {
    if (k === "samples" && typeof v === "object") return undefined;
    if (k === "rounds" && typeof v === "object") return Array.isArray(v) && v.every((x) => x?.load) ? v.map(cut) : undefined;
    return v;
  };
  return JSON.stringify(rest, replacer, 2) + "\n";
}

/**
 * Run a bench tool's `main(stops)` bounded in time: whatever it pushes on
 * `stops` (sandbox, workers) is stopped, newest first, when it ends, fails
 * (exit 2) or passes `minutes` (a hard stop, exit 2).
 */
export function runBounded(name, minutes, main) {
  const stops = [];
  const stopAll = async () => { for (const s of stops.reverse()) await s().catch(() => {}); };
  const hardStop = setTimeout(async () => { console.error(`${name}: hard stop after ${minutes} minutes`); await stopAll(); process.exit(2); }, minutes * 60_000);
  return main(stops)
    .then(async () => { await stopAll(); clearTimeout(hardStop); })
    .catch(async (e) => { console.error(e.stack || e); await stopAll(); process.exit(2); });
}

export { sleep };

/** `[pid, stat line]` of every process in process group `pgid`, from /proc. */
export function groupStats(pgid) {
  const out = [];
  let entries = [];
  try { entries = readdirSync("/proc"); } catch { return out; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${e}/stat`, "utf8"); } catch { continue; }
    // pgrp is field 5: the third after the ")" that ends the command name.
    if (Number(statFields(stat)[2]) === pgid) out.push([e, stat]);
  }
  return out;
}

/** The fields of a /proc stat line after the command name (f[0] = field 3). */
const statFields = (stat) => stat.slice(stat.lastIndexOf(")") + 2).split(" ");

/** CPU seconds (user + system: fields 14 and 15) in a /proc stat line. */
const statCpuSeconds = (stat) => { const f = statFields(stat); return (Number(f[11]) + Number(f[12])) / 100; }; // USER_HZ

/**
 * CPU seconds (user + system) used so far by every process in process group
 * `pgid` (a `wrangler dev` started detached: wrangler's node process and its
 * workerd), read from /proc. Linux only; 0 when unreadable, which the
 * verdict's CPU line fails (bench/verdict.mjs, `cpuProblems`).
 */
export function groupCpuSeconds(pgid) {
  return groupStats(pgid).reduce((sum, [, stat]) => sum + statCpuSeconds(stat), 0);
}

/**
 * CPU seconds (user + system) of process group `pgid`, by "process/thread"
 * name (threads of one name summed).
 */
export function groupThreadCpuSeconds(pgid) {
  const out = new Map();
  const name = (stat) => stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  for (const [pid, stat] of groupStats(pgid)) {
    let tasks = [];
    try { tasks = readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const t of tasks) {
      let ts;
      try { ts = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8"); } catch { continue; }
      const k = `${name(stat)}/${name(ts)}`;
      out.set(k, (out.get(k) ?? 0) + statCpuSeconds(ts));
    }
  }
  return out;
}
