// Tests of scripts/prune-table.mjs, run as the build runs it, on hand-built
// modules: which table slots it points at their segment's first function
// (the stream classes' closures, closure shims nothing can call through),
// which it keeps, that nothing but the table segments changes, and that a
// module of another shape is left as it is.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  body, custom, module, nameSection, runScript, sameExcept, scratch, section, sectionList, sleb, str, uleb, vec,
} from "./wasm.mjs";

const SHIM = (t) => `wasm_bindgen[1234abcd]::convert::closures::_::invoke::<${t}>`;
const STREAM = "wasm_streams[0a1b2c3d]::";
// Function 0 is an import; its name gives slots 7 and 9 as shims' (`shim_idx`).
const IMPORT_NAME = "__wbg_new_1a2b: Closure(Closure { function: Function { shim_idx: 7 }, mutable: true }) -> Externref; Closure { shim_idx: 9 }";
const NAMES = new Map([
  [0, IMPORT_NAME],
  [1, "main"],
  [2, `${STREAM}readable::into_underlying_source::IntoUnderlyingSource::pull::{{closure}}`],
  [3, `${STREAM}readable::into_underlying_byte_source::IntoUnderlyingByteSource::pull`],
  [4, `${STREAM}writable::into_underlying_sink::IntoUnderlyingSink::write`],
  [5, SHIM("js_sys::Function, ()")], // in no slot a name gives, not exported: freed
  [6, SHIM("A")], // at slot 7: kept
  [7, SHIM("B")], // exported: kept
  [8, SHIM("C")], // its externref wrapper is exported: kept
  [9, `${SHIM("C")} externref shim`],
  [10, SHIM("D")], // at slot 9: kept
  [11, `${STREAM}readable::other::Thing`],
  [12, `core::ptr::drop_in_place<${SHIM("E")}>`],
  [13, SHIM("F")], // at slot 8: freed
  [135, `${STREAM}writable::into_underlying_sink::IntoUnderlyingSink::close`],
  [136, "plain"],
  [137, "second_filler"],
  [138, SHIM("G")],
]);
const FUNCS = 140; // 1 imported + 139 defined
const GLOBALS = 6;

/** An active segment of table 0 at `i32.const offset` (or the `offset` bytes given as an expression), with these function indexes. */
const seg = (offset, slots, { flags = 0 } = {}) => {
  const expr = Array.isArray(offset) ? offset : [0x41, ...sleb(offset), 0x0b];
  if (flags === 1) return [1, 0x00, ...vec(slots.map((i) => uleb(i)))];
  return [...uleb(flags), ...expr, ...vec(slots.map((i) => uleb(i)))];
};

const SEG_A = [1, [1, 2, 3, 4, 5, 11, 6, 13, 10, 7, 8, 12, 135, 136]];
const SEG_B = [40, [137, 2, 138]];
// A count of 8201 (two bytes), and a section of over 16383 bytes (a three-byte
// size) that shrinks under that (a two-byte size) as two-byte indexes become one.
const C = 8200;
const SEG_C = [60, [1, ...new Array(C).fill(135)]];

function build({
  names = NAMES, segments = [seg(...SEG_A), seg(...SEG_B), seg(...SEG_C)], nameSec, elem, otherCustom = true, extraNames = [],
} = {}) {
  const fnNames = [...names].concat(extraNames);
  return module(
    section(1, vec([[0x60, 0, 0]])),
    section(2, vec([[...str("./index_bg.js"), ...str("__wbg_new_1a2b"), 0, 0]])),
    section(3, vec(Array.from({ length: FUNCS - 1 }, () => [0]))),
    section(4, vec([[0x70, 0, ...uleb(9000)]])),
    section(6, vec(Array.from({ length: GLOBALS }, () => [0x7f, 0, 0x41, 0, 0x0b]))),
    section(7, vec([
      [...str("table"), 1, 0],
      [...str("shim_b"), 0, 7],
      [...str("shim_c_wrapper"), 0, 9],
      [...str("g"), 3, 5], // a global whose index is that of a freed shim's function
    ])),
    elem ?? section(9, vec(segments)),
    section(10, vec(Array.from({ length: FUNCS - 1 }, () => body()))),
    ...(otherCustom ? [custom("other", [1, 2, 3, 0x0b, 0x80])] : []),
    nameSec ?? nameSection(fnNames),
  );
}

