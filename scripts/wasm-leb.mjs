// Readers of the wasm binary format for the build's small passes over the
// module (prune-table.mjs, zero-dead-text.mjs, short-imports.mjs): LEB128,
// its variable-length integers; the list of sections; an export section's
// entries. One reader each, so the passes agree on how a module reads.

/**
 * The integer at `at` in `bytes` and the offset after it; `signed` for the
 * signed form (a constant's value).
 */
export function readLeb(bytes, at, signed = false) {
  let value = 0;
  let shift = 0;
  let byte;
  do {
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  if (signed && byte & 0x40) value -= 2 ** shift;
  return [value, at];
}

/** The unsigned encoding of `n`. */
export function leb(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

/**
 * The module's sections in order, each `{ id, start, body, end }`: `start`
 * at its id byte, `body` after its size, `end` after its last byte.
 */
export function sections(wasm) {
  const out = [];
  for (let at = 8; at < wasm.length; ) {
    const [size, body] = readLeb(wasm, at + 1);
    out.push({ id: wasm[at], start: at, body, end: body + size });
    at = body + size;
  }
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A name (a length, then UTF-8) at `at` in `bytes` and the offset after it;
 * throws on bytes that are not UTF-8.
 */
export function readName(bytes, at) {
  const [n, s] = readLeb(bytes, at);
  return [utf8.decode(bytes.subarray(s, s + n)), s + n];
}

/**
 * The entries of the export section `section` (one of `sections(wasm)`),
 * each `{ name, kind, index, afterName, end }` (`afterName`: the offset of
 * its kind byte; `end`: the offset after its index), and `end`, the offset
 * where reading stopped: `section.end` when the section reads whole.
 */
export function exportsIn(wasm, section) {
  let [count, p] = readLeb(wasm, section.body);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const [name, afterName] = readName(wasm, p);
    const [index, end] = readLeb(wasm, afterName + 1);
    entries.push({ name, kind: wasm[afterName], index, afterName, end });
    p = end;
  }
  return { entries, end: p };
}
