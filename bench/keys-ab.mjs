// Caller keys under load, paired on one worker: what does a runtime key
// cost over a GATEWAY_KEYS key once the isolate holds it?
//
//   node bench/keys-ab.mjs [BUILD_DIR] [--rounds 8] [--seconds 5]
//
// The bench's "runtime key, isolate-cached" and "key with requests_per_minute"
// rows (bench/run.mjs) compare those keys with a GATEWAY_KEYS key on the same
// worker, in 5 rounds among the hot path's other rows (the three as a
// block, reversed every other round, as here). On this shared machine one pair of 5-s
// phases differs by up to ±10 % from load alone, so that row's median of 5
// lands anywhere within a few per cent of the truth, either side of its 5 %
// line. This runs only those three on one worker (local workerd, no [assets],
// like the bench), the order reversed every other round (the second phase
// on a worker runs a few per cent faster than the first), 32 connections,
// and prints each round's ratios to the GATEWAY_KEYS key and their medians.
//
// Loopback only; about rounds × 3 × seconds plus ~15 s; a hard stop ends it
// after 15 minutes.
import { join } from "node:path";
import { ROOT, groupCpuSeconds, makeKey, median, startSandbox, startTarget, wrk, cliArgs, runBounded } from "./lib.mjs";
import { settling, spreadIn } from "./verdict.mjs";

const { opt, positional } = cliArgs();
const BUILD = positional[0] ?? join(ROOT, "build");
const ROUNDS = Number(opt("--rounds", 8));
const SECONDS = Number(opt("--seconds", 5));
const BODY = { startDate: "2024-01-01", endDate: "2024-12-31", limit: 10, page: 1 };

async function main(stops) {
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  await sandbox.admin("/config", { rate_limits: { getOrderHistory: 1e9 } });
  const key = makeKey("bench", ["*"]);
  const w = await startTarget(sandbox, BUILD, key);
  stops.push(() => w.stop());
  const make = async (body) => {
    const r = await fetch(`${w.url}/v1/keys`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key.key}` },
      body: JSON.stringify({ scopes: ["catalog", "orders:read"], ...body }),
    });
    const text = await r.text();
    if (r.status !== 201) throw new Error(`POST /v1/keys: ${r.status} ${text}`);
    return JSON.parse(text).key;
  };
  const kinds = [
    { id: "static", label: "GATEWAY_KEYS key", auth: `Bearer ${key.key}` },
    { id: "runtime", label: "runtime key", auth: `Bearer ${await make({ id: "ab-runtime" })}` },
    { id: "limited", label: "runtime key with requests_per_minute", auth: `Bearer ${await make({ id: "ab-rpm", limits: { requests_per_minute: 1_000_000 } })}` },
  ];
  const url = `${w.url}/v1/ops/getOrderHistory`;
  for (const k of kinds) await wrk({ url, body: BODY, auth: k.auth, connections: 8, seconds: 2 }); // token cached, keys known, JIT warm
  const rps = {}, cpu = {};
  let bad = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? [...kinds].reverse() : kinds;
    for (const k of order) {
      const c0 = groupCpuSeconds(w.pid);
      const x = await wrk({ url, body: BODY, auth: k.auth, connections: 32, seconds: SECONDS });
      (cpu[k.id] ??= []).push(((groupCpuSeconds(w.pid) - c0) * 1000) / x.requests);
      (rps[k.id] ??= []).push(x.rps);
      bad += x.non2xx + x.socket_errors;
    }
    process.stderr.write(`[keys-ab] round ${r + 1}/${ROUNDS}: ${order.map((k) => `${k.id} ${rps[k.id].at(-1).toFixed(0)} req/s`).join(", ")}\n`);
  }
  const f3 = (x) => x.toFixed(3);
  console.log(`${ROUNDS} rounds of ${SECONDS} s per key kind at 32 connections, order reversed every other round, one worker (${BUILD})`);
  for (const k of kinds) {
    const ratio = rps[k.id].map((x, i) => x / rps.static[i]);
    const cpuRatio = cpu[k.id].map((x, i) => x / cpu.static[i]);
    // The 5 % budget's words on these rounds (bench/verdict.mjs: is 0.95 inside their range?).
    const spread = spreadIn(rps)(k.id, "static", (a, b) => a / b);
    const vs = k.id === "static" ? "" : `; throughput / GATEWAY_KEYS key: median ${f3(median(ratio))} (per round ${ratio.map((x) => x.toFixed(2)).join(" ")})${settling(spread, 0.95, f3, ROUNDS)}; CPU per request ${f3(median(cpuRatio))}`;
    console.log(`${k.label}: req/s median ${median(rps[k.id]).toFixed(0)}, CPU ms/request median ${f3(median(cpu[k.id]))}${vs}`);
  }
  if (bad) {
    console.error(`${bad} answers were not 2xx or had socket errors`);
    process.exitCode = 1;
  }
}

runBounded("keys-ab", 15, main);
