// Tests of scripts/short-imports.mjs, run as the build runs it, on a
// hand-built module and an index.js written the way wasm-bindgen's minified
// glue names things: the imports and exports it renames (exactly those its
// contract allows, to the names it picks), in both files alike, so the pair
// still instantiates and runs; the sections it must not touch left byte for
// byte; and the cases it leaves both files as they are.
import { test } from "node:test";
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { body, custom, module, runScript, sameExcept, scratch, section, sectionList, str, uleb, vec } from "./wasm.mjs";

const F = 300; // plain function imports, long names: an import section over 16383 bytes
const TYPE_FAR = 150; // their type's index takes two bytes
const SHIM_EXPORT = `wasm_bindgen_1a2b3c4d5e6f7a8b___convert__closures_____invoke___js_sys_Function_fn_wasm_bindgen_JsValue_____wasm_bindgen_JsValue__core_result_Result_____wasm_bindgen_JsError__`;
const LONG_KEPT = `kept_${"k".repeat(130)}`;
const hash = (i) => (0x1000000000000n + BigInt(i) * 0x9e3779b97f4an).toString(16).padStart(16, "0").slice(-16);
const fname = (i) => `__wbg_function_number_${i}_of_the_glue_${hash(i)}`;

// [module, name, description]: every import kind, tables and memories with and without a maximum.
const IMPORTS = (memFlags) => [
  ["./index_bg.js", "__wbg_log_0123456789abcdef", [0, 1]],
  ["./index_bg.js", "__wbg_twice_fedcba9876543210", [0, 0]],
  ["env", "__wbg_env_1111", [0, 0]],
  ["__wbindgen_placeholder__", "__wbg_ph_2222", [0, 0]],
  ["./index_bg.js", "__wbg_quoted_abc", [0, 0]],
  ["./index_bg.js", "__wbindgen_externrefs", [1, 0x6f, 1, 1, 2]],
  ["./index_bg.js", "__wbg_tbl_b", [1, 0x70, 0, ...uleb(130)]],
  ["./index_bg.js", "__wbg_mem", memFlags ? [2, 1, 1, ...uleb(200)] : [2, 0, 1]],
  ["./index_bg.js", "__wbg_g", [3, 0x7f, 0]],
  ["./index_bg.js", "__wbg_tag", [4, 0, 2]],
  ...Array.from({ length: F }, (_, i) => ["./index_bg.js", fname(i), [0, ...uleb(TYPE_FAR)]]),
];
const FUNC_IMPORTS = 5 + F;
const OWN = FUNC_IMPORTS; // the one defined function: (i32) -> i32, calls import 0
const EXPORTS = [
  ["memory", 2, 0], ["fetch", 0, OWN], ["keyregistry_fetch", 0, OWN], ["__wbindgen_malloc", 0, OWN],
  ["__worker_init_state", 3, 0], ["__wbindgen_cmp", 0, OWN], ["unused_export", 0, OWN], ["ab_cd", 0, OWN],
  ["$dollar_x", 0, OWN], ["bare_ref", 0, OWN], ["x_set", 0, OWN], ["imported_again", 0, 200],
  [SHIM_EXPORT, 0, OWN], [LONG_KEPT, 0, OWN],
];

/** The module with its imports and exports named through `rename` (old name → new, the old kept when absent). */
function build(rename = new Map(), { memFlags = 1, imports = IMPORTS(memFlags), exports = EXPORTS } = {}) {
  const n = (s) => rename.get(s) ?? s;
  return module(
    section(1, vec([[0x60, 0, 0], [0x60, 1, 0x7f, 1, 0x7f], [0x60, 1, 0x7f, 0], ...Array.from({ length: TYPE_FAR }, () => [0x60, 0, 0])])),
    ...(imports.length ? [section(2, vec(imports.map(([m, name, desc]) => [...str(n(m)), ...str(n(name)), ...desc])))] : []),
    section(3, vec([[1]])),
    section(6, vec([[0x7f, 0, 0x41, 3, 0x0b]])),
    ...(exports.length ? [section(7, vec(exports.map(([name, kind, index]) => [...str(n(name)), kind, ...uleb(index)])))] : []),
    section(10, vec([body([0x20, 0, 0x10, 0])])),
    custom("after", [1, 2, 3]),
  );
}

