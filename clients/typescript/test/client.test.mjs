// Unit tests of the built client (dist/) with a fake fetch and a fake clock:
// every arm of placeOrder's retry contract, the reads' retries, the error
// readings. No network, no real waiting (except the few tests that need a
// real attempt time limit, kept to a fraction of a second, or about one
// when a retry must have the second a retry is given).
import { test } from "node:test";
import assert from "node:assert/strict";
import { PlumgateClient, PlumgateError, newPoNumber, parseRetryAfter, retryDelayMs, judgeOrderAnswer } from "../dist/index.js";

const BASE = "https://plumgate.test";
const KEY = "pgk_unit_test_key_0123456789";

/** A clock whose sleep advances time at once and records each delay. */
function fakeClock(start = 1_700_000_000_000, random = () => 0.5) {
  const c = {
    t: start,
    sleeps: [],
    now: () => c.t,
    random,
    sleep(ms, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason);
      c.sleeps.push(ms);
      c.t += ms;
      return Promise.resolve();
    },
  };
  return c;
}

const json = (status, body, headers = {}) =>
  new Response(body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-request-id": `rid-${Math.random().toString(16).slice(2, 10)}`, ...headers },
  });
const plumErr = (code, message) => ({ error: { code, message, request_id: "rid-body" } });
const placed = (extra = {}) => ({ data: { placeOrder: { status: 1, data: { orderId: 100001, orderStatus: "complete", deliveryStatus: "delivered", vouchers: [{ voucherCode: "SBX-1", pin: "1" }], ...extra } } } });
const netError = () => { throw new TypeError("fetch failed"); };
/** A fetch that never answers until its signal aborts. */
const hang = (_url, init) => new Promise((_, reject) => {
  init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true });
});

/** A fetch that plays `steps` in order (each a Response, a function, or "hang") and records every call. */
function script(...steps) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined, headers: init.headers });
    const step = steps[Math.min(calls.length - 1, steps.length - 1)];
    if (step === "hang") return hang(url, init);
    return typeof step === "function" ? step(url, init) : step.clone();
  };
  f.calls = calls;
  return f;
}

function client(fetch, clock = fakeClock(), extra = {}) {
  return { c: new PlumgateClient({ baseUrl: BASE, key: KEY, fetch, clock, ...extra }), clock };
}
const ORDER = { productId: 10100, quantity: 1, denomination: 25, email: "alex@example.com" };

// ------------------------------------------------------------------ placeOrder

test("the key never shows when the client is printed or serialised, and is still sent", async () => {
  const KEY = "pgk_0123456789abcdef0123456789abcdef0123456789abcdef";
  let sent;
  const c = new PlumgateClient({ baseUrl: "http://127.0.0.1:8931", key: KEY, fetch: async (_url, init) => {
    sent = init.headers.authorization;
    return new Response(JSON.stringify({ data: { getBalance: { status: 1, data: { value: 5, currency: "USD" } } } }), { status: 200, headers: { "content-type": "application/json" } });
  } });
  const { inspect } = await import("node:util");
  for (const shown of [JSON.stringify(c), inspect(c, { depth: 10, showHidden: true }), String(c)]) {
    assert.ok(!shown.includes(KEY) && !shown.includes("0123456789abcdef"), shown);
  }
  await c.getBalance();
  assert.equal(sent, `Bearer ${KEY}`);
});

test("placeOrder: placed at once; the poNumber is made when not given and sent with the order", async () => {
  const f = script(json(200, placed()));
  const { c } = client(f);
  const r = await c.placeOrder(ORDER);
  assert.equal(r.status, "placed");
  assert.match(r.poNumber, /^pg-[0-9a-f-]{36}$/);
  assert.equal(r.attempts, 1);
  assert.equal(r.order.orderId, 100001);
  assert.equal(r.replayed, false);
  assert.equal(r.reconciled, false);
  assert.equal(f.calls[0].url, `${BASE}/v1/ops/placeOrder`);
  assert.equal(f.calls[0].init.method, "POST");
  assert.equal(f.calls[0].headers.authorization, `Bearer ${KEY}`);
  assert.equal(f.calls[0].headers["content-type"], "application/json");
  assert.deepEqual(f.calls[0].body, { ...ORDER, poNumber: r.poNumber });
  assert.equal(r.requestIds.length, 1);
});

test("placeOrder: a given poNumber is used unchanged; two calls make two different poNumbers otherwise", async () => {
  const f = script(json(200, placed()));
  const { c } = client(f);
  const r = await c.placeOrder({ ...ORDER, poNumber: "INV-42" });
  assert.equal(r.poNumber, "INV-42");
  assert.equal(f.calls[0].body.poNumber, "INV-42");
  // A whole-number poNumber (the API takes one below 2^53) goes as a JSON
  // number, and comes back as sent; 0 is a poNumber too, not "none given".
  for (const po of [12345, 0]) {
    const g = script(json(200, placed()));
    // Gathered, not asserted inside the callback: the client ignores what
    // an onAttempt throws, an AssertionError included.
    const reported = [];
    const r2 = await client(g).c.placeOrder({ ...ORDER, poNumber: po }, { onAttempt: (a) => reported.push(a.poNumber) });
    assert.deepEqual(reported, [po], "one attempt, reported with the poNumber as given");
    assert.equal(r2.poNumber, po);
    assert.equal(g.calls[0].body.poNumber, po);
  }
  assert.notEqual(newPoNumber(), newPoNumber());
  assert.ok(newPoNumber().length <= 64);
});

for (const [name, first] of [
  ["502 upstream_error", () => json(502, plumErr("upstream_error", "x"))],
  ["504 upstream_timeout", () => json(504, plumErr("upstream_timeout", "x"))],
  ["500 internal_error", () => json(500, plumErr("internal_error", "x"))],
  ["503 without a plumgate body", () => json(503, "<html>overloaded</html>")],
  ["408", () => json(408, undefined)],
  ["409 order_in_progress", () => json(409, plumErr("order_in_progress", "still placing"))],
  ["a connection error", netError],
  ["a success status with a body that is not JSON", () => json(200, "{\"data\":")],
]) {
  test(`placeOrder: ${name}, then 200: retried with the same poNumber and body, placed`, async () => {
    const f = script(first, json(200, placed(), { "x-plumgate-replayed": "true" }));
    const { c, clock } = client(f);
    const reports = [];
    const r = await c.placeOrder(ORDER, { onAttempt: (a) => reports.push({ ...a, waitsBefore: clock.sleeps.length }) });
    assert.equal(r.status, "placed");
    assert.equal(r.attempts, 2);
    assert.deepEqual(reports.map((a) => a.waitsBefore), [0, 1], "each attempt reported before the wait that follows it");
    assert.equal(r.replayed, true);
    assert.deepEqual(f.calls[1].body, f.calls[0].body, "the same body, poNumber included");
    assert.equal(clock.sleeps.length, 1);
    assert.ok(clock.sleeps[0] >= 250 && clock.sleeps[0] <= 500, `first backoff ${clock.sleeps[0]} in [250, 500]`);
    assert.deepEqual(reports.map((a) => a.next), ["retry", "done"]);
    assert.equal(reports[0].poNumber, r.poNumber);
  });
}

test("placeOrder: 409 order_in_progress with Retry-After waits at least that long", async () => {
  const f = script(json(409, plumErr("order_in_progress", "x"), { "retry-after": "3" }), json(200, placed()));
  const { c, clock } = client(f);
  const r = await c.placeOrder(ORDER);
  assert.equal(r.status, "placed");
  assert.ok(clock.sleeps[0] >= 3000 && clock.sleeps[0] <= 3300, `${clock.sleeps[0]}`);
});

test("placeOrder: a reconciled answer is placed, flagged reconciled", async () => {
  const f = script(json(200, placed({ poNumber: "PO-R" }), { "x-plumgate-reconciled": "true" }));
  const { c } = client(f);
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-R" });
  assert.equal(r.status, "placed");
  assert.equal(r.reconciled, true);
});

test("placeOrder: 429 waits Retry-After when it fits the deadline, without marking the order as possibly sent", async () => {
  const f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "2" }), json(400, plumErr("invalid_request", "bad")));
  const { c, clock } = client(f);
  const r = await c.placeOrder(ORDER, { timeoutMs: 10_000 });
  assert.ok(clock.sleeps[0] >= 2000 && clock.sleeps[0] <= 2200, `${clock.sleeps[0]}`);
  // Nothing was placed by the 429, so a refusal after it is a plain refusal.
  assert.equal(r.status, "refused");
  assert.equal(r.error.code, "invalid_request");
  assert.equal(r.retryable, false);
});

test("placeOrder: 429 whose Retry-After outlasts the deadline is refused, retryable, with retryAfter", async () => {
  for (const code of ["rate_limited", "quota_exceeded"]) {
    const f = script(json(429, plumErr(code, "x"), { "retry-after": "60" }));
    const { c, clock } = client(f);
    const r = await c.placeOrder(ORDER, { timeoutMs: 20_000 });
    assert.equal(r.status, "refused");
    assert.equal(r.retryable, true);
    assert.equal(r.error.code, code);
    assert.equal(r.error.status, 429);
    assert.equal(r.error.retryAfter, 60);
    assert.equal(r.attempts, 1);
    assert.deepEqual(clock.sleeps, [], "no pointless wait");
  }
});

test("placeOrder: quota_exceeded without Retry-After (over the whole daily cap) is refused at once, not retryable", async () => {
  const f = script(json(429, plumErr("quota_exceeded", "no retry can place it")), json(200, placed()));
  const { c, clock } = client(f);
  const r = await c.placeOrder(ORDER, { timeoutMs: 60_000 });
  assert.deepEqual([r.status, r.retryable, r.error.code, r.error.retryAfter, r.attempts], ["refused", false, "quota_exceeded", undefined, 1]);
  assert.deepEqual(clock.sleeps, [], "no wait for a day that has no room either");
  // rate_limited without Retry-After is still waited for (a backoff).
  const g = script(json(429, plumErr("rate_limited", "x")), json(200, placed()));
  const w = client(g);
  const placedAfter = await w.c.placeOrder(ORDER, { timeoutMs: 60_000 });
  assert.deepEqual([placedAfter.status, placedAfter.attempts], ["placed", 2]);
});

test("placeOrder: with both deadline and timeoutMs, the earlier one is the deadline", async () => {
  // A 7 s Retry-After fits a 10 s limit and not a 5 s one.
  for (const [deadlineIn, timeoutMs] of [[10_000, 5_000], [5_000, 10_000]]) {
    const f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "7" }), json(200, placed()));
    const { c, clock } = client(f);
    const r = await c.placeOrder(ORDER, { deadline: clock.now() + deadlineIn, timeoutMs });
    assert.deepEqual([r.status, r.retryable, r.attempts], ["refused", true, 1], `deadline in ${deadlineIn} ms, timeoutMs ${timeoutMs}`);
    assert.deepEqual(clock.sleeps, []);
  }
  const f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "7" }), json(200, placed()));
  const { c, clock } = client(f);
  const r = await c.placeOrder(ORDER, { deadline: clock.now() + 10_000, timeoutMs: 10_000 });
  assert.deepEqual([r.status, r.attempts], ["placed", 2], "both 10 s: the wait fits");
});

test("placeOrder: 429 after a lost answer, past the deadline: unknown, not refused", async () => {
  const f = script(netError, json(429, plumErr("rate_limited", "x"), { "retry-after": "60" }));
  const { c } = client(f);
  const r = await c.placeOrder(ORDER, { timeoutMs: 20_000 });
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "deadline");
  assert.equal(r.lastError.code, "rate_limited");
});

test("placeOrder: without a deadline or timeoutMs, it keeps trying for 150 s (Xoxoday can take 120 s)", async () => {
  const f = script(json(502, plumErr("upstream_error", "x")));
  const { c, clock } = client(f);
  const start = clock.now();
  const r = await c.placeOrder(ORDER);
  assert.deepEqual([r.status, r.reason], ["unknown", "deadline"]);
  const spent = clock.now() - start;
  assert.ok(spent > 140_000 && spent <= 150_000, `${spent} ms`);
});

test("placeOrder: a wait that ran past the deadline (a function frozen while waiting, a late timer) ends unknown after a lost answer, else with the refusal in hand", async () => {
  const late = () => {
    const clock = fakeClock();
    clock.sleep = (ms) => { clock.sleeps.push(ms); clock.t += ms + 60_000; return Promise.resolve(); };
    return clock;
  };
  const r = await client(script(json(502, plumErr("upstream_error", "x"))), late()).c.placeOrder(ORDER, { timeoutMs: 10_000 });
  assert.deepEqual([r.status, r.reason, r.attempts, r.lastError.code], ["unknown", "deadline", 1, "upstream_error"]);
  const r2 = await client(script(json(429, plumErr("rate_limited", "x"), { "retry-after": "2" })), late()).c.placeOrder(ORDER, { timeoutMs: 10_000 });
  assert.deepEqual([r2.status, r2.retryable, r2.attempts], ["refused", true, 1]);
  assert.deepEqual([r2.error.code, r2.error.retryAfter], ["rate_limited", 2], "the 429 waited out, not a bare timeout");
});

