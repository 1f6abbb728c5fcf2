// Alerts to ALERT_WEBHOOK_URL, end to end with the product's default
// settings (Xoxoday's per-minute budgets lifted, as the harness does unless
// a test passes `XOXODAY_RATE_LIMITS: null`): a tiny webhook receiver on loopback records every POST, and the
// sandbox's faults drive the token authority into each condition and out
// of it. Each change of condition is one alert (none while it holds), a
// recovery is one more, a receiver that fails is retried with backoff until
// it accepts, and no payload holds a token, secret, key, voucher code or
// the webhook URL (which is a secret itself).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { standardKeys, call, waitFor, tokenFixture, capturedLogs, capturedResponses, collectVoucherSecrets, ownValue, voucherLeakScan, voucherScanLacks } from "./harness.mjs";

const keys = standardKeys();
const { fresh, newDir, withWorker, op, tokenStatus, finish, sandboxes } = tokenFixture(keys);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const forceRefresh = (w) => call(w, "/v1/token/refresh", { key: keys.admin });

const receivers = [];
const vouchers = new Set();

/**
 * A webhook receiver on 127.0.0.1: `hits` is every POST (time, status it
 * got, raw body), `alerts` the parsed bodies it accepted; `failNext(n)`
 * answers 500 to the next n. Its URL has a random path, like a real
 * incoming-webhook URL, so the leak scan can look for it. `answerBytes`:
 * accept with a body that long instead of "ok".
 */
/**
 * A webhook receiver on loopback. `answerBytes`: answer a 2xx with a body of
 * that many bytes, with its content-length or (`chunked`) without one,
 * written as the reader takes it; `rx.answerWritten` counts what was
 * written before the reader stopped or the body ended.
 */
async function startReceiver({ answerBytes, chunked = false } = {}) {
  const hits = [];
  const alerts = [];
  let failing = 0;
  const writeBig = (res) => {
    const piece = Buffer.alloc(64 * 1024, 0x61);
    res.writeHead(200, chunked ? { "content-type": "text/plain" } : { "content-type": "text/plain", "content-length": String(answerBytes) });
    const more = () => {
      while (rx.answerWritten < answerBytes && !res.destroyed) {
        rx.answerWritten += piece.length;
        if (!res.write(piece)) return void res.once("drain", more);
      }
      res.end();
    };
    more();
  };
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      const status = failing > 0 ? 500 : 200;
      if (failing > 0) failing--;
      hits.push({ at: Date.now(), status, body, method: req.method, path: req.url, type: req.headers["content-type"] });
      // What left plumgate goes through the leak scan with the responses.
      capturedResponses.push(`webhook ${body}`);
      if (status === 200) alerts.push(JSON.parse(body));
      if (status === 200 && answerBytes) return writeBig(res);
      res.writeHead(status, { "content-type": "text/plain" }).end(status !== 200 ? "down" : "ok");
    });
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  const secret = randomBytes(16).toString("hex");
  const rx = {
    url: `http://127.0.0.1:${server.address().port}/services/T0/B0/${secret}`,
    secret,
    hits,
    alerts,
    answerWritten: 0,
    failNext(n) { failing = n; },
    close: () => new Promise((res) => server.close(res)),
  };
  receivers.push(rx);
  return rx;
}

/** Wait until the receiver has accepted `n` alerts, then a little longer to see that no more come. */
async function expectAlerts(rx, n, what) {
  await waitFor(() => rx.alerts.length >= n, { timeout: 30_000, what });
  await sleep(1500);
  assert.equal(rx.alerts.length, n, `${what}: exactly ${n} (${JSON.stringify(rx.alerts.map((a) => [a.event, a.state]))})`);
  return rx.alerts[n - 1];
}

/** The five fixed fields and the Slack text of an alert. */
function assertShape(a, event, state) {
  assert.equal(a.event, event);
  assert.equal(a.state, state);
  assert.match(a.deployment, /^127\.0\.0\.1:\d+ account:[0-9a-f]{16}$/, "the Xoxoday host and the account when DEPLOYMENT_NAME is unset");
  assert.ok(Math.abs(Date.parse(a.at) - Date.now()) < 60_000, a.at);
  assert.equal(typeof a.message, "string");
  assert.equal(a.text, `plumgate [${a.deployment}] ${state === "firing" ? "ALERT" : "RESOLVED"} ${event}: ${a.message}`);
}

