// The cost of caller keys made at runtime, measured small and sequential (not
// a load test; about a minute):
//
//   node bench/keys.mjs        (after scripts/build.sh and the sandbox build)
//
// A GATEWAY_KEYS key vs a runtime key (looked up in the isolate's copy of the
// key directory) vs a runtime key with requests_per_minute, on the uncached
// hot path (getOrderHistory); and placeOrder without a spend cap vs with one
// (one KeyRegistry call before the order). 3 interleaved rounds, p50 and p90
// of every request, under wrangler dev (its proxy adds a few ms to every
// row alike) against the bundled sandbox on loopback. It also checks that
// what the registry counted equals the requests sent (exit 1 if not).
// bench/run.mjs measures the runtime-key rows under load with the rest,
// and a runtime key's first use (the KeyRegistry round trip) on its own.
import { startSandbox, startWorker, makeKey, call, HIGH_LIMITS } from "../tests/e2e/harness.mjs";
const admin = makeKey("admin", ["*"]);
const reader = makeKey("static-reader", ["orders:read", "orders:write"]);
const sandbox = await startSandbox(["--quiet"]);
// The worker and the sandbox are stopped however this ends (an answer
// that is not 200 throws).
let w;
try {
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS, initial_balance: 1e9 });
  w = await startWorker({ sandbox, keys: { admin, reader } });
  const mk = async (id, limits) => (await call(w, "/v1/keys", { key: admin, body: { id, scopes: ["orders:read", "orders:write"], limits } })).json.key;
  const rt = await mk("runtime-reader");
  const rtLimited = await mk("runtime-rpm", { requests_per_minute: 1000000 });
  const rtCapped = await mk("runtime-capped", { order_amount_per_day: 1000000000 });
  const HIST = { startDate: "2020-01-01", endDate: "2030-12-31", limit: 1, page: 1 };
  async function time(fn) { const t = performance.now(); const r = await fn(); if (r.status !== 200) throw new Error(`${r.status} ${r.text}`); return performance.now() - t; }
  const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(p * (s.length - 1))]; };
  const targets = {
    "static key, getOrderHistory": () => call(w, "/v1/ops/getOrderHistory", { key: reader, body: HIST }),
    "runtime key, getOrderHistory": () => call(w, "/v1/ops/getOrderHistory", { key: rt, body: HIST }),
    "runtime key + requests_per_minute, getOrderHistory": () => call(w, "/v1/ops/getOrderHistory", { key: rtLimited, body: HIST }),
  };
  let n = 0;
  const orders = {
    "static key, placeOrder (no cap)": () => call(w, "/v1/ops/placeOrder", { key: reader, body: { productId: 10100, quantity: 1, denomination: 10, poNumber: `lat-${++n}` } }),
    "runtime key + order_amount_per_day, placeOrder": () => call(w, "/v1/ops/placeOrder", { key: rtCapped, body: { productId: 10100, quantity: 1, denomination: 10, poNumber: `lat-${++n}` } }),
  };
  const res = {};
  const sent = {};
  const KEY_OF = {
    "static key, getOrderHistory": "static-reader", "runtime key, getOrderHistory": "runtime-reader",
    "runtime key + requests_per_minute, getOrderHistory": "runtime-rpm", "static key, placeOrder (no cap)": "static-reader",
    "runtime key + order_amount_per_day, placeOrder": "runtime-capped",
  };
  const count = (name) => { sent[KEY_OF[name]] = (sent[KEY_OF[name]] ?? 0) + 1; };
  for (const [set, N] of [[targets, 100], [orders, 30]]) {
    for (const [name, f] of Object.entries(set)) for (let i = 0; i < 20; i++) { await time(f); count(name); } // warm-up
    for (let round = 0; round < 3; round++) {
      for (const [name, f] of Object.entries(set)) {
        for (let i = 0; i < N; i++) { (res[name] ??= []).push(await time(f)); count(name); }
      }
    }
  }
  for (const [name, xs] of Object.entries(res)) console.log(`${name.padEnd(52)} n=${xs.length} p50=${q(xs, 0.5).toFixed(2)} ms p90=${q(xs, 0.9).toFixed(2)} ms`);
  const list = await call(w, "/v1/keys", { method: "GET", key: admin });
  const calls = (await sandbox.counters()).api_calls;
  console.log("registry-side usage (requests today):", list.json.keys.map((k) => `${k.id}=${k.usage.requests}`).join(" "));
  console.log("upstream calls:", JSON.stringify(calls));
  const counted = Object.fromEntries(list.json.keys.map((k) => [k.id, k.usage.requests]));
  const wrong = Object.entries(sent).filter(([id, n]) => counted[id] !== n);
  if (wrong.length) {
    console.error(`the registry's counts differ from the requests sent: ${wrong.map(([id, n]) => `${id} sent ${n}, counted ${counted[id]}`).join("; ")}`);
    process.exitCode = 1;
  }
} finally {
  await w?.stop();
  await sandbox.stop();
}
