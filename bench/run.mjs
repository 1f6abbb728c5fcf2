// plumgate benchmark: one run, side by side, loopback only, bounded in time.
//
//   bash scripts/bench.sh            (builds, installs wrk, then runs this)
//   node bench/run.mjs --build-dir DIR [--quick] [--no-write | --write] [--hot-only]
//                      [--compare DIR [--compare-label TEXT]] [--wrangler-dev] [--sandbox-bin PATH]
//
// Every worker runs in local workerd through Miniflare (bench/workerd-host.mjs)
// with the bindings its wrangler.toml declares, reached on a direct socket
// (not through Miniflare's dev-only entry Worker); `--wrangler-dev` runs them
// under `wrangler dev` instead (its proxy Worker and inspector in front),
// for reference.
//
// Scenarios (all in the same run, so ratios compare like with like):
//   1. hot path (token cached, uncached operation getOrderHistory):
//      direct sandbox call vs plumgate vs the hand-written JS Worker
//      (bench/js-worker), the same JS Worker doing plumgate's per-request
//      duties (timeout, whole-body scan, request id, contract log line:
//      row †, the row the budgets judge plumgate against; verdict.mjs),
//      plus two floors: a no-op JS Worker route (what the
//      runtime costs on its own) and plumgate's /healthz (what entering the
//      wasm worker, its log line and a JSON answer cost, with no upstream);
//      and plumgate called with runtime keys (POST /v1/keys), one of them
//      with requests_per_minute: looked up and counted in the isolate's
//      copy of the key directory, synced in the background; each paired
//      with the plain plumgate row per round;
//   1b. sequential samples of what the isolate has to ask for: a runtime
//      key on its first use (a KeyRegistry round trip) and a lease on every
//      call (a RateLimiter round trip);
//   2. refresh storm: 500 concurrent calls on a cold token cache;
//   3. catalog: getVouchers edge-cache hit vs miss (a cache-key field
//      varied), and a hit while Xoxoday has getVouchers under a penalty;
//   4. cold start: fresh worker process to its first /healthz 200, plumgate
//      and the JS Worker paired per rep (the budget takes the median
//      difference);
//   5. size: index_bg.wasm raw and gzipped (zlib level 9, Node's gzipSync)
//      and `wrangler deploy --dry-run`.
// Xoxoday's limits are raised on both sides (lib.mjs: BENCH_RATE_LIMITS,
// liftSandboxLimits): the bench measures plumgate's cost, not the budgets;
// any answer that is not 2xx (3xx included), and a phase that served no
// request, fail every budget line that reads its row (bench/verdict.mjs).
// It prints a table and a budget check (PASS/FAIL), writes
// bench/results/latest.{json,md}, and (unless --no-write) refreshes the
// generated block of BENCHMARKS.md and bench/last-run.json: on a full run
// of one build in workerd with the default settings only, as --quick,
// --wrangler-dev and --compare runs, and runs with a setting from the
// environment (BENCH_ROUNDS and the rest, lib.mjs: SETTINGS_ENV), are not
// the record (--write: refresh them anyway).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdirSync, statSync } from "node:fs";
import { cpus, totalmem, loadavg, release } from "node:os";
import { join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import {
  BENCH_RATE_LIMITS, ROOT, cleanup, groupCpuSeconds, jsWorkerToml, liftSandboxLimits, makeKey, plumgateToml, run, sleep, startSandbox,
  recordSkipped, recordText, startWorkerd, startWrangler, tempDir, wrk,
} from "./lib.mjs";
import { CATALOG_ROWS, HOT_ROWS, changes, markdown } from "./report.mjs";
import { GZIP_LABEL, budgets, errorsOf, f0, f1, f2, median, pairedIn, quantile, spreadIn } from "./verdict.mjs";

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const QUICK = flag("--quick");
// --wrangler-dev: run the workers under `wrangler dev` (its proxy Worker and
// inspector in front) instead of plain local workerd; for reference only.
const UNDER_WRANGLER = flag("--wrangler-dev");
const startTarget = UNDER_WRANGLER ? startWrangler : startWorkerd;
const RUNTIME = UNDER_WRANGLER ? "wrangler dev" : "workerd";
// --hot-only: scenarios 1 and 3 only, printed, nothing written but
// bench/results/hot-only.json (for A/B experiments with --compare).
const ONLY_HOT = flag("--hot-only");
// BENCHMARKS.md's generated block and bench/last-run.json: full runs of
// one build in workerd with the default settings only (lib.mjs,
// recordSkipped; --write: anyway).
const NO_RECORD = recordSkipped(argv);
const WRITE = NO_RECORD === "";
const BUILD_DIR = resolve(opt("--build-dir", join(ROOT, "build")));
const SANDBOX_BIN_DEFAULT = join(ROOT, "target/release/plumgate-sandbox");
// --compare DIR [--compare-label TEXT]: a second plumgate build, loaded side
// by side with the first in the hot-path and catalog scenarios (A/B of a
// proposed change; budgets still judge --build-dir).
const ALT_DIR = opt("--compare") ? resolve(opt("--compare")) : null;
const ALT_LABEL = opt("--compare-label", "plumgate (compared build)");
const SANDBOX_BIN = resolve(opt("--sandbox-bin", SANDBOX_BIN_DEFAULT));
const RESULTS = join(ROOT, "bench/results");
const CONC = Number(process.env.BENCH_CONNECTIONS || 32);
// Many short interleaved rounds (start order rotated each round) rather than
// one long phase per target: on a shared machine, load from other work comes
// in bursts, and pairing targets within a round keeps ratios honest. Targets
// a budget compares run one right after the other (`group`, interleaved()).
const LOAD_SECS = Number(process.env.BENCH_SECONDS || (QUICK ? 3 : 5));
const LAT_SECS = Number(process.env.BENCH_LATENCY_SECONDS || (QUICK ? 2 : 3));
const ROUNDS = Number(process.env.BENCH_ROUNDS || (QUICK ? 1 : 5));
const STORM = 500;
// Rounds of the catalog's hit-under-penalty trio (its control, the plain hit).
const CAT_ROUNDS = Number(process.env.BENCH_CATALOG_ROUNDS || ROUNDS);
// Fresh runtime keys timed on first use (sequential).
const KEY_SAMPLES = QUICK ? 8 : 20;
// Cold-start reps: each starts plumgate without assets, the JS Worker and
// the JS Worker with plumgate's bindings (~1 s apiece). 9 reps left the
// median difference uncertain by ~±10 ms against a 5-ms budget (runs of
// one build read −2.9 to +18.1 ms); 25 bring that to ~±5 ms (bench/cold.mjs
// with 40 pairs: ±4–5 ms). plumgate as shipped (with its assets) and its
// first operation are timed in the first COLD_SHIPPED_REPS only: no budget
// reads them.
const COLD_REPS = QUICK ? 1 : 25;
const COLD_SHIPPED_REPS = QUICK ? 1 : 5;

const ORDER_HISTORY = { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 };
const VOUCHERS = { limit: 10, page: 1 };
const envelope = (query, data) => ({ query, tag: "plumProAPI", variables: { data } });
const OH_QUERY = "plumProAPI.mutation.getOrderHistory";
const GV_QUERY = "plumProAPI.mutation.getVouchers";

const startedAt = new Date();
const t0 = performance.now();
const log = (...a) => console.error(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(3)}s]`, ...a);
const cleanups = [];
let stopping = false;
async function stopAll() {
  if (stopping) return;
  stopping = true;
  for (const f of cleanups.reverse()) { try { await f(); } catch { /* best effort */ } }
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { stopAll().then(() => process.exit(130)); });
// Hard bound on the whole run, whatever happens: 15 minutes for the
// default settings (a run takes ~12), plus 1.5 times what longer settings
// add to the rounds. At the default phase lengths (8 s a target) a hot-path
// round takes ~90 s and a catalog round ~25 s, so BENCH_ROUNDS=10 (stopped
// in its ninth round by the plain 15 minutes) gets ~29.
const roundsMs = (rounds, catRounds, phaseSecs) => (phaseSecs / 8) * (rounds * 90_000 + catRounds * 25_000);
const HARD_LIMIT_MS = Math.round(15 * 60_000 + 1.5 * Math.max(0, roundsMs(ROUNDS, CAT_ROUNDS, LOAD_SECS + LAT_SECS) - roundsMs(5, 5, 8)));
setTimeout(() => { log(`hard time limit (${(HARD_LIMIT_MS / 60_000).toFixed(1)} min for these settings) reached, stopping`); stopAll().then(() => process.exit(2)); }, HARD_LIMIT_MS).unref();

function sh(cmd, args) {
  // `wrk --version` prints its version and exits 1: keep stdout either way.
  try { return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); } catch (e) { return String(e.stdout ?? "").trim(); }
}

function machine() {
  const c = cpus();
  return {
    cpu: `${c[0]?.model ?? "?"} × ${c.length}`,
    memory_gib: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    wrangler: sh(join(ROOT, "node_modules/.bin/wrangler"), ["--version"]).split("\n").pop(),
    wrk: sh("wrk", ["--version"]).split("\n")[0].replace(/ Copyright.*/, ""),
    git: `${sh("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"])}${sh("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "crates", "Cargo.toml", "Cargo.lock"]) ? " (+ uncommitted changes in src/crates)" : ""}`,
  };
}

