// Tests of scripts/zero-dead-text.mjs, run as the build runs it, on hand-built
// modules holding an `io::ErrorKind`-like text and table of its addresses:
// zeroed exactly (those bytes, no others) when nothing can reach them; left
// as they are when a constant, an offset, a global or a word of the data
// names an address in them, or when the data is not of the expected shape.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, body, module, runScript, sameExcept, scratch, section, sleb, uleb, u32le, utf8, vec } from "./wasm.mjs";

const FIRST = "entity not found";
const LAST = "uncategorized error";
const WASM_DIS_BIN = join(ROOT, "node_modules", ".bin", "wasm-dis");

const SEG0 = 1000; // "HEAD", the text, "TAIL"
const TEXT = SEG0 + 4;
const SEG1 = 4000; // "abcdefgh", the table, a word after it, "zzzz"
const TABLE = SEG1 + 8;

/** The kinds' strings: FIRST, `kinds - 2` others, LAST. */
const strings = (kinds, last = LAST) => [FIRST, ...Array.from({ length: kinds - 2 }, (_, i) => `kind ${String(i).padStart(2, "0")}`), last];

/**
 * A module with one function of these `consts` (i32.const …; drop) and load
 * `offsets`, a global of `global`'s value, and the data.
 */
function build({
  kinds = 40, last = LAST, consts = [], offsets = [], global, after = TEXT + 4096, extra = [], segments, head = "HEAD",
} = {}) {
  const strs = strings(kinds, last);
  const starts = [];
  let a = TEXT;
  for (const s of strs) {
    starts.push(a);
    a += s.length;
  }
  const data = [
    [0, 0x41, ...sleb(TEXT - head.length), 0x0b, ...vec([...utf8(head), ...utf8(strs.join("")), ...utf8("TAIL")].map((b) => [b]))],
    [0, 0x41, ...sleb(SEG1), 0x0b, ...vec([...utf8("abcdefgh"), ...starts.flatMap(u32le), ...u32le(after), ...utf8("zzzz")].map((b) => [b]))],
    ...extra,
  ];
  const code = [
    ...consts.flatMap((n) => [0x41, ...sleb(n), 0x1a]),
    ...offsets.flatMap((n) => [0x41, 0, 0x28, 2, ...uleb(n), 0x1a]),
  ];
  return {
    wasm: module(
      section(1, vec([[0x60, 0, 0]])),
      section(3, vec([[0]])),
      section(5, vec([[0, 1]])),
      ...(global === undefined ? [] : [section(6, vec([[0x7f, 0, 0x41, ...sleb(global), 0x0b]]))]),
      section(10, vec([body(code)])),
      section(11, segments ?? vec(data)),
    ),
    textEnd: starts.at(-1) + last.length,
    tableEnd: TABLE + 4 * kinds,
  };
}

/** File offsets of the address `addr` in segment 0 or 1 of `wasm`. */
function fileAt(wasm, addr) {
  return addr >= SEG1 ? wasm.indexOf(Buffer.from("abcdefgh")) + (addr - SEG1) : wasm.indexOf(Buffer.from("HEAD")) + (addr - SEG0);
}

function zero(wasm, env = { WASM_DIS_BIN }) {
  const s = scratch({ "index_bg.wasm": wasm });
  try {
    const r = runScript("zero-dead-text.mjs", [s.path("index_bg.wasm")], { env });
    return { ...r, out: s.read("index_bg.wasm") };
  } finally {
    s.done();
  }
}

/** Asserts `out` is `wasm` with exactly the text and the table zeroed. */
function assertZeroed(wasm, out, { textEnd, tableEnd }) {
  assert.ok(WebAssembly.validate(out));
  sameExcept(assert, wasm, out, [11]);
  const text = [fileAt(wasm, TEXT), fileAt(wasm, textEnd)];
  const table = [fileAt(wasm, TABLE), fileAt(wasm, tableEnd)];
  assert.equal(wasm.toString("latin1", text[0], text[0] + FIRST.length), FIRST);
  assert.equal(wasm.toString("latin1", text[1], text[1] + 4), "TAIL");
  assert.equal(wasm.length, out.length);
  for (let i = 0; i < wasm.length; i++) {
    const inside = (i >= text[0] && i < text[1]) || (i >= table[0] && i < table[1]);
    if (inside) assert.equal(out[i], 0, `byte ${i} zeroed`);
    else assert.equal(out[i], wasm[i], `byte ${i} unchanged`);
  }
}

