// The TypeScript client (clients/typescript, built by scripts/test.sh) against
// the running gateway and sandbox, with the product's default settings
// (Xoxoday's per-minute budgets lifted, as the harness does unless a test
// passes `XOXODAY_RATE_LIMITS: null`):
// every read, and placeOrder's retry contract where it matters, with lost
// answers made for real. A loopback proxy between the client and plumgate
// forwards a placeOrder, lets plumgate place it, then cuts the connection
// instead of relaying the answer; the sandbox's order faults lose or delay
// Xoxoday's answers behind plumgate. In every case the sandbox must end up
// with exactly one order per poNumber, and the client must never call an
// order that may exist "refused".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import { PlumgateClient } from "@plumgate/client";
import { startSandbox, startWorker, standardKeys, makeKey, leakScan, cleanup } from "./harness.mjs";

const keys = { ...standardKeys(), catalogOnly: makeKey("catalog-only", ["catalog"]) };
const HIGH_LIMITS = {
  getBalance: 100000, getFilters: 100000, getVouchers: 100000, placeOrder: 100000,
  getOrderDetails: 100000, getOrderHistory: 100000, paymentHistory: 100000,
};
const RUN = Date.now().toString(36);
const po = (name) => `cl-${RUN}-${name}`;
const ORDER = { productId: 10100, quantity: 1, denomination: 25, email: "alex@example.com" };
const today = new Date().toISOString().slice(0, 10);

let sandbox;
let w;
let proxy;

/**
 * A loopback HTTP proxy in front of plumgate. `state.dropNext` placeOrder
 * requests are forwarded whole and answered by plumgate, but their answer is
 * thrown away and the client's connection destroyed: the order exists, the
 * caller never hears of it.
 */
function lossyProxy(target) {
  const state = { dropNext: 0, seen: [] };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const drop = state.dropNext > 0 && req.url.startsWith("/v1/ops/placeOrder");
      if (drop) state.dropNext -= 1;
      const up = httpRequest(`${target}${req.url}`, { method: req.method, headers: req.headers }, (ures) => {
        const body = [];
        ures.on("data", (c) => body.push(c));
        ures.on("end", () => {
          state.seen.push({ path: req.url, status: ures.statusCode, dropped: drop });
          if (drop) return req.socket.destroy();
          res.writeHead(ures.statusCode, ures.headers);
          res.end(Buffer.concat(body));
        });
      });
      up.on("error", () => req.socket.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({
      url: `http://127.0.0.1:${server.address().port}`,
      state,
      close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
    }));
  });
}

const clientFor = (key, baseUrl = w.url) => new PlumgateClient({ baseUrl, key: key.key ?? key });
const counters = () => sandbox.counters();

before(async () => {
  sandbox = await startSandbox();
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS });
  w = await startWorker({ sandbox, keys });
  proxy = await lossyProxy(w.url);
  // Warm the token so the counts below are only the calls under test.
  await clientFor(keys.admin).getBalance();
});

after(async () => {
  // Workers stopped first: lines still in their pipes, or printed as
  // they stop, are scanned too.
  await proxy?.close();
  await w?.stop();
  const hits = await leakScan(sandbox, keys);
  await sandbox?.stop();
  if (w) cleanup(w.persistDir);
  assert.deepEqual(hits, [], "no token, secret or key in any log line");
});

