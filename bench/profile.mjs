// CPU profile of a worker under load, through the V8 inspector of its
// workerd (Miniflare's inspectorPort; `--wrangler-dev`: wrangler dev's
// inspector): where the worker's own time goes on the hot path. The
// inspector also receives every console.log, which inflates the log
// binding's share (compare CPU per request in bench/run.mjs for that).
//
//   node bench/profile.mjs [--build-dir DIR] [--target plumgate|js] [--op getOrderHistory|getVouchers|healthz]
//                          [--nonce] [--seconds 8] [--connections 8] [--top 25] [--wrangler-dev]
//                          [--no-assets]   (plumgate without its demo-page assets layer)
//                          [--heap]        (JS heap allocations instead of CPU: bytes per request by allocating function)
//                          [--js-upstream none|contract]   (--target js: the BENCH_UPSTREAM variants of bench/js-worker)
//
// Starts the sandbox and one worker (as bench/run.mjs does), warms it, starts
// the V8 sampling profiler on the worker's isolate, drives wrk, stops the
// profiler and prints: CPU ms per request inside the worker isolate (busy
// samples / requests), the split between wasm, JS glue and runtime, and the
// top functions by self time. Writes the raw .cpuprofile to bench/results/
// (open it in Chrome DevTools → Performance). Loopback only, bounded.
import { writeFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { BENCH_RATE_LIMITS, ROOT, cleanup, jsWorkerToml, makeKey, plumgateToml, startSandbox, startWorkerd, startWrangler, tempDir, wrk } from "./lib.mjs";

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const BUILD_DIR = resolve(opt("--build-dir", join(ROOT, "build")));
const TARGET = opt("--target", "plumgate");
const OP = opt("--op", "getOrderHistory");
const SECONDS = Number(opt("--seconds", 8));
const CONN = Number(opt("--connections", 8));
const TOP = Number(opt("--top", 25));
const BODIES = {
  getOrderHistory: { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 },
  getVouchers: { limit: 10, page: 1 },
};

const stops = [];
const hardStop = setTimeout(async () => { for (const s of stops.reverse()) await s().catch(() => {}); process.exit(2); }, 5 * 60_000);

async function inspector(port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = list.find((t) => t.webSocketDebuggerUrl) ?? list[0];
  // The inspector proxy only accepts local (or DevTools) origins.
  const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "http://localhost" } });
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error("inspector websocket failed")); });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(typeof m.data === "string" ? m.data : m.data.toString());
    if (msg.id && pending.has(msg.id)) {
      const { res, rej } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) rej(new Error(msg.error.message)); else res(msg.result);
    }
  };
  const send = (method, params = {}) => new Promise((res, rej) => {
    const i = ++id;
    pending.set(i, { res, rej });
    ws.send(JSON.stringify({ id: i, method, params }));
  });
  return { send, close: () => ws.close(), title: target.title };
}

function summarise(profile, requests) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const cat = { wasm: 0, js: 0, runtime: 0, idle: 0, gc: 0, program: 0 };
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const n = byId.get(profile.samples[i]);
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000; // ms
    total += dt;
    const cf = n.callFrame;
    const name = cf.functionName || "(anonymous)";
    const where = cf.url ? cf.url.replace(/^.*\//, "") : "";
    let k;
    if (name === "(idle)") k = "idle";
    else if (name === "(garbage collector)") k = "gc";
    else if (name === "(program)") k = "program";
    else if (cf.url.startsWith("wasm://")) k = "wasm";
    else if (cf.url) k = "js";
    else k = "runtime";
    cat[k] += dt;
    const key = `${name} ${where}${cf.lineNumber >= 0 && !cf.url.startsWith("wasm://") ? `:${cf.lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const busy = total - cat.idle;
  console.log(`profiled ${total.toFixed(0)} ms, worker isolate busy ${busy.toFixed(0)} ms (${((busy / total) * 100).toFixed(0)} %), ${requests} requests`);
  console.log(`CPU in the worker isolate per request: ${(busy / requests).toFixed(3)} ms`);
  for (const [k, v] of Object.entries(cat)) console.log(`  ${k.padEnd(8)} ${v.toFixed(0).padStart(7)} ms  ${((v / busy) * 100).toFixed(1).padStart(5)} % of busy  ${(v / requests).toFixed(3)} ms/req`);
  console.log(`top ${TOP} functions by self time (ms per request):`);
  const top = [...self.entries()].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, TOP);
  for (const [k, v] of top) console.log(`  ${(v / requests).toFixed(4).padStart(8)}  ${((v / busy) * 100).toFixed(1).padStart(5)} %  ${k.slice(0, 140)}`);
}

