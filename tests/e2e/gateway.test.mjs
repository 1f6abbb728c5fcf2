// Gateway API end to end (issue 4; contract §2, §3, §5, §6, §7): every
// operation through both routes checked against what the sandbox received,
// the auth matrix, validation tables, placeOrder idempotency and
// reconciliation, edge caching, rate-limit penalties, CORS, log lines and
// the leak scans. One sandbox and one worker for the whole file, at the
// product's cache lifetimes; the expiry test starts its own, with the
// catalogue's lifetime shortened (the setting under test: its default of six
// hours cannot be waited). Every scenario uses its own poNumbers / request
// data so they do not interfere.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  startSandbox, startWorker, standardKeys, makeKey, call, leakScan, cleanup,
  collectVoucherSecrets, voucherLeakScan, voucherScanLacks, sandboxRequests, tempDir, waitFor,
} from "./harness.mjs";

const keys = standardKeys();
const ORIGIN = "https://app.example.com";
const CATALOG_TTL = 3; // CATALOG_CACHE_TTL_SECS in the expiry test only
const BALANCE_TTL = 10; // BALANCE_CACHE_TTL_SECS: the product's default, waited
const HIGH_LIMITS = {
  getBalance: 100000, getFilters: 100000, getVouchers: 100000, placeOrder: 100000,
  getOrderDetails: 100000, getOrderHistory: 100000, paymentHistory: 100000,
};
const RUN = Date.now().toString(36);
const po = (name) => `gw-${RUN}-${name}`;
const order = (poNumber, extra = {}) => ({
  productId: 10100, quantity: 1, denomination: 10, poNumber, email: "alex@example.com", ...extra,
});
const QUERY = {
  getFilters: "plumProAPI.mutation.getFilters",
  getVouchers: "plumProAPI.mutation.getVouchers",
  getBalance: "plumProAPI.query.getBalance",
  placeOrder: "plumProAPI.mutation.placeOrder",
  getOrderDetails: "plumProAPI.mutation.getOrderDetails",
  getOrderHistory: "plumProAPI.mutation.getOrderHistory",
  paymentHistory: "plumProAPI.mutation.paymentHistory",
};
const envelope = (op, data) => (op === "paymentHistory"
  ? { query: QUERY[op], tag: "plumProAPI", data: { data } }
  : { query: QUERY[op], tag: "plumProAPI", variables: { data } });
// The defaults plumgate fills in for the fields GitBook marks required.
const DEFAULTS = {
  placeOrder: { notifyReceiverEmail: 0, notifyAdminEmail: 0 },
  getOrderDetails: { orderId: null, sendMailToReceiver: 0 },
};
/** The data plumgate sends upstream for `data` given as is (defaults added). */
const sent = (op, data) => ({ ...DEFAULTS[op], ...data });

let sandbox;
let w;
const voucherSecrets = new Set();
const requestIds = []; // [request id, expectation for its log line]

/**
 * The code of a plumgate error in either shape: `{"error": {"code"}}` on
 * /v1, Xoxoday's `{"errorId": "PLUMGATE_<CODE>"}` under /chef/.
 */
const errCode = (r) => r.json?.error?.code
  ?? (typeof r.json?.errorId === "string" && r.json.errorId.startsWith("PLUMGATE_") ? r.json.errorId.slice(9).toLowerCase() : undefined);
/** The human message of a plumgate error in either shape. */
const errMessage = (r) => (typeof r.json?.error === "string" ? r.json.error : r.json?.error?.message);

/** call() plus the checks every answer must pass. */
async function req(path, opts = {}, logExpect = {}) {
  const r = await call(w, path, opts);
  assert.match(r.headers["x-request-id"] ?? "", /^[0-9a-f]{32}$/, `x-request-id on ${path}: ${r.status} ${r.text.slice(0, 300)}`);
  if (r.json?.error && typeof r.json.error === "object") {
    assert.ok(!path.startsWith("/chef/"), `${path}: errors under /chef/ are Xoxoday-shaped: ${r.text}`);
    assert.equal(r.json.error.request_id, r.headers["x-request-id"], "error body carries the request id");
    assert.equal(typeof r.json.error.message, "string");
    assert.equal(typeof r.json.error.code, "string");
  }
  if (typeof r.json?.errorId === "string" && r.json.errorId.startsWith("PLUMGATE_")) {
    assert.ok(path.startsWith("/chef/"), `${path}: Xoxoday-shaped plumgate errors only under /chef/`);
    assert.equal(r.json.request_id, r.headers["x-request-id"], "error body carries the request id");
    assert.equal(r.json.code, r.status, "code is the HTTP status");
    assert.match(r.json.errorInfo, /^plumgate: /);
    assert.equal(typeof r.json.error, "string");
  }
  if (r.status === 200 && r.json) collectVoucherSecrets(r.json, voucherSecrets);
  requestIds.push([r.headers["x-request-id"], { status: r.status, ...logExpect }]);
  return r;
}
const op = (name, key, body, headers = {}) =>
  req(`/v1/ops/${name}`, { key, body, headers }, { route: "/v1/ops/{operation}", operation: name });
const dropIn = (key, env, headers = {}) => req("/chef/v1/oauth/api", { key, body: env, headers }, { route: "/chef/v1/oauth/api" });

const counters = () => sandbox.counters();
/** An object of `levels` levels: `{"k":{"k":...{"k":1}}}`. */
const nested = (levels) => Array.from({ length: levels - 1 }).reduce((inner) => ({ k: inner }), { k: 1 });
const apiTotal = (c) => Object.values(c.api_calls).reduce((a, b) => a + b, 0);
const clearRequests = () => sandbox.admin("/requests/clear", {});
/** The requests the sandbox saw for one poNumber (earlier tests' pending
 * orders are checked by their ledgers' alarms at any time). */
const requestsFor = async (poNumber) => (await sandboxRequests(sandbox)).filter((s) => s.body?.variables?.data?.poNumber === poNumber);

before(async () => {
  sandbox = await startSandbox();
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS });
  w = await startWorker({
    sandbox,
    keys,
    vars: {
      ALLOWED_ORIGINS: `${ORIGIN},http://localhost:3000`,
    },
  });
  // Warm the token so later upstream counts are only the calls under test.
  const r = await op("getOrderHistory", keys.admin, { startDate: "2020-01-01", endDate: "2020-01-02" });
  assert.equal(r.status, 200, r.text);
});

after(async () => {
  // Workers stopped first: lines still in their pipes, or printed as
  // they stop, are scanned too.
  await w?.stop();
  const hits = await leakScan(sandbox, keys);
  const lacks = await voucherScanLacks(sandbox, voucherSecrets, { min: 4 });
  const vhits = voucherLeakScan(voucherSecrets);
  await sandbox?.stop();
  if (w) cleanup(w.persistDir);
  assert.deepEqual(hits, [], "no token, secret or caller key in any response or log line");
  assert.equal(lacks, "", "the run's orders gave voucher codes and PINs to scan for");
  assert.deepEqual(vhits, [], "no voucher code or PIN in any log line or error answer");
});

// ------------------------------------------------------------------ routes

