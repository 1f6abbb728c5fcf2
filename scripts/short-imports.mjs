// Give the wasm's imports short names, in the module and in index.js alike.
//
//   node scripts/short-imports.mjs build/index_bg.wasm build/index.js
//
// Why: wasm-bindgen names every function the module imports from index.js
// after the Rust item plus a 16-hex-digit hash (`__wbg_getByName_54117a7a…`),
// ~150 of them: 6.4 KB of the import section, and the hashes do not
// compress (~1.5 KB of the gzipped wasm). The names only have to agree
// between the two files, so each becomes `_` and a base-36 number; their
// module, `./index_bg.js` in each import, becomes `a` when index.js names
// it once, as the import object's key, and has no `"a"` (0.13 KB gzipped).
//
// Why it is sound: index.js (esbuild's minified output of wasm-bindgen's
// glue) names each import exactly once, as a key of the object it hands to
// `new WebAssembly.Instance`. A name is renamed only when it occurs exactly
// once in index.js, as such a key (`name:`), and no other text there
// contains it; the new names are checked not to occur in index.js before.
// Anything unexpected (an import of another module, a name found twice, a
// section that does not read back) leaves both files as they are, with a
// warning: the size budget then shows the difference.
//
// The same goes for the exports index.js reads: the closures' shims
// (`wasm_bindgen_<hash>___convert__closures_____invoke___<types>`: five
// names of 70 to 330 characters with hashes that do not compress), the
// allocator and table (`__wbindgen_malloc`, `__externref_table_alloc`, …)
// and the classes' methods (`keyregistry_fetch`, …). Only index.js reads
// the instance's exports (the worker's shim imports index.js, not the
// wasm). An export is renamed (to `_x` and a base-36 number) only when its
// name has an underscore (never `fetch`, `memory`, `start`: words that
// other objects' properties may share) and every mention of it in
// index.js is a property read, `.name` not followed by `=`
// (`globalThis.__worker_init_state=` keeps that export's name).
import { readFileSync, writeFileSync } from "node:fs";
import { exportsIn, leb, readLeb, readName as readNameIn, sections } from "./wasm-leb.mjs";

const [wasmPath, jsPath] = process.argv.slice(2);
const wasm = readFileSync(wasmPath);
let js = readFileSync(jsPath, "utf8");
const say = (m) => console.error(`[plumgate] short-imports: ${m}`);
const leave = (why) => {
  say(`left as it is: ${why}`);
  process.exit(0);
};
// The result is validated below: this Node must read the module as built
// (Node 22, which scripts/lib.sh puts first; an older one lacks features it uses).
if (!WebAssembly.validate(wasm)) leave(`Node ${process.version} cannot validate the module`);

// The import section.
const all = sections(wasm);
const section = all.find((s) => s.id === 2);
const exportSection = all.find((s) => s.id === 7);
if (!section) leave("no import section");
if (!exportSection) leave("no export section");

const readName = (p) => readNameIn(wasm, p);
// The bytes of an import's description after its names, by kind.
function descEnd(p) {
  const kind = wasm[p];
  p += 1;
  if (kind === 0) return readLeb(wasm, p)[1]; // function: type index
  if (kind === 1) { // table: reftype, limits
    p += 1;
    const flags = wasm[p];
    p = readLeb(wasm, p + 1)[1];
    return flags & 1 ? readLeb(wasm, p)[1] : p;
  }
  if (kind === 2) { // memory: limits
    const flags = wasm[p];
    p = readLeb(wasm, p + 1)[1];
    return flags & 1 ? readLeb(wasm, p)[1] : p;
  }
  if (kind === 3) return p + 2; // global: valtype, mutability
  if (kind === 4) return readLeb(wasm, p + 1)[1]; // tag: attribute, type index
  return -1;
}