function assertLeft(wasm, why, env) {
  const { status, stderr, out } = zero(wasm, env);
  assert.equal(status, 0, stderr);
  assert.match(stderr, why);
  assert.match(stderr, /the wasm is left as it is/);
  assert.ok(out.equals(wasm), "the module is unchanged");
}

test("zeroes the text and its table, and not a byte more, when nothing names them", () => {
  const m = build({ consts: [TEXT - 1, 5], offsets: [8] });
  assert.ok(WebAssembly.validate(m.wasm));
  const { status, stderr, out } = zero(m.wasm);
  assert.equal(status, 0, stderr);
  const textLen = m.textEnd - TEXT;
  assert.match(stderr, new RegExp(`zero-dead-text: ${textLen} bytes of io::ErrorKind text and its 40-entry table zeroed`));
  assertZeroed(m.wasm, out, m);
});

test("finds the wasm-dis next to WASM_OPT_BIN, or in node_modules/.bin; fails loudly, the wasm unchanged, without one", () => {
  const m = build();
  const env = { WASM_DIS_BIN: "", WASM_OPT_BIN: join(ROOT, "node_modules", ".bin", "wasm-opt") };
  assertZeroed(m.wasm, zero(m.wasm, env).out, m);
  assertZeroed(m.wasm, zero(m.wasm, { WASM_DIS_BIN: "", WASM_OPT_BIN: "" }).out, m);
  const r = zero(m.wasm, { WASM_DIS_BIN: "/nonexistent/wasm-dis" });
  assert.notEqual(r.status, 0);
  assert.ok(r.out.equals(m.wasm));
});

test("30 kinds are enough; 29 are not", () => {
  const m = build({ kinds: 30 });
  assertZeroed(m.wasm, zero(m.wasm).out, m);
  assertLeft(build({ kinds: 29 }).wasm, /the table of kinds is not as expected \(29 entries\)/);
});

test("a constant in the code at the first or last byte of the text or the table leaves it; one just outside does not", () => {
  for (const at of [({ textEnd }) => textEnd - 1, () => TEXT, () => TEXT + 20, () => TABLE, ({ tableEnd }) => tableEnd - 1]) {
    const probe = build();
    const n = at(probe);
    assertLeft(build({ consts: [n] }).wasm, new RegExp(`the code still names address ${n}`));
  }
  for (const at of [({ textEnd }) => textEnd, () => TEXT - 1, () => TABLE - 1, ({ tableEnd }) => tableEnd]) {
    const n = at(build());
    const m = build({ consts: [n] });
    assertZeroed(m.wasm, zero(m.wasm).out, m);
  }
});

test("a load or store offset, or a global's value, in the text or the table leaves it", () => {
  assertLeft(build({ offsets: [TEXT + 3] }).wasm, new RegExp(`names address ${TEXT + 3}`));
  assertLeft(build({ offsets: [TABLE + 8] }).wasm, new RegExp(`names address ${TABLE + 8}`));
  assertLeft(build({ global: TABLE + 4 }).wasm, new RegExp(`names address ${TABLE + 4}`));
  const m = build({ global: -TEXT, offsets: [TABLE - 4] });
  assertZeroed(m.wasm, zero(m.wasm).out, m);
});

test("a word of the data at any alignment holding an address in them leaves it; the table's own words do not", () => {
  const seg = (address, bytes) => [0, 0x41, ...sleb(address), 0x0b, ...vec(bytes.map((b) => [b]))];
  // Unaligned, at the start, at the very end of a segment.
  assertLeft(build({ extra: [seg(8000, [0x11, ...u32le(TEXT + 10), 0x22])] }).wasm, new RegExp(`the data still holds address ${TEXT + 10}`));
  assertLeft(build({ extra: [seg(8000, [...u32le(TABLE), 1, 2, 3])] }).wasm, new RegExp(`holds address ${TABLE}`));
  assertLeft(build({ extra: [seg(8000, [1, 2, 3, ...u32le(TEXT)])] }).wasm, new RegExp(`holds address ${TEXT}`));
  // The word right after the table (it ends the table, being lower than the last start).
  assertLeft(build({ after: TEXT }).wasm, new RegExp(`holds address ${TEXT}`));
  const lastStart = build().textEnd - LAST.length;
  assertLeft(build({ after: lastStart }).wasm, new RegExp(`holds address ${lastStart}`));
  const m = build({ extra: [seg(8000, [...u32le(build().textEnd), ...u32le(TEXT - 1)])] });
  assertZeroed(m.wasm, zero(m.wasm).out, m);
});