test("every operation through both routes: the exact envelope upstream, the answer unchanged", async () => {
  const placed = await op("placeOrder", keys.writer, order(po("route-a")));
  assert.equal(placed.status, 200, placed.text);
  const orderId = placed.json.data.placeOrder.data.orderId;
  assert.ok(orderId > 0);
  // [operation, data via /v1/ops, data via the drop-in route]; cacheable
  // operations get different data per route so neither is a cache hit
  // (getBalance has one entry whatever its data: the drop-in call bypasses
  // the cache, and its unknown field is still forwarded).
  const cases = [
    ["getFilters", { filterGroupCode: "", includeFilters: "", excludeFilters: "" }, { filterGroupCode: "Country", includeFilters: "", excludeFilters: "" }],
    ["getVouchers", { limit: 3, page: 1, futureField: { x: [1, 2] } }, { limit: 2, page: 2, sort: { field: "name", order: "DESC" } }],
    ["getBalance", {}, { futureField: true }],
    ["placeOrder", order(po("route-b"), { tag: "t1", notifyReceiverEmail: 0 }), order(po("route-c"), { contact: "+1-4705000000" })],
    ["getOrderDetails", { poNumber: po("route-a") }, { orderId, poNumber: null }],
    ["getOrderHistory", { startDate: "2020-01-01", endDate: "2099-12-31", limit: 5, page: 1 }, { startDate: "2021-01-01", endDate: "2099-12-31" }],
    ["paymentHistory", { startDate: "2020-01-01", endDate: "2099-12-31" }, { startDate: "2021-01-01", endDate: "2099-12-31", limit: 3 }],
  ];
  for (const [name, viaOps, viaDropIn] of cases) {
    for (const [route, data] of [["ops", viaOps], ["drop-in", viaDropIn]]) {
      await clearRequests();
      // The drop-in route rebuilds the envelope: a foreign tag and extra
      // top-level members from the client never reach Xoxoday.
      const bypass = name === "getBalance" && route === "drop-in";
      const r = route === "ops"
        ? await op(name, keys.admin, data)
        : await dropIn(keys.admin, { ...envelope(name, data), tag: "somethingElse", clientExtra: 1 }, bypass ? { "cache-control": "no-cache" } : {});
      assert.equal(r.status, 200, `${name} via ${route}: ${r.text}`);
      const seen = await sandboxRequests(sandbox);
      assert.equal(seen.length, 1, `${name} via ${route}: exactly one upstream call`);
      assert.deepEqual(seen[0].body, envelope(name, sent(name, data)), `${name} via ${route}: exact envelope`);
      assert.equal(seen[0].authorized, true);
      assert.equal(seen[0].status, 200);
      const answerKey = name === "paymentHistory" ? "getPaymentReport" : name;
      assert.equal(r.json.data[answerKey].status, 1, `${name} via ${route}: Xoxoday's body`);
      assert.match(r.headers["content-type"], /application\/json/);
      if (["getFilters", "getVouchers", "getBalance"].includes(name)) {
        assert.equal(r.headers["x-plumgate-cache"], bypass ? "bypass" : "miss", `${name} via ${route}`);
      } else {
        assert.equal(r.headers["x-plumgate-cache"], undefined, `${name} is never cached`);
      }
    }
  }
  // Every call to Xoxoday said Content-Type: application/json (required).
  assert.equal((await sandbox.counters()).not_json_content_type, 0, "refresh and API calls with the JSON content type");
  // And every envelope said "tag": "plumProAPI" (xoxoday-api.md §2).
  assert.equal((await sandbox.counters()).not_plum_tag, 0, "API calls with Xoxoday's tag");
  // paymentHistory through the drop-in route with variables.data (what a
  // client that treats every operation alike sends): forwarded canonically.
  await clearRequests();
  const data = { startDate: "2022-01-01", endDate: "2099-12-31" };
  const r = await dropIn(keys.admin, { query: QUERY.paymentHistory, tag: "plumProAPI", variables: { data } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual((await sandboxRequests(sandbox))[0].body, envelope("paymentHistory", data));
});

test("answers framed without a length (chunked) or gzip-encoded: read whole, passed on byte for byte, a token refreshed through them", async () => {
  const reads = [
    ["getVouchers", { limit: 25, page: 1 }, { "cache-control": "no-cache" }],
    ["getOrderHistory", { startDate: "2020-01-01", endDate: "2099-12-31", limit: 5, page: 1 }, {}],
    ["getFilters", { filterGroupCode: "Country", includeFilters: "", excludeFilters: "" }, { "cache-control": "no-cache" }],
  ];
  const asLength = {};
  for (const [name, data, headers] of reads) asLength[name] = (await op(name, keys.admin, data, headers)).text;
  try {
    for (const framing of ["chunked", "gzip"]) {
      await sandbox.admin("/config", { answer_framing: framing });
      for (const [name, data, headers] of reads) {
        const r = await op(name, keys.admin, data, headers);
        assert.equal(r.status, 200, `${name}, ${framing}: ${r.text.slice(0, 300)}`);
        assert.equal(r.text, asLength[name], `${name}, ${framing}: the same bytes as with a stated length`);
      }
    }
    assert.ok(asLength.getVouchers.length > 4096, "the catalog page spans several pieces");
    for (const framing of ["chunked", "gzip"]) {
      await sandbox.admin("/config", { answer_framing: framing });
      const p = po(`framed-${framing}`);
      const placed = await op("placeOrder", keys.writer, order(p));
      assert.equal(placed.json?.data?.placeOrder?.status, 1, `${framing}: ${placed.text.slice(0, 300)}`);
      assert.equal(placed.headers["x-plumgate-reconciled"], undefined, `${framing}: read at once, not reconciled`);
      const again = await op("placeOrder", keys.writer, order(p));
      assert.equal(again.headers["x-plumgate-replayed"], "true");
      assert.equal(again.text, placed.text, `${framing}: the ledger kept the whole answer`);
      // The token endpoint answers in the same framing: a dead access token is replaced through it.
      const refreshes = (await counters()).refresh_calls;
      await sandbox.admin("/tokens/revoke-access", {});
      const r = await op("getOrderHistory", keys.admin, reads[1][1]);
      assert.equal(r.status, 200, `${framing}, after a refresh: ${r.text.slice(0, 300)}`);
      assert.equal((await counters()).refresh_calls, refreshes + 1, `${framing}: one refresh`);
    }
  } finally {
    await sandbox.admin("/config", { answer_framing: "length" });
  }
});

test("upstream errors pass through with Xoxoday's status and body unchanged", async () => {
  await clearRequests();
  const r = await op("getOrderDetails", keys.reader, { poNumber: po("never-placed") });
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.errorId, "PLE10016");
  assert.equal(r.json.error?.request_id, undefined, "not a plumgate error body");
  const bad = await op("placeOrder", keys.writer, order(po("bad-product"), { productId: 1 }));
  assert.equal(bad.status, 400);
  assert.equal(bad.json.errorId, "PLE10001");
  // A refused order leaves its poNumber usable.
  const ok = await op("placeOrder", keys.writer, order(po("bad-product")));
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.headers["x-plumgate-replayed"], undefined);
});

test("routing errors: unknown operation, unknown route, wrong method, bad JSON, huge body", async () => {
  const before = apiTotal(await counters());
  let r = await op("getNothing", keys.admin, {});
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, "unknown_operation");
  r = await op("getbalance", keys.admin, {});
  assert.equal(r.json.error.code, "unknown_operation", "operation names are case-sensitive");
  r = await dropIn(keys.admin, { query: "plumProAPI.getBalanceNow", tag: "plumProAPI", variables: { data: {} } });
  assert.equal(r.status, 404);
  assert.equal(errCode(r), "unknown_operation");
  assert.doesNotMatch(r.text, /getBalanceNow/, "the unknown query is not echoed");
  // The hint names whole queries: a bare operation name is no query.
  assert.match(r.json.error, /expected plumProAPI\.<query or mutation>\.<operation>, such as plumProAPI\.query\.getBalance/);
  r = await dropIn(keys.admin, { query: "getBalance", tag: "plumProAPI", variables: { data: {} } });
  assert.deepEqual([r.status, errCode(r)], [404, "unknown_operation"], r.text);
  r = await req("/", { method: "GET" });
  assert.equal(r.status, 200, "the demo page");
  assert.ok(r.headers["content-security-policy"], "static answers keep their security headers");
  r = await req("/v1/nothing", { method: "POST", key: keys.admin, body: {} });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, "not_found");
  for (const [path, method, allow] of [
    ["/v1/ops/getBalance", "GET", "POST"], ["/chef/v1/oauth/api", "GET", "POST"], ["/v1/token", "POST", "GET, HEAD"],
    ["/v1/token/refresh", "GET", "POST"], ["/v1/ops/placeOrder", "PUT", "POST"], ["/v1/ops/getBalance", "DELETE", "POST"],
    ["/healthz", "POST", "GET, HEAD"], ["/openapi.json", "PATCH", "GET, HEAD"], ["/", "POST", "GET, HEAD"],
    // A method the runtime does not know must not be taken for GET.
    ["/healthz", "QUERY", "GET, HEAD"], ["/v1/token", "QUERY", "GET, HEAD"], ["/", "QUERY", "GET, HEAD"], ["/v1/ops/getBalance", "QUERY", "POST"],
  ]) {
    r = await req(path, { method, key: keys.admin });
    assert.equal(r.status, 405, `${method} ${path}`);
    assert.equal(errCode(r), "method_not_allowed");
    assert.equal(r.headers.allow, allow);
    // A cacheable operation's answer says the cache was not used, its
    // refusals included (contract §2).
    if (path === "/v1/ops/getBalance") assert.equal(r.headers["x-plumgate-cache"], "bypass", `${method} ${path}`);
  }
  for (const raw of ["", "{", "nul", "{\"a\":1}}", "\u0000"]) {
    r = await req("/v1/ops/getBalance", { key: keys.admin, raw, headers: { "content-type": "application/json" } });
    assert.equal(r.status, 400, JSON.stringify(raw));
    assert.equal(r.json.error.code, "invalid_json");
  }
  // A byte order mark before the JSON (.NET, PowerShell) is skipped, once.
  r = await req("/v1/ops/getBalance", { key: keys.admin, raw: "\uFEFF{}", headers: { "content-type": "application/json; charset=utf-8" } });
  assert.equal(r.status, 200, r.text);
  r = await req("/v1/ops/getBalance", { key: keys.admin, raw: "\uFEFF\uFEFF{}", headers: { "content-type": "application/json" } });
  assert.equal(errCode(r), "invalid_json");
  r = await req("/chef/v1/oauth/api", { key: keys.admin, raw: "[1,", headers: { "content-type": "application/json" } });
  assert.equal(errCode(r), "invalid_json");
  assert.equal(r.json.errorId, "PLUMGATE_INVALID_JSON");
  const big = JSON.stringify({ limit: 1, page: 1, pad: "x".repeat(70 * 1024) });
  r = await req("/v1/ops/getVouchers", { key: keys.admin, raw: big, headers: { "content-type": "application/json" } });
  assert.equal(r.status, 413);
  assert.equal(r.json.error.code, "payload_too_large");
  r = await req("/chef/v1/oauth/api", { key: keys.admin, raw: big, headers: { "content-type": "application/json" } });
  assert.equal(r.status, 413);
  // Just under the limit is accepted.
  const fits = JSON.stringify({ limit: 1, page: 1, pad: "x".repeat(60 * 1024) });
  r = await req("/v1/ops/getVouchers", { key: keys.admin, raw: fits, headers: { "content-type": "application/json" } });
  assert.equal(r.status, 200, r.text.slice(0, 200));
  assert.equal(apiTotal(await counters()), before + 1, "only the valid call went upstream");
});

// -------------------------------------------------------------------- auth