function loadNow() {
  return loadavg().map((x) => x.toFixed(2)).join(" ");
}

async function post(url, body, auth, headers = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}), ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: Object.fromEntries(res.headers.entries()), text };
}

async function expect200(what, url, body, auth) {
  const r = await post(url, body, auth);
  if (r.status !== 200) throw new Error(`${what}: expected 200, got ${r.status}: ${r.text.slice(0, 300)}`);
  return r;
}

// ------------------------------------------------------------------ setup

const results = {
  started_at: startedAt.toISOString(),
  machine: machine(),
  load_at_start: loadNow(),
  settings: { connections: CONC, load_seconds: LOAD_SECS, latency_seconds: LAT_SECS, rounds: ROUNDS, catalog_rounds: CAT_ROUNDS, key_samples: KEY_SAMPLES, storm: STORM, cold_reps: COLD_REPS, cold_shipped_reps: COLD_SHIPPED_REPS },
};

/**
 * A plumgate worker. `assets: false` (the default here) leaves out the
 * [assets] table (the demo page): locally that puts Miniflare's asset-router
 * Worker in front of every request, a hop the JS baseline does not have, so
 * the like-for-like rows run without it and one row shows it separately.
 */
async function plumgate(sandbox, keys, { vars: extraVars = {}, assets = false, buildDir = BUILD_DIR } = {}) {
  const dir = tempDir("plumgate-bench-pg-");
  const w = await startTarget({
    toml: plumgateToml(buildDir, { assets }),
    persistDir: dir,
    vars: {
      XOXODAY_OAUTH_URL: sandbox.oauthUrl,
      XOXODAY_CLIENT_ID: "plumgate-dev-client",
      XOXODAY_CLIENT_SECRET: "plumgate-dev-secret",
      XOXODAY_REFRESH_TOKEN: "plumgate-dev-refresh-token",
      GATEWAY_KEYS: JSON.stringify(keys.map((k) => k.entry)),
      // The load is far over Xoxoday's per-minute limits: raised to the
      // most plumgate accepts, as the sandbox's are (lib.mjs). The
      // limiter's check still runs (leases from memory).
      XOXODAY_RATE_LIMITS: BENCH_RATE_LIMITS,
      ...extraVars,
    },
  });
  const stop = async () => { await w.stop(); cleanup(dir); };
  cleanups.push(stop);
  return { ...w, stop };
}

// `variant`: extra vars for the worker (see bench/js-worker/worker.js).
// `bindings`: started with plumgate's Durable Object bindings (cold start).
async function jsWorker(sandbox, key, refreshToken, { bindings = false, ...opts } = {}, variant = {}) {
  const dir = tempDir("plumgate-bench-js-");
  const w = await startTarget({
    toml: jsWorkerToml({ bindings }),
    persistDir: dir,
    vars: {
      XOXODAY_OAUTH_URL: sandbox.oauthUrl,
      XOXODAY_CLIENT_ID: "plumgate-dev-client",
      XOXODAY_CLIENT_SECRET: "plumgate-dev-secret",
      XOXODAY_REFRESH_TOKEN: refreshToken,
      CALLER_KEY_SHA256: key.sha256,
      ...variant,
    },
    ...opts,
  });
  const stop = async () => { await w.stop(); cleanup(dir); };
  cleanups.push(stop);
  return { ...w, stop };
}

// ------------------------------------------------------------ scenarios

