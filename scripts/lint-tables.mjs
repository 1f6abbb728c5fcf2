// Markdown tables in the project's docs render as written (scripts/test.sh).
//
// A table row split across lines renders as extra rows (a cell of stray
// prose, a default in the wrong column), and a row with a cell too many or
// too few shifts its columns. For each Markdown file outside node_modules,
// build output and tests: every line after a table's header up to the
// first blank line (or a line that starts another block: a fence, an HTML
// comment, a heading, a list item, a quote) must be a row (start with `|`)
// with the header's number of cells.
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

// Cells as GitHub splits them: on every `|` not escaped with `\`, code
// spans included (a `|` in one must be written `\|` in a table), the
// row's leading and trailing `|` optional.
const cells = (line) => line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "").split(/(?<!\\)\|/).length;
// A line that starts another block ends a table without a blank line.
const startsBlock = (line) => /^(```|<!--|#{1,6} |[-*+] |\d+[.)] |> )/.test(line);

const problems = [];
for (const file of markdown(root)) {
  const lines = readFileSync(file, "utf8").split("\n");
  let header = 0;
  let fenced = false;
  lines.forEach((line, i) => {
    const where = `${relative(root, file)}:${i + 1}`;
    if (!fenced && line.startsWith("|")) {
      if (!header) header = cells(line);
      else if (cells(line) !== header) problems.push(`${where}: ${cells(line)} cells, the header has ${header}`);
    } else if (header) {
      if (line.trim() && !startsBlock(line)) problems.push(`${where}: a table row continues on a line of its own (join it to the row)`);
      header = 0;
    }
    if (line.startsWith("```")) fenced = !fenced;
  });
}
if (problems.length) {
  console.error(`Markdown tables that do not render as written:\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("markdown tables: every row on one line, with its header's cells");
