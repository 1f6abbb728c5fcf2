// The drop-in base as unchanged Xoxoday clients use it (issue 16).
//
// Fixtures: every request four public Xoxoday clients send — Xoxoday's own
// MCP server (giftcard tools, TypeScript), alldigitalrewards/xoxoday (PHP,
// Guzzle), helsinki-systems/xoxoday (Go, golang.org/x/oauth2) and
// hagarwal-velsof/xoxoday-plumapi (PHP, Laravel) — rewritten here from
// reading their code: the same paths, headers, body encodings and field
// types, with only the base URL pointed at plumgate and a gateway key where
// the Xoxoday token (or refresh token) goes. Each must succeed against the
// sandbox, which refuses what Xoxoday's documents refuse, so a request
// plumgate forwarded wrongly would fail here.
//
// Also: what Xoxoday accepts beyond those four (numeric strings, flags,
// empty strings, no upper bounds), numbers in fields Xoxoday types
// "string" (forwarded as sent; refused under the documented reading), the
// payment report under both names and
// envelopes, unknown plumProAPI queries (forwarded for `*` keys only), the
// token endpoints, and plumgate's errors in Xoxoday's shapes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  startSandbox, startWorker, standardKeys, makeKey, call, leakScan, cleanup, capturedResponses,
  collectVoucherSecrets, voucherLeakScan, voucherScanLacks, sandboxRequests,
} from "./harness.mjs";

const keys = {
  ...standardKeys(),
  // One key per client, with the scopes its tools need.
  mcp: makeKey("xoxoday-mcp", ["catalog", "balance", "orders:write"]),
  adr: makeKey("adr-php", ["catalog", "balance", "orders:write"]),
  go: makeKey("helsinki-go", ["catalog", "balance", "orders:write"]),
  laravel: makeKey("laravel-plumapi", ["orders:write"]),
  py: makeKey("blueromans-py", ["catalog", "orders:write"]),
};
const HIGH_LIMITS = {
  getBalance: 100000, getFilters: 100000, getVouchers: 100000, placeOrder: 100000,
  getOrderDetails: 100000, getOrderHistory: 100000, paymentHistory: 100000,
};
const RUN = Date.now().toString(36);
const TODAY = new Date().toISOString().slice(0, 10);
const FIFTEEN_DAYS = 1_296_000;
// BALANCE_CACHE_TTL_SECS' default: the worker runs on every default, both
// edge caches on, as a deployment does.
const BALANCE_TTL_MS = 10_000;

let sandbox;
let w;
const voucherSecrets = new Set();
// When `http` last got a getBalance answer: the one cached balance (hit or
// miss) expires no later than BALANCE_TTL_MS after it.
let lastBalanceAnswer = 0;

before(async () => {
  sandbox = await startSandbox();
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS, initial_balance: 10_000_000 });
  w = await startWorker({ sandbox, keys });
});

after(async () => {
  // Workers stopped first: lines still in their pipes, or printed as
  // they stop, are scanned too.
  await w?.stop();
  const hits = await leakScan(sandbox, keys);
  const lacks = await voucherScanLacks(sandbox, voucherSecrets);
  const vhits = voucherLeakScan(voucherSecrets);
  await sandbox?.stop();
  if (w) cleanup(w.persistDir);
  assert.deepEqual(hits, [], "no Xoxoday token or secret, and no caller key, in any recorded answer or log line");
  assert.equal(lacks, "", "the clients' orders gave voucher codes and PINs to scan for");
  assert.deepEqual(vhits, [], "no voucher code or PIN in a log line or error answer");
});

// ------------------------------------------------------------------ helpers

/**
 * A raw HTTP call to plumgate, as a client library makes it. The answer is
 * recorded for the leak scan, except a token endpoint's 200, which holds
 * the caller's own key by design: that one is checked by `tokenAnswer`.
 */
async function http(method, path, { headers = {}, body } = {}) {
  const res = await fetch(`${w.url}${path}`, { method, headers, body });
  const text = await res.text();
  const hdrs = Object.fromEntries(res.headers.entries());
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  const isTokenAnswer = res.status === 200 && path.startsWith("/chef/v1/oauth/token");
  if (!isTokenAnswer) capturedResponses.push(`${res.status} ${JSON.stringify(hdrs)} ${text}`);
  if (res.status === 200 && json) collectVoucherSecrets(json, voucherSecrets);
  if (res.status === 200 && json?.data?.getBalance) lastBalanceAnswer = Date.now();
  return { status: res.status, headers: hdrs, text, json };
}

/** Every Xoxoday token value and secret the sandbox knows: none may appear in a token answer. */
async function xoxodayCredentials() {
  const issued = await sandbox.admin("/tokens/issued");
  return ["plumgate-dev-secret", "plumgate-dev-refresh-token", "plumgate-dev-access-token", ...issued.tokens];
}

/** Checks a token endpoint's 200: Xoxoday's shape, the presented key, no Xoxoday credential. */
async function tokenAnswer(r, key, { refresh }) {
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers["x-request-id"] ?? "", /^[0-9a-f]{32}$/);
  assert.equal(r.headers["cache-control"], "no-store");
  const t = r.json;
  assert.equal(t.access_token, key.key);
  assert.equal(t.token_type, "bearer");
  assert.equal(t.expires_in, String(FIFTEEN_DAYS), "a string of digits, as Xoxoday's answers carry it");
  const now = Date.now();
  assert.ok(Math.abs(Number(t.access_token_expiry) - (now + FIFTEEN_DAYS * 1000)) < 120_000, `access_token_expiry ${t.access_token_expiry}`);
  assert.ok(Math.abs(Number(t.refresh_token_expiry) - (now + 2 * FIFTEEN_DAYS * 1000)) < 120_000, `refresh_token_expiry ${t.refresh_token_expiry}`);
  if (refresh) assert.equal(t.refresh_token, key.key);
  else assert.equal(t.refresh_token, undefined);
  for (const secret of await xoxodayCredentials()) assert.ok(!r.text.includes(secret), "no Xoxoday credential in a token answer");
  // The key itself never reaches a log line (the leak scan also checks this).
  const [line] = await w.logsFor([r.headers["x-request-id"]]);
  assert.ok(line, "the token call is logged");
  assert.equal(line.caller, key.id);
  return t;
}

/** A Plum answer for `op` (paymentHistory's comes under getPaymentReport). */
function plumOk(r, op, what) {
  assert.equal(r.status, 200, `${what}: ${r.text.slice(0, 400)}`);
  const answerKey = op === "paymentHistory" ? "getPaymentReport" : op;
  assert.equal(r.json?.data?.[answerKey]?.status, 1, `${what}: ${r.text.slice(0, 400)}`);
  return r.json.data[answerKey].data;
}

/**
 * A cacheable call's answer came from Xoxoday, not the edge cache: the
 * caches are on (the defaults), so a check of `lastUpstream()` after it
 * reads this call's request, not an earlier one's.
 */
function missed(r, what) {
  assert.equal(r.headers["x-plumgate-cache"], "miss", `${what}: asked of Xoxoday, not answered from the cache`);
}

/** Wait until the cached balance any earlier getBalance left has expired (getBalance has one entry whatever its data). */
async function balanceExpired() {
  await sleep(Math.max(0, lastBalanceAnswer + BALANCE_TTL_MS + 1_000 - Date.now()));
}