test("placeOrder: the caller's abort coming as a wait ends, before the next attempt: unknown after a lost answer, refused otherwise", async () => {
  const endsThenAborts = (ac) => {
    const clock = fakeClock();
    // The wait's timer fired; the abort comes before the next attempt starts.
    clock.sleep = (ms) => { clock.sleeps.push(ms); clock.t += ms; const done = Promise.resolve(); done.then(() => ac.abort()); return done; };
    return clock;
  };
  let ac = new AbortController();
  let f = script(json(502, plumErr("upstream_error", "x")), json(200, placed()));
  const r = await client(f, endsThenAborts(ac)).c.placeOrder(ORDER, { signal: ac.signal });
  assert.deepEqual([r.status, r.reason, r.attempts], ["unknown", "aborted", 1]);
  assert.equal(f.calls.length, 1);
  ac = new AbortController();
  f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "1" }), json(200, placed()));
  const r2 = await client(f, endsThenAborts(ac)).c.placeOrder(ORDER, { signal: ac.signal });
  assert.deepEqual([r2.status, r2.retryable, r2.error.code, r2.error.notSent], ["refused", true, "aborted", true]);
  assert.equal(f.calls.length, 1);
});

test("the backoff option is used: the client's by reads and placeOrder, placeOrder's own over the client's", async () => {
  const backoff = { baseMs: 100, maxMs: 100 };
  const f = script(json(502, plumErr("upstream_error", "x")), json(200, vouchers));
  const { c, clock } = client(f, fakeClock(undefined, () => 0), { backoff });
  await c.getVouchers({ limit: 1, page: 1 });
  assert.deepEqual(clock.sleeps, [50]);
  const g = script(json(502, plumErr("upstream_error", "x")), json(200, placed()));
  const { c: c2, clock: clock2 } = client(g, fakeClock(undefined, () => 0), { backoff });
  assert.equal((await c2.placeOrder(ORDER)).status, "placed");
  assert.deepEqual(clock2.sleeps, [50]);
  const h = script(json(502, plumErr("upstream_error", "x")), json(200, placed()));
  const { c: c3, clock: clock3 } = client(h, fakeClock(undefined, () => 0), { backoff });
  assert.equal((await c3.placeOrder(ORDER, { backoff: { baseMs: 2000 } })).status, "placed");
  assert.deepEqual(clock3.sleeps, [1000]);
});

test("placeOrder: a 502 that says nothing was placed is sent again and never turns a refusal into unknown", async () => {
  const said = "Xoxoday token refresh: refresh failed: HTTP 503 server_error (placeOrder was not executed by Xoxoday: nothing was placed and retrying with the same poNumber is safe)";
  // Then Xoxoday's refusal: a plain refusal (no attempt's answer was lost).
  let f = script(json(502, plumErr("upstream_error", said)), json(400, plumErr("invalid_request", "bad")));
  let { c, clock } = client(f);
  let r = await c.placeOrder(ORDER, { timeoutMs: 10_000 });
  assert.equal(f.calls.length, 2);
  assert.ok(clock.sleeps[0] >= 250 && clock.sleeps[0] <= 500, `${clock.sleeps}`);
  assert.equal(r.status, "refused");
  assert.equal(r.error.code, "invalid_request");
  // Every time, to the deadline: refused and retryable, not unknown.
  f = script(json(502, plumErr("upstream_error", said)));
  ({ c, clock } = client(f));
  r = await c.placeOrder(ORDER, { timeoutMs: 20_000 });
  assert.ok(f.calls.length >= 3, `${f.calls.length} attempts`);
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, true);
  assert.equal(r.error.code, "upstream_error");
  assert.equal(new Set(f.calls.map((x) => x.body.poNumber)).size, 1, "one poNumber throughout");
});

test("placeOrder: 502 every time: retries with growing jittered backoff and reports unknown at the deadline", async () => {
  let rnd = 0;
  const seq = [0, 1, 0.25, 0.75, 0.5, 0, 1, 0.3, 0.9, 0.1];
  const clock = fakeClock(1_700_000_000_000, () => seq[rnd++ % seq.length]);
  const f = script(json(502, plumErr("upstream_error", "x")));
  const { c } = client(f, clock);
  const start = clock.now();
  const r = await c.placeOrder(ORDER, { deadline: new Date(start + 30_000) });
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "deadline");
  assert.equal(r.lastError.code, "upstream_error");
  assert.equal(r.attempts, f.calls.length);
  assert.ok(r.attempts >= 4, `${r.attempts} attempts`);
  assert.ok(clock.now() <= start + 30_000, "never past the deadline");
  assert.equal(new Set(f.calls.map((x) => x.body.poNumber)).size, 1, "one poNumber throughout");
  // Delay n is in [ceiling/2, ceiling], ceiling = min(8000, 500 * 2^(n-1)).
  clock.sleeps.forEach((ms, i) => {
    const ceiling = Math.min(8000, 500 * 2 ** i);
    assert.ok(ms >= ceiling / 2 && ms <= ceiling, `delay ${i + 1}: ${ms} not in [${ceiling / 2}, ${ceiling}]`);
  });
  assert.ok(clock.sleeps.at(-1) > clock.sleeps[0], "delays grow");
});

/** Node's fetch failing to connect: TypeError("fetch failed") caused by a system error `code`. */
const connectError = (code, syscall = "connect") => () => {
  throw new TypeError("fetch failed", { cause: Object.assign(new Error(`${syscall} ${code} 127.0.0.1:9`), { code, syscall }) });
};
/** plumgate's answer began (status 200), then the connection failed with `code` while the body was read. */
const cutAfterHeaders = (code) => () => new Response(new ReadableStream({
  pull(c) {
    c.error(new TypeError("terminated", { cause: Object.assign(new Error(`read ${code}`), { code, syscall: "read" }) }));
  },
}), { status: 200, headers: { "content-type": "application/json" } });

test("placeOrder: a connection never made (refused, no such host) is retried, and ends refused, retryable: nothing was sent", async () => {
  for (const fail of [
    connectError("ECONNREFUSED"),
    connectError("ENOTFOUND", "getaddrinfo"),
    // A name lookup that failed for now (DNS server unreachable), and undici's connect timeout.
    connectError("EAI_AGAIN", "getaddrinfo"),
    () => { throw new TypeError("fetch failed", { cause: Object.assign(new Error("Connect Timeout Error"), { code: "UND_ERR_CONNECT_TIMEOUT" }) }); },
    connectError("EHOSTUNREACH"),
    connectError("ENETUNREACH"),
    // Several addresses tried (Node's autoSelectFamily): every one refused.
    () => { throw new TypeError("fetch failed", { cause: new AggregateError([Object.assign(new Error("a"), { code: "ECONNREFUSED" }), Object.assign(new Error("b"), { code: "ECONNREFUSED" })]) }); },
  ]) {
    const f = script(fail);
    const { c, clock } = client(f);
    const start = clock.now();
    const reports = [];
    const r = await c.placeOrder(ORDER, { deadline: start + 10_000, onAttempt: (a) => reports.push(a.next) });
    assert.equal(r.status, "refused", JSON.stringify(r));
    assert.equal(r.retryable, true);
    assert.equal(r.error.code, "network_error");
    assert.equal(r.error.notSent, true);
    assert.match(r.error.message, /nothing was sent/);
    assert.ok(r.attempts >= 3 && r.attempts === f.calls.length, `${r.attempts} attempts`);
    assert.equal(reports.at(-1), "stop");
  }
  // Refused first, then an answer: placed, as always.
  const f = script(connectError("ECONNREFUSED"), json(200, placed()));
  const { c } = client(f);
  const r = await c.placeOrder(ORDER);
  assert.deepEqual([r.status, r.attempts], ["placed", 2]);
});

test("placeOrder: a connection that may have carried the order (reset, a bare TypeError, one address refused and one reset, unreachable mid-exchange, any failure after the answer began) makes the outcome unknown", async () => {
  for (const fail of [
    connectError("ECONNRESET"),
    netError,
    // Linux ends an open connection so when the peer becomes unreachable.
    connectError("EHOSTUNREACH", "read"),
    connectError("ENETUNREACH", "write"),
    cutAfterHeaders("EHOSTUNREACH"),
    cutAfterHeaders("ECONNREFUSED"),
    // A TLS code once the answer began is no failed handshake.
    cutAfterHeaders("ERR_SSL_WRONG_VERSION_NUMBER"),
    () => { throw new TypeError("fetch failed", { cause: new AggregateError([Object.assign(new Error("a"), { code: "ECONNREFUSED" }), Object.assign(new Error("b"), { code: "ECONNRESET" })]) }); },
    // undici's "other side closed": the socket ended after the request may have been written.
    () => { throw new TypeError("fetch failed", { cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }) }); },
    // An AggregateError that names no error says nothing about connecting.
    () => { throw new TypeError("fetch failed", { cause: new AggregateError([], "no addresses") }); },
  ]) {
    const f = script(fail);
    const { c, clock } = client(f);
    const r = await c.placeOrder(ORDER, { deadline: clock.now() + 10_000 });
    assert.equal(r.status, "unknown", JSON.stringify(r));
    assert.equal(r.reason, "deadline");
    assert.equal(r.lastError.notSent, false);
  }
  // A refused connection after a lost answer proves nothing about the lost one.
  const f = script(connectError("ECONNRESET"), connectError("ECONNREFUSED"));
  const { c, clock } = client(f);
  const r = await c.placeOrder(ORDER, { deadline: clock.now() + 10_000 });
  assert.deepEqual([r.status, r.reason], ["unknown", "deadline"]);
  assert.equal(r.lastError.notSent, true);
});

/** Node's fetch failing its TLS handshake: the code in the cause, no syscall. */
const tlsError = (code) => () => {
  throw new TypeError("fetch failed", { cause: Object.assign(new Error(`TLS ${code}`), { code }) });
};
/** The codes Node 20 and 22 give for a handshake that failed (checked against real servers). */
const TLS_HANDSHAKE_CODES = [
  "ERR_SSL_WRONG_VERSION_NUMBER", "ERR_TLS_CERT_ALTNAME_INVALID", "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID",
];

test("placeOrder: a TLS handshake that failed sent nothing: refused at once, retryable, notSent; a read is not sent again either", async () => {
  for (const code of TLS_HANDSHAKE_CODES) {
    const f = script(tlsError(code), json(200, placed()));
    const { c, clock } = client(f);
    const reports = [];
    const r = await c.placeOrder(ORDER, { deadline: clock.now() + 10_000, onAttempt: (a) => reports.push(a.next) });
    assert.equal(r.status, "refused", `${code}: ${JSON.stringify(r)}`);
    assert.equal(r.retryable, true);
    assert.deepEqual([r.error.code, r.error.status, r.error.notSent, r.error.cause.cause.code], ["network_error", 0, true, code]);
    assert.match(r.error.message, /TLS handshake.*nothing was sent/);
    assert.equal(r.attempts, 1, "the same certificate would refuse every attempt");
    assert.deepEqual(clock.sleeps, []);
    assert.deepEqual(reports, ["done"]);
    const g = script(tlsError(code), json(200, { data: { getBalance: { status: 1, data: { value: 5 } } } }));
    await assert.rejects(client(g).c.getBalance(), { code: "network_error", notSent: true });
    assert.equal(g.calls.length, 1, `${code}: a read is not sent again`);
  }
  // Any other TLS error may come on a connection that already carried the
  // order (a bad record after the request was written): unknown, as before.
  for (const code of ["ERR_SSL_BAD_RECORD_TYPE", "ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC", "ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR"]) {
    const { c, clock } = client(script(tlsError(code)));
    const r = await c.placeOrder(ORDER, { deadline: clock.now() + 10_000 });
    assert.deepEqual([r.status, r.reason, r.lastError.notSent], ["unknown", "deadline", false], code);
  }
  // After an answer was lost, the order may exist whatever comes next.
  const { c, clock } = client(script(connectError("ECONNRESET"), tlsError("CERT_HAS_EXPIRED")));
  const r = await c.placeOrder(ORDER, { deadline: clock.now() + 10_000 });
  assert.deepEqual([r.status, r.reason, r.attempts], ["unknown", "refused_after_lost_answer", 2]);
});

test("Node's own fetch: a self-signed certificate, or https:// to a plain-HTTP server, sends nothing and refuses at once", async () => {
  const { createServer: createHttps } = await import("node:https");
  const { createServer: createHttp } = await import("node:http");
  const { readFileSync, mkdtempSync, rmSync } = await import("node:fs");
  const { execFileSync } = await import("node:child_process");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  // A throwaway self-signed certificate for 127.0.0.1, made for this test
  // (scripts/setup.sh installs openssl) and deleted after it.
  const dir = mkdtempSync(join(tmpdir(), "plumgate-tls-"));
  let pem;
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
    pem = { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const seen = [];
  const handler = (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(placed()));
  };
  for (const server of [createHttps(pem, handler), createHttp(handler)]) {
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const c = new PlumgateClient({ baseUrl: `https://127.0.0.1:${server.address().port}`, key: KEY });
      const started = Date.now();
      const r = await c.placeOrder(ORDER, { deadline: Date.now() + 20_000 });
      assert.equal(r.status, "refused", JSON.stringify(r));
      assert.deepEqual([r.retryable, r.attempts, r.error.code, r.error.notSent], [true, 1, "network_error", true]);
      assert.ok(TLS_HANDSHAKE_CODES.includes(r.error.cause?.cause?.code), String(r.error.cause?.cause?.code));
      assert.ok(Date.now() - started < 5_000, "not retried until the deadline");
      await assert.rejects(c.getBalance(), { code: "network_error", notSent: true });
      assert.deepEqual(seen, [], "no request reached the server");
    } finally {
      server.close();
    }
  }
});