test("reads: every operation, token status and health through the client, typed answers", async () => {
  const admin = clientFor(keys.admin);
  const h = await admin.health();
  assert.equal(h.status, "ok");

  const filters = await clientFor(keys.catalog).getFilters({ filterGroupCode: "country" });
  assert.equal(filters.data[0].filterGroupCode, "country");
  assert.ok(filters.data[0].filters.some((f) => f.filterValueCode === "usa"));

  const page = await clientFor(keys.catalog).getVouchers({ limit: 5, page: 1, filters: [{ key: "country", value: "usa" }] });
  assert.equal(page.data.length, 5);
  assert.ok(page.data.every((p) => p.currencyCode === "USD" && typeof p.name === "string"));
  assert.match(page.requestId, /^[0-9a-f]{32}$/);
  assert.equal(page.cache, "miss");
  const again = await clientFor(keys.catalog).getVouchers({ limit: 5, page: 1, filters: [{ key: "country", value: "usa" }] });
  assert.equal(again.cache, "hit");
  assert.deepEqual(again.data, page.data);

  const balance = await clientFor(keys.balance).getBalance();
  assert.equal(balance.data.currency, "USD");
  assert.ok(Number(balance.data.value) > 0);

  const history = await clientFor(keys.reader).getOrderHistory({ startDate: today, endDate: today });
  assert.ok(Array.isArray(history.data));
  const payments = await clientFor(keys.reader).paymentHistory({ startDate: "2020-01-01", endDate: today, limit: 5, page: 1 });
  assert.ok(payments.data.length >= 1, "the opening credit at least");
  assert.ok(payments.data.every((r) => r.adjusted_amount !== undefined && typeof r.date === "string"));
  // The spec's reading: the rows flat under `data`, no getPaymentReport.
  await sandbox.admin("/config", { payment_report_shape: "flat" });
  try {
    const flat = await clientFor(keys.reader).paymentHistory({ startDate: "2020-01-01", endDate: today, limit: 5, page: 1 });
    assert.ok(Array.isArray(flat.body.data), "Xoxoday's answer, passed on as it came");
    assert.deepEqual(flat.data, payments.data, "the same rows, read from either shape");
  } finally {
    await sandbox.admin("/config", { payment_report_shape: "wrapped" });
  }

  const token = await admin.tokenStatus();
  assert.equal(token.state, "fresh");
  assert.equal(typeof token.refresh_count, "number");

  // Caller keys and the audit trail, typed.
  const made = await admin.createKey({ id: "client-made", scopes: ["catalog"], limits: { requests_per_minute: 100 } });
  assert.match(made.key, /^pgk_[0-9a-f]{48}$/);
  const runtime = clientFor(made.key);
  assert.ok((await runtime.getVouchers({ limit: 1, page: 1 })).data.length === 1, "the new key works at once");
  assert.ok((await admin.listKeys()).some((k) => k.id === "client-made" && k.source === "runtime"));
  assert.equal((await admin.setKeyLimits("client-made", { requests_per_minute: null })).limits.requests_per_minute, null);
  const rotated = await admin.rotateKey("client-made", { graceSecs: 0 });
  assert.notEqual(rotated.key, made.key);
  assert.equal((await admin.revokeKey("client-made")).state, "revoked");
  await assert.rejects(clientFor(rotated.key).getVouchers({ limit: 1, page: 1 }), { status: 401, code: "unauthorized" });
  const trail = await admin.audit({ limit: 200 });
  assert.ok(Array.isArray(trail.entries) && "next_cursor" in trail);

  // A key without the scope: a typed error, thrown at once.
  await assert.rejects(clientFor(keys.catalog).getBalance(), (e) => {
    assert.equal(e.name, "PlumgateError");
    assert.equal(e.status, 403);
    assert.equal(e.code, "forbidden");
    assert.match(e.requestId, /^[0-9a-f]{32}$/);
    return true;
  });
  // Xoxoday's own 404, passed through: its errorId is the code.
  await assert.rejects(clientFor(keys.reader).getOrderDetails({ poNumber: po("nope") }), { status: 404, code: "PLE10016", source: "xoxoday" });
});

test("placeOrder: placed at once with a poNumber the client made; getOrderDetails finds exactly that order", async () => {
  const c0 = await counters();
  const r = await clientFor(keys.writer).placeOrder(ORDER, { timeoutMs: 30_000 });
  assert.equal(r.status, "placed", JSON.stringify(r));
  assert.match(r.poNumber, /^pg-/);
  assert.equal(r.attempts, 1);
  assert.ok(r.order.orderId > 0);
  assert.equal(r.order.vouchers.length, 1);
  const c1 = await counters();
  assert.equal(c1.orders, c0.orders + 1);
  const d = await clientFor(keys.reader).getOrderDetails({ poNumber: r.poNumber });
  assert.equal(d.data.orderId, r.order.orderId);
  // Sending the same order again replays the first answer: still one order.
  const again = await clientFor(keys.writer).placeOrder({ ...ORDER, poNumber: r.poNumber });
  assert.equal(again.status, "placed");
  assert.equal(again.replayed, true);
  assert.equal(again.order.orderId, r.order.orderId);
  assert.equal((await counters()).orders, c1.orders);
});