test("auth matrix on every route: none, malformed, unknown, no scope, right key", async () => {
  const placedPo = po("auth-details");
  assert.equal((await op("placeOrder", keys.writer, order(placedPo))).status, 200);
  // [route label, request maker, key without the scope, key with it]
  const routes = [];
  const opData = {
    getFilters: () => ({ filterGroupCode: "", includeFilters: "", excludeFilters: "" }),
    getVouchers: () => ({ limit: 1, page: 1 }),
    getBalance: () => ({ authMatrix: 1 }),
    placeOrder: (() => { let i = 0; return () => order(po(`auth-${i++}`)); })(),
    getOrderDetails: () => ({ poNumber: placedPo }),
    getOrderHistory: () => ({ startDate: "2020-01-01", endDate: "2099-12-31" }),
    paymentHistory: () => ({ startDate: "2020-01-01", endDate: "2099-12-31" }),
  };
  const scoped = {
    getFilters: [keys.balance, keys.catalog], getVouchers: [keys.writer, keys.catalog], getBalance: [keys.catalog, keys.balance],
    placeOrder: [keys.reader, keys.writer], getOrderDetails: [keys.catalog, keys.reader],
    getOrderHistory: [keys.balance, keys.reader], paymentHistory: [keys.catalog, keys.writer],
  };
  for (const [name, make] of Object.entries(opData)) {
    const [wrong, right] = scoped[name];
    routes.push([`/v1/ops/${name}`, (key, headers) => req(`/v1/ops/${name}`, { key, body: make(), headers }), wrong, right]);
    routes.push([`drop-in ${name}`, (key, headers) => req("/chef/v1/oauth/api", { key, body: envelope(name, make()), headers }), wrong, right]);
  }
  // Resending the voucher email is an effect: it needs orders:write.
  routes.push(["getOrderDetails sendMailToReceiver", (key, headers) => req("/v1/ops/getOrderDetails", { key, body: { poNumber: placedPo, sendMailToReceiver: 1 }, headers }), keys.reader, keys.writer]);
  routes.push(["GET /v1/token", (key, headers) => req("/v1/token", { method: "GET", key, headers }), keys.writer, keys.admin]);
  routes.push(["POST /v1/token/refresh", (key, headers) => req("/v1/token/refresh", { key, headers }), keys.catalog, keys.admin]);

  const unknownKey = makeKey("unknown", ["*"]).key;
  const malformed = ["Basic YWRtaW46cGFzcw==", "Bearer", "Bearer ", `bearer${keys.admin.key}`, `Bearer ${keys.admin.key} extra`, `Token ${keys.admin.key}`, `Bearer ${keys.admin.key.slice(0, -1)}`];
  for (const [label, send, wrong, right] of routes) {
    const c0 = await counters();
    const none = await send(undefined, {});
    assert.equal(none.status, 401, `${label}: no header`);
    assert.equal(errCode(none), "unauthorized");
    assert.match(none.headers["www-authenticate"] ?? "", /^Bearer/, `${label}: WWW-Authenticate`);
    for (const m of malformed) {
      const r = await send(undefined, { authorization: m });
      assert.equal(r.status, 401, `${label}: malformed ${JSON.stringify(m.slice(0, 12))}`);
      assert.equal(errCode(r), "unauthorized");
      assert.match(r.headers["www-authenticate"] ?? "", /^Bearer/);
    }
    const unk = await send(unknownKey, {});
    assert.equal(unk.status, 401, `${label}: unknown key`);
    assert.equal(errCode(unk), "unauthorized");
    // A cacheable operation's answer says the cache was not used, even
    // refused before its body is read (on /v1/ops, where the path names it).
    const cacheable = /^\/v1\/ops\/(getFilters|getVouchers|getBalance)$/.test(label);
    for (const r of [none, unk]) assert.equal(r.headers["x-plumgate-cache"], cacheable ? "bypass" : undefined, `${label}: x-plumgate-cache`);
    const forbidden = await send(wrong, {});
    assert.equal(forbidden.status, 403, `${label}: key without the scope: ${forbidden.text}`);
    assert.equal(errCode(forbidden), "forbidden");
    const c1 = await counters();
    assert.equal(apiTotal(c1), apiTotal(c0), `${label}: refused calls never reach Xoxoday`);
    assert.equal(c1.refresh_calls, c0.refresh_calls);
    // A forced refresh is throttled to one a minute while the token is
    // valid: past authentication, 429 rate_limited is as good as 200.
    const accepted = (r) => r.status === 200 || (label === "POST /v1/token/refresh" && r.status === 429 && r.json.error.code === "rate_limited");
    const ok = await send(right, {});
    assert.ok(accepted(ok), `${label}: right key: ${ok.status} ${ok.text}`);
    const admin = await send(keys.admin, {});
    assert.ok(accepted(admin), `${label}: "*" key: ${admin.status}`);
  }
  const c = await counters();
  assert.ok(c.resend_mails >= 2, "the resend with orders:write went through");
});

// -------------------------------------------------------------- validation

// What is certainly wrong, refused on both routes. (What Xoxoday accepts,
// numeric strings, flags as booleans, empty strings, any filter key, no
// upper bounds, getVouchers' limit and page absent or 0, history without
// dates, passes: see dropin.test.mjs.)
const VALIDATION = [
  ["getFilters", { filterGroupCode: true }, "data.filterGroupCode"],
  ["getFilters", { includeFilters: ["usa"] }, "data.includeFilters"],
  ["getFilters", [1], "data"],
  ["getVouchers", { limit: -1, page: 1 }, "data.limit"],
  ["getVouchers", { limit: 1.5, page: 1 }, "data.limit"],
  ["getVouchers", { limit: "TEN-ish", page: 1 }, "data.limit"],
  ["getVouchers", { limit: "-1", page: 1 }, "data.limit"],
  ["getVouchers", { limit: 10, page: -1 }, "data.page"],
  ["getVouchers", { limit: 10, page: 1, includeProducts: [1, 2] }, "data.includeProducts"],
  ["getVouchers", { limit: 10, page: 1, exchangeRate: 2 }, "data.exchangeRate"],
  ["getVouchers", { limit: 10, page: 1, exchangeRate: "YES-ish" }, "data.exchangeRate"],
  ["getVouchers", { limit: 10, page: 1, sort: "name" }, "data.sort"],
  ["getVouchers", { limit: 10, page: 1, sort: { field: 5 } }, "data.sort.field"],
  ["getVouchers", { limit: 10, page: 1, filters: "country" }, "data.filters"],
  ["getVouchers", { limit: 10, page: 1, filters: { key: "country", value: "usa" } }, "data.filters"],
  ["getVouchers", { limit: 10, page: 1, filters: [1] }, "data.filters[0]"],
  ["getVouchers", { limit: 10, page: 1, filters: [{ value: "usa" }] }, "data.filters[0].key"],
  ["getVouchers", { limit: 10, page: 1, filters: [{ key: "country" }] }, "data.filters[0].value"],
  ["getVouchers", { limit: 10, page: 1, filters: [{ key: "country", value: true }] }, "data.filters[0].value"],
  ["getVouchers", { limit: 10, page: 1, filters: [{ key: "country", value: "usa" }, { key: "minPrice", value: "CHEAP-ish" }] }, "data.filters[1].value"],
  ["getVouchers", { limit: 10, page: 1, filters: [{ key: "maxPrice", value: "0 - 1000" }] }, "data.filters[0].value"],
  ["getBalance", "nope", "data"],
  ["placeOrder", { quantity: 1, denomination: 10, poNumber: "v-1" }, "data.productId"],
  ["placeOrder", order("v-2", { productId: 0 }), "data.productId"],
  ["placeOrder", order("v-3", { productId: "" }), "data.productId"],
  ["placeOrder", order("v-5", { quantity: undefined }), "data.quantity"],
  ["placeOrder", order("v-6", { quantity: 0 }), "data.quantity"],
  ["placeOrder", order("v-7", { quantity: "0" }), "data.quantity"],
  ["placeOrder", order("v-8", { quantity: "ONE-ish" }), "data.quantity"],
  ["placeOrder", order("v-9", { denomination: 0 }), "data.denomination"],
  ["placeOrder", order("v-10", { denomination: "TEN-ish" }), "data.denomination"],
  ["placeOrder", order("v-11", { denomination: "-5" }), "data.denomination"],
  ["placeOrder", order(undefined), "data.poNumber"],
  ["placeOrder", order(""), "data.poNumber"],
  ["placeOrder", order(null), "data.poNumber"],
  ["placeOrder", order(123456789012345678901234567), "data.poNumber"],
  ["placeOrder", order(12.5), "data.poNumber"],
  ["placeOrder", order("v-12", { email: ["not-an-email"] }), "data.email"],
  ["placeOrder", order("v-13", { contact: { cc: 1 } }), "data.contact"],
  ["placeOrder", order("v-14", { tag: true }), "data.tag"],
  ["placeOrder", order("v-15", { notifyReceiverEmail: 2 }), "data.notifyReceiverEmail"],
  ["placeOrder", order("v-16", { notifyAdminEmail: "YES-ish" }), "data.notifyAdminEmail"],
  ["placeOrder", order("v-17", { userMeta: "x" }), "data.userMeta"],
  ["placeOrder", order("v-18", { loungeData: [1] }), "data.loungeData"],
  ["placeOrder", order("v-20", { userMeta: nested(64) }), "data must be nested at most 64 levels deep"],
  ["placeOrder", order("v-21", { futureField: nested(64) }), "data must be nested at most 64 levels deep"],
  ["getBalance", { futureField: [nested(63)] }, "data must be nested at most 64 levels deep"],
  ["placeOrder", order("v-19", { shippingCity: false }), "data.shippingCity"],
  ["getOrderDetails", {}, "data.poNumber"],
  ["getOrderDetails", { poNumber: "", orderId: 0 }, "data.poNumber"],
  ["getOrderDetails", { poNumber: true }, "data.poNumber"],
  ["getOrderDetails", { orderId: -1 }, "data.orderId"],
  ["getOrderDetails", { orderId: "12a" }, "data.orderId"],
  ["getOrderDetails", { poNumber: "x", sendMailToReceiver: 2 }, "data.sendMailToReceiver"],
  ["getOrderHistory", { startDate: "2024-02-30", endDate: "2024-03-01" }, "data.startDate"],
  ["getOrderHistory", { startDate: "2024-01-01", endDate: "2024-1-31" }, "data.endDate"],
  ["getOrderHistory", { startDate: "2024-02-01", endDate: "2024-01-01" }, "data.endDate"],
  ["getOrderHistory", { startDate: "2024-01-01", endDate: "2024-02-01", limit: -1 }, "data.limit"],
  ["getOrderHistory", { startDate: "2024-01-01", endDate: "2024-02-01", page: -1 }, "data.page"],
  ["getOrderHistory", { startDate: "2024-01-01", endDate: "2024-02-01", tag: {} }, "data.tag"],
  ["paymentHistory", { startDate: "2024-02-01", endDate: "2024-01-01" }, "data.endDate"],
  ["paymentHistory", { startDate: "20240101", endDate: "2024-02-01" }, "data.startDate"],
  ["paymentHistory", { startDate: "2024-01-01", endDate: "2024-02-01", limit: "1.5" }, "data.limit"],
];