// Sampled JS heap allocations during the load (V8 HeapProfiler sampling, one
// sample per 256 allocated bytes on average): what the worker's JS side
// allocates per request, which is what its garbage-collector time follows.
async function heapProfile(insp, load) {
  await insp.send("HeapProfiler.enable");
  await insp.send("HeapProfiler.startSampling", { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const r = await wrk({ ...load, seconds: SECONDS });
  const { profile } = await insp.send("HeapProfiler.stopSampling");
  insp.close();
  console.log(`${TARGET} ${OP}: ${r.rps.toFixed(0)} req/s at c=${CONN}, non-2xx ${r.non2xx}`);
  const self = new Map();
  let total = 0;
  const walk = (n) => {
    const cf = n.callFrame;
    const key = `${cf.functionName || "(anonymous)"} ${cf.url ? cf.url.replace(/^.*\//, "") : ""}`;
    total += n.selfSize;
    self.set(key, (self.get(key) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  // Garbage included (both include...CollectedBy flags): all sampled allocations.
  console.log(`sampled JS heap allocations: ${(total / r.requests).toFixed(0)} B per request`);
  console.log(`top ${TOP} allocating functions (bytes per request):`);
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP);
  for (const [k, v] of top) console.log(`  ${(v / r.requests).toFixed(1).padStart(8)}  ${k.slice(0, 140)}`);
}

async function main() {
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  const high = 1_000_000_000;
  await sandbox.admin("/config", { rate_limits: { getOrderHistory: high, getVouchers: high } });
  const key = makeKey("bench", ["catalog", "orders:read"]);
  const dir = tempDir("plumgate-profile-");
  const vars = {
    XOXODAY_OAUTH_URL: sandbox.oauthUrl,
    XOXODAY_CLIENT_ID: "plumgate-dev-client",
    XOXODAY_CLIENT_SECRET: "plumgate-dev-secret",
    XOXODAY_REFRESH_TOKEN: "plumgate-dev-refresh-token",
    GATEWAY_KEYS: JSON.stringify([key.entry]),
    CALLER_KEY_SHA256: key.sha256,
    // plumgate's own per-minute budgets raised, as in the bench: a profile
    // of its cost, not of 429s.
    XOXODAY_RATE_LIMITS: BENCH_RATE_LIMITS,
    ...(opt("--js-upstream") ? { BENCH_UPSTREAM: opt("--js-upstream") } : {}),
  };
  const start = argv.includes("--wrangler-dev") ? startWrangler : startWorkerd;
  const toml = TARGET === "js" ? jsWorkerToml() : plumgateToml(BUILD_DIR, { assets: !argv.includes("--no-assets") });
  const w = await start({ toml, vars, persistDir: dir, inspect: true });
  stops.push(async () => { await w.stop(); cleanup(dir); });
  // --op healthz: GET /healthz (the per-request floor: no body, no upstream call).
  // --nonce: a unique field per request, so every getVouchers call misses the edge cache.
  const load = OP === "healthz"
    ? { url: `${w.url}/healthz`, method: "GET", connections: CONN }
    : { url: `${w.url}/v1/ops/${OP}`, body: BODIES[OP], auth: `Bearer ${key.key}`, connections: CONN, nonce: argv.includes("--nonce") };
  await wrk({ ...load, seconds: 2 }); // warm: token cached, JIT warm
  const insp = await inspector(w.inspectorPort);
  if (argv.includes("--heap")) return heapProfile(insp, load);
  await insp.send("Profiler.enable");
  await insp.send("Profiler.setSamplingInterval", { interval: 200 });
  await insp.send("Profiler.start");
  const r = await wrk({ ...load, seconds: SECONDS });
  const { profile } = await insp.send("Profiler.stop");
  insp.close();
  console.log(`${TARGET} ${OP}: ${r.rps.toFixed(0)} req/s at c=${CONN}, p50 ${r.p50_ms.toFixed(2)} ms, non-2xx ${r.non2xx}`);
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  const out = join(ROOT, `bench/results/${TARGET}-${OP}.cpuprofile`);
  writeFileSync(out, JSON.stringify(profile));
  summarise(profile, r.requests);
  console.log(`raw profile: ${out}`);
}

main()
  .then(async () => { for (const s of stops.reverse()) await s(); clearTimeout(hardStop); })
  .catch(async (e) => { console.error(e.stack || e); for (const s of stops.reverse()) await s().catch(() => {}); process.exit(2); });
