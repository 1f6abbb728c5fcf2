// Hand assembly of small wasm modules, and a runner of the build's passes
// over them, for the tests in this directory. The encoder and the section
// reader here are written apart from scripts/wasm-leb.mjs (BigInt shifts,
// not its division), as that is what the tests check.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The unsigned LEB128 encoding of `n`. */
export function uleb(n) {
  let v = BigInt(n);
  const out = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if (v === 0n) return [...out, b];
    out.push(b | 0x80);
  }
}

/** The signed LEB128 encoding of `n`. */
export function sleb(n) {
  let v = BigInt(n);
  const out = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && !(b & 0x40)) || (v === -1n && b & 0x40);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

/** An unsigned LEB128 at `at`: [value, offset after]. */
function readU(bytes, at) {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const b = bytes[at++];
    v |= BigInt(b & 0x7f) << shift;
    shift += 7n;
    if (!(b & 0x80)) return [Number(v), at];
  }
}

export const utf8 = (s) => [...Buffer.from(s, "utf8")];
/** A name: its length in bytes, then its UTF-8. */
export const str = (s) => [...uleb(utf8(s).length), ...utf8(s)];
/** A vector: its length, then its items (each an array of bytes). */
export const vec = (items) => [...uleb(items.length), ...items.flat()];
export const section = (id, body) => [id, ...uleb(body.length), ...body];
export const custom = (name, body) => section(0, [...str(name), ...body]);
export const module = (...sections) => Buffer.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...sections.flat()]);
export const u32le = (n) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
/** A function body without locals. */
export const body = (code = []) => [...uleb(code.length + 2), 0, ...code, 0x0b];
/** The "name" section with these function names ([index, name] pairs), and a module name and a local names subsection around them. */
export const nameSection = (fnNames, { functions = true } = {}) =>
  custom("name", [
    ...section(0, str("m")),
    ...(functions ? section(1, vec(fnNames.map(([i, n]) => [...uleb(i), ...str(n)]))) : []),
    ...section(2, vec([[...uleb(0), ...vec([[...uleb(0), ...str("x")]])]])),
  ]);

/** The sections of a module as `{ id, bytes }` (`bytes`: the whole section, id and size included). */
export function sectionList(wasm) {
  const out = [];
  for (let at = 8; at < wasm.length; ) {
    const [size, b] = readU(wasm, at + 1);
    out.push({ id: wasm[at], bytes: Buffer.from(wasm.subarray(at, b + size)) });
    at = b + size;
  }
  return out;
}

/** Asserting helper: the sections of `a` and `b` are the same in number and id, and equal byte for byte except those with an id in `changed`. */
export function sameExcept(assert, a, b, changed) {
  const sa = sectionList(a);
  const sb = sectionList(b);
  assert.deepEqual(sa.map((s) => s.id), sb.map((s) => s.id), "the same sections in the same order");
  sa.forEach((s, i) => {
    if (!changed.includes(s.id)) assert.ok(s.bytes.equals(sb[i].bytes), `section ${i} (id ${s.id}) unchanged`);
  });
}

/** A fresh temporary directory with these files (name → Buffer or string); `dir` and `path(name)`, `read(name)`, `done()`. */
export function scratch(files) {
  const dir = mkdtempSync(join(tmpdir(), "plumgate-build-test-"));
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  return {
    dir,
    path: (name) => join(dir, name),
    read: (name) => readFileSync(join(dir, name)),
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Runs scripts/<script> with `args` under this Node: `{ status, stderr }`. */
export function runScript(script, args, { env = {}, cwd = ROOT } = {}) {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", script), ...args], {
    encoding: "utf8",
    cwd,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stderr: r.stderr };
}