async function hotPath(sandbox, pg, pgHot, js, jsFull, key, jsKey, alt, pgAssets, runtimeKeys) {
  const access = (await sandbox.admin("/tokens/issue", {})).access_token;
  const targets = [
    { id: "direct", label: "sandbox direct", url: `${sandbox.url}/chef/v1/oauth/api`, body: envelope(OH_QUERY, ORDER_HISTORY), auth: `Bearer ${access}`, pgid: sandbox.pid },
    // A worker process of its own, as row † has: a process's p99 follows
    // how much load it has served (BENCHMARKS.md, "p99 at 32 connections").
    // Run right before or right after row † (the budgets' pair), in turn.
    { id: "plumgate", label: "plumgate (Rust/wasm)", url: `${pgHot.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${key.key}`, pgid: pgHot.pid, group: "budget" },
    { id: "js_full", label: "JS Worker + plumgate's per-request duties†", url: `${jsFull.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${jsKey.key}`, pgid: jsFull.pid, group: "budget" },
    // The runtime-key rows' reference: the plain call on their own worker.
    // The three run as a block, the reference before the key rows in one
    // round and after them in the next (a worker's second phase runs a few
    // per cent faster than its first: bench/keys-ab.mjs).
    { id: "plumgate_keys_ref", label: "plumgate on the runtime-key rows' worker (their reference)", url: `${pg.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${key.key}`, pgid: pg.pid, group: "keys" },
    { id: "plumgate_runtime_key", label: "plumgate, runtime key (isolate-cached)", url: `${pg.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${runtimeKeys.plain}`, pgid: pg.pid, group: "keys" },
    { id: "plumgate_key_limits", label: "plumgate, runtime key with requests_per_minute", url: `${pg.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${runtimeKeys.limited}`, pgid: pg.pid, group: "keys" },
    { id: "plumgate_dropin", label: "plumgate drop-in route", url: `${pg.url}/chef/v1/oauth/api`, body: envelope(OH_QUERY, ORDER_HISTORY), auth: `Bearer ${key.key}`, pgid: pg.pid },
    { id: "plumgate_assets", label: "plumgate + demo-page assets layer", url: `${pgAssets.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${key.key}`, pgid: pgAssets.pid },
    { id: "js", label: "hand-written JS Worker", url: `${js.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${jsKey.key}`, pgid: js.pid },
    { id: "pg_floor", label: "plumgate GET /healthz (wasm floor)", url: `${pg.url}/healthz`, method: "GET", expect: 200, pgid: pg.pid },
    { id: "noop", label: `no-op JS Worker (${RUNTIME} floor)`, url: `${js.url}/__noop`, method: "GET", expect: 204, pgid: js.pid },
  ];
  if (alt) targets.splice(3, 0, { id: "alt", label: ALT_LABEL, url: `${alt.url}/v1/ops/getOrderHistory`, body: ORDER_HISTORY, auth: `Bearer ${key.key}`, pgid: alt.pid });
  // Correctness and warm-up: every target answers 200 before it is loaded.
  for (const t of targets) {
    if (t.method === "GET") { const r = await fetch(t.url); await r.text(); if (r.status !== t.expect) throw new Error(`${t.id}: ${r.status}`); continue; }
    await expect200(t.id, t.url, t.body, t.auth);
    await wrk({ ...t, connections: 4, seconds: 1 });
  }
  const { rows: out, rounds } = await interleaved(targets, ROUNDS, "hot path");
  // Paired within each round (same minute, same machine load).
  const paired = pairedIn(rounds);
  out.paired = {
    plumgate_vs_js_rps: paired("plumgate", "js", (a, b) => a.load.rps / b.load.rps),
    runtime_key_vs_static_rps: paired("plumgate_runtime_key", "plumgate_keys_ref", (a, b) => a.load.rps / b.load.rps),
    runtime_key_vs_static_cpu: paired("plumgate_runtime_key", "plumgate_keys_ref", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    runtime_key_over_static_p50_ms: paired("plumgate_runtime_key", "plumgate_keys_ref", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    key_limits_vs_static_rps: paired("plumgate_key_limits", "plumgate_keys_ref", (a, b) => a.load.rps / b.load.rps),
    key_limits_vs_static_cpu: paired("plumgate_key_limits", "plumgate_keys_ref", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    key_limits_over_static_p50_ms: paired("plumgate_key_limits", "plumgate_keys_ref", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    plumgate_added_p50_ms: paired("plumgate", "direct", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    // Quoted beside the added-p50 budget, paired as its figure is.
    noop_added_p50_ms: paired("noop", "direct", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    js_full_added_p50_ms: paired("js_full", "direct", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    plumgate_over_floor_p50_ms: paired("plumgate", "noop", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    js_over_floor_p50_ms: paired("js", "noop", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    plumgate_vs_js_cpu: paired("plumgate", "js", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    plumgate_vs_js_full_rps: paired("plumgate", "js_full", (a, b) => a.load.rps / b.load.rps),
    plumgate_vs_js_full_cpu: paired("plumgate", "js_full", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    plumgate_vs_js_full_load_p99: paired("plumgate", "js_full", (a, b) => a.load.p99_ms / b.load.p99_ms),
    js_full_vs_js_rps: paired("js_full", "js", (a, b) => a.load.rps / b.load.rps),
    assets_vs_js_rps: paired("plumgate_assets", "js", (a, b) => a.load.rps / b.load.rps),
    assets_added_p50_ms: paired("plumgate_assets", "direct", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    wasm_floor_over_js_floor_cpu_ms: paired("pg_floor", "noop", (a, b) => a.cpu_ms_per_req - b.cpu_ms_per_req),
    wasm_floor_over_js_floor_p50_ms: paired("pg_floor", "noop", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
  };
  if (alt) out.paired.alt_vs_plumgate_rps = paired("alt", "plumgate", (a, b) => a.load.rps / b.load.rps);
  if (alt) out.paired.alt_vs_js_rps = paired("alt", "js", (a, b) => a.load.rps / b.load.rps);
  // The judged lines' ranges over the rounds (verdict.mjs's `spreadIn`: the
  // lowest to highest up to 8 rounds, order statistics further in from 9).
  const spread = spreadIn(rounds);
  out.spread = {
    plumgate_vs_js_full_rps: spread("plumgate", "js_full", (a, b) => a.load.rps / b.load.rps),
    plumgate_vs_js_full_cpu: spread("plumgate", "js_full", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    plumgate_vs_js_full_load_p99: spread("plumgate", "js_full", (a, b) => a.load.p99_ms / b.load.p99_ms),
    plumgate_added_p50_ms: spread("plumgate", "direct", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    runtime_key_vs_static_rps: spread("plumgate_runtime_key", "plumgate_keys_ref", (a, b) => a.load.rps / b.load.rps),
    key_limits_vs_static_rps: spread("plumgate_key_limits", "plumgate_keys_ref", (a, b) => a.load.rps / b.load.rps),
  };
  return out;
}

/**
 * `n` rounds of `measure` over `targets`, the start order rotated each
 * round; each target's row holds the medians over the rounds, `rounds` each
 * round's figures by target id (for ratios paired within a round). Targets
 * listed next to each other with the same `group` run back to back as one
 * block, which rotates like a target, their order reversed every other
 * round: a pair compared by a budget is measured within seconds, and
 * neither always goes first (a phase right after another on the same
 * worker runs a few per cent faster, bench/keys-ab.mjs).
 */
async function interleaved(targets, n, what) {
  const blocks = [];
  for (const t of targets) {
    const last = blocks.at(-1);
    if (t.group && last?.[0].group === t.group) last.push(t);
    else blocks.push([t]);
  }
  const rounds = {};
  for (let r = 0; r < n; r++) {
    log(`${what} round ${r + 1}/${n}`);
    const order = blocks.map((_, i) => blocks[(i + r) % blocks.length]).flatMap((b) => (r % 2 ? [...b].reverse() : b));
    for (const t of order) (rounds[t.id] ??= []).push(await measure(t));
  }
  const rows = {};
  for (const t of targets) {
    const rs = rounds[t.id];
    rows[t.id] = {
      label: t.label,
      ...(t.expectCache ? { expect_cache: t.expectCache } : {}),
      rps: median(rs.map((x) => x.load.rps)),
      rps_min: Math.min(...rs.map((x) => x.load.rps)),
      rps_max: Math.max(...rs.map((x) => x.load.rps)),
      cpu_ms_per_req: median(rs.map((x) => x.cpu_ms_per_req)),
      load_p50_ms: median(rs.map((x) => x.load.p50_ms)),
      load_p99_ms: median(rs.map((x) => x.load.p99_ms)),
      p50_ms: median(rs.map((x) => x.lat.p50_ms)),
      p99_ms: median(rs.map((x) => x.lat.p99_ms)),
      ...errorsOf(rs),
      rounds: rs,
    };
  }
  return { rows, rounds };
}

/** One throughput phase (c=CONC) with the target's CPU per request, then one latency phase (c=1). */
async function measure(t) {
  const cpu0 = t.pgid ? groupCpuSeconds(t.pgid) : 0;
  const load = await wrk({ ...t, connections: CONC, seconds: LOAD_SECS });
  const cpu1 = t.pgid ? groupCpuSeconds(t.pgid) : 0;
  const lat = await wrk({ ...t, connections: 1, seconds: LAT_SECS });
  return { load, lat, cpu_ms_per_req: t.pgid && load.requests ? ((cpu1 - cpu0) * 1000) / load.requests : undefined };
}

async function storm(sandbox, key, jsKey) {
  const out = {};
  for (const which of ["plumgate", "js"]) {
    log(`refresh storm: ${which}`);
    const pair = await sandbox.admin("/tokens/issue", {});
    const w = which === "plumgate"
      ? await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: pair.refresh_token } })
      : await jsWorker(sandbox, jsKey, pair.refresh_token);
    await sandbox.admin("/counters/reset", {});
    const url = `${w.url}/v1/ops/getOrderHistory`;
    const auth = `Bearer ${(which === "plumgate" ? key : jsKey).key}`;
    const body = JSON.stringify(ORDER_HISTORY);
    const start = performance.now();
    const times = [];
    const statuses = {};
    await Promise.all(Array.from({ length: STORM }, async () => {
      let status;
      try {
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: auth }, body, signal: AbortSignal.timeout(60_000) });
        await res.arrayBuffer();
        status = res.status;
      } catch (e) { status = e.name === "TimeoutError" ? "timeout" : "error"; }
      times.push(performance.now() - start);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }));
    const wall = performance.now() - start;
    const c = await sandbox.admin("/counters");
    out[which] = {
      wall_ms: wall,
      first_answer_ms: Math.min(...times),
      p50_answer_ms: median(times),
      statuses,
      refresh_calls: c.refresh_calls,
      refresh_success: c.refresh_success,
      peak_concurrent_refreshes: c.peak_concurrent_refreshes,
      api_calls: c.api_calls?.getOrderHistory ?? 0,
      spent_refresh_tokens_used: c.spent_refresh_tokens_used,
    };
    await w.stop();
  }
  return out;
}

/**
 * getVouchers through plumgate's edge cache. A miss varies `excludeProducts`
 * (a field of the cache key, `plumgate_core::ops::cache_key`, with a value
 * no product has, so Xoxoday's answer is the same page). A call with a
 * field outside the key (`benchNonce`) skips the cache, a miss: the field
 * may change the answer. Then a hit under Xoxoday's penalty
 * ([`underPenalty`]), paired round by round with a plain hit.
 */
async function catalog(sandbox, pg, key, alt) {
  const access = (await sandbox.admin("/tokens/issue", {})).access_token;
  const url = `${pg.url}/v1/ops/getVouchers`;
  const auth = `Bearer ${key.key}`;
  const cacheOf = async (what, u, body, want) => {
    const r = await expect200(what, u, body, auth);
    if (r.headers["x-plumgate-cache"] !== want) throw new Error(`${what}: expected x-plumgate-cache ${want}, got ${r.headers["x-plumgate-cache"]}`);
    return r;
  };
  const first = await expect200("getVouchers", url, VOUCHERS, auth);
  await cacheOf("getVouchers again", url, VOUCHERS, "hit");
  await cacheOf("getVouchers with an unknown field", url, { ...VOUCHERS, benchNonce: "probe" }, "miss");
  const probe = await cacheOf("getVouchers with another excludeProducts", url, { ...VOUCHERS, excludeProducts: "80000000001" }, "miss");
  if (probe.text.length !== first.text.length) throw new Error(`a miss's answer (${probe.text.length} bytes) is not the page a hit serves (${first.text.length} bytes)`);
  const targets = [
    { id: "miss", label: "plumgate getVouchers, cache miss", url, body: VOUCHERS, auth, vary: "excludeProducts", expectCache: "miss", pgid: pg.pid },
    { id: "direct", label: "sandbox getVouchers direct", url: `${sandbox.url}/chef/v1/oauth/api`, body: envelope(GV_QUERY, VOUCHERS), auth: `Bearer ${access}`, pgid: sandbox.pid },
  ];
  if (alt) {
    const altUrl = `${alt.url}/v1/ops/getVouchers`;
    await expect200("alt getVouchers", altUrl, VOUCHERS, auth);
    targets.splice(1, 0,
      { id: "alt_hit", label: `${ALT_LABEL}, hit`, url: altUrl, body: VOUCHERS, auth, expectCache: "hit", pgid: alt.pid },
      { id: "alt_miss", label: `${ALT_LABEL}, miss`, url: altUrl, body: VOUCHERS, auth, vary: "excludeProducts", expectCache: "miss", pgid: alt.pid });
  }
  const { rows } = await interleaved(targets, 1, "catalog");
  const pen = await underPenalty(sandbox, key, { id: "hit", label: "plumgate getVouchers, cache hit", url, body: VOUCHERS, auth, expectCache: "hit", pgid: pg.pid });
  return { response_bytes: first.text.length, ...rows, ...pen.rows, paired: pen.paired, spread: pen.spread, penalty: pen.penalty };
}

/**
 * A catalog hit while Xoxoday has getVouchers under a penalty. A second
 * plumgate fills its cache, then the sandbox's getVouchers limit is set to
 * one a minute: the next call the cache cannot answer goes to Xoxoday and
 * meets the penalty (`penaltySeconds`), which plumgate's limiter holds from
 * then on. Hits on it (`hit_penalty`) are then loaded in rounds with plain
 * hits on a third plumgate started with it and never penalised
 * (`hit_control`: same age, same load served, so the pair differs only in
 * the penalty; the main plumgate has served minutes of load by then, which
 * moves a process's figures by itself) and on the main plumgate (`plain`,
 * for reference); all must answer 200 `hit`, a call the cache cannot
 * answer must be refused by the penalised plumgate itself (`429
 * rate_limited`, before and after the rounds), and no getVouchers call may
 * reach the sandbox meanwhile. The sandbox's limit is lifted again at once;
 * its penalty runs out on its own (nothing after this phase calls
 * getVouchers).
 */
async function underPenalty(sandbox, key, plain) {
  const pair = await sandbox.admin("/tokens/issue", {});
  const w = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: pair.refresh_token } });
  const ctlPair = await sandbox.admin("/tokens/issue", {});
  const ctl = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: ctlPair.refresh_token } });
  try {
    const url = `${w.url}/v1/ops/getVouchers`;
    const ctlUrl = `${ctl.url}/v1/ops/getVouchers`;
    const auth = `Bearer ${key.key}`;
    for (const [u, what] of [[url, "the penalised plumgate"], [ctlUrl, "the control"]]) {
      await expect200(`getVouchers (fill, ${what})`, u, VOUCHERS, auth);
      const hit = await expect200(`getVouchers (hit before the penalty, ${what})`, u, VOUCHERS, auth);
      if (hit.headers["x-plumgate-cache"] !== "hit") throw new Error(`not a hit before the penalty (${what}): ${hit.headers["x-plumgate-cache"]}`);
    }
    // Long enough for the rounds below, with room to spare.
    const secs = Math.ceil(CAT_ROUNDS * 3 * (LOAD_SECS + LAT_SECS + 3)) + 60;
    const { penalty_seconds: sandboxDefault } = await sandbox.admin("/config");
    await sandbox.admin("/config", { rate_limits: { getVouchers: 1 }, penalty_seconds: secs });
    let met;
    try {
      for (let i = 0; i < 3 && !met; i++) {
        const r = await post(url, { ...VOUCHERS, excludeProducts: `8100000000${i}` }, auth);
        if (r.status === 429) met = r;
        else if (r.status !== 200) throw new Error(`getVouchers before the penalty: ${r.status} ${r.text.slice(0, 200)}`);
      }
    } finally {
      await sandbox.admin("/config", { rate_limits: { getVouchers: 1_000_000_000 }, penalty_seconds: sandboxDefault });
    }
    if (!met) throw new Error("getVouchers never met the sandbox's penalty");
    const before = (await sandbox.admin("/counters")).api_calls?.getVouchers ?? 0;
    const refused = async (when, i) => {
      const r = await post(url, { ...VOUCHERS, excludeProducts: `8200000000${i}` }, auth);
      if (r.status !== 429 || !/penalty/.test(r.text)) throw new Error(`a miss ${when} the rounds: expected 429 rate_limited (penalty), got ${r.status} ${r.text.slice(0, 200)}`);
      return Number(r.headers["retry-after"]);
    };
    const retryAfter = await refused("before", 1);
    const targets = [
      plain,
      // The budget's pair back to back, alternating which goes first (`interleaved`).
      { id: "hit_control", label: "plumgate getVouchers, cache hit (a plumgate started with the penalised one)", url: ctlUrl, body: VOUCHERS, auth, expectCache: "hit", pgid: ctl.pid, group: "budget" },
      { id: "hit_penalty", label: "plumgate getVouchers, cache hit under Xoxoday's penalty", url, body: VOUCHERS, auth, expectCache: "hit", pgid: w.pid, group: "budget" },
    ];
    // Warm-up, as the hot path's: these workers are fresh, the main one has run for minutes.
    for (const t of targets) {
      const warm = await wrk({ ...t, connections: 4, seconds: 1 });
      if (warm.non2xx || warm.socket_errors || warm.cache_mismatch) throw new Error(`${t.id} warm-up: ${JSON.stringify(warm)}`);
    }
    const { rows, rounds } = await interleaved(targets, CAT_ROUNDS, "catalog hit under a penalty");
    await refused("after", 2);
    const upstream = ((await sandbox.admin("/counters")).api_calls?.getVouchers ?? 0) - before;
    if (upstream !== 0) throw new Error(`${upstream} getVouchers call(s) reached the sandbox during the penalty`);
    const paired = pairedIn(rounds);
    return {
      rows,
      penalty: { seconds: secs, rounds: CAT_ROUNDS, retry_after_at_start: retryAfter, upstream_calls_during: upstream },
      paired: {
        penalty_hit_vs_control_rps: paired("hit_penalty", "hit_control", (a, b) => a.load.rps / b.load.rps),
        penalty_hit_vs_control_cpu: paired("hit_penalty", "hit_control", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
        penalty_hit_over_control_p50_ms: paired("hit_penalty", "hit_control", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
        penalty_hit_vs_hit_rps: paired("hit_penalty", "hit", (a, b) => a.load.rps / b.load.rps),
        penalty_hit_vs_hit_cpu: paired("hit_penalty", "hit", (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
        penalty_hit_over_hit_p50_ms: paired("hit_penalty", "hit", (a, b) => a.lat.p50_ms - b.lat.p50_ms),
      },
      spread: { penalty_hit_vs_control_rps: spreadIn(rounds)("hit_penalty", "hit_control", (a, b) => a.load.rps / b.load.rps) },
    };
  } finally {
    await w.stop();
    await ctl.stop();
  }
}

/** Time one sequential call; it must answer `want`. */
async function timed(what, url, body, auth, want = 200) {
  const t = performance.now();
  const r = await post(url, body, auth);
  const ms = performance.now() - t;
  if (r.status !== want) throw new Error(`${what}: expected ${want}, got ${r.status}: ${r.text.slice(0, 300)}`);
  return ms;
}

const spread = (xs) => ({ n: xs.length, p50_ms: median(xs), p90_ms: quantile(xs, 0.9) });

/**
 * Runtime key, cold: a key the isolate's copy of the key directory does not
 * hold (new since the copy was fetched, or the copy older than
 * `plumgate_core::keys::MAX_AGE_MS`) makes its request wait for a
 * KeyRegistry sync (src/callers.rs). Each sample makes a key (POST
 * /v1/keys; making a key throws this isolate's copy away, as a key made in
 * another isolate is missing from it), calls getOrderHistory with it once
 * (cold) and again (isolate-cached), then revokes it, so the directory
 * keeps its size. Sequential, one connection.
 */
async function coldKeys(pg, adminKey) {
  const admin = `Bearer ${adminKey.key}`;
  const url = `${pg.url}/v1/ops/getOrderHistory`;
  const cold = [], cached = [], extra = [];
  for (let i = 0; i < KEY_SAMPLES; i++) {
    const id = `bench-cold-${i}`;
    const made = await post(`${pg.url}/v1/keys`, { id, scopes: ["orders:read"] }, admin);
    if (made.status !== 201) throw new Error(`POST /v1/keys: ${made.status} ${made.text.slice(0, 200)}`);
    const k = `Bearer ${JSON.parse(made.text).key}`;
    const a = await timed("cold runtime key", url, ORDER_HISTORY, k);
    const b = await timed("cached runtime key", url, ORDER_HISTORY, k);
    cold.push(a); cached.push(b); extra.push(a - b);
    const del = await fetch(`${pg.url}/v1/keys/${id}`, { method: "DELETE", headers: { authorization: admin } });
    await del.text();
    if (del.status !== 200) throw new Error(`DELETE /v1/keys/${id}: ${del.status}`);
  }
  return { cold: spread(cold), cached: spread(cached), extra_p50_ms: median(extra), extra_p90_ms: quantile(extra, 0.9) };
}

/**
 * The shared limiter's round trip. A lease lends at most a tenth of an
 * operation's budget, at least one call (`plumgate_core::limits::
 * max_lease`): a plumgate whose getOrderHistory budget is 19 a minute
 * therefore asks the RateLimiter object before every call. Sequential
 * calls on it are paired one by one with calls on the main plumgate
 * (leases of up to 1,000 calls, the most an isolate asks for at once,
 * `plumgate_core::limits::local::MAX_WANT`; spent from memory). The sample
 * stays under the budget (a lent call counts for 65 s); the calls after it
 * prove the budget was 19 (the 20th is refused).
 */
async function limiterLease(sandbox, key, pg) {
  const BUDGET = 19;
  const pair = await sandbox.admin("/tokens/issue", {});
  const w = await plumgate(sandbox, [key], {
    vars: { XOXODAY_REFRESH_TOKEN: pair.refresh_token, XOXODAY_RATE_LIMITS: JSON.stringify({ ...JSON.parse(BENCH_RATE_LIMITS), getOrderHistory: BUDGET }) },
  });
  try {
    const auth = `Bearer ${key.key}`;
    const leaseUrl = `${w.url}/v1/ops/getOrderHistory`;
    const plainUrl = `${pg.url}/v1/ops/getOrderHistory`;
    await timed("lease worker warm-up", leaseUrl, ORDER_HISTORY, auth); // token, first lease
    const leased = [], plain = [], extra = [];
    for (let i = 0; i < BUDGET - 4; i++) {
      const a = await timed("call with a lease round trip", leaseUrl, ORDER_HISTORY, auth);
      const b = await timed("plain call", plainUrl, ORDER_HISTORY, auth);
      leased.push(a); plain.push(b); extra.push(a - b);
    }
    for (let i = 0; i < 3; i++) await timed("call within the budget", leaseUrl, ORDER_HISTORY, auth);
    const over = await post(leaseUrl, ORDER_HISTORY, auth);
    if (over.status !== 429 || !over.text.includes(String(BUDGET))) throw new Error(`call ${BUDGET + 1} on a budget of ${BUDGET}: expected 429 rate_limited naming the limit, got ${over.status} ${over.text.slice(0, 200)}`);
    return { budget: BUDGET, leased: spread(leased), plain: spread(plain), extra_p50_ms: median(extra), extra_p90_ms: quantile(extra, 0.9) };
  } finally {
    await w.stop();
  }
}

async function coldStart(sandbox, key, jsKey) {
  // plumgate twice: as shipped (its demo-page assets put Miniflare's
  // asset-router Worker in front, one more Worker to start) and like for
  // like with the JS Worker, which has no assets; the budget judges the
  // latter, as the hot path's does. The JS Worker twice too: as the budget
  // has it, and with plumgate's Durable Object bindings, which cost any
  // Worker start-up time of their own (four classes, three migrations).
  const out = { plumgate: [], plumgate_first_op: [], plumgate_no_assets: [], js: [], js_bindings: [] };
  const startBare = async () => {
    const pair = await sandbox.admin("/tokens/issue", {});
    const bare = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: pair.refresh_token } });
    out.plumgate_no_assets.push(bare.startupMs);
    await bare.stop();
  };
  const startJs = async () => {
    const pair = await sandbox.admin("/tokens/issue", {});
    const js = await jsWorker(sandbox, jsKey, pair.refresh_token);
    out.js.push(js.startupMs);
    await js.stop();
  };
  const startJsBindings = async () => {
    const pair = await sandbox.admin("/tokens/issue", {});
    const jsb = await jsWorker(sandbox, jsKey, pair.refresh_token, { bindings: true });
    out.js_bindings.push(jsb.startupMs);
    await jsb.stop();
  };
  for (let i = 0; i < COLD_REPS; i++) {
    log(`cold start ${i + 1}/${COLD_REPS}`);
    if (i < COLD_SHIPPED_REPS) {
      const pair = await sandbox.admin("/tokens/issue", {});
      // As shipped: wrangler.toml with its demo-page assets.
      const pg = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: pair.refresh_token }, assets: true });
      out.plumgate.push(pg.startupMs);
      const s = performance.now();
      await expect200("first op", `${pg.url}/v1/ops/getOrderHistory`, ORDER_HISTORY, `Bearer ${key.key}`);
      out.plumgate_first_op.push(performance.now() - s);
      await pg.stop();
    }
    // The compared starts one right after the other, the order going
    // through all six over six reps, so none always starts on a machine
    // another one warmed.
    const trio = [startBare, startJs, startJsBindings];
    const turn = i % 3;
    const order = [...trio.slice(turn), ...trio.slice(0, turn)];
    if (Math.floor(i / 3) % 2) order.reverse();
    for (const start of order) await start();
  }
  // Paired, as the hot path's ratios are: a start takes ~0.85 s and two
  // starts minutes apart differ by tens of ms, far more than the 5-ms
  // budget, so the budget judges the median of the per-rep differences
  // (bench/cold.mjs does the same with more pairs).
  const diffs = out.plumgate_no_assets.map((t, k) => t - out.js[k]);
  const bindingDiffs = out.plumgate_no_assets.map((t, k) => t - out.js_bindings[k]);
  return {
    plumgate_ms: median(out.plumgate),
    plumgate_first_op_ms: median(out.plumgate_first_op),
    plumgate_no_assets_ms: median(out.plumgate_no_assets),
    js_ms: median(out.js),
    js_bindings_ms: median(out.js_bindings),
    no_assets_minus_js_ms: median(diffs),
    no_assets_minus_js_q: [quantile(diffs, 0.25), quantile(diffs, 0.75)],
    no_assets_slower_in: diffs.filter((d) => d > 0).length,
    no_assets_minus_js_bindings_ms: median(bindingDiffs),
    no_assets_minus_js_bindings_q: [quantile(bindingDiffs, 0.25), quantile(bindingDiffs, 0.75)],
    samples: out,
  };
}

async function size() {
  const wasm = readFileSync(join(BUILD_DIR, "index_bg.wasm"));
  const js = readFileSync(join(BUILD_DIR, "index.js"));
  const out = {
    wasm_raw: wasm.length,
    wasm_gzip: gzipSync(wasm, { level: 9 }).length,
    js_raw: js.length,
    js_gzip: gzipSync(js, { level: 9 }).length,
  };
  const dir = tempDir("plumgate-bench-dry-");
  try {
    writeFileSync(join(dir, "wrangler.toml"), plumgateToml(BUILD_DIR));
    const { stdout, stderr } = await run(join(ROOT, "node_modules/.bin/wrangler"),
      ["deploy", "--dry-run", "--outdir", join(dir, "out"), "--config", join(dir, "wrangler.toml")], { cwd: dir, timeout: 120_000 });
    const m = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(stdout + stderr);
    if (m) { out.upload_kib = +m[1]; out.upload_gzip_kib = +m[2]; } else out.upload_error = "no 'Total Upload' line";
  } catch (e) {
    out.upload_error = String(e.stderr || e.message).split("\n").slice(-3).join(" ");
  } finally { cleanup(dir); }
  return out;
}

// ---------------------------------------------------------------- report
// BENCHMARKS.md's block: bench/report.mjs (markdown, changes).

/** One printed table line: a label, then right-aligned columns. */
const line = (...cols) => console.log(cols.map((c, i) => (i === 0 ? String(c).padEnd(58) : String(c).padStart(12))).join(""));
const printHeader = (first) => line(first, "req/s", "p50 ms", "p99 ms", "p50 ms c=1", "p99 ms c=1", "CPU ms/req", "non-2xx");
const printRow = (t) => line(t.label, f0(t.rps), f2(t.load_p50_ms), f2(t.load_p99_ms), f2(t.p50_ms), f2(t.p99_ms), f2(t.cpu_ms_per_req), t.non2xx + t.socket_errors + (t.cache_mismatch ?? 0));

function printHot(r) {
  console.log(`load ${r.load_at_start} → ${r.load_at_end}`);
  printHeader("target");
  for (const t of [...Object.values(r.hot), ...Object.values(r.catalog)].filter((x) => x && x.label)) printRow(t);
  console.log("paired:", JSON.stringify(r.hot.paired), JSON.stringify(r.catalog.paired));
}

function printTable(r) {
  const h = r.hot;
  console.log("");
  console.log("=== plumgate benchmark ===");
  console.log(`machine: ${r.machine.cpu}, load ${r.load_at_start} → ${r.load_at_end}; workers in ${r.runtime}`);
  console.log("");
  console.log(`1. hot path (getOrderHistory, token cached)      c=${r.settings.connections} / c=1`);
  printHeader("target");
  for (const id of HOT_ROWS) if (h[id]) printRow(h[id]);
  console.log(`   paired per round: plumgate/JS throughput ${f2(h.paired.plumgate_vs_js_rps)}×; added p50 over direct (c=1) ${f2(h.paired.plumgate_added_p50_ms)} ms; over the runtime floor ${f2(h.paired.plumgate_over_floor_p50_ms)} ms (JS ${f2(h.paired.js_over_floor_p50_ms)} ms); CPU/req plumgate/JS ${f2(h.paired.plumgate_vs_js_cpu)}×`);
  if (h.paired.plumgate_vs_js_full_rps) console.log(`   plumgate / JS Worker with plumgate's per-request duties: throughput ${f2(h.paired.plumgate_vs_js_full_rps)}×, CPU/req ${f2(h.paired.plumgate_vs_js_full_cpu)}×`);
  if (h.paired.alt_vs_plumgate_rps) console.log(`   ${r.compare.label}: ${f2(h.paired.alt_vs_plumgate_rps)}× plumgate, ${f2(h.paired.alt_vs_js_rps)}× JS`);
  console.log(`   runtime key / plain: throughput ${f2(h.paired.runtime_key_vs_static_rps)}×, CPU/req ${f2(h.paired.runtime_key_vs_static_cpu)}×; with requests_per_minute: ${f2(h.paired.key_limits_vs_static_rps)}×, ${f2(h.paired.key_limits_vs_static_cpu)}×`);
  const kc = r.uncached.runtime_key_cold, ll = r.uncached.limiter_lease;
  console.log(`1b. sequential, c=1: runtime key on first use p50/p90 ${f2(kc.cold.p50_ms)}/${f2(kc.cold.p90_ms)} ms vs cached ${f2(kc.cached.p50_ms)}/${f2(kc.cached.p90_ms)} ms (n=${kc.cold.n}; extra = KeyRegistry round trip ${f2(kc.extra_p50_ms)}/${f2(kc.extra_p90_ms)} ms)`);
  console.log(`    lease on every call (budget ${ll.budget}/min) p50/p90 ${f2(ll.leased.p50_ms)}/${f2(ll.leased.p90_ms)} ms vs plain ${f2(ll.plain.p50_ms)}/${f2(ll.plain.p90_ms)} ms (n=${ll.leased.n}; extra = RateLimiter round trip ${f2(ll.extra_p50_ms)}/${f2(ll.extra_p90_ms)} ms)`);
  console.log("");
  console.log(`2. refresh storm (${STORM} concurrent, cold token cache)`);
  for (const id of ["plumgate", "js"]) {
    const t = r.storm[id];
    console.log(`   ${id.padEnd(10)} wall ${f0(t.wall_ms)} ms, refreshes ${t.refresh_calls}, answers ${JSON.stringify(t.statuses)}`);
  }
  console.log("");
  console.log("3. catalog getVouchers");
  printHeader("case");
  for (const id of CATALOG_ROWS) if (r.catalog[id]) printRow(r.catalog[id]);
  const cp = r.catalog.paired;
  console.log(`   hit under penalty / control hit (paired, ${r.catalog.penalty.rounds} rounds): throughput ${f2(cp.penalty_hit_vs_control_rps)}×, CPU/req ${f2(cp.penalty_hit_vs_control_cpu)}×; / the main plumgate's hit: ${f2(cp.penalty_hit_vs_hit_rps)}×, ${f2(cp.penalty_hit_vs_hit_cpu)}×; getVouchers calls upstream during the penalty: ${r.catalog.penalty.upstream_calls_during}`);
  console.log("");
  console.log(`4. cold start: plumgate ${f0(r.cold.plumgate_ms)} ms to /healthz (+${f0(r.cold.plumgate_first_op_ms)} ms first op), without assets ${f0(r.cold.plumgate_no_assets_ms)} ms, JS Worker ${f0(r.cold.js_ms)} ms; paired difference ${f1(r.cold.no_assets_minus_js_ms)} ms`);
  console.log(`5. size: wasm ${f0(r.size.wasm_raw)} B raw, ${f0(r.size.wasm_gzip)} B gzipped by ${GZIP_LABEL}; upload ${r.size.upload_kib ?? "?"} KiB / gzip ${r.size.upload_gzip_kib ?? "?"} KiB (wrangler's)`);
  console.log("");
  console.log("=== budgets ===");
  for (const b of r.budgets) console.log(`${b.pass ? "PASS" : "FAIL"}  ${b.name}: ${b.value}`);
  console.log("");
}

// ------------------------------------------------------------------ main

async function main() {
  if (!existsSync(join(BUILD_DIR, "index_bg.wasm"))) throw new Error(`no build in ${BUILD_DIR}: run scripts/build.sh`);
  if (!existsSync(SANDBOX_BIN)) throw new Error(`no sandbox binary at ${SANDBOX_BIN}`);
  mkdirSync(RESULTS, { recursive: true });
  results.runtime = RUNTIME;
  results.build = { dir: relative(ROOT, BUILD_DIR) || ".", wasm_mtime: statSync(join(BUILD_DIR, "index_bg.wasm")).mtime.toISOString() };
  log(`machine: ${results.machine.cpu}; load ${results.load_at_start}`);
  if (!WRITE && !ONLY_HOT) log(`BENCHMARKS.md and bench/last-run.json will not be written (${NO_RECORD}; --write: write them anyway)`);

  const sandbox = await startSandbox(SANDBOX_BIN);
  cleanups.push(() => sandbox.stop());
  await liftSandboxLimits(sandbox);

  const key = makeKey("bench", ["catalog", "orders:read"]);
  const jsKey = makeKey("bench-js", ["*"]);
  // Makes the runtime key of the hot path's runtime-key row.
  const adminKey = makeKey("bench-admin", ["admin"]);

  log("size");
  results.size = await size();

  log(`starting plumgate and the JS Worker (${RUNTIME})`);
  const pg = await plumgate(sandbox, [key, adminKey]);
  const makeRuntimeKey = async (body) => {
    const made = await post(`${pg.url}/v1/keys`, { scopes: ["catalog", "orders:read"], ...body }, `Bearer ${adminKey.key}`);
    if (made.status !== 201) throw new Error(`POST /v1/keys: ${made.status} ${made.text}`);
    return JSON.parse(made.text).key;
  };
  const runtimeKeys = {
    plain: await makeRuntimeKey({ id: "bench-runtime" }),
    // High enough never to refuse here (at most ~4,000 calls a second = 240,000 a minute).
    limited: await makeRuntimeKey({ id: "bench-runtime-rpm", limits: { requests_per_minute: 1_000_000 } }),
  };
  // plumgate's main row on a worker of its own, like row †'s (the shared
  // one above serves the runtime-key rows, their reference, the drop-in
  // route and /healthz).
  const pgHotPair = await sandbox.admin("/tokens/issue", {});
  const pgHot = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: pgHotPair.refresh_token } });
  const pgAssetsPair = await sandbox.admin("/tokens/issue", {});
  const pgAssets = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: pgAssetsPair.refresh_token }, assets: true });
  const jsPair = await sandbox.admin("/tokens/issue", {});
  const js = await jsWorker(sandbox, jsKey, jsPair.refresh_token);
  const jsFullPair = await sandbox.admin("/tokens/issue", {});
  const jsFull = await jsWorker(sandbox, jsKey, jsFullPair.refresh_token, {}, { BENCH_UPSTREAM: "contract", BENCH_LOG: "long" });
  let alt = null;
  if (ALT_DIR) {
    const altPair = await sandbox.admin("/tokens/issue", {});
    alt = await plumgate(sandbox, [key], { vars: { XOXODAY_REFRESH_TOKEN: altPair.refresh_token }, buildDir: ALT_DIR });
    results.compare = { dir: ALT_DIR, label: ALT_LABEL };
  }
  results.hot = await hotPath(sandbox, pg, pgHot, js, jsFull, key, jsKey, alt, pgAssets, runtimeKeys);
  if (!ONLY_HOT) {
    log("runtime keys on first use (sequential)");
    const keysCold = await coldKeys(pg, adminKey);
    log("limiter lease round trip (sequential)");
    results.uncached = { runtime_key_cold: keysCold, limiter_lease: await limiterLease(sandbox, key, pg) };
  }
  results.catalog = await catalog(sandbox, pg, key, alt);
  await pg.stop();
  await pgHot.stop();
  await pgAssets.stop();
  await js.stop();
  await jsFull.stop();
  if (alt) await alt.stop();

  if (ONLY_HOT) {
    results.load_at_end = loadNow();
    results.duration_s = (performance.now() - t0) / 1000;
    writeFileSync(join(RESULTS, "hot-only.json"), JSON.stringify(results, null, 2) + "\n");
    printHot(results);
    return 0;
  }
  results.storm = await storm(sandbox, key, jsKey);
  results.cold = await coldStart(sandbox, key, jsKey);

  results.load_at_end = loadNow();
  results.duration_s = (performance.now() - t0) / 1000;
  results.budgets = budgets(results);

  const md = markdown(results);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, "latest.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(RESULTS, "latest.md"), md + "\n");
  printTable(results);

  if (WRITE) {
    const lastPath = join(ROOT, "bench/last-run.json");
    const prev = existsSync(lastPath) ? JSON.parse(readFileSync(lastPath, "utf8")) : null;
    const block = `${md}\n\n### What changed since the last run\n\n${changes(prev, results)}`;
    const bmPath = join(ROOT, "BENCHMARKS.md");
    const begin = "<!-- bench:begin (generated by bench/run.mjs; edit outside these markers) -->";
    const end = "<!-- bench:end -->";
    let doc = existsSync(bmPath) ? readFileSync(bmPath, "utf8") : `# Benchmarks\n\n${begin}\n${end}\n`;
    const i = doc.indexOf(begin), j = doc.indexOf(end);
    if (i >= 0 && j > i) doc = `${doc.slice(0, i + begin.length)}\n${block}\n${doc.slice(j)}`;
    else doc += `\n${begin}\n${block}\n${end}\n`;
    writeFileSync(bmPath, doc);
    writeFileSync(lastPath, recordText(results));
    log("wrote BENCHMARKS.md (generated block) and bench/last-run.json");
  } else log(`BENCHMARKS.md and bench/last-run.json not written: ${NO_RECORD} (--write: write them anyway)`);
  log(`results in bench/results/latest.{json,md}; ${results.budgets.filter((b) => !b.pass).length} budget(s) failed`);
  return results.budgets.every((b) => b.pass) ? 0 : 1;
}

main()
  .then(async (code) => { await stopAll(); process.exit(process.env.BENCH_FAIL_ON_BUDGET === "1" ? code : 0); })
  .catch(async (e) => { console.error(e.stack || e); await stopAll(); process.exit(2); });