after(async () => {
  for (const rx of receivers) await rx.close();
  const secrets = receivers.flatMap((rx) => [rx.url, rx.secret]);
  const lacks = await voucherScanLacks(sandboxes, vouchers);
  const hits = await finish();
  assert.deepEqual(hits, [], "no token, secret or key in any response, log line or alert");
  // The webhook URL is a secret too: never in a response or a log line.
  const leaks = [...capturedLogs.filter((l) => !l.startsWith("[sandbox]")), ...capturedResponses]
    .filter((t) => secrets.some((s) => t.includes(s)));
  assert.deepEqual(leaks, [], "the webhook URL never shows");
  const payloads = receivers.flatMap((rx) => rx.hits.map((h) => h.body));
  // The balance test's orders give the codes and its alerts the payloads
  // to look in; a run narrowed to other tests may have neither.
  if (vouchers.size > 0) assert.ok(payloads.length > 0, "alert payloads to look for voucher codes in");
  assert.equal(lacks, "", "the balance test's orders gave voucher codes and PINs to look for");
  for (const v of vouchers) {
    // As a value of its own: a 6-digit PIN can sit inside a longer number.
    assert.ok(!payloads.some((p) => ownValue(v).test(p)), `voucher code ${v} in an alert`);
  }
  // Nor in a worker's log line or an error answer, as every suite checks.
  assert.deepEqual(voucherLeakScan(vouchers), [], "no voucher code or PIN in any log line or error answer");
});

test("reauth_required (invalid_grant): one alert, none while it holds, one when a new refresh token clears it", async () => {
  const rx = await startReceiver();
  const sb = await fresh();
  const dir = newDir();
  await withWorker(sb, { persistDir: dir, vars: { ALERT_WEBHOOK_URL: rx.url } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sleep(500);
    assert.equal(rx.hits.length, 0, "a healthy start alerts nobody");
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "invalid_grant" });
    await sb.admin("/counters/reset", {});
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "reauth_required");
    // While it holds: requests, forced refreshes, nothing new.
    for (let i = 0; i < 4; i++) assert.equal((await op(w)).status, 503);
    assert.equal((await forceRefresh(w)).status, 503);
    const a = await expectAlerts(rx, 1, "the reauth_required alert");
    assertShape(a, "reauth_required", "firing");
    assert.equal(a.token_state, "reauth_required");
    assert.match(a.message, /invalid_grant/);
    assert.match(a.message, /XOXODAY_REFRESH_TOKEN/);
    // Its access token was rejected: no deadline left, callers refused now.
    assert.match(a.message, /\. Calls get 503 reauth_required now\.$/);
    const hit = rx.hits[0];
    assert.equal(hit.method, "POST");
    assert.equal(hit.type, "application/json");
    assert.equal(hit.path, new URL(rx.url).pathname, "posted to the configured URL");
    const st = await tokenStatus(w);
    assert.deepEqual(st.last_alert, { at: a.at, attempts: 1, delivered: true, error: null, event: "reauth_required", next_attempt_at: null, state: "firing" });
    assert.equal((await sb.counters()).refresh_calls, 1, "no refresh loop");
  });
  // The operator generates new tokens and sets XOXODAY_REFRESH_TOKEN.
  const pair = await sb.admin("/tokens/issue", {});
  await withWorker(sb, { persistDir: dir, vars: { ALERT_WEBHOOK_URL: rx.url, XOXODAY_REFRESH_TOKEN: pair.refresh_token } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    const a = await expectAlerts(rx, 2, "the recovery alert");
    assertShape(a, "reauth_required", "resolved");
    // Raised once the new token has refreshed (the rejected access token's replacement).
    assert.equal(a.token_state, "fresh");
    assert.ok(Date.parse(a.at) > Date.parse(rx.alerts[0].at));
    for (let i = 0; i < 3; i++) assert.equal((await op(w)).status, 200);
    await sleep(1000);
    assert.equal(rx.hits.length, 2, "nothing more once healthy");
    assert.equal((await tokenStatus(w)).last_alert.state, "resolved");
  });
});

