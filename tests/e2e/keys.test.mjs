// Operator control (issue 19): caller keys made at runtime (POST /v1/keys),
// their revocation and rotation, per-key limits (requests_per_minute,
// order_amount_per_day, on runtime keys and on GATEWAY_KEYS entries) and the
// audit trail of placeOrder attempts (GET /v1/audit), against the built
// worker and the sandbox. Every interval is the product's own: the tests wait
// for the revocation window and for grace periods rather than shorten them
// (Xoxoday's per-minute budgets are lifted, as the harness does for every
// worker unless a test passes `XOXODAY_RATE_LIMITS: null`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { startSandbox, startWorker, standardKeys, makeKey, call, leakScan, waitFor, roomInDay, cleanup, HIGH_LIMITS, collectVoucherSecrets, voucherLeakScan, voucherScanLacks, capturedLogs, ownValue, objectFiles } from "./harness.mjs";

const keys = standardKeys();
// A GATEWAY_KEYS entry with limits: static keys carry the same object.
const cappedStatic = makeKey("capped-static", ["orders:write"]);
cappedStatic.entry.limits = { order_amount_per_day: 30, requests_per_minute: 1000 };
const allKeys = { ...keys, cappedStatic };
const made = []; // every runtime key shown, for the leak scan
const madeById = {}; // the first key made under each id
const vouchers = new Set();
let sandbox;
let w;

const KEY_SHAPE = /^pgk_[0-9a-f]{48}$/;
const sha = (s) => createHash("sha256").update(s).digest("hex");

before(async () => {
  sandbox = await startSandbox(["--quiet"]);
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS });
  w = await startWorker({ sandbox, keys: allKeys });
});

after(async () => {
  await w?.stop();
  const hits = await leakScan(sandbox, allKeys);
  const lacks = await voucherScanLacks(sandbox, vouchers);
  const voucherHits = voucherLeakScan(vouchers);
  await sandbox?.stop();
  if (w) cleanup(w.persistDir);
  assert.deepEqual(hits, [], "no static key, token or secret in any answer or log line");
  assert.equal(lacks, "", "the run's placed orders gave voucher codes and PINs to scan for");
  assert.deepEqual(voucherHits, [], "no voucher code in any log line or error answer");
  // A runtime key is in the answer that made it (and in the drop-in token
  // answers it asked for), never in a log line.
  const logged = made.filter((k) => capturedLogs.some((l) => !l.startsWith("[sandbox]") && (l.includes(k) || l.includes(sha(k)))));
  assert.deepEqual(logged, [], "no runtime key or its hash in any log line");
});

const admin = (path, opts = {}) => call(w, path, { key: keys.admin, ...opts });

/** POST /v1/keys; the new key is remembered for the leak scan. */
async function createKey(body) {
  const r = await admin("/v1/keys", { body });
  assert.equal(r.status, 201, r.text);
  assert.match(r.json.key, KEY_SHAPE);
  made.push(r.json.key);
  madeById[r.json.id] = r.json.key;
  return r.json;
}

const vouchersCall = (key) => call(w, "/v1/ops/getVouchers", { key, body: { limit: 1, page: 1 } });
// Never cached at the edge: every call it lets through reaches Xoxoday.
const HISTORY = { startDate: "2020-01-01", endDate: "2030-12-31", limit: 1, page: 1 };
const historyCall = (key) => call(w, "/v1/ops/getOrderHistory", { key, body: HISTORY });
const dropInHistory = (key) => call(w, "/chef/v1/oauth/api", {
  key, body: { query: "plumProAPI.mutation.getOrderHistory", tag: "plumProAPI", variables: { data: HISTORY } },
});
const dropInVouchers = (key) => call(w, "/chef/v1/oauth/api", {
  key, body: { query: "plumProAPI.mutation.getVouchers", tag: "plumProAPI", variables: { data: { limit: 1, page: 1 } } },
});
let poSeq = 0;
const po = (prefix) => `${prefix}-${Date.now().toString(36)}-${++poSeq}`;
async function order(key, poNumber, denomination, extra = {}) {
  const r = await call(w, "/v1/ops/placeOrder", {
    key, body: { productId: 10100, quantity: 1, denomination, poNumber, email: "winner@example.com", ...extra },
  });
  if (r.status === 200) collectVoucherSecrets(r.json, vouchers);
  return r;
}
const placed = (r) => r.status === 200 && r.json?.data?.placeOrder?.status === 1;
/** A spend cap's refusal with placed orders in the way: until the next UTC day. */
function assertUntilMidnight(r) {
  const midnight = Math.ceil((Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1) - Date.now()) / 1000);
  assert.ok(Math.abs(Number(r.headers["retry-after"]) - midnight) <= 5, `Retry-After ${r.headers["retry-after"]} vs ${midnight}`);
  assert.match(r.json.error.message, / s \(the next UTC day\)/);
}
const listKeys = async () => {
  const r = await admin("/v1/keys", { method: "GET" });
  assert.equal(r.status, 200, r.text);
  return r.json.keys;
};
const keyView = async (id) => (await listKeys()).find((k) => k.id === id);
/** The audit entries (all pages) matching `query`. */
async function auditEntries(query = "") {
  const out = [];
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    const q = [query, cursor ? `cursor=${cursor}` : ""].filter(Boolean).join("&");
    const r = await admin(`/v1/audit${q ? `?${q}` : ""}`, { method: "GET" });
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.entries);
    cursor = r.json.next_cursor;
    if (!cursor) return out;
  }
  throw new Error("too many audit pages");
}

/** Edit the stopped worker's key registry storage: `edit(db, today's UTC day number)`. */
async function editRegistry(dir, edit) {
  const [registry] = await objectFiles(dir, "KeyRegistry");
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(registry.file);
  try {
    edit(db, Math.floor(Date.now() / 86_400_000));
  } finally {
    db.close();
  }
}