/** The table segments of `wasm`: [offset, slots] each (active, i32.const offsets only). */
function segmentsOf(wasm) {
  const elem = sectionList(wasm).find((s) => s.id === 9).bytes;
  const r = { at: 1 };
  const u = () => {
    let v = 0, shift = 0, b;
    do { b = elem[r.at++]; v += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
    return v;
  };
  u(); // section size
  const out = [];
  for (let n = u(); n > 0; n--) {
    assert.equal(u(), 0);
    assert.equal(elem[r.at++], 0x41);
    const offset = u();
    assert.equal(elem[r.at++], 0x0b);
    const slots = [];
    for (let c = u(); c > 0; c--) slots.push(u());
    out.push([offset, slots]);
  }
  assert.equal(r.at, elem.length, "the table section reads to its end");
  return out;
}

function prune(wasm) {
  const s = scratch({ "index_bg.wasm": wasm });
  try {
    const r = runScript("prune-table.mjs", [s.path("index_bg.wasm")]);
    return { ...r, out: s.read("index_bg.wasm") };
  } finally {
    s.done();
  }
}

const instantiate = (wasm) =>
  new WebAssembly.Instance(new WebAssembly.Module(wasm), { "./index_bg.js": { __wbg_new_1a2b: () => {} } }).exports;

test("the fixture is a valid module whose table holds what the segments say", () => {
  const wasm = build();
  assert.ok(WebAssembly.validate(wasm));
  const { table } = instantiate(wasm);
  assert.equal(table.get(2).name, "2");
  assert.equal(table.get(13).name, "135");
  assert.deepEqual(segmentsOf(wasm), [SEG_A, SEG_B, SEG_C]);
  const elem = sectionList(wasm).find((s) => s.id === 9).bytes;
  assert.ok(elem.length > 16384 + 4 && elem[3] < 0x80 && elem[2] & 0x80, "a three-byte section size");
});

test("frees the stream classes' slots and unreachable shims' slots, keeps every other, changes nothing else", () => {
  const wasm = build();
  const { status, stderr, out } = prune(wasm);
  assert.equal(status, 0, stderr);
  assert.match(stderr, new RegExp(`prune-table: ${C + 8} table slots freed`));
  assert.ok(WebAssembly.validate(out), "the result validates");
  assert.deepEqual(segmentsOf(out), [
    // 2, 3, 4: the stream classes; 5: a shim of no named slot; 13: a shim at slot 8 (no name gives 8); 135: stream.
    [1, [1, 1, 1, 1, 1, 11, 6, 1, 10, 7, 8, 12, 1, 136]],
    // Each segment's own first function fills it.
    [40, [137, 137, 137]],
    [60, [1, ...new Array(C).fill(1)]],
  ]);
  sameExcept(assert, wasm, out, [9]);
  const elem = sectionList(out).find((s) => s.id === 9).bytes;
  assert.ok(elem[1] & 0x80 && !(elem[2] & 0x80), "the shrunk section's size takes two bytes");
  // Segment C: C indexes of two bytes become one; A: 135 (two bytes) becomes 1;
  // B: 2 (one byte) becomes 137 (two); the section's size: a byte less.
  assert.equal(out.length, wasm.length - C - 1 + 1 - 1);
  const { table } = instantiate(out);
  const at = (i) => table.get(i).name;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map(at), ["1", "1", "1", "1", "1", "11", "6", "1", "10", "7", "8", "12", "1", "136"]);
  assert.deepEqual([40, 41, 42, 60, 61, 60 + C].map(at), ["137", "137", "137", "1", "1", "1"]);
  assert.equal(table.get(0), null);
});

test("run again on its own output, it frees nothing more and writes the same bytes", () => {
  const once = prune(build()).out;
  const twice = prune(once);
  assert.equal(twice.status, 0);
  assert.ok(twice.out.equals(once));
});

test("with no name giving a shim's slot, shims all stay; the stream classes' slots are still freed", () => {
  const names = new Map(NAMES);
  names.set(0, "__wbg_new_1a2b");
  const { status, stderr, out } = prune(build({ names }));
  assert.equal(status, 0);
  assert.match(stderr, /no name gives a shim slot \(shim_idx\); every closure shim stays/);
  assert.deepEqual(segmentsOf(out), [
    [1, [1, 1, 1, 1, 5, 11, 6, 13, 10, 7, 8, 12, 1, 136]],
    [40, [137, 137, 138]],
    [60, [1, ...new Array(C).fill(1)]],
  ]);
});

test("a shim is matched by its slot (segment offset + position), by every shim_idx in a name, and only when the name starts with the shim path", () => {
  // Segment A at offset 0: the named slots 7 and 9 now hold functions 13 and 7.
  const names = new Map(NAMES);
  names.set(0, "x shim_idx: 7 y shim_idx: 9");
  const { out } = prune(build({ names, segments: [seg(0, SEG_A[1])] }));
  assert.deepEqual(segmentsOf(out), [[0, [1, 1, 1, 1, 1, 11, 1, 13, 1, 7, 8, 12, 1, 136]]]);
});