// The operator's fix is tried at once, not taken on trust: a new refresh
// token set while the access token still serves would otherwise be first
// used at the next scheduled refresh, days later, while the alert said
// "resolved" and GET /v1/token "fresh".
test("reauth_required while the access token still serves: a new XOXODAY_REFRESH_TOKEN is tried at once; a mistyped one leaves the alert open, the right one resolves it once it has refreshed", async () => {
  const rx = await startReceiver();
  const sb = await fresh();
  const dir = newDir();
  // A pair from the dashboard, both tokens set: the access token serves at
  // once, and the first seed's refresh token waits until it is needed.
  const first = await sb.admin("/tokens/issue", {});
  await sb.admin("/tokens/revoke-refresh", {});
  await sb.admin("/counters/reset", {});
  const vars = (refresh) => ({ ALERT_WEBHOOK_URL: rx.url, XOXODAY_ACCESS_TOKEN: first.access_token, XOXODAY_REFRESH_TOKEN: refresh });
  await withWorker(sb, { persistDir: dir, vars: vars(first.refresh_token) }, async (w) => {
    assert.equal((await op(w)).status, 200);
    assert.equal((await sb.counters()).refresh_calls, 0, "the first seed is not refreshed before it is needed");
    // The operator tries the refresh token: Xoxoday refuses it (revoked).
    const f = await forceRefresh(w);
    assert.equal(f.status, 503, f.text);
    assert.equal(f.json.error.code, "reauth_required");
    assert.equal((await op(w)).status, 200, "the access token still serves");
    const a = await expectAlerts(rx, 1, "the reauth_required alert");
    assertShape(a, "reauth_required", "firing");
    assert.match(a.message, /Calls are served with the current access token until .* at the latest/);
  });
  // A mistyped value: callers are served from the cache meanwhile; the
  // first call to reach the authority (here GET /v1/token, else the hourly
  // cron) takes it and tries it at once. Refused: still reauth_required,
  // and no "resolved" was ever sent.
  await withWorker(sb, { persistDir: dir, vars: vars("plumgate-mistyped-refresh-token") }, async (w) => {
    const before = (await sb.counters()).refresh_calls;
    assert.equal((await op(w)).status, 200);
    await tokenStatus(w);
    await waitFor(async () => (await tokenStatus(w)).state === "reauth_required", { what: "the new value tried and refused" });
    assert.equal((await sb.counters()).refresh_calls, before + 1, "tried once");
    assert.match((await tokenStatus(w)).last_error, /invalid_token/);
    assert.equal((await op(w)).status, 200, "the access token still serves");
    await sleep(1500);
    assert.equal(rx.hits.length, 1, "no resolved alert for a value Xoxoday refused");
  });
  // The right one: tried at once, it refreshes, and only then is the alert resolved.
  const pair = await sb.admin("/tokens/issue", {});
  await withWorker(sb, { persistDir: dir, vars: vars(pair.refresh_token) }, async (w) => {
    const before = await sb.counters();
    await tokenStatus(w);
    const a = await expectAlerts(rx, 2, "the resolved alert");
    assertShape(a, "reauth_required", "resolved");
    assert.equal(a.token_state, "fresh");
    assert.match(a.message, /a refresh with the new XOXODAY_REFRESH_TOKEN or client id\/secret passed/);
    const c = await sb.counters();
    assert.deepEqual([c.refresh_calls - before.refresh_calls, c.refresh_success - before.refresh_success], [1, 1]);
    const st = await tokenStatus(w);
    assert.deepEqual([st.state, st.refresh_count, st.last_error], ["fresh", 1, null]);
    assert.equal((await op(w)).status, 200);
  });
});