/** index.js, its names through `rename` as the script should write them. */
function js(rename = new Map(), { twice = false } = {}) {
  const n = (s) => rename.get(s) ?? s;
  const fs = Array.from({ length: F }, (_, i) => `${n(fname(i))}:()=>{}`).join(",");
  return `let _x0=0;const spare={_5:1};function _7(){}
let w;export const log=[];export const seen="__wbg_twice_fedcba9876543210${twice ? `${IMPORTS(1).map(([, name]) => name).join(" ")}` : ""}";
export function init(bytes){const t=new WebAssembly.Table({element:"externref",initial:1,maximum:2});
const tb=new WebAssembly.Table({element:"anyfunc",initial:130});const mem=new WebAssembly.Memory({initial:1,maximum:200});
const g=new WebAssembly.Global({value:"i32",mutable:false},7);const tag=new WebAssembly.Tag({parameters:["i32"]});
const imports={"${n("./index_bg.js")}":{${n("__wbg_log_0123456789abcdef")}:(x)=>(log.push(x),x+1),__wbg_twice_fedcba9876543210:()=>{},"__wbg_quoted_abc":()=>{},${n("__wbindgen_externrefs")}:t,${n("__wbg_tbl_b")}:tb,${n("__wbg_mem")}:mem,${n("__wbg_g")}:g,${n("__wbg_tag")}:tag,${fs}},env:{__wbg_env_1111:()=>{}},__wbindgen_placeholder__:{__wbg_ph_2222:()=>{}}};
w=new WebAssembly.Instance(new WebAssembly.Module(bytes),imports).exports;globalThis.__worker_init_state = w.__worker_init_state;return w}
export const run=(k)=>w.${n("keyregistry_fetch")}(k)+w.${n("keyregistry_fetch")}(0)+w.${n("__wbindgen_malloc")}(1)+(w.${n("__wbindgen_cmp")} === undefined?100:0)+w.${n("ab_cd")}(1)+w.${n("$dollar_x")}(1)+w.fetch(1);
export const imported=()=>w.${n("imported_again")};const zab_cd=0;
export const shim=()=>w.${n(SHIM_EXPORT)}(2);
export function unused(){w.ab_cd_ef();w.x_set = 1;const bare_ref=w.bare_ref;return bare_ref}
`;
}

/**
 * The names the script should give: imports `_` and base 36, skipping `_5`,
 * `_7` and `_x` (index.js has `_5:`, `_7(` and, in `.$dollar_x(`, `_x(`);
 * exports `_x` and base 36, skipping `_x0` (index.js has it); the module
 * `./index_bg.js` becomes `a`.
 */
function expectedRenames() {
  const rename = new Map([["./index_bg.js", "a"]]);
  let next = 0;
  const fresh = () => {
    for (;;) {
      const name = `_${(next++).toString(36)}`;
      if (!["_5", "_7", "_x"].includes(name)) return name;
    }
  };
  for (const [m, name] of IMPORTS(1)) {
    if (m === "./index_bg.js" && !["__wbg_twice_fedcba9876543210", "__wbg_quoted_abc"].includes(name)) rename.set(name, fresh());
  }
  let x = 1;
  for (const name of ["keyregistry_fetch", "__wbindgen_malloc", "__wbindgen_cmp", "ab_cd", "$dollar_x", "imported_again", SHIM_EXPORT]) {
    rename.set(name, `_x${(x++).toString(36)}`);
  }
  return rename;
}

let loads = 0;
async function load(jsText, wasm) {
  const s = scratch({ [`index${loads}.mjs`]: jsText });
  try {
    const mod = await import(`${pathToFileURL(s.path(`index${loads++}.mjs`))}`);
    mod.init(wasm);
    return mod;
  } finally {
    s.done();
  }
}

function shorten(wasm, jsText) {
  const s = scratch({ "index_bg.wasm": wasm, "index.js": jsText });
  try {
    const r = runScript("short-imports.mjs", [s.path("index_bg.wasm"), s.path("index.js")]);
    return { ...r, wasm: s.read("index_bg.wasm"), js: s.read("index.js").toString("utf8") };
  } finally {
    s.done();
  }
}

test("the fixture pair validates and runs as built", async () => {
  const wasm = build();
  assert.ok(WebAssembly.validate(wasm));
  const imp = sectionList(wasm).find((s) => s.id === 2).bytes;
  assert.ok(imp.length > 16384 + 4 && imp[3] < 0x80 && imp[2] & 0x80, "an import section of a three-byte size");
  const mod = await load(js(), wasm);
  assert.equal(mod.run(5), 15);
  assert.deepEqual(mod.log, [5, 0, 1, 1, 1, 1]);
});

for (const memFlags of [1, 0]) {
  test(`renames what it may, exactly, in both files; the pair still runs (memory limits flags ${memFlags})`, async () => {
    const wasm = build(new Map(), { memFlags });
    const { status, stderr, wasm: out, js: outJs } = shorten(wasm, js());
    assert.equal(status, 0, stderr);
    const rename = expectedRenames();
    assert.ok(WebAssembly.validate(out));
    assert.ok(out.equals(build(rename, { memFlags })), "the module is the one built with the new names");
    assert.equal(outJs, js(rename), "index.js has the new names, and nothing else changed");
    sameExcept(assert, wasm, out, [2, 7]);
    const imp = sectionList(out).find((s) => s.id === 2).bytes;
    assert.ok(imp[1] & 0x80 && !(imp[2] & 0x80), "the shrunk import section's size takes two bytes");
    let saved = 0;
    const fromModule = IMPORTS(memFlags).filter(([m]) => m === "./index_bg.js").length;
    for (const [a, b] of rename) saved += (a.length - b.length) * (a === "./index_bg.js" ? fromModule : 1);
    assert.match(stderr, new RegExp(`short-imports: ${F + 6} of ${F + 10} imports and 7 exports renamed \\(${saved} bytes of names\\)`));
    const exp = sectionList(out).find((s) => s.id === 7).bytes;
    assert.ok(exp.length > 128 + 2 && exp.length < 16384, "an export section of a two-byte size");
    const mod = await load(outJs, out);
    assert.equal(mod.run(5), 15);
    assert.deepEqual(mod.log, [5, 0, 1, 1, 1, 1]);
    assert.equal(typeof mod.imported(), "function");
    assert.equal(mod.shim(), 3);
    assert.equal(globalThis.__worker_init_state.value, 7);
  });
}

