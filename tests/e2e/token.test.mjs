// Token authority end to end (issue: token lifecycle, contract §4): the built
// worker in workerd against the sandbox. Each scenario gets a fresh sandbox
// and a fresh worker state unless it says otherwise.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  startSandbox, startWorker, standardKeys, call, leakScan, waitFor, tempDir, cleanup, capturedLogs,
} from "./harness.mjs";

const keys = standardKeys();
const sandboxes = [];
const dirs = [];
const HIGH_LIMITS = {
  getBalance: 100000, getFilters: 100000, getVouchers: 100000, placeOrder: 100000,
  getOrderDetails: 100000, getOrderHistory: 100000, paymentHistory: 100000,
};

async function fresh(config = {}) {
  const sb = await startSandbox();
  sandboxes.push(sb);
  await sb.admin("/config", { rate_limits: HIGH_LIMITS, ...config });
  return sb;
}

// An operation that is never cached at the edge, so every call goes upstream.
const OP = "getOrderHistory";
const op = (w, key = keys.admin) =>
  call(w, `/v1/ops/${OP}`, { key, body: { startDate: "2020-01-01", endDate: "2030-12-31", limit: 5, page: 1 } });

after(async () => {
  const hits = await Promise.all(sandboxes.map((sb) => leakScan(sb, keys)));
  for (const sb of sandboxes) await sb.stop();
  for (const d of dirs) cleanup(d);
  assert.deepEqual(hits.flat(), [], "no token, secret or key in any response or log line");
});

test("1. cold start: 200 concurrent calls cause exactly one refresh", async () => {
  // The refresh takes 1 s, so the other 199 calls surely arrive while the
  // first one's lookup is running (with the default 50 ms, on a quiet
  // machine they could all come after it and find the token in memory).
  const sb = await fresh({ refresh_latency_ms: 1000 });
  const w = await startWorker({ sandbox: sb, keys });
  try {
    const results = await Promise.all(Array.from({ length: 200 }, () => op(w)));
    const statuses = results.map((r) => r.status);
    assert.deepEqual([...new Set(statuses)], [200], `statuses: ${statuses.join(",")}`);
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 1, "exactly one upstream refresh");
    assert.equal(c.peak_concurrent_refreshes, 1);
    assert.equal(c.api_calls[OP], 200);
    // One token lookup per isolate at a time: the other cold requests wait
    // for it ("shared") instead of each reading KV and calling the Durable
    // Object. (A waiter gives up after 3 s, so a very slow machine may show
    // a few more lookups; without coalescing all 200 are lookups.)
    const rids = new Set(results.map((r) => r.headers["x-request-id"]));
    const sources = (await w.logsFor(rids)).map((l) => l.token);
    assert.equal(sources.length, 200, "one log line per call");
    const lookups = sources.filter((t) => t === "kv" || t === "authority").length;
    assert.ok(lookups >= 1 && lookups <= 10, `token lookups: ${lookups} (sources: ${[...new Set(sources)].join(",")})`);
    assert.ok(sources.every((t) => ["memory", "shared", "kv", "authority"].includes(t)), `sources: ${[...new Set(sources)].join(",")}`);
    const counts = JSON.stringify(Object.fromEntries([...new Set(sources)].map((t) => [t, sources.filter((x) => x === t).length])));
    assert.ok(sources.includes("shared"), `concurrent cold calls waited for the lookup (sources: ${counts})`);
    const status = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(status.status, 200);
    assert.equal(status.json.state, "fresh");
    assert.equal(status.json.refresh_count, 1);
    assert.match(status.json.access_token_expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(status.json.last_error, null);
    for (const k of ["state", "access_token_expires_at", "refresh_token_expires_at", "last_refresh_at", "refresh_count", "last_error"]) {
      assert.ok(k in status.json, k);
    }
  } finally {
    await w.stop();
  }
});

test("2. strict rotation + restart: the rotated token is used, the spent bootstrap never again", async () => {
  const sb = await fresh({ rotation: "strict" });
  const dir = tempDir();
  dirs.push(dir);
  let w = await startWorker({ sandbox: sb, keys, persistDir: dir });
  try {
    assert.equal((await op(w)).status, 200);
  } finally {
    await w.stop();
  }
  assert.equal((await sb.counters()).refresh_calls, 1);
  w = await startWorker({ sandbox: sb, keys, persistDir: dir });
  try {
    assert.equal((await op(w)).status, 200, "serves with the persisted token after restart");
    const forced = await call(w, "/v1/token/refresh", { key: keys.admin });
    assert.equal(forced.status, 200, forced.text);
    assert.equal(forced.json.refresh_count, 2);
    assert.equal((await op(w)).status, 200);
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 2);
    assert.equal(c.refresh_failures, 0);
    const t = await sb.admin("/tokens");
    assert.equal(t.spent_refresh_tokens_used, 0, "never sent a rotated-away refresh token");
  } finally {
    await w.stop();
  }
});

