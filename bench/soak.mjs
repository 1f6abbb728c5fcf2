// Tail latency and memory over a longer load: is a worker's p99 at 32
// connections its own, and does it drift?
//
//   node bench/soak.mjs TARGET [--rounds 10] [--seconds 5] [--path /v1/ops/getOrderHistory|/healthz|/__noop]
//
// TARGET is a plumgate build directory or one of bench/ab.mjs's JS variants
// (js, js:full, ...; `/__noop` is the JS Worker's no-op route). Starts the
// sandbox and the one worker (local workerd, direct socket, as the bench
// does), then runs `rounds` back-to-back phases of wrk at 32 connections and
// prints, per phase: req/s, p50/p90/p99/max latency, non-2xx answers, and
// the resident memory of the worker's processes (its Miniflare host, node,
// and its workerd). A latency tail that grows from phase to phase, or memory
// that never levels off, is the worker's; a tail the no-op worker shows too
// is the runtime's or the machine's.
//
// Loopback only; rounds × seconds plus ~10 s of start-up; a hard stop ends
// it after 10 minutes.
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { JS_VARIANTS, ROOT, groupStats, makeKey, startSandbox, startTarget, wrk, cliArgs, runBounded } from "./lib.mjs";

const { opt, positional } = cliArgs();
const target = positional[0];
if (!target || (target.startsWith("js") && !(target in JS_VARIANTS))) {
  console.error("usage: node bench/soak.mjs TARGET [--rounds 10] [--seconds 5] [--path /v1/ops/getOrderHistory|/healthz|/__noop]\n" +
    "  TARGET: a plumgate build directory, or js | js:none | js:contract | js:full | js:nolog | js:bindings");
  process.exit(2);
}
const ROUNDS = Number(opt("--rounds", 10));
const SECONDS = Number(opt("--seconds", 5));
const PATH = opt("--path", "/v1/ops/getOrderHistory");
const BODY = { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 };

/** Resident memory of each process in the worker's group, e.g. "node 278 MB, workerd 385 MB". */
function memory(pgid) {
  return groupStats(pgid).map(([pid]) => {
    try {
      const s = readFileSync(`/proc/${pid}/status`, "utf8");
      return `${s.match(/^Name:\s*(\S+)/m)?.[1] ?? pid} ${Math.round(Number(s.match(/^VmRSS:\s*(\d+)/m)?.[1] ?? 0) / 1024)} MB`;
    } catch { return null; }
  }).filter(Boolean).join(", ");
}

async function main(stops) {
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  await sandbox.admin("/config", { rate_limits: { getOrderHistory: 1e9 } });
  const key = makeKey("bench", ["*"]);
  const w = await startTarget(sandbox, target, key);
  stops.push(() => w.stop());
  const load = PATH.startsWith("/v1/") || PATH.startsWith("/chef/")
    ? { url: w.url + PATH, body: BODY, auth: `Bearer ${key.key}` }
    : { url: w.url + PATH, method: "GET" };
  console.log(`${target} ${PATH}: ${ROUNDS} phases of ${SECONDS} s at 32 connections; memory after start: ${memory(w.pid)}`);
  for (let i = 0; i < ROUNDS; i++) {
    const r = await wrk({ ...load, connections: 32, seconds: SECONDS });
    const f = (x) => x.toFixed(1);
    console.log(`phase ${i + 1}: ${r.rps.toFixed(0)} req/s, p50 ${f(r.p50_ms)} p90 ${f(r.p90_ms)} p99 ${f(r.p99_ms)} max ${f(r.max_ms)} ms, non-2xx ${r.non2xx + r.socket_errors} | ${memory(w.pid)}`);
  }
}

runBounded("soak", 10, main);