test("a shim's export keeps it only as a function export (kind 0): an exported global of the same index does not", () => {
  // Function 5 is a freed shim; the export "g" is global 5. Exporting function 5 keeps it.
  const names = new Map(NAMES);
  const wasm = build({ names });
  const withExport = Buffer.from(wasm);
  // Same module, with the global export turned into a function export of index 5 (same length).
  const i = withExport.indexOf(Buffer.from([...str("g"), 3, 5]));
  withExport[i + 2] = 0;
  assert.ok(WebAssembly.validate(withExport));
  assert.deepEqual(segmentsOf(prune(withExport).out)[0][1].slice(0, 5), [1, 1, 1, 1, 5]);
  assert.deepEqual(segmentsOf(prune(wasm).out)[0][1].slice(0, 5), [1, 1, 1, 1, 1]);
});

test("names come only from the custom section called \"name\", subsection 1", () => {
  // A custom section of another name holding what reads as names changes nothing.
  const decoy = custom("nam", section(1, vec([[...uleb(11), ...str(SHIM("decoy"))]])));
  const wasm = build({ otherCustom: false });
  const withDecoy = Buffer.concat([wasm, Buffer.from(decoy)]);
  assert.deepEqual(segmentsOf(prune(withDecoy).out), segmentsOf(prune(wasm).out));
});

/** Asserts the script left `wasm` as it was, exiting 0 with `why` in its warning. */
function left(wasm, why) {
  const { status, stderr, out } = prune(wasm);
  assert.equal(status, 0, stderr);
  assert.match(stderr, why);
  assert.match(stderr, /the table is left as it is/);
  assert.ok(out.equals(wasm), "the module is unchanged");
}

test("leaves a module without a name section, or whose name section has no function names", () => {
  const noNames = build({ nameSec: [] });
  assert.ok(WebAssembly.validate(noNames));
  left(noNames, /the module has no function names/);
  left(build({ nameSec: nameSection([], { functions: false }) }), /no function names/);
  left(build({ nameSec: custom("names", section(1, vec([[...uleb(2), ...str("x")]]))) }), /no function names/);
});

test("leaves a module without a table segment", () => {
  left(build({ elem: [] }), /the module has no table segment/);
});

test("leaves a module with a passive or explicit-table segment, even after segments it could prune", () => {
  left(build({ segments: [seg(...SEG_A), seg(0, [1, 2], { flags: 1 })] }), /table segment 1 has flags 1/);
  left(build({ segments: [seg(...SEG_A), [2, 0, 0x41, 40, 0x0b, 0x00, ...vec([[2]])]] }), /table segment 1 has flags 2/);
});

test("leaves a module whose segment offset is not a constant", () => {
  left(build({ segments: [seg(...SEG_A), seg([0x23, 0, 0x0b], [2, 3])] }), /table segment 1 has an offset that is not a constant/);
  left(build({ segments: [seg(...SEG_A), seg([0x41, 5, 0x41, 0, 0x6a, 0x0b], [2, 3])] }), /table segment 1 has an offset that is not a lone constant/);
  left(build({ segments: [seg(...SEG_A), seg([0x42, 5, 0x0b], [2, 3])] }), /table segment 1 has an offset that is not a constant/);
});

test("an offset whose encoding holds the end byte 0x0b (11, 1419) reads whole", () => {
  for (const offset of [11, 1419]) {
    const names = new Map(NAMES);
    names.set(0, `shim_idx: ${offset + 6}`);
    const wasm = build({ names, segments: [seg(offset, SEG_A[1])] });
    assert.ok(WebAssembly.validate(wasm));
    const { status, out } = prune(wasm);
    assert.equal(status, 0);
    assert.ok(WebAssembly.validate(out));
    assert.deepEqual(segmentsOf(out), [[offset, [1, 1, 1, 1, 1, 11, 6, 1, 1, 7, 8, 12, 1, 136]]]);
  }
});

test("130 segments (a two-byte count), each pruned with its own first function", () => {
  const segments = Array.from({ length: 130 }, (_, i) => seg(1 + 2 * i, [i % 2 ? 136 : 1, 2]));
  const { status, out } = prune(build({ segments }));
  assert.equal(status, 0);
  assert.ok(WebAssembly.validate(out));
  assert.deepEqual(segmentsOf(out), Array.from({ length: 130 }, (_, i) => [1 + 2 * i, i % 2 ? [136, 136] : [1, 1]]));
});