test("the table ends at the first word not past the last start, or at TEXT + 4096 and over", () => {
  const m = build({ after: TEXT + 4096 });
  assertZeroed(m.wasm, zero(m.wasm).out, m);
  // A word past the last start but under TEXT + 4096 reads as a 41st entry, whose text is not the last kind's.
  assertLeft(build({ after: TEXT + 4095 }).wasm, /the table of kinds is not as expected \(41 entries\)/);
  const low = build({ after: 3 });
  assertZeroed(low.wasm, zero(low.wasm).out, low);
});

test("leaves a module without the text, without its table, or whose last kind is not the expected one", () => {
  assertLeft(build({ segments: vec([[0, 0x41, ...sleb(SEG1), 0x0b, ...vec([[1], [2]])]]) }).wasm, /"entity not found" is not in the data/);
  const noTable = build({ segments: vec([[0, 0x41, ...sleb(SEG0), 0x0b, ...vec([...utf8(`HEAD${strings(40).join("")}`)].map((b) => [b]))]]) });
  assertLeft(noTable.wasm, /no table of the kinds' addresses/);
  assertLeft(build({ last: "uncategorized errxr" }).wasm, /the table of kinds is not as expected \(40 entries\)/);
  const none = module(section(1, vec([[0x60, 0, 0]])), section(3, vec([[0]])), section(10, vec([body()])));
  assertLeft(none, /is not in the data/);
});

test("leaves a module with a passive data segment, or one at an address not a lone constant", () => {
  const bytes = [...utf8("xyz")].map((b) => [b]);
  const withSeg = (segBytes) => build({ extra: [segBytes] }).wasm;
  assertLeft(withSeg([1, ...vec(bytes)]), /a data segment that is not an active one at a constant address/);
  assertLeft(withSeg([0, 0x23, 0, 0x0b, ...vec(bytes)]), /not an active one at a constant address/);
  assertLeft(withSeg([2, 0, 0x41, 0, 0x0b, ...vec(bytes)]), /not an active one at a constant address/);
  assertLeft(withSeg([0, 0x41, ...sleb(9000), 0x41, 0, 0x6a, 0x0b, ...vec(bytes)]), /a data segment's address is not a lone constant/);
  // A passive segment whose data could read as an active one's address: its flags alone decide.
  assertLeft(withSeg([1, ...vec([5, 0x0b, 0, ...new Array(62).fill(0)].map((b) => [b]))]), /not an active one at a constant address/);
  // A segment of the expected form after them all still zeroes.
  const ok = build({ extra: [[0, 0x41, ...sleb(9000), 0x0b, ...vec(bytes)]] });
  assertZeroed(ok.wasm, zero(ok.wasm).out, ok);
});

test("the text and table found in later segments, at addresses over 2^24 (four-byte constants, no zero byte in the table's words)", () => {
  const shift = 2 ** 24 + 20000;
  const seg = (address, bytes) => [0, 0x41, ...sleb(address), 0x0b, ...vec(bytes.map((b) => [b]))];
  const strs = strings(40);
  const text = shift + 3;
  const starts = [];
  let a = text;
  for (const s of strs) { starts.push(a); a += s.length; }
  const wasm = module(
    section(1, vec([[0x60, 0, 0]])), section(3, vec([[0]])), section(5, vec([[0, ...uleb(258)]])), section(10, vec([body([0x41, ...sleb(a), 0x1a])])),
    section(11, vec([seg(16, [1, 2, 3, 4]), seg(shift, [...utf8("pre"), ...utf8(strs.join("")), 9]), seg(shift + 30000, [7, ...starts.flatMap(u32le), 0, 0, 0, 0])])),
  );
  assert.ok(WebAssembly.validate(wasm));
  const { out } = zero(wasm);
  sameExcept(assert, wasm, out, [11]);
  const t = wasm.indexOf(Buffer.from(FIRST));
  const tb = wasm.indexOf(Buffer.from(u32le(text)));
  for (let i = 0; i < wasm.length; i++) {
    const inside = (i >= t && i < t + (a - text)) || (i >= tb && i < tb + 160);
    assert.equal(out[i], inside ? 0 : wasm[i], `byte ${i}`);
  }
});

test("text at the very start of a segment: the segment's own address, in the code's text, names it", () => {
  assertLeft(build({ head: "" }).wasm, new RegExp(`the code still names address ${TEXT}`));
});
