// LEB128, the variable-length integers of the wasm binary format, for the
// build's small passes over the module (prune-table.mjs, zero-dead-text.mjs,
// short-imports.mjs).

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
