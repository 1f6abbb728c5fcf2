// Which bench/run.mjs runs rewrite the record (BENCHMARKS.md's generated
// block and bench/last-run.json): a full run of one build in workerd with
// the default settings only. No worker, no load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SETTINGS_ENV, recordSkipped, recordText, writesRecord } from "../../bench/lib.mjs";
import { pairedIn, spreadIn } from "../../bench/verdict.mjs";

test("a full run writes the record; --no-write does not", () => {
  assert.equal(writesRecord(["--build-dir", "bench/results/build"], {}), true);
  assert.equal(writesRecord(["--build-dir", "bench/results/build", "--no-write"], {}), false);
});

test("--quick, --wrangler-dev and --compare runs leave the record alone unless --write", () => {
  for (const args of [["--quick"], ["--wrangler-dev"], ["--compare", "/tmp/old-build", "--compare-label", "old"], ["--quick", "--wrangler-dev"]]) {
    assert.equal(writesRecord(["--build-dir", "b", ...args], {}), false, args.join(" "));
    assert.equal(writesRecord(["--build-dir", "b", ...args, "--write"], {}), true, `${args.join(" ")} --write`);
  }
});

test("a full run with a setting from the environment leaves the record alone unless --write", () => {
  assert.equal(writesRecord(["--build-dir", "b"], { BENCH_ROUNDS: "1" }), false);
  for (const name of ["BENCH_ROUNDS", "BENCH_SECONDS", "BENCH_LATENCY_SECONDS", "BENCH_CONNECTIONS", "BENCH_CATALOG_ROUNDS"]) {
    assert.equal(writesRecord(["--build-dir", "b"], { [name]: "2" }), false, name);
    assert.equal(writesRecord(["--build-dir", "b", "--write"], { [name]: "2" }), true, `${name} with --write`);
  }
  // Empty is unset: bench/run.mjs reads `process.env.X || default`.
  assert.equal(writesRecord(["--build-dir", "b"], { BENCH_ROUNDS: "" }), true);
  // Other variables do not count.
  assert.equal(writesRecord(["--build-dir", "b"], { BENCH_FAIL_ON_BUDGET: "1", PATH: "/usr/bin" }), true);
});

test("the reason printed names what kept the record from being written", () => {
  assert.equal(recordSkipped(["--build-dir", "b"], {}), "");
  assert.equal(recordSkipped(["--quick"], { BENCH_CONNECTIONS: "8" }), "--quick; settings from the environment: BENCH_CONNECTIONS=8");
  assert.deepEqual(SETTINGS_ENV, ["BENCH_ROUNDS", "BENCH_SECONDS", "BENCH_LATENCY_SECONDS", "BENCH_CONNECTIONS", "BENCH_CATALOG_ROUNDS"]);
});

test("bench/run.mjs reads from the environment exactly the settings that keep the record", async () => {
  const { readFileSync } = await import("node:fs");
  const run = readFileSync(new URL("../../bench/run.mjs", import.meta.url), "utf8");
  const read = [...new Set([...run.matchAll(/process\.env\.(BENCH_[A-Z_]+)/g)].map((m) => m[1]))].filter((n) => n !== "BENCH_FAIL_ON_BUDGET");
  assert.deepEqual(read.sort(), [...SETTINGS_ENV].sort());
});

test("the record keeps each row's rounds, cut to what its paired figures and spreads are computed from", () => {
  const phase = (rps, p50, p99) => ({ connections: 32, seconds: 5, requests: Math.round(rps * 5), rps, p50_ms: p50, p90_ms: p50 * 2, p99_ms: p99, mean_ms: p50, max_ms: p99 * 2, non2xx: 0, socket_errors: 0, cache_mismatch: 0 });
  const measure = (rps, cpu, p50, p99) => ({ load: phase(rps, p50 * 10, p99), lat: phase(rps / 2, p50, p99 * 3), cpu_ms_per_req: cpu });
  const a = [measure(1000, 0.5, 1.1, 40), measure(1200, 0.45, 1.0, 52), measure(900, 0.6, 1.3, 38), measure(1100, 0.52, 0.9, 61), measure(1050, 0.49, 1.2, 44)];
  const b = [measure(1150, 0.44, 1.0, 35), measure(1000, 0.5, 1.1, 50), measure(1300, 0.41, 0.8, 47), measure(980, 0.55, 1.0, 41), measure(1200, 0.43, 1.1, 39)];
  const direct = a.map((x) => ({ ...x, cpu_ms_per_req: undefined }));
  const results = {
    settings: { rounds: 5 },
    rounds: { plumgate: a, js_full: b },
    hot: { plumgate: { rps: 1050, rounds: a }, js_full: { rps: 1150, rounds: b }, direct: { rounds: direct } },
    catalog: { penalty: { rounds: 5 } },
    cold: { samples: [{ ms: 1 }], extra_p50_ms: 3 },
  };
  const record = JSON.parse(recordText(results));
  assert.equal(record.rounds, undefined, "the run-wide rounds");
  assert.equal(record.cold.samples, undefined, "the cold start's samples");
  assert.equal(record.cold.extra_p50_ms, 3);
  assert.equal(record.settings.rounds, 5, "a count named rounds stays");
  assert.equal(record.catalog.penalty.rounds, 5);
  assert.deepEqual(record.hot.plumgate.rounds[0], { load: { requests: 5000, rps: 1000, p50_ms: 11, p99_ms: 40 }, lat: { p50_ms: 1.1, p99_ms: 120 }, cpu_ms_per_req: 0.5 });
  assert.deepEqual(Object.keys(record.hot.direct.rounds[0]), ["load", "lat"], "no CPU where the row has none");
  // The record's rounds give the figures the run computed, at any rank.
  const rows = { plumgate: record.hot.plumgate.rounds, js_full: record.hot.js_full.rounds };
  for (const f of [(x, y) => x.load.rps / y.load.rps, (x, y) => x.cpu_ms_per_req / y.cpu_ms_per_req, (x, y) => x.load.p99_ms / y.load.p99_ms, (x, y) => x.lat.p50_ms - y.lat.p50_ms]) {
    assert.equal(pairedIn(rows)("plumgate", "js_full", f), pairedIn(results.rounds)("plumgate", "js_full", f));
    assert.deepEqual(spreadIn(rows)("plumgate", "js_full", f), spreadIn(results.rounds)("plumgate", "js_full", f));
  }
});
