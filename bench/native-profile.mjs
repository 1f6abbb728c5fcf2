// Where each target's CPU goes inside workerd, native frames included.
//
//   node bench/native-profile.mjs [TARGET ...] [--seconds 5] [--warm 3] [--freq 2000] [--top 20] [--own 0]
//
// Targets as in bench/ab.mjs (a plumgate build directory, or js | js:none |
// js:contract | js:full | js:nolog | js:bindings); default: build js js:full. For each, one
// after the other: start it in local workerd (direct socket, no [assets]),
// warm it (--warm seconds at 8 connections), then record workerd with Linux
// `perf` (call stacks, --freq Hz) while wrk drives 32 connections for
// --seconds on the hot path. V8 writes a perf map
// (MINIFLARE_WORKERD_V8_FLAGS=--perf-basic-prof), so wasm and JS frames are
// named.
//
// Prints CPU per request of workerd's main thread (the one that runs the
// isolate) in µs, split as: garbage collection (any frame under a V8 GC
// entry), timers (setTimeout / AbortSignal.timeout), console.log, then by
// the sampled frame itself: wasm code, JavaScript code with V8's builtins,
// the kernel, and the rest of the runtime (workerd's C++ API, V8's API and
// heap, kj, the allocator).
// With two or more targets, also the --top frames whose own time differs most
// between the first two. With --own N (names kept in the build:
// `PLUMGATE_KEEP_NAMES=1 bash scripts/build.sh`), each plumgate target's wasm
// time by the innermost frame of plumgate's own crates on the stack (what
// each of its functions costs with the library code it calls), and by that
// frame and the kind of the sampled library code (allocation, formatting,
// serde_json, SHA-256). perf's sampling slows the worker by ~15 %, so
// compare targets within one run, not with bench/run.mjs's figures.
//
// Needs `perf` (Debian: linux-perf; installed here if missing and apt is
// available) and permission to profile the worker (root, or
// kernel.perf_event_paranoid <= 2 for one's own processes). Loopback only;
// about 20 s per target; a hard stop ends it after 10 minutes.
//
//   node bench/native-profile.mjs [TARGET ...] --startup 10 [--freq 2000]
//
// Start-up instead of the hot path: each target is started --startup times,
// alternating, with `perf record -a` running from the spawn to the first
// `/healthz` 200 (bench/cold.mjs's span). Prints ms of workerd CPU per start,
// all its threads and the main thread, split as above plus wasm compilation
// (V8's wasm decoder and compilers on any thread). Needs root or
// kernel.perf_event_paranoid <= 0 (system-wide recording).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { JS_VARIANTS, ROOT, cleanup, groupStats, makeKey, median, startSandbox, startTarget, tempDir, wrk, cliArgs, runBounded } from "./lib.mjs";

const { opt, positional } = cliArgs();
const targets = positional.length ? positional : ["build", "js", "js:full"];
const SECONDS = Number(opt("--seconds", 5));
const FREQ = Number(opt("--freq", 2000));
const WARM = Number(opt("--warm", 3));
const TOP = Number(opt("--top", 20));
const STARTUP = Number(opt("--startup", 0));
const OWN = Number(opt("--own", 0));
const BODY = { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 };
if (targets.some((n) => n.startsWith("js") && !(n in JS_VARIANTS))) {
  console.error("usage: node bench/native-profile.mjs [TARGET ...] [--seconds 5] [--warm 3] [--freq 2000] [--top 20] [--own 0]");
  process.exit(2);
}

