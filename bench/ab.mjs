// Paired comparison of workers: is B (and C, ...) cheaper than A per request?
//
//   node bench/ab.mjs A B [C ...] [--pairs 12] [--seconds 3] [--warm 2] [--path /v1/ops/getOrderHistory|/v1/ops/getVouchers|/healthz] [--threads]
//
// Each target is a plumgate build directory (e.g. a copy of build/ taken
// before a change), or the hand-written JS baseline: `js` as the bench runs
// it, `js:none` without the upstream call (a fixed answer: the front half
// alone), `js:contract` calling upstream the way plumgate must (timeout, no
// redirects, whole body read and scanned) instead of streaming it,
// `js:full` also with row †'s request id, headers and long log line, and
// `js:nolog` without its log line, `js:bindings` as `js` but started with
// plumgate's Durable Object bindings (for bench/cold.mjs). Every target is reached on Miniflare's
// direct socket, like the bench; `TARGET@entry` goes through Miniflare's
// dev-only entry Worker instead, to price that layer.
//
// The full bench (bash scripts/bench.sh --compare DIR) runs 5 rounds; on this
// shared machine that cannot tell apart changes under ~5 % of CPU per
// request. This runs every target (plumgate without the demo-page [assets],
// like the bench's like-for-like rows) side by side in local workerd and
// runs short 32-connection phases round-robin, the start rotating each
// round (with two targets: A then B, B then A, ...). Within each round it
// takes every target's CPU per request over A's, so slow drift in background
// load cancels out, and prints the median of those ratios and in how many
// rounds the target was cheaper than A. Calibrate by running a build against
// a copy of itself: there the median sat at 0.98–1.0 and B "won" 6–8 of 12
// pairs (2026-11-25).
//
// --runtime-key calls every plumgate target with a runtime key made through
// its POST /v1/keys (the bench's "runtime key, isolate-cached" row) instead
// of its GATEWAY_KEYS key.
//
// Each line also gives the median p99 latency at 32 connections (and, paired
// within rounds, its ratio to A's).
//
// --threads also prints each target's CPU per request split by process and
// thread (workerd's main thread runs the isolates; node is the Miniflare
// host, which reads and re-prints the worker's log lines).
//
// Loopback only; about rounds × targets × (seconds + 0.5) s plus ~10 s of
// start-up per target; a hard stop ends it after 10 minutes.
import { join } from "node:path";
import { JS_VARIANTS, ROOT, groupCpuSeconds, groupThreadCpuSeconds, makeKey, median, startSandbox, startTarget, wrk, cliArgs, runBounded } from "./lib.mjs";

const { opt, flag, positional } = cliArgs(["--threads", "--runtime-key"]);
const USAGE = "usage: node bench/ab.mjs A B [C ...] [--pairs 12] [--seconds 3] [--warm 2] [--path /v1/ops/getOrderHistory|/v1/ops/getVouchers|/healthz] [--threads] [--runtime-key]\n" +
  "  a target is a plumgate build directory, or js | js:none | js:contract | js:full | js:nolog | js:bindings;\n" +
  "  append @entry to reach it through Miniflare's entry Worker";
const targets = positional;
// `TARGET@entry`: reached through Miniflare's entry Worker instead of its
// direct socket (bench/workerd-host.mjs), to price that dev-only layer.
const names = targets.map((t) => t.replace(/@entry$/, ""));
if (names.length < 2 || names.some((n) => n.startsWith("js") && !(n in JS_VARIANTS))) {
  console.error(USAGE);
  process.exit(2);
}
const PAIRS = Number(opt("--pairs", 12));
const SECONDS = Number(opt("--seconds", 3));
// Seconds of 8-connection load per target before the first round (token
// cached, V8 has tiered up the hot code).
const WARM = Number(opt("--warm", 2));
const PATH = opt("--path", "/v1/ops/getOrderHistory");
const RUNTIME_KEY = flag("--runtime-key");
// getVouchers (--path /v1/ops/getVouchers): edge-cache hits after the
// first call, the bench's catalog-hit row.
const BODY = PATH.endsWith("/getVouchers") ? { limit: 10, page: 1 } : { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 };