/** The last request the sandbox received. */
async function lastUpstream() {
  const seen = await sandboxRequests(sandbox, 5);
  return seen[seen.length - 1];
}

const canonical = (query, data) => (query.endsWith(".paymentHistory")
  ? { query, tag: "plumProAPI", data: { data } }
  : { query, tag: "plumProAPI", variables: { data } });

// ---------------------------------------------------- Xoxoday's MCP server

// src/core/auth.ts posts a JSON refresh to {auth url}; src/core/client.ts
// posts every tool's envelope with `Authorization: Bearer` and a JSON
// content type (Node fetch), `variables.data` always, mutation except
// getBalance; ids, denominations and quantities as strings.
const mcp = {
  async token() {
    return http("POST", "/chef/v1/oauth/token/user", {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_type: "refresh_token", refresh_token: keys.mcp.key, client_id: "mcp-client-id", client_secret: "mcp-client-secret" }),
    });
  },
  async tool(token, queryName, data, type = "mutation") {
    return http("POST", "/chef/v1/oauth/api", {
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ query: `plumProAPI.${type}.${queryName}`, tag: "plumProAPI", variables: { data } }),
    });
  },
};

test("xoxoday-mcp: its token call and every giftcard tool's request succeed", async () => {
  const t = await tokenAnswer(await mcp.token(), keys.mcp, { refresh: true });
  // It refreshes 5 minutes before expires_in runs out: the answer must leave it time.
  assert.ok(t.expires_in * 1000 > 300_000);
  const token = t.access_token;

  plumOk(await mcp.tool(token, "getFilters", {}), "getFilters", "giftcard_get_filters, all groups");
  plumOk(await mcp.tool(token, "getFilters", { filterGroupCode: "voucher_category" }), "getFilters", "giftcard_get_filters, one group");
  // giftcard_get_filters with a market: the catalog of that market, 500 at once.
  const market = plumOk(await mcp.tool(token, "getVouchers", {
    filters: [{ key: "country", value: "usa" }, { key: "currencyCode", value: "USD" }], page: 1, limit: 500, exchangeRate: 1,
  }), "getVouchers", "giftcard_get_filters' market lookup");
  assert.ok(market.length > 0);
  // giftcard_get_vouchers with every filter it knows (prices as strings, its
  // own voucher_category key) and a sort.
  const vouchers = plumOk(await mcp.tool(token, "getVouchers", {
    filters: [
      { key: "country", value: "usa" }, { key: "currencyCode", value: "USD" }, { key: "voucher_category", value: "food" },
      { key: "minPrice", value: "10" }, { key: "maxPrice", value: "100" }, { key: "productName", value: "a" },
      { key: "deliveryType", value: "realtime" },
    ],
    page: 1, limit: 20, exchangeRate: 1, sort: { field: "name", order: "ASC" },
  }), "getVouchers", "giftcard_get_vouchers");
  assert.ok(Array.isArray(vouchers));
  plumOk(await mcp.tool(token, "getVouchers", { filters: [], page: 1, limit: 20, exchangeRate: 1 }), "getVouchers", "giftcard_get_vouchers, no filter");
  // giftcard_get_voucher: one product by name and currency.
  const one = plumOk(await mcp.tool(token, "getVouchers", {
    filters: [{ key: "productName", value: market[0].name }, { key: "currencyCode", value: market[0].currencyCode }], page: 1, limit: 1,
  }), "getVouchers", "giftcard_get_voucher");
  assert.equal(one.length, 1);
  assert.equal(one[0].name, market[0].name);
  plumOk(await mcp.tool(token, "getBalance", {}, "query"), "getBalance", "giftcard_get_balance");

  // giftcard_place_order: productId, denomination and quantity as strings,
  // contact "" when not given, a PO-<uuid> poNumber.
  const poNumber = `PO-${randomUUID()}`;
  const placed = await mcp.tool(token, "placeOrder", {
    productId: "10100", denomination: "25", quantity: "1", email: "alex@example.com", tag: "b2c_store",
    poNumber, notifyReceiverEmail: 1, contact: "",
  });
  const order = plumOk(placed, "placeOrder", "giftcard_place_order");
  // Forwarded as sent (strings stay strings), plus the default GitBook requires.
  assert.deepEqual((await lastUpstream()).body, canonical("plumProAPI.mutation.placeOrder", {
    productId: "10100", denomination: "25", quantity: "1", email: "alex@example.com", tag: "b2c_store",
    poNumber, notifyReceiverEmail: 1, contact: "", notifyAdminEmail: 0,
  }));
  // giftcard_bulk_place_order: one order per item, BULK-<uuid>, in parallel.
  const bulk = await Promise.all([["10100", "10"], ["10100", "50"], ["10101", "25"]].map(([productId, denomination]) =>
    mcp.tool(token, "placeOrder", {
      productId, denomination, quantity: "2", email: "team@example.com", tag: "corporate_gifting",
      poNumber: `BULK-${randomUUID()}`, notifyReceiverEmail: 0, contact: "",
    })));
  for (const r of bulk) plumOk(r, "placeOrder", "giftcard_bulk_place_order");

  // giftcard_get_order_details: the orderId as a string, nothing else.
  const details = plumOk(await mcp.tool(token, "getOrderDetails", { orderId: String(order.orderId) }), "getOrderDetails", "giftcard_get_order_details");
  assert.equal(details.orderId, order.orderId);
  assert.deepEqual((await lastUpstream()).body.variables.data, { orderId: String(order.orderId), sendMailToReceiver: 0 },
    "GitBook's required sendMailToReceiver is sent as 0 (no resend)");
  plumOk(await mcp.tool(token, "getOrderHistory", { startDate: "2025-01-01", endDate: TODAY, page: 1, limit: 20 }), "getOrderHistory", "giftcard_get_order_history");
  // giftcard_get_payment_report: its own query name, in variables.data.
  const report = plumOk(await mcp.tool(token, "getPaymentReport", { startDate: "2025-01-01", endDate: TODAY, page: 1, limit: 20 }), "paymentHistory", "giftcard_get_payment_report");
  assert.ok(report.length >= 2, "the opening credit and the orders");
  assert.deepEqual((await lastUpstream()).body, canonical("plumProAPI.mutation.paymentHistory", { startDate: "2025-01-01", endDate: TODAY, page: 1, limit: 20 }),
    "sent upstream as the documented paymentHistory");
  // With XOXODAY_ACCESS_TOKEN set to the key instead, it skips the token call.
  plumOk(await mcp.tool(keys.mcp.key, "getBalance", {}, "query"), "getBalance", "static token");
});

// ------------------------------------------------- alldigitalrewards/xoxoday

// Guzzle requests built in src/**/…Request.php: a hand-written JSON refresh
// body, `{"data": []}` for getBalance (PHP's empty array), every getVouchers
// field including an empty sort, integers and a float denomination.
const adr = {
  headers: (token) => ({ "Content-Type": "application/json", Authorization: `Bearer ${token}`, "User-Agent": "GuzzleHttp/7" }),
  async token() {
    return http("POST", "/chef/v1/oauth/token/user", {
      headers: { "Content-Type": "application/json", "User-Agent": "GuzzleHttp/7" },
      body: `{\n\t"grant_type":"refresh_token",\n\t"refresh_token":"${keys.adr.key}",\n\t"client_id":"some-client-id",\n\t"client_secret":"some-client-secret"\n}`,
    });
  },
  async api(token, rawJson) {
    return http("POST", "/chef/v1/oauth/api", { headers: adr.headers(token), body: rawJson });
  },
};

