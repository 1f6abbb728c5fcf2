// The audit page's SQL as it ships (bench/audit-page.mjs), run in local
// workerd on a small trail: each window's page reads no more rows than it
// returns plus the two bound lookups' (and the extra row that says there is
// more), and gives the same rows as the form before its `seq` bounds; the
// hourly alarm's check for rows left reads at most one per table. Counts
// rows read, not time. Loopback only; a few seconds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../bench/audit-page.mjs", import.meta.url));

test("every audit page window reads about the rows it returns, with the same rows as before", () => {
  const r = spawnSync(process.execPath, [script, "--rows", "3000"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.split("\n").filter((l) => /^\| (every key|one key)/.test(l)).map((l) => l.split("|").map((c) => c.trim()));
  assert.equal(rows.length, 10, r.stdout);
  for (const [, query, window, returned, shipped, , before] of rows) {
    const [n, read, old] = [returned, shipped, before].map((c) => Number(c.replaceAll(",", "")));
    assert.ok(Number.isInteger(n) && Number.isInteger(read) && Number.isInteger(old), `${query}, ${window}: ${r.stdout}`);
    assert.ok(read <= n + 3, `${query}, ${window}: ${read} rows read for ${n}`);
  }
  // The form before read a whole window for the default page (every key,
  // from the retention's start): what the bounds are for.
  const [, , , , shipped, , before] = rows.find(([, q, w]) => q === "every key" && w.startsWith("newest page"));
  assert.ok(Number(before.replaceAll(",", "")) > 10 * Number(shipped.replaceAll(",", "")), `${shipped} vs ${before}`);
  // The hourly alarm learns whether any row is left without counting them.
  const alarm = r.stdout.match(/^alarm's rows-left check: ([\d,]+) rows read \(before: a count, ([\d,]+)\)$/m);
  assert.ok(alarm, r.stdout);
  assert.ok(Number(alarm[1].replaceAll(",", "")) <= 3 && Number(alarm[2].replaceAll(",", "")) >= 3000, alarm[0]);
});