test("a runtime key: shown once, works at once for its scopes only, listed without its secret", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const before = (await sandbox.counters()).api_calls.getOrderHistory ?? 0;
  const k = await createKey({ id: "billing-fn", scopes: ["catalog", "orders:read"], limits: { requests_per_minute: 1000 } });
  assert.equal(k.id, "billing-fn");
  assert.equal(k.source, "runtime");
  assert.equal(k.state, "active");
  assert.deepEqual(k.scopes, ["catalog", "orders:read"]);
  assert.ok(Math.abs(Date.parse(k.created_at) - Date.now()) < 60_000);
  assert.equal(k.expires_at, null);
  assert.deepEqual(k.limits, { requests_per_minute: 1000, order_amount_per_day: null });
  assert.deepEqual(Object.keys(k.usage), ["day", "requests", "orders", "amount", "reserved"]);

  const ok = await historyCall(k.key);
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await vouchersCall(k.key)).status, 200);
  const denied = await call(w, "/v1/ops/getBalance", { key: k.key, body: {} });
  assert.equal(denied.status, 403);
  assert.match(denied.json.error.message, /`balance` scope/);
  // Everywhere a key works: the drop-in base and its token endpoints.
  assert.equal((await dropInHistory(k.key)).status, 200);
  const validated = await call(w, "/chef/v1/oauth/token", { method: "GET", key: k.key });
  assert.equal(validated.status, 200, validated.text);
  const refreshed = await call(w, "/chef/v1/oauth/token/user", {
    body: { grant_type: "refresh_token", refresh_token: k.key, client_id: "x", client_secret: "y" },
  });
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.equal((await sandbox.counters()).api_calls.getOrderHistory - before, 2, "both calls reached Xoxoday");

  // Listed with the GATEWAY_KEYS keys, never with a secret or its hash.
  const list = await admin("/v1/keys", { method: "GET" });
  assert.ok(!list.text.includes(k.key) && !list.text.includes(sha(k.key)), "no key and no hash in the list");
  for (const s of Object.values(allKeys)) assert.ok(!list.text.includes(s.sha256));
  const byId = Object.fromEntries(list.json.keys.map((x) => [x.id, x]));
  assert.equal(byId.admin.source, "static");
  assert.equal(byId.admin.created_at, null);
  assert.deepEqual(byId["capped-static"].limits, { requests_per_minute: 1000, order_amount_per_day: 30 });
  assert.equal(byId["billing-fn"].source, "runtime");
  assert.ok(list.json.keys.findIndex((x) => x.id === "billing-fn") > list.json.keys.findIndex((x) => x.id === "capped-static"), "static keys first");
  // Usage: every request the key made (the drop-in token endpoints only
  // echo the key and are not counted), reported within seconds.
  const used = await waitFor(async () => {
    const v = await keyView("billing-fn");
    return v.usage.requests === 4 ? v : null;
  }, { what: "four requests counted" });
  assert.ok(Date.parse(used.last_used_at) >= Date.parse(k.created_at));
  assert.equal(used.usage.day, new Date().toISOString().slice(0, 10));
});

test("a new key is never refused to a burst of its first requests; unknown keys in a burst are refused", async () => {
  // Making a key throws this isolate's copy away: the burst's first request
  // syncs, the others wait for that sync instead of being refused beside it.
  for (let round = 0; round < 3; round++) {
    const k = await createKey({ id: `burst-${round}`, scopes: ["orders:read"] });
    const answers = await Promise.all(Array.from({ length: 16 }, () => historyCall(k.key)));
    assert.deepEqual(answers.map((a) => a.status), Array(16).fill(200), answers.map((a) => a.text.slice(0, 160)).join("\n"));
  }
  // Strangers of the runtime shape: 401 each, however many at once.
  await sleep(1_100);
  const strangers = Array.from({ length: 8 }, (_, i) => `pgk_${i.toString(16).padStart(48, "0")}`);
  const refused = await Promise.all(strangers.map((key) => historyCall(key)));
  assert.deepEqual(refused.map((a) => a.status), Array(8).fill(401));
  for (const r of refused) assert.equal(r.json.error.code, "unauthorized");
});

test("creating a key: every input is checked, with a 400 that names it; admin scope only", async () => {
  const count = (await listKeys()).length;
  for (const [body, says] of [
    [{ scopes: ["catalog"] }, /id is required/],
    [{ id: "bad id", scopes: ["catalog"] }, /id must be 1-64 characters/],
    // A URL path names "." and ".." segments' directories: such a key could never be revoked.
    [{ id: "..", scopes: ["catalog"] }, /and not '\.' or '\.\.'/],
    [{ id: ".", scopes: ["catalog"] }, /id must be/],
    [{ id: "x".repeat(65), scopes: ["catalog"] }, /id must be/],
    [{ id: "n1" }, /scopes is required/],
    [{ id: "n1", scopes: [] }, /scopes must be a non-empty array/],
    [{ id: "n1", scopes: ["catalogue"] }, /unknown scope/],
    [{ id: "n1", scopes: ["catalog", "catalog"] }, /scope twice/],
    [{ id: "n1", scopes: ["catalog"], expires_at: "2020-01-01T00:00:00Z" }, /expires_at must be in the future/],
    [{ id: "n1", scopes: ["catalog"], expires_at: "next week" }, /expires_at must be an RFC 3339/],
    [{ id: "n1", scopes: ["catalog"], limits: { requests_per_minute: 0 } }, /limits\.requests_per_minute/],
    [{ id: "n1", scopes: ["catalog"], limits: { order_amount_per_day: -5 } }, /limits\.order_amount_per_day/],
    [{ id: "n1", scopes: ["catalog"], limits: { request_per_minute: 5 } }, /limits has an unknown member; it may have only requests_per_minute and order_amount_per_day/],
    [{ id: "n1", scopes: ["catalog"], sha256: "0".repeat(64) }, /unknown member; it may have only id, scopes, expires_at, limits/],
    [{ id: "billing-fn", scopes: ["catalog"] }, /id is already used/],
    [{ id: "admin", scopes: ["catalog"] }, /id is already used/],
    [[], /must be a JSON object/],
  ]) {
    const r = await admin("/v1/keys", { body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.code, "invalid_request");
    assert.match(r.json.error.message, says, JSON.stringify(body));
  }
  const broken = await admin("/v1/keys", { raw: "{not json", headers: { "content-type": "application/json" } });
  assert.equal(broken.status, 400);
  assert.equal(broken.json.error.code, "invalid_json");
  // A member named twice (JSON allows it; serde_json would keep the last,
  // a wider scope or no cap, unseen by whoever reads the first): refused,
  // in a new key, a PATCH and a rotation alike, and nothing changes.
  const json = { "content-type": "application/json" };
  const twice = [
    ["POST", "/v1/keys", '{"id":"twice","scopes":["catalog"],"scopes":["*"]}'],
    ["POST", "/v1/keys", '{"id":"twice","scopes":["orders:write"],"limits":{"order_amount_per_day":5,"order_amount_per_day":null}}'],
    ["PATCH", "/v1/keys/billing-fn", '{"limits":{"requests_per_minute":5,"requests_per_minute":null}}'],
    ["POST", "/v1/keys/billing-fn/rotate", '{"grace_secs":60,"grace_secs":0}'],
  ];
  // What a PATCH or a rotation would change (usage may move meanwhile).
  const settings = async () => {
    const { limits, scopes, state, rotated_at, previous_key_expires_at } = (await listKeys()).find((x) => x.id === "billing-fn");
    return { limits, scopes, state, rotated_at, previous_key_expires_at };
  };
  const before = await settings();
  assert.equal(before.limits.requests_per_minute, 1000);
  for (const [method, path, raw] of twice) {
    const r = await admin(path, { method, raw, headers: json });
    assert.equal(r.status, 400, `${method} ${path} ${raw}: ${r.text}`);
    assert.equal(r.json.error.code, "invalid_request");
    assert.match(r.json.error.message, /names a member twice in one object .*nothing was changed/);
  }
  assert.deepEqual(await settings(), before, "billing-fn unchanged: its limit kept, not rotated");
  assert.equal((await listKeys()).length, count, "nothing was made");
  // Scope admin only; no key, no answer.
  for (const k of [keys.catalog, keys.writer]) {
    for (const [method, path] of [["GET", "/v1/keys"], ["POST", "/v1/keys"], ["DELETE", "/v1/keys/billing-fn"], ["PATCH", "/v1/keys/billing-fn"], ["POST", "/v1/keys/billing-fn/rotate"], ["GET", "/v1/audit"]]) {
      const r = await call(w, path, { method, key: k, body: method === "GET" || method === "DELETE" ? undefined : {} });
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(r.json.error.message, /`admin` scope/);
    }
  }
  const anonymous = await call(w, "/v1/keys", { method: "GET" });
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers["www-authenticate"], "Bearer");
  const wrongMethod = await admin("/v1/keys", { method: "PUT", body: {} });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.allow, "GET, HEAD, POST");
  // HEAD wherever GET is answered: the status and headers, no body; the key still checked.
  for (const path of ["/v1/keys", "/v1/token", "/v1/audit?limit=1"]) {
    const head = await admin(path, { method: "HEAD" });
    assert.deepEqual([head.status, head.text], [200, ""], path);
    assert.match(head.headers["content-type"], /^application\/json/, path);
    assert.match(head.headers["x-request-id"], /^[0-9a-f]{32}$/, path);
    assert.equal((await call(w, path, { method: "HEAD" })).status, 401, `${path} without a key`);
    assert.equal((await call(w, path, { method: "HEAD", key: keys.catalog })).status, 403, `${path} without the admin scope`);
  }
});

