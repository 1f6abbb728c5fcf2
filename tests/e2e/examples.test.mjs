// The two examples in examples/, started the way their platforms run them and
// driven from outside, against plumgate and the sandbox:
// - examples/node-function: serve.mjs turns HTTP requests into Lambda proxy
//   events with a time limit; the web-standard exports are called too;
// - examples/worker: a caller Worker and plumgate under one `wrangler dev`,
//   the caller reaching plumgate only through its Service Binding (its
//   client's URL host resolves nowhere).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ROOT, startSandbox, startWorker, standardKeys, makeKey, leakScan, cleanup, killGroup, waitExit, capturedLogs, sandboxRequests,
  call, roomInDay, tempDir, trackChild,
} from "./harness.mjs";

const keys = { ...standardKeys(), rewards: makeKey("rewards-caller", ["balance", "orders:write"]) };
// A key whose own daily spend cap one reward fills (its GATEWAY_KEYS entry's
// limits): the next order is refused for the rest of the UTC day, with
// Retry-After. No balance scope: /balance is refused (403).
keys.capped = makeKey("capped-caller", ["orders:write"]);
keys.capped.entry.limits = { order_amount_per_day: 25 };
/** Runtime keys made here (their answers are not recorded), for the leak scan. */
const runtimeKeys = [];
const HIGH_LIMITS = {
  getBalance: 100000, getFilters: 100000, getVouchers: 100000, placeOrder: 100000,
  getOrderDetails: 100000, getOrderHistory: 100000, paymentHistory: 100000,
};
const RUN = Date.now().toString(36);
const po = (name) => `ex-${RUN}-${name}`;
const REWARD = { productId: 10100, denomination: 25, email: "alex@example.com" };

let sandbox;
let gateway; // plumgate alone, for the Node function
let pair; // the caller Worker in front of plumgate
let fn; // the Node function

/** Start examples/node-function/serve.mjs; resolves with its URL once ready. */
async function startFunction(env) {
  const child = trackChild(spawn(process.execPath, [join(ROOT, "examples/node-function/serve.mjs")], {
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  }));
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; capturedLogs.push(`[function] ${d}`); });
  const deadline = Date.now() + 15_000;
  while (!/FUNCTION_READY (\S+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`the function exited: ${out}`);
    if (Date.now() > deadline) throw new Error(`the function did not start: ${out}`);
    await sleep(50);
  }
  return {
    url: out.match(/FUNCTION_READY (\S+)/)[1],
    async stop() { killGroup(child); await waitExit(child, 5000); killGroup(child, "SIGKILL"); },
  };
}

/**
 * Vars giving a second plumgate its own Xoxoday token pair: every plumgate
 * started against one sandbox would otherwise rotate the same bootstrap
 * refresh token, and all but the first would be locked out.
 */
async function ownTokens() {
  const issued = await sandbox.admin("/tokens/issue", {});
  return { XOXODAY_REFRESH_TOKEN: issued.refresh_token };
}

/** examples/worker holding PLUMGATE_KEY `key`, in front of a plumgate of its own (`vars`, `persistDir`: startWorker's). */
async function startCaller(key, { vars, persistDir } = {}) {
  return startWorker({
    sandbox,
    keys,
    vars: vars ?? (await ownTokens()),
    persistDir,
    callers: [{ config: "examples/worker/wrangler.toml", vars: { PLUMGATE_KEY: key, REWARD_TOKEN } }],
    readyPath: "/health",
  });
}

/** What the examples' own callers send (`REWARD_TOKEN`): they spend the wallet. */
const REWARD_TOKEN = "example-callers-token-0123456789";
const AUTH = { authorization: `Bearer ${REWARD_TOKEN}` };

/** The node-function example's module (`file`), its environment set for this run's gateway. */
async function nodeFunction(file = "handler.mjs") {
  process.env.PLUMGATE_URL = gateway.url;
  process.env.PLUMGATE_KEY = keys.rewards.key;
  process.env.REWARD_TOKEN = REWARD_TOKEN;
  return import(join(ROOT, "examples/node-function", file));
}

