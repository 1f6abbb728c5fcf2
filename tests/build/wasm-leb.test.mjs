// Unit tests of scripts/wasm-leb.mjs, the wasm readers the build's passes
// share (prune-table, zero-dead-text, short-imports): LEB128 at the 7-bit
// boundaries, signed values, a hand-built module's sections, names, exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { exportsIn, leb, readLeb, readName, sections } from "../../scripts/wasm-leb.mjs";
import { custom, module, section, sleb, str, uleb, utf8, vec } from "./wasm.mjs";

const BOUNDARIES = [
  0, 1, 63, 64, 65, 127, 128, 129, 255, 256, 8191, 8192, 16383, 16384, 16385,
  2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 - 1, 2 ** 35, 2 ** 40 + 5,
];

test("leb: the shortest unsigned encoding, byte for byte, at the 7-bit boundaries", () => {
  assert.deepEqual(leb(0), [0x00]);
  assert.deepEqual(leb(1), [0x01]);
  assert.deepEqual(leb(64), [0x40]);
  assert.deepEqual(leb(127), [0x7f]);
  assert.deepEqual(leb(128), [0x80, 0x01]);
  assert.deepEqual(leb(129), [0x81, 0x01]);
  assert.deepEqual(leb(255), [0xff, 0x01]);
  assert.deepEqual(leb(16383), [0xff, 0x7f]);
  assert.deepEqual(leb(16384), [0x80, 0x80, 0x01]);
  assert.deepEqual(leb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(leb(2 ** 32 - 1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(leb(2 ** 32), [0x80, 0x80, 0x80, 0x80, 0x10]);
  for (const n of BOUNDARIES) assert.deepEqual(leb(n), uleb(n), `leb(${n})`);
});

test("readLeb: unsigned round trips at the boundaries, from any offset, with the offset after", () => {
  for (const n of BOUNDARIES) {
    const bytes = Uint8Array.from([0xaa, 0xbb, ...leb(n), 0xcc]);
    assert.deepEqual(readLeb(bytes, 2), [n, 2 + leb(n).length], `readLeb(leb(${n}))`);
    assert.deepEqual(readLeb(bytes, 2, false), [n, 2 + leb(n).length]);
  }
  // Every value up to 2^15, and around each power of two up to 2^40.
  for (let n = 0; n < 2 ** 15; n++) assert.equal(readLeb(leb(n), 0)[0], n);
  for (let k = 1; k <= 40; k++) {
    for (const n of [2 ** k - 1, 2 ** k, 2 ** k + 1]) assert.deepEqual(readLeb(leb(n), 0), [n, leb(n).length]);
  }
});

test("readLeb: padded (non-shortest) encodings, as wasm allows, read to their value", () => {
  assert.deepEqual(readLeb([0x80, 0x00], 0), [0, 2]);
  assert.deepEqual(readLeb([0xff, 0x80, 0x80, 0x80, 0x00], 0), [127, 5]);
  assert.deepEqual(readLeb([0x81, 0x80, 0x00, 0x7f], 0), [1, 3]);
  // An unsigned read ignores bit 6 of the last byte.
  assert.deepEqual(readLeb([0x40], 0), [64, 1]);
  assert.deepEqual(readLeb([0xc0, 0x00], 0), [64, 2]);
});

test("readLeb signed: negative values and the -64/-65, 63/64 boundaries", () => {
  const cases = [
    [0, [0x00]], [1, [0x01]], [-1, [0x7f]], [63, [0x3f]], [64, [0xc0, 0x00]], [-64, [0x40]],
    [-65, [0xbf, 0x7f]], [127, [0xff, 0x00]], [128, [0x80, 0x01]], [-128, [0x80, 0x7f]], [-129, [0xff, 0x7e]],
    [8191, [0xff, 0x3f]], [8192, [0x80, 0xc0, 0x00]], [-8192, [0x80, 0x40]], [-8193, [0xff, 0xbf, 0x7f]],
    [2 ** 31 - 1, [0xff, 0xff, 0xff, 0xff, 0x07]], [-(2 ** 31), [0x80, 0x80, 0x80, 0x80, 0x78]],
    [-123456, [0xc0, 0xbb, 0x78]],
  ];
  for (const [n, bytes] of cases) {
    assert.deepEqual(sleb(n), bytes, `the test's own encoding of ${n}`);
    assert.deepEqual(readLeb(Uint8Array.from([9, ...bytes, 9]), 1, true), [n, 1 + bytes.length], `signed ${n}`);
  }
  for (let n = -(2 ** 14); n <= 2 ** 14; n++) assert.equal(readLeb(sleb(n), 0, true)[0], n);
  for (let k = 1; k <= 31; k++) {
    for (const n of [2 ** k - 1, 2 ** k, -(2 ** k), -(2 ** k) - 1]) assert.deepEqual(readLeb(sleb(n), 0, true), [n, sleb(n).length]);
  }
  // A padded negative value: -1 in five bytes.
  assert.deepEqual(readLeb([0xff, 0xff, 0xff, 0xff, 0x7f], 0, true), [-1, 5]);
});

test("sections: every section of a hand-built module, with a size over 127 and an empty one", () => {
  const big = Array.from({ length: 200 }, (_, i) => i & 0x7f);
  const wasm = module(
    section(1, vec([[0x60, 0, 0]])),
    section(3, vec([[0]])),
    custom("empty", []),
    custom("big", big),
    section(10, vec([[2, 0, 0x0b]])),
    section(0, []),
  );
  assert.equal(WebAssembly.validate(wasm), false, "an empty custom section lacks its name: the reader still lists it");
  const got = sections(wasm);
  assert.deepEqual(got.map((s) => s.id), [1, 3, 0, 0, 10, 0]);
  const expected = [];
  let at = 8;
  for (const size of [4, 2, 6, 1 + 3 + 200, 4, 0]) {
    const sizeBytes = uleb(size).length;
    expected.push({ start: at, body: at + 1 + sizeBytes, end: at + 1 + sizeBytes + size });
    at += 1 + sizeBytes + size;
  }
  assert.deepEqual(got.map(({ start, body, end }) => ({ start, body, end })), expected);
  assert.equal(got[3].body - got[3].start, 3, "a size of 204 takes two bytes");
  assert.equal(got.at(-1).end, wasm.length);
  assert.deepEqual(sections(module()), [], "a module of its header only has no sections");
});

test("sections: a valid module's list, and a section of 16384 bytes (a three-byte size)", () => {
  const wasm = module(section(1, vec([[0x60, 0, 0]])), custom("x", new Array(16384 - 2).fill(7)), section(3, vec([[0]])), section(10, vec([[2, 0, 0x0b]])));
  assert.ok(WebAssembly.validate(wasm));
  const got = sections(wasm);
  assert.deepEqual(got.map((s) => [s.id, s.body - s.start, s.end - s.body]), [[1, 2, 4], [0, 4, 16384], [3, 2, 2], [10, 2, 4]]);
  assert.equal(got[1].start, got[0].end);
  assert.equal(got[2].start, got[1].end);
});

test("readName: ASCII, multi-byte UTF-8 (length in bytes), a 128-byte name, and the offset after", () => {
  const bytes = Uint8Array.from([1, ...str("memory"), ...str("é€😀"), ...str("n".repeat(128)), 0xff]);
  let [name, at] = readName(bytes, 1);
  assert.deepEqual([name, at], ["memory", 8]);
  [name, at] = readName(bytes, at);
  assert.deepEqual([name, at], ["é€😀", 8 + 1 + 9]);
  [name, at] = readName(bytes, at);
  assert.deepEqual([name, at], ["n".repeat(128), 18 + 2 + 128]);
  assert.equal(bytes[at], 0xff);
  assert.deepEqual(readName(Uint8Array.from([0]), 0), ["", 1]);
});

test("readName: bytes that are not UTF-8 throw", () => {
  assert.throws(() => readName(Uint8Array.from([2, 0xc3, 0x28]), 0), TypeError);
  assert.throws(() => readName(Uint8Array.from([1, 0xff]), 0), TypeError);
});

test("exportsIn: each entry's name, kind, index (over 127 too), offsets, and the end at the section's", () => {
  const entries = [
    [...str("memory"), 2, 0],
    [...str("fetch"), 0, ...uleb(300)],
    [...str("__wbindgen_export_2"), 1, 0],
    [...str("g_ε"), 3, ...uleb(127)],
    [...str("t"), 4, ...uleb(128)],
  ];
  const wasm = module(section(1, vec([[0x60, 0, 0]])), section(7, vec(entries)), custom("after", [1, 2, 3]));
  const s = sections(wasm)[1];
  const got = exportsIn(wasm, s);
  assert.equal(got.end, s.end);
  assert.deepEqual(got.entries.map(({ name, kind, index }) => [name, kind, index]), [
    ["memory", 2, 0], ["fetch", 0, 300], ["__wbindgen_export_2", 1, 0], ["g_ε", 3, 127], ["t", 4, 128],
  ]);
  // Offsets: afterName at the kind byte, end after the index.
  for (const e of got.entries) {
    assert.equal(wasm[e.afterName], e.kind);
    assert.deepEqual(readLeb(wasm, e.afterName + 1), [e.index, e.end]);
  }
  let at = s.body + 1;
  got.entries.forEach((e, i) => {
    assert.equal(e.afterName, at + entries[i].length - 1 - uleb(e.index).length);
    assert.equal(e.end, at + entries[i].length);
    at = e.end;
  });
});

test("exportsIn: an empty export section, and one with bytes left over (end short of the section's)", () => {
  const empty = module(section(7, vec([])));
  assert.deepEqual(exportsIn(empty, sections(empty)[0]), { entries: [], end: empty.length });
  const extra = module(section(7, [...vec([[...str("a_b"), 0, 5]]), 0x00]));
  const s = sections(extra)[0];
  const got = exportsIn(extra, s);
  assert.equal(got.entries.length, 1);
  assert.equal(got.end, s.end - 1);
});

test("the test's own encoder agrees with a known module (so the fixtures are what they claim)", () => {
  assert.deepEqual(utf8("é"), [0xc3, 0xa9]);
  assert.ok(WebAssembly.validate(module(section(1, vec([[0x60, 1, 0x7f, 1, 0x7f]])))));
});