test("3. revoked access token: one refresh, the call succeeds; 50 concurrent rejections cause one refresh", async () => {
  const sb = await fresh();
  const w = await startWorker({ sandbox: sb, keys });
  try {
    assert.equal((await op(w)).status, 200);
    await new Promise((r) => setTimeout(r, 1200)); // past TOKEN_MIN_REFRESH_INTERVAL_SECS=1
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/counters/reset", {});
    const one = await op(w);
    assert.equal(one.status, 200, one.text);
    let c = await sb.counters();
    assert.equal(c.refresh_calls, 1);
    assert.equal(c.unauthorized_api_calls, 1);

    await new Promise((r) => setTimeout(r, 1200));
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/counters/reset", {});
    const burst = await Promise.all(Array.from({ length: 50 }, () => op(w)));
    assert.deepEqual([...new Set(burst.map((r) => r.status))], [200]);
    c = await sb.counters();
    assert.equal(c.refresh_calls, 1, "50 rejections, one refresh");
    assert.equal(c.peak_concurrent_refreshes, 1);
  } finally {
    await w.stop();
  }
});

test("3b. a token upstream keeps rejecting ends in 502 upstream_unauthorized, no loop", async () => {
  const sb = await fresh();
  const w = await startWorker({ sandbox: sb, keys, vars: { TOKEN_MIN_REFRESH_INTERVAL_SECS: "60" } });
  try {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/counters/reset", {});
    const r = await op(w);
    // The token is seconds old: refreshing again would not help, so no refresh.
    assert.equal(r.status, 502);
    assert.equal(r.json.error.code, "upstream_unauthorized");
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 0);
    assert.equal(c.unauthorized_api_calls, 2, "one call and exactly one retry");
  } finally {
    await w.stop();
  }
});

test("4. transient refresh failures while the token is valid: callers keep succeeding, retries bounded", async () => {
  const sb = await fresh();
  const w = await startWorker({ sandbox: sb, keys, vars: { REFRESH_TIMEOUT_MS: "1500" } });
  try {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/faults/refresh", { mode: "5xx", count: 1000, status: 503 });
    await sb.admin("/counters/reset", {});
    const forced = call(w, "/v1/token/refresh", { key: keys.admin });
    const during = await Promise.all(Array.from({ length: 5 }, () => op(w)));
    assert.deepEqual(during.map((r) => r.status), [200, 200, 200, 200, 200]);
    const f = await forced;
    assert.equal(f.status, 502, f.text);
    assert.equal(f.json.error.code, "upstream_error");
    let c = await sb.counters();
    assert.equal(c.refresh_calls, 3, "bounded: three attempts");
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "fresh");
    assert.match(st.json.last_error, /503/);
    for (let i = 0; i < 5; i++) assert.equal((await op(w)).status, 200);
    c = await sb.counters();
    assert.equal(c.refresh_calls, 3, "no refresh storm while the token is valid");

    await sb.admin("/faults/clear", {});
    await sb.admin("/faults/refresh", { mode: "hang", count: 1000, hang_ms: 4000 });
    await sb.admin("/counters/reset", {});
    const t0 = Date.now();
    const hung = call(w, "/v1/token/refresh", { key: keys.admin });
    const fast = await op(w);
    assert.equal(fast.status, 200, "callers are not blocked by a hanging refresh");
    assert.ok(Date.now() - t0 < 3000, "served while the refresh hangs (each hung attempt lasts 4 s)");
    const h = await hung;
    assert.equal(h.status, 504, h.text);
    assert.equal(h.json.error.code, "upstream_timeout");
    c = await sb.counters();
    assert.equal(c.refresh_calls, 3);
    const st2 = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.match(st2.json.last_error, /timed out/);
    assert.equal((await op(w)).status, 200);
  } finally {
    await w.stop();
  }
});

test("5. invalid_grant: reauth_required, no refresh loop; a new bootstrap token recovers", async () => {
  const sb = await fresh();
  const dir = tempDir();
  dirs.push(dir);
  await sb.admin("/faults/refresh", { mode: "invalid_grant", count: 1 });
  let w = await startWorker({ sandbox: sb, keys, persistDir: dir });
  let logs;
  try {
    const burst = await Promise.all(Array.from({ length: 20 }, () => op(w)));
    for (const r of burst) {
      assert.equal(r.status, 503);
      assert.equal(r.json.error.code, "reauth_required");
      assert.match(r.json.error.message, /XOXODAY_REFRESH_TOKEN/);
    }
    const again = await Promise.all(Array.from({ length: 20 }, () => op(w)));
    assert.ok(again.every((r) => r.status === 503));
    assert.equal((await call(w, "/v1/token/refresh", { key: keys.admin })).status, 503);
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 1, "the refresh count stays flat");
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "reauth_required");
    assert.match(st.json.last_error, /invalid_grant/);
    logs = w.lines.join("\n");
    assert.match(logs, /reauth_required/, "a loud log line");
  } finally {
    await w.stop();
  }
  // The operator generates new tokens and sets XOXODAY_REFRESH_TOKEN again.
  const issued = await sb.admin("/tokens/issue", {});
  w = await startWorker({ sandbox: sb, keys, persistDir: dir, vars: { XOXODAY_REFRESH_TOKEN: issued.refresh_token } });
  try {
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "fresh");
    assert.equal(st.json.last_error, null);
  } finally {
    await w.stop();
  }
});

