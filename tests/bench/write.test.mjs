// Which bench/run.mjs runs rewrite the record (BENCHMARKS.md's generated
// block and bench/last-run.json): a full run of one build in workerd only.
// No worker, no load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writesRecord } from "../../bench/lib.mjs";

test("a full run writes the record; --no-write does not", () => {
  assert.equal(writesRecord(["--build-dir", "bench/results/build"]), true);
  assert.equal(writesRecord(["--build-dir", "bench/results/build", "--no-write"]), false);
});

test("--quick, --wrangler-dev and --compare runs leave the record alone unless --write", () => {
  for (const args of [["--quick"], ["--wrangler-dev"], ["--compare", "/tmp/old-build", "--compare-label", "old"], ["--quick", "--wrangler-dev"]]) {
    assert.equal(writesRecord(["--build-dir", "b", ...args]), false, args.join(" "));
    assert.equal(writesRecord(["--build-dir", "b", ...args, "--write"]), true, `${args.join(" ")} --write`);
  }
});