test("validation table: each rule broken once → 400 invalid_request naming the field, no upstream call", async () => {
  await clearRequests();
  const c0 = await counters();
  for (const [name, data, field] of VALIDATION) {
    for (const route of ["ops", "drop-in"]) {
      const r = route === "ops" ? await op(name, keys.admin, data) : await dropIn(keys.admin, envelope(name, data));
      const what = `${name} via ${route} breaking ${field}`;
      assert.equal(r.status, 400, `${what}: ${r.text}`);
      assert.equal(errCode(r), "invalid_request", what);
      assert.ok(errMessage(r).includes(field), `${what}: message names the field: ${errMessage(r)}`);
      // Never echo the value (the marker values are checked here).
      assert.doesNotMatch(errMessage(r), /not-an-email|12a|20240101|-ish/, what);
    }
  }
  const envelopeCases = [
    [[], "envelope"], [{}, "query"], [{ query: 5 }, "query"],
    [{ query: QUERY.getBalance, variables: 5 }, "variables"],
    [{ query: QUERY.getBalance, tag: "plumProAPI" }, "variables.data"],
    [{ query: QUERY.paymentHistory, tag: "plumProAPI", data: 5 }, "data"],
    [{ query: QUERY.paymentHistory, tag: "plumProAPI" }, "data.data"],
  ];
  for (const [env, field] of envelopeCases) {
    const r = await dropIn(keys.admin, env);
    assert.equal(r.status, 400, `${JSON.stringify(env)}: ${r.text}`);
    assert.equal(errCode(r), "invalid_request");
    assert.ok(errMessage(r).includes(field), `names ${field}: ${errMessage(r)}`);
  }
  const c1 = await counters();
  assert.equal(apiTotal(c1), apiTotal(c0), "zero upstream calls for invalid input");
  assert.deepEqual(await sandboxRequests(sandbox), []);
  assert.equal(c1.refresh_calls, c0.refresh_calls);
});

test("placeOrder's data nests at most 64 levels: userMeta 63 deep is placed; 125 deep, or an unknown field 126 deep (still readable JSON), is a 400, never a 500 or a call", async () => {
  const ok = await op("placeOrder", keys.writer, order(po("deep-63"), { userMeta: nested(63) }));
  assert.equal(ok.status, 200, ok.text);
  const c0 = await counters();
  for (const extra of [{ userMeta: nested(125) }, { futureField: nested(126) }]) {
    const deep = await op("placeOrder", keys.writer, order(po(`deep-${Object.keys(extra)[0]}`), extra));
    assert.equal(deep.status, 400, deep.text);
    assert.equal(errCode(deep), "invalid_request");
    assert.equal(errMessage(deep), "data must be nested at most 64 levels deep");
  }
  assert.equal((await counters()).api_calls.placeOrder, c0.api_calls.placeOrder, "nothing sent");
});

// ------------------------------------------------------------- idempotency

test("idempotency: replay, conflict, and 20 concurrent requests with one poNumber", async () => {
  const c0 = await counters();
  const body = order(po("idem-1"), { tag: "idem", userMeta: { a: 1, b: [1, 2] } });
  const first = await op("placeOrder", keys.writer, body);
  assert.equal(first.status, 200, first.text);
  assert.equal(first.headers["x-plumgate-replayed"], undefined);
  // Same order, keys in another order and 10 written as 10.0: a replay.
  const reordered = JSON.stringify(Object.fromEntries(Object.entries(body).reverse())).replace('"denomination":10', '"denomination":10.0');
  const again = await req("/v1/ops/placeOrder", { key: keys.writer, raw: reordered, headers: { "content-type": "application/json" } });
  assert.equal(again.status, 200);
  assert.equal(again.headers["x-plumgate-replayed"], "true");
  assert.equal(again.text, first.text, "the first answer again");
  const viaDropIn = await dropIn(keys.admin, envelope("placeOrder", body));
  assert.equal(viaDropIn.headers["x-plumgate-replayed"], "true", "the drop-in route shares the ledger");
  assert.equal(viaDropIn.text, first.text);
  const c1 = await counters();
  assert.equal(c1.orders, c0.orders + 1, "one upstream order");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1, "no second upstream call");

  for (const changed of [{ quantity: 2 }, { tag: "other" }, { futureField: 1 }, { email: "other@example.com" }]) {
    const r = await op("placeOrder", keys.writer, { ...body, ...changed });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, "idempotency_conflict");
    assert.doesNotMatch(r.text, /other@example|idem-1/, "no echo of the order");
  }
  assert.equal((await counters()).api_calls.placeOrder, c1.api_calls.placeOrder, "conflicts never go upstream");

  // 20 concurrent requests, one poNumber: exactly one upstream order.
  const one = order(po("concurrent"), { quantity: 2 });
  const rs = await Promise.all(Array.from({ length: 20 }, () => op("placeOrder", keys.writer, one)));
  assert.deepEqual([...new Set(rs.map((r) => r.status))], [200], rs.map((r) => r.text.slice(0, 100)).join("\n"));
  assert.equal(new Set(rs.map((r) => r.text)).size, 1, "everyone gets the same answer");
  assert.equal(rs.filter((r) => r.headers["x-plumgate-replayed"] !== "true").length, 1, "one original, the rest replays");
  const c2 = await counters();
  assert.equal(c2.orders, c1.orders + 1, "exactly one upstream order");
  assert.equal(c2.api_calls.placeOrder, c1.api_calls.placeOrder + 1, "exactly one upstream placeOrder call");
  // 20 concurrent with one poNumber but different bodies: one order, the rest 409 or replay.
  const mixed = await Promise.all(Array.from({ length: 10 }, (_, i) => op("placeOrder", keys.writer, order(po("mixed"), { quantity: 1 + (i % 2) }))));
  const statuses = mixed.map((r) => r.status).sort();
  assert.ok(statuses.every((s) => s === 200 || s === 409), statuses.join(","));
  assert.ok(statuses.includes(409));
  assert.equal((await counters()).orders, c2.orders + 1, "still one order");
});

// ---------------------------------------------------------- reconciliation

// An answer past ORDER_TIMEOUT_MS is reconciled too: hardening.test.mjs
// ("the long ones") waits out the product's 130 s default for it.
test("reconciliation: created then failed → success, reconciled; failed before → in progress, never re-sent", async () => {
  // 1. The order is created, then the answer is a 502.
  await sandbox.admin("/faults/order", { mode: "fail_after_create", count: 1 });
  let c0 = await counters();
  await clearRequests();
  const aPo = po("recon-after");
  const a = await op("placeOrder", keys.writer, order(aPo));
  assert.equal(a.status, 200, a.text);
  assert.equal(a.headers["x-plumgate-reconciled"], "true");
  assert.equal(a.json.data.placeOrder.status, 1);
  assert.ok(a.json.data.placeOrder.data.orderId > 0);
  let seen = await sandboxRequests(sandbox);
  assert.deepEqual(seen.map((s) => [s.op, s.status]), [["placeOrder", 502], ["getOrderDetails", 200]], "one order attempt, then a lookup");
  assert.deepEqual(seen[1].body.variables.data.poNumber, aPo);
  let c1 = await counters();
  assert.equal(c1.orders, c0.orders + 1, "one order, never retried blindly");
  const aAgain = await op("placeOrder", keys.writer, order(aPo));
  assert.equal(aAgain.status, 200);
  assert.equal(aAgain.headers["x-plumgate-replayed"], "true");
  assert.equal((await counters()).api_calls.placeOrder, c1.api_calls.placeOrder);

  // 2. The answer is a 502 and no order was created. getOrderDetails' "no
  // such order" right after a 5xx proves nothing: the order stays pending,
  // 409 order_in_progress, and a retry sends nothing (the end of the story,
  // "not placed" after the settling period, is in hardening.test.mjs).
  await sandbox.admin("/faults/order", { mode: "fail_before_create", count: 1 });
  c0 = await counters();
  const bPo = po("recon-before");
  const b = await op("placeOrder", keys.writer, order(bPo));
  assert.equal(b.status, 409, b.text);
  assert.equal(b.json.error.code, "order_in_progress");
  assert.match(b.json.error.message, /HTTP 502, PLE10035/);
  assert.doesNotMatch(b.json.error.message, /(retry|retrying)( with the same poNumber)? is safe/i);
  assert.ok(Number(b.headers["retry-after"]) >= 1, "Retry-After");
  assert.equal(b.headers["x-plumgate-reconciled"], undefined);
  for (const r of [a, b]) {
    const internal = Object.keys(r.headers).filter((h) => h === "x-plumgate-upstream-status" || h === "x-plumgate-error-code");
    assert.deepEqual(internal, [], "the ledger's internal headers stay inside");
  }
  c1 = await counters();
  assert.equal(c1.orders, c0.orders, "no order");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1, "not retried blindly");
  const bRetry = await op("placeOrder", keys.writer, order(bPo));
  assert.equal(bRetry.status, 409, bRetry.text);
  assert.equal(bRetry.json.error.code, "order_in_progress");
  const c2 = await counters();
  assert.equal(c2.api_calls.placeOrder, c1.api_calls.placeOrder, "a retry while pending sends nothing");
  assert.equal(c2.api_calls.getOrderDetails, c1.api_calls.getOrderDetails, "checks run from the alarm, not per request");

  await sandbox.admin("/faults/clear", {});
});

