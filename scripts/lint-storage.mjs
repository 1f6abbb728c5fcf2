// docs/storage.md names what is stored as the code stores it (scripts/test.sh).
//
// Each stored struct's field table (`AuthorityState`, `Record`, `KeyRecord`)
// lists exactly the struct's fields, and the `KeyRegistry` table list gives
// exactly the columns of the tables its SQL creates. A field or column added
// to the code without a line in the document (or left in the document after
// it went) fails here; what each one means stays the document's to say.
import { readFileSync } from "node:fs";

const read = (path) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");
const doc = read("docs/storage.md");
const problems = [];

/** The cells of the rows of the first Markdown table after `heading`. */
function tableRows(heading) {
  const at = doc.indexOf(heading);
  if (at < 0) {
    problems.push(`docs/storage.md: no "${heading}"`);
    return [];
  }
  const lines = doc.slice(at).split("\n");
  const start = lines.findIndex((l) => l.startsWith("|"));
  const rows = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(line.split("|").slice(1, -1));
  }
  return rows;
}

/** The backticked lowercase names in `cell`, leaving out what parentheses say. */
const names = (cell = "") => [...cell.replace(/\([^)]*\)/g, "").matchAll(/`([a-z_0-9]+)`/g)].map((m) => m[1]);

function compare(what, inCode, inDoc) {
  const missing = inCode.filter((n) => !inDoc.includes(n));
  const extra = inDoc.filter((n) => !inCode.includes(n));
  if (missing.length) problems.push(`${what}: in the code, not in docs/storage.md: ${missing.join(", ")}`);
  if (extra.length) problems.push(`${what}: in docs/storage.md, not in the code: ${extra.join(", ")}`);
  if (!inCode.length) problems.push(`${what}: no fields found in the code (has it moved?)`);
}

for (const [name, file] of [
  ["AuthorityState", "crates/core/src/token.rs"],
  ["Record", "crates/core/src/ledger.rs"],
  ["KeyRecord", "crates/core/src/keys.rs"],
]) {
  const src = read(file);
  const body = src.match(new RegExp(`^pub struct ${name} \\{\\n([\\s\\S]*?)^\\}`, "m"))?.[1] ?? "";
  const fields = [...body.matchAll(/^ {4}pub ([a-z_0-9]+):/gm)].map((m) => m[1]);
  const documented = tableRows(`\`${name}\` fields`).flatMap((cells) => names(cells[0]));
  compare(`${name} (${file})`, fields, documented);
}

// The registry's tables: SCHEMA's CREATE TABLE column lists against the
// document's `table | columns` rows.
const registry = read("src/objects/registry.rs");
const schema = registry.match(/const SCHEMA: &str = "([\s\S]*?)";/)?.[1] ?? "";
const tables = [...schema.matchAll(/CREATE TABLE IF NOT EXISTS (\w+) \(([^;]*)\);/g)];
if (!tables.length) problems.push("src/objects/registry.rs: no CREATE TABLE found in SCHEMA");
const rows = new Map(tableRows("## Durable Object `KeyRegistry`").map((cells) => [names(cells[0])[0], names(cells[1])]));
for (const [, table, columns] of tables) {
  const cols = columns.replace(/,\s*PRIMARY KEY \([^)]*\)/, "").split(",").map((c) => c.trim().split(/\s+/)[0]);
  if (!rows.has(table)) {
    problems.push(`KeyRegistry table ${table}: not in docs/storage.md`);
    continue;
  }
  compare(`KeyRegistry table ${table}`, cols, rows.get(table));
}
for (const table of rows.keys()) {
  if (!tables.some(([, t]) => t === table)) problems.push(`KeyRegistry table ${table}: in docs/storage.md, not in SCHEMA`);
}

if (problems.length) {
  for (const p of problems) console.error(`storage lint: ${p}`);
  process.exit(1);
}
console.log(`storage lint: ${tables.length} registry tables and 3 stored structs as docs/storage.md says`);