test("alldigitalrewards/xoxoday: its token request and every request class succeed", async () => {
  const t = await tokenAnswer(await adr.token(), keys.adr, { refresh: true });
  // AccessTokenResponse::isValid needs all three; isExpired compares now with created_on + expires_in.
  assert.ok(t.access_token && t.refresh_token && t.expires_in);
  const token = t.access_token;

  // The MCP client's balance calls filled the one balance entry: once it
  // has expired this call is asked of Xoxoday, so its data is seen upstream.
  await balanceExpired();
  const balanceAnswer = await adr.api(token, '{"query":"plumProAPI.query.getBalance","tag":"plumProAPI","variables":{"data":[]}}');
  const balance = plumOk(balanceAnswer, "getBalance", "GetBalanceRequest");
  assert.equal(typeof balance.value, "number");
  missed(balanceAnswer, "GetBalanceRequest");
  assert.deepEqual((await lastUpstream()).body.variables.data, {}, "PHP's empty array is sent as {}");
  plumOk(await adr.api(token, '{"query":"plumProAPI.mutation.getFilters","tag":"plumProAPI","variables":{"data":{"filterGroupCode":"","includeFilters":"","excludeFilters":""}}}'), "getFilters", "GetFiltersRequest");
  const page = plumOk(await adr.api(token, '{"query":"plumProAPI.mutation.getVouchers","tag":"plumProAPI","variables":{"data":{"limit":10,"page":1,"exchangeRate":1,"includeProducts":"10100","excludeProducts":"","sort":{"field":"","order":""},"filters":[]}}}'), "getVouchers", "GetVouchersRequest");
  assert.deepEqual(page.map((p) => p.productId), [10100]);
  plumOk(await adr.api(token, '{"query":"plumProAPI.mutation.getVouchers","tag":"plumProAPI","variables":{"data":{"limit":10,"page":2,"exchangeRate":1,"includeProducts":"","excludeProducts":"","sort":{"field":"","order":""},"filters":[]}}}'), "getVouchers", "GetVouchersRequest, next page");
  // PlaceOrderRequest: int productId and quantity, a PHP float denomination (json_encode writes 20.0).
  const po = `adr-${RUN}-1`;
  const order = plumOk(await adr.api(token, `{"query":"plumProAPI.mutation.placeOrder","tag":"plumProAPI","variables":{"data":{"productId":10101,"quantity":1,"denomination":25.0,"email":"","poNumber":"${po}"}}}`), "placeOrder", "PlaceOrderRequest");
  plumOk(await adr.api(token, `{"query":"plumProAPI.mutation.getOrderDetails","tag":"plumProAPI","variables":{"data":{"orderId":${order.orderId}}}}`), "getOrderDetails", "GetOrderDetailsRequest");
  // Its error check reads `error_description ?? error`: plumgate's own errors carry `error`.
  const refused = await adr.api(token, '{"query":"plumProAPI.mutation.placeOrder","tag":"plumProAPI","variables":{"data":{"productId":10101,"quantity":1,"denomination":25.0,"email":"","poNumber":""}}}');
  assert.equal(refused.status, 400);
  assert.match(refused.json.error, /data\.poNumber/, "a readable message in `error`");
});

// ------------------------------------------------ helsinki-systems/xoxoday

// Go: golang.org/x/oauth2 refreshes at {base}/v1/oauth/token/{token_type}
// ("bearer") with a form body and the client credentials in a Basic header
// (or, as its fallback, in the body); requests are http.Client.Post with
// "application/json" and Go's encoding of the request structs (zero values
// included).
const goClient = {
  async refresh({ credentialsInBody = false } = {}) {
    const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: keys.go.key });
    const headers = { "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip" };
    if (credentialsInBody) {
      form.set("client_id", "go-client");
      form.set("client_secret", "go-secret");
    } else {
      headers.Authorization = `Basic ${Buffer.from("go-client:go-secret").toString("base64")}`;
    }
    return http("POST", "/chef/v1/oauth/token/bearer", { headers, body: form.toString() });
  },
  async run(token, query, data) {
    return http("POST", "/chef/v1/oauth/api", {
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, "User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip" },
      body: JSON.stringify({ query, tag: "plumProAPI", variables: { data } }),
    });
  },
};

test("helsinki-systems/xoxoday: x/oauth2's refresh (both credential styles) and every API call succeed", async () => {
  const t = await tokenAnswer(await goClient.refresh(), keys.go, { refresh: true });
  await tokenAnswer(await goClient.refresh({ credentialsInBody: true }), keys.go, { refresh: true });
  // x/oauth2 requires access_token and reads expires_in through json.Number
  // (quoted or not); the client's own Token type decodes it only quoted
  // (`json:"expires_in,string"`), as Xoxoday's answers carry it.
  assert.match(t.expires_in, /^[0-9]+$/);
  const token = t.access_token;

  const vouchers = (data) => goClient.run(token, "plumProAPI.mutation.getVouchers", {
    limit: 0, page: 0, includeProducts: "", excludeProducts: "", exchangeRate: 0, sort: { field: "", order: "" }, filters: null, ...data,
  });
  // Its request struct's zero values: limit and page 0 (the whole catalogue, as the sandbox reads it).
  plumOk(await vouchers({}), "getVouchers", "Vouchers, zero values");
  plumOk(await vouchers({ limit: 10, page: 1 }), "getVouchers", "Vouchers, no filter");
  plumOk(await vouchers({ limit: 10, page: 1, exchangeRate: 1, filters: [{ key: "country", value: "usa" }] }), "getVouchers", "Vouchers, one filter");
  plumOk(await goClient.run(token, "plumProAPI.mutation.getFilters", { filterGroupCode: "country", includeFilters: "", excludeFilters: "" }), "getFilters", "Filters");
  plumOk(await goClient.run(token, "plumProAPI.query.getBalance", {}), "getBalance", "Balance");
  const po = `go-${RUN}-1`;
  // PlaceOrderRequestData: every field, empty strings where unset, flags as 0/1 ints.
  const order = plumOk(await goClient.run(token, "plumProAPI.mutation.placeOrder", {
    productId: 10100, quantity: 1, denomination: 50, email: "", contact: "", tag: "", poNumber: po, notifyAdminEmail: 0, notifyReceiverEmail: 1,
  }), "placeOrder", "PlaceOrder");
  // OrderDetailsRequestData: both fields always, the unused one a zero value.
  plumOk(await goClient.run(token, "plumProAPI.mutation.getOrderDetails", { orderId: 0, poNumber: po }), "getOrderDetails", "OrderDetails by poNumber");
  plumOk(await goClient.run(token, "plumProAPI.mutation.getOrderDetails", { orderId: order.orderId, poNumber: "" }), "getOrderDetails", "OrderDetails by orderId");
  plumOk(await goClient.run(token, "plumProAPI.mutation.getOrderHistory", { startDate: "2025-01-01", endDate: TODAY, limit: 10, page: 1 }), "getOrderHistory", "OrderHistory");
  // Its error type decodes {code, errorId, errorInfo, error}.
  const unauthorized = await goClient.run("pgk_not_a_key_0123456789abcdef", "plumProAPI.query.getBalance", {});
  assert.equal(unauthorized.status, 401);
  assert.deepEqual(Object.keys(unauthorized.json).sort(), ["code", "error", "errorId", "errorInfo", "request_id"]);
  assert.equal(unauthorized.json.code, 401);
  assert.equal(unauthorized.json.errorId, "PLUMGATE_UNAUTHORIZED");
});