test("revoked: refused at once by the isolate that revoked it, on every route; static keys only by a redeploy", async () => {
  const k = await createKey({ id: "to-revoke", scopes: ["catalog"] });
  assert.equal((await vouchersCall(k.key)).status, 200);
  const r1 = await admin("/v1/keys/to-revoke", { method: "DELETE" });
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.json.state, "revoked");
  assert.ok(r1.json.revoked_at);
  assert.equal(r1.json.key, undefined, "no key in the answer");
  const r2 = await admin("/v1/keys/to-revoke", { method: "DELETE" });
  assert.equal(r2.json.revoked_at, r1.json.revoked_at, "revoking again keeps the first instant");
  // The isolate that revoked it drops its copy of the key directory at
  // once (src/callers.rs), and wrangler dev runs one isolate: no wait. The
  // 8 s window of other isolates' copies is the core's (keys::MAX_AGE_MS,
  // host tests), which no local run can show.
  const refused = await vouchersCall(k.key);
  assert.equal(refused.status, 401, refused.text);
  assert.equal(refused.json.error.code, "unauthorized");
  const dropIn = await dropInVouchers(k.key);
  assert.equal(dropIn.status, 401);
  assert.equal(dropIn.json.errorId, "PLUMGATE_UNAUTHORIZED");
  assert.equal((await call(w, "/chef/v1/oauth/token", { method: "GET", key: k.key })).json.error, "invalid_token");
  const grant = await call(w, "/chef/v1/oauth/token/user", { body: { grant_type: "refresh_token", refresh_token: k.key } });
  assert.equal(grant.status, 400);
  assert.equal(grant.json.error, "invalid_grant");
  // A revoked key cannot be rotated back to life, and its id stays taken.
  const rot = await admin("/v1/keys/to-revoke/rotate", { body: {} });
  assert.equal(rot.status, 400);
  assert.match(rot.json.error.message, /revoked/);
  // Nor given limits that could never apply.
  const patched = await admin("/v1/keys/to-revoke", { method: "PATCH", body: { limits: { requests_per_minute: 5 } } });
  assert.equal(patched.status, 400, patched.text);
  assert.match(patched.json.error.message, /revoked: only an active key can have its limits changed/);
  assert.equal((await admin("/v1/keys", { body: { id: "to-revoke", scopes: ["catalog"] } })).status, 400);
  assert.equal((await keyView("to-revoke")).state, "revoked");

  // GATEWAY_KEYS keys: static, changed only by a redeploy.
  for (const [method, path, body] of [["DELETE", "/v1/keys/catalog-fn"], ["POST", "/v1/keys/catalog-fn/rotate", {}], ["PATCH", "/v1/keys/catalog-fn", { limits: {} }]]) {
    const r = await admin(path, { method, body });
    assert.equal(r.status, 400, `${method} ${path}`);
    assert.match(r.json.error.message, /GATEWAY_KEYS/);
  }
  assert.equal((await vouchersCall(keys.catalog)).status, 200, "the static key still works");
  // Unknown ids: 404.
  for (const path of ["/v1/keys/no-such-key", "/v1/keys/bad%20id"]) {
    const r = await admin(path, { method: "DELETE" });
    assert.equal(r.status, 404, path);
    assert.equal(r.json.error.code, "not_found");
  }
});

test("rotation: the new key works at once, the previous one through its grace period, then stops", async () => {
  const k = await createKey({ id: "rotating", scopes: ["catalog"] });
  const started = Date.now();
  const r = await admin("/v1/keys/rotating/rotate", { body: { grace_secs: 5 } });
  assert.equal(r.status, 200, r.text);
  made.push(r.json.key);
  assert.match(r.json.key, KEY_SHAPE);
  assert.notEqual(r.json.key, k.key);
  assert.deepEqual(r.json.scopes, ["catalog"]);
  const until = Date.parse(r.json.previous_key_expires_at);
  assert.ok(until >= started + 4_000 && until <= Date.now() + 5_000, r.json.previous_key_expires_at);
  assert.equal((await vouchersCall(r.json.key)).status, 200, "the new key");
  assert.equal((await vouchersCall(k.key)).status, 200, "the previous key, in its grace period");
  await sleep(until + 1_000 - Date.now());
  assert.equal((await vouchersCall(k.key)).status, 401, "grace over");
  assert.equal((await vouchersCall(r.json.key)).status, 200);

  // The default grace is 24 hours; rotating again ends it at once.
  const second = await admin("/v1/keys/rotating/rotate");
  assert.equal(second.status, 200, second.text);
  made.push(second.json.key);
  const grace = Date.parse(second.json.previous_key_expires_at) - Date.parse(second.json.rotated_at);
  assert.equal(grace, 86_400_000, "the documented default: 24 h");
  assert.equal((await vouchersCall(r.json.key)).status, 200, "inside the 24 h grace");
  const third = await admin("/v1/keys/rotating/rotate", { body: { grace_secs: 3600 } });
  made.push(third.json.key);
  assert.equal((await vouchersCall(r.json.key)).status, 401, "two rotations back: stopped");
  assert.equal((await vouchersCall(second.json.key)).status, 200);
  assert.equal((await vouchersCall(third.json.key)).status, 200);
  for (const body of [{ grace_secs: -1 }, { grace_secs: 604_801 }, { grace: 5 }]) {
    assert.equal((await admin("/v1/keys/rotating/rotate", { body })).status, 400, JSON.stringify(body));
  }
});