test("an answer that is not JSON (a proxy's page in front of Xoxoday) → 502 upstream_error, none of it passed on; a placeOrder behind one is reconciled, never re-sent", async () => {
  const range = { startDate: "2020-01-01", endDate: "2020-01-02" };
  // 1. The page comes before Xoxoday, with a 200 status; then a 503 under /chef/.
  await sandbox.admin("/faults/proxy", { mode: "before", status: 200, op: "getOrderHistory" });
  const h = await op("getOrderHistory", keys.admin, range);
  assert.equal(h.status, 502, h.text);
  assert.equal(errCode(h), "upstream_error");
  assert.match(errMessage(h), /HTTP 200 with a body that is not JSON/);
  assert.match(h.headers["content-type"], /^application\/json/);
  assert.doesNotMatch(h.text, /Bad Gateway|<html|sandbox proxy fault/i, "nothing of the page");
  await sandbox.admin("/faults/proxy", { mode: "before", status: 503, op: "getOrderHistory" });
  const d = await dropIn(keys.admin, envelope("getOrderHistory", range));
  assert.equal(d.status, 502, d.text);
  assert.equal(errCode(d), "upstream_error");
  assert.match(errMessage(d), /HTTP 503 with a body that is not JSON/);
  assert.equal((await op("getOrderHistory", keys.admin, range)).status, 200, "Xoxoday's own answer again");
  // A cacheable operation's error says what the cache did, as its answers
  // do (a page never asked for: no copy to answer in its place).
  await sandbox.admin("/faults/proxy", { mode: "before", op: "getVouchers" });
  const page = await op("getVouchers", keys.admin, { limit: 2, page: 97 }, { "cache-control": "no-cache" });
  assert.equal(page.status, 502, page.text);
  assert.equal(errCode(page), "upstream_error");
  assert.equal(page.headers["x-plumgate-cache"], "bypass");
  // With a copy at hand (a balance stored just before), that copy answers
  // the same failure, marked stale.
  const stored = await op("getBalance", keys.admin, {}, { "cache-control": "no-cache" });
  assert.equal(stored.status, 200, stored.text);
  await sandbox.admin("/faults/proxy", { mode: "before", op: "getBalance" });
  const bal = await op("getBalance", keys.admin, {}, { "cache-control": "no-cache" });
  assert.deepEqual([bal.status, bal.headers["x-plumgate-cache"]], [200, "stale"], bal.text);
  assert.equal(bal.text, stored.text);

  // 2. placeOrder reaches Xoxoday, which makes the order; the page replaces its answer.
  await sandbox.admin("/faults/proxy", { mode: "after", status: 200, op: "placeOrder" });
  const c0 = await counters();
  await clearRequests();
  const p = await op("placeOrder", keys.writer, order(po("proxy-after")));
  assert.equal(p.status, 200, p.text);
  assert.equal(p.headers["x-plumgate-reconciled"], "true");
  assert.equal(p.json.data.placeOrder.status, 1);
  const seen = await sandboxRequests(sandbox);
  assert.deepEqual(seen.map((s) => [s.op, s.status]), [["placeOrder", 200], ["getOrderDetails", 200]], "one order attempt, then a lookup");
  const c1 = await counters();
  assert.equal(c1.orders, c0.orders + 1, "one order");
  assert.equal(c1.proxy_pages, c0.proxy_pages + 1);

  // 3. A 403 page before Xoxoday: not known to be unsent, so in progress and never re-sent.
  await sandbox.admin("/faults/proxy", { mode: "before", status: 403, op: "placeOrder" });
  const qPo = po("proxy-before");
  const q = await op("placeOrder", keys.writer, order(qPo));
  assert.equal(q.status, 409, q.text);
  assert.equal(errCode(q), "order_in_progress");
  assert.match(errMessage(q), /HTTP 403\) could not be read/);
  const qRetry = await op("placeOrder", keys.writer, order(qPo));
  assert.equal(qRetry.status, 409, qRetry.text);
  const c2 = await counters();
  assert.equal(c2.proxy_pages, c1.proxy_pages + 1, "one attempt, not re-sent");
  assert.equal(c2.orders, c1.orders);
  await sandbox.admin("/faults/clear", {});
});

test("a refusal for an order Xoxoday already holds under the poNumber (its duplicate answer in any words) is that order: reconciled, never ordered twice", async () => {
  // Xoxoday's duplicate-poNumber answer is undocumented: here, a bare validation error.
  await sandbox.admin("/config", { duplicate_answer: "validation" });
  try {
    // The order made outside plumgate (another system, or after plumgate's record of it expired).
    const { access_token } = await sandbox.admin("/tokens/issue", {});
    const placeOutside = async (poNumber) => {
      const direct = await fetch(`${sandbox.oauthUrl}/v1/oauth/api`, {
        method: "POST",
        headers: { authorization: `Bearer ${access_token}`, "content-type": "application/json" },
        body: JSON.stringify(envelope("placeOrder", sent("placeOrder", order(poNumber)))),
      });
      assert.equal(direct.status, 200, await direct.text());
    };
    const dPo = po("dup-outside");
    await placeOutside(dPo);
    const c0 = await counters();
    await clearRequests();
    const r = await op("placeOrder", keys.writer, order(dPo));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers["x-plumgate-reconciled"], "true");
    assert.equal(r.json.data.placeOrder.status, 1);
    let seen = await requestsFor(dPo);
    assert.deepEqual(seen.map((s) => [s.op, s.status]), [["placeOrder", 400], ["getOrderDetails", 200]], "the refusal, then one lookup");
    assert.equal((await counters()).orders, c0.orders, "no second order");
    // The same, but the lookup fails (a 5xx): nothing rules the order out,
    // so no refusal yet; it is checked again, found, and is the answer.
    const d2 = po("dup-outside-unchecked");
    await placeOutside(d2);
    await sandbox.admin("/faults/details", { mode: "5xx", count: 1, po_number: d2 });
    await clearRequests();
    const open = await op("placeOrder", keys.writer, order(d2));
    assert.equal(open.status, 409, open.text);
    assert.equal(open.json.error.code, "order_in_progress", "not Xoxoday's refusal: the order may exist");
    const wait = Number(open.headers["retry-after"]);
    assert.ok(wait >= 1 && wait <= 30, `Retry-After ${wait}`);
    const settled = await waitFor(async () => {
      const again = await op("placeOrder", keys.writer, order(d2));
      return again.status === 200 ? again : null;
    }, { timeout: 60_000, interval: 2_000, what: "the order found by a later check" });
    assert.equal(settled.json.data.placeOrder.status, 1, settled.text);
    // (Only this order's: earlier tests' pending orders are still checked.)
    seen = await requestsFor(d2);
    assert.deepEqual(seen.map((s) => [s.op, s.status]), [["placeOrder", 400], ["getOrderDetails", 502], ["getOrderDetails", 200]], "sent once; the failed lookup, then the one that found it");
    assert.equal((await counters()).orders, c0.orders + 1, "only the order made outside: no second one");
    // A plain refusal (no order under the poNumber): passed on after the one lookup.
    await clearRequests();
    const bad = await op("placeOrder", keys.writer, order(po("dup-bad"), { denomination: 26 }));
    assert.ok(bad.status >= 400 && bad.status < 500, bad.text);
    assert.equal(bad.json.errorId, "PLE10018", "Xoxoday's refusal, passed on");
    seen = await requestsFor(po("dup-bad"));
    assert.deepEqual(seen.map((s) => s.op), ["placeOrder", "getOrderDetails"]);
    assert.equal(seen[1].status, 404);
    // The same refusal, its lookup failing (a 5xx) and the next answering
    // in other words (404 PLE10021; it was held as order_in_progress for
    // the record's retention, 30 days) or finding no such order (Xoxoday's
    // own 404 PLE10016; it waited for the settling proof, about 180 s):
    // passed on at that later look, as at a first look that answers.
    for (const [name, nextLook] of [["dup-bad-unclear", "PLE10021"], ["dup-bad-none", null]]) {
      const poNumber = po(name);
      await sandbox.admin("/faults/details", { mode: "5xx", count: 1, po_number: poNumber });
      await clearRequests();
      const held = await op("placeOrder", keys.writer, order(poNumber, { denomination: 26 }));
      assert.equal(held.status, 409, held.text);
      assert.equal(held.json.error.code, "order_in_progress");
      if (nextLook) await sandbox.admin("/faults/details", { mode: nextLook, count: 10, po_number: poNumber });
      const passed = await waitFor(async () => {
        const again = await op("placeOrder", keys.writer, order(poNumber, { denomination: 26 }));
        return again.status === 409 ? null : again;
      }, { timeout: 60_000, interval: 2_000, what: `the refusal passed on (${name})` });
      assert.equal(passed.json.errorId, "PLE10018", passed.text);
      seen = await requestsFor(poNumber);
      assert.deepEqual(seen.map((s) => [s.op, s.status]), [["placeOrder", 404], ["getOrderDetails", 502], ["getOrderDetails", 404]], `${name}: sent once; the failed lookup, then the one that answered`);
    }
  } finally {
    await sandbox.admin("/config", { duplicate_answer: "ple10043" });
  }
});

test("placeOrder answered HTTP 200 with Xoxoday's failure flag (status 0): that answer after one lookup, and the poNumber usable again", async () => {
  await sandbox.admin("/faults/order", { mode: "status_zero", count: 1 });
  const c0 = await counters();
  await clearRequests();
  const zPo = po("status-zero");
  const r = await op("placeOrder", keys.writer, order(zPo));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.data.placeOrder.status, 0, "Xoxoday's answer, passed on");
  assert.equal(r.headers["x-plumgate-reconciled"], undefined);
  const seen = await requestsFor(zPo);
  assert.deepEqual(seen.map((s) => [s.op, s.status]), [["placeOrder", 200], ["getOrderDetails", 404]], "the answer, then one lookup");
  // Not placed: the same poNumber is a new attempt, which Xoxoday now places.
  const again = await op("placeOrder", keys.writer, order(zPo));
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json.data.placeOrder.status, 1);
  assert.equal(again.headers["x-plumgate-replayed"], undefined);
  assert.equal((await counters()).orders, c0.orders + 1, "one order");
});

// ----------------------------------------------------------------- caching

test("caching: a new isolate serves a page the Cache API holds (the worker restarted on the same state, product defaults); a shortened lifetime starts it afresh", async () => {
  // The isolate's own copy is gone after a restart: the hit is read back
  // from the Cache API (edge_cache::get through runtime::cache).
  const d = tempDir();
  const data = { limit: 5, page: 2, sort: { field: "name", order: "ASC" } };
  // Its own token pair: the file's worker has rotated the default one.
  const { refresh_token } = await sandbox.admin("/tokens/issue", {});
  const start = (vars = {}) => startWorker({ sandbox, keys, persistDir: d, vars: { XOXODAY_REFRESH_TOKEN: refresh_token, ...vars } });
  let w2 = await start();
  try {
    const n = (await counters()).api_calls.getVouchers;
    const first = await call(w2, "/v1/ops/getVouchers", { key: keys.catalog, body: data });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers["x-plumgate-cache"], "miss");
    await w2.stop();
    w2 = await start();
    const again = await call(w2, "/v1/ops/getVouchers", { key: keys.catalog, body: data });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.headers["x-plumgate-cache"], "hit", "read back from the Cache API");
    assert.equal(again.text, first.text, "the same bytes");
    assert.equal((await counters()).api_calls.getVouchers, n + 1, "no second upstream call");
    // The operator shortens the lifetime (prices changed): a page stored
    // under the six-hour one is not served for six hours more.
    await w2.stop();
    w2 = await start({ CATALOG_CACHE_TTL_SECS: "60" });
    const shorter = await call(w2, "/v1/ops/getVouchers", { key: keys.catalog, body: data });
    assert.equal(shorter.status, 200, shorter.text);
    assert.equal(shorter.headers["x-plumgate-cache"], "miss", "a new lifetime starts the cache afresh");
    assert.equal((await counters()).api_calls.getVouchers, n + 2);
    const kept = await call(w2, "/v1/ops/getVouchers", { key: keys.catalog, body: data });
    assert.equal(kept.headers["x-plumgate-cache"], "hit", "then kept under the new one");
  } finally {
    await w2.stop();
    cleanup(d);
  }
});

