// Paired A/B of two plumgate builds: is B cheaper than A per request?
//
//   node bench/ab.mjs DIR_A DIR_B [--pairs 12] [--seconds 3] [--path /v1/ops/getOrderHistory|/healthz]
//
// The full bench (bash scripts/bench.sh --compare DIR) runs 5 rounds; on this
// shared machine that cannot tell apart changes under ~5 % of CPU per
// request. This runs A and B (both without the demo-page [assets], like the
// bench's like-for-like rows) side by side in local workerd and alternates
// short 32-connection phases, A then B, B then A, ... For every pair it
// takes B's CPU per request over A's, so slow drift in background load
// cancels out. Prints the median of those ratios and in how many pairs B
// was cheaper. Calibrate by running a build against a copy of itself: there
// the median sat at 0.98–1.0 and B "won" 6–8 of 12 pairs (2026-11-25).
//
// Loopback only; about pairs × 2 × (seconds + 0.5) s plus ~20 s start-up;
// a hard stop ends it after 10 minutes.
import { resolve, join } from "node:path";
import { ROOT, cleanup, groupCpuSeconds, makeKey, median, plumgateToml, startSandbox, startWorkerd, tempDir, wrk } from "./lib.mjs";

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const dirs = argv.filter((a, i) => !a.startsWith("--") && !(i > 0 && argv[i - 1].startsWith("--"))).slice(0, 2).map((d) => resolve(d));
if (dirs.length !== 2) {
  console.error("usage: node bench/ab.mjs DIR_A DIR_B [--pairs 12] [--seconds 3] [--path /v1/ops/getOrderHistory|/healthz]");
  process.exit(2);
}
const PAIRS = Number(opt("--pairs", 12));
const SECONDS = Number(opt("--seconds", 3));
const PATH = opt("--path", "/v1/ops/getOrderHistory");

const stops = [];
const stopAll = async () => { for (const s of stops.reverse()) await s().catch(() => {}); };
const hardStop = setTimeout(async () => { console.error("ab: hard stop after 10 minutes"); await stopAll(); process.exit(2); }, 10 * 60_000);

async function main() {
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  await sandbox.admin("/config", { rate_limits: { getOrderHistory: 1e9 } });
  const key = makeKey("bench", ["*"]);
  const workers = [];
  for (const dir of dirs) {
    const persistDir = tempDir("plumgate-ab-");
    // Each worker gets its own refresh token: they rotate independently.
    const { refresh_token } = await sandbox.admin("/tokens/issue", {});
    const w = await startWorkerd({
      toml: plumgateToml(dir, { assets: false }),
      persistDir,
      vars: {
        XOXODAY_OAUTH_URL: sandbox.oauthUrl,
        XOXODAY_CLIENT_ID: "plumgate-dev-client",
        XOXODAY_CLIENT_SECRET: "plumgate-dev-secret",
        XOXODAY_REFRESH_TOKEN: refresh_token,
        GATEWAY_KEYS: JSON.stringify([key.entry]),
      },
    });
    stops.push(async () => { await w.stop(); cleanup(persistDir); });
    workers.push(w);
  }
  const load = (w) => PATH === "/healthz"
    ? { url: w.url + PATH, method: "GET" }
    : { url: w.url + PATH, body: { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 }, auth: `Bearer ${key.key}` };
  for (const w of workers) await wrk({ ...load(w), connections: 8, seconds: 2 }); // token cached, JIT warm

  const cpu = [[], []];
  const rps = [[], []];
  const ratios = [];
  let bad = 0;
  for (let p = 0; p < PAIRS; p++) {
    const here = [];
    for (const i of p % 2 ? [1, 0] : [0, 1]) {
      const c0 = groupCpuSeconds(workers[i].pid);
      const r = await wrk({ ...load(workers[i]), connections: 32, seconds: SECONDS });
      here[i] = ((groupCpuSeconds(workers[i].pid) - c0) * 1000) / r.requests;
      cpu[i].push(here[i]);
      rps[i].push(r.rps);
      bad += r.non2xx + r.socket_errors;
    }
    ratios.push(here[1] / here[0]);
    process.stderr.write(`[ab] pair ${p + 1}/${PAIRS}: B/A CPU ${ratios.at(-1).toFixed(3)}\n`);
  }
  const f3 = (x) => x.toFixed(3);
  console.log(`path ${PATH}, ${PAIRS} pairs of ${SECONDS} s at 32 connections`);
  console.log(`A ${dirs[0]}: CPU ms/request median ${f3(median(cpu[0]))}, req/s median ${median(rps[0]).toFixed(0)}`);
  console.log(`B ${dirs[1]}: CPU ms/request median ${f3(median(cpu[1]))}, req/s median ${median(rps[1]).toFixed(0)}`);
  console.log(`B/A CPU per request, median of pairs: ${f3(median(ratios))}; B cheaper in ${ratios.filter((r) => r < 1).length} of ${PAIRS} pairs`);
  console.log(`pair ratios: ${ratios.map((r) => r.toFixed(2)).join(" ")}`);
  if (bad) console.log(`WARNING: ${bad} non-2xx answers or socket errors`);
}

main()
  .then(async () => { await stopAll(); clearTimeout(hardStop); })
  .catch(async (e) => { console.error(e.stack || e); await stopAll(); process.exit(2); });