test("rotation naming its key (current_key) can be sent again after a lost answer: the original key, and the lost answer's, keep its grace", async () => {
  const k = await createKey({ id: "rotate-retry", scopes: ["catalog"] });
  const body = { current_key: k.key, grace_secs: 3600 };
  // The first answer is lost on its way back (the key it carried never seen).
  const lost = await admin("/v1/keys/rotate-retry/rotate", { body });
  assert.equal(lost.status, 200, lost.text);
  made.push(lost.json.key);
  // Sent again, the same body: the unseen key is replaced, the original
  // keeps the grace the first attempt gave it.
  const again = await admin("/v1/keys/rotate-retry/rotate", { body: { ...body, grace_secs: 60 } });
  assert.equal(again.status, 200, again.text);
  made.push(again.json.key);
  assert.equal(again.json.previous_key_expires_at, lost.json.previous_key_expires_at, "the first attempt's grace stands");
  assert.equal((await vouchersCall(k.key)).status, 200, "the original key, still in its grace");
  assert.equal((await vouchersCall(again.json.key)).status, 200, "the key of the answer that arrived");
  // The first answer may have arrived after all (two places rotating, or a
  // retry that raced its first attempt): its key works through the grace too.
  assert.equal((await vouchersCall(lost.json.key)).status, 200, "the first answer's key, in the grace");
  // A key it never had, or the first answer's key once replaced: refused, nothing changes.
  for (const wrong of [lost.json.key, "pgk_not_a_key_of_this_id_0123456789"]) {
    const r = await admin("/v1/keys/rotate-retry/rotate", { body: { current_key: wrong } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /^current_key is neither/);
  }
  assert.equal((await vouchersCall(again.json.key)).status, 200, "refusals changed nothing");
  assert.equal((await vouchersCall(k.key)).status, 200);
  for (const bad of [{ current_key: "" }, { current_key: 5 }]) {
    assert.equal((await admin("/v1/keys/rotate-retry/rotate", { body: bad })).status, 400, JSON.stringify(bad));
  }
  // Naming the current key: an ordinary rotation, which ends the original's grace.
  const next = await admin("/v1/keys/rotate-retry/rotate", { body: { current_key: again.json.key } });
  assert.equal(next.status, 200, next.text);
  made.push(next.json.key);
  assert.equal((await vouchersCall(k.key)).status, 401, "two rotations back: stopped");
  assert.equal((await vouchersCall(lost.json.key)).status, 401, "the key the resend replaced: stopped with it");
  assert.equal((await vouchersCall(again.json.key)).status, 200, "now the previous key, in its grace");
  assert.equal((await vouchersCall(next.json.key)).status, 200);
  const [entry] = (await admin("/v1/keys", { method: "GET" })).json.keys.filter((x) => x.id === "rotate-retry");
  assert.equal(entry.rotated_at, next.json.rotated_at);
});

test("expires_at: a key stops working at its expiry; the drop-in token endpoints say when", async () => {
  // 10 s: room for the calls below on a loaded machine, then waited out.
  const expires = new Date(Date.now() + 10_000).toISOString();
  const k = await createKey({ id: "short-lived", scopes: ["catalog"], expires_at: expires });
  assert.equal(k.expires_at, expires);
  assert.equal((await vouchersCall(k.key)).status, 200);
  // A Xoxoday client schedules its next token call from these: never past the key's end.
  const refreshed = await call(w, "/chef/v1/oauth/token/user", { body: { grant_type: "refresh_token", refresh_token: k.key } });
  const validated = await call(w, "/chef/v1/oauth/token", { method: "GET", key: { key: k.key } });
  for (const t of [refreshed, validated]) {
    assert.equal(t.status, 200, t.text);
    assert.ok(t.json.expires_in >= 1 && t.json.expires_in <= 10, `expires_in ${t.json.expires_in}`);
    assert.ok(Number(t.json.access_token_expiry) <= Date.parse(expires), t.json.access_token_expiry);
  }
  assert.ok(Number(refreshed.json.refresh_token_expiry) <= Date.parse(expires), refreshed.json.refresh_token_expiry);
  await sleep(Date.parse(expires) + 500 - Date.now());
  assert.equal((await vouchersCall(k.key)).status, 401);
  assert.equal((await keyView("short-lived")).state, "expired");
});

/** Wait for a new minute when less than `secs` are left of this one. */
async function roomInMinute(secs) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < secs * 1000) await sleep(left + 200);
}