test("an alert not yet delivered survives the worker's end: stored first, delivered by the alarm after a restart", async () => {
  const rx = await startReceiver();
  const sb = await fresh();
  const dir = newDir();
  rx.failNext(1000);
  await withWorker(sb, { persistDir: dir, vars: { ALERT_WEBHOOK_URL: rx.url } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "invalid_grant" });
    assert.equal((await op(w)).status, 503);
    await waitFor(async () => (await tokenStatus(w)).last_alert?.attempts === 1, { what: "a first, failed, delivery" });
  });
  // The worker and its Durable Objects are gone; the receiver comes back.
  rx.failNext(0);
  const failed = rx.hits.length;
  await withWorker(sb, { persistDir: dir, vars: { ALERT_WEBHOOK_URL: rx.url } }, async (w) => {
    // No call reaches the authority: its stored alarm alone delivers.
    const a = await expectAlerts(rx, 1, "the stored alert, after the restart");
    assertShape(a, "reauth_required", "firing");
    assert.ok(rx.hits.slice(0, failed).every((h) => h.status === 500 && h.body === rx.hits[failed].body), "the same alert");
    const st = await tokenStatus(w);
    assert.equal(st.last_alert.delivered, true);
    assert.equal(st.last_alert.attempts, failed + 1);
  });
});

test("credentials_rejected (invalid_client): one alert; recovery with a new refresh token; unset webhook: recorded, not sent", async () => {
  const rx = await startReceiver();
  const sb = await fresh();
  const dir = newDir();
  await withWorker(sb, { persistDir: dir, vars: { ALERT_WEBHOOK_URL: rx.url } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "invalid_client", count: 5 });
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "credentials_rejected");
    const burst = await Promise.all(Array.from({ length: 8 }, () => op(w)));
    assert.ok(burst.every((x) => x.status === 503));
    const a = await expectAlerts(rx, 1, "the credentials_rejected alert");
    assertShape(a, "credentials_rejected", "firing");
    assert.match(a.message, /XOXODAY_CLIENT_SECRET/);
    assert.match(a.message, /invalid_client/);
    assert.match(a.message, /\. Calls get 503 credentials_rejected now\.$/);
    assert.equal(a.token_state, "credentials_rejected");
  });
  await sb.admin("/faults/clear", {});
  const pair = await sb.admin("/tokens/issue", {});
  await withWorker(sb, { persistDir: dir, vars: { ALERT_WEBHOOK_URL: rx.url, XOXODAY_REFRESH_TOKEN: pair.refresh_token } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    const a = await expectAlerts(rx, 2, "the recovery alert");
    assertShape(a, "credentials_rejected", "resolved");
  });
  // Without ALERT_WEBHOOK_URL the alert is still decided, and GET /v1/token says it was not sent.
  const sb2 = await fresh();
  await withWorker(sb2, { vars: { XOXODAY_CLIENT_SECRET: "not-the-secret" } }, async (w) => {
    assert.equal((await op(w)).status, 503);
    const st = await tokenStatus(w);
    assert.equal(st.state, "credentials_rejected");
    assert.equal(st.last_alert.event, "credentials_rejected");
    assert.equal(st.last_alert.delivered, false);
    assert.equal(st.last_alert.attempts, 0);
    assert.equal(st.last_alert.error, "not sent: ALERT_WEBHOOK_URL is not set");
    await waitFor(() => w.jsonLogs().some((l) => l.event === "alert_raised" && l.delivery === "not_configured"), { what: "alert_raised logged as not_configured" });
  });
  assert.equal(rx.hits.length, 2, "the other worker's alerts went nowhere");
});