test("placeOrder: aborted while waiting after a refused connection: refused, aborted (nothing was sent)", async () => {
  const ac = new AbortController();
  const f = script(connectError("ECONNREFUSED"));
  const { c } = client(f, fakeClock(1_700_000_000_000, () => 0.5), {});
  const r = await c.placeOrder(ORDER, { signal: ac.signal, onAttempt: () => ac.abort() });
  assert.equal(r.status, "refused", JSON.stringify(r));
  assert.equal(r.error.code, "aborted");
  assert.equal(r.error.notSent, true);
  assert.equal(r.retryable, true);
  assert.equal(r.attempts, 1);
});

test("placeOrder: ended before anything was sent (signal already aborted, deadline too near): refused, and the error says notSent", async () => {
  const ac = new AbortController();
  ac.abort();
  const f = script(json(200, placed()));
  const { c, clock } = client(f);
  const aborted = await c.placeOrder(ORDER, { signal: ac.signal });
  assert.deepEqual([aborted.status, aborted.error.code, aborted.error.notSent, aborted.attempts], ["refused", "aborted", true, 0]);
  const late = await c.placeOrder(ORDER, { deadline: clock.now() + 500 });
  assert.deepEqual([late.status, late.error.code, late.error.notSent, late.attempts], ["refused", "timeout", true, 0]);
  assert.equal(f.calls.length, 0, "fetch never called");
});

for (const [name, status, body, code, retryable, source] of [
  ["400 invalid_request", 400, plumErr("invalid_request", "data.quantity must be at least 1"), "invalid_request", false, "plumgate"],
  ["401 unauthorized", 401, plumErr("unauthorized", "unknown key"), "unauthorized", false, "plumgate"],
  ["403 forbidden", 403, plumErr("forbidden", "no orders:write"), "forbidden", false, "plumgate"],
  ["409 idempotency_conflict", 409, plumErr("idempotency_conflict", "x"), "idempotency_conflict", false, "plumgate"],
  ["Xoxoday 422 PLE10010 (balance)", 422, { code: 422, errorId: "PLE10010", errorInfo: "Failed to redeem points", error: "Insufficient balance" }, "PLE10010", false, "xoxoday"],
  ["Xoxoday 404 PLE10018 (denomination)", 404, { code: 404, errorId: "PLE10018", errorInfo: "Invalid denomination", error: "x" }, "PLE10018", false, "xoxoday"],
  ["503 reauth_required", 503, plumErr("reauth_required", "set XOXODAY_REFRESH_TOKEN"), "reauth_required", true, "plumgate"],
  ["503 misconfigured", 503, plumErr("misconfigured", "x"), "misconfigured", true, "plumgate"],
]) {
  test(`placeOrder: ${name} is refused at once (retryable: ${retryable})`, async () => {
    const f = script(json(status, body, { "x-request-id": "rid-refused" }));
    const { c, clock } = client(f);
    const r = await c.placeOrder(ORDER);
    assert.equal(r.status, "refused");
    assert.equal(r.retryable, retryable);
    assert.ok(r.error instanceof PlumgateError);
    assert.equal(r.error.code, code);
    assert.equal(r.error.status, status);
    assert.equal(r.error.source, source);
    assert.equal(r.error.requestId, "rid-refused");
    assert.equal(r.reconciled, false);
    assert.equal(r.failedOrder, undefined);
    assert.equal(r.attempts, 1);
    assert.deepEqual(clock.sleeps, []);
  });
}

test("placeOrder: HTTP 200 with data.placeOrder.status 0 is Xoxoday's refusal", async () => {
  const { c } = client(script(json(200, { data: { placeOrder: { status: 0, data: null } } })));
  const r = await c.placeOrder(ORDER);
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, false, "the same request would be refused again");
  assert.equal(r.error.code, "upstream_failure");
  assert.equal(r.error.source, "xoxoday");
  assert.equal(r.reconciled, false);
  assert.equal(r.failedOrder, undefined);
});

const failedOrder = { orderId: 100012, orderStatus: "failed", deliveryStatus: "failed", poNumber: "PO-F", orderTotal: 25 };

test("placeOrder: a reconciled order that failed is refused, keeping that Xoxoday holds it and its orderId and status", async () => {
  const f = script(json(200, { data: { placeOrder: { status: 0, data: failedOrder } } }, { "x-plumgate-reconciled": "true", "x-request-id": "rid-f" }));
  const { c } = client(f);
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, false, "the poNumber is spent on a failed order");
  assert.equal(r.reconciled, true);
  assert.deepEqual(r.failedOrder, failedOrder);
  assert.equal(r.error.code, "upstream_failure");
  assert.equal(r.error.requestId, "rid-f");
  assert.match(r.error.message, /100012/);
  assert.match(r.error.message, /failed/);
  assert.equal(r.attempts, 1);
});

test("placeOrder: a reconciled failed order's voucher codes are in failedOrder only, never in the error (JSON.stringify, String, util.inspect)", async () => {
  const { inspect } = await import("node:util");
  const order = { ...failedOrder, orderStatus: "cancelled", vouchers: [{ voucherCode: "SECRET-VOUCHER-77", pin: "PIN-4242" }] };
  const answer = { data: { placeOrder: { status: 0, data: order } } };
  const r = await client(script(json(200, answer, { "x-plumgate-reconciled": "true" }))).c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.deepEqual([r.status, r.reconciled], ["refused", true]);
  assert.deepEqual(r.failedOrder, order, "the order stays where the README documents it");
  for (const shown of [JSON.stringify(r.error), String(r.error), inspect(r.error, { depth: 10 }), r.error.stack]) {
    assert.ok(!shown.includes("SECRET-VOUCHER-77") && !shown.includes("PIN-4242"), shown);
  }
  // judgeOrderAnswer, exported, gives the same error.
  const v = judgeOrderAnswer({ status: 200, json: answer, headers: new Headers({ "x-plumgate-reconciled": "true" }), requestId: "r" }, 0);
  assert.ok(!JSON.stringify(v).includes("SECRET-VOUCHER-77") && !inspect(v, { depth: 10 }).includes("SECRET-VOUCHER-77"));
  // Xoxoday's own refusal (not reconciled) keeps its body on the error.
  const plain = await client(script(json(200, { data: { placeOrder: { status: 0, data: null } } }))).c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.deepEqual(plain.error.body, { data: { placeOrder: { status: 0, data: null } } });
});

test("placeOrder: a reconciled failed order after a lost answer is still a refusal: it is the poNumber's one order", async () => {
  const f = script(netError, json(200, { data: { placeOrder: { status: 0, data: { ...failedOrder, orderStatus: "cancelled" } } } }, { "x-plumgate-reconciled": "true" }));
  const { c } = client(f);
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.equal(r.status, "refused");
  assert.equal(r.reconciled, true);
  assert.equal(r.failedOrder.orderId, 100012);
  assert.equal(r.failedOrder.orderStatus, "cancelled");
  assert.equal(r.attempts, 2);
});

test("placeOrder: a status 0 answer naming an order (Xoxoday's own answer for an order that failed, as plumgate passes it on) is that failed order, reconciled or not", async () => {
  const body = { data: { placeOrder: { status: 0, data: failedOrder } } };
  const r = await client(script(json(200, body))).c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.deepEqual([r.status, r.retryable, r.reconciled, r.failedOrder, r.error.body], ["refused", false, false, failedOrder, undefined]);
  const words = "Xoxoday holds order 100012 under this poNumber, and it failed or was cancelled (orderStatus failed, deliveryStatus failed): nothing will be delivered";
  assert.equal(r.error.message, words);
  const a = (headers, json = body) => ({ status: 200, json, headers: new Headers(headers), requestId: "r" });
  for (const h of [{}, { "x-plumgate-reconciled": "false" }, { "x-plumgate-reconciled": "true" }]) {
    const v = judgeOrderAnswer(a(h), 0);
    assert.deepEqual([v.kind, v.retryable, v.error.message, v.error.body], ["refused", false, words, undefined], JSON.stringify(h));
  }
  // Cancelled by its lines: the order's own words, whatever they are.
  const lines = { orderId: "7", orderStatus: "complete", deliveryStatus: "delivered", voucherDetails: [{ cancelledQuantity: 1 }] };
  assert.equal(
    judgeOrderAnswer(a({}, { data: { placeOrder: { status: 0, data: lines } } }), 0).error.message,
    "Xoxoday holds order 7 under this poNumber, and it failed or was cancelled (orderStatus complete, deliveryStatus delivered): nothing will be delivered",
  );
  assert.match(judgeOrderAnswer(a({}, { data: { placeOrder: { status: 0, data: { orderId: 9 } } } }), 0).error.message, /order 9 under this poNumber, and it failed or was cancelled: nothing/);
  // An orderId that names nothing, or no 200: Xoxoday's plain refusal, its body kept.
  for (const data of [{ orderId: null, orderStatus: "failed" }, { orderId: "" }, [100012], null]) {
    const v = judgeOrderAnswer(a({}, { data: { placeOrder: { status: 0, data } } }), 0);
    assert.deepEqual([v.error.message, v.error.body], ["Xoxoday answered placeOrder with a status other than 1", { data: { placeOrder: { status: 0, data } } }], JSON.stringify(data));
  }
  // After a lost answer, the replay of that order: its one order, failed: refused, not unknown.
  const replay = json(200, body, { "x-plumgate-replayed": "true" });
  const r2 = await client(script(netError, replay)).c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.deepEqual([r2.status, r2.reconciled, r2.failedOrder, r2.attempts], ["refused", false, failedOrder, 2]);
});

test("placeOrder: a reconciled answer naming no order is no order Xoxoday holds", async () => {
  // Flagged reconciled, but naming no order: no order it holds. After a
  // lost answer it is a refusal like any other, so the outcome is unknown.
  const noOrder = json(200, { data: { placeOrder: { status: 0, data: { orderStatus: "failed" } } } }, { "x-plumgate-reconciled": "true" });
  const r2 = await client(script(netError, noOrder)).c.placeOrder({ ...ORDER, poNumber: "PO-F" });
  assert.deepEqual([r2.status, r2.reason], ["unknown", "refused_after_lost_answer"]);
});

test("placeOrder: Xoxoday's duplicate poNumber is unknown (an order with it exists), not retried", async () => {
  const f = script(json(409, { code: 409, errorId: "PLE10043", errorInfo: "Duplicate poNumber", error: "x" }));
  const { c } = client(f);
  const r = await c.placeOrder(ORDER);
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "duplicate_po_number");
  assert.equal(r.attempts, 1);
});

test("placeOrder: Xoxoday's duplicate poNumber in words only (its code is undocumented) is unknown too, on any 4xx, as plumgate reads it", async () => {
  for (const [status, body] of [
    [409, { code: 409, errorId: "PLE10099", errorInfo: "Duplicate poNumber", error: "x" }],
    [409, { code: 409, errorId: "PLE10099", message: "An order with this PO number ALREADY EXISTS" }],
    [422, { code: 422, errorId: "PLE10099", errorInfo: "Failed", error: "poNumber already exists" }],
    [400, { error: "duplicate_po_number" }],
    // No errorId, no string error: a body the client cannot place (source
    // "unknown"), which the worker's ledger reads as the duplicate too.
    [409, { errorInfo: "PO number already exists" }],
    [422, { message: "Duplicate poNumber" }],
  ]) {
    const f = script(json(status, body), json(200, placed()));
    const { c, clock } = client(f);
    const r = await c.placeOrder(ORDER);
    assert.deepEqual([r.status, r.reason, r.attempts], ["unknown", "duplicate_po_number", 1], JSON.stringify(body));
    assert.notEqual(r.lastError.source, "plumgate");
    assert.deepEqual(clock.sleeps, []);
  }
});

test("placeOrder: PLE10041 (quantity) is refused even when it says \"already exist\"; plumgate's own 409s and Xoxoday's 5xx are not read as a duplicate", async () => {
  const quantity = await client(script(json(409, { code: 409, errorId: "PLE10041", errorInfo: "Order already exists for this quantity", error: "duplicate" }))).c.placeOrder(ORDER);
  assert.deepEqual([quantity.status, quantity.retryable, quantity.error.code], ["refused", false, "PLE10041"]);
  const conflict = await client(script(json(409, plumErr("idempotency_conflict", "an order already exists under this poNumber with a different body (duplicate poNumber)")))).c.placeOrder(ORDER);
  assert.deepEqual([conflict.status, conflict.retryable, conflict.error.code], ["refused", false, "idempotency_conflict"]);
  const inProgress = script(json(409, plumErr("order_in_progress", "Xoxoday answered duplicate poNumber; checking whether the order already exists")), json(200, placed()));
  const pending = await client(inProgress).c.placeOrder(ORDER);
  assert.deepEqual([pending.status, pending.attempts], ["placed", 2], "order_in_progress is still waited out");
  const a = (status, body) => ({ status, json: body, headers: new Headers(), requestId: "r" });
  assert.equal(judgeOrderAnswer(a(502, { code: 502, errorId: "X", error: "duplicate" }), 0).kind, "retry", "a 5xx is a lost answer");
  assert.equal(judgeOrderAnswer(a(429, { code: 429, errorId: "X", error: "duplicate" }), 0).kind, "wait");
  assert.equal(judgeOrderAnswer(a(408, { code: 408, errorId: "X", error: "duplicate" }), 0).kind, "retry");
  assert.equal(judgeOrderAnswer(a(409, { code: 409, errorId: "X", error: "conflict" }), 0).kind, "refused", "no such words: a plain refusal");
});