test("requests_per_minute: over it, 429 quota_exceeded until the next minute; PATCH changes it", async () => {
  const k = await createKey({ id: "rpm-3", scopes: ["orders:read"], limits: { requests_per_minute: 3 } });
  await roomInMinute(20);
  const upstream = (await sandbox.counters()).api_calls.getOrderHistory;
  for (let i = 0; i < 3; i++) assert.equal((await historyCall(k.key)).status, 200, `call ${i + 1}`);
  const over = await historyCall(k.key);
  assert.equal(over.status, 429, over.text);
  assert.equal(over.json.error.code, "quota_exceeded");
  assert.match(over.json.error.message, /requests_per_minute limit \(3\)/);
  const retry = Number(over.headers["retry-after"]);
  assert.ok(retry >= 1 && retry <= 60 && retry >= Math.floor((60_000 - (Date.now() % 60_000)) / 1000) - 1, `Retry-After ${retry}`);
  // On the drop-in base: Xoxoday's shapes, so its clients back off.
  const chef = await dropInHistory(k.key);
  assert.equal(chef.status, 429);
  assert.equal(chef.json.errorId, "PLUMGATE_QUOTA_EXCEEDED");
  assert.equal(chef.json.code, 429);
  assert.equal(chef.json.errors[0].message, "auth.request_limit_exceeded");
  assert.equal(chef.json.errors[0].penaltySeconds, Number(chef.headers["retry-after"]));
  assert.equal((await sandbox.counters()).api_calls.getOrderHistory - upstream, 3, "nothing over the limit reached Xoxoday");

  // Raised at once in this isolate; null removes it.
  const p = await admin("/v1/keys/rpm-3", { method: "PATCH", body: { limits: { requests_per_minute: 5 } } });
  assert.equal(p.status, 200, p.text);
  assert.deepEqual(p.json.limits, { requests_per_minute: 5, order_amount_per_day: null });
  assert.equal((await historyCall(k.key)).status, 200);
  const cleared = await admin("/v1/keys/rpm-3", { method: "PATCH", body: { limits: { requests_per_minute: null } } });
  assert.equal(cleared.json.limits.requests_per_minute, null);
  for (let i = 0; i < 4; i++) assert.equal((await historyCall(k.key)).status, 200);
  for (const [body, status] of [[{}, 400], [{ limits: { requests_per_minute: 0 } }, 400], [{ limits: { order_amount_per_day: "lots" } }, 400], [{ limits: {}, scopes: [] }, 400]]) {
    assert.equal((await admin("/v1/keys/rpm-3", { method: "PATCH", body })).status, status, JSON.stringify(body));
  }
  assert.equal((await admin("/v1/keys/nobody", { method: "PATCH", body: { limits: {} } })).status, 404);
  // 4.0 and 1e1 are integers to the OpenAPI document's JSON Schema: taken as 4 and 10.
  for (const [text, n] of [["4.0", 4], ["1e1", 10]]) {
    const r = await admin("/v1/keys/rpm-3", { method: "PATCH", raw: `{"limits":{"requests_per_minute":${text}}}`, headers: { "content-type": "application/json" } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.limits.requests_per_minute, n);
  }
  const half = await admin("/v1/keys/rpm-3", { method: "PATCH", raw: '{"limits":{"requests_per_minute":4.5}}', headers: { "content-type": "application/json" } });
  assert.equal(half.status, 400, half.text);
});

test("order_amount_per_day: two concurrent orders that together pass the cap: exactly one is placed", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const k = await createKey({ id: "capped", scopes: ["orders:write"], limits: { order_amount_per_day: 60 } });
  const ordersBefore = (await sandbox.counters()).orders;
  const pos = [po("cap-a"), po("cap-b"), po("cap-c"), po("cap-d")];
  const answers = await Promise.all(pos.map((p) => order(k.key, p, 50)));
  const ok = answers.filter(placed);
  const refused = answers.filter((a) => a.status === 429);
  const seen = answers.map((a) => `${a.status} ${a.text.slice(0, 200)}`).join("\n");
  assert.equal(ok.length, 1, seen);
  assert.equal(refused.length, 3, seen);
  for (const r of refused) {
    assert.equal(r.json.error.code, "quota_exceeded");
    assert.match(r.json.error.message, /order_amount_per_day limit \(60; 50 already placed or reserved today, UTC\)/);
    // Refused while the first was in flight, its fate unknown: ask again
    // in 90 s (it may fail); refused after it was placed: the next UTC day.
    if (/fate is not known yet/.test(r.json.error.message)) {
      assert.equal(r.headers["retry-after"], "90", r.text);
      assert.match(r.json.error.message, /retry after 90 s \(when orders whose fate is not known yet may have settled\)/);
    } else {
      assertUntilMidnight(r);
    }
  }
  assert.equal((await sandbox.counters()).orders - ordersBefore, 1, "one order upstream, never a partial one");
  const placedPo = pos[answers.indexOf(ok[0])];

  // A replay of the placed order is answered (not refused) and not counted again.
  const replay = await order(k.key, placedPo, 50);
  assert.equal(replay.status, 200, replay.text);
  assert.equal(replay.headers["x-plumgate-replayed"], "true");
  const usage = await waitFor(async () => {
    const v = await keyView("capped");
    return v.usage.orders === 1 ? v.usage : null;
  }, { what: "the order counted in the key's usage" });
  assert.equal(usage.amount, 50);
  // The cap holds after the replay: 10 left, until the next UTC day.
  const full = await order(k.key, po("cap-e"), 25);
  assert.equal(full.status, 429, full.text);
  assertUntilMidnight(full);
  assert.ok(placed(await order(k.key, po("cap-f"), 10)), "exactly up to the cap");
  // An order larger than the whole cap: no day has room for it, so no
  // Retry-After on either route (nor the drop-in's penalty block).
  const whole = await order(k.key, po("cap-whole"), 61);
  assert.deepEqual([whole.status, whole.json.error.code, whole.headers["retry-after"]], [429, "quota_exceeded", undefined], whole.text);
  assert.match(whole.json.error.message, /this order \(61\) is more than this key's order_amount_per_day limit \(60\) allows in a day, so it was not sent; no retry can place it/);
  const wholeChef = await call(w, "/chef/v1/oauth/api", {
    key: k.key,
    body: { query: "plumProAPI.mutation.placeOrder", tag: "plumProAPI", variables: { data: { productId: 10100, quantity: 1, denomination: 61, poNumber: po("cap-whole"), email: "winner@example.com" } } },
  });
  assert.deepEqual([wholeChef.status, wholeChef.json.errorId, wholeChef.headers["retry-after"], wholeChef.json.errors], [429, "PLUMGATE_QUOTA_EXCEEDED", undefined, undefined], wholeChef.text);
  // Raising it takes effect for the next order.
  assert.equal((await admin("/v1/keys/capped", { method: "PATCH", body: { limits: { order_amount_per_day: "100" } } })).status, 200);
  assert.ok(placed(await order(k.key, po("cap-g"), 25)));
  assert.equal((await sandbox.counters()).orders - ordersBefore, 3);
  const final = await waitFor(async () => {
    const v = await keyView("capped");
    return v.usage.orders === 3 ? v.usage : null;
  }, { what: "three orders counted" });
  assert.equal(final.amount, 85);
});

test("order_amount_per_day: a refusal frees the amount, an unknown fate keeps it; static keys carry caps too", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const k = await createKey({ id: "capped-2", scopes: ["orders:write"], limits: { order_amount_per_day: 60 } });
  // Xoxoday refuses (no such denomination): nothing was spent.
  const bad = await order(k.key, po("free"), 55);
  assert.equal(bad.status, 404, bad.text);
  assert.equal(bad.json.errorId, "PLE10018");
  const firstPo = po("unknown");
  // Xoxoday fails before creating the order: plumgate cannot know at once
  // that nothing was placed, so the order stays pending (reconciled from
  // the ledger's alarm) and its amount stays held.
  await sandbox.admin("/faults/order", { mode: "fail_before_create", count: 1, status: 502 });
  const lost = await order(k.key, firstPo, 50);
  assert.equal(lost.status, 409, lost.text);
  assert.equal(lost.json.error.code, "order_in_progress");
  await waitFor(async () => (await auditEntries("key=capped-2")).some((e) => e.po_number === firstPo), { what: "the lost order in the trail" });
  const held = await order(k.key, po("other"), 50);
  assert.equal(held.status, 429, "the unknown order's 50 still counts");
  // Only an order of unknown fate is in the way: it may turn out not
  // placed, so the wait is 90 s, not the rest of the day.
  assert.equal(held.headers["retry-after"], "90", held.text);
  assert.match(held.json.error.message, /\(60; 50 already placed or reserved today, UTC\), so it was not sent; retry after 90 s \(when orders whose fate is not known yet may have settled\)/);
  // Its retry (same poNumber and body) joins the pending order and its
  // hold: still 409, and the 50 is held once, not twice (10 more fit the
  // cap of 60; another 10 do not).
  const retried = await order(k.key, firstPo, 50);
  assert.equal(retried.status, 409, retried.text);
  assert.equal(retried.json.error.code, "order_in_progress");
  const small = await order(k.key, po("small"), 10);
  assert.ok(placed(small), small.text);
  const usage = await waitFor(async () => {
    const v = await keyView("capped-2");
    return v.usage.orders === 1 ? v.usage : null;
  }, { what: "the small order counted" });
  assert.equal(usage.amount, 10);
  const over60 = await order(k.key, po("over"), 10);
  assert.equal(over60.status, 429, over60.text);
  assert.equal(over60.headers["retry-after"], "90", "10 placed and 10 more fit: the unknown order's 50 is in the way");

  // GATEWAY_KEYS keys carry the same limits (capped-static: 30 a day).
  assert.ok(placed(await order(cappedStatic.key, po("static-a"), 25)));
  const over = await order(cappedStatic.key, po("static-b"), 10);
  assert.equal(over.status, 429);
  assert.match(over.json.error.message, /order_amount_per_day limit \(30; 25 already/);
  assertUntilMidnight(over);
  const v = await waitFor(async () => {
    const s = await keyView("capped-static");
    return s.usage.orders === 1 ? s : null;
  }, { what: "the static key's order counted" });
  assert.equal(v.source, "static");
  assert.equal(v.usage.amount, 25);
  // Drop-in callers get the refusal in Xoxoday's shape.
  const chef = await call(w, "/chef/v1/oauth/api", {
    key: cappedStatic, body: { query: "plumProAPI.mutation.placeOrder", tag: "plumProAPI", variables: { data: { productId: 10100, quantity: "1", denomination: "10", poNumber: po("static-c") } } },
  });
  assert.equal(chef.status, 429, chef.text);
  assert.equal(chef.json.errorId, "PLUMGATE_QUOTA_EXCEEDED");
  assert.ok(chef.json.errors[0].penaltySeconds > 0);
});

test("order_amount_per_day: an order a token failure kept from being sent frees its amount at once", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const k = await createKey({ id: "capped-token", scopes: ["orders:write"], limits: { order_amount_per_day: 20 } });
  // Xoxoday answers 401 to the access token and its token check fails:
  // placeOrder was never executed, and the ledger knows it.
  await sandbox.admin("/faults/api", { mode: "PIPE10013", op: "placeOrder", count: 1 });
  await sandbox.admin("/faults/validate", { mode: "5xx", count: 1 });
  const first = po("token-fail");
  // Three at once: the two that join the first's call get its error, and
  // no x-plumgate-replayed (that says an earlier attempt placed the order).
  const three = await Promise.all([0, 1, 2].map(() => order(k.key, first, 10)));
  for (const r of three) {
    assert.equal(r.status, 502, r.text);
    assert.equal(r.headers["x-plumgate-replayed"], undefined, "an error of plumgate's is no replayed order");
  }
  const entry = await waitFor(async () => (await auditEntries("key=capped-token")).find((e) => e.po_number === first), { what: "the failed order in the trail" });
  assert.equal(entry.outcome, "error", JSON.stringify(entry));
  // Its 10 is free again: two more orders of 10 fit the cap of 20.
  const a = po("token-a");
  assert.ok(placed(await order(k.key, a, 10)));
  assert.ok(placed(await order(k.key, po("token-b"), 10)));
  assert.equal((await order(k.key, po("token-c"), 10)).status, 429);
  // A placed order's poNumber with another body, over the cap: the
  // conflict (use a new poNumber), not "retry tomorrow".
  const reused = await order(k.key, a, 15);
  assert.equal(reused.status, 409, reused.text);
  assert.equal(reused.json.error.code, "idempotency_conflict");
});