/** `perf` on PATH, installing Debian's linux-perf when it is missing. */
function ensurePerf() {
  if (spawnSync("perf", ["--version"]).status === 0) return;
  console.error("native-profile: perf is missing; apt-get install linux-perf");
  // DEBIAN_FRONTEND through `env`: sudo's env_reset drops it from sudo's own environment.
  const cmd = [...(process.getuid() === 0 ? [] : ["sudo"]), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"];
  const apt = (...args) => spawnSync(cmd[0], [...cmd.slice(1), ...args], { stdio: "inherit" });
  apt("update", "-qq");
  apt("install", "-y", "-qq", "linux-perf");
  if (spawnSync("perf", ["--version"]).status !== 0) throw new Error("perf is not available (Debian package linux-perf)");
}

/** The workerd process in process group `pgid`. */
function workerdPid(pgid) {
  const found = groupStats(pgid).find(([, stat]) => stat.includes("(workerd)"));
  if (!found) throw new Error(`no workerd process in group ${pgid}`);
  return Number(found[0]);
}

const COMPILE = /v8::internal::wasm::|WasmEngine|Runtime_WasmCompileLazy|WasmCompileLazy/;
const GC = /Heap::CollectGarbage|Heap::Scavenge|ScavengerCollector|MinorMarkSweep|MarkCompactCollector|IncrementalMarking|GCEpilogue|GCPrologue|MinorGCJob|PerformGarbageCollection/;
const TIMERS = /AbortSignal::timeout|setTimeoutInternal|TimeoutManagerImpl|TimerQueue/;
const LOG = /handleLog|consoleDecorator/;
const CATEGORIES = ["wasm compile", "GC", "timers", "console.log", "wasm", "JS+builtins", "kernel", "runtime"];

/** A frame's name from a `perf script` line: "addr name+0x12 (dso)". */
function frameName(line) {
  const m = /^\s*[0-9a-f]+ (.*?)(?:\+0x[0-9a-f]+)? \((.*)\)$/.exec(line);
  if (!m) return { name: line.trim(), dso: "" };
  return { name: m[1], dso: m[2] };
}

/** Which category a sample (leaf first) belongs to. */
function categorize(frames) {
  if (frames.some((f) => COMPILE.test(f.name))) return "wasm compile";
  if (frames.some((f) => GC.test(f.name))) return "GC";
  if (frames.some((f) => TIMERS.test(f.name))) return "timers";
  if (frames.some((f) => LOG.test(f.name))) return "console.log";
  const leaf = frames[0];
  if (leaf.dso.includes("kallsyms")) return "kernel";
  // V8's perf map names wasm functions "JS:<name>-<index>-<tier>".
  if (/-(turbofan|liftoff)$/.test(leaf.name) || /^Builtins_Wasm/.test(leaf.name)) return "wasm";
  // JavaScript runs as JIT code (named in the perf map) or in V8's builtins
  // (interpreter, baseline code, promise jobs, property access), which sit
  // in the workerd binary.
  if (/^(JS|Script|Eval):/.test(leaf.name) || /^Builtins_/.test(leaf.name) || leaf.dso.includes("perf-")) return "JS+builtins";
  return "runtime";
}

/** Samples of workerd's main thread in `data` (with `allThreads`, of every
 * thread of process `pid`): category counts and leaf counts. */
function summarize(data, pid, { allThreads = false } = {}) {
  const fields = ["-F", "comm,pid,tid,ip,sym,dso"];
  const text = execFileSync("perf", ["script", "-i", data, ...fields], { maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "ignore"] }).toString();
  const cats = new Map(CATEGORIES.map((c) => [c, 0]));
  const leaves = new Map();
  const crates = new Map(); // wasm time by the crate of the sampled function
  const compileSteps = new Map(); // wasm compile time by its innermost compile frame
  const own = new Map(); // wasm time by the innermost frame of plumgate's crates
  const ownKinds = new Map(); // ... and the kind of library code sampled under it
  let samples = 0;
  for (const block of text.split("\n\n")) {
    const lines = block.split("\n").filter(Boolean);
    // "comm pid/tid": the main thread's tid is the pid.
    const m = lines.length >= 2 && /\s(\d+)\/(\d+)\s*$/.exec(lines[0]);
    if (!m || Number(m[1]) !== pid || (!allThreads && Number(m[2]) !== pid)) continue;
    const frames = lines.slice(1).map(frameName);
    samples++;
    const cat = categorize(frames);
    cats.set(cat, cats.get(cat) + 1);
    if (cat === "wasm compile") {
      // The innermost compile frame says which step: decoding, validation, Liftoff, TurboFan.
      const step = frames.find((f) => COMPILE.test(f.name)).name.replace(/\(.*$/, "").slice(0, 90);
      compileSteps.set(step, (compileSteps.get(step) ?? 0) + 1);
    }
    if (cat === "wasm") {
      const crate = /^Builtins_Wasm/.test(frames[0].name) ? "(V8's wasm builtins)" : frames[0].name.replace(/^JS:<?/, "").split(/::|\[| |-/)[0];
      crates.set(crate, (crates.get(crate) ?? 0) + 1);
      const name = (f) => f.name.replace(/^JS:/, "").replace(/\[[0-9a-f]+\]/g, "").replace(/-\d+-(turbofan|liftoff)$/, "");
      const mine = frames.find((f) => /^JS:<?plumgate/.test(f.name));
      const at = mine ? name(mine) : "(outside plumgate's crates)";
      own.set(at, (own.get(at) ?? 0) + 1);
      const leaf = name(frames[0]);
      const kind = /talc|raw_vec|alloc::alloc|dealloc/.test(leaf) ? "allocation" : /fmt/.test(leaf) ? "formatting" : /serde_json/.test(leaf) ? "serde_json" : /sha2/.test(leaf) ? "SHA-256" : null;
      if (kind && mine) ownKinds.set(`${kind} under ${at}`, (ownKinds.get(`${kind} under ${at}`) ?? 0) + 1);
    }
    const leaf = frames[0].name.replace(/::h[0-9a-f]{16}/g, "").slice(0, 110);
    leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1);
  }
  return { samples, cats, leaves, crates, compileSteps, own, ownKinds };
}

/** --startup: workerd's CPU from the spawn to the first /healthz 200. */
async function startup(sandbox, key, out) {
  const sums = targets.map(() => ({ all: new Map(CATEGORIES.map((c) => [c, 0])), main: new Map(CATEGORIES.map((c) => [c, 0])), steps: new Map(), leaves: new Map(), ms: [] }));
  const data = join(out, "perf.data");
  for (let round = 0; round < STARTUP; round++) {
    const order = targets.map((_, i) => i);
    if (round % 2) order.reverse();
    for (const i of order) {
      const perf = spawn("perf", ["record", "-q", "-a", "-F", String(FREQ), "-g", "-o", data], { stdio: "ignore" });
      // perf ends on SIGINT with status 130 (or the signal itself).
      const exited = new Promise((res) => perf.on("exit", (code, signal) => res(code === 130 || signal === "SIGINT" ? 0 : code)));
      await new Promise((res) => setTimeout(res, 300)); // perf attached
      const w = await startTarget(sandbox, targets[i], key);
      const pid = workerdPid(w.pid);
      perf.kill("SIGINT");
      try {
        if ((await exited) !== 0) throw new Error("perf record failed (system-wide recording needs root or kernel.perf_event_paranoid <= 0)");
        for (const [threads, into] of [[true, sums[i].all], [false, sums[i].main]]) {
          const r = summarize(data, pid, { allThreads: threads });
          for (const [c, n] of r.cats) into.set(c, into.get(c) + n);
          if (threads) for (const [k, n] of r.compileSteps) sums[i].steps.set(k, (sums[i].steps.get(k) ?? 0) + n);
          if (threads) for (const [k, n] of r.leaves) sums[i].leaves.set(k, (sums[i].leaves.get(k) ?? 0) + n);
        }
        sums[i].ms.push(w.startupMs);
      } finally {
        await w.stop();
        rmSync(`/tmp/perf-${pid}.map`, { force: true });
      }
      process.stderr.write(`[native-profile] start ${round + 1}/${STARTUP} ${targets[i]}: ${w.startupMs.toFixed(0)} ms\n`);
    }
  }
  const ms = (n) => ((n * 1000) / FREQ / STARTUP).toFixed(1);
  const pad = (x, n) => String(x).padStart(n);
  console.log(`workerd CPU per start, ms (perf -a -F ${FREQ}, spawn to first /healthz 200, ${STARTUP} starts each, alternating)`);
  console.log(["target".padEnd(24), pad("threads", 8), pad("total", 7), ...CATEGORIES.map((c) => pad(c, 13))].join(""));
  targets.forEach((name, i) => {
    for (const [label, m] of [["all", sums[i].all], ["main", sums[i].main]]) {
      const total = [...m.values()].reduce((a, b) => a + b, 0);
      console.log([name.slice(0, 23).padEnd(24), pad(label, 8), pad(ms(total), 7), ...CATEGORIES.map((c) => pad(ms(m.get(c)), 13))].join(""));
    }
  });
  targets.forEach((name, i) => {
    const rows = [...sums[i].steps].sort((a, b) => b[1] - a[1]).slice(0, TOP > 0 ? 8 : 0);
    if (rows.length) console.log(`\n${name}: wasm compile by its innermost step, ms per start:\n${rows.map(([k, n]) => `${pad(ms(n), 7)}  ${k}`).join("\n")}`);
  });
  if (targets.length >= 2 && TOP > 0) {
    const [a, b] = sums;
    const keys = new Set([...a.leaves.keys(), ...b.leaves.keys()]);
    const rows = [...keys].map((k) => [k, (a.leaves.get(k) ?? 0) - (b.leaves.get(k) ?? 0)]).sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
    console.log(`\nframes whose own time differs most, all threads, ms per start (${targets[0]} − ${targets[1]}):`);
    for (const [k, d] of rows.slice(0, TOP)) console.log(`${pad(ms(d), 7)}  ${k}`);
  }
  console.log(`\nstart, spawn to first /healthz 200, median: ${targets.map((name, i) => `${name} ${median(sums[i].ms).toFixed(0)} ms`).join(", ")}`);
}

async function main(stops) {
  ensurePerf();
  // --perf-basic-prof also switches on V8's event log, which by default lands
  // as isolate-*-v8.log files in workerd's working directory (the repo root);
  // one file, discarded, keeps the tree clean.
  process.env.MINIFLARE_WORKERD_V8_FLAGS = [process.env.MINIFLARE_WORKERD_V8_FLAGS, "--perf-basic-prof", "--no-logfile-per-isolate", "--logfile=/dev/null"].filter(Boolean).join(" ");
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  if (STARTUP > 0) {
    const out = tempDir("plumgate-perf-");
    stops.push(async () => cleanup(out));
    return startup(sandbox, makeKey("bench", ["*"]), out);
  }
  await sandbox.admin("/config", { rate_limits: { getOrderHistory: 1e9 } });
  const key = makeKey("bench", ["*"]);
  const out = tempDir("plumgate-perf-");
  stops.push(async () => cleanup(out));
  const results = [];
  for (const name of targets) {
    const w = await startTarget(sandbox, name, key);
    const pid = workerdPid(w.pid);
    try {
      const load = { url: `${w.url}/v1/ops/getOrderHistory`, body: BODY, auth: `Bearer ${key.key}` };
      await wrk({ ...load, connections: 8, seconds: WARM }); // token cached, JIT warm
      const data = join(out, "perf.data");
      const perf = spawn("perf", ["record", "-q", "-F", String(FREQ), "-g", "-p", String(pid), "-o", data, "--", "sleep", String(SECONDS + 0.5)], { stdio: "ignore" });
      const exited = new Promise((res) => perf.on("exit", res));
      await new Promise((res) => setTimeout(res, 250)); // perf attached
      const r = await wrk({ ...load, connections: 32, seconds: SECONDS });
      if ((await exited) !== 0) throw new Error("perf record failed (permissions? see kernel.perf_event_paranoid)");
      results.push({ name, requests: r.requests, rps: r.rps, ...summarize(data, pid) });
      process.stderr.write(`[native-profile] ${name}: ${r.requests} requests, ${results.at(-1).samples} samples\n`);
    } finally {
      await w.stop();
      rmSync(`/tmp/perf-${pid}.map`, { force: true });
    }
  }
  const us = (r, n) => (n * 1e6) / FREQ / r.requests;
  const pad = (s, n) => String(s).padStart(n);
  console.log(`workerd main thread, µs of CPU per request (perf -F ${FREQ}, ${SECONDS} s at 32 connections, getOrderHistory)`);
  console.log(["target".padEnd(24), pad("req/s", 7), pad("total", 7), ...CATEGORIES.map((c) => pad(c, 13))].join(""));
  for (const r of results) {
    console.log([r.name.slice(0, 23).padEnd(24), pad(r.rps.toFixed(0), 7), pad(us(r, r.samples).toFixed(1), 7), ...CATEGORIES.map((c) => pad(us(r, r.cats.get(c)).toFixed(1), 13))].join(""));
  }
  for (const r of results.filter((x) => x.cats.get("wasm") > 0)) {
    const rows = [...r.crates].sort((x, y) => y[1] - x[1]).slice(0, 12);
    console.log(`\n${r.name}: wasm time by crate, µs per request: ${rows.map(([c, n]) => `${c} ${us(r, n).toFixed(1)}`).join(", ")}`);
  }
  for (const r of results.filter((x) => OWN > 0 && x.own.size > 0)) {
    const list = (m) => [...m].sort((x, y) => y[1] - x[1]).slice(0, OWN).map(([k, n]) => `${pad(us(r, n).toFixed(2), 7)}  ${k.slice(0, 140)}`).join("\n");
    console.log(`\n${r.name}: wasm time by the innermost frame of plumgate's crates, µs per request:\n${list(r.own)}`);
    console.log(`\n${r.name}: library code by kind, under that frame, µs per request:\n${list(r.ownKinds)}`);
  }
  if (results.length >= 2 && TOP > 0) {
    const [a, b] = results;
    const keys = new Set([...a.leaves.keys(), ...b.leaves.keys()]);
    const rows = [...keys].map((k) => [k, us(a, a.leaves.get(k) ?? 0), us(b, b.leaves.get(k) ?? 0)]).sort((x, y) => Math.abs(y[1] - y[2]) - Math.abs(x[1] - x[2]));
    console.log(`\nframes whose own time differs most, µs per request: ${a.name} | ${b.name} | difference`);
    for (const [k, x, y] of rows.slice(0, TOP)) console.log(`${pad(x.toFixed(1), 7)}${pad(y.toFixed(1), 7)}${pad((x - y).toFixed(1), 7)}  ${k}`);
  }
}

runBounded("native-profile", 10, main);