test("placeOrder: a refusal after a lost answer is unknown: the lost attempt may have placed it", async () => {
  const f = script(json(502, plumErr("upstream_error", "x")), json(422, { code: 422, errorId: "PLE10010", errorInfo: "x", error: "x" }));
  const { c } = client(f);
  const r = await c.placeOrder(ORDER);
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "refused_after_lost_answer");
  assert.equal(r.lastError.code, "PLE10010");
});

test("placeOrder: a refusal plumgate replays after order_in_progress or a lost answer is still unknown, not refused", async () => {
  // The ledger replays a refusal it settled (a joined call, a settlement no
  // request heard) and then forgets the poNumber: an earlier attempt of this
  // call still on its way to the ledger would place the order after it.
  const refusal = () => json(400, { code: 400, errorId: "PLE10018", errorInfo: "insufficient balance", error: "insufficient balance" }, { "x-plumgate-replayed": "true" });
  for (const first of [() => json(409, plumErr("order_in_progress", "still placing"), { "retry-after": "1" }), netError]) {
    const { c } = client(script(first, refusal));
    const r = await c.placeOrder(ORDER);
    assert.deepEqual([r.status, r.reason, r.lastError.code], ["unknown", "refused_after_lost_answer", "PLE10018"]);
  }
});

test("placeOrder: the caller's abort during a backoff gives unknown (aborted); before sending, a retryable refusal", async () => {
  const ac = new AbortController();
  const clock = fakeClock();
  const sleep = clock.sleep;
  clock.sleep = (ms, signal) => { ac.abort(); return sleep(ms, signal); };
  const { c } = client(script(json(502, plumErr("upstream_error", "x"))), clock);
  const r = await c.placeOrder(ORDER, { signal: ac.signal });
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "aborted");
  // The same after a connection that may have carried the order.
  const ac3 = new AbortController();
  const clock3 = fakeClock();
  const sleep3 = clock3.sleep;
  clock3.sleep = (ms, signal) => { ac3.abort(); return sleep3(ms, signal); };
  const r3 = await client(script(connectError("ECONNRESET")), clock3).c.placeOrder(ORDER, { signal: ac3.signal });
  assert.deepEqual([r3.status, r3.reason, r3.lastError.code], ["unknown", "aborted", "network_error"]);

  const f = script(json(200, placed()));
  const { c: c2 } = client(f);
  const r2 = await c2.placeOrder(ORDER, { signal: AbortSignal.abort() });
  assert.equal(r2.status, "refused");
  assert.equal(r2.retryable, true);
  assert.equal(r2.error.code, "aborted");
  assert.equal(f.calls.length, 0, "nothing sent");
});

test("placeOrder: the caller's abort while waiting out a 429 refuses with aborted (nothing was placed)", async () => {
  const ac = new AbortController();
  const clock = fakeClock();
  const sleep = clock.sleep;
  clock.sleep = (ms, signal) => { ac.abort(); return sleep(ms, signal); };
  const f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "2" }), json(200, placed()));
  const { c } = client(f, clock);
  const r = await c.placeOrder(ORDER, { signal: ac.signal, timeoutMs: 10_000 });
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, true);
  assert.equal(r.error.code, "aborted", "the same as an abort just after the wait");
  assert.equal(r.error.cause.code, "rate_limited", "what was being waited out");
  assert.equal(f.calls.length, 1);
});

test("placeOrder: the caller's abort during an attempt gives unknown (aborted)", async () => {
  const ac = new AbortController();
  const { c } = client(script("hang"), undefined, { clock: undefined });
  setTimeout(() => ac.abort(), 50);
  const r = await c.placeOrder(ORDER, { signal: ac.signal });
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "aborted");
  assert.equal(r.lastError.code, "aborted");
});

test("placeOrder: a deadline that passes during a hanging attempt ends it there: unknown (deadline)", async () => {
  const { c } = client(script("hang"), undefined, { clock: undefined });
  const t0 = Date.now();
  const r = await c.placeOrder(ORDER, { deadline: t0 + 300, minAttemptMs: 100 });
  const took = Date.now() - t0;
  assert.equal(r.status, "unknown");
  assert.equal(r.reason, "deadline");
  assert.equal(r.lastError.code, "timeout");
  assert.equal(r.attempts, 1);
  assert.ok(took >= 280 && took < 1500, `took ${took} ms`);
});

test("placeOrder: attemptTimeoutMs ends a hanging attempt and retries with the same poNumber", async () => {
  const f = script("hang", json(200, placed(), { "x-plumgate-replayed": "true" }));
  const { c } = client(f, undefined, { clock: undefined, backoff: { baseMs: 20, maxMs: 40 } });
  const r = await c.placeOrder(ORDER, { attemptTimeoutMs: 100, minAttemptMs: 10, timeoutMs: 5_000 });
  assert.equal(r.status, "placed");
  assert.equal(r.attempts, 2);
  assert.equal(f.calls[0].body.poNumber, f.calls[1].body.poNumber);
});

test("placeOrder: a deadline already past sends nothing and refuses (retryable)", async () => {
  const f = script(json(200, placed()));
  const clock = fakeClock();
  const { c } = client(f, clock);
  const r = await c.placeOrder(ORDER, { deadline: clock.now() - 1 });
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, true);
  assert.equal(r.error.code, "timeout");
  assert.equal(f.calls.length, 0);
});

test("placeOrder: no attempt starts with less than minAttemptMs left", async () => {
  const f = script(json(502, plumErr("upstream_error", "x")));
  const clock = fakeClock(1_000_000, () => 0);
  const { c } = client(f, clock);
  // 250 ms backoff + 1000 ms minimum would pass a 1200 ms deadline.
  const r = await c.placeOrder(ORDER, { timeoutMs: 1200 });
  assert.equal(r.status, "unknown");
  assert.equal(f.calls.length, 1);
  assert.deepEqual(clock.sleeps, []);
});

test("placeOrder: with less than minAttemptMs before the deadline not even the first attempt is sent", async () => {
  const f = script(json(200, placed()));
  const clock = fakeClock();
  const { c } = client(f, clock);
  const reports = [];
  const r = await c.placeOrder(ORDER, { deadline: clock.now() + 999, onAttempt: (a) => reports.push(a) });
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, true);
  assert.equal(r.error.code, "timeout");
  assert.equal(r.error.status, 0);
  assert.equal(r.attempts, 0);
  assert.equal(f.calls.length, 0, "nothing sent");
  assert.deepEqual(reports, []);
  // minAttemptMs is the caller's to lower; exactly minAttemptMs left is enough.
  const r2 = await c.placeOrder(ORDER, { deadline: clock.now() + 999, minAttemptMs: 500 });
  assert.equal(r2.status, "placed");
  const r3 = await c.placeOrder(ORDER, { deadline: clock.now() + 1000 });
  assert.equal(r3.status, "placed");
  // No time left at all is not enough, even with minAttemptMs 0.
  const sent = f.calls.length;
  const r4 = await c.placeOrder(ORDER, { deadline: clock.now(), minAttemptMs: 0 });
  assert.deepEqual([r4.status, r4.retryable, r4.error.code, r4.attempts], ["refused", true, "timeout", 0]);
  assert.equal(f.calls.length, sent, "nothing sent");
});

// ----------------------------------------------------------- the pure rules

test("retryDelayMs: equal jitter within [ceiling/2, ceiling], capped; Retry-After is a floor", () => {
  for (let n = 1; n <= 8; n++) {
    const ceiling = Math.min(8000, 500 * 2 ** (n - 1));
    assert.equal(retryDelayMs(n, () => 0), ceiling / 2);
    assert.equal(retryDelayMs(n, () => 0.999999), Math.round(ceiling / 2 + 0.999999 * ceiling / 2));
  }
  assert.equal(retryDelayMs(1, () => 0, {}, 5), 5000);
  assert.equal(retryDelayMs(1, () => 1, {}, 5), 5500);
  assert.equal(retryDelayMs(8, () => 0, {}, 1), 4000, "a short Retry-After does not shorten the backoff");
  assert.equal(retryDelayMs(3, () => 0, { baseMs: 100, maxMs: 300 }), 150);
});

test("parseRetryAfter: seconds and HTTP dates", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("42", now), 42);
  assert.equal(parseRetryAfter(" 7 ", now), 7);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now), 30);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  // A date 29.5 s away is waited 30 s, never less than it asks.
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now + 500), 30);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
  // Neither delta-seconds nor a date (Date.parse reads them as past dates,
  // which would mean "retry now"): ignored, so the client's own backoff holds.
  for (const odd of ["1.5", "-5", "30.0", "+3"]) assert.equal(parseRetryAfter(odd, now), undefined, odd);
});

test("placeOrder: a placed answer whose success carried no order data gives order {}, not undefined", async () => {
  for (const inner of [{ status: 1 }, { status: 1, data: null }, { status: "1", data: [] }]) {
    const { c } = client(script(json(200, { data: { placeOrder: inner } })));
    const r = await c.placeOrder(ORDER);
    assert.equal(r.status, "placed", JSON.stringify(inner));
    assert.deepEqual(r.order, {});
    assert.equal(r.order.orderId, undefined);
  }
});

test("judgeOrderAnswer: the verdict table", () => {
  const a = (status, body, headers = {}) => ({ status, json: body, headers: new Headers(headers), requestId: "r" });
  const kind = (...args) => judgeOrderAnswer(a(...args), 0).kind;
  assert.equal(kind(200, placed()), "placed");
  assert.equal(kind(200, { data: { placeOrder: { status: "1", data: {} } } }), "placed");
  assert.equal(kind(200, { data: { placeOrder: { status: " 1.0 ", data: {} } } }), "placed", "a decimal's text, as plumgate reads it");
  assert.equal(kind(200, { data: { placeOrder: { status: 1.5, data: {} } } }), "placed", "the fraction cut off, as plumgate reads it");
  assert.equal(kind(200, { data: { placeOrder: { status: "1.5", data: {} } } }), "placed", "a decimal's text, the fraction cut off too");
  // What plumgate does not read as status 1 is not a placed order here either.
  for (const status of [true, [1], "0x1", "", "1e", null, 2, "2", -1]) {
    assert.equal(kind(200, { data: { placeOrder: { status, data: {} } } }), "refused", JSON.stringify(status));
  }
  // plumgate passes on a success status other than 200 only after it found no such order.
  assert.equal(kind(201, { data: { placeOrder: { status: 1, data: {} } } }), "refused");
  assert.equal(kind(202, placed()), "refused");
  assert.equal(kind(200, { data: { placeOrder: { status: 0 } } }), "refused");
  assert.equal(kind(200, { data: { placeOrder: { status: 0, data: failedOrder } } }, { "x-plumgate-reconciled": "true" }), "refused");
  assert.equal(kind(200, { data: { placeOrder: { status: 0, data: null } } }, { "x-plumgate-reconciled": "true" }), "refused");
  assert.equal(kind(200, undefined), "retry");
  // Nor is any other success status without a placeOrder answer (a 204, a
  // proxy's {}): the order may exist, so it is sent again, never refused.
  assert.equal(kind(204, undefined), "retry");
  assert.equal(kind(201, {}), "retry");
  assert.equal(kind(200, null), "retry", "JSON null: a damaged answer, not Xoxoday's refusal");
  assert.equal(kind(200, "placed"), "retry");
  assert.equal(kind(409, plumErr("order_in_progress", "")), "retry");
  assert.equal(kind(409, plumErr("idempotency_conflict", "")), "refused");
  assert.equal(kind(409, { errorId: "PLE10041" }), "refused");
  assert.equal(kind(409, { errorId: "PLE10043" }), "unknown");
  assert.equal(kind(429, plumErr("rate_limited", "")), "wait");
  assert.equal(kind(429, { errors: [{ message: "auth.request_limit_exceeded", penaltySeconds: 9 }] }), "wait");
  assert.equal(kind(502, undefined), "retry");
  const notPlaced = "Xoxoday token refresh: refresh failed: HTTP 503 server_error (placeOrder was not executed by Xoxoday: nothing was placed and retrying with the same poNumber is safe)";
  assert.equal(kind(502, plumErr("upstream_error", notPlaced)), "wait", "plumgate's word that nothing was placed");
  assert.equal(kind(502, plumErr("upstream_error", "plumgate is being updated; nothing was placed and retrying with the same poNumber is safe")), "wait", "a request a previous version's ledger refused during a deploy");
  assert.equal(kind(502, plumErr("upstream_error", "the key registry did not answer; retry in a moment; the order was not sent to Xoxoday: nothing was placed and retrying with the same poNumber is safe")), "wait", "the spend cap's reservation failed before sending");
  assert.equal(kind(502, plumErr("upstream_error", "Xoxoday answered placeOrder with HTTP 502; getOrderDetails has answered \"no such order\" 6 times over 180 s since placeOrder was sent, past the 120 s Xoxoday may take: nothing was placed and retrying with the same poNumber is safe")), "wait", "the ledger's settled \"not placed\"");
  assert.equal(kind(502, { code: 502, errorId: "X", error: notPlaced }), "retry", "only plumgate's own error says so");
  assert.equal(kind(503, plumErr("reauth_required", `x (${notPlaced.split("(")[1]}`)), "refused", "an operator-only 503 still stops");
  assert.equal(kind(503, plumErr("credentials_rejected", "")), "refused");
  assert.equal(kind(503, { code: 503, errorId: "X" }), "retry");
  assert.equal(kind(400, plumErr("invalid_json", "")), "refused");
});

