// Which bench/run.mjs runs rewrite the record (BENCHMARKS.md's generated
// block and bench/last-run.json): a full run of one build in workerd with
// the default settings only. No worker, no load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SETTINGS_ENV, recordSkipped, writesRecord } from "../../bench/lib.mjs";

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