test("placeOrder: a lost answer (the connection cut after plumgate placed the order) is retried into exactly one order", async () => {
  const c0 = await counters();
  proxy.state.dropNext = 1;
  proxy.state.seen.length = 0;
  const reports = [];
  const r = await clientFor(keys.writer, proxy.url).placeOrder({ ...ORDER, poNumber: po("lost") }, { timeoutMs: 30_000, onAttempt: (a) => reports.push(a) });
  assert.equal(r.status, "placed", JSON.stringify(r));
  assert.equal(r.attempts, 2);
  assert.equal(r.replayed, true, "the second attempt got plumgate's stored answer");
  assert.deepEqual(reports.map((a) => [a.status, a.code, a.next]), [[0, "network_error", "retry"], [200, undefined, "done"]]);
  assert.deepEqual(proxy.state.seen.map((s) => [s.status, s.dropped]), [[200, true], [200, false]], "the first answer existed and was lost");
  const c1 = await counters();
  assert.equal(c1.orders, c0.orders + 1, "exactly one order");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1, "Xoxoday saw one placeOrder");
});

test("placeOrder: plumgate not listening (a refused connection, Node's real fetch): refused, retryable, nothing sent", async () => {
  // A loopback port that was just free: nothing listens there.
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  const r = await clientFor(keys.writer, `http://127.0.0.1:${port}`).placeOrder({ ...ORDER, poNumber: po("nobody") }, { timeoutMs: 5_000 });
  assert.equal(r.status, "refused", JSON.stringify(r));
  assert.equal(r.retryable, true);
  assert.equal(r.error.code, "network_error");
  assert.equal(r.error.notSent, true);
  assert.ok(r.attempts >= 2, `${r.attempts} attempts`);
});

test("placeOrder: Xoxoday creates the order then fails: plumgate reconciles, the client reports it placed", async () => {
  await sandbox.admin("/faults/order", { mode: "fail_after_create", count: 1 });
  const c0 = await counters();
  const r = await clientFor(keys.writer).placeOrder({ ...ORDER, poNumber: po("after") }, { timeoutMs: 30_000 });
  assert.equal(r.status, "placed", JSON.stringify(r));
  assert.equal(r.reconciled, true);
  assert.equal(r.attempts, 1);
  assert.equal((await counters()).orders, c0.orders + 1);
  await sandbox.admin("/faults/clear", {});
});

test("placeOrder: a failed or cancelled order, whether Xoxoday's own answer names it or plumgate reconciles it: refused with failedOrder, never placed", async () => {
  const writer = clientFor(keys.writer);
  const c0 = await counters();
  // Xoxoday answers at once, status 1, with the order's status failed.
  await sandbox.admin("/faults/order", { mode: "hang_after_create", count: 1, hang_ms: 1, order_status: "failed" });
  const own = await writer.placeOrder({ ...ORDER, poNumber: po("own-failed") }, { timeoutMs: 30_000 });
  assert.deepEqual([own.status, own.retryable, own.reconciled, own.failedOrder?.orderStatus, own.error?.body], ["refused", false, false, "failed", undefined], JSON.stringify(own));
  assert.match(own.error.message, /^Xoxoday holds order \d+ under this poNumber, and it failed or was cancelled \(orderStatus failed, deliveryStatus failed\)/);
  // Asked again (a function's next invocation): the same order, replayed.
  const again = await writer.placeOrder({ ...ORDER, poNumber: po("own-failed") }, { timeoutMs: 30_000 });
  assert.deepEqual([again.status, again.failedOrder?.orderId], ["refused", own.failedOrder.orderId], JSON.stringify(again));
  // The same kind of order learnt by a check after a 422 "failed to confirm".
  await sandbox.admin("/faults/order", { mode: "fail_after_create", count: 1, error_id: "PLE10011", order_status: "cancelled" });
  const found = await writer.placeOrder({ ...ORDER, poNumber: po("found-cancelled") }, { timeoutMs: 30_000 });
  assert.deepEqual([found.status, found.retryable, found.reconciled, found.failedOrder?.orderStatus], ["refused", false, true, "cancelled"], JSON.stringify(found));
  const c1 = await counters();
  assert.equal(c1.orders, c0.orders + 2, "one order each");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 2, "none sent twice");
  await sandbox.admin("/faults/clear", {});
});

test("placeOrder: Xoxoday fails before creating it: never refused, never re-sent; unknown until plumgate knows", async () => {
  await sandbox.admin("/faults/order", { mode: "fail_before_create", count: 1 });
  const c0 = await counters();
  const poNumber = po("before");
  const reports = [];
  const r = await clientFor(keys.writer).placeOrder({ ...ORDER, poNumber }, { timeoutMs: 20_000, onAttempt: (a) => reports.push(a) });
  const c1 = await counters();
  // getOrderDetails' "no such order" right after a 5xx proves nothing:
  // plumgate keeps the order pending (409 order_in_progress, for about
  // three minutes) and the client keeps asking until its deadline.
  assert.equal(r.status, "unknown", JSON.stringify(r));
  assert.equal(r.reason, "deadline");
  assert.equal(r.lastError.code, "order_in_progress");
  assert.ok(r.attempts >= 2, `asked again: ${r.attempts}`);
  assert.ok(reports.every((a) => a.status === 409 && a.code === "order_in_progress"), JSON.stringify(reports.map((a) => [a.status, a.code])));
  assert.equal(c1.orders, c0.orders, "no order");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1, "Xoxoday saw one placeOrder, however often the client asked");
  await sandbox.admin("/faults/clear", {});
});