// ------------------------------------------ hagarwal-velsof/xoxoday-plumapi

// Laravel's Http client (Guzzle): a JSON refresh to {base}/oauth/token/access_token
// whose answer's access_token and refresh_token are both stored, then a
// placeOrder with the database row's values (product and quantity from
// integer columns, the amount from a string column).
const laravel = {
  async token(refreshToken) {
    return http("POST", "/chef/v1/oauth/token/access_token", {
      headers: { "Content-type": "application/json", "User-Agent": "GuzzleHttp/7" },
      body: JSON.stringify({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: "", client_secret: "" }),
    });
  },
  async placeOrder(token, data) {
    return http("POST", "/chef/v1/oauth/api", {
      headers: { Authorization: `Bearer ${token}`, "Content-type": "application/json", "User-Agent": "GuzzleHttp/7" },
      body: JSON.stringify({ query: "plumProAPI.mutation.placeOrder", tag: "plumProAPI", variables: { data } }),
    });
  },
};

test("hagarwal-velsof/xoxoday-plumapi: its token refresh, the stored pair, and its placeOrder succeed", async () => {
  const first = await tokenAnswer(await laravel.token(keys.laravel.key), keys.laravel, { refresh: true });
  // It stores both values and refreshes with the stored refresh token next time.
  const second = await tokenAnswer(await laravel.token(first.refresh_token), keys.laravel, { refresh: true });
  const data = {
    productId: 10100, quantity: 1, denomination: "10", contact: "+91-9876543210",
    poNumber: `laravel-${RUN}-1`, notifyAdminEmail: 0, notifyReceiverEmail: 0,
  };
  const r = await laravel.placeOrder(second.access_token, data);
  plumOk(r, "placeOrder", "createXoxoOrder");
  assert.deepEqual((await lastUpstream()).body, canonical("plumProAPI.mutation.placeOrder", data), "sent exactly as given");
  // As published, the job reads the row's `refrence_id` (sic), so its
  // poNumber is null: plumgate needs a poNumber (its idempotency key) and
  // says so in Xoxoday's error shape, before anything reaches Xoxoday.
  const before = (await sandbox.counters()).api_calls.placeOrder;
  const typo = await laravel.placeOrder(second.access_token, { ...data, poNumber: null });
  assert.equal(typo.status, 400);
  assert.equal(typo.json.errorId, "PLUMGATE_INVALID_REQUEST");
  assert.match(typo.json.error, /data\.poNumber is required/);
  assert.equal((await sandbox.counters()).api_calls.placeOrder, before, "nothing sent upstream");
});

// ------------------------------------------------------ blueromans/XoxoDay

// Python requests: a JSON refresh to {base}/v1/oauth/token/user (no
// Authorization), later a validation with GET {base}/v1/oauth/token whose
// expires_in it reads with int(); every call posts its JSON file's envelope
// with `Authorization: Bearer`, `content-type` and `accept` JSON. Its
// voucher file asks for `limit: 10000, page: 0` on every call, and its
// placeOrder first looks the product up (includeProducts, a JSON number)
// and refuses itself when none comes back.
const py = {
  headers: (token) => ({ "content-type": "application/json", accept: "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) }),
  vouchers: (extra = {}) => ({
    query: "plumProAPI.mutation.getVouchers", tag: "plumProAPI",
    variables: { data: { limit: 10000, page: 0, includeProducts: "", excludeProducts: "", exchangeRate: 0, sort: { field: "", order: "" }, ...extra } },
  }),
  async api(token, envelope) {
    return http("POST", "/chef/v1/oauth/api", { headers: py.headers(token), body: JSON.stringify(envelope) });
  },
};

test("blueromans/XoxoDay: its token calls, its page-0 getVouchers and its placeOrder flow (numeric includeProducts passed on as sent)", async () => {
  const t = await tokenAnswer(await http("POST", "/chef/v1/oauth/token/user", {
    headers: py.headers(),
    body: JSON.stringify({ grant_type: "refresh_token", refresh_token: keys.py.key, client_id: "py-client", client_secret: "py-secret" }),
  }), keys.py, { refresh: true });
  const checked = await http("GET", "/chef/v1/oauth/token", { headers: py.headers(t.access_token) });
  assert.equal(checked.status, 200, checked.text);
  assert.ok(Number.isInteger(Number.parseInt(checked.json.expires_in, 10)), `int(expires_in): ${checked.json.expires_in}`);

  // Page 0: Xoxoday documents pages from 1, this client sends 0 and reads
  // the first page; plumgate forwards it as sent.
  const page0 = await py.api(t.access_token, py.vouchers());
  const all = plumOk(page0, "getVouchers", "getVouchers, page 0");
  assert.ok(all.length > 10, `the first page: ${all.length} products`);
  missed(page0, "getVouchers, page 0");
  assert.deepEqual((await lastUpstream()).body, py.vouchers(), "sent as given, page 0 included");
  // placeOrder: the product first, then the order with its JSON file's
  // string fields. Its product lookup sends `includeProducts: 10100`, a
  // number where xoxoday-api.md §3.2 documents "comma-separated product-ID
  // strings": under the documented reading Xoxoday would refuse it, and
  // nothing published shows it taking one. plumgate neither converts nor
  // refuses it: the number goes upstream as sent, and the sandbox's
  // documented refusal (400 PLE10001) comes back unchanged, so this
  // client's flow stops there against the documented Xoxoday.
  const lookup = py.vouchers({ includeProducts: 10100 });
  const refused = await py.api(t.access_token, lookup);
  assert.equal(refused.status, 400, refused.text);
  assert.deepEqual(refused.json, { code: 400, errorId: "PLE10001", errorInfo: "Validation error", error: "includeProducts must be a string" },
    "Xoxoday's (the sandbox's) refusal, unchanged");
  assert.deepEqual((await lastUpstream()).body, lookup, "sent as given: includeProducts still the number 10100");
  // The rest of its flow, where Xoxoday reads the number as its text (the
  // sandbox's lenient reading, `text_numbers`, which no Xoxoday document
  // confirms): the same request, sent the same way, finds the product.
  await sandbox.admin("/config", { text_numbers: true });
  let product;
  try {
    const lenient = await py.api(t.access_token, lookup);
    [product] = plumOk(lenient, "getVouchers", "the product, read leniently");
    missed(lenient, "the product lookup");
    assert.deepEqual((await lastUpstream()).body, lookup, "sent as given again");
  } finally {
    await sandbox.admin("/config", { text_numbers: false });
  }
  assert.equal(product.productId, 10100);
  const denominations = product.valueDenominations.split(",").map((d) => Number.parseInt(d, 10));
  assert.ok(denominations.includes(10), product.valueDenominations);
  const order = plumOk(await py.api(t.access_token, {
    query: "plumProAPI.mutation.placeOrder", tag: "plumProAPI",
    variables: { data: { productId: 10100, quantity: "1", denomination: 10, email: "winner@example.com", contact: "", tag: "", poNumber: `py-${RUN}-${randomUUID()}` } },
  }), "placeOrder", "placeOrder");
  assert.ok(order.orderId && order.vouchers?.[0]?.voucherCode, "handleOrder reads orderId and vouchers[0].voucherCode");
});

// ---------------------------------------------- what Xoxoday accepts, at large

test("values Xoxoday accepts pass and go upstream as sent (flags as 0/1, [] as {}, defaults added)", async () => {
  const key = keys.admin.key;
  const env = (query, data) => http("POST", "/chef/v1/oauth/api", {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ query, tag: "plumProAPI", variables: { data } }),
  });
  const cases = [
    // (A number in a field Xoxoday types "string" is no value it is
    // documented to accept: see the next test.)
    ["plumProAPI.mutation.getFilters", { filterGroupCode: null, includeFilters: "", excludeFilters: "usa" }, null],
    ["plumProAPI.mutation.getVouchers", { limit: "1000", page: "1", exchangeRate: true, includeProducts: "10100, nope", excludeProducts: "10101",
      sort: [], filters: [{ key: "currencyCode", value: "usd" }, { key: "minPrice", value: "0" }, { key: "maxPrice", value: 1e6 }, { key: "brandNew", value: 3 }] },
    { limit: "1000", page: "1", exchangeRate: 1, includeProducts: "10100, nope", excludeProducts: "10101",
      sort: {}, filters: [{ key: "currencyCode", value: "usd" }, { key: "minPrice", value: "0" }, { key: "maxPrice", value: 1e6 }, { key: "brandNew", value: 3 }] }],
    ["plumProAPI.mutation.placeOrder", { productId: "0010100", quantity: "10", denomination: "10.00", poNumber: `wide #${RUN} ø`, email: "",
      contact: "", tag: "", notifyReceiverEmail: false, notifyAdminEmail: "1", userMeta: [] },
    { productId: "0010100", quantity: "10", denomination: "10.00", poNumber: `wide #${RUN} ø`, email: "",
      contact: "", tag: "", notifyReceiverEmail: 0, notifyAdminEmail: 1, userMeta: {} }],
    ["plumProAPI.mutation.getOrderDetails", { poNumber: `wide #${RUN} ø`, orderId: "0", sendMailToReceiver: false },
      { poNumber: `wide #${RUN} ø`, orderId: "0", sendMailToReceiver: 0 }],
    ["plumProAPI.mutation.getOrderHistory", { startDate: "2020-01-01", endDate: "2099-12-31", limit: "2", page: "1", tag: "" }, null],
  ];
  for (const [query, data, expected] of cases) {
    const op = query.split(".").pop();
    const r = await env(query, data);
    plumOk(r, op, `${op} ${JSON.stringify(data)}`);
    if (op === "getFilters" || op === "getVouchers") missed(r, op);
    assert.deepEqual((await lastUpstream()).body, canonical(query, expected ?? data), `${op}: what went upstream`);
  }
});

