// No import circles in the worker crate (CONTRIBUTING.md, "Where things go").
//
// Reads every `src/**/*.rs`, takes each module's references to other
// modules of the crate (`crate::a::b`, `super::c`, in code, not comments),
// and fails with the circle it finds. Modules are files: `src/a.rs` and
// `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`. A module may use what is
// below it, never what (directly or not) uses it.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

// fileURLToPath, not .pathname: a clone path with a space stays a path.
const root = fileURLToPath(new URL("../src/", import.meta.url));

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".rs") ? [p] : [];
  });
}

function moduleOf(file) {
  const parts = relative(root, file).replace(/\.rs$/, "").split("/");
  if (parts.at(-1) === "mod" || parts.at(-1) === "lib") parts.pop();
  return parts.join("::");
}

const sources = new Map(files(root).map((f) => [moduleOf(f), readFileSync(f, "utf8")]));
const modules = new Set(sources.keys());

/** The module a path names: its longest prefix that is a module. */
function resolve(path) {
  const parts = path.split("::");
  for (let n = parts.length; n > 0; n--) {
    const m = parts.slice(0, n).join("::");
    if (modules.has(m)) return m;
  }
  return null;
}

const edges = new Map();
for (const [mod, text] of sources) {
  const code = text
    .split("\n")
    .filter((line) => !line.trim().startsWith("//"))
    .join("\n");
  const targets = new Set();
  const parent = mod.split("::").slice(0, -1).join("::");
  const paths = [];
  for (const m of code.matchAll(/\bcrate::\{([^}]*)\}/g)) paths.push(...m[1].split(",").map((p) => p.trim()));
  for (const m of code.matchAll(/\bcrate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)/g)) paths.push(m[1]);
  for (const m of code.matchAll(/\bsuper::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)/g)) {
    paths.push(parent ? `${parent}::${m[1]}` : m[1]);
  }
  for (const p of paths) {
    const t = resolve(p.replace(/^self$/, ""));
    if (t && t !== mod) targets.add(t);
  }
  edges.set(mod, targets);
}

// Depth-first search; a grey node met again closes a circle.
const state = new Map();
const stack = [];
let circle = null;
function visit(m) {
  state.set(m, "grey");
  stack.push(m);
  for (const t of edges.get(m) ?? []) {
    if (circle) return;
    if (state.get(t) === "grey") {
      circle = [...stack.slice(stack.indexOf(t)), t];
      return;
    }
    if (!state.has(t)) visit(t);
  }
  stack.pop();
  state.set(m, "black");
}
for (const m of [...modules].sort()) if (!state.has(m) && !circle) visit(m);

if (circle) {
  console.error(`import circle in src/: ${circle.join(" -> ")}`);
  process.exit(1);
}
const count = [...edges.values()].reduce((n, t) => n + t.size, 0);
console.log(`src/: ${modules.size} modules, ${count} imports, no circles`);
