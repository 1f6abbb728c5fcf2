// The audit page's SQL against a long trail: what its `seq` bounds save.
//
//   node bench/audit-page.mjs [--rows 200000]
//
// `GET /v1/audit` asks the KeyRegistry's SQLite for a page newest first,
// walking `seq` down. A time window (`from`, `to`) whose rows are few, or far
// down the trail, made that walk read every row older than the window to
// learn that none was in it (a month of orders read for "nothing since
// yesterday"); Durable Object SQL bills each row read. The page's query now
// turns the window into `seq` bounds (the first row at or after each bound,
// found in `audit_by_time`) and names the index its walk takes.
//
// This takes the schema and both page queries (one key, every key) as they
// ship, from src/objects/registry.rs, into a Durable Object of its own in
// local workerd (Miniflare: the runtime's SQLite), fills its `audit` table
// with `--rows` entries 8 s apart under five keys, and asks each window with
// the shipped query and with the form before this change (no `seq` bounds,
// no index named), checking both give the same rows. Prints each window's
// rows read (the cursor's `rowsRead`, what is billed) and round-trip time
// (median of 5; a Worker's own clock does not move while it runs), and the
// rows the registry's hourly alarm reads to learn whether any row is left
// (it counted every table's rows before).
// Loopback only, nothing persisted; under a minute.
import { existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, cliArgs, median } from "./lib.mjs";

// Miniflare needs Node 22.12 or later: the project's (npm ci's) if this is older.
const projectNode = join(ROOT, "node_modules/.bin/node");
const [major, minor] = process.versions.node.split(".").map(Number);
if ((major < 22 || (major === 22 && minor < 12)) && existsSync(projectNode) && !process.env.AUDIT_PAGE_REEXEC) {
  const r = spawnSync(projectNode, process.argv.slice(1), { stdio: "inherit", env: { ...process.env, AUDIT_PAGE_REEXEC: "1" } });
  process.exit(r.status ?? 1);
}

const { opt } = cliArgs();
const ROWS = Number(opt("--rows", 200_000));
const MAX = 2 ** 53 - 1;
const T0 = Date.UTC(2026, 10, 1);
const STEP_MS = 8_000;
const DAY = 86_400_000;

const source = readFileSync(join(ROOT, "src/objects/registry.rs"), "utf8");
const schema = source.match(/^CREATE TABLE IF NOT EXISTS audit [^\n]*\n(?:CREATE [^\n]*ON audit [^\n]*\n?)+/m)?.[0].replace(/";\s*$/, "");
const [byKey, whole] = [...source.matchAll(/"(SELECT seq, entry FROM audit [^"]+)"/g)].map((m) => m[1]);
if (!schema || !byKey?.includes("key = ?5") || !whole?.includes("seq >=")) throw new Error("the audit schema or page queries were not found in src/objects/registry.rs");
// The form before: the cursor's bound only, and no index named.
const before = (q) => q
  .replace(/ AND seq >= \(SELECT .*? LIMIT 1\) AND seq < MIN\(\?3, IFNULL\(\(SELECT .*? LIMIT 1\), \?3\)\)/, " AND seq < ?3")
  .replace(/FROM audit (NOT INDEXED|INDEXED BY \w+) WHERE/, "FROM audit WHERE");
if (before(whole) === whole || before(byKey) === byKey) throw new Error("the page queries' seq bounds were not recognised");
// The hourly alarm's "is any row left?" (a count of every table's rows before).
const rowsLeft = source.match(/"(SELECT EXISTS \(SELECT 1 FROM audit\)[^"]*)"/)?.[1];
const rowsLeftBefore = "SELECT (SELECT COUNT(*) FROM audit) + (SELECT COUNT(*) FROM usage) + (SELECT COUNT(*) FROM holds)";
if (!rowsLeft) throw new Error("the alarm's rows-left query was not found in src/objects/registry.rs");
const otherTables = source.match(/CREATE TABLE IF NOT EXISTS (usage|holds) [^\n]*/g);
if (otherTables?.length !== 2) throw new Error("the usage and holds tables were not found in src/objects/registry.rs");