// A JSON number where xoxoday-api.md types the field "string" (§3.1
// filterGroupCode, includeFilters, excludeFilters; §3.2 "comma-separated
// product-ID strings"; §3.4 email, contact, tag, poNumber): plumgate takes
// it (text as a string or a number) and sends it as sent, never as its
// text. Whether Xoxoday takes it no document says; under the documented
// reading (the sandbox's default) it is a 400 PLE10001, which comes back
// unchanged, and a refused order is not kept: under the lenient reading
// (`text_numbers`) the same request, sent again the same way, is answered.
test("numbers in text fields: forwarded as sent; the documented refusal passed on unchanged, the lenient reading's answer too", async () => {
  const key = keys.admin.key;
  const env = (query, data) => http("POST", "/chef/v1/oauth/api", {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ query, tag: "plumProAPI", variables: { data } }),
  });
  const numberedPo = Date.now() * 1000 + 7; // a whole number below 2^53: plumgate takes it as a poNumber
  const order = { productId: 10100, quantity: 1, denomination: 10, notifyReceiverEmail: 0, notifyAdminEmail: 0 };
  const cases = [
    ["plumProAPI.mutation.getFilters", { filterGroupCode: "country", includeFilters: "", excludeFilters: 5 }, "excludeFilters"],
    ["plumProAPI.mutation.getVouchers", { limit: 7, page: 1, includeProducts: "10100, 10101", excludeProducts: 10101 }, "excludeProducts"],
    ["plumProAPI.mutation.placeOrder", { ...order, poNumber: `num-tag-${RUN}`, tag: 12, email: "pat@example.com" }, "tag"],
    ["plumProAPI.mutation.placeOrder", { ...order, poNumber: numberedPo, email: "pat@example.com" }, "poNumber"],
  ];
  // What went upstream for this call (a refused order is followed by
  // plumgate's getOrderDetails check: the last request is that one).
  const sent = async (op) => (await sandboxRequests(sandbox)).filter((q) => q.op === op).at(-1);
  for (const [query, data, field] of cases) {
    const op = query.split(".").pop();
    await sandbox.admin("/requests/clear", {});
    const r = await env(query, data);
    assert.equal(r.status, 400, `${op} ${JSON.stringify(data)}: ${r.text}`);
    assert.deepEqual(r.json, { code: 400, errorId: "PLE10001", errorInfo: "Validation error", error: `${field} must be a string` },
      `${op}: Xoxoday's (the sandbox's) refusal, unchanged`);
    assert.deepEqual((await sent(op))?.body, canonical(query, data), `${op}: sent as given, ${field} still a number`);
    if (op === "getFilters" || op === "getVouchers") missed(r, op);
  }
  await sandbox.admin("/config", { text_numbers: true });
  try {
    for (const [query, data, field] of cases) {
      const op = query.split(".").pop();
      await sandbox.admin("/requests/clear", {});
      const r = await env(query, data);
      const answer = plumOk(r, op, `${op} under the lenient reading`);
      assert.notEqual(r.headers["x-plumgate-replayed"], "true", `${op}: asked again, not a replay of the refusal`);
      assert.deepEqual((await sent(op))?.body, canonical(query, data), `${op}: sent as given again, ${field} still a number`);
      if (op === "getFilters" || op === "getVouchers") missed(r, op);
      if (op === "getVouchers") assert.deepEqual(answer.map((p) => p.productId), [10100], "10101 excluded");
      if (op === "placeOrder" && field === "tag") assert.equal(answer.tag, "12", "read as its text");
    }
  } finally {
    await sandbox.admin("/config", { text_numbers: false });
  }
});