// ---------------------------------------------------------------------- reads

const vouchers = { data: { getVouchers: { status: 1, data: [{ productId: 10100, name: "Card", currencyCode: "USD", valueType: "fixed_denomination", minValue: 10, maxValue: 100, valueDenominations: "10,100" }] } } };

test("getVouchers: posts the data, returns data.getVouchers.data, the request id and the cache result", async () => {
  const f = script(json(200, vouchers, { "x-plumgate-cache": "hit", "x-request-id": "rid-v" }));
  const { c } = client(f);
  const r = await c.getVouchers({ limit: 1, page: 1 });
  assert.equal(r.data[0].name, "Card");
  assert.equal(r.cache, "hit");
  assert.equal(r.requestId, "rid-v");
  assert.deepEqual(r.body, vouchers);
  assert.equal(f.calls[0].url, `${BASE}/v1/ops/getVouchers`);
  assert.deepEqual(f.calls[0].body, { limit: 1, page: 1 });
  assert.equal(f.calls[0].headers["cache-control"], undefined);
});

test("reads: cacheControl no-cache is sent; a trailing slash on baseUrl is ignored", async () => {
  const f = script(json(200, { data: { getBalance: { status: 1, data: { value: 5, currency: "USD" } } } }));
  const c = new PlumgateClient({ baseUrl: `${BASE}/`, key: KEY, fetch: f });
  const r = await c.getBalance({}, { cacheControl: "no-cache" });
  assert.equal(r.data.value, 5);
  assert.equal(f.calls[0].url, `${BASE}/v1/ops/getBalance`);
  assert.equal(f.calls[0].headers["cache-control"], "no-cache");
});

test("paymentHistory: the rows under data.getPaymentReport (or data.paymentHistory)", async () => {
  for (const key of ["getPaymentReport", "paymentHistory"]) {
    const { c } = client(script(json(200, { data: { [key]: { status: 1, data: [{ date: "d", adjusted_amount: -10 }] } } })));
    const r = await c.paymentHistory({ startDate: "2025-01-01", endDate: "2025-01-02" });
    assert.equal(r.data[0].adjusted_amount, -10);
  }
});

test("paymentHistory: the rows flat under data, the spec's reading of the answer", async () => {
  const { c } = client(script(json(200, { data: [{ date: "d", adjusted_amount: -10 }, { date: "e", adjusted_amount: 5 }] })));
  const r = await c.paymentHistory({ startDate: "2025-01-01", endDate: "2025-01-02" });
  assert.deepEqual(r.data.map((row) => row.adjusted_amount), [-10, 5]);
  // Anything else is Xoxoday's failure (status not 1), or no answer of the report's at all.
  for (const [body, code] of [[{ data: { other: [] } }, "invalid_response"], [{ data: { getPaymentReport: { status: 0, data: [] } } }, "upstream_failure"]]) {
    const { c: c2 } = client(script(json(200, body)));
    await assert.rejects(c2.paymentHistory({ startDate: "2025-01-01", endDate: "2025-01-02" }), (e) => e.code === code);
  }
  // Only the report has the flat reading.
  const { c: c3 } = client(script(json(200, { data: [] })));
  await assert.rejects(c3.getOrderHistory({ startDate: "2025-01-01", endDate: "2025-01-02" }), (e) => e.code === "invalid_response");
});

test("reads: 502, 504, 429 and connection errors are retried; the third failure is thrown", async () => {
  const f = script(json(502, plumErr("upstream_error", "x")), netError, json(429, plumErr("rate_limited", "x"), { "retry-after": "1" }), json(200, vouchers));
  const { c, clock } = client(f, undefined, { retries: 3 });
  const r = await c.getVouchers({ limit: 1, page: 1 });
  assert.equal(r.data.length, 1);
  assert.equal(f.calls.length, 4);
  assert.ok(clock.sleeps[2] >= 1000, "Retry-After honoured");

  const g = script(json(504, plumErr("upstream_timeout", "x")));
  const { c: c2 } = client(g);
  await assert.rejects(c2.getOrderHistory({ startDate: "2025-01-01", endDate: "2025-01-02" }), (e) => {
    assert.ok(e instanceof PlumgateError);
    assert.equal(e.status, 504);
    assert.equal(e.code, "upstream_timeout");
    assert.equal(e.source, "plumgate");
    return true;
  });
  assert.equal(g.calls.length, 3, "1 + 2 retries by default");
});

test("reads: a 500 is retried like the other 5xx, each wait longer than the last", async () => {
  const f = script(json(500, plumErr("internal_error", "x")), json(500, plumErr("internal_error", "x")), json(200, vouchers));
  const { c, clock } = client(f, fakeClock(undefined, () => 0));
  const r = await c.getVouchers({ limit: 1, page: 1 });
  assert.equal(r.data.length, 1);
  assert.equal(f.calls.length, 3);
  assert.deepEqual(clock.sleeps, [250, 500]);
});

test("reads: a signal already aborted sends nothing and throws aborted", async () => {
  let sent = 0;
  // As a real fetch does: an aborted signal rejects before anything is sent.
  const f = async (_url, init) => {
    if (init.signal.aborted) throw new DOMException("aborted", "AbortError");
    sent += 1;
    return json(200, { data: { getBalance: { status: 1, data: { value: 5, currency: "USD" } } } });
  };
  const { c } = client(f);
  await assert.rejects(c.getBalance({}, { signal: AbortSignal.abort() }), { code: "aborted", status: 0 });
  assert.equal(sent, 0);
});

test("Retry-After is read whatever the error body: plumgate's, Xoxoday's errorId, error and rate-limit shapes (over penaltySeconds), or none known", async () => {
  for (const body of [
    plumErr("rate_limited", "x"),
    { code: 429, errorId: "X", errorInfo: "too many requests" },
    { code: 429, error: "rate_limit_exceeded", message: "Daily request limit of 500 reached for getVouchers API." },
    { errors: [{ message: "auth.request_limit_exceeded", penaltySeconds: 5 }] },
    "<html>429 Too Many Requests</html>",
  ]) {
    const { c } = client(script(json(429, body, { "retry-after": "30" })));
    await assert.rejects(c.getBalance({}, { retries: 0 }), { status: 429, retryAfter: 30 }, JSON.stringify(body));
    // placeOrder waits it out before sending again.
    const f = script(json(429, body, { "retry-after": "3" }), json(200, placed()));
    const { c: c2, clock } = client(f);
    const r = await c2.placeOrder(ORDER, { timeoutMs: 10_000 });
    assert.equal(r.status, "placed");
    assert.ok(clock.sleeps[0] >= 3000 && clock.sleeps[0] <= 3300, `${JSON.stringify(body)}: ${clock.sleeps[0]}`);
  }
});

test("reads: 4xx is thrown at once with code, status, request id and Retry-After", async () => {
  const f = script(json(403, plumErr("forbidden", "this key lacks the `catalog` scope"), { "x-request-id": "rid-403" }));
  const { c } = client(f);
  await assert.rejects(c.getFilters(), (e) => {
    assert.equal(e.status, 403);
    assert.equal(e.code, "forbidden");
    assert.equal(e.requestId, "rid-403");
    assert.match(e.message, /catalog/);
    return true;
  });
  assert.equal(f.calls.length, 1);
});

test("reads: plumgate's operator-only 503 (reauth_required, credentials_rejected, misconfigured) is thrown at once; 408 is retried", async () => {
  for (const code of ["reauth_required", "credentials_rejected", "misconfigured"]) {
    const f = script(json(503, plumErr(code, "an operator must act")), json(200, vouchers));
    const { c, clock } = client(f);
    await assert.rejects(c.getVouchers({ limit: 1, page: 1 }), { status: 503, code, source: "plumgate" });
    assert.equal(f.calls.length, 1, `${code}: one request`);
    assert.deepEqual(clock.sleeps, []);
  }
  const f = script(json(408, undefined), json(200, vouchers));
  const { c, clock } = client(f);
  const r = await c.getVouchers({ limit: 1, page: 1 });
  assert.equal(r.data.length, 1);
  assert.equal(f.calls.length, 2);
  assert.equal(clock.sleeps.length, 1);
});

test("reads: a failure whose Retry-After runs past the time limit is thrown at once, without waiting or sending again", async () => {
  const f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "60" }), json(200, vouchers));
  const { c, clock } = client(f);
  const start = clock.now();
  await assert.rejects(c.getVouchers({ limit: 1, page: 1 }, { timeoutMs: 30_000 }), { status: 429, code: "rate_limited", retryAfter: 60 });
  assert.equal(f.calls.length, 1);
  assert.deepEqual(clock.sleeps, []);
  assert.equal(clock.now(), start, "no time waited");
  // The client's own time limit, when the call sets none.
  const g = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "10" }), json(200, vouchers));
  const { c: c2, clock: clock2 } = client(g, undefined, { timeoutMs: 5_000 });
  await assert.rejects(c2.getVouchers({ limit: 1, page: 1 }), { status: 429, retryAfter: 10 });
  assert.equal(g.calls.length, 1);
  assert.deepEqual(clock2.sleeps, []);
});

test("reads: a 429 whose wait would leave less than a second before the time limit is thrown as the 429, not sent again to time out", async () => {
  // Retry-After 9 with the most jitter: 9,891 ms of a 10 s limit. Sent
  // again, the attempt would have 109 ms: a timeout without retryAfter, and
  // one more request against the key's budget.
  const f = script(json(429, plumErr("rate_limited", "x"), { "retry-after": "9" }), "hang");
  const { c, clock } = client(f, fakeClock(undefined, () => 0.99));
  await assert.rejects(c.getVouchers({ limit: 1, page: 1 }, { timeoutMs: 10_000 }), { status: 429, code: "rate_limited", retryAfter: 9 });
  assert.equal(f.calls.length, 1);
  assert.deepEqual(clock.sleeps, []);
});

// ------------------------------------------------------------------ redirects

/** What a browser's fetch gives for a redirect under `redirect: "manual"`: no status, no headers, no body. */
const opaqueRedirect = () => ({ type: "opaqueredirect", status: 0, headers: new Headers(), text: async () => "" });
const moved = (status) => new Response("<html>moved</html>", { status, headers: { location: "https://elsewhere.example/v1/ops/placeOrder", "content-type": "text/html" } });

test("redirects are not followed: every request says redirect manual, and a 3xx (or a browser's opaque redirect) is a redirected error, never retried", async () => {
  for (const answer of [moved(301), moved(302), moved(307), moved(308), opaqueRedirect]) {
    const f = script(answer, json(200, vouchers));
    const { c, clock } = client(f);
    const status = typeof answer === "function" ? 0 : answer.status;
    await assert.rejects(c.getVouchers({ limit: 1, page: 1 }), (e) => {
      assert.ok(e instanceof PlumgateError);
      assert.deepEqual([e.status, e.code, e.source, e.notSent], [status, "redirected", "unknown", true]);
      assert.match(e.message, /baseUrl/);
      assert.ok(!e.message.includes("elsewhere.example"));
      return true;
    }, String(status));
    assert.equal(f.calls.length, 1, `${status}: not sent again`);
    assert.deepEqual(clock.sleeps, []);
    assert.equal(f.calls[0].init.redirect, "manual");
  }
  const f = script(json(200, { status: "ok", version: "1" }));
  await client(f).c.health();
  assert.equal(f.calls[0].init.redirect, "manual", "the anonymous route too");
});