test("caching: a catalogue page over a megabyte (long terms, a whole catalogue in one page) is kept in the Cache API: one upstream call for concurrent misses and the calls after (product defaults)", async () => {
  const d = tempDir();
  const { refresh_token } = await sandbox.admin("/tokens/issue", {});
  await sandbox.admin("/config", { terms_bytes: 20_000 });
  const w2 = await startWorker({ sandbox, keys, persistDir: d, vars: { XOXODAY_REFRESH_TOKEN: refresh_token } });
  try {
    const data = { limit: 500, page: 1 };
    const n = (await counters()).api_calls.getVouchers;
    const all = await Promise.all(Array.from({ length: 5 }, () => call(w2, "/v1/ops/getVouchers", { key: keys.catalog, body: data })));
    assert.deepEqual(all.map((r) => r.status), Array(5).fill(200), all[0].text.slice(0, 300));
    assert.ok(all[0].text.length > 1.1 * 1024 * 1024, `a page of ${all[0].text.length} bytes`);
    assert.ok(all.every((r) => r.text === all[0].text), "the same bytes");
    assert.deepEqual(all.map((r) => r.headers["x-plumgate-cache"]).sort(), ["hit", "hit", "hit", "hit", "miss"]);
    const again = await call(w2, "/v1/ops/getVouchers", { key: keys.catalog, body: data });
    assert.deepEqual([again.status, again.headers["x-plumgate-cache"]], [200, "hit"]);
    assert.equal(again.text, all[0].text);
    assert.equal((await counters()).api_calls.getVouchers, n + 1, "one upstream call");
  } finally {
    await sandbox.admin("/config", { terms_bytes: 0 });
    await w2.stop();
    cleanup(d);
  }
});

test("caching: miss then hit, admin bypass, non-admin no-cache ignored, errors and failure flags not kept (product lifetimes)", async () => {
  const filters = { filterGroupCode: "Category", includeFilters: "", excludeFilters: "" };
  const calls = async (name) => (await counters()).api_calls[name];
  let n = await calls("getFilters");
  const m1 = await op("getFilters", keys.catalog, filters);
  assert.equal(m1.headers["x-plumgate-cache"], "miss");
  assert.equal(await calls("getFilters"), n + 1);
  const h1 = await op("getFilters", keys.catalog, { excludeFilters: "", includeFilters: "", filterGroupCode: "Category" });
  assert.equal(h1.status, 200);
  assert.equal(h1.headers["x-plumgate-cache"], "hit", "same data in another key order is a hit");
  assert.equal(h1.text, m1.text);
  const h2 = await dropIn(keys.catalog, envelope("getFilters", filters));
  assert.equal(h2.headers["x-plumgate-cache"], "hit", "the drop-in route shares the cache");
  assert.equal(await calls("getFilters"), n + 1, "hits make no upstream call");
  const nc = await op("getFilters", keys.catalog, filters, { "cache-control": "no-cache" });
  assert.equal(nc.headers["x-plumgate-cache"], "hit", "no-cache from a non-admin key is ignored");
  const bp = await op("getFilters", keys.admin, filters, { "cache-control": "no-cache" });
  assert.equal(bp.headers["x-plumgate-cache"], "bypass", "admin no-cache bypasses");
  assert.equal(await calls("getFilters"), n + 2);
  // Refused before the cache is asked (input, scope): still said (contract §2).
  const bad = await op("getFilters", keys.catalog, { ...filters, filterGroupCode: ["Category"] });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.headers["x-plumgate-cache"], "bypass", "a refused cacheable call says the cache was not used");
  const scope = await op("getFilters", keys.reader, filters);
  assert.equal(scope.status, 403, scope.text);
  assert.equal(scope.headers["x-plumgate-cache"], "bypass");
  const order = await op("getOrderDetails", keys.reader, { poNumber: "no-such-po-for-cache-header", sendMailToReceiver: 0 });
  assert.equal(order.headers["x-plumgate-cache"], undefined, "not a cacheable operation");
  assert.equal(await calls("getFilters"), n + 2, "the refusals sent nothing");

  // getBalance has one entry per account, whatever the data: an admin's
  // bypass refreshes it, and a call with an unknown field is served from it
  // (a nonce cannot miss the cache at will).
  n = await calls("getBalance");
  const b0 = await op("getBalance", keys.admin, {}, { "cache-control": "max-age=0, no-cache" });
  assert.equal(b0.headers["x-plumgate-cache"], "bypass");
  const b1 = await op("getBalance", keys.balance, {});
  const b2 = await op("getBalance", keys.balance, { cacheTest: 1 });
  assert.deepEqual([b1.headers["x-plumgate-cache"], b2.headers["x-plumgate-cache"]], ["hit", "hit"]);
  assert.equal(b2.text, b1.text);
  assert.equal(await calls("getBalance"), n + 1);
  // Error answers are not cached: a page Xoxoday failed on (no copy of it
  // to fall back on) is asked for again, then kept.
  const page9 = { limit: 4, page: 9 };
  await sandbox.admin("/faults/api", { mode: "PLE10023", op: "getVouchers", count: 1 });
  n = await calls("getVouchers");
  const e1 = await op("getVouchers", keys.catalog, page9);
  assert.equal(e1.status, 502, e1.text);
  const e2 = await op("getVouchers", keys.catalog, page9);
  const e3 = await op("getVouchers", keys.catalog, page9);
  assert.deepEqual([e2.status, e2.headers["x-plumgate-cache"], e3.headers["x-plumgate-cache"]], [200, "miss", "hit"], e2.text);
  assert.equal(await calls("getVouchers"), n + 2, "the error was not served again");
  // Nor is an answer with Xoxoday's failure flag (HTTP 200, `status` 0):
  // passed on as it came, then asked for again, then kept.
  const page10 = { limit: 4, page: 10 };
  await sandbox.admin("/faults/api", { mode: "status_zero", op: "getVouchers", count: 1 });
  n = await calls("getVouchers");
  const z1 = await op("getVouchers", keys.catalog, page10);
  assert.deepEqual([z1.status, z1.json?.data?.getVouchers?.status], [200, 0], z1.text);
  const z2 = await op("getVouchers", keys.catalog, page10);
  const z3 = await op("getVouchers", keys.catalog, page10);
  assert.deepEqual([z2.headers["x-plumgate-cache"], z3.headers["x-plumgate-cache"]], ["miss", "hit"], z2.text);
  assert.equal(z3.json.data.getVouchers.status, 1, z3.text);
  assert.equal(await calls("getVouchers"), n + 2, "the failure flag was not served again");

  // Another catalogue (categoryType, the perks page's categoryTypes) is an
  // entry of its own: the gift cards' page is never served for it, nor
  // its (here empty) page for the gift cards.
  const giftCards = await op("getVouchers", keys.catalog, { limit: 4, page: 1 });
  assert.ok(giftCards.json.data.getVouchers.data.length > 0, giftCards.text);
  for (const other of [{ categoryType: "merchandise" }, { categoryTypes: "offers" }]) {
    const first = await op("getVouchers", keys.catalog, { limit: 4, page: 1, ...other });
    const again = await op("getVouchers", keys.catalog, { limit: 4, page: 1, ...other });
    assert.deepEqual([first.headers["x-plumgate-cache"], again.headers["x-plumgate-cache"]], ["miss", "hit"], JSON.stringify(other));
    assert.deepEqual(again.json.data.getVouchers.data, [], JSON.stringify(other));
  }
  const giftAgain = await op("getVouchers", keys.catalog, { limit: 4, page: 1 });
  assert.equal(giftAgain.headers["x-plumgate-cache"], "hit");
  assert.equal(giftAgain.text, giftCards.text);
});

test("caching: by default a catalogue entry is fresh 6 hours and kept stale a day more (the Cache API's stored entry read)", async () => {
  // The six hours cannot be waited out (the worker's clock is real): the
  // entry the file's worker, at the product's defaults, wrote for a new
  // call says when it goes stale and when it goes.
  const body = { limit: 3, page: 17 };
  const before = Date.now();
  const r = await op("getVouchers", keys.catalog, body);
  const after = Date.now();
  assert.deepEqual([r.status, r.headers["x-plumgate-cache"]], [200, "miss"], r.text);
  const { DatabaseSync } = await import("node:sqlite");
  const { readdirSync } = await import("node:fs");
  const { join } = await import("node:path");
  const dir = join(w.persistDir, "state/v3/cache/miniflare-CacheObject");
  const entries = () => readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite").flatMap((f) => {
    const db = new DatabaseSync(join(dir, f), { readOnly: true });
    try {
      return db.prepare("SELECT key, metadata FROM _mf_entries").all().map((e) => ({ key: e.key, headers: Object.fromEntries(JSON.parse(e.metadata).headers) }));
    } finally {
      db.close();
    }
  });
  // Written after the answer (deferred): the one whose freshness starts in
  // the call's window (or within the few seconds a deferred write takes).
  const SIX_HOURS = 21_600_000;
  const mine = (e) => /\/getVouchers\//.test(e.key) && Number(e.headers["x-plumgate-expires"]) - SIX_HOURS >= before - 1 && Number(e.headers["x-plumgate-expires"]) - SIX_HOURS <= after + 5_000;
  const found = await waitFor(() => { const m = entries().filter(mine); return m.length ? m : null; }, { timeout: 5_000, interval: 100, what: "the catalogue entry in the Cache API" });
  assert.equal(found.length, 1, JSON.stringify(found));
  const [{ key, headers }] = found;
  assert.match(key, /\/21600s\/getVouchers\//, "the lifetime is part of the entry's address");
  assert.equal(Number(headers["x-plumgate-stale-until"]) - Number(headers["x-plumgate-expires"]), 86_400_000, "kept stale a day after");
  assert.equal(headers["cache-control"], "max-age=108000", "the Cache API keeps it 6 hours + a day");
});