// Forms published clients send that Xoxoday's API reference allows: the
// guide's `/oauth/api/` (its getVouchers and placeOrder curl examples), PHP
// scripts' limit and page "0" to production, a JavaScript client's
// `filters: {}`, a price range as getFilters lists them, a Laravel client's
// getVouchers with neither limit nor page, and Xoxoday's MCP client's
// history with no dates, the Go client's zero values (dates "", limit and
// page 0). Each goes upstream for Xoxoday to judge; where the
// sandbox reads the documents the strict way (limit, page and dates
// required), its refusal is what the caller gets, as from Xoxoday.
test("published clients' forms: the guide's trailing slash, limit \"0\", filters {}, a price range, no limit, no dates, Go's zero values", async () => {
  const key = keys.admin.key;
  const post = (path, query, data) => http("POST", path, {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ query, tag: "plumProAPI", variables: { data } }),
  });
  const vouchers = "plumProAPI.mutation.getVouchers";
  const php = { limit: "0", page: "0", includeProducts: "", excludeProducts: "", filters: [{ key: "currencyCode", value: "INR" }] };
  const inrAnswer = await post("/chef/v1/oauth/api/", vouchers, php);
  const inr = plumOk(inrAnswer, "getVouchers", "limit \"0\" on the guide's path");
  missed(inrAnswer, "limit \"0\"");
  assert.deepEqual((await lastUpstream()).body, canonical(vouchers, php), "sent as given");
  const firstTen = plumOk(await post("/chef/v1/oauth/api", vouchers, { limit: 10, page: 1, filters: [{ key: "currencyCode", value: "INR" }] }), "getVouchers", "ten");
  assert.ok(inr.length > firstTen.length && inr.every((p) => p.currencyCode === "INR"), `limit 0: every INR product (${inr.length})`);

  const noFilters = await post("/chef/v1/oauth/api", vouchers, { limit: 3, page: 7, filters: {} });
  plumOk(noFilters, "getVouchers", "filters {}");
  missed(noFilters, "filters {}");
  assert.deepEqual((await lastUpstream()).body, canonical(vouchers, { limit: 3, page: 7, filters: [] }), "no filters, sent as the documented []");

  const ranged = { limit: 0, page: 1, filters: [{ key: "price", value: "0 - 10" }] };
  const cheapAnswer = await post("/chef/v1/oauth/api", vouchers, ranged);
  const cheap = plumOk(cheapAnswer, "getVouchers", "a price range");
  missed(cheapAnswer, "a price range");
  assert.deepEqual((await lastUpstream()).body, canonical(vouchers, ranged));
  assert.ok(cheap.length >= 1 && cheap.every((p) => Number(p.minValue) <= 10), "products with a value up to 10");

  const strict = [
    [vouchers, { filters: [{ key: "country", value: "usa" }] }, "PLE10001"],
    ["plumProAPI.mutation.getOrderHistory", { limit: 10, page: 1 }, "PLE10032"],
    // helsinki-systems/xoxoday (Go) sends its zero values for what its
    // caller did not set: "" dates, limit and page 0 (plumgate once refused
    // them itself, 400 PLUMGATE_INVALID_REQUEST).
    ["plumProAPI.mutation.getOrderHistory", { startDate: "", endDate: "", limit: 0, page: 0 }, "PLE10032"],
    ["plumProAPI.mutation.getOrderHistory", { startDate: "2025-01-01", endDate: TODAY, limit: 0, page: 0 }, "PLE10001"],
  ];
  for (const [query, data, errorId] of strict) {
    const r = await post("/chef/v1/oauth/api", query, data);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.errorId, errorId, `Xoxoday's (the sandbox's) refusal, not plumgate's: ${r.text}`);
    if (query === vouchers) missed(r, "getVouchers with no limit");
    assert.deepEqual((await lastUpstream()).body, canonical(query, data), "it went upstream as sent");
  }

  // Go's nil interface and Python's None for getBalance's data: no data,
  // sent as the documented {}. Asked past a fresh cached balance: only an
  // admin key's `Cache-Control: no-cache` skips the edge cache (README,
  // openapi: "ignored otherwise"), so that this call is the one upstream.
  const balance = "plumProAPI.query.getBalance";
  const getBalance = (bearer, headers = {}) => http("POST", "/chef/v1/oauth/api", {
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({ query: balance, tag: "plumProAPI", variables: { data: null } }),
  });
  await balanceExpired();
  const filled = await getBalance(key);
  plumOk(filled, "getBalance", "the balance cached");
  missed(filled, "the balance cached");
  const cached = await getBalance(keys.balance.key, { "cache-control": "no-cache" });
  plumOk(cached, "getBalance", "a non-admin key's no-cache");
  assert.equal(cached.headers["x-plumgate-cache"], "hit", "a balance is cached, and a key without `*` is answered from it, no-cache or not");
  await sandbox.admin("/requests/clear", {});
  const nil = await getBalance(key, { "cache-control": "no-cache" });
  plumOk(nil, "getBalance", "data null");
  assert.equal(nil.headers["x-plumgate-cache"], "bypass", "an admin key's no-cache skips the cached balance");
  const seen = await sandboxRequests(sandbox);
  assert.equal(seen.length, 1, "the no-cache call went upstream");
  assert.deepEqual(seen[0].body, canonical(balance, {}), "null data, sent as {}");

  // The token path with a slash too.
  const t = await http("POST", "/chef/v1/oauth/token/user/", {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ grant_type: "refresh_token", refresh_token: keys.mcp.key, client_id: "c", client_secret: "s" }),
  });
  await tokenAnswer(t, keys.mcp, { refresh: true });
  assert.equal((await http("POST", "/chef/v1/oauth/api//", { headers: { authorization: `Bearer ${key}` }, body: "{}" })).status, 404, "one slash only");
});

test("idempotency: \"25\" and 25 are the same order", async () => {
  const key = keys.admin.key;
  const place = (data, query = "plumProAPI.mutation.placeOrder") => http("POST", "/chef/v1/oauth/api", {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ query, tag: "plumProAPI", variables: { data } }),
  });
  const poNumber = `same-${RUN}`;
  const c0 = await sandbox.counters();
  const first = await place({ productId: "10100", quantity: "2", denomination: "25", poNumber });
  plumOk(first, "placeOrder", "first");
  const again = await place({ denomination: 25.0, quantity: 2, poNumber, productId: 10100 });
  assert.equal(again.status, 200);
  assert.equal(again.headers["x-plumgate-replayed"], "true");
  assert.equal(again.text, first.text);
  assert.equal((await sandbox.counters()).orders, c0.orders + 1, "one upstream order");
  // The operation's name in another case is placeOrder too, through the
  // order ledger (forwarded as an unknown query it would skip it).
  const cased = await place({ productId: 10100, quantity: 2, denomination: 25, poNumber }, "plumProAPI.mutation.PlaceOrder");
  assert.equal(cased.headers["x-plumgate-replayed"], "true", "PlaceOrder: the same order, replayed");
  assert.equal((await sandbox.counters()).orders, c0.orders + 1, "still one upstream order");
  const other = await place({ productId: "10100", quantity: "2", denomination: "25.5", poNumber });
  assert.equal(other.status, 409);
  assert.equal(other.json.errorId, "PLUMGATE_IDEMPOTENCY_CONFLICT");
  assert.equal(other.json.code, 409);
  assert.equal(other.json.request_id, other.headers["x-request-id"]);
});

// ------------------------------------------------------ the payment report