const [count, first] = readLeb(wasm, section.body);
const imports = [];
let p = first;
for (let i = 0; i < count; i++) {
  const [module, afterModule] = readName(p);
  const [name, afterName] = readName(afterModule);
  const end = descEnd(afterName);
  if (end < 0) leave(`import ${name} of an unknown kind`);
  imports.push({ module, name, desc: wasm.subarray(afterName, end) });
  p = end;
}
if (p !== section.end) leave("the import section did not read to its end");

const occurrences = (text, s) => text.split(s).length - 1;
let next = 0;
const fresh = () => {
  for (;;) {
    const name = `_${(next++).toString(36)}`;
    if (!js.includes(`${name}:`) && !js.includes(`${name}(`)) return name;
  }
};
// An export's new name must not occur in index.js at all (it is called as
// `.name(`, and a longer identifier could contain it).
let nextExport = 0;
const freshExport = () => {
  for (;;) {
    const name = `_x${(nextExport++).toString(36)}`;
    if (!js.includes(name)) return name;
  }
};
const out = [...leb(count)];
let renamed = 0;
let saved = 0;
// The module they come from (see the top).
const MODULE = "./index_bg.js";
let module = MODULE;
if (occurrences(js, MODULE) === 1 && occurrences(js, `"${MODULE}":`) === 1 && !js.includes(`"a"`)) {
  module = "a";
  js = js.replace(`"${MODULE}":`, `"${module}":`);
  saved += imports.filter((imp) => imp.module === MODULE).length * (MODULE.length - module.length);
}
for (const imp of imports) {
  let name = imp.name;
  if (imp.module === "./index_bg.js" && occurrences(js, imp.name) === 1 && occurrences(js, `${imp.name}:`) === 1) {
    name = fresh();
    js = js.replace(`${imp.name}:`, `${name}:`);
    renamed++;
    saved += imp.name.length - name.length;
  }
  for (const s of [imp.module === MODULE ? module : imp.module, name]) {
    const bytes = Buffer.from(s, "utf8");
    out.push(...leb(bytes.length), ...bytes);
  }
  out.push(...imp.desc);
}
if (!renamed) leave("no import could be renamed");
const body = Buffer.from(out);

// The export section: a name, a kind byte and an index each.
const exportList = exportsIn(wasm, exportSection);
if (exportList.end !== exportSection.end) leave("the export section did not read to its end");
const exportsOut = [...leb(exportList.entries.length)];
let exportsRenamed = 0;
for (const { name, afterName, end } of exportList.entries) {
  let newName = name;
  const mention = new RegExp(`(?<![\\w$])${name.replace(/\$/g, "\\$")}(?![\\w$])`, "g");
  const read = new RegExp(`\\.${name.replace(/\$/g, "\\$")}(?![\\w$]|\\s*=(?!=))`, "g");
  const mentions = (js.match(mention) ?? []).length;
  if (name.includes("_") && mentions > 0 && (js.match(read) ?? []).length === mentions) {
    newName = freshExport();
    js = js.replace(read, `.${newName}`);
    exportsRenamed++;
    saved += name.length - newName.length;
  }
  const bytes = Buffer.from(newName, "utf8");
  exportsOut.push(...leb(bytes.length), ...bytes, ...wasm.subarray(afterName, end));
}
const exportBody = Buffer.from(exportsOut);

// The import section (id 2) comes before the export section (id 7).
const rebuilt = Buffer.concat([
  wasm.subarray(0, section.start),
  Buffer.from([2, ...leb(body.length)]),
  body,
  wasm.subarray(section.end, exportSection.start),
  Buffer.from([7, ...leb(exportBody.length)]),
  exportBody,
  wasm.subarray(exportSection.end),
]);
if (!WebAssembly.validate(rebuilt)) leave("the rewritten module does not validate");
writeFileSync(wasmPath, rebuilt);
writeFileSync(jsPath, js);
say(`${renamed} of ${imports.length} imports and ${exportsRenamed} exports renamed (${saved} bytes of names)`);
