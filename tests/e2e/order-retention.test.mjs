// placeOrder replay window (ORDER_RETENTION_SECS): inside it a repeated
// poNumber is replayed from the ledger; after it the ledger has forgotten the
// order and the request goes to Xoxoday again, which refuses the duplicate
// poNumber itself, so no second order is ever placed. The audit trail keeps
// its entries for the same time.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startSandbox, startWorker, standardKeys, call, leakScan, waitFor, tempDir, objectFiles, readStored } from "./harness.mjs";

const keys = standardKeys();
let sandbox;
const accounts = [];

after(async () => {
  const hits = [];
  for (const sb of [sandbox, ...accounts].filter(Boolean)) {
    hits.push(...(await leakScan(sb, keys)));
    await sb.stop();
  }
  assert.deepEqual(hits, []);
});

test("a replay inside the retention window; upstream decides after it", async () => {
  sandbox = await startSandbox();
  // A short window (6 s) so the test can wait it out; long enough that a
  // loaded machine reads both audit entries before they age out.
  const w = await startWorker({ sandbox, keys, vars: { ORDER_RETENTION_SECS: "6" } });
  try {
    const body = { productId: 10100, quantity: 1, denomination: 10, poNumber: "retention-1", email: "alex@example.com" };
    const first = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body });
    const firstAt = Date.now();
    assert.equal(first.status, 200, first.text);
    const replay = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body });
    assert.equal(replay.status, 200);
    assert.equal(replay.headers["x-plumgate-replayed"], "true");
    assert.equal((await sandbox.counters()).api_calls.placeOrder, 1);
    const trail = async () => (await call(w, "/v1/audit", { method: "GET", key: keys.admin })).json.entries.map((e) => e.request_id);
    const ids = [first.headers["x-request-id"], replay.headers["x-request-id"]];
    await waitFor(async () => (await trail()).filter((id) => ids.includes(id)).length === 2,
      { timeout: 4_000, interval: 100, what: "both attempts in the audit trail" });

    // After the window the ledger sends the request upstream again; the
    // sandbox (like Xoxoday) rejects the duplicate poNumber.
    await sleep(Math.max(0, firstAt + 6_500 - Date.now()));
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

/** When the object's alarm is due (epoch ms), from workerd's own table; undefined if none is set. */
async function alarmAt(file) {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file);
  try {
    // workerd keeps the alarm in nanoseconds under key 1.
    const st = db.prepare("SELECT value FROM _cf_METADATA WHERE key = 1");
    st.setReadBigInts(true);
    const row = st.get();
    return row ? Number(row.value / 1_000_000n) : undefined;
  } finally {
    db.close();
  }
}

test("by default a placed order's record is kept 30 days after its answer, then deleted by the alarm", async () => {
  // The test above waits out a window a user may set; this one reads what
  // the default schedules, as the ledger writes it (30 days cannot be
  // waited out, and the worker's clock is real).
  const sb = await startSandbox();
  accounts.push(sb);
  const dir = tempDir();
  const w = await startWorker({ sandbox: sb, keys, persistDir: dir });
  try {
    const body = { productId: 10100, quantity: 1, denomination: 10, poNumber: "retention-default", email: "alex@example.com" };
    const placed = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body });
    assert.equal(placed.status, 200, placed.text);
  } finally {
    await w.stop();
  }
  const [ledger] = (await objectFiles(dir, "OrderLedger")).filter((f) => f.name?.endsWith(":retention-default"));
  assert.ok(ledger, "the order's ledger object");
  const record = JSON.parse(await readStored(ledger.file, "order"));
  assert.equal(record.state, "done");
  assert.ok(record.done_at_ms > 0, JSON.stringify(record));
  assert.equal(await alarmAt(ledger.file), record.done_at_ms + 2_592_000 * 1000, "deletion due ORDER_RETENTION_SECS' default (2592000 s) after the answer");
});

test("a poNumber is one order per Xoxoday account: a worker switched to another account places it there", async () => {
  // Two sandboxes are two accounts (the account is the base URL and the
  // client id), as staging and production are; one persist dir is one
  // deployment whose configuration is switched from the first to the second.
  // (Fresh ones: a worker with a new persist dir starts from the bootstrap
  // refresh token, which a sandbox another worker refreshed has rotated.)
  const one = await startSandbox();
  accounts.push(one);
  const other = await startSandbox();
  accounts.push(other);
  const dir = tempDir();
  const body = { productId: 10100, quantity: 1, denomination: 10, poNumber: "switch-1", email: "alex@example.com" };
  const placed = async (sb) => {
    const w = await startWorker({ sandbox: sb, keys, persistDir: dir });
    try {
      return await call(w, "/v1/ops/placeOrder", { key: keys.writer, body });
    } finally {
      await w.stop();
    }
  };
  const first = await placed(one);
  assert.equal(first.status, 200, first.text);
  assert.equal(first.headers["x-plumgate-replayed"], undefined);

  const there = await placed(other);
  assert.equal(there.status, 200, there.text);
  assert.equal(there.headers["x-plumgate-replayed"], undefined, "not the first account's order replayed");
  assert.equal(there.json.data.placeOrder.status, 1);
  assert.equal((await other.counters()).api_calls.placeOrder, 1, "placed on the second account");

  // Back on the first account, the first order is replayed, not sent again.
  const back = await placed(one);
  assert.equal(back.status, 200, back.text);
  assert.equal(back.headers["x-plumgate-replayed"], "true");
  assert.equal(back.json.data.placeOrder.data.orderId, first.json.data.placeOrder.data.orderId);
  assert.equal((await one.counters()).api_calls.placeOrder, 1, "one order on the first account");

  const ledgers = (await objectFiles(dir, "OrderLedger")).map((f) => f.name).filter((n) => n?.endsWith(":switch-1")).sort();
  assert.equal(ledgers.length, 2, `one ledger per account: ${ledgers}`);
  for (const n of ledgers) assert.match(n, /^po:[0-9a-f]{16}:switch-1$/);
});