test("caching: entries expire after their lifetimes (the catalogue's shortened to 3 s, the balance's default 10 s waited); unknown fields never make entries", async () => {
  // Its own worker: the catalogue's six-hour default cannot be waited, and
  // the file's worker runs at the product's lifetimes. Its own token pair:
  // the file's worker has rotated the default one.
  const { refresh_token } = await sandbox.admin("/tokens/issue", {});
  const wt = await startWorker({
    sandbox, keys, vars: { XOXODAY_REFRESH_TOKEN: refresh_token, CATALOG_CACHE_TTL_SECS: String(CATALOG_TTL) },
  });
  const get = (name, key, body) => call(wt, `/v1/ops/${name}`, { key, body });
  const calls = async (name) => (await counters()).api_calls[name];
  try {
    let n = await calls("getBalance");
    const b0 = await get("getBalance", keys.balance, {});
    const tb = Date.now(); // the balance entry was stored before b0's answer came
    assert.deepEqual([b0.status, b0.headers["x-plumgate-cache"]], [200, "miss"], b0.text);
    assert.equal(await calls("getBalance"), n + 1);
    const v1 = await get("getVouchers", keys.catalog, { limit: 4, page: 1 });
    const t0 = Date.now(); // the entry was stored before v1's answer came
    const v2 = await get("getVouchers", keys.catalog, { limit: 4, page: 1 });
    assert.deepEqual([v1.headers["x-plumgate-cache"], v2.headers["x-plumgate-cache"]], ["miss", "hit"]);
    n = await calls("getVouchers");
    await sleep(Math.max(0, CATALOG_TTL * 1000 + 300 - (Date.now() - t0)));
    const v3 = await get("getVouchers", keys.catalog, { limit: 4, page: 1 });
    assert.equal(v3.headers["x-plumgate-cache"], "miss", "expired after its lifetime");
    assert.equal(await calls("getVouchers"), n + 1);
    // A field plumgate does not key on may filter the answer (the upstream
    // API grows): the call is not answered from the fresh entry of the call
    // without it, but sent on with its field, and its answer changes nothing.
    await clearRequests();
    const vf = await get("getVouchers", keys.catalog, { limit: 4, page: 1, cacheTest: "x" });
    assert.equal(vf.status, 200, vf.text);
    assert.equal(vf.headers["x-plumgate-cache"], "miss", "not the entry of the call without the field");
    const forwarded = (await sandboxRequests(sandbox)).filter((s) => s.op === "getVouchers");
    assert.deepEqual([forwarded.length, forwarded[0]?.body?.variables?.data?.cacheTest], [1, "x"], "sent on with its field");
    assert.equal(await calls("getVouchers"), n + 2);
    const v4 = await get("getVouchers", keys.catalog, { limit: 4, page: 1 });
    assert.deepEqual([v4.headers["x-plumgate-cache"], v4.text], ["hit", v3.text], "the entry is as it was");
    // The balance entry outlives the catalogue's (its own lifetime), then
    // expires. getBalance takes no input (xoxoday-api.md §3.3): a call with an
    // unknown field goes upstream and refills the one entry like any call
    // (else nonces could keep missing it at will).
    n = await calls("getBalance");
    const kept = await get("getBalance", keys.balance, {});
    assert.equal(kept.headers["x-plumgate-cache"], "hit", "the balance is kept past the catalogue's lifetime");
    assert.equal(await calls("getBalance"), n);
    await sleep(Math.max(0, BALANCE_TTL * 1000 + 300 - (Date.now() - tb)));
    const bx = await get("getBalance", keys.balance, { cacheTest: 1 });
    const by = await get("getBalance", keys.balance, { cacheTest: 2 });
    const bz = await get("getBalance", keys.balance, {});
    assert.deepEqual([bx, by, bz].map((r) => r.headers["x-plumgate-cache"]), ["miss", "hit", "hit"]);
    assert.equal(await calls("getBalance"), n + 1);
    // getVouchers' unknown field still never makes an entry of its own
    // (Xoxoday's catalogue takes inputs it may grow): expired, it misses,
    // and the entry stays empty for the next call.
    await sleep(CATALOG_TTL * 1000 + 300); // v3's entry expires
    n = await calls("getVouchers");
    const vx = await get("getVouchers", keys.catalog, { limit: 4, page: 1, cacheTest: 1 });
    const vy = await get("getVouchers", keys.catalog, { limit: 4, page: 1, cacheTest: 2 });
    const vz = await get("getVouchers", keys.catalog, { limit: 4, page: 1 });
    assert.deepEqual([vx, vy, vz].map((r) => r.headers["x-plumgate-cache"]), ["miss", "miss", "miss"], "neither answer was stored");
    assert.equal(await calls("getVouchers"), n + 3);
  } finally {
    await wt.stop();
    cleanup(wt.persistDir);
  }
});

// ----------------------------------------------------------------- penalty

async function penaltyScenario(name, data, status, shape = "errors_array") {
  // Xoxoday's penalty (the sandbox's side) long enough for a few calls
  // during it, on a slow machine too.
  await sandbox.admin("/config", { rate_limits: { ...HIGH_LIMITS, [name]: 1 }, penalty_seconds: 5, rate_limit_status: status, rate_limit_shape: shape });
  // With a limit of 1 per minute the first or second call goes over it
  // (earlier tests may already have used this minute's allowance).
  let limited;
  for (let i = 0; i < 3; i++) {
    limited = await op(name, keys.admin, data);
    if (limited.status !== 200) break;
  }
  assert.equal(limited.status, 429, `${name} with upstream status ${status}, ${shape}: ${limited.text}`);
  assert.equal(errCode(limited), "rate_limited");
  const ra = Number(limited.headers["retry-after"]);
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 5, `Retry-After ${limited.headers["retry-after"]}`);
  const n = (await counters()).api_calls[name];
  const until = Date.now() + ra * 1000;
  // During the penalty: 429 with Retry-After and no upstream call, on both routes.
  let during = 0;
  for (let i = 0; i < 5 && Date.now() < until - 500; i++, during++) {
    const r = i % 2 ? await dropIn(keys.admin, envelope(name, data)) : await op(name, keys.admin, data);
    assert.equal(r.status, 429);
    assert.equal(errCode(r), "rate_limited");
    assert.ok(Number(r.headers["retry-after"]) >= 1);
    if (i % 2) {
      // Xoxoday's own rate-limit shape too, so its clients back off.
      assert.equal(r.json.errors[0].message, "auth.request_limit_exceeded");
      assert.equal(r.json.errors[0].penaltySeconds, Number(r.headers["retry-after"]));
    }
    await sleep(100);
  }
  assert.ok(during >= 2, `${during} calls during the penalty: both routes were to be asked`);
  assert.equal((await counters()).api_calls[name], n, "no upstream calls during the penalty");
  // Other operations are not penalised.
  assert.equal((await op("getOrderDetails", keys.admin, { poNumber: po("route-a") })).status, 200);
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS });
  await sleep(Math.max(0, until - Date.now() + 200));
  // Upstream's own penalty on the same clock ends too; allow it a moment.
  let after;
  for (let i = 0; i < 10; i++) {
    after = await op(name, keys.admin, data);
    if (after.status === 200) break;
    await sleep(300);
  }
  assert.equal(after.status, 200, `after the penalty: ${after.text}`);
  assert.ok((await counters()).api_calls[name] > n, "calls go upstream again");
}

test("penalty: upstream HTTP 429 rate-limit answer → 429 rate_limited, no upstream calls until it ends", async () => {
  await penaltyScenario("getOrderHistory", { startDate: "2020-01-01", endDate: "2099-12-31", limit: 2 }, 429);
});

test("penalty: upstream 200 with the rate-limit errors body → 429 rate_limited", async () => {
  await penaltyScenario("paymentHistory", { startDate: "2020-01-01", endDate: "2099-12-31", limit: 2 }, 200);
  await sandbox.admin("/config", { rate_limit_status: 429, penalty_seconds: 60 });
});

test("penalty: upstream 400 with `errors` as one object (another reading of the docs) → 429 rate_limited for its penaltySeconds", async () => {
  await penaltyScenario("getOrderHistory", { startDate: "2020-01-01", endDate: "2099-12-31", limit: 3 }, 400, "errors_object");
  await sandbox.admin("/config", { rate_limit_status: 429, penalty_seconds: 60, rate_limit_shape: "errors_array" });
});

test("penalty: upstream 429 saying only `auth.request_limit_exceeded` (no penaltySeconds, no Retry-After) → 429 rate_limited for plumgate's own penalty (60 s, doubling on repeats)", async () => {
  // The API documents no Retry-After: the unstated penalty is plumgate's
  // (60 s, doubling on repeats). Not waited out: nothing after this test
  // calls paymentHistory.
  const data = { startDate: "2020-01-01", endDate: "2099-12-31", limit: 4 };
  await sandbox.admin("/config", { rate_limits: { ...HIGH_LIMITS, paymentHistory: 1 }, penalty_seconds: 60, rate_limit_status: 429, rate_limit_shape: "message" });
  try {
    let limited;
    for (let i = 0; i < 3; i++) {
      limited = await op("paymentHistory", keys.admin, data);
      if (limited.status !== 200) break;
    }
    assert.equal(limited.status, 429, limited.text);
    assert.equal(errCode(limited), "rate_limited");
    const ra = Number(limited.headers["retry-after"]);
    // 60 s, or 120 s: paymentHistory's penalty two tests ago makes this
    // one a repeat.
    assert.ok(Number.isInteger(ra) && ra >= 55 && ra <= 120, `Retry-After ${limited.headers["retry-after"]}`);
    const n = (await counters()).api_calls.paymentHistory;
    const again = await op("paymentHistory", keys.admin, data);
    assert.deepEqual([again.status, errCode(again)], [429, "rate_limited"]);
    assert.equal((await counters()).api_calls.paymentHistory, n, "no upstream call during the penalty");
  } finally {
    await sandbox.admin("/config", { rate_limits: HIGH_LIMITS, rate_limit_shape: "errors_array" });
  }
});