test("payment report: paymentHistory and getPaymentReport, in variables.data and data.data, or flat in data or variables", async () => {
  const data = { startDate: "2020-01-01", endDate: "2099-12-31", limit: "5", page: 1 };
  for (const query of ["plumProAPI.mutation.paymentHistory", "plumProAPI.mutation.getPaymentReport"]) {
    // Flat: Xoxoday's pages for the other categories' reports (no data.data).
    for (const placement of ["variables", "data", "flat data", "flat variables"]) {
      const envelope = {
        variables: { query, tag: "plumProAPI", variables: { data } },
        data: { query, tag: "plumProAPI", data: { data } },
        "flat data": { query, tag: "plumProAPI", data },
        "flat variables": { query, tag: "plumProAPI", variables: data },
      }[placement];
      const r = await call(w, "/chef/v1/oauth/api", { key: keys.reader, body: envelope });
      const rows = plumOk(r, "paymentHistory", `${query} in ${placement}`);
      assert.ok(rows.length >= 1);
      assert.deepEqual((await lastUpstream()).body, canonical("plumProAPI.mutation.paymentHistory", data), `${query} in ${placement}`);
    }
  }
  const denied = await call(w, "/chef/v1/oauth/api", { key: keys.catalog, body: { query: "plumProAPI.mutation.getPaymentReport", variables: { data } } });
  assert.equal(denied.status, 403, "the report needs orders:read, under either name");
  assert.equal(denied.json.errorId, "PLUMGATE_FORBIDDEN");
});

test("variables without a data wrapper (Xoxoday's lounge, airmiles and merchandise pages): the same call, sent in variables.data", async () => {
  const filters = { filterGroupCode: "Country" };
  const r = await call(w, "/chef/v1/oauth/api", { key: keys.catalog, body: { query: "plumProAPI.mutation.getFilters", tag: "plumProAPI", variables: filters } });
  plumOk(r, "getFilters", "flat getFilters");
  const order = await call(w, "/chef/v1/oauth/api", { key: keys.reader, body: { query: "plumProAPI.mutation.getOrderDetails", tag: "plumProAPI", variables: { poNumber: "no-such-po-flat", orderId: null, sendMailToReceiver: 0 } } });
  assert.notEqual(order.status, 400, `read, not refused: ${order.text}`);
  assert.equal((await lastUpstream()).body.variables.data.poNumber, "no-such-po-flat");
});

// ------------------------------------------------ unknown plumProAPI queries

test("an unknown plumProAPI query: forwarded as sent for '*' keys, uncached, logged unvalidated; refused for others", async () => {
  const envelope = { query: "plumProAPI.mutation.someNewOperation", tag: "plumProAPI", variables: { data: { anything: ["goes", 1] } }, extra: true };
  const c0 = await sandbox.counters();
  const ids = [];
  for (let i = 0; i < 2; i++) {
    await sandbox.admin("/requests/clear", {});
    const r = await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: envelope });
    ids.push(r.headers["x-request-id"]);
    // The sandbox knows no such operation either: its own answer comes back unchanged.
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.errorId, "PLE10001", "Xoxoday's answer, passed through");
    assert.equal(r.headers["x-plumgate-cache"], undefined, "never cached");
    const seen = await sandboxRequests(sandbox);
    assert.equal(seen.length, 1, "forwarded every time");
    assert.deepEqual(seen[0].body, envelope, "the envelope exactly as sent");
    assert.equal(seen[0].authorized, true, "with plumgate's Xoxoday token");
  }
  const lines = await w.logsFor(ids);
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.equal(line.operation, "someNewOperation");
    assert.equal(line.note, "unvalidated");
    assert.equal(line.upstream_status, 400);
    assert.equal(line.caller, "admin");
  }
  for (const key of [keys.catalog, keys.writer, keys.mcp]) {
    const r = await call(w, "/chef/v1/oauth/api", { key, body: envelope });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.errorId, "PLUMGATE_FORBIDDEN");
    assert.match(r.json.error, /`\*` scope/);
    assert.doesNotMatch(r.text, /someNewOperation/, "the query is not echoed");
  }
  // A '*' key with a spend cap: refused too (the query could spend past it unseen).
  const made = await call(w, "/v1/keys", { key: keys.admin, body: { id: "capped-star", scopes: ["*"], limits: { order_amount_per_day: 1 } } });
  assert.equal(made.status, 201, made.text);
  await sandbox.admin("/requests/clear", {});
  const capped = await call(w, "/chef/v1/oauth/api", { key: made.json.key, body: { ...envelope, query: "plumProAPI.mutation.placeBulkOrder" } });
  assert.equal(capped.status, 403, capped.text);
  assert.match(capped.json.error, /order_amount_per_day/);
  assert.deepEqual(await sandboxRequests(sandbox), [], "nothing forwarded");
  const c1 = await sandbox.counters();
  assert.equal(c1.unauthorized_api_calls, c0.unauthorized_api_calls);
  // A rate-limit answer to it (here the 429 page of a layer in front of
  // Xoxoday, no Retry-After) is a penalty as for every operation: 429
  // rate_limited in Xoxoday's shape with Retry-After, not a 502 to retry
  // at once.
  await sandbox.admin("/faults/proxy", { mode: "before", status: 429 });
  const limited = await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: envelope });
  assert.equal(limited.status, 429, limited.text);
  assert.equal(limited.json.errorId, "PLUMGATE_RATE_LIMITED");
  assert.equal(limited.json.errors[0].penaltySeconds, 60, "Xoxoday's default penalty when none is named");
  assert.equal(limited.headers["retry-after"], "60");
  const [limitedLine] = await w.logsFor([limited.headers["x-request-id"]]);
  assert.equal(limitedLine.upstream_status, 429);
  // Until that penalty ends the query is answered so without being sent
  // (contract §6: not calling again and prolonging it); another unknown
  // query is still forwarded.
  await sandbox.admin("/requests/clear", {});
  const held = await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: envelope });
  assert.equal(held.status, 429, held.text);
  assert.equal(held.json.errorId, "PLUMGATE_RATE_LIMITED");
  assert.ok(Number(held.headers["retry-after"]) >= 50 && Number(held.headers["retry-after"]) <= 60, held.headers["retry-after"]);
  assert.deepEqual(await sandboxRequests(sandbox), [], "not sent during the penalty");
  const [heldLine] = await w.logsFor([held.headers["x-request-id"]]);
  assert.equal(heldLine.upstream_status, null, "Xoxoday was not asked");
  const other = { ...envelope, query: "plumProAPI.query.anotherNewOperation" };
  assert.equal((await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: other })).status, 400, "another query: forwarded");
  // Xoxoday's own rate-limit answer, naming its penalty: held for that long.
  await sandbox.admin("/faults/api", { mode: "rate_limited", shape: "errors_array", penalty_seconds: 120 });
  const named = await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: other });
  assert.equal(named.status, 429, named.text);
  assert.equal(named.json.errors[0].penaltySeconds, 120);
  await sandbox.admin("/requests/clear", {});
  const again = await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: other });
  assert.equal(again.status, 429, again.text);
  assert.ok(Number(again.headers["retry-after"]) >= 110 && Number(again.headers["retry-after"]) <= 120, again.headers["retry-after"]);
  assert.deepEqual(await sandboxRequests(sandbox), [], "not sent during Xoxoday's penalty");
  // Not of the plumProAPI.<kind>.<name> form: unknown for everyone.
  for (const query of ["otherAPI.mutation.x", "plumProAPI.x", "plumProAPI.mutation.some-op", 5]) {
    const r = await call(w, "/chef/v1/oauth/api", { key: keys.admin, body: { query, variables: { data: {} } } });
    assert.equal(r.status, typeof query === "string" ? 404 : 400, `${query}: ${r.text}`);
  }
});