test("the names it picks: an import's never one index.js has as `name:` or `name(`; an export's never one it has at all", () => {
  const rename = expectedRenames();
  assert.equal(rename.get("__wbg_log_0123456789abcdef"), "_0");
  assert.equal(rename.get("__wbg_tag"), "_6");
  assert.equal(rename.get(fname(0)), "_8");
  assert.equal(rename.get(fname(1)), "_9");
  assert.equal(rename.get(fname(2)), "_a");
  assert.equal(rename.get(fname(24)), "_w");
  assert.equal(rename.get(fname(25)), "_y", "after _w, _x is skipped");
  assert.equal(rename.get(fname(27)), "_10");
  assert.equal(rename.get("keyregistry_fetch"), "_x1");
});

/** Asserts both files are left as they were, exit 0, with `why` in the message. */
function assertLeft(wasm, jsText, why) {
  const { status, stderr, wasm: out, js: outJs } = shorten(wasm, jsText);
  assert.equal(status, 0, stderr);
  assert.match(stderr, /short-imports: left as it is: /);
  assert.match(stderr, why);
  assert.ok(out.equals(wasm), "the module is unchanged");
  assert.equal(outJs, jsText, "index.js is unchanged");
}

test("leaves both files when no import can be renamed, though exports could be", () => {
  assertLeft(build(), js(new Map(), { twice: true }), /no import could be renamed/);
});

test("leaves both files for a module that does not validate, or without an import or an export section", () => {
  const wasm = build();
  assertLeft(wasm.subarray(0, wasm.length - 1), js(), /cannot validate the module/);
  assertLeft(Buffer.concat([wasm, Buffer.from([0x0b])]), js(), /cannot validate the module/);
  const noImports = module(section(5, vec([[0, 1]])), section(7, vec([[...str("a_b"), 2, 0]])));
  assert.ok(WebAssembly.validate(noImports));
  assertLeft(noImports, "let w;w.a_b", /no import section/);
  assert.ok(WebAssembly.validate(build(new Map(), { exports: [] })));
  assertLeft(build(new Map(), { exports: [] }), js(), /no export section/);
});

test("an export is kept when it has no underscore, is written to, is not mentioned, or is mentioned other than as a read", () => {
  const rename = expectedRenames();
  for (const kept of ["memory", "fetch", "__worker_init_state", "unused_export", "bare_ref", "x_set", LONG_KEPT]) assert.equal(rename.has(kept), false);
  const { js: outJs } = shorten(build(), js());
  assert.match(outJs, /globalThis\.__worker_init_state = w\.__worker_init_state;/);
  assert.match(outJs, /w\.ab_cd_ef\(\)/, "a longer name that starts with an export's is not touched");
  assert.match(outJs, /w\.x_set = 1/);
  assert.match(outJs, /const bare_ref=w\.bare_ref/);
  assert.match(outJs, /const zab_cd=0;/, "a longer name that ends with an export's is not touched");
  assert.match(outJs, /w\._x3 === undefined/, "a read compared with === is a read");
});

test("an export read only as `.name ==` or `.name (`, or only written as `.name=`; export names from _x0 when index.js has none", () => {
  const exports = [["a_eq", 0, OWN], ["b_set", 0, OWN], ["c_sp", 0, OWN]];
  const wasm = build(new Map(), { exports });
  const base = js().replace("let _x0=0;", "let _y0=0;");
  const text = `${base}w.a_eq==1;w.b_set=2;w.c_sp (1);`;
  const { status, js: outJs, wasm: out } = shorten(wasm, text);
  assert.equal(status, 0);
  assert.ok(outJs.endsWith("w._x0==1;w.b_set=2;w._x1 (1);"), outJs.slice(-60));
  const names = sectionList(out).find((s) => s.id === 7).bytes;
  assert.ok(names.includes(Buffer.from("b_set")) && names.includes(Buffer.from("_x0")) && !names.includes(Buffer.from("a_eq")));
});

test("the module keeps its name when index.js names it other than once as the import object's key, or already has `\"a\"`", () => {
  const rename = expectedRenames();
  rename.delete("./index_bg.js");
  for (const extra of [`export const again="./index_bg.js";`, `export const other={"a":1};`]) {
    const { status, stderr, wasm: out, js: outJs } = shorten(build(), js() + extra);
    assert.equal(status, 0, stderr);
    assert.ok(out.equals(build(rename)), "the names renamed, the module's kept");
    assert.equal(outJs, js(rename) + extra);
  }
});