async function main(stops) {
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  await sandbox.admin("/config", { rate_limits: { getOrderHistory: 1e9 } });
  const key = makeKey("bench", ["*"]);
  const workers = [];
  for (const [i, name] of names.entries()) {
    const w = await startTarget(sandbox, name, key, { viaEntry: targets[i].endsWith("@entry") });
    stops.push(() => w.stop());
    workers.push(w);
  }
  // --runtime-key: each plumgate target's own runtime key (the JS Worker keeps its key).
  const auths = [];
  for (const [i, w] of workers.entries()) {
    auths[i] = `Bearer ${key.key}`;
    if (!RUNTIME_KEY || names[i].startsWith("js")) continue;
    const made = await fetch(`${w.url}/v1/keys`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key.key}` },
      body: JSON.stringify({ id: "ab-runtime", scopes: ["catalog", "orders:read"] }),
    });
    const text = await made.text();
    if (made.status !== 201) throw new Error(`POST /v1/keys on ${names[i]}: ${made.status} ${text}`);
    auths[i] = `Bearer ${JSON.parse(text).key}`;
  }
  const load = (w) => PATH === "/healthz"
    ? { url: w.url + PATH, method: "GET" }
    : { url: w.url + PATH, body: BODY, auth: auths[workers.indexOf(w)] };
  for (const w of workers) await wrk({ ...load(w), connections: 8, seconds: WARM }); // token cached, JIT warm

  const n = workers.length;
  const cpu = workers.map(() => []);
  const rps = workers.map(() => []);
  const p99 = workers.map(() => []);
  const p99Ratios = workers.map(() => []);
  const ratios = workers.map(() => []);
  const threadCpu = workers.map(() => new Map());
  const served = workers.map(() => 0);
  const THREADS = flag("--threads");
  let bad = 0;
  for (let p = 0; p < PAIRS; p++) {
    const here = [];
    // Two targets: A B, B A, ... More: the start rotates each round.
    const order = n === 2 ? (p % 2 ? [1, 0] : [0, 1]) : workers.map((_, j) => (j + p) % n);
    for (const i of order) {
      const t0 = THREADS ? groupThreadCpuSeconds(workers[i].pid) : null;
      const c0 = groupCpuSeconds(workers[i].pid);
      const r = await wrk({ ...load(workers[i]), connections: 32, seconds: SECONDS });
      here[i] = ((groupCpuSeconds(workers[i].pid) - c0) * 1000) / r.requests;
      if (t0) {
        for (const [k, v] of groupThreadCpuSeconds(workers[i].pid)) threadCpu[i].set(k, (threadCpu[i].get(k) ?? 0) + v - (t0.get(k) ?? 0));
        served[i] += r.requests;
      }
      cpu[i].push(here[i]);
      rps[i].push(r.rps);
      p99[i].push(r.p99_ms);
      bad += r.non2xx + r.socket_errors;
    }
    for (let i = 1; i < n; i++) {
      ratios[i].push(here[i] / here[0]);
      p99Ratios[i].push(p99[i].at(-1) / p99[0].at(-1));
    }
    process.stderr.write(`[ab] round ${p + 1}/${PAIRS}: CPU ms/request ${here.map((x) => x.toFixed(3)).join(" ")}\n`);
  }
  const f3 = (x) => x.toFixed(3);
  console.log(`path ${PATH}, ${PAIRS} rounds of ${SECONDS} s per target at 32 connections`);
  names.forEach((name, i) => {
    const label = String.fromCharCode(65 + i);
    const vsA = i === 0 ? "" : `; ${label}/A median of rounds ${f3(median(ratios[i]))}, cheaper than A in ${ratios[i].filter((r) => r < 1).length} of ${PAIRS}`;
    const p99VsA = i === 0 ? "" : ` (${label}/A ${median(p99Ratios[i]).toFixed(2)})`;
    console.log(`${label} ${name}: CPU ms/request median ${f3(median(cpu[i]))}, req/s median ${median(rps[i]).toFixed(0)}, p99 ms median ${median(p99[i]).toFixed(1)}${p99VsA}${vsA}`);
  });
  for (let i = 1; i < n; i++) console.log(`${String.fromCharCode(65 + i)}/A per round: ${ratios[i].map((r) => r.toFixed(2)).join(" ")}`);
  if (THREADS) {
    names.forEach((name, i) => {
      const rows = [...threadCpu[i]].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
      console.log(`${String.fromCharCode(65 + i)} ${name}, CPU ms/request by process/thread (all rounds): ${rows.map(([k, v]) => `${k} ${f3((v * 1000) / served[i])}`).join(", ")}`);
    });
  }
  if (bad) console.log(`WARNING: ${bad} non-2xx answers or socket errors`);
}

runBounded("ab", 10, main);