test("a 3xx with plumgate's x-request-id is Xoxoday's redirect relayed by plumgate: redirected, but the request arrived (notSent false)", async () => {
  const relayed = new Response(JSON.stringify({ message: "moved" }), {
    status: 302,
    headers: { "content-type": "application/json", "x-request-id": "rid-relayed", location: "https://elsewhere.example/graphql" },
  });
  const f = script(relayed, json(200, vouchers));
  const { c, clock } = client(f);
  await assert.rejects(c.getVouchers({ limit: 1, page: 1 }), (e) => {
    assert.deepEqual([e.status, e.code, e.source, e.notSent, e.requestId], [302, "redirected", "xoxoday", false, "rid-relayed"]);
    assert.deepEqual(e.body, { message: "moved" });
    assert.match(e.message, /plumgate relayed a redirect \(HTTP 302\) from upstream/);
    assert.doesNotMatch(e.message, /nothing reached plumgate/);
    return true;
  });
  assert.equal(f.calls.length, 1, "not sent again");
  assert.deepEqual(clock.sleeps, []);
  // The same 302 without x-request-id came from in front of plumgate: nothing reached it;
  // so did one with a proxy's own x-request-id and an HTML body (nginx's http-to-https rule).
  const proxies = [
    new Response(JSON.stringify({ message: "moved" }), { status: 302, headers: { "content-type": "application/json" } }),
    new Response("<html><body>301 Moved Permanently</body></html>", {
      status: 301,
      headers: { "content-type": "text/html", "x-request-id": "3f2a9c0d5e6b7a8f9c0d1e2f3a4b5c6d", location: "https://plumgate.example/v1/ops/getVouchers" },
    }),
  ];
  for (const answer of proxies) {
    await assert.rejects(client(script(answer)).c.getVouchers({ limit: 1, page: 1 }), (e) => {
      assert.deepEqual([e.code, e.source, e.notSent], ["redirected", "unknown", true]);
      assert.match(e.message, /nothing reached plumgate/);
      return true;
    });
  }
  // placeOrder is never answered with a redirect by plumgate (its ledger takes an upstream 3xx
  // for a lost answer): even with an x-request-id and JSON, one came from in front of it.
  const order = script(relayedTo("placeOrder"));
  const r = await client(order).c.placeOrder(ORDER);
  assert.deepEqual([r.status, r.error.code, r.error.source, r.error.notSent], ["refused", "redirected", "unknown", true]);
});

function relayedTo(op) {
  return new Response(JSON.stringify({ message: "moved" }), {
    status: 307,
    headers: { "content-type": "application/json", "x-request-id": "b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6", location: `https://plumgate.example/v1/ops/${op}` },
  });
}

test("placeOrder: a redirect (301 would come back as a GET, 308 resend the order elsewhere) is refused at once, not retried, nothing placed", async () => {
  for (const answer of [moved(301), moved(308), opaqueRedirect]) {
    const f = script(answer, json(200, placed()));
    const { c, clock } = client(f);
    const reports = [];
    const r = await c.placeOrder(ORDER, { onAttempt: (a) => reports.push(a) });
    assert.equal(r.status, "refused");
    assert.equal(r.retryable, false, "the same baseUrl gets the same redirect");
    assert.equal(r.error.code, "redirected");
    assert.equal(r.error.notSent, true);
    assert.equal(r.attempts, 1);
    assert.equal(f.calls.length, 1);
    assert.equal(f.calls[0].init.redirect, "manual");
    assert.deepEqual(clock.sleeps, []);
    assert.deepEqual(reports.map((a) => [a.code, a.next]), [["redirected", "done"]]);
  }
});

test("Node's own fetch: a 308 from the baseUrl is handed back, not followed, so the order and key reach nothing else", async () => {
  const { createServer } = await import("node:http");
  const seen = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? "-"}`);
    if (req.url.startsWith("/elsewhere")) return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(placed()));
    res.writeHead(308, { location: `/elsewhere${req.url}` }).end();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const c = new PlumgateClient({ baseUrl: `http://127.0.0.1:${server.address().port}`, key: KEY });
    const r = await c.placeOrder(ORDER);
    assert.deepEqual([r.status, r.error?.code, r.error?.status], ["refused", "redirected", 308]);
    await assert.rejects(c.getBalance(), { code: "redirected", status: 308 });
    assert.deepEqual(seen, [`POST /v1/ops/placeOrder Bearer ${KEY}`, `POST /v1/ops/getBalance Bearer ${KEY}`], "nothing went to the Location");
  } finally {
    server.close();
  }
});

test("an error's requestId is the x-request-id header, else the body's error.request_id", async () => {
  const bare = new Response(JSON.stringify(plumErr("forbidden", "x")), { status: 403, headers: { "content-type": "application/json" } });
  await assert.rejects(client(script(bare)).c.getFilters(), { code: "forbidden", requestId: "rid-body" });
  await assert.rejects(client(script(json(403, plumErr("forbidden", "x"), { "x-request-id": "rid-header" }))).c.getFilters(), { requestId: "rid-header" });
});

test("reads: the caller's abort during a backoff throws aborted, like an abort during a request", async () => {
  const ac = new AbortController();
  const clock = fakeClock();
  const sleep = clock.sleep;
  clock.sleep = (ms, signal) => { ac.abort(); return sleep(ms, signal); };
  const f = script(json(502, plumErr("upstream_error", "x")), json(200, vouchers));
  const { c } = client(f, clock);
  let duringBackoff;
  await assert.rejects(c.getVouchers({ limit: 1, page: 1 }, { signal: ac.signal }), (e) => {
    duringBackoff = e;
    return e instanceof PlumgateError;
  });
  assert.equal(f.calls.length, 1);
  const { c: c2 } = client(script("hang"), undefined, { clock: undefined });
  const ac2 = new AbortController();
  setTimeout(() => ac2.abort(), 20);
  let duringRequest;
  await assert.rejects(c2.getVouchers({ limit: 1, page: 1 }, { signal: ac2.signal }), (e) => { duringRequest = e; return true; });
  for (const e of [duringRequest, duringBackoff]) {
    assert.deepEqual([e.code, e.status, e.source, e.message], ["aborted", 0, "client", duringRequest.message]);
  }
});

test("getOrderDetails with sendMailToReceiver 1 is never retried (each attempt mails the voucher)", async () => {
  const f = script(json(502, plumErr("upstream_error", "x")));
  const { c } = client(f);
  await assert.rejects(c.getOrderDetails({ poNumber: "PO-1", sendMailToReceiver: 1 }), { code: "upstream_error" });
  assert.equal(f.calls.length, 1);
  const g = script(json(502, plumErr("upstream_error", "x")));
  const { c: c2 } = client(g);
  await assert.rejects(c2.getOrderDetails({ poNumber: "PO-1", sendMailToReceiver: 0 }), { code: "upstream_error" });
  assert.equal(g.calls.length, 3);
});

test("reads: HTTP 200 with status 0 is an upstream_failure; a time limit gives timeout", async () => {
  const { c } = client(script(json(200, { data: { getBalance: { status: 0 } } })));
  await assert.rejects(c.getBalance(), { code: "upstream_failure", status: 200 });
  const slow = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: script("hang"), retries: 0 });
  await assert.rejects(slow.getBalance({}, { timeoutMs: 100 }), { code: "timeout", status: 0 });
  const down = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: script(netError), clock: fakeClock() });
  await assert.rejects(down.getBalance(), { code: "network_error", status: 0, source: "client" });
});

test("reads: a timeout after a failed attempt names that failure (status, code, request id) and the call's limit", async () => {
  const first = json(504, plumErr("upstream_timeout", "Xoxoday did not answer"), { "x-request-id": "rid-504" });
  // Real time: the fake clock's backoff is instant, the second attempt hangs for what is left of the 1100 ms limit (at least the 1 s an attempt is given).
  const c = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: script(first, "hang"), backoff: { baseMs: 1, maxMs: 1 } });
  const e = await c.getBalance({}, { timeoutMs: 1100 }).then(() => assert.fail("answered"), (x) => x);
  assert.deepEqual([e.code, e.status, e.source, e.requestId, e.cause?.name], ["timeout", 0, "client", undefined, "AbortError"]);
  assert.match(e.message, /^no answer from plumgate within \d+ ms, what was left of the call's 1100 ms, on attempt 2 \(attempt 1: HTTP 504 upstream_timeout, request id rid-504\)$/);
  // A timeout on the first attempt says only that.
  const slow = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: script("hang"), retries: 0 });
  await assert.rejects(slow.getBalance({}, { timeoutMs: 100 }), { code: "timeout", message: "no answer from plumgate within 100 ms" });
  // After a connection error: "no answer", without a request id.
  const c2 = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: script(netError, "hang"), backoff: { baseMs: 1, maxMs: 1 } });
  await assert.rejects(c2.getBalance({}, { timeoutMs: 1100 }), { code: "timeout", message: /on attempt 2 \(attempt 1: no answer network_error\)$/ });
});

test("Xoxoday error shapes: OAuth error and rate-limit penaltySeconds", async () => {
  const { c } = client(script(json(401, { error: "invalid_token", error_description: "invalid/expired token" })));
  await assert.rejects(c.getBalance(), { code: "invalid_token", source: "xoxoday", message: "invalid/expired token" });
  const { c: c2 } = client(script(json(400, { errors: { message: "auth.request_limit_exceeded", penaltySeconds: "12" } })));
  await assert.rejects(c2.getBalance(), { code: "auth.request_limit_exceeded", retryAfter: 12 });
});

test("tokenStatus, refreshToken (never retried), health (503 body returned)", async () => {
  const status = { state: "fresh", access_token_expires_at: null, refresh_token_expires_at: null, last_refresh_at: null, refresh_count: 0, last_error: null };
  const f = script(json(200, status));
  const { c } = client(f);
  assert.deepEqual(await c.tokenStatus(), status);
  assert.equal(f.calls[0].url, `${BASE}/v1/token`);
  assert.equal(f.calls[0].init.method, "GET");

  const g = script(json(502, plumErr("upstream_error", "x")));
  const { c: c2 } = client(g);
  await assert.rejects(c2.refreshToken(), { code: "upstream_error" });
  assert.equal(g.calls.length, 1);
  assert.equal(g.calls[0].url, `${BASE}/v1/token/refresh`);

  const { c: c3 } = client(script(json(503, { status: "misconfigured", problems: ["GATEWAY_KEYS is not set"] })));
  assert.deepEqual(await c3.health(), { status: "misconfigured", problems: ["GATEWAY_KEYS is not set"] });
});

test("health: retried like the other reads, a 503 misconfigured answer returned at once, and never sent the key", async () => {
  const ok = { status: "ok", version: "1.2.3" };
  const f = script(json(502, plumErr("upstream_error", "x")), netError, json(200, ok));
  const { c, clock } = client(f);
  assert.deepEqual(await c.health(), ok);
  assert.equal(f.calls.length, 3, "two retries by default");
  assert.equal(clock.sleeps.length, 2);
  for (const call of f.calls) {
    assert.equal(call.url, `${BASE}/healthz`);
    assert.equal(call.init.method, "GET");
    assert.equal(call.headers.authorization, undefined, "/healthz takes no key, so none is sent");
  }

  const g = script(json(503, { status: "misconfigured", problems: ["GATEWAY_KEYS is not set"] }), json(200, ok));
  const { c: c2 } = client(g);
  assert.deepEqual(await c2.health(), { status: "misconfigured", problems: ["GATEWAY_KEYS is not set"] });
  assert.equal(g.calls.length, 1, "a misconfigured answer is the answer");

  const h = script(json(503, "<html>overloaded</html>"));
  const { c: c3 } = client(h);
  await assert.rejects(c3.health({ retries: 1 }), { code: "http_503", status: 503 });
  assert.equal(h.calls.length, 2, "a 503 that is not plumgate's health answer is retried");
});