test("order_amount_per_day: a placed order sent again over the day's cap, its hold pruned as after a day, gets its stored answer, not 429", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const k = await createKey({ id: "capped-replay", scopes: ["orders:write"], limits: { order_amount_per_day: 35 } });
  const first = po("replay-a");
  const a = await order(k.key, first, 10);
  assert.ok(placed(a), a.text);
  assert.ok(placed(await order(k.key, po("replay-b"), 25)));
  assert.equal((await order(k.key, po("replay-c"), 10)).status, 429, "the cap is spent");
  // The registry keeps a placed order's hold until the day after (then
  // prunes it); the ledger keeps its record ORDER_RETENTION_SECS. Pruned here.
  const dir = w.persistDir;
  await w.stop();
  await editRegistry(dir, (db) => {
    assert.equal(db.prepare("DELETE FROM holds WHERE key = ? AND po = ?").run("capped-replay", first).changes, 1);
  });
  w = await startWorker({ sandbox, keys: allKeys, persistDir: dir });
  // The first order again (same poNumber and body): the ledger's answer, replayed; nothing new is placed.
  const before = (await sandbox.counters()).orders;
  const again = await order(k.key, first, 10);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.headers["x-plumgate-replayed"], "true");
  assert.equal(again.json.data.placeOrder.data.orderId, a.json.data.placeOrder.data.orderId);
  assert.equal((await sandbox.counters()).orders, before);
  // Another key over its own cap, with the same poNumber: the same body
  // gets the order replayed, another body the conflict; nothing is placed.
  const other = await createKey({ id: "capped-other", scopes: ["orders:write"], limits: { order_amount_per_day: 5 } });
  const theirs = await order(other.key, first, 10);
  assert.equal(theirs.status, 200, theirs.text);
  assert.equal(theirs.headers["x-plumgate-replayed"], "true");
  const clash = await order(other.key, first, 25);
  assert.equal(clash.status, 409, clash.text);
  assert.equal(clash.json.error.code, "idempotency_conflict");
  assert.equal((await sandbox.counters()).orders, before);
  // Each audit entry says what its caller got, not the cap's refusal (the
  // registry recorded that when it refused; the ledger's answer replaces it).
  const orderId = String(a.json.data.placeOrder.data.orderId);
  for (const [r, key, outcome, orderIdOf] of [[again, "capped-replay", "replayed", orderId], [theirs, "capped-other", "replayed", orderId], [clash, "capped-other", "idempotency_conflict", null]]) {
    const rid = r.headers["x-request-id"];
    const e = await waitFor(async () => {
      const found = (await auditEntries(`key=${key}`)).find((x) => x.request_id === rid);
      return found && found.outcome !== "quota_exceeded" ? found : null;
    }, { what: `the entry of ${key}'s ${outcome} answer in place of the refusal` });
    assert.deepEqual([e.outcome, e.status, e.error, e.order_id], [outcome, r.status, outcome === "idempotency_conflict" ? "idempotency_conflict" : null, orderIdOf]);
  }
  // A new order is still refused over the cap, and recorded so.
  const refusedNew = await order(k.key, po("replay-d"), 10);
  assert.equal(refusedNew.status, 429);
  const ne = (await auditEntries("key=capped-replay")).find((x) => x.request_id === refusedNew.headers["x-request-id"]);
  assert.deepEqual([ne.outcome, ne.status], ["quota_exceeded", 429]);
});