test("6a. rotate-then-drop under the 6-hour grace rule: recovers", async () => {
  const sb = await fresh({ rotation: "grace" });
  await sb.admin("/faults/refresh", { mode: "rotate_then_drop", count: 1 });
  const w = await startWorker({ sandbox: sb, keys });
  try {
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 2, "the dropped answer, then one retry with the old token");
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "fresh");
  } finally {
    await w.stop();
  }
});

test("6b. rotate-then-drop under strict rotation: reauth_required, never loops", async () => {
  const sb = await fresh({ rotation: "strict" });
  await sb.admin("/faults/refresh", { mode: "rotate_then_drop", count: 1 });
  const w = await startWorker({ sandbox: sb, keys });
  try {
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "reauth_required");
    const burst = await Promise.all(Array.from({ length: 30 }, () => op(w)));
    assert.ok(burst.every((x) => x.status === 503));
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 2);
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "reauth_required");
  } finally {
    await w.stop();
  }
});

test("7. cron keeps the pair alive: refreshes in the early window, not when fresh", async () => {
  const sb = await fresh();
  const w = await startWorker({ sandbox: sb, keys });
  try {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/counters/reset", {});
    let r = await fetch(`${w.url}/__scheduled?cron=17+*+*+*+*`);
    await r.text();
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal((await sb.counters()).refresh_calls, 0, "fresh token: no refresh");

    // Upstream now issues 3-day tokens: after one refresh the pair is inside
    // the 7-day early window.
    await sb.admin("/config", { access_ttl_secs: 3 * 86400 });
    assert.equal((await call(w, "/v1/token/refresh", { key: keys.admin })).status, 200);
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "stale");
    await new Promise((res) => setTimeout(res, 1200));
    await sb.admin("/counters/reset", {});
    r = await fetch(`${w.url}/__scheduled?cron=17+*+*+*+*`);
    await r.text();
    await waitFor(async () => (await sb.counters()).refresh_calls === 1, { what: "cron refresh" });
    await new Promise((res) => setTimeout(res, 500));
    assert.equal((await sb.counters()).refresh_calls, 1);
  } finally {
    await w.stop();
  }
});

test("hot path: once the isolate holds a fresh token, calls use memory (no KV or DO call)", async () => {
  const sb = await fresh();
  const w = await startWorker({ sandbox: sb, keys });
  try {
    assert.equal((await op(w)).status, 200);
    const ids = [];
    for (let i = 0; i < 20; i++) {
      const r = await op(w);
      assert.equal(r.status, 200);
      ids.push(r.headers["x-request-id"]);
    }
    const lines = await w.logsFor(ids);
    assert.equal(lines.length, 20);
    assert.deepEqual([...new Set(lines.map((l) => l.token))], ["memory"]);
  } finally {
    await w.stop();
  }
});

test("bootstrap access token is validated and used without a refresh", async () => {
  const sb = await fresh();
  const w = await startWorker({ sandbox: sb, keys, vars: { XOXODAY_ACCESS_TOKEN: "plumgate-dev-access-token" } });
  try {
    assert.equal((await op(w)).status, 200);
    const c = await sb.counters();
    assert.equal(c.validate_calls, 1);
    assert.equal(c.refresh_calls, 0);
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.json.state, "fresh");
  } finally {
    await w.stop();
  }
});

test("lenient token answers: expires_in as a string, expiry stamps as numbers, no extras", async () => {
  for (const config of [
    { expires_in_as: "string", expiry_as: "number", extra_fields: false },
    { expires_in_as: "number", expiry_as: "string", extra_fields: true },
  ]) {
    const sb = await fresh({ ...config, access_ttl_secs: 10 * 86400 });
    const w = await startWorker({ sandbox: sb, keys });
    try {
      const before = Date.now();
      assert.equal((await op(w)).status, 200);
      const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
      const exp = Date.parse(st.json.access_token_expires_at);
      assert.ok(Math.abs(exp - (before + 10 * 86400 * 1000)) < 60_000, `expiry parsed (${JSON.stringify(config)}): ${st.json.access_token_expires_at}`);
      assert.equal(st.json.state, "fresh", "10 days left is outside the 7-day window");
    } finally {
      await w.stop();
    }
  }
});

test("8. leak check covers worker logs", () => {
  assert.ok(capturedLogs.some((l) => l.startsWith("[worker]")), "worker logs were captured");
});