test("caller keys and the audit trail: methods, paths, bodies; making a key is never retried", async () => {
  const key = { id: "billing-fn", source: "runtime", state: "active", scopes: ["catalog"], key: "pgk_" + "ab".repeat(24) };
  const f = script(json(201, key));
  const { c } = client(f);
  assert.deepEqual(await c.createKey({ id: "billing-fn", scopes: ["catalog"], limits: { order_amount_per_day: 500 } }), key);
  assert.equal(f.calls[0].url, `${BASE}/v1/keys`);
  assert.equal(f.calls[0].init.method, "POST");
  assert.deepEqual(f.calls[0].body, { id: "billing-fn", scopes: ["catalog"], limits: { order_amount_per_day: 500 } });

  const lost = script(json(502, plumErr("upstream_error", "x")), json(201, key));
  await assert.rejects(client(lost).c.createKey({ id: "a", scopes: ["*"] }), { code: "upstream_error" });
  assert.equal(lost.calls.length, 1, "a key shown once is never asked for twice");
  const rot = script(json(502, plumErr("upstream_error", "x")), json(200, key));
  await assert.rejects(client(rot).c.rotateKey("a b"), { code: "upstream_error" });
  assert.equal(rot.calls.length, 1);
  assert.equal(rot.calls[0].url, `${BASE}/v1/keys/a%20b/rotate`);
  assert.equal(rot.calls[0].init.body ?? undefined, undefined, "no body: the default grace");
  // Naming the key it replaces makes a rotation safe to send again.
  const current = "pgk_" + "cd".repeat(24);
  const named = script(json(502, plumErr("upstream_error", "x")), json(200, key));
  assert.deepEqual(await client(named).c.rotateKey("a", { currentKey: current, graceSecs: 60 }), key);
  assert.equal(named.calls.length, 2, "retried with current_key");
  assert.deepEqual(named.calls.map((x) => x.body), [{ grace_secs: 60, current_key: current }, { grace_secs: 60, current_key: current }]);
  const byDefault = script(json(502, plumErr("upstream_error", "x")), json(200, key));
  assert.deepEqual(await client(byDefault).c.rotateKey("a", { currentKey: current }), key);
  assert.equal(byDefault.calls.length, 2, "the default grace (24 h) outlasts any call: retried");
  // A grace that ends within the call's time limit (45 s by default): the
  // retry could come after the named key stopped working and be refused
  // (400: the lost attempt rotated it, its new key never seen). Not retried.
  for (const graceSecs of [0, 30, 45]) {
    const short = script(json(502, plumErr("upstream_error", "x")), json(400, plumErr("invalid_request", "current_key was replaced by the last rotation, its grace over: nothing was rotated now; if that answer was lost, rotate without current_key")));
    await assert.rejects(client(short).c.rotateKey("a", { currentKey: current, graceSecs }), { code: "upstream_error" });
    assert.equal(short.calls.length, 1, `grace ${graceSecs} s: not retried`);
  }
  const shortCall = script(json(502, plumErr("upstream_error", "x")), json(200, key));
  assert.deepEqual(await client(shortCall).c.rotateKey("a", { currentKey: current, graceSecs: 30, timeoutMs: 20_000 }), key);
  assert.equal(shortCall.calls.length, 2, "a 30 s grace outlasts a 20 s call: retried");
  const refused = script(json(400, plumErr("invalid_request", "current_key is neither the current key nor the previous one in its grace: nothing was rotated")), json(200, key));
  await assert.rejects(client(refused).c.rotateKey("a", { currentKey: current }), { code: "invalid_request" });
  assert.equal(refused.calls.length, 1, "a refusal is not retried");

  const g = script(json(502, plumErr("upstream_error", "x")), json(200, { keys: [key] }), json(200, key), json(200, key), json(200, key), json(200, { entries: [], next_cursor: null }));
  const { c: c2 } = client(g);
  assert.deepEqual(await c2.listKeys(), [key], "reads are retried");
  assert.equal(g.calls[1].init.method, "GET");
  await c2.setKeyLimits("billing-fn", { requests_per_minute: null });
  assert.deepEqual([g.calls[2].init.method, g.calls[2].url, g.calls[2].body], ["PATCH", `${BASE}/v1/keys/billing-fn`, { limits: { requests_per_minute: null } }]);
  await c2.revokeKey("billing-fn");
  assert.deepEqual([g.calls[3].init.method, g.calls[3].url], ["DELETE", `${BASE}/v1/keys/billing-fn`]);
  await c2.rotateKey("billing-fn", { graceSecs: 60 });
  assert.deepEqual(g.calls[4].body, { grace_secs: 60 });
  assert.deepEqual(await c2.audit({ key: "billing-fn", from: "2026-11-25T00:00:00+05:30", limit: 10, cursor: undefined }), { entries: [], next_cursor: null });
  assert.equal(g.calls[5].url, `${BASE}/v1/audit?key=billing-fn&from=2026-11-25T00%3A00%3A00%2B05%3A30&limit=10`);
  // A space (Python's str(datetime)) is sent as %20, not URLSearchParams' `+`,
  // which plumgate reads as a plus sign and refuses.
  await c2.audit({ from: "2026-11-25 10:00:00Z" });
  assert.equal(g.calls[6].url, `${BASE}/v1/audit?from=2026-11-25%2010%3A00%3A00Z`);
});

test("a read's own time limit or retry count that is not a number is refused before anything is sent", async () => {
  for (const opts of [{ timeoutMs: NaN }, { timeoutMs: -1 }, { retries: NaN }, { timeoutMs: "5000" }]) {
    const f = script(json(200, { keys: [] }));
    await assert.rejects(client(f).c.listKeys(opts), (e) => e.code === "client_error" && e.status === 0 && e.notSent === true && /nothing was sent/.test(e.message));
    assert.equal(f.calls.length, 0, JSON.stringify(opts));
  }
  const ok = script(json(200, { keys: [] }));
  assert.deepEqual(await client(ok).c.listKeys({ timeoutMs: 5000, retries: 0 }), []);
});

test("the key never appears in an error", async () => {
  const { c } = client(script(netError));
  const r = await c.placeOrder(ORDER, { timeoutMs: 3000 });
  assert.equal(r.status, "unknown");
  const text = JSON.stringify(r) + String(r.lastError) + r.lastError.stack;
  assert.ok(!text.includes(KEY));
});

test("a fetch error whose name, code or syscall quotes the key has it cut out there too", async () => {
  const { inspect } = await import("node:util");
  const quoting = async (_url, init) => {
    const auth = init.headers.authorization;
    throw new TypeError("fetch failed", { cause: Object.assign(new Error("no match"), { name: `MockError ${auth}`, code: `E_NO_MATCH ${auth}`, syscall: `match ${auth}` }) });
  };
  await assert.rejects(client(script(quoting)).c.getBalance({}, { retries: 0 }), (e) => {
    const inner = e.cause.cause;
    for (const shown of [inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e), String(inner), inner.name, inner.code, inner.syscall]) {
      assert.ok(!shown.includes(KEY), shown);
    }
    assert.deepEqual([inner.name, inner.code, inner.syscall], ["MockError Bearer <key>", "E_NO_MATCH Bearer <key>", "match Bearer <key>"]);
    return true;
  });
});

test("a fetch whose error quotes the request's headers (a mock's \"No match for request\") puts no key in a network_error, timeout or aborted error, nor in placeOrder's lastError", async () => {
  const { inspect } = await import("node:util");
  const quoting = async (_url, init) => { throw new Error(`No match for request ${JSON.stringify(init.headers)}`, { cause: Object.assign(new Error(`headers: ${init.headers.authorization}`), { code: "ECONNRESET" }) }); };
  const shows = (e) => [inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e), String(e), e.stack, String(e.cause), e.cause?.stack ?? ""];
  const none = (e) => {
    for (const shown of shows(e)) assert.ok(!shown.includes(KEY), shown);
    return true;
  };
  await assert.rejects(client(script(quoting)).c.getBalance({}, { retries: 0 }), (e) => e.code === "network_error" && none(e));
  // The cause still says what failed, and why, without the key.
  await assert.rejects(client(script(quoting)).c.getBalance({}, { retries: 0 }), (e) => {
    assert.match(e.cause.message, /^No match for request .*<key>/);
    assert.equal(e.cause.cause.code, "ECONNRESET");
    return true;
  });
  const r = await client(script(quoting)).c.placeOrder(ORDER, { timeoutMs: 3000 });
  assert.equal(r.status, "unknown");
  assert.equal(r.lastError.code, "network_error");
  none(r.lastError);
  // A fetch that fails with the headers when its signal aborts: the time
  // limit's timeout, and the caller's abort.
  const quotingOnAbort = (_url, init) => new Promise((_, reject) => {
    init.signal.addEventListener("abort", () => reject(new Error(`aborted ${JSON.stringify(init.headers)}`)), { once: true });
  });
  await assert.rejects(client(script(quotingOnAbort)).c.getBalance({}, { retries: 0, timeoutMs: 20 }), (e) => e.code === "timeout" && none(e));
  const abort = new AbortController();
  const pending = client(script(quotingOnAbort)).c.getBalance({}, { signal: abort.signal });
  abort.abort();
  await assert.rejects(pending, (e) => e.code === "aborted" && none(e));
});

test("rotateKey's currentKey, sent in the body, is cut out of an error whose fetch quotes the request body (a mock's \"No match for request\")", async () => {
  const { inspect } = await import("node:util");
  const currentKey = "pgk_current_rotated_key_9876543210";
  const quoting = async (_url, init) => { throw new Error(`No match for request ${init.body}`, { cause: Object.assign(new Error(`body: ${JSON.stringify(init.body)}`), { code: "ECONNRESET" }) }); };
  const shows = (e) => [inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e), String(e), e.stack, String(e.cause), e.cause.message, e.cause.cause?.message ?? ""];
  await assert.rejects(client(script(quoting)).c.rotateKey("k", { currentKey, retries: 0 }), (e) => {
    assert.equal(e.code, "network_error");
    for (const shown of shows(e)) assert.ok(!shown.includes(currentKey), shown);
    // The cause still says what failed, with the value cut out.
    assert.match(e.cause.message, /^No match for request .*"current_key":"<key>"/);
    return true;
  });
  // A key with characters JSON escapes: cut out in its escaped form too.
  const odd = 'pgk_odd"quote\\slash';
  await assert.rejects(client(script(quoting)).c.rotateKey("k", { currentKey: odd, retries: 0 }), (e) => {
    assert.ok(!e.cause.message.includes(JSON.stringify(odd).slice(1, -1)), e.cause.message);
    assert.ok(!JSON.stringify(e).includes("pgk_odd") && !String(e).includes("pgk_odd"));
    return true;
  });
  // An empty currentKey cuts nothing (rather than "<key>" between every character).
  await assert.rejects(client(script(quoting)).c.rotateKey("k", { currentKey: "", retries: 0 }), (e) => {
    assert.equal(e.cause.message, 'No match for request {"current_key":""}');
    return true;
  });
});

test("a baseUrl that is not an absolute http(s) URL, or a key that cannot go in a header, is refused by the constructor without echoing the key", () => {
  for (const baseUrl of ["127.0.0.1:8931", "localhost:8931", "plumgate.example.workers.dev", "ftp://plumgate.test", "https://user:secret@plumgate.test", "https://plumgate.test/?x=1", "/relative"]) {
    assert.throws(() => new PlumgateClient({ baseUrl, key: KEY }), (e) => e instanceof TypeError && /baseUrl/.test(e.message) && !e.message.includes("secret"), baseUrl);
  }
  for (const key of ["pgk_abc\u0000def", "pgk_abc\ndef", "pgk_abc\n", " pgk_abc", "pgk abc", "pgk_abc\tdef", "pgk_abcé", "pgk_abc\u007f"]) {
    assert.throws(() => new PlumgateClient({ baseUrl: BASE, key }), (e) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /key/);
      assert.ok(!e.message.includes("pgk_abc"), e.message);
      return true;
    }, JSON.stringify(key));
  }
  for (const baseUrl of ["http://127.0.0.1:8931", "https://plumgate.test/prefix/", "HTTPS://PLUMGATE.TEST"]) new PlumgateClient({ baseUrl, key: KEY });
});

test("a baseUrl on a port fetch refuses (the Fetch standard's bad ports) is refused by the constructor, not retried until placeOrder's deadline", async () => {
  for (const baseUrl of ["https://plumgate.test:6000", "http://127.0.0.1:10080", "https://plumgate.test:25/", "http://localhost:6667"]) {
    assert.throws(() => new PlumgateClient({ baseUrl, key: KEY }), (e) => e instanceof TypeError && /port/.test(e.message) && /bad port/.test(e.message), baseUrl);
    // A fetch of one's own that hands the request to the global one fails the same way.
    assert.throws(() => new PlumgateClient({ baseUrl, key: KEY, fetch: (u, i) => globalThis.fetch(u, i) }), TypeError, baseUrl);
  }
  // What fetch does there: fails before connecting, with no code to tell it from a lost answer.
  const { Transport } = await import("../dist/transport.js");
  await assert.rejects(new Transport("http://127.0.0.1:6000", KEY, (u, i) => globalThis.fetch(u, i)).send({ method: "GET", path: "/healthz", timeoutMs: 5000 }),
    (e) => e.code === "network_error" && e.notSent === false && /bad port/.test(e.cause?.cause?.message ?? ""));
  // Every port the constructor refuses is one this Node's fetch refuses.
  const refused = [];
  for (let port = 1; port <= 65535; port++) {
    try {
      new PlumgateClient({ baseUrl: `http://127.0.0.1:${port}`, key: KEY });
    } catch {
      refused.push(port);
    }
  }
  assert.equal(refused.length, 82, "the Fetch standard lists 82");
  for (const port of refused) {
    await assert.rejects(globalThis.fetch(`http://127.0.0.1:${port}/`), (e) => /bad port/.test(e.cause?.message ?? ""), String(port));
  }
  // Ports next to them, the default ones and the usual dev ones are taken.
  for (const baseUrl of ["https://plumgate.test:443", "https://plumgate.test:8443", "http://127.0.0.1:6001", "http://127.0.0.1:8787", "http://127.0.0.1:10081", "https://plumgate.test:26"]) {
    new PlumgateClient({ baseUrl, key: KEY });
  }
});