test("the audit trail: every attempt, its outcome, newest first, paged and filtered, without secrets", async () => {
  const k = await createKey({ id: "audited", scopes: ["orders:write"], limits: { order_amount_per_day: 100 } });
  const a = po("aud");
  const first = await order(k.key, a, 50);
  assert.ok(placed(first), first.text);
  const replay = await order(k.key, a, 50);
  const conflict = await order(k.key, a, 25);
  assert.equal(conflict.status, 409);
  const over = await order(k.key, po("aud-over"), 100);
  assert.equal(over.status, 429);
  const refused = await order(k.key, po("aud-bad"), 30);
  assert.equal(refused.status, 404, refused.text);
  // Concurrent attempts of a key without a cap: none is lost.
  const free = await createKey({ id: "audited-free", scopes: ["orders:write"] });
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => order(free.key, po(`aud-many-${i}`), 10)));
  assert.ok(many.every(placed));

  const entries = await waitFor(async () => {
    const e = await auditEntries("key=audited");
    return e.length >= 5 ? e : null;
  }, { what: "five entries of key audited" });
  assert.equal(entries.length, 5);
  assert.deepEqual(entries.map((e) => e.outcome), ["refused", "quota_exceeded", "idempotency_conflict", "replayed", "placed"], "newest first");
  const byRid = Object.fromEntries(entries.map((e) => [e.request_id, e]));
  for (const [r, outcome] of [[first, "placed"], [replay, "replayed"], [conflict, "idempotency_conflict"], [over, "quota_exceeded"], [refused, "refused"]]) {
    const e = byRid[r.headers["x-request-id"]];
    assert.ok(e, `an entry for request ${r.headers["x-request-id"]}`);
    assert.equal(e.outcome, outcome);
    assert.equal(e.key, "audited");
    assert.equal(e.status, r.status);
  }
  const placedEntry = byRid[first.headers["x-request-id"]];
  assert.equal(placedEntry.po_number, a);
  assert.equal(placedEntry.product_id, "10100");
  assert.equal(placedEntry.quantity, 1);
  assert.equal(placedEntry.amount, 50);
  assert.equal(placedEntry.order_id, String(first.json.data.placeOrder.data.orderId));
  assert.equal(byRid[over.headers["x-request-id"]].error, "quota_exceeded");
  assert.equal(byRid[over.headers["x-request-id"]].amount, 100);
  const manyEntries = await waitFor(async () => {
    const e = await auditEntries("key=audited-free");
    return e.length >= 8 ? e : null;
  }, { what: "eight concurrent entries" });
  assert.equal(manyEntries.length, 8);
  assert.deepEqual(new Set(manyEntries.map((e) => e.request_id)), new Set(many.map((r) => r.headers["x-request-id"])));
  // Nothing the operator does not need.
  const trail = await admin("/v1/audit?limit=200", { method: "GET" });
  const text = trail.text;
  assert.ok(!text.includes("winner@example.com"), "no recipient");
  // A PIN is 6 digits: looked for as a value of its own (not inside a
  // request id), and not where it is one of the trail's order ids, which
  // the sandbox numbers from 100001.
  const orderIds = new Set(trail.json.entries.map((e) => e.order_id).filter(Boolean));
  const lookedFor = [...vouchers].filter((v) => !orderIds.has(v));
  const thisTests = [first, ...many].flatMap((r) => [...collectVoucherSecrets(r.json)]);
  assert.ok(thisTests.length > 0 && thisTests.every((v) => lookedFor.includes(v) || orderIds.has(v)),
    "the codes and PINs of this test's orders are among those looked for");
  for (const v of lookedFor) assert.doesNotMatch(text, ownValue(v), "no voucher code or PIN");

  // Paging: one at a time, every entry once, in the same order.
  const paged = [];
  let cursor = null;
  do {
    const r = await admin(`/v1/audit?key=audited&limit=2${cursor ? `&cursor=${cursor}` : ""}`, { method: "GET" });
    assert.ok(r.json.entries.length <= 2);
    paged.push(...r.json.entries);
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.deepEqual(paged.map((e) => e.request_id), entries.map((e) => e.request_id));
  // Time filters.
  const placedAt = Date.parse(placedEntry.at);
  const since = await auditEntries(`key=audited&from=${new Date(placedAt + 1).toISOString()}`);
  assert.equal(since.length, 4, "from: after the first attempt");
  const until = await auditEntries(`key=audited&to=${new Date(placedAt + 1).toISOString()}`);
  assert.deepEqual(until.map((e) => e.outcome), ["placed"]);
  assert.deepEqual(await auditEntries("from=2099-01-01"), []);
  // A date alone as `to` includes that UTC day.
  const today = new Date(placedAt).toISOString().slice(0, 10);
  const day = await auditEntries(`key=audited&from=${today}&to=${today}`);
  assert.ok(day.some((e) => e.outcome === "placed"), JSON.stringify(day));
  const all = await auditEntries("");
  assert.ok(all.some((e) => e.key === "capped") && all.some((e) => e.key === "audited-free"), "every key without a filter");
  // The whole trail's time bounds, a window inside it, paged: exactly the
  // entries whose time is in it, in the same order (the bounds end the
  // walk by seq, found from the entries' times).
  const times = all.map((e) => Date.parse(e.at));
  const [hi, lo] = [times[Math.floor(times.length / 4)], times[Math.floor((times.length * 3) / 4)]];
  const inWindow = all.filter((e) => Date.parse(e.at) >= lo && Date.parse(e.at) < hi).map((e) => e.request_id);
  assert.ok(inWindow.length >= 3 && inWindow.length < all.length - 2, `${inWindow.length} of ${all.length}`);
  const windowPaged = await auditEntries(`from=${new Date(lo).toISOString()}&to=${new Date(hi).toISOString()}&limit=2`);
  assert.deepEqual(windowPaged.map((e) => e.request_id), inWindow);
  assert.deepEqual(await auditEntries(`to=${new Date(times.at(-1)).toISOString()}`), [], "to: before the first entry");
  for (const q of ["from=yesterday", "to=2026-02-30", "key=a%20b", "cursor=abc", "limit=0", "limit=201", "from=2026-11-02&to=2026-11-01", "kye=audited", "limit=1&limit=2"]) {
    const r = await admin(`/v1/audit?${q}`, { method: "GET" });
    assert.equal(r.status, 400, q);
    assert.equal(r.json.error.code, "invalid_request");
  }
});

test("runtime keys, revocations and the trail survive a restart", async () => {
  const k = await createKey({ id: "durable", scopes: ["catalog"] });
  // Two keys made in one millisecond (stamped so below) list in the order
  // made, after a reload as before it: "zz-" first though it sorts last.
  await createKey({ id: "zz-made-first", scopes: ["catalog"] });
  await createKey({ id: "aa-made-second", scopes: ["catalog"] });
  const order = (await listKeys()).map((x) => x.id);
  assert.ok(order.indexOf("zz-made-first") < order.indexOf("aa-made-second"), order.join());
  const trail = (await auditEntries("")).length;
  const dir = w.persistDir;
  await w.stop();
  await editRegistry(dir, (db) => {
    const stamp = "(SELECT json_extract(record, '$.created_at_ms') FROM keys WHERE id = 'zz-made-first')";
    assert.equal(db.prepare(`UPDATE keys SET record = json_set(record, '$.created_at_ms', ${stamp}) WHERE id = ?`).run("aa-made-second").changes, 1);
  });
  w = await startWorker({ sandbox, keys: allKeys, persistDir: dir });
  assert.deepEqual((await listKeys()).map((x) => x.id), order, "the list's order after a reload");
  assert.equal((await vouchersCall(k.key)).status, 200);
  assert.equal((await vouchersCall(madeById["billing-fn"])).status, 200);
  assert.equal((await vouchersCall(madeById["to-revoke"])).status, 401, "still revoked");
  const list = await listKeys();
  assert.equal(list.find((x) => x.id === "to-revoke").state, "revoked");
  assert.equal((await auditEntries("")).length, trail);
});

test("a worker killed before it reported a key's use: the key list still shows the orders the registry counted", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const k = await createKey({ id: "crashed-before-sync", scopes: ["orders:write"], limits: { order_amount_per_day: 100 } });
  assert.ok(placed(await order(k.key, po("crash"), 10)));
  assert.ok(placed(await order(k.key, po("crash"), 10)));
  const dir = w.persistDir;
  await w.crash();
  w = await startWorker({ sandbox, keys: allKeys, persistDir: dir });
  const v = await keyView("crashed-before-sync");
  assert.deepEqual([v.usage.orders, v.usage.amount, v.usage.reserved], [2, 20, 0], JSON.stringify(v));
  // The cap counts them too: 80 left.
  assert.equal((await order(k.key, po("crash"), 90)).status, 429);
});

