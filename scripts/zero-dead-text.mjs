// Blank out the text of `std::io::ErrorKind` in the optimised wasm, once
// nothing in it can read that text any more.
//
//   node scripts/zero-dead-text.mjs build/index_bg.wasm
//
// Why it is there: the only code that formats an `io::ErrorKind` is
// wasm-streams' `IntoUnderlyingByteSource::pull` future, which
// scripts/prune-table.mjs lets the -Oz pass drop (see there). The linker
// kept the text because that code named it when the module was linked, and
// the optimiser removes code, never parts of the data: so ~0.9 KB of strings
// ("entity not found", "permission denied", …) and the table of their
// addresses stayed in the shipped wasm. Zeroed, they gzip to almost nothing
// (~0.48 KB of the gzipped wasm).
//
// Why it is sound: the bytes are zeroed only when nothing in the final
// module can reach them: no constant or load/store offset in the code or the
// globals (read from `wasm-dis`'s text of the module) and no address in the
// data (any 4 bytes, at any alignment, outside the table itself) falls in
// the strings or the table. Reading a zeroed string would print an empty
// message, never touch other memory; and with no address of them left,
// nothing can read them.
//
// Anything unexpected (the text not found, a data segment of another form,
// a reference left) leaves the wasm as it is, with a warning: the size
// budget then shows the difference.
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { readLeb, sections } from "./wasm-leb.mjs";

const file = process.argv[2];
const wasmDis = process.env.WASM_DIS_BIN || join(dirname(process.env.WASM_OPT_BIN || "node_modules/.bin/wasm-opt"), "wasm-dis");
const FIRST = "entity not found"; // io::ErrorKind::NotFound, the first kind
const LAST = "uncategorized error"; // io::ErrorKind::Uncategorized, the last

const wasm = readFileSync(file);

function leave(why) {
  console.error(`[plumgate] zero-dead-text: ${why}; the wasm is left as it is`);
  process.exit(0);
}

const uleb = (at) => readLeb(wasm, at);
const sleb = (at) => readLeb(wasm, at, true);

// The data segments: [memory address, file offset, length].
const segments = [];
for (const { body } of sections(wasm).filter((s) => s.id === 11)) {
  let [count, p] = uleb(body);
  for (; count > 0; count--) {
    const [flags, q] = uleb(p);
    if (flags !== 0 || wasm[q] !== 0x41) leave("a data segment that is not an active one at a constant address");
    const [address, r] = sleb(q + 1);
    if (wasm[r] !== 0x0b) leave("a data segment's address is not a lone constant");
    const [length, bytes] = uleb(r + 1);
    segments.push([address, bytes, length]);
    p = bytes + length;
  }
}

/** The memory address and file offset of `needle` in the data, if any. */
function find(needle) {
  for (const [address, offset, length] of segments) {
    const i = wasm.subarray(offset, offset + length).indexOf(needle);
    if (i >= 0) return [address + i, offset + i];
  }
  return [undefined, undefined];
}

const [text, textAt] = find(Buffer.from(FIRST));
if (text === undefined) leave(`"${FIRST}" is not in the data (already gone, or another std)`);
const u32 = Buffer.alloc(4);
u32.writeUInt32LE(text);
const [table, tableAt] = find(u32);
if (table === undefined) leave("no table of the kinds' addresses");
// The table: the kinds' addresses in order, each string right after the last.
const starts = [];
for (let at = tableAt; ; at += 4) {
  const p = wasm.readUInt32LE(at);
  if (starts.length && !(p > starts.at(-1) && p < text + 4096)) break;
  starts.push(p);
}
const lastAt = textAt + (starts.at(-1) - text);
if (starts.length < 30 || wasm.toString("latin1", lastAt, lastAt + LAST.length) !== LAST) {
  leave(`the table of kinds is not as expected (${starts.length} entries)`);
}
const ranges = [
  [text, starts.at(-1) + LAST.length],
  [table, table + 4 * starts.length],
];
const inRanges = (n) => ranges.some(([lo, hi]) => n >= lo && n < hi);

// References from the code and the globals: every constant and offset.
const wat = execFileSync(wasmDis, [file], { maxBuffer: 256 * 1024 * 1024, encoding: "utf8" });
for (const m of wat.matchAll(/i32\.const (-?\d+)|offset=(\d+)/g)) {
  const n = Number(m[1] ?? m[2]);
  if (inRanges(n)) leave(`the code still names address ${n}`);
}
// References from the data: any 4 bytes outside the table.
for (const [, offset, length] of segments) {
  for (let at = offset; at + 4 <= offset + length; at++) {
    if (at >= tableAt && at < tableAt + 4 * starts.length) continue;
    if (inRanges(wasm.readUInt32LE(at))) leave(`the data still holds address ${wasm.readUInt32LE(at)}`);
  }
}

wasm.fill(0, textAt, textAt + (ranges[0][1] - text));
wasm.fill(0, tableAt, tableAt + 4 * starts.length);
writeFileSync(file, wasm);
console.error(`[plumgate] zero-dead-text: ${ranges[0][1] - text} bytes of io::ErrorKind text and its ${starts.length}-entry table zeroed`);