test("placeOrder: an answer slower than the caller's deadline is unknown; the same poNumber later gets the one order", async () => {
  await sandbox.admin("/faults/order", { mode: "hang_after_create", count: 1, hang_ms: 8000 });
  const c0 = await counters();
  const poNumber = po("slow");
  const t0 = Date.now();
  const first = await clientFor(keys.writer).placeOrder({ ...ORDER, poNumber }, { deadline: t0 + 3000 });
  const took = Date.now() - t0;
  assert.equal(first.status, "unknown", JSON.stringify(first));
  assert.equal(first.reason, "deadline");
  assert.equal(first.lastError.code, "timeout");
  assert.ok(took >= 2900 && took < 4500, `gave up at the deadline, after ${took} ms`);
  // The function's next invocation asks again with the same poNumber.
  const second = await clientFor(keys.writer).placeOrder({ ...ORDER, poNumber }, { timeoutMs: 30_000 });
  assert.equal(second.status, "placed", JSON.stringify(second));
  assert.ok(second.replayed || second.reconciled, "answered from plumgate's ledger, not a second order");
  const c1 = await counters();
  assert.equal(c1.orders, c0.orders + 1, "exactly one order");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1, "Xoxoday saw one placeOrder");
  await sandbox.admin("/faults/clear", {});
});

test("placeOrder: refusals are reported at once, with code, status and request id", async () => {
  const c0 = await counters();
  const writer = clientFor(keys.writer);
  const bad = await writer.placeOrder({ ...ORDER, denomination: 26, poNumber: po("denom") });
  assert.equal(bad.status, "refused");
  assert.equal(bad.retryable, false);
  assert.equal(bad.error.code, "PLE10018");
  assert.equal(bad.error.status, 404);
  assert.equal(bad.error.source, "xoxoday");
  assert.match(bad.error.requestId, /^[0-9a-f]{32}$/);

  const invalid = await writer.placeOrder({ ...ORDER, quantity: 0 });
  assert.equal(invalid.status, "refused");
  assert.equal(invalid.error.code, "invalid_request");
  assert.match(invalid.error.message, /quantity/);

  const scope = await clientFor(keys.catalogOnly).placeOrder({ ...ORDER });
  assert.equal(scope.status, "refused");
  assert.equal(scope.error.code, "forbidden");

  const first = await writer.placeOrder({ ...ORDER, poNumber: po("conflict") });
  assert.equal(first.status, "placed");
  const conflict = await writer.placeOrder({ ...ORDER, quantity: 2, poNumber: po("conflict") });
  assert.equal(conflict.status, "refused");
  assert.equal(conflict.error.code, "idempotency_conflict");
  assert.equal(conflict.attempts, 1);
  assert.equal((await counters()).orders, c0.orders + 1, "only the first conflict order exists");
});

// Last: the penalty lasts a minute for placeOrder on this worker.
test("placeOrder: a rate-limit penalty longer than the deadline is refused, retryable, with Retry-After", async () => {
  await sandbox.admin("/config", { rate_limits: { placeOrder: 1 } });
  const writer = clientFor(keys.writer);
  const outcomes = [];
  for (const name of ["rl-1", "rl-2", "rl-3"]) {
    outcomes.push(await writer.placeOrder({ ...ORDER, poNumber: po(name) }, { timeoutMs: 10_000 }));
  }
  const limited = outcomes.filter((o) => o.status === "refused");
  assert.ok(limited.length >= 2, outcomes.map((o) => o.status).join(","));
  for (const o of limited) {
    assert.equal(o.retryable, true);
    assert.equal(o.error.status, 429);
    assert.equal(o.error.code, "rate_limited");
    assert.ok(o.error.retryAfter > 10, `Retry-After ${o.error.retryAfter}`);
    assert.equal(o.attempts, 1, "no attempt wasted inside the penalty");
  }
  const c = await counters();
  assert.equal(c.rate_limited_calls, 1, "plumgate stopped calling after Xoxoday's first penalty answer");
});
