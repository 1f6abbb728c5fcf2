// placeOrder replay window (ORDER_RETENTION_SECS): inside it a repeated
// poNumber is replayed from the ledger; after it the ledger has forgotten the
// order and the request goes to Xoxoday again, which refuses the duplicate
// poNumber itself, so no second order is ever placed. The audit trail keeps
// its entries for the same time.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startSandbox, startWorker, standardKeys, call, leakScan, waitFor } from "./harness.mjs";

const keys = standardKeys();
let sandbox;

after(async () => {
  const hits = await leakScan(sandbox, keys);
  await sandbox?.stop();
  assert.deepEqual(hits, []);
});

test("a replay inside the retention window; upstream decides after it", async () => {
  sandbox = await startSandbox();
  const w = await startWorker({ sandbox, keys, vars: { ORDER_RETENTION_SECS: "2" } });
  try {
    const body = { productId: 10100, quantity: 1, denomination: 10, poNumber: "retention-1", email: "alex@example.com" };
    const first = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body });
    assert.equal(first.status, 200, first.text);
    const replay = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body });
    assert.equal(replay.status, 200);
    assert.equal(replay.headers["x-plumgate-replayed"], "true");
    assert.equal((await sandbox.counters()).api_calls.placeOrder, 1);
    const trail = async () => (await call(w, "/v1/audit", { method: "GET", key: keys.admin })).json.entries.map((e) => e.request_id);
    const ids = [first.headers["x-request-id"], replay.headers["x-request-id"]];
    await waitFor(async () => (await trail()).filter((id) => ids.includes(id)).length === 2,
      { timeout: 1_500, interval: 100, what: "both attempts in the audit trail" });

    // After the window the ledger sends the request upstream again; the
    // sandbox (like Xoxoday) rejects the duplicate poNumber.
    await sleep(2500);
    const later = await waitFor(async () => {
      const r = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body: { ...body, quantity: 2 } });
      return r.json?.error?.code === "idempotency_conflict" ? null : r;
    }, { timeout: 15_000, interval: 500, what: "the ledger record to expire" });
    assert.equal(later.status, 409, later.text);
    assert.equal(later.json.errorId, "PLE10043", "Xoxoday's own duplicate-poNumber answer, passed through");
    assert.equal(later.headers["x-plumgate-replayed"], undefined);
    const c = await sandbox.counters();
    assert.equal(c.orders, 1, "still exactly one order");
    // Older than ORDER_RETENTION_SECS: gone from the trail too.
    assert.deepEqual((await trail()).filter((id) => ids.includes(id)), [], "the audit trail keeps entries ORDER_RETENTION_SECS");
  } finally {
    await w.stop();
  }
});