test("penalty: upstream 429 naming its penalty only in Retry-After (a layer in front of Xoxoday) → 429 rate_limited for that long, not plumgate's 60 s", async () => {
  // The Plum API documents no Retry-After (xoxoday-api.md §3.9); a proxy's
  // or CDN's 429 carries one, with Xoxoday's bare message here.
  const data = { startDate: "2020-01-01", endDate: "2099-12-31", limit: 5 };
  await sandbox.admin("/faults/api", { mode: "rate_limited", shape: "status429", penalty_seconds: 4, op: "getOrderHistory" });
  const limited = await op("getOrderHistory", keys.admin, data);
  const until = Date.now() + 4000;
  assert.equal(limited.status, 429, limited.text);
  assert.equal(errCode(limited), "rate_limited");
  const ra = Number(limited.headers["retry-after"]);
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 4, `the header's 4 s, not the unstated 60: Retry-After ${limited.headers["retry-after"]}`);
  const n = (await counters()).api_calls.getOrderHistory;
  const during = await op("getOrderHistory", keys.admin, data);
  assert.deepEqual([during.status, errCode(during)], [429, "rate_limited"]);
  assert.equal((await counters()).api_calls.getOrderHistory, n, "no upstream call during the penalty");
  await sleep(Math.max(0, until - Date.now() + 300));
  const after = await op("getOrderHistory", keys.admin, data);
  assert.equal(after.status, 200, `after the header's penalty: ${after.text}`);
  assert.equal((await counters()).api_calls.getOrderHistory, n + 1, "asked again once it ended");
});

// -------------------------------------------------------------------- CORS

test("CORS: listed origins get headers and a proper preflight; others get none", async () => {
  const c0 = await counters();
  // (A wrong base path too: the browser asks first, then reads the 404.)
  for (const path of ["/v1/ops/getBalance", "/chef/v1/oauth/api", "/v1/token", "/v1/token/refresh", "/api/v1/ops/getBalance", "/openapi.json"]) {
    const pre = await req(path, { method: "OPTIONS", headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } });
    assert.ok(pre.status === 204 || pre.status === 200, `${path}: ${pre.status}`);
    assert.equal(pre.headers["x-plumgate-cache"], undefined, `${path}: a preflight asks nothing of the cache`);
    assert.equal(pre.headers["access-control-allow-origin"], ORIGIN);
    assert.match(pre.headers["access-control-allow-methods"], /POST/);
    assert.match(pre.headers["access-control-allow-methods"], /GET/);
    assert.match(pre.headers["access-control-allow-methods"], /PATCH/, "PATCH /v1/keys/{id}");
    assert.match(pre.headers["access-control-allow-methods"], /DELETE/, "DELETE /v1/keys/{id}");
    assert.match(pre.headers["access-control-allow-headers"], /authorization/i);
    assert.match(pre.headers["access-control-allow-headers"], /content-type/i);
    assert.ok(Number(pre.headers["access-control-max-age"]) > 0);
    assert.match(pre.headers.vary ?? "", /origin/i);
    assert.equal(pre.headers["access-control-allow-credentials"], undefined, "keys are bearer tokens, not cookies");
    const second = await req(path, { method: "OPTIONS", headers: { origin: "http://localhost:3000", "access-control-request-method": "POST" } });
    assert.equal(second.headers["access-control-allow-origin"], "http://localhost:3000");
    for (const bad of ["https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com", "null"]) {
      const r = await req(path, { method: "OPTIONS", headers: { origin: bad, "access-control-request-method": "POST" } });
      assert.ok(r.status < 500);
      const acHeaders = Object.keys(r.headers).filter((h) => h.startsWith("access-control-"));
      assert.deepEqual(acHeaders, [], `${path} preflight from ${bad}`);
    }
  }
  const actual = await op("getBalance", keys.balance, {}, { origin: ORIGIN });
  assert.equal(actual.status, 200);
  assert.equal(actual.headers["access-control-allow-origin"], ORIGIN);
  assert.match(actual.headers["access-control-expose-headers"], /x-request-id/);
  assert.match(actual.headers["access-control-expose-headers"], /x-plumgate-cache/);
  assert.match(actual.headers["access-control-expose-headers"], /retry-after/i);
  const err = await op("getBalance", undefined, {}, { origin: ORIGIN });
  assert.equal(err.status, 401);
  assert.equal(err.headers["access-control-allow-origin"], ORIGIN, "errors are readable by a listed origin");
  // A wrong base path (outside /v1 and /chef): the 404 is readable too.
  const lost = await req("/api/v1/ops/getBalance", { key: keys.balance, method: "GET", headers: { origin: ORIGIN } });
  assert.equal(lost.status, 404);
  assert.equal(errCode(lost), "not_found");
  assert.equal(lost.headers["access-control-allow-origin"], ORIGIN, "a browser caller with a wrong base path reads the 404");
  const evil = await op("getBalance", keys.balance, {}, { origin: "https://evil.example.com" });
  assert.equal(evil.status, 200);
  assert.deepEqual(Object.keys(evil.headers).filter((h) => h.startsWith("access-control-")), []);
  const none = await op("getBalance", keys.balance, {});
  assert.deepEqual(Object.keys(none.headers).filter((h) => h.startsWith("access-control-")), []);
  // (getOrderDetails left out: the ledger keeps checking the order the
  // reconciliation test left pending, from its alarm.)
  const notChecks = (c) => apiTotal(c) - c.api_calls.getOrderDetails;
  assert.equal(notChecks(await counters()), notChecks(c0) + 1, "preflights never go upstream (only the one miss did)");
});

// -------------------------------------------------------------------- logs

test("logs: one JSON line per request with the contract's fields, and nothing else", async () => {
  // The last lines arrive through wrangler's pipes a moment after their answers.
  await w.logsFor(requestIds.map(([rid]) => rid), { timeout: 10_000 });
  const logs = w.jsonLogs().filter((l) => typeof l.request_id === "string");
  const byId = new Map();
  for (const l of logs) byId.set(l.request_id, (byId.get(l.request_id) ?? 0) + 1);
  let checked = 0;
  for (const [rid, expect] of requestIds) {
    const lines = logs.filter((l) => l.request_id === rid);
    assert.equal(lines.length, 1, `exactly one log line for ${rid} (${JSON.stringify(expect)})`);
    const line = lines[0];
    for (const f of ["time", "request_id", "method", "route", "operation", "caller", "status", "upstream_status", "cache", "duration_ms"]) {
      assert.ok(f in line, `field ${f} in ${JSON.stringify(line)}`);
    }
    assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(typeof line.duration_ms, "number");
    assert.equal(line.status, expect.status);
    if (expect.route) assert.equal(line.route, expect.route);
    if (expect.operation && expect.status !== 404) assert.equal(line.operation, expect.operation);
    checked++;
  }
  assert.ok(checked > 300, `checked ${checked} lines`);
  // Spot checks of content.
  const hit = logs.find((l) => l.cache === "hit");
  assert.ok(hit && hit.upstream_status === null && hit.status === 200, "a cache hit is logged without an upstream status");
  const placed = logs.find((l) => l.operation === "placeOrder" && l.status === 200 && l.note === null);
  assert.equal(placed.upstream_status, 200);
  assert.equal(placed.caller, "orders-writer");
  assert.equal(placed.method, "POST");
  const replay = logs.find((l) => l.note === "replayed");
  assert.ok(replay, "replays are marked");
  const unauth = logs.find((l) => l.status === 401);
  assert.equal(unauth.caller, null);
  assert.equal(unauth.error, "unauthorized");
  const limited = logs.find((l) => l.status === 429);
  assert.equal(limited.error, "rate_limited");
  const viaDropIn = logs.find((l) => l.route === "/chef/v1/oauth/api" && l.status === 200);
  assert.ok(viaDropIn.operation, "drop-in lines name the operation");
  // Nothing but the listed fields, and no header or body material.
  const allowed = new Set(["time", "level", "request_id", "method", "route", "operation", "caller", "status", "upstream_status", "cache", "error", "note", "duration_ms", "token"]);
  for (const l of logs) {
    assert.ok([undefined, null, "memory", "kv", "authority"].includes(l.token), `token field is only the token's source: ${l.token}`);
    for (const k of Object.keys(l)) assert.ok(allowed.has(k), `unexpected log field ${k}: ${JSON.stringify(l).slice(0, 300)}`);
  }
  for (const line of w.lines) {
    assert.doesNotMatch(line, /bearer\s|authorization:|pgk_|poNumber|voucherCode|"pin"/i, `log line: ${line.slice(0, 160)}`);
  }
});

test("an upstream error quoting the request's Authorization header reaches the caller with Xoxoday's access token redacted, on both bases", async () => {
  // The contract: no token in any answer. Xoxoday documents no such error;
  // the sandbox's echo_header fault is a reading of its error shape.
  const range = { startDate: "2020-01-01", endDate: "2020-01-02" };
  await sandbox.admin("/faults/api", { mode: "echo_header", op: "getOrderHistory", count: 2 });
  const answers = [await op("getOrderHistory", keys.admin, range), await dropIn(keys.admin, envelope("getOrderHistory", range))];
  const { tokens } = await sandbox.admin("/tokens/issued");
  assert.ok(tokens.length >= 2, "the sandbox lists the tokens it issued");
  for (const r of answers) {
    assert.deepEqual([r.status, r.json?.errorId, r.json?.error], [400, "PLE10001", "invalid request with authorization Bearer [redacted]"], r.text);
    assert.deepEqual(tokens.filter((t) => r.text.includes(t)), [], "no token the sandbox issued");
  }
  assert.equal((await op("getOrderHistory", keys.admin, range)).status, 200, "the fault used up: answered as usual");
});