test("holds whose requests died between reserve and settle, or whose fate was left unknown: the registry asks each order's ledger, then commits or frees them", async () => {
  await roomInDay(240); // usage and caps are per UTC day
  const k = await createKey({ id: "dead-holders", scopes: ["orders:write"], limits: { order_amount_per_day: 100 } });
  const placedPo = po("dead-placed");
  assert.ok(placed(await order(k.key, placedPo, 50)));
  await waitFor(async () => (await keyView("dead-holders")).usage.orders === 1, { what: "the order counted" });
  // Make the registry look as if two requests died before settling (a
  // crash, a deploy): the placed order's hold back to held with its request
  // on it and not counted, and a hold for an order that was never sent (no
  // ledger record), and one that a request left pending (its answer lost)
  // for an order its ledger never had (the ledger could not be reached).
  const dir = w.persistDir;
  await w.stop();
  await editRegistry(dir, (db, day) => {
    assert.equal(db.prepare("UPDATE holds SET state = 'held', holders = 1 WHERE key = ? AND po = ?").run("dead-holders", placedPo).changes, 1);
    assert.equal(db.prepare("UPDATE usage SET orders = 0, amount = 0 WHERE key = ? AND day = ?").run("dead-holders", day).changes, 1);
    db.prepare("INSERT INTO holds (key, po, fp, day, amount, holders, state) VALUES (?, ?, ?, ?, ?, 1, 'held')").run("dead-holders", po("never-sent"), "f".repeat(64), day, 40_000_000);
    db.prepare("INSERT INTO holds (key, po, fp, day, amount, holders, state) VALUES (?, ?, ?, ?, ?, 0, 'pending')").run("dead-holders", po("lost-answer"), "e".repeat(64), day, 5_000_000);
  });
  w = await startWorker({ sandbox, keys: allKeys, persistDir: dir });
  const stuck = await keyView("dead-holders");
  assert.deepEqual([stuck.usage.orders, stuck.usage.amount, stuck.usage.reserved], [0, 0, 95], JSON.stringify(stuck));
  // 95 held: 25 more would pass the cap. The refusal brings the registry's
  // look forward to a minute from now.
  const refused = await order(k.key, po("dead-next"), 25);
  assert.equal(refused.status, 429, refused.text);
  // The alarm's first look settles the placed order; the unsent ones (their
  // ledger knows nothing of them, as of a live request not yet at its
  // ledger) are freed only by a look 30 s later that still finds nothing.
  let firstLookOnly = null;
  const settled = await waitFor(async () => {
    const v = await keyView("dead-holders");
    if (v.usage.orders === 1 && v.usage.reserved === 45) firstLookOnly ??= Date.now();
    return v.usage.reserved === 0 ? v : null;
  }, { timeout: 150_000, interval: 2_000, what: "the dead holds settled" });
  assert.deepEqual([settled.usage.orders, settled.usage.amount], [1, 50], "the placed order counted once, the unsent ones freed");
  assert.ok(firstLookOnly !== null && Date.now() - firstLookOnly >= 25_000, `the unsent holds outlived the first look by ~30 s (${firstLookOnly && Date.now() - firstLookOnly} ms)`);
  assert.ok(placed(await order(k.key, po("dead-next"), 25)), "the cap has room again");
  assert.ok(placed(await order(k.key, placedPo, 50)), "the placed order replays");
  assert.equal((await order(k.key, po("dead-over"), 30)).status, 429, "50 + 25 + 30 would pass 100: the replay counted nothing again");
});

test("a hold whose request died across the upgrade to per-account ledgers: the order the older ledger placed is counted", async () => {
  await roomInDay(240); // usage and caps are per UTC day
  const k = await createKey({ id: "upgrade-holder", scopes: ["orders:write"], limits: { order_amount_per_day: 100 } });
  const q = po("upgrade");
  assert.ok(placed(await order(k.key, q, 50)));
  await waitFor(async () => (await keyView("upgrade-holder")).usage.orders === 1, { what: "the order counted" });
  // Versions before 2026-12-03 named an order's ledger `po:<poNumber>`;
  // this one names it `po:<account>:<poNumber>`. So the ledger holding q
  // is, by name, the older version's ledger of the poNumber
  // `<account>:q`: make the registry hold that order (q's fingerprint),
  // with its request dead on it and nothing counted, as a request cut by
  // the upgrade deploy leaves it. The account's ledger of `<account>:q`
  // has no record; only the older name knows the order was placed.
  const dir = w.persistDir;
  await w.stop();
  const ledgerName = (await objectFiles(dir, "OrderLedger")).map((f) => f.name).find((n) => n?.endsWith(`:${q}`));
  assert.match(ledgerName ?? "", /^po:[^:]+:/, "q's ledger is named po:<account>:<poNumber>");
  const olderPo = ledgerName.slice("po:".length);
  await editRegistry(dir, (db, day) => {
    assert.equal(db.prepare("UPDATE holds SET po = ?, state = 'held', holders = 1 WHERE key = ? AND po = ?").run(olderPo, "upgrade-holder", q).changes, 1);
    assert.equal(db.prepare("UPDATE usage SET orders = 0, amount = 0 WHERE key = ? AND day = ?").run("upgrade-holder", day).changes, 1);
  });
  w = await startWorker({ sandbox, keys: allKeys, persistDir: dir });
  const stuck = await keyView("upgrade-holder");
  assert.deepEqual([stuck.usage.orders, stuck.usage.amount, stuck.usage.reserved], [0, 0, 50], JSON.stringify(stuck));
  // 50 held: 60 more would pass the cap; the refusal brings the registry's look forward.
  assert.equal((await order(k.key, po("upgrade-next"), 60)).status, 429);
  const settled = await waitFor(async () => {
    const v = await keyView("upgrade-holder");
    return v.usage.reserved === 0 ? v : null;
  }, { timeout: 150_000, interval: 2_000, what: "the dead hold settled" });
  assert.deepEqual([settled.usage.orders, settled.usage.amount], [1, 50], "the order the older ledger placed counted, not released as never sent");
  assert.equal((await order(k.key, po("upgrade-over"), 60)).status, 429, "50 counted + 60 would pass 100");
});

test("a GATEWAY_KEYS entry given a runtime key's id later: the runtime key can still be revoked, and the static key's orders keep its own cap", async () => {
  await roomInDay(120); // usage and caps are per UTC day
  const k = await createKey({ id: "later-static", scopes: ["catalog"] });
  const clash = makeKey("later-static", ["catalog", "orders:write"]);
  clash.entry.limits = { order_amount_per_day: 40 };
  const dir = w.persistDir;
  await w.stop();
  w = await startWorker({ sandbox, keys: { ...allKeys, clash }, persistDir: dir });
  assert.equal((await vouchersCall(k.key)).status, 200, "both keys work");
  assert.equal((await vouchersCall(clash.key)).status, 200);
  const r = await admin("/v1/keys/later-static", { method: "DELETE" });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, "revoked");
  // Its log line says who revoked which key.
  const [line] = await w.logsFor([r.headers["x-request-id"]]);
  assert.deepEqual([line.caller, line.method, line.route, line.target, line.status], ["admin", "DELETE", "/v1/keys/{id}", "later-static", 200]);
  await waitFor(async () => (await vouchersCall(k.key)).status === 401, { timeout: 20_000, what: "the runtime key refused" });
  assert.equal((await vouchersCall(clash.key)).status, 200, "the static key changes only by a redeploy");
  // Its capped orders too: not judged by the revoked runtime record, and
  // held to the static entry's own cap.
  const first = await order(clash.key, po("clash-a"), 25);
  assert.ok(placed(first), first.text);
  const over = await order(clash.key, po("clash-b"), 25);
  assert.equal(over.status, 429, over.text);
  assert.equal(over.json.error.code, "quota_exceeded");
  const again = await admin("/v1/keys/later-static/rotate", { body: {} });
  assert.equal(again.status, 400, again.text);
  assert.match(again.json.error.message, /revoked/);
  // With no runtime key of that id, the static one is refused as before.
  const st = await admin("/v1/keys/catalog-fn", { method: "DELETE" });
  assert.match(st.json.error.message, /GATEWAY_KEYS/);
  await w.stop();
  w = await startWorker({ sandbox, keys: allKeys, persistDir: dir });
});