test("http:// is refused for a host off this machine (the key and orders would go in cleartext), unless the caller brings its own fetch", () => {
  const f = script(json(200, placed()));
  for (const baseUrl of ["http://plumgate.example.workers.dev", "http://plumgate.example.workers.dev:80/", "http://10.0.0.5:8787", "http://128.0.0.1", "http://localhost.example.com", "http://[::2]:8787"]) {
    assert.throws(() => new PlumgateClient({ baseUrl, key: KEY }), (e) => e instanceof TypeError && /https:\/\//.test(e.message) && /cleartext/.test(e.message), baseUrl);
  }
  // Loopback (wrangler dev, the sandbox), in the forms the URL parser normalises.
  for (const baseUrl of ["http://127.0.0.1:8787", "http://127.1:8787", "http://127.255.0.9", "http://localhost", "http://LOCALHOST:8787/", "http://[::1]:8787", "http://[0:0:0:0:0:0:0:1]"]) {
    new PlumgateClient({ baseUrl, key: KEY });
  }
  // A Service Binding's fetch: the host is only a label, nothing crosses a network.
  new PlumgateClient({ baseUrl: "http://plumgate.internal", key: KEY, fetch: f });
  new PlumgateClient({ baseUrl: "http://plumgate.example.workers.dev", key: KEY, fetch: f });
});

test("a request that cannot be built is a client_error: nothing sent, never retried, placeOrder refuses for good", async () => {
  // A BigInt is not JSON: the body cannot be serialised, so nothing can leave the process.
  const f = script(json(200, placed()));
  const { c, clock } = client(f);
  const reports = [];
  const r = await c.placeOrder({ ...ORDER, denomination: 25n }, { onAttempt: (a) => reports.push(a) });
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, false);
  assert.equal(r.error.code, "client_error");
  assert.equal(r.error.status, 0);
  assert.equal(r.error.source, "client");
  assert.equal(r.attempts, 0, "no attempt was sent");
  assert.deepEqual(reports, []);
  assert.equal(f.calls.length, 0);
  assert.deepEqual(clock.sleeps, []);

  const g = script(json(200, vouchers));
  const { c: c2 } = client(g);
  await assert.rejects(c2.getVouchers({ limit: 1n, page: 1 }), { code: "client_error", status: 0, source: "client" });
  assert.equal(g.calls.length, 0);
});

test("a header or URL the runtime refuses is a client_error whose cause does not hold the key", async () => {
  // Below the constructor's checks: the transport classifies a failure to
  // build the request itself, and scrubs the key from the runtime's message
  // (Node's reads `"Bearer pgk_…" is an invalid header value`).
  const { Transport } = await import("../dist/transport.js");
  const { inspect } = await import("node:util");
  const secret = "pgk_transport_secret_0123456789";
  for (const [baseUrl, key] of [[BASE, `${secret}\u0000`], ["127.0.0.1:8931", secret]]) {
    let sent = 0;
    const t = new Transport(baseUrl, key, (url, init) => { sent += 1; return globalThis.fetch(url, init); });
    await assert.rejects(t.send({ method: "POST", path: "/v1/ops/placeOrder", body: ORDER, timeoutMs: 1000 }), (e) => {
      assert.ok(e instanceof PlumgateError);
      assert.equal(e.code, "client_error");
      assert.equal(e.status, 0);
      for (const shown of [inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e), String(e), e.stack, String(e.cause), e.cause?.stack ?? ""]) {
        assert.ok(!shown.includes(secret), shown);
      }
      return true;
    });
    assert.equal(sent, 0, "fetch is not called with a request that cannot be built");
  }
});

test("constructor and placeOrder misuse are rejected", () => {
  assert.throws(() => new PlumgateClient({ baseUrl: "", key: KEY }), TypeError);
  assert.throws(() => new PlumgateClient({ baseUrl: BASE, key: "" }), TypeError);
  const { c } = client(script(json(200, placed())));
  return assert.rejects(c.operation("placeOrder", {}), TypeError);
});

// ------------------------------------------------------- review-client fixes

test("placeOrder: a time option that is not a number, or is negative, sends nothing and refuses (client_error), instead of retrying without end", async () => {
  // `Date.now() + context.getRemainingTimeInMillis - 2000` (the call's
  // parentheses forgotten) is NaN: every deadline comparison was false.
  const ctx = { getRemainingTimeInMillis: () => 5000 };
  for (const opts of [
    { deadline: Date.now() + ctx.getRemainingTimeInMillis - 2000 },
    { deadline: new Date("not a date") },
    { deadline: "1700000000000" },
    { timeoutMs: Number.NaN },
    { attemptTimeoutMs: Number.NaN },
    { minAttemptMs: -1 },
    // Negative, as the README says: not a deadline that has passed (timeout, retryable).
    { deadline: -5 },
    { deadline: new Date(-5) },
    { deadline: -Infinity },
    { timeoutMs: -1 },
    { attemptTimeoutMs: -1 },
    // `Number(process.env.UNSET)`: a NaN delay slept 0 ms and swallowed
    // Retry-After, so the retries came back to back until the deadline.
    { backoff: { maxMs: Number.NaN } },
    { backoff: { baseMs: -5 } },
    { backoff: { baseMs: Infinity } },
    { backoff: "fast" },
  ]) {
    const f = script(json(502, plumErr("upstream_error", "lost")));
    const { c, clock } = client(f);
    const reports = [];
    const r = await c.placeOrder({ ...ORDER, poNumber: "PO-NAN" }, { ...opts, onAttempt: (a) => reports.push(a) });
    assert.equal(r.status, "refused", JSON.stringify(opts));
    assert.equal(r.retryable, false);
    assert.equal(r.error.code, "client_error");
    assert.match(r.error.message, /nothing was sent/);
    assert.equal(r.poNumber, "PO-NAN");
    assert.equal(r.attempts, 0);
    assert.equal(f.calls.length, 0, "nothing sent");
    assert.deepEqual(reports, []);
    assert.deepEqual(clock.sleeps, []);
  }
  assert.throws(() => new PlumgateClient({ baseUrl: BASE, key: KEY, timeoutMs: Number.NaN }), TypeError);
  assert.throws(() => new PlumgateClient({ baseUrl: BASE, key: KEY, retries: -1 }), TypeError);
  assert.throws(() => new PlumgateClient({ baseUrl: BASE, key: KEY, backoff: { maxMs: Number.NaN } }), /backoff\.maxMs/);
  assert.throws(() => new PlumgateClient({ baseUrl: BASE, key: KEY, backoff: { baseMs: -1 } }), /backoff\.baseMs/);
  // A valid backoff is taken: zero means no pause of its own, Retry-After still holds.
  const f = script(json(409, plumErr("order_in_progress", "checking"), { "retry-after": "3" }), json(200, placed()));
  const { c, clock } = client(f, undefined, { backoff: { baseMs: 0, maxMs: 0 } });
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-ZERO" });
  assert.equal(r.status, "placed");
  assert.equal(f.calls.length, 2);
  assert.ok(clock.sleeps[0] >= 3000 && clock.sleeps[0] <= 3300, `slept ${clock.sleeps[0]} ms: Retry-After 3 s holds`);
});

test("a time limit beyond what a timer holds (Infinity, 30 days) is no limit, not an instant timeout", async () => {
  // Ends with the signal, as a real fetch does: a timer set to the limit as
  // given would fire at once and abort it.
  const slow = (body) => (_url, init) => new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(json(200, body)), 30);
    init.signal.addEventListener("abort", () => { clearTimeout(t); reject(new DOMException("aborted", "AbortError")); }, { once: true });
  });
  const balance = { data: { getBalance: { status: 1, data: { value: 5, currency: "USD" } } } };
  for (const timeoutMs of [Infinity, 30 * 86_400_000]) {
    const f = script(slow(balance));
    const c = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: f, timeoutMs });
    const r = await c.getBalance();
    assert.equal(r.data.value, 5, String(timeoutMs));
    assert.equal(f.calls.length, 1, "answered by the first attempt");
  }
  const f = script(slow(placed()));
  const c = new PlumgateClient({ baseUrl: BASE, key: KEY, fetch: f });
  const r = await c.placeOrder(ORDER, { timeoutMs: Infinity });
  assert.equal(r.status, "placed");
  assert.equal(r.attempts, 1);
});

test("operation('getOrderDetails') with sendMailToReceiver 1 is never retried either (each attempt mails the voucher)", async () => {
  for (const flag of [1, "1"]) {
    const f = script(json(502, plumErr("upstream_error", "x")));
    const { c } = client(f);
    await assert.rejects(c.operation("getOrderDetails", { poNumber: "PO-1", orderId: null, sendMailToReceiver: flag }), { code: "upstream_error" });
    assert.equal(f.calls.length, 1, JSON.stringify(flag));
  }
});

test("placeOrder: a 2xx whose JSON is no placeOrder answer at all (an array, {}, a proxy's JSON) is a lost answer, not Xoxoday's refusal", async () => {
  const a = (body) => ({ status: 200, json: body, headers: new Headers(), requestId: "r" });
  for (const body of [[], [placed()], {}, { ok: true }, { data: {} }, { data: { placeOrder: null } }, { data: { placeOrder: [] } }]) {
    assert.equal(judgeOrderAnswer(a(body), 0).kind, "retry", JSON.stringify(body));
  }
  const f = script(json(200, { message: "ok" }), json(200, placed(), { "x-plumgate-replayed": "true" }));
  const { c } = client(f);
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-ODD" });
  assert.equal(r.status, "placed");
  assert.equal(r.attempts, 2);
  assert.deepEqual(f.calls.map((x) => x.body.poNumber), ["PO-ODD", "PO-ODD"]);
});

test("placeOrder: an onAttempt callback that throws changes no outcome (a placed order is still reported placed)", async () => {
  let called = 0;
  const boom = () => { called += 1; throw new Error("metrics sink down"); };
  const { c } = client(script(json(200, placed())));
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-CB" }, { onAttempt: boom });
  assert.equal(r.status, "placed");
  assert.equal(r.order.orderId, 100001);
  assert.equal(called, 1, "the callback was called, and threw");
  const f = script(json(502, plumErr("upstream_error", "lost")), json(200, placed()));
  const { c: c2 } = client(f);
  const r2 = await c2.placeOrder({ ...ORDER, poNumber: "PO-CB2" }, { onAttempt: boom });
  assert.equal(r2.status, "placed");
  assert.equal(f.calls.length, 2);
  assert.equal(called, 3, "once per attempt, each throw ignored");
});

test("a platform fetch passed as is (`fetch: fetch`) is called unbound, as browsers and workerd require", async () => {
  // A browser's or workerd's fetch throws "Illegal invocation" (workerd
  // synchronously) when `this` is anything but the global object or unset.
  const f = script(json(200, placed()), json(200, { data: { getBalance: { status: 1, data: { value: 5, currency: "USD" } } } }));
  function platformFetch(url, init) {
    if (this !== undefined && this !== globalThis) throw new TypeError("Illegal invocation");
    return f(url, init);
  }
  const { c } = client(platformFetch);
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-UNBOUND" });
  assert.equal(r.status, "placed");
  assert.equal(r.attempts, 1);
  assert.equal((await c.getBalance()).data.value, 5);
});

test("a fetch that throws instead of returning a promise sent nothing: client_error, notSent, never retried", async () => {
  let calls = 0;
  const throwing = () => { calls += 1; throw new TypeError("Illegal invocation"); };
  const { c, clock } = client(throwing);
  const r = await c.placeOrder({ ...ORDER, poNumber: "PO-SYNC-THROW" });
  assert.equal(r.status, "refused");
  assert.equal(r.retryable, false);
  assert.equal(r.error.code, "client_error");
  assert.equal(r.error.notSent, true);
  assert.equal(r.attempts, 0, "nothing was sent");
  assert.equal(calls, 1, "not tried again");
  assert.deepEqual(clock.sleeps, []);
  calls = 0;
  await assert.rejects(c.getBalance(), { code: "client_error", status: 0, source: "client", notSent: true });
  assert.equal(calls, 1);
});

test("placeOrder: every attempt sends the body as it was at the call, though the caller changes a nested object after it", async () => {
  const f = script(netError, json(200, placed()));
  const { c } = client(f);
  const order = { ...ORDER, poNumber: "PO-NESTED", userMeta: { phone: "+15550100" } };
  const pending = c.placeOrder(order);
  order.userMeta.phone = "+15550199";
  order.quantity = 2;
  const r = await pending;
  assert.equal(r.status, "placed");
  assert.equal(f.calls.length, 2);
  assert.equal(f.calls[1].init.body, f.calls[0].init.body, "the retry's body is the first attempt's");
  assert.equal(f.calls[1].body.userMeta.phone, "+15550100");
  assert.equal(f.calls[1].body.quantity, 1);
});

test("reads: a 2xx without an object at data.<operation> (a proxy's JSON) is invalid_response from the client, not Xoxoday's failure", async () => {
  for (const body of [{ message: "ok" }, {}, { data: {} }, { data: { getBalance: null } }, { data: { getBalance: [] } }, { data: [] }]) {
    const { c } = client(script(json(200, body)));
    await assert.rejects(c.getBalance(), { code: "invalid_response", source: "client", status: 200 }, JSON.stringify(body));
  }
  // An object there whose status is not 1 is still Xoxoday's own failure.
  const { c } = client(script(json(200, { data: { getBalance: { status: 0 } } })));
  await assert.rejects(c.getBalance(), { code: "upstream_failure", source: "xoxoday" });
});

test("the words that say a placeOrder 5xx placed nothing are the ones the published document quotes", async () => {
  const { readFileSync } = await import("node:fs");
  const { NOTHING_PLACED } = await import("../dist/policy.js");
  const doc = JSON.parse(readFileSync(new URL("../../../crates/core/src/openapi.json", import.meta.url), "utf8"));
  const place = doc.paths["/v1/ops/placeOrder"].post.description;
  assert.ok(place.includes(`\`${NOTHING_PLACED}\``), "placeOrder's description quotes the words this client waits on");
});