async function post(url, body, headers = AUTH) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** GET /balance through a caller Worker whose key plumgate refuses: the Worker's own 502, plumgate's code kept. */
async function assertBalanceKeyRefused(url, code) {
  const r = await fetch(`${url}/balance`, { headers: AUTH });
  const j = await r.json();
  assert.equal(r.status, 502, JSON.stringify(j));
  assert.deepEqual([j.error, j.code], ["plumgate_key_refused", code]);
  assert.match(j.message, /this Worker's plumgate key was refused/);
  assert.match(j.requestId, /^[0-9a-f]{32}$/);
}

/** A refusal for the rest of the day: 503, its wait in the body and, whole seconds, in Retry-After. */
function assertWaitToldTwice(r) {
  assert.equal(r.status, 503, JSON.stringify(r.json));
  assert.deepEqual([r.json.status, r.json.code], ["refused", "quota_exceeded"]);
  assert.ok(r.json.retryAfter >= 120 && r.json.retryAfter <= 86_400, JSON.stringify(r.json));
  assert.equal(r.headers.get("retry-after"), String(Math.ceil(r.json.retryAfter)));
}

before(async () => {
  sandbox = await startSandbox();
  await sandbox.admin("/config", { rate_limits: HIGH_LIMITS });
  gateway = await startWorker({ sandbox, keys });
  // serve.mjs's own time limit (FUNCTION_TIMEOUT_MS unset: 15 s), as a user runs it.
  fn = await startFunction({ PLUMGATE_URL: gateway.url, PLUMGATE_KEY: keys.rewards.key, REWARD_TOKEN });
  pair = await startCaller(keys.rewards.key);
});

after(async () => {
  // Workers stopped first: lines still in their pipes, or printed as
  // they stop, are scanned too.
  await fn?.stop();
  await pair?.stop();
  await gateway?.stop();
  const hits = await leakScan(sandbox, keys, runtimeKeys);
  await sandbox?.stop();
  for (const w of [gateway, pair]) if (w) cleanup(w.persistDir);
  assert.deepEqual(hits, [], "no token, secret or key in any log line");
});

test("node function (Lambda shape): a reward is placed once per poNumber; refusals and bad input are told apart", async () => {
  const c0 = await sandbox.counters();
  const body = { ...REWARD, poNumber: po("fn-1") };
  const first = await post(fn.url, body);
  assert.equal(first.status, 200, JSON.stringify(first.json));
  assert.equal(first.json.status, "placed");
  assert.equal(first.json.poNumber, body.poNumber);
  assert.ok(first.json.orderId > 0);
  const again = await post(fn.url, body);
  assert.equal(again.status, 200);
  assert.equal(again.json.replayed, true);
  assert.equal(again.json.orderId, first.json.orderId);
  assert.equal((await sandbox.counters()).orders, c0.orders + 1, "a redelivered event does not order twice");

  const refused = await post(fn.url, { ...REWARD, denomination: 26, poNumber: po("fn-bad") });
  assert.equal(refused.status, 422);
  assert.equal(refused.json.status, "refused");
  assert.equal(refused.json.code, "PLE10018");
  assert.match(refused.json.requestId, /^[0-9a-f]{32}$/);

  const missing = await post(fn.url, { email: "a@example.com" });
  assert.equal(missing.status, 400);
  assert.match(missing.json.error, /are required/);
  // A body that is not JSON is named as such, not as fields missing.
  const garbled = await fetch(fn.url, { method: "POST", headers: { authorization: `Bearer ${REWARD_TOKEN}`, "content-type": "application/json" }, body: "{productId: 10100" });
  assert.equal(garbled.status, 400);
  assert.match((await garbled.json()).error, /^the body is not JSON/);
  // No recipient: the voucher would be paid for and reach nobody.
  const noRecipient = await post(fn.url, { productId: 10100, denomination: 25, poNumber: po("fn-no-email") });
  assert.equal(noRecipient.status, 400, JSON.stringify(noRecipient.json));
  assert.match(noRecipient.json.error, /email/);
  // No poNumber: refused, not made up (a caller that lost the answer would
  // order twice).
  const noPo = await post(fn.url, REWARD);
  assert.equal(noPo.status, 400, JSON.stringify(noPo.json));
  assert.match(noPo.json.error, /poNumber/);
  // Only the function's own callers: no token, or a wrong one, is 401.
  for (const headers of [{}, { authorization: `Bearer ${REWARD_TOKEN}x` }, { authorization: REWARD_TOKEN }]) {
    const stranger = await post(fn.url, { ...REWARD, poNumber: po("fn-stranger") }, headers);
    assert.equal(stranger.status, 401, JSON.stringify(headers));
  }
  assert.equal((await sandbox.counters()).orders, c0.orders + 1);
});

test("node function: a refusal with a wait (the key's daily cap) carries Retry-After; a key plumgate refuses is 502, not the caller's 401/403", async () => {
  await roomInDay(120);
  const capped = await startFunction({ PLUMGATE_URL: gateway.url, PLUMGATE_KEY: keys.capped.key, REWARD_TOKEN });
  const scopeless = await startFunction({ PLUMGATE_URL: gateway.url, PLUMGATE_KEY: keys.catalog.key, REWARD_TOKEN });
  try {
    const c0 = await sandbox.counters();
    const first = await post(capped.url, { ...REWARD, poNumber: po("fn-cap-1") });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.equal(first.headers.get("retry-after"), null);
    assertWaitToldTwice(await post(capped.url, { ...REWARD, poNumber: po("fn-cap-2") }));
    // No orders:write: plumgate's 403 is the function's own key, not the caller's doing.
    const refused = await post(scopeless.url, { ...REWARD, poNumber: po("fn-scopeless") });
    assert.equal(refused.status, 502, JSON.stringify(refused.json));
    assert.deepEqual([refused.json.status, refused.json.code], ["refused", "forbidden"]);
    assert.match(refused.json.message, /this function's plumgate key was refused/);
    assert.equal((await sandbox.counters()).orders, c0.orders + 1);
  } finally {
    await capped.stop();
    await scopeless.stop();
  }
});

test("node function: a PLUMGATE_URL that answers with a redirect is the operator's 502, not a refusal of the caller's order", async () => {
  // Something in front of plumgate (an access gate's login redirect, a moved domain).
  const gate = createServer((req, res) => {
    res.writeHead(302, { location: `${gateway.url}/v1/ops/placeOrder` });
    res.end();
  });
  await new Promise((ok) => gate.listen(0, "127.0.0.1", ok));
  const redirected = await startFunction({ PLUMGATE_URL: `http://127.0.0.1:${gate.address().port}`, PLUMGATE_KEY: keys.rewards.key, REWARD_TOKEN });
  try {
    const c0 = await sandbox.counters();
    const r = await post(redirected.url, { ...REWARD, poNumber: po("fn-redirect") });
    assert.equal(r.status, 502, JSON.stringify(r.json));
    assert.deepEqual([r.json.status, r.json.code], ["refused", "redirected"]);
    assert.match(r.json.message, /PLUMGATE_URL answered with a redirect/);
    assert.equal((await sandbox.counters()).orders, c0.orders, "the redirect was not followed");
  } finally {
    await redirected.stop();
    await new Promise((ok) => gate.close(ok));
  }
});

test("node function: an order slower than the function's time limit is 202 unknown, and the same poNumber later gets it once", async () => {
  await sandbox.admin("/faults/order", { mode: "hang_after_create", count: 1, hang_ms: 16_000 });
  const c0 = await sandbox.counters();
  const body = { ...REWARD, poNumber: po("fn-slow") };
  const t0 = Date.now();
  const first = await post(fn.url, body);
  const took = Date.now() - t0;
  assert.equal(first.status, 202, JSON.stringify(first.json));
  assert.equal(first.json.status, "unknown");
  assert.equal(first.json.poNumber, body.poNumber);
  // The default 15 s limit minus the handler's 2 s margin.
  assert.ok(took >= 12_800 && took < 14_500, `answered before its own limit, after ${took} ms`);
  await sleep(Math.max(0, 16_500 - (Date.now() - t0)));
  const second = await post(fn.url, body);
  assert.equal(second.status, 200, JSON.stringify(second.json));
  assert.equal(second.json.status, "placed");
  const c1 = await sandbox.counters();
  assert.equal(c1.orders, c0.orders + 1, "exactly one order");
  assert.equal(c1.api_calls.placeOrder, c0.api_calls.placeOrder + 1);
  await sandbox.admin("/faults/clear", {});
});

test("node function (web-standard shapes, Vercel and Netlify v2): Request in, Response out, each exported the way its platform looks for it", async () => {
  const forVercel = await nodeFunction();
  const forNetlify = await nodeFunction("web.mjs");
  // Vercel calls a default-exported function as (req, res): the web shape
  // must be a method export. Netlify runs a `handler` export as v1 when
  // there is one: its v2 file must have none.
  assert.equal(forVercel.default, undefined, "no default export for Vercel to call Node-style");
  assert.equal(typeof forVercel.POST, "function");
  assert.deepEqual(Object.keys(forNetlify), ["default"], "web.mjs has only a default export");
  for (const [name, handle] of [["vercel", forVercel.POST], ["netlify", forNetlify.default]]) {
    const res = await handle(new Request("http://function.local/", { method: "POST", headers: AUTH, body: JSON.stringify({ ...REWARD, poNumber: po(`web-${name}`) }) }));
    assert.equal(res.status, 200, name);
    const json = await res.json();
    assert.equal(json.status, "placed");
    assert.equal(json.poNumber, po(`web-${name}`));
  }
  // Without REWARD_TOKEN set, nobody gets through (and nothing is ordered).
  delete process.env.REWARD_TOKEN;
  try {
    const res = await forVercel.POST(new Request("http://function.local/", { method: "POST", headers: AUTH, body: JSON.stringify({ ...REWARD, poNumber: po("web-unset") }) }));
    assert.equal(res.status, 503);
    assert.match((await res.json()).error, /REWARD_TOKEN is not set/);
  } finally {
    process.env.REWARD_TOKEN = REWARD_TOKEN;
  }
});

test("node function: a poNumber Xoxoday holds for another order is 409, not 202 'call again' (asking again gets the same answer)", async () => {
  const { POST } = await nodeFunction();
  // Another system's order under the poNumber, for another recipient,
  // placed on Xoxoday directly.
  const { access_token: at } = await sandbox.admin("/tokens/issue", {});
  const theirs = await fetch(`${sandbox.oauthUrl}/v1/oauth/api`, {
    method: "POST",
    headers: { authorization: `Bearer ${at}`, "content-type": "application/json" },
    body: JSON.stringify({ query: "plumProAPI.mutation.placeOrder", tag: "plumProAPI", variables: { data: { ...REWARD, quantity: 1, email: "someone.else@example.com", poNumber: po("dup"), notifyReceiverEmail: 0, notifyAdminEmail: 0 } } }),
  });
  assert.equal(theirs.status, 200, await theirs.text());
  const res = await POST(new Request("http://function.local/", { method: "POST", headers: AUTH, body: JSON.stringify({ ...REWARD, poNumber: po("dup") }) }));
  const json = await res.json();
  assert.equal(res.status, 409, JSON.stringify(json));
  assert.deepEqual([json.status, json.reason, json.poNumber], ["unknown", "duplicate_po_number", po("dup")]);
  assert.doesNotMatch(json.retry, /call again later/);
});

test("node function (Lambda shape): under Lambda's default 3 s limit nothing is sent, and the answer says why", async () => {
  // The README's sentence: 3 s less the 2 s margin leaves less than an
  // attempt needs (the client's minAttemptMs, 1 s). Lambda's clock runs
  // from the invocation, so the handler is told a little under 3 s.
  const { handler } = await nodeFunction();
  const poNumber = po("lambda-3s");
  const res = await handler({ headers: AUTH, body: JSON.stringify({ ...REWARD, poNumber }) }, { getRemainingTimeInMillis: () => 2_950 });
  assert.equal(res.statusCode, 503, res.body);
  const json = JSON.parse(res.body);
  assert.deepEqual([json.status, json.code], ["refused", "timeout"], res.body);
  assert.match(json.message, /not sent/);
  const sent = (await sandboxRequests(sandbox)).filter((r) => r.op === "placeOrder" && r.body?.variables?.data?.poNumber === poNumber);
  assert.equal(sent.length, 0, "nothing sent");
});

test("node function (Lambda shape): a base64 body is read as UTF-8, so a recipient's accented address arrives as written", async () => {
  const { handler } = await nodeFunction();
  const poNumber = po("b64");
  const body = Buffer.from(JSON.stringify({ ...REWARD, email: "zoë@example.com", poNumber })).toString("base64");
  // Header names as an API Gateway REST event keeps them.
  const res = await handler({ headers: { Authorization: `Bearer ${REWARD_TOKEN}` }, body, isBase64Encoded: true }, { getRemainingTimeInMillis: () => 20_000 });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(JSON.parse(res.body).status, "placed");
  const sent = (await sandboxRequests(sandbox)).filter((r) => r.op === "placeOrder" && r.body?.variables?.data?.poNumber === poNumber);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].body.variables.data.email, "zoë@example.com");
  assert.equal(sent[0].body.variables.data.notifyReceiverEmail, 1, "Xoxoday mails the voucher to the recipient");
});