test("ALERT_REFRESH_FAILURES (3) failed refresh runs: one alert, retried with backoff until the receiver accepts; recovery", async () => {
  const rx = await startReceiver();
  const sb = await fresh();
  await withWorker(sb, { vars: { ALERT_WEBHOOK_URL: rx.url } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    // Each run makes 3 attempts: three runs fail.
    await sb.admin("/faults/refresh", { mode: "5xx", count: 9 });
    await sb.admin("/counters/reset", {});
    rx.failNext(2);
    assert.equal((await op(w)).status, 502, "run 1 (a request)");
    assert.equal((await forceRefresh(w)).status, 502, "run 2 (forced: the token is unusable, so not throttled)");
    await sleep(1000);
    assert.equal(rx.hits.length, 0, "two failed runs: no alert yet");
    assert.equal((await forceRefresh(w)).status, 502, "run 3");
    assert.equal((await sb.counters()).refresh_calls, 9);
    // The receiver answers 500 twice: the alert waits and says so.
    await waitFor(() => rx.hits.length >= 1, { what: "the first delivery" });
    await waitFor(async () => (await tokenStatus(w)).last_alert?.attempts === 1, { what: "the failed attempt recorded" });
    const pending = (await tokenStatus(w)).last_alert;
    assert.equal(pending.event, "refresh_failing");
    assert.equal(pending.delivered, false);
    assert.equal(pending.error, "the receiver answered HTTP 500");
    const retryIn = Date.parse(pending.next_attempt_at) - rx.hits[0].at;
    assert.ok(retryIn >= 2000 && retryIn <= 5500, `first retry after ${retryIn} ms (5 s, jittered down to half)`);
    const a = await expectAlerts(rx, 1, "the refresh_failing alert, delivered at the third attempt");
    assert.equal(rx.hits.length, 3);
    assert.deepEqual(rx.hits.map((h) => h.status), [500, 500, 200]);
    assert.ok(rx.hits.every((h) => h.body === rx.hits[0].body), "the same alert each time");
    const gaps = [rx.hits[1].at - rx.hits[0].at, rx.hits[2].at - rx.hits[1].at];
    assert.ok(gaps[0] >= 2400 && gaps[1] >= 4900, `backoff between attempts: ${gaps}`);
    assertShape(a, "refresh_failing", "firing");
    assert.equal(a.failures, 3);
    assert.equal(a.token_state, "expired");
    assert.match(a.message, /^3 token refresh runs failed in a row/);
    assert.match(a.message, /HTTP 503/);
    const st = await tokenStatus(w);
    assert.deepEqual([st.last_alert.delivered, st.last_alert.attempts, st.last_alert.error], [true, 3, null]);
    const lines = w.jsonLogs().filter((l) => l.event === "alert_delivery");
    assert.deepEqual(lines.map((l) => l.outcome), ["retry", "retry", "delivered"]);
    // Xoxoday recovers: the next refresh succeeds, and one alert says so.
    await sb.admin("/faults/clear", {});
    const ok = await forceRefresh(w);
    assert.equal(ok.status, 200, ok.text);
    const r = await expectAlerts(rx, 2, "the recovery alert");
    assertShape(r, "refresh_failing", "resolved");
    assert.equal(r.token_state, "fresh");
    assert.equal((await op(w)).status, 200);
  });
});

for (const chunked of [false, true]) {
  test(`a receiver that accepts with a 64 MiB page (${chunked ? "chunked, no length" : "its length stated"}): delivered once; the body is neither copied into the wasm nor read whole (over 16 MiB), and the log says so`, async () => {
    const MiB = 1024 * 1024;
    const rx = await startReceiver({ answerBytes: 64 * MiB, chunked });
    const sb = await fresh();
    await withWorker(sb, { vars: { ALERT_WEBHOOK_URL: rx.url } }, async (w) => {
      assert.equal((await op(w)).status, 200);
      await sb.admin("/tokens/revoke-access", {});
      await sb.admin("/faults/refresh", { mode: "invalid_grant" });
      assert.equal((await op(w)).status, 503);
      const a = await expectAlerts(rx, 1, "the reauth_required alert");
      assertShape(a, "reauth_required", "firing");
      assert.equal(rx.hits.length, 1, "a 2xx is delivered, whatever its body: never sent again");
      await waitFor(async () => (await tokenStatus(w)).last_alert?.delivered === true, { what: "recorded as delivered" });
      const big = w.jsonLogs().filter((l) => l.event === "upstream_answer_too_large");
      assert.equal(big.length, 1, JSON.stringify(big));
      assert.deepEqual([big[0].status, big[0].limit], [200, 16 * MiB]);
      if (chunked) {
        assert.ok(big[0].bytes > 16 * MiB && big[0].bytes < 17 * MiB, `read until just past the limit, then stopped: ${big[0].bytes}`);
      } else {
        assert.equal(big[0].bytes, 64 * MiB, "the stated length");
      }
      assert.ok(rx.answerWritten < 48 * MiB, `the rest was never taken: ${rx.answerWritten / MiB} MiB written of 64`);
      assert.ok(!JSON.stringify(big).includes(rx.secret), "never the URL");
      // The worker still serves.
      await sb.admin("/faults/clear", {});
    });
  });
}