const script = `
export class Trail {
  constructor(state) { this.sql = state.storage.sql; }
  async fetch(request) {
    const { op, query, args, rows } = await request.json();
    if (op === "fill") {
      this.sql.exec(${JSON.stringify(schema)});
      for (const t of ${JSON.stringify(otherTables)}) this.sql.exec(t);
      const entry = JSON.stringify({ outcome: "placed", amount: 25, note: "x".repeat(180) });
      for (let i = 0; i < rows; i++) {
        this.sql.exec("INSERT INTO audit (at_ms, key, request_id, entry) VALUES (?, ?, ?, ?)", ${T0} + i * ${STEP_MS}, "k" + (i % 5), "r" + i, entry);
      }
      return Response.json({ rows: this.sql.exec("SELECT COUNT(*) AS n FROM audit").one().n });
    }
    const c = this.sql.exec(query, ...args);
    const seqs = c.toArray().map((r) => r.seq);
    return Response.json({ seqs, rowsRead: c.rowsRead });
  }
}
export default {
  fetch(request, env) { return env.TRAIL.get(env.TRAIL.idFromName("t")).fetch(request); },
};`;

const { Log, LogLevel, Miniflare, convertV4MiniflareOptions } = await import("miniflare");
const mf = new Miniflare(convertV4MiniflareOptions({
  workers: [{ name: "trail", modules: true, script, compatibilityDate: "2026-11-01", durableObjects: { TRAIL: { className: "Trail", useSQLite: true } } }],
  cf: false,
  log: new Log(LogLevel.WARN),
}));
try {
  const ask = async (body) => {
    const r = await mf.dispatchFetch("http://localhost/", { method: "POST", body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`${r.status}: ${await r.text()}`);
    return r.json();
  };
  const filled = await ask({ op: "fill", rows: ROWS });
  const now = T0 + ROWS * STEP_MS;
  const windows = [
    ["newest page (from: 30 days back)", now - 30 * DAY, MAX],
    ["the last hour", now - 3_600_000, MAX],
    ["nothing since from", now + 1, MAX],
    ["one day, near the start", T0 + DAY, T0 + 2 * DAY],
    ["before the first entry", now - 30 * DAY, T0],
  ];
  console.log(`audit page SQL in local workerd: ${filled.rows.toLocaleString("en")} entries ${STEP_MS / 1000} s apart (${((ROWS * STEP_MS) / DAY).toFixed(1)} days), a page of 100 (+1); round trip median of 5`);
  console.log("| query | window | rows | rows read, shipped | ms | rows read, before | ms |");
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const [label, query, extra] of [["every key", whole, []], ["one key (of 5)", byKey, ["k3"]]]) {
    for (const [name, from, to] of windows) {
      const args = [from, to, MAX, 101, ...extra];
      const out = [];
      for (const q of [query, before(query)]) {
        const ms = [];
        let last;
        for (let i = 0; i < 5; i++) {
          const t = performance.now();
          last = await ask({ op: "page", query: q, args });
          ms.push(performance.now() - t);
        }
        out.push({ ...last, ms: median(ms) });
      }
      if (JSON.stringify(out[0].seqs) !== JSON.stringify(out[1].seqs)) throw new Error(`${label}, ${name}: the two queries disagree`);
      const [a, b] = out;
      console.log(`| ${label} | ${name} | ${a.seqs.length} | ${a.rowsRead.toLocaleString("en")} | ${a.ms.toFixed(1)} | ${b.rowsRead.toLocaleString("en")} | ${b.ms.toFixed(1)} |`);
    }
  }
  const [left, counted] = [await ask({ op: "left", query: rowsLeft, args: [] }), await ask({ op: "left", query: rowsLeftBefore, args: [] })];
  console.log(`alarm's rows-left check: ${left.rowsRead.toLocaleString("en")} rows read (before: a count, ${counted.rowsRead.toLocaleString("en")})`);
} finally {
  await mf.dispose();
}
