// Take out of the wasm's function table the closures of the stream classes
// whose exports scripts/build.sh removes (wasm-streams' IntoUnderlyingSource,
// IntoUnderlyingByteSource and IntoUnderlyingSink), so that the optimizer
// can drop their code.
//
//   node scripts/prune-table.mjs build/index_bg.wasm
//
// Why it is needed: wasm-bindgen exports the function table to index.js, and
// the optimizer keeps every function an exported table holds, reachable or
// not. These classes' methods (`pull`, `write`, …) each put a closure in the
// table; with the methods' exports removed nothing can run them, but the
// closures stayed: about 9 KB raw, 3.5 KB gzipped. (The text of every
// `std::io::ErrorKind` they format stays in the data even once their code is
// gone: scripts/zero-dead-text.mjs blanks it after the optimizer's pass.)
//
// Why it is sound: JavaScript reaches those methods only through an object of
// the class handed out by the wasm, which index.js would wrap (`__wrap`), and
// build.sh fails the build if index.js wraps anything. So the closures are
// never created, their table slots never called. Each slot is pointed at the
// table's first function instead (a call through it would fail the
// signature check, or run a function that was never meant for it: neither
// can happen, as no code holds these slots' indexes).
//
// Also taken out: the table slots of closure shims (`wasm_bindgen::convert::
// closures::_::invoke::<…>`) that nothing can call through. wasm-bindgen puts
// a shim in the table for every closure type some import of a linked crate
// describes (js_sys's typed arrays' and Set's forEach callbacks, …), used or
// not. No Rust code calls a shim: it exists for JavaScript, which reaches one
// either as an export of the module (wasm-bindgen 0.2.130 exports each shim
// an import plumgate uses needs, and index.js calls the export: the `new
// Promise` executor of every request, for one) or through the slot an
// import's description names (`shim_idx: N` in the name of a generated
// import, such as `Closure(Closure { … shim_idx: 37 … }) -> Externref`). So
// every exported shim's slot and every slot a name gives as `shim_idx` stay;
// the other shims' slots (about 40: 2.7 KB raw, 0.67 KB gzipped) are pointed
// at the filler like the stream classes' closures. If no name gives a
// `shim_idx` (a wasm-bindgen that names its imports otherwise), no shim is
// taken out.
//
// Works on the module worker-build writes (with its "name" section); a
// module without names, or with a table segment of another form, is left as
// it is with a warning (the size budget then shows the difference).
import { readFileSync, writeFileSync } from "node:fs";
import { exportsIn, leb, readLeb as readLebIn, sections as sectionsOf } from "./wasm-leb.mjs";

const file = process.argv[2];
// Any table entry that names those classes' code (the futures their methods
// start, the shims and drop glue of those futures).
const DEAD = /wasm_streams\[[0-9a-f]+\]::(readable::into_underlying_(byte_)?source|writable::into_underlying_sink)::/;

const wasm = readFileSync(file);

const readLeb = (at) => readLebIn(wasm, at);

function warn(why) {
  console.error(`[plumgate] prune-table: ${why}; the table is left as it is`);
  process.exit(0);
}

const sections = sectionsOf(wasm);

// Function names, from the "name" custom section.
const names = new Map();
for (const s of sections.filter((s) => s.id === 0)) {
  let [len, at] = readLeb(s.body);
  if (wasm.subarray(at, at + len).toString() !== "name") continue;
  at += len;
  while (at < s.end) {
    const kind = wasm[at];
    const [size, body] = readLeb(at + 1);
    if (kind === 1) {
      let [count, p] = readLeb(body);
      for (let i = 0; i < count; i++) {
        let index, nameLen;
        [index, p] = readLeb(p);
        [nameLen, p] = readLeb(p);
        names.set(index, wasm.subarray(p, p + nameLen).toString());
        p += nameLen;
      }
    }
    at = body + size;
  }
}
if (names.size === 0) warn("the module has no function names");
// The table slots some name of the module gives as a shim's (`shim_idx: N`).
const named = new Set();
for (const name of names.values()) {
  for (const m of name.matchAll(/shim_idx: (\d+)/g)) named.add(Number(m[1]));
}
// The names of the functions the module exports (JavaScript calls them by
// name): a shim's export may be its externref wrapper, named after it.
const exported = new Set();
for (const s of sections.filter((s) => s.id === 7)) {
  for (const { kind, index } of exportsIn(wasm, s).entries) {
    if (kind === 0) exported.add((names.get(index) ?? "").replace(/ externref shim$/, ""));
  }
}
const pruneShims = named.size > 0;
if (!pruneShims) console.error("[plumgate] prune-table: no name gives a shim slot (shim_idx); every closure shim stays");
const SHIM = /^wasm_bindgen\[[0-9a-f]+\]::convert::closures::_::invoke::</;

const elem = sections.find((s) => s.id === 9);
if (!elem) warn("the module has no table segment");
let [segments, at] = readLeb(elem.body);
const out = [...leb(segments)];
let pruned = 0;
for (let seg = 0; seg < segments; seg++) {
  const [flags, exprStart] = readLeb(at);
  if (flags !== 0) warn(`table segment ${seg} has flags ${flags}`);
  // The segment's first slot: `i32.const <offset>` (the only form written),
  // read as such: the constant's own bytes may hold 0x0b, the `end` byte
  // (offset 11 does).
  if (wasm[exprStart] !== 0x41) warn(`table segment ${seg} has an offset that is not a constant`);
  const [offset, constEnd] = readLebIn(wasm, exprStart + 1, true);
  if (wasm[constEnd] !== 0x0b) warn(`table segment ${seg} has an offset that is not a lone constant`);
  const exprEnd = constEnd + 1;
  let [count, p] = readLeb(exprEnd);
  const slots = [];
  for (let i = 0; i < count; i++) {
    let index;
    [index, p] = readLeb(p);
    slots.push(index);
  }
  const filler = slots[0];
  out.push(...leb(flags), ...wasm.subarray(exprStart, exprEnd), ...leb(count));
  slots.forEach((index, i) => {
    const name = names.get(index) ?? "";
    const dead = DEAD.test(name) || (pruneShims && SHIM.test(name) && !named.has(offset + i) && !exported.has(name));
    if (dead) pruned++;
    out.push(...leb(dead ? filler : index));
  });
  at = p;
}

const body = Buffer.from(out);
const section = Buffer.concat([Buffer.from([9, ...leb(body.length)]), body]);
writeFileSync(file, Buffer.concat([wasm.subarray(0, elem.start), section, wasm.subarray(elem.end)]));
console.error(`[plumgate] prune-table: ${pruned} table slots freed (unused stream classes, closure shims nothing calls through them)`);