test("BALANCE_ALERT_BELOW: a crossing seen in getBalance answers alerts once, a top-up resolves it", async () => {
  const rx = await startReceiver();
  const sb = await fresh({ initial_balance: 1015 });
  const vars = { ALERT_WEBHOOK_URL: rx.url, BALANCE_ALERT_BELOW: "1000", DEPLOYMENT_NAME: "rewards <test> & co" };
  await withWorker(sb, { vars }, async (w) => {
    // The admin key bypasses the edge cache, so each call is an answer from Xoxoday.
    const balance = async () => {
      const r = await call(w, "/v1/ops/getBalance", { key: keys.admin, body: {}, headers: { "cache-control": "no-cache" } });
      assert.equal(r.status, 200, r.text);
      return Number(r.json.data.getBalance.data.value);
    };
    const order = async (po) => {
      const r = await call(w, "/v1/ops/placeOrder", {
        key: keys.writer,
        body: { productId: 10100, quantity: 1, denomination: 10, poNumber: po, email: "alex@example.com" },
      });
      assert.equal(r.status, 200, r.text);
      collectVoucherSecrets(r.json, vouchers);
    };
    assert.equal(await balance(), 1015);
    // The cached answer (balance key, no bypass) is served without any check.
    assert.equal((await call(w, "/v1/ops/getBalance", { key: keys.balance, body: {} })).status, 200);
    await order(`alert-${Date.now()}-1`);
    const above = await balance();
    assert.ok(above >= 1000 && above < 1015, `${above}`);
    await sleep(1000);
    assert.equal(rx.hits.length, 0, "above the threshold: no alert");
    await order(`alert-${Date.now()}-2`);
    const below = await balance();
    assert.ok(below < 1000, `${below}`);
    for (let i = 0; i < 3; i++) assert.equal(await balance(), below);
    const a = await expectAlerts(rx, 1, "the balance_low alert");
    assert.equal(a.event, "balance_low");
    assert.equal(a.state, "firing");
    assert.equal(a.deployment, "rewards <test> & co");
    assert.equal(a.text, `plumgate [rewards &lt;test&gt; &amp; co] ALERT balance_low: ${a.message}`, "Slack's escapes");
    assert.equal(a.balance, below);
    assert.equal(a.threshold, 1000);
    assert.match(a.message, /below BALANCE_ALERT_BELOW \(1000\)/);
    assert.equal((await tokenStatus(w)).last_alert.event, "balance_low");
    // Topped up.
    await sb.admin("/config", { initial_balance: 5000 });
    const topped = await balance();
    assert.ok(topped > 4900, `${topped}`);
    const r = await expectAlerts(rx, 2, "the recovery alert");
    assert.deepEqual([r.event, r.state, r.balance], ["balance_low", "resolved", topped]);
    assert.equal(await balance(), topped);
    await sleep(1000);
    assert.equal(rx.hits.length, 2);
  });
});

test("a bad alert setting is a configuration problem: /healthz names it, never its value", async () => {
  const sb = await fresh();
  const hook = `http://hooks.invalid/services/${randomBytes(8).toString("hex")}`;
  await withWorker(sb, { vars: { ALERT_WEBHOOK_URL: hook, BALANCE_ALERT_BELOW: "plenty", ALERT_REFRESH_FAILURES: "0" } }, async (w) => {
    const h = await call(w, "/healthz", { method: "GET" });
    assert.equal(h.status, 503);
    assert.equal(h.json.status, "misconfigured");
    const problems = h.json.problems.join("\n");
    for (const name of ["ALERT_WEBHOOK_URL", "BALANCE_ALERT_BELOW", "ALERT_REFRESH_FAILURES"]) assert.match(problems, new RegExp(name));
    assert.match(problems, /http:\/\/ only for loopback/);
    assert.ok(!problems.includes("hooks.invalid") && !problems.includes("plenty"), problems);
    const t = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(t.status, 503);
    assert.equal(t.json.error.code, "misconfigured");
    assert.ok(!t.text.includes("hooks.invalid"));
  });
});
