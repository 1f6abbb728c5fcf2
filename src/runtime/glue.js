// The crossings every forwarded call makes, each done here in one call
// from the wasm instead of a dozen: the incoming request's method, URL and
// headers read (`head`), the outbound `fetch` with its whole answer read
// (`send`), a body copied in (`bytesOf`), a promise awaited (`watch`), and
// the response handed to the runtime (`respond`).
// Built through the glue, each header, init property and promise step was a
// call between wasm and JavaScript of its own, and the objects behind them
// (`Headers`, `RequestInit`, `ResponseInit`) garbage for the collector.
//
// Headers cross as one string, "name\nvalue\n" per header: the runtime
// refuses a name or value with a line break, and the wasm side
// (`respond::Answer::set`, `plumgate_core::http::HttpRequest`) never puts
// one in. Nothing here decides anything: what is sent, and what an answer
// means, is the wasm's. One guard excepted: an answer body over
// MAX_ANSWER_BYTES is not copied into the wasm (see `readWhole`).

/**
 * "name\nvalue\n…" as a plain object, the form `fetch` and `Response` read
 * natively. (Read with `indexOf`, not `split`: no array of parts per call.)
 */
function record(lines) {
  const out = {};
  let at = 0;
  for (;;) {
    const nameEnd = lines.indexOf("\n", at);
    if (nameEnd < 0) return out;
    const valueEnd = lines.indexOf("\n", nameEnd + 1);
    if (valueEnd < 0) return out;
    out[lines.substring(at, nameEnd)] = lines.substring(nameEnd + 1, valueEnd);
    at = valueEnd + 1;
  }
}

let headNames = "";
let headList = [];

/**
 * The request's method, URL and the headers `names` lists (one per line),
 * as one string: "METHOD\nURL\n", then per name "=value\n", or "-\n" when
 * the request has no such header (`plumgate_core::http::RequestHead`).
 */
export function head(request, names) {
  if (names !== headNames) {
    headList = names.split("\n");
    headNames = names;
  }
  const headers = request.headers;
  let out = request.method + "\n" + request.url + "\n";
  for (const name of headList) {
    const value = headers.get(name);
    out += value === null ? "-\n" : "=" + value + "\n";
  }
  return out;
}

/**
 * `fetch(url)` with a timeout over the whole answer and without following
 * redirects; settles with `{ status, bytes, response }` once the body is
 * read, or rejects with the runtime's error (`TimeoutError` on the timeout).
 */
export function send(url, method, headers, body, timeoutMs) {
  const init = { method, headers: record(headers), redirect: "manual", signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) init.body = body;
  return fetch(url, init).then(readWhole);
}

/**
 * The largest answer body copied into the wasm: 16 MiB. Xoxoday's largest
 * answers (a catalogue page, an order history page) are a few hundred KB.
 * The wasm's memory only grows: one huge body (a misbehaving upstream, an
 * alert receiver answering with a large page) would keep the isolate at its
 * peak, or fail the allocation and stop it, with every request and the token
 * authority it serves.
 */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/**
 * The answer with its body read: `{ status, bytes, response }`. A body over
 * MAX_ANSWER_BYTES arrives empty (the status kept): an answer the wasm
 * cannot read, which it treats like any unreadable one (a read fails with
 * upstream_error, a placeOrder is reconciled, an alert's 2xx still counts).
 * Nor is it held in JavaScript memory: a body whose `content-length` says
 * it is over is not read at all, and one of no stated length (chunked, or
 * compressed: the length then counts the compressed bytes) is read piece
 * by piece and dropped once the pieces pass the limit. A body whose stated
 * length is within it is read in one `arrayBuffer()` (the hot path: the
 * runtime ends the body at that length).
 */
function readWhole(response) {
  const status = response.status;
  const stated = response.headers.get("content-length");
  if (stated !== null && !response.headers.has("content-encoding")) {
    const length = Number(stated);
    if (length <= MAX_ANSWER_BYTES) return response.arrayBuffer().then((buf) => ({ status, bytes: new Uint8Array(buf), response }));
    if (length > MAX_ANSWER_BYTES) return Promise.resolve(tooLarge(response, length, null));
  }
  return response.body === null ? Promise.resolve({ status, bytes: new Uint8Array(0), response }) : readCounted(response);
}

/**
 * A body of no stated length, read piece by piece into one buffer that
 * doubles as it fills (each piece copied, then dropped: a body sent in
 * many tiny pieces holds no object per piece), until it ends or passes
 * MAX_ANSWER_BYTES. A body that fails mid-way rejects as `arrayBuffer()`
 * would.
 */
async function readCounted(response) {
  const reader = response.body.getReader();
  let buffer = new Uint8Array(64 * 1024);
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { status: response.status, bytes: buffer.subarray(0, total), response };
    if (total + value.byteLength > MAX_ANSWER_BYTES) return tooLarge(response, total + value.byteLength, reader);
    if (total + value.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.min(MAX_ANSWER_BYTES, Math.max(buffer.byteLength * 2, total + value.byteLength)));
      grown.set(buffer.subarray(0, total));
      buffer = grown;
    }
    buffer.set(value, total);
    total += value.byteLength;
  }
}

/**
 * The answer of a body over MAX_ANSWER_BYTES: empty, the rest of the body
 * cancelled unread, and one log line with the stated length or the bytes
 * read when the limit was passed (never the URL: a webhook's is a secret).
 */
function tooLarge(response, bytes, reader) {
  console.error(JSON.stringify({ event: "upstream_answer_too_large", status: response.status, bytes, limit: MAX_ANSWER_BYTES }));
  Promise.resolve(reader ? reader.cancel() : response.body?.cancel()).catch(() => undefined);
  return { status: response.status, bytes: new Uint8Array(0), response };
}

/** The bytes of an `ArrayBuffer`, for the wasm to copy in one call. */
export function bytesOf(buffer) {
  return new Uint8Array(buffer);
}

/**
 * Call `ok(slot, value)` when `promise` fulfils, `err(slot, reason)` when it
 * rejects (`runtime::promise`: the slot is where the wasm waits for it).
 */
export function watch(promise, slot, ok, err) {
  promise.then((value) => ok(slot, value), (reason) => err(slot, reason));
}

/** A header of the answer `send` settled with; `undefined` when absent. */
export function answerHeader(answer, name) {
  return answer.response.headers.get(name) ?? undefined;
}

/**
 * The runtime's `Response`: `status`, a copy of `body` (a view of wasm
 * memory, or `undefined` for none) and the headers. Never throws: a header
 * the runtime refuses is left out, and a body with a no-body status (204,
 * 304) is dropped, as `Headers.set` and the constructor would refuse them.
 */
export function respond(status, body, headers) {
  const fields = record(headers);
  try {
    return new Response(body, { status, headers: fields });
  } catch {
    const valid = new Headers();
    for (const name of Object.keys(fields)) {
      try {
        valid.set(name, fields[name]);
      } catch {
        // left out, as a refused `Headers.set` leaves it
      }
    }
    for (const attempt of [body, undefined]) {
      try {
        return new Response(attempt, { status, headers: valid });
      } catch {
        // next attempt
      }
    }
    return new Response("internal error", { status: 500 });
  }
}
