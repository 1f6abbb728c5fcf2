// `wrangler deploy` takes the repository as it is: the README's deploy
// step, run as a dry run (nothing leaves the machine). wrangler dev reads
// the same wrangler.toml more leniently than a deploy does (migrations,
// assets, bindings), so a file every other suite runs with could still
// fail the one command users deploy with. The upload it would make is the
// wasm the other suites tested, under the Workers size limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./harness.mjs";

// Workers Free's limit on a Worker's compressed size (paid plans: 10 MiB).
const FREE_PLAN_GZIP_KIB = 3 * 1024;

test("wrangler deploy --dry-run with the repository's wrangler.toml: every binding, the tested wasm, under 3 MiB gzipped", async () => {
  const out = join(tempDir(), "out");
  const { code, text } = await new Promise((resolve) => {
    execFile(join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", out], {
      cwd: ROOT,
      timeout: 120_000,
      // The build is the one the suites ran (scripts/build.sh reuses it).
      env: { ...process.env, PLUMGATE_SKIP_BUILD: "1", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" },
    }, (err, stdout, stderr) => resolve({ code: err ? err.code ?? String(err) : 0, text: stdout + stderr }));
  });
  assert.equal(code, 0, text);
  for (const [binding, kind] of [
    ["env.TOKEN_AUTHORITY (TokenAuthority)", "Durable Object"],
    ["env.ORDER_LEDGER (OrderLedger)", "Durable Object"],
    ["env.RATE_LIMITER (RateLimiter)", "Durable Object"],
    ["env.KEY_REGISTRY (KeyRegistry)", "Durable Object"],
    ["env.TOKEN_CACHE", "KV Namespace"],
    ["env.ASSETS", "Assets"],
  ]) {
    assert.match(text, new RegExp(`${binding.replace(/[.()]/g, "\\$&")}.*\\s${kind}`), `binding ${binding}`);
  }
  const size = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(text);
  assert.ok(size, `no "Total Upload" line:\n${text}`);
  assert.ok(Number(size[2]) < FREE_PLAN_GZIP_KIB, `upload ${size[2]} KiB gzipped`);
  const wasm = readdirSync(out).filter((f) => f.endsWith(".wasm"));
  assert.equal(wasm.length, 1, `one wasm in the upload: ${wasm}`);
  assert.ok(readFileSync(join(out, wasm[0])).equals(readFileSync(join(ROOT, "build/index_bg.wasm"))), "the upload's wasm is the tested build");
});