test("node function (Lambda shape): behind API Gateway the deadline is its limit (28 s) when the function's own is longer; a function URL or a load balancer keeps the function's", async () => {
  const { handler } = await nodeFunction();
  // No real waiting: the first attempt "takes" 27 s (the clock is moved on)
  // and its answer is lost; the second is placed. With API Gateway's 28 s
  // less the 2 s margin no second attempt fits, and the caller hears 202
  // before API Gateway's own 504; with the function's 15 minutes it does.
  const realFetch = globalThis.fetch;
  const realNow = Date.now;
  let skew = 0;
  let calls = 0;
  globalThis.fetch = async () => {
    calls += 1;
    if (calls > 1) return Response.json({ data: { placeOrder: { status: 1, data: { orderId: 1, orderStatus: "complete" } } } });
    skew += 27_000;
    throw new TypeError("fetch failed");
  };
  Date.now = () => realNow() + skew;
  try {
    for (const [name, requestContext, status, attempts] of [
      ["API Gateway", { apiId: "a1b2c3", stage: "prod", domainName: "a1b2c3.execute-api.eu-west-1.amazonaws.com" }, 202, 1],
      ["function URL", { apiId: "u1", domainName: "u1.lambda-url.eu-west-1.on.aws" }, 200, 2],
      ["load balancer", { elb: { targetGroupArn: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/t/1" } }, 200, 2],
      ["no requestContext", undefined, 200, 2],
    ]) {
      [skew, calls] = [0, 0];
      const event = { headers: { authorization: `Bearer ${REWARD_TOKEN}` }, body: JSON.stringify({ ...REWARD, poNumber: po(`apigw-${attempts}`) }), requestContext };
      const res = await handler(event, { getRemainingTimeInMillis: () => 900_000 });
      assert.equal(res.statusCode, status, `${name}: ${res.body}`);
      assert.equal(calls, attempts, name);
    }
  } finally {
    globalThis.fetch = realFetch;
    Date.now = realNow;
  }
});

test("the examples take @plumgate/client from this checkout (a file: dependency), never by a registry version", () => {
  // Not on npm: a version range would install whatever someone published
  // under the name, handed PLUMGATE_KEY once the example is copied out.
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
  const dirs = readdirSync(join(ROOT, "examples"), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `examples/${d.name}`);
  let named = 0;
  for (const dir of dirs) {
    const pkg = JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8"));
    const locked = lock.packages[dir] ?? {};
    for (const field of ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"]) {
      for (const [from, deps] of [[`${dir}/package.json`, pkg[field]], [`package-lock.json ${dir}`, locked[field]]]) {
        for (const [name, spec] of Object.entries(deps ?? {})) {
          if (!name.startsWith("@plumgate/")) continue;
          named += 1;
          assert.match(spec, /^file:/, `${from} ${field} ${name}`);
          assert.equal(relative(ROOT, resolve(ROOT, dir, spec.slice("file:".length))), "clients/typescript", `${from} ${name}`);
        }
      }
    }
  }
  assert.ok(named >= 2 * dirs.length, "every example depends on the client");
});

test("worker example: the caller Worker reaches plumgate through its Service Binding", async () => {
  const c0 = await sandbox.counters();
  const health = await fetch(`${pair.url}/health`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).status, "ok");

  const balance = await fetch(`${pair.url}/balance`, { headers: AUTH });
  assert.equal(balance.status, 200);
  const b = await balance.json();
  assert.equal(b.currency, "USD");
  assert.ok(Number(b.value) > 0);

  const body = { ...REWARD, poNumber: po("wk-1") };
  const first = await post(`${pair.url}/reward`, body);
  assert.equal(first.status, 200, JSON.stringify(first.json));
  assert.equal(first.json.status, "placed");
  const again = await post(`${pair.url}/reward`, body);
  assert.equal(again.json.replayed, true);
  assert.equal(again.json.orderId, first.json.orderId);
  assert.equal((await sandbox.counters()).orders, c0.orders + 1);
  const sent = (await sandboxRequests(sandbox)).filter((r) => r.op === "placeOrder" && r.body?.variables?.data?.poNumber === body.poNumber);
  assert.equal(sent[0]?.body.variables.data.notifyReceiverEmail, 1, "Xoxoday mails the voucher to the recipient");
  const noRecipient = await post(`${pair.url}/reward`, { productId: 10100, denomination: 25, poNumber: po("wk-no-email") });
  assert.equal(noRecipient.status, 400, JSON.stringify(noRecipient.json));
  assert.equal((await sandbox.counters()).orders, c0.orders + 1, "nothing ordered without a recipient");
  const noPo = await post(`${pair.url}/reward`, REWARD);
  assert.equal(noPo.status, 400, JSON.stringify(noPo.json));
  assert.match(noPo.json.error, /poNumber/);
  // The Worker is public by default: only its own callers get through.
  for (const headers of [{}, { authorization: "Bearer not-the-token" }]) {
    assert.equal((await fetch(`${pair.url}/balance`, { headers })).status, 401);
    assert.equal((await post(`${pair.url}/reward`, { ...REWARD, poNumber: po("wk-stranger") }, headers)).status, 401);
  }
  assert.equal((await sandbox.counters()).orders, c0.orders + 1, "nothing ordered for a stranger");

  // plumgate saw these calls, authenticated with the caller's key: its log
  // lines name the key id, the route and the operation.
  const lines = pair.jsonLogs().filter((l) => l.caller === "rewards-caller");
  const ops = lines.map((l) => `${l.route} ${l.operation ?? ""}`.trim());
  assert.ok(ops.includes("/v1/ops/{operation} getBalance"), ops.join("; "));
  assert.equal(ops.filter((o) => o === "/v1/ops/{operation} placeOrder").length, 2);
  assert.ok(pair.jsonLogs().some((l) => l.route === "/healthz"), "health went through the binding too");
});

test("worker example: plumgate still checks the key behind the binding; a key it refuses is this Worker's 502, a cap's refusal carries Retry-After", async () => {
  const res = await fetch(`${pair.url}/reward`, { method: "POST", headers: AUTH, body: "not json" });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error, /^the body is not JSON/, "named as such, not as fields missing");
  await roomInDay(120);
  const capped = await startCaller(keys.capped.key);
  try {
    // The balance route with a key lacking the scope: plumgate's 403 is
    // about this Worker's key, which its caller can do nothing about.
    await assertBalanceKeyRefused(capped.url, "forbidden");
    const first = await post(`${capped.url}/reward`, { ...REWARD, poNumber: po("wk-cap-1") });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assertWaitToldTwice(await post(`${capped.url}/reward`, { ...REWARD, poNumber: po("wk-cap-2") }));
  } finally {
    await capped.stop();
    cleanup(capped.persistDir);
  }
});

test("worker example: a read that meets Xoxoday's own 401 (passed through by plumgate) is this Worker's 502, not the caller's 401", async () => {
  // A plumgate of its own: its edge cache holds no balance yet, so the call reaches the sandbox.
  const fresh = await startCaller(keys.rewards.key);
  try {
    await sandbox.admin("/faults/api", { mode: "PIPE10017", op: "getBalance", count: 1 });
    const r = await fetch(`${fresh.url}/balance`, { headers: AUTH });
    const j = await r.json();
    assert.equal(r.status, 502, JSON.stringify(j));
    assert.notEqual(j.error, "plumgate_key_refused", "Xoxoday's refusal, not the key's");
    assert.match(j.requestId, /^[0-9a-f]{32}$/);
  } finally {
    await sandbox.admin("/faults/clear", {});
    await fresh.stop();
    cleanup(fresh.persistDir);
  }
});

test("worker example: a revoked PLUMGATE_KEY is answered 502 on a read and on an order, never passed on as the caller's 401", async () => {
  // The key is made and revoked by plumgate alone, then plumgate starts
  // again on the same state behind the caller Worker, which holds the key.
  const persistDir = tempDir();
  const vars = await ownTokens();
  const solo = await startWorker({ sandbox, keys, vars, persistDir });
  let key;
  try {
    // A plain fetch: the one answer that shows the key is not recorded, so
    // the leak scan can look for the key in every other one.
    const made = await fetch(`${solo.url}/v1/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${keys.admin.key}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "revoked-caller", scopes: ["balance", "orders:write"] }),
    });
    assert.equal(made.status, 201);
    key = (await made.json()).key;
    runtimeKeys.push(key);
    assert.equal((await call(solo, "/v1/ops/getBalance", { key, body: {} })).status, 200, "the key worked");
    const revoked = await call(solo, "/v1/keys/revoked-caller", { method: "DELETE", key: keys.admin });
    assert.equal(revoked.json?.state, "revoked", revoked.text);
  } finally {
    await solo.stop();
  }
  const behind = await startCaller(key, { vars, persistDir });
  try {
    await assertBalanceKeyRefused(behind.url, "unauthorized");
    const order = await post(`${behind.url}/reward`, { ...REWARD, poNumber: po("wk-revoked") });
    assert.equal(order.status, 502, JSON.stringify(order.json));
    assert.deepEqual([order.json.status, order.json.code], ["refused", "unauthorized"]);
  } finally {
    await behind.stop();
    cleanup(persistDir);
  }
});