// -------------------------------------------------------- token endpoints

test("token endpoints: Xoxoday's error answers, validation, and no other way in", async () => {
  const c0 = await sandbox.counters();
  const post = (path, headers, body) => http("POST", path, { headers, body });
  const json = { "content-type": "application/json" };
  const form = { "content-type": "application/x-www-form-urlencoded" };
  const cases = [
    [json, JSON.stringify({ grant_type: "refresh_token", refresh_token: makeKey("stranger", ["*"]).key }), 400, "invalid_grant"],
    [form, "grant_type=refresh_token&refresh_token=pgk_unknown_0123456789abcdef", 400, "invalid_grant"],
    [json, JSON.stringify({ grant_type: "refresh_token" }), 400, "invalid_request"],
    [json, JSON.stringify({ grant_type: "refresh_token", refresh_token: "" }), 400, "invalid_request"],
    [json, "{not json", 400, "invalid_request"],
    [json, JSON.stringify({ grant_type: "client_credentials", client_id: "a", client_secret: "b" }), 400, "unsupported_grant_type"],
    [json, JSON.stringify({ grant_type: "authorization_code", code: "x" }), 400, "unsupported_grant_type"],
    // The Xoxoday client id and secret plumgate holds open nothing here.
    [json, JSON.stringify({ grant_type: "refresh_token", refresh_token: "plumgate-dev-refresh-token", client_id: "plumgate-dev-client", client_secret: "plumgate-dev-secret" }), 400, "invalid_grant"],
  ];
  for (const [headers, body, status, error] of cases) {
    const r = await post("/chef/v1/oauth/token/user", headers, body);
    assert.equal(r.status, status, `${body}: ${r.text}`);
    assert.equal(r.json.error, error, body);
    assert.equal(typeof r.json.error_description, "string");
    assert.equal(r.json.request_id, r.headers["x-request-id"]);
  }
  // Validation: the key as the bearer.
  await tokenAnswer(await http("GET", "/chef/v1/oauth/token", { headers: { authorization: `Bearer ${keys.catalog.key}` } }), keys.catalog, { refresh: false });
  for (const [headers, error] of [[{}, "invalid_request"], [{ authorization: "Bearer pgk_unknown_0123456789abcdef" }, "invalid_token"],
    [{ authorization: "Bearer plumgate-dev-access-token" }, "invalid_token"], [{ authorization: `Basic ${keys.catalog.key}` }, "invalid_token"]]) {
    const r = await http("GET", "/chef/v1/oauth/token", { headers });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.equal(r.json.error, error);
    assert.match(r.headers["www-authenticate"] ?? "", /^Bearer/);
  }
  // Only the documented token types, only the right methods.
  const nf = await post("/chef/v1/oauth/token/company", json, "{}");
  assert.equal(nf.status, 404);
  assert.equal(nf.json.errorId, "PLUMGATE_NOT_FOUND");
  for (const [method, path, allow] of [["GET", "/chef/v1/oauth/token/user", "POST"], ["POST", "/chef/v1/oauth/token", "GET"], ["PUT", "/chef/v1/oauth/token/bearer", "POST"]]) {
    const r = await http(method, path, { headers: json, body: method === "GET" ? undefined : "{}" });
    assert.equal(r.status, 405, `${method} ${path}`);
    assert.equal(r.json.errorId, "PLUMGATE_METHOD_NOT_ALLOWED");
    assert.equal(r.headers.allow, allow);
  }
  const big = await post("/chef/v1/oauth/token/user", json, JSON.stringify({ grant_type: "refresh_token", refresh_token: "x".repeat(70 * 1024) }));
  assert.equal(big.status, 413);
  assert.equal(big.json.errorId, "PLUMGATE_PAYLOAD_TOO_LARGE");
  const [bigLine] = await w.logsFor([big.headers["x-request-id"]]);
  assert.deepEqual([bigLine?.status, bigLine?.error], [413, "payload_too_large"], "logged with its error, as every other refusal");
  // No token call ever reaches Xoxoday.
  const c = await sandbox.counters();
  assert.equal(c.refresh_calls, c0.refresh_calls, "no refresh upstream");
  assert.equal(c.validate_calls, c0.validate_calls, "no validation upstream");
});

// ------------------------------------------------------------ error shapes

test("plumgate's errors: Xoxoday's shape under /chef/, {error:{...}} on /v1", async () => {
  const dropIn = (key, body) => call(w, "/chef/v1/oauth/api", { key, body });
  const cases = [
    [await dropIn(undefined, { query: "plumProAPI.query.getBalance", variables: { data: {} } }), 401, "PLUMGATE_UNAUTHORIZED"],
    [await dropIn(keys.catalog, { query: "plumProAPI.query.getBalance", variables: { data: {} } }), 403, "PLUMGATE_FORBIDDEN"],
    [await dropIn(keys.admin, { query: "plumProAPI.mutation.getVouchers", variables: { data: { limit: "lots", page: 1 } } }), 400, "PLUMGATE_INVALID_REQUEST"],
    [await call(w, "/chef/v1/oauth/api", { key: keys.admin, raw: "{", headers: { "content-type": "application/json" } }), 400, "PLUMGATE_INVALID_JSON"],
    [await call(w, "/chef/nothing", { key: keys.admin, body: {} }), 404, "PLUMGATE_NOT_FOUND"],
  ];
  for (const [r, status, errorId] of cases) {
    assert.equal(r.status, status, r.text);
    assert.deepEqual(Object.keys(r.json).sort(), ["code", "error", "errorId", "errorInfo", "request_id"], r.text);
    assert.equal(r.json.code, status);
    assert.equal(r.json.errorId, errorId);
    assert.match(r.json.errorInfo, /^plumgate: /);
    assert.equal(r.json.request_id, r.headers["x-request-id"]);
    if (status === 401) assert.match(r.headers["www-authenticate"], /^Bearer/);
  }
  assert.match(cases[2][0].json.error, /data\.limit/, "the field is named");
  const v1 = await call(w, "/v1/ops/getBalance", { body: {} });
  assert.equal(v1.status, 401);
  assert.deepEqual(Object.keys(v1.json), ["error"]);
  assert.equal(v1.json.error.code, "unauthorized");

  // A penalty: Xoxoday's rate-limit shape with penaltySeconds, and Retry-After.
  await sandbox.admin("/config", { rate_limits: { ...HIGH_LIMITS, getOrderHistory: 1 }, penalty_seconds: 2 });
  const data = { startDate: "2020-01-01", endDate: "2099-12-31", limit: 1 };
  let limited;
  for (let i = 0; i < 3 && limited?.status !== 429; i++) {
    limited = await dropIn(keys.reader, { query: "plumProAPI.mutation.getOrderHistory", variables: { data } });
  }
  assert.equal(limited.status, 429, limited.text);
  assert.equal(limited.json.errorId, "PLUMGATE_RATE_LIMITED");
  assert.equal(limited.json.errors[0].message, "auth.request_limit_exceeded");
  assert.ok(limited.json.errors[0].penaltySeconds >= 1);
  assert.equal(String(limited.json.errors[0].penaltySeconds), limited.headers["retry-after"]);
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS, penalty_seconds: 60 });
});
