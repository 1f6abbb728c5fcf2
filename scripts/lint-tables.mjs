// Markdown tables in the project's docs render as written (scripts/test.sh).
//
// A table row split across lines renders as extra rows (a cell of stray
// prose, a default in the wrong column), and a row with a cell too many or
// too few shifts its columns. For each Markdown file outside node_modules,
// build output and tests: every line after a table's header up to the
// first blank line (or HTML comment) must be a row (start with `|`) with the
// header's number of cells. Cells are counted by unescaped `|` outside code spans.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const SKIP = new Set(["node_modules", "target", "build", ".git", ".wrangler", "tests", "dist"]);

function markdown(dir) {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const p = join(dir, name);
    return statSync(p).isDirectory() ? markdown(p) : p.endsWith(".md") ? [p] : [];
  });
}

const cells = (line) => (line.replace(/`[^`]*`/g, "").match(/(?<!\\)\|/g) || []).length;

const problems = [];
for (const file of markdown(root)) {
  const lines = readFileSync(file, "utf8").split("\n");
  let header = 0;
  let fenced = false;
  lines.forEach((line, i) => {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) return;
    const where = `${relative(root, file)}:${i + 1}`;
    if (line.startsWith("|")) {
      if (!header) header = cells(line);
      else if (cells(line) !== header) problems.push(`${where}: ${cells(line) - 1} cells, the header has ${header - 1}`);
    } else if (header) {
      // Another block (an HTML comment: the bench's markers) ends it too.
      if (line.trim() && !line.startsWith("<!--")) problems.push(`${where}: a table row continues on a line of its own (join it to the row)`);
      header = 0;
    }
  });
}
if (problems.length) {
  console.error(`Markdown tables that do not render as written:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("markdown tables: every row on one line, with its header's cells");
