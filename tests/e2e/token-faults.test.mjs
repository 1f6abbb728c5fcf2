// Token authority under Xoxoday's harder answers (contract §4.7, §8), end to
// end with the product's default settings (Xoxoday's per-minute budgets
// lifted, as the harness does unless a test passes `XOXODAY_RATE_LIMITS:
// null`): refresh rate limits in every
// shape, a refresh endpoint limiting itself (the sandbox's `refresh_limit`)
// under every push to refresh, a firewall's HTML page in front of the
// refresh endpoint, Xoxoday refusing the account there (PIPE10017), the
// forced-refresh throttle, rejected client credentials, stored
// state that cannot be read (and old or newer formats that can), a slow
// refresh, one authority per account, and the upgrade from the single
// authority of earlier versions. Stored state is read and written in the
// Durable Objects' SQLite files while the worker is stopped.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  standardKeys, call, waitFor, authorityFiles, readStored, storedKeys, writeStored, tokenFixture, startWorker, UNCACHED_OP,
} from "./harness.mjs";

const keys = standardKeys();
const { fresh, newDir, withWorker, op, tokenStatus, finish } = tokenFixture(keys);

const forceRefresh = (w) => call(w, "/v1/token/refresh", { key: keys.admin });
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** The storage file of the per-account authority (the only one with that name form). */
async function accountFile(dir) {
  const files = (await authorityFiles(dir)).filter((f) => f.name?.startsWith("account:"));
  assert.equal(files.length, 1, `one account authority: ${JSON.stringify(files)}`);
  return files[0];
}

after(async () => {
  assert.deepEqual(await finish(), [], "no token, secret or key in any response or log line");
});

/**
 * Xoxoday revokes the access token and answers the refresh with its rate
 * limit in `shape` (the sandbox's own penalty: 4 s); the next call meets it.
 * Returns that call's answer, `GET /v1/token` after it, and when it started.
 */
async function meetRateLimit(sb, w, shape) {
  await sb.admin("/tokens/revoke-access", {});
  await sb.admin("/faults/refresh", { mode: "rate_limited", shape, penalty_seconds: 4 });
  await sb.admin("/counters/reset", {});
  const t0 = Date.now();
  const r = await op(w);
  assert.equal(r.status, 429, `${shape}: ${r.text}`);
  assert.equal(r.json.error.code, "rate_limited");
  assert.match(r.json.error.message, /token refreshes/);
  assert.equal((await sb.counters()).refresh_calls, 1, `${shape}: the run stopped at once`);
  const st = await tokenStatus(w);
  assert.match(st.last_error, /auth\.request_limit_exceeded/, shape);
  return { r, st, t0, retryAt: Date.parse(st.retry_at) };
}

test("refresh rate limit, every shape: the run stops at once, no attempt until the penalty ends, retry_at shows it", async () => {
  const sb = await fresh();
  await withWorker(sb, {}, async (w) => {
    assert.equal((await op(w)).status, 200);
    // Shapes that carry their penalty (4 s): plumgate comes back after it.
    for (const shape of ["status429", "errors_array", "errors_object"]) {
      const { r, st, t0, retryAt } = await meetRateLimit(sb, w, shape);
      const retryAfter = Number(r.headers["retry-after"]);
      assert.ok(retryAfter >= 4 && retryAfter <= 6, `${shape}: Retry-After ${retryAfter}`);
      assert.ok(retryAt >= t0 + 4000 && retryAt <= Date.now() + 5100, `${shape}: retry_at ${st.retry_at}`);
      // Inside the penalty: callers are told, Xoxoday is not called.
      assert.equal((await op(w)).status, 429);
      assert.equal((await forceRefresh(w)).status, 429, "not even a forced refresh");
      assert.equal((await sb.counters()).refresh_calls, 1, `${shape}: no attempt during the penalty`);
      await sleep(Math.max(0, retryAt - Date.now()) + 300);
      const ok = await op(w);
      assert.equal(ok.status, 200, `${shape} after the penalty: ${ok.text}`);
      assert.equal((await sb.counters()).refresh_calls, 2);
      const after = await tokenStatus(w);
      assert.equal(after.retry_at, null);
      assert.equal(after.last_error, null);
    }
  });
  // Shapes without a penalty figure: the default 60 s (plus jitter) holds.
  for (const shape of ["message", "success0"]) {
    const sb = await fresh();
    await withWorker(sb, {}, async (w) => {
      assert.equal((await op(w)).status, 200);
      const { st, t0, retryAt } = await meetRateLimit(sb, w, shape);
      assert.ok(retryAt >= t0 + 60_000 && retryAt <= Date.now() + 66_100, `${shape}: retry_at ${st.retry_at}`);
      await sleep(4500); // the sandbox's own penalty is over; plumgate's is not
      assert.equal((await op(w)).status, 429);
      assert.equal((await sb.counters()).refresh_calls, 1, `${shape}: one attempt, then none`);
    });
  }
});

test("a refresh rate limit that also killed the refresh token (abuse can invalidate it): one attempt after the penalty, then reauth_required, no loop", async () => {
  const sb = await fresh();
  await withWorker(sb, {}, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "rate_limited", shape: "errors_array", penalty_seconds: 4, revoke: true });
    await sb.admin("/counters/reset", {});
    const limited = await op(w);
    assert.equal(limited.status, 429, limited.text);
    const retryAt = Date.parse((await tokenStatus(w)).retry_at);
    await sleep(Math.max(0, retryAt - Date.now()) + 300);
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "reauth_required");
    assert.match(r.json.error.message, /XOXODAY_REFRESH_TOKEN/);
    const st = await tokenStatus(w);
    assert.equal(st.state, "reauth_required");
    assert.match(st.last_error, /invalid_token/);
    for (let i = 0; i < 5; i++) assert.equal((await op(w)).status, 503);
    assert.equal((await sb.counters()).refresh_calls, 2, "the limited attempt and the one that found the token dead, no more");
  });
});

/** The bootstrap access token (validated, no refresh). */
const BOOTSTRAP_ACCESS = { XOXODAY_ACCESS_TOKEN: "plumgate-dev-access-token" };

/**
 * Xoxoday's refresh endpoint limiting itself (the sandbox's `refresh_limit`:
 * every refresh call counts in a sliding window, the calls it refuses
 * included) with `limit` (2 calls); the worker `w` started with the
 * bootstrap access token. Pushes plumgate to refresh every way a caller or
 * the admin can: a 401 storm about a valid token (no refresh: Xoxoday's
 * token check says valid), concurrent forced refreshes (one refresh), more
 * of them (throttled), then two storms each meeting a real revocation (the
 * token is dead, so plumgate must refresh: the first is the limit's last
 * allowed call, the second is over it). The 401 storm comes first: its
 * "valid" verdict is reused for a minute, so a revocation of that token
 * within it would not be checked. Returns when plumgate stands penalised:
 * `GET /v1/token` then, when the storm began and `retry_at`.
 */
async function pushPastRefreshLimit(sb, w, limit, what) {
  const storm = () => Promise.all(Array.from({ length: 10 }, () => op(w)));
  const calls = async () => (await sb.counters()).refresh_calls;
  assert.equal((await op(w)).status, 200);
  await sb.admin("/faults/api", { mode: "PIPE10013", op: UNCACHED_OP, count: 10 });
  assert.deepEqual([...new Set((await storm()).map((r) => r.status))], [401], `${what}: Xoxoday's 401s about a valid token, passed on`);
  assert.equal(await calls(), 0, `${what}: a 401 storm about a valid token spent nothing`);
  const forced = await Promise.all(Array.from({ length: 5 }, () => forceRefresh(w)));
  assert.ok(forced.some((r) => r.status === 200) && forced.every((r) => r.status === 200 || r.status === 429), `${what}: ${forced.map((r) => r.status)}`);
  for (const r of await Promise.all(Array.from({ length: 5 }, () => forceRefresh(w)))) {
    assert.equal(r.status, 429, `${what}: ${r.text}`);
    assert.match(r.json.error.message, /TOKEN_MIN_REFRESH_INTERVAL_SECS/, what);
  }
  assert.equal(await calls(), 1, `${what}: ten forced refreshes, one refresh`);
  await sb.admin("/tokens/revoke-access", {});
  assert.deepEqual([...new Set((await storm()).map((r) => r.status))], [200], what);
  let c = await sb.counters();
  assert.deepEqual([c.refresh_calls, c.refresh_rate_limited], [limit.calls, 0], `${what}: a revocation met by a storm, one refresh: the limit's last allowed call`);
  await sb.admin("/tokens/revoke-access", {});
  const t0 = Date.now();
  const limited = await storm();
  for (const r of limited) {
    assert.equal(r.status, 429, `${what}: ${r.text}`);
    assert.equal(r.json.error.code, "rate_limited", what);
    assert.match(r.json.error.message, /token refreshes/, what);
  }
  c = await sb.counters();
  assert.deepEqual([c.refresh_calls, c.refresh_rate_limited], [limit.calls + 1, 1], `${what}: one call over the limit, the run stopped at once`);
  const st = await tokenStatus(w);
  assert.match(st.last_error, /auth\.request_limit_exceeded/, what);
  return { st, t0, retryAt: Date.parse(st.retry_at) };
}

/**
 * Until `retryAt` (less a margin), a call and a forced refresh each second:
 * every one answered 429 rate_limited with a Retry-After reaching
 * `retryAt`, and not one refresh call beyond `calls` reaches Xoxoday.
 * Returns how many pushes were answered so.
 */
async function pushDuringPenalty(sb, w, retryAt, calls, what) {
  let pushes = 0;
  while (Date.now() < retryAt - 1500) {
    for (const r of await Promise.all([op(w), forceRefresh(w)])) {
      assert.equal(r.status, 429, `${what}: ${r.text}`);
      assert.equal(r.json.error.code, "rate_limited", what);
      const left = (retryAt - Date.now()) / 1000;
      const retryAfter = Number(r.headers["retry-after"]);
      assert.ok(retryAfter >= left - 1 && retryAfter <= left + 2, `${what}: Retry-After ${retryAfter}, ${left} s left`);
      pushes++;
    }
    assert.equal((await sb.counters()).refresh_calls, calls, `${what}: no refresh call during the penalty`);
    await sleep(1000);
  }
  return pushes;
}

test("refresh endpoint limiting itself (refresh_limit, 2 calls a minute), status429 and message shapes: plumgate's pushes stay in it, the call over it stops every attempt until the penalty ends, and the same refresh token works after", async () => {
  // A stated penalty (status429's Retry-After, kept short: plumgate waits
  // it in real time) and none stated (`message`: plumgate's own minute).
  await Promise.all([["status429", 8, 8], ["message", 60, 60]].map(async ([shape, penalty_seconds, heldSecs]) => {
    const limit = { calls: 2, window_secs: 60, penalty_seconds, shape };
    const sb = await fresh({ refresh_limit: limit });
    await withWorker(sb, { vars: BOOTSTRAP_ACCESS }, async (w) => {
      const { st, t0, retryAt } = await pushPastRefreshLimit(sb, w, limit, shape);
      assert.ok(retryAt >= t0 + heldSecs * 1000 && retryAt <= Date.now() + heldSecs * 1100 + 1100, `${shape}: retry_at ${st.retry_at}`);
      assert.notEqual(st.state, "reauth_required", shape);
      const pushes = await pushDuringPenalty(sb, w, retryAt, limit.calls + 1, shape);
      assert.ok(pushes >= 2 * Math.floor(heldSecs / 2), `${shape}: ${pushes} pushes answered 429`);
      // Obeying the answer's wait is enough, Xoxoday's clock left alone:
      // its penalty began when the limited call came, before plumgate read
      // the answer, so it is over by retry_at, and it began the window
      // afresh (plumgate sent nothing during it).
      await sleep(Math.max(0, retryAt - Date.now()) + 300);
      const ok = await op(w);
      assert.equal(ok.status, 200, `${shape} after the penalty: ${ok.text}`);
      const c = await sb.counters();
      assert.deepEqual(
        [c.refresh_calls, c.refresh_success, c.refresh_rate_limited, c.spent_refresh_tokens_used], [limit.calls + 2, limit.calls + 1, 1, 0],
        `${shape}: one refresh after the penalty, with the refresh token the limited call was given, never a spent one`,
      );
      const after = await tokenStatus(w);
      assert.deepEqual([after.state, after.retry_at, after.last_error, after.refresh_count], ["fresh", null, null, limit.calls + 1], shape);
    });
  }));
});

test("refresh endpoint limiting itself with revoke (the call over the limit kills the refresh token it was given): reauth_required after one attempt past the penalty, no storm, a new bootstrap token recovers", async () => {
  const limit = { calls: 2, window_secs: 60, penalty_seconds: 5, shape: "status429", revoke: true };
  const sb = await fresh({ refresh_limit: limit });
  const dir = newDir();
  await withWorker(sb, { persistDir: dir, vars: BOOTSTRAP_ACCESS }, async (w) => {
    const { retryAt } = await pushPastRefreshLimit(sb, w, limit, "revoke");
    await pushDuringPenalty(sb, w, retryAt, limit.calls + 1, "revoke");
    // Past the penalty (Retry-After obeyed, in real time; the penalty began
    // the window afresh): the next attempt meets the dead token.
    await sleep(Math.max(0, retryAt - Date.now()) + 300);
    const dead = await op(w);
    assert.equal(dead.status, 503, dead.text);
    assert.equal(dead.json.error.code, "reauth_required");
    assert.match(dead.json.error.message, /XOXODAY_REFRESH_TOKEN/);
    const answers = await Promise.all([...Array.from({ length: 10 }, () => op(w)), forceRefresh(w), forceRefresh(w)]);
    assert.deepEqual([...new Set(answers.map((r) => `${r.status} ${r.json.error.code}`))], ["503 reauth_required"]);
    const st = await tokenStatus(w);
    assert.equal(st.state, "reauth_required");
    assert.match(st.last_error, /invalid_token/);
    const c = await sb.counters();
    assert.deepEqual([c.refresh_calls, c.refresh_rate_limited], [limit.calls + 2, 1], "the limited call and the one that found its token dead, no more");
  });
  // The operator generates tokens and sets XOXODAY_REFRESH_TOKEN.
  const pair = await sb.admin("/tokens/issue", {});
  await withWorker(sb, { persistDir: dir, vars: { XOXODAY_REFRESH_TOKEN: pair.refresh_token } }, async (w) => {
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    const st = await tokenStatus(w);
    assert.deepEqual([st.state, st.last_error], ["fresh", null]);
    const c = await sb.counters();
    assert.deepEqual([c.refresh_calls, c.refresh_success, c.spent_refresh_tokens_used], [limit.calls + 3, limit.calls + 1, 0], "one refresh, with the new token");
  });
});

test("auth.token_error (HTTP 200, success 0) is a dead refresh token", async () => {
  const sb = await fresh();
  await withWorker(sb, {}, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "token_error" });
    await sb.admin("/counters/reset", {});
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "reauth_required");
    const st = await tokenStatus(w);
    assert.equal(st.state, "reauth_required");
    assert.match(st.last_error, /auth\.token_error/);
    assert.equal((await op(w)).status, 503);
    assert.equal((await sb.counters()).refresh_calls, 1);
  });
  // Met by a forced refresh while the access token is valid: the password
  // reset killed that token too, and the first call that meets it says so.
  const sb2 = await fresh();
  await withWorker(sb2, { vars: { XOXODAY_ACCESS_TOKEN: "plumgate-dev-access-token" } }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb2.admin("/faults/refresh", { mode: "token_error" });
    await sb2.admin("/counters/reset", {});
    const forced = await forceRefresh(w);
    assert.equal(forced.status, 503, forced.text);
    assert.equal(forced.json.error.code, "reauth_required");
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "reauth_required", "the access token died with the reset");
    const c = await sb2.counters();
    assert.deepEqual([c.refresh_calls, c.validate_calls, c.unauthorized_api_calls], [1, 1, 1], "one refresh, one check of the rejected token, no retry");
  });
});

test("forced refresh: once per TOKEN_MIN_REFRESH_INTERVAL_SECS while the token is usable, unthrottled once it is not", async () => {
  const sb = await fresh();
  await withWorker(sb, { vars: { XOXODAY_ACCESS_TOKEN: "plumgate-dev-access-token" } }, async (w) => {
    assert.equal((await op(w)).status, 200, "the bootstrap access token, validated");
    const first = await forceRefresh(w);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.refresh_count, 1);
    const second = await forceRefresh(w);
    assert.equal(second.status, 429, second.text);
    assert.equal(second.json.error.code, "rate_limited");
    assert.match(second.json.error.message, /TOKEN_MIN_REFRESH_INTERVAL_SECS/);
    const retryAfter = Number(second.headers["retry-after"]);
    assert.ok(retryAfter >= 50 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal((await sb.counters()).refresh_calls, 1, "the throttled request spent nothing");
    assert.equal((await tokenStatus(w)).refresh_count, 1);

    // The token becomes unusable (revoked, confirmed) and its replacement
    // fails for now: a forced refresh is allowed at once.
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "5xx", count: 3 });
    assert.equal((await op(w)).status, 502);
    assert.equal((await tokenStatus(w)).state, "expired");
    const unusable = await forceRefresh(w);
    assert.equal(unusable.status, 200, unusable.text);
    assert.equal(unusable.json.state, "fresh");
    assert.equal((await op(w)).status, 200);
  });
});

test("invalid_client: credentials_rejected, the refresh token kept; fixing the secret clears it, or the admin's forced refresh tries the same secrets again", async () => {
  const sb = await fresh();
  const dir = newDir();
  await withWorker(sb, { persistDir: dir, vars: { XOXODAY_CLIENT_SECRET: "not-the-secret" } }, async (w) => {
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "credentials_rejected");
    assert.match(r.json.error.message, /XOXODAY_CLIENT_SECRET/);
    const burst = await Promise.all(Array.from({ length: 10 }, () => op(w)));
    assert.ok(burst.every((x) => x.status === 503 && x.json.error.code === "credentials_rejected"));
    // The admin's forced refresh may try the same secrets again, but not
    // within TOKEN_MIN_REFRESH_INTERVAL_SECS of the rejection.
    const forced = await forceRefresh(w);
    assert.equal(forced.status, 429, forced.text);
    assert.equal(forced.json.error.code, "rate_limited");
    assert.match(forced.json.error.message, /TOKEN_MIN_REFRESH_INTERVAL_SECS/);
    const st = await tokenStatus(w);
    assert.equal(st.state, "credentials_rejected");
    assert.match(st.last_error, /invalid_client/);
    assert.equal((await sb.counters()).refresh_calls, 1, "no loop");
    await waitFor(() => w.lines.some((l) => l.includes('"event":"credentials_rejected"')), { what: "a loud credentials_rejected log line" });
  });
  assert.equal((await sb.admin("/tokens")).spent_refresh_tokens_used, 0);
  // The operator sets the right secret: the same (unspent) refresh token works.
  await withWorker(sb, { persistDir: dir }, async (w) => {
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.refresh_count, 1);
    const c = await sb.counters();
    assert.equal(c.refresh_success, 1);
    assert.equal(c.spent_refresh_tokens_used, 0);
  });
  // With a still-valid access token, callers keep being served.
  const pair = await sb.admin("/tokens/issue", {});
  const vars = { XOXODAY_ACCESS_TOKEN: pair.access_token, XOXODAY_REFRESH_TOKEN: pair.refresh_token };
  await withWorker(sb, { vars }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/faults/refresh", { mode: "invalid_client" });
    const forced = await forceRefresh(w);
    assert.equal(forced.status, 503, forced.text);
    assert.equal(forced.json.error.code, "credentials_rejected");
    assert.equal((await tokenStatus(w)).state, "credentials_rejected");
    assert.equal((await op(w)).status, 200, "the valid access token keeps being served");
    // Xoxoday rejected right secrets once (the fault is spent): nothing
    // retries by itself, but the admin's forced refresh, once the interval
    // since the rejection has passed (the default's 60 s, waited out), tries
    // the same secrets and the unspent refresh token again.
    const calls = (await sb.counters()).refresh_calls;
    const again = await forceRefresh(w);
    assert.equal(again.status, 429, again.text);
    const wait = Number(again.headers["retry-after"]);
    assert.ok(wait >= 50 && wait <= 60, `Retry-After ${wait}`);
    assert.equal((await sb.counters()).refresh_calls, calls, "the throttled request spent nothing");
    await sleep((wait + 1) * 1000);
    assert.equal((await sb.counters()).refresh_calls, calls, "nothing retried by itself meanwhile");
    const retried = await forceRefresh(w);
    assert.equal(retried.status, 200, retried.text);
    assert.equal(retried.json.state, "fresh");
    assert.equal((await sb.counters()).spent_refresh_tokens_used, 0);
    assert.equal((await op(w)).status, 200);
  });
});

test("unreadable stored state is never overwritten: 503 misconfigured naming the key, until an admin sets it aside", async () => {
  const sb = await fresh();
  const dir = newDir();
  await withWorker(sb, { persistDir: dir }, async (w) => assert.equal((await op(w)).status, 200));
  const { file, name } = await accountFile(dir);
  const good = await readStored(file, "state");
  assert.equal(typeof good, "string");
  const broken = `#${good.slice(1)}`; // a bad write: same length, not JSON
  await writeStored(file, "state", broken);

  await withWorker(sb, { persistDir: dir }, async (w) => {
    for (const r of [await call(w, "/v1/token", { method: "GET", key: keys.admin }), await forceRefresh(w)]) {
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error.code, "misconfigured");
      assert.match(r.json.error.message, /storage key `state`/);
      assert.match(r.json.error.message, new RegExp(name.replace(":", "\\:")));
    }
    // The access token cached in KV keeps serving calls meanwhile.
    assert.equal((await op(w)).status, 200);
    await waitFor(() => w.jsonLogs().some((l) => l.event === "authority_state_unreadable"), { what: "the critical log line" });
    const line = w.jsonLogs().find((l) => l.event === "authority_state_unreadable");
    assert.equal(line.storage_key, "state");
    assert.equal(line.level, "critical");
    assert.equal(line.authority, name);
  });
  assert.equal(await readStored(file, "state"), broken, "left untouched");

  // The admin generates new tokens, sets XOXODAY_REFRESH_TOKEN, and sets the
  // unreadable state aside.
  const issued = await sb.admin("/tokens/issue", { revoke_existing: true });
  await sb.admin("/counters/reset", {});
  await withWorker(sb, { persistDir: dir, vars: { XOXODAY_REFRESH_TOKEN: issued.refresh_token } }, async (w) => {
    assert.equal((await call(w, "/v1/token", { method: "GET", key: keys.admin })).status, 503, "still refused");
    const rec = await call(w, "/v1/token/recover", { key: keys.admin });
    assert.equal(rec.status, 200, rec.text);
    assert.equal(rec.json.state, "uninitialized");
    const r = await op(w); // the cached token is dead now: checked, replaced from the new bootstrap token
    assert.equal(r.status, 200, r.text);
    assert.equal((await tokenStatus(w)).state, "fresh");
    assert.equal((await sb.counters()).refresh_calls, 1);
    const again = await call(w, "/v1/token/recover", { key: keys.admin });
    assert.equal(again.status, 200, "readable state: nothing to do");
    assert.equal(again.json.state, "fresh");
  });
  const keysNow = await storedKeys(file);
  const aside = keysNow.filter((k) => /^state\.unreadable\.\d+$/.test(k));
  assert.equal(aside.length, 1, keysNow.join(","));
  assert.equal(await readStored(file, aside[0]), broken, "kept byte for byte");
  JSON.parse(await readStored(file, "state"));
});

test("stored state that is not text at all is refused and left as it is", async () => {
  // Every version writes the state as JSON text; a value of another type
  // (a number here) is read as a storage failure: nothing served from it,
  // nothing written over it.
  const sb = await fresh();
  const dir = newDir();
  await withWorker(sb, { persistDir: dir }, async (w) => assert.equal((await op(w)).status, 200));
  const { file } = await accountFile(dir);
  await writeStored(file, "state", 42);
  await withWorker(sb, { persistDir: dir }, async (w) => {
    for (const r of [await call(w, "/v1/token", { method: "GET", key: keys.admin }), await forceRefresh(w)]) {
      // As any storage failure: the authority is unavailable, not misconfigured.
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json.error.message, "token storage unavailable");
    }
    await waitFor(() => w.jsonLogs().some((l) => l.event === "authority_storage_error"), { what: "the storage error line" });
    assert.equal(w.jsonLogs().find((l) => l.event === "authority_storage_error").detail, "the stored value is not text");
  });
  assert.equal(await readStored(file, "state"), 42, "left untouched");
});

test("an old-format state and one with an unknown field load and keep their tokens", async () => {
  const sb = await fresh();
  const dir = newDir();
  await withWorker(sb, { persistDir: dir }, async (w) => assert.equal((await op(w)).status, 200));
  const { file } = await accountFile(dir);
  const current = JSON.parse(await readStored(file, "state"));
  // A pair the previous version would hold, in exactly its format, plus a
  // field no version of plumgate knows (as a newer one might write).
  const pair = await sb.admin("/tokens/issue", {});
  const hourAgo = Date.now() - 3_600_000;
  const old = {
    access: { token: pair.access_token, expires_at_ms: pair.access_token_expiry, obtained_at_ms: hourAgo, rejected: false },
    refresh: { token: pair.refresh_token, expires_at_ms: pair.refresh_token_expiry, expiry_known: true },
    reauth_reason: null,
    adopted_bootstrap_fp: current.adopted_bootstrap_fp,
    adopted_access_fp: null,
    spent_refresh_fps: current.spent_refresh_fps,
    refresh_count: 7,
    last_refresh_at_ms: hourAgo,
    last_error: null,
    last_error_at_ms: null,
    consecutive_failures: 0,
    next_attempt_at_ms: null,
    jitter: 0.5,
    written_by_a_newer_version: { alerts: [1, 2] },
  };
  await writeStored(file, "state", JSON.stringify(old));
  await sb.admin("/counters/reset", {});
  await withWorker(sb, { persistDir: dir }, async (w) => {
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.refresh_count, 7);
    assert.equal(Date.parse(st.access_token_expires_at), pair.access_token_expiry);
    // A forced refresh (the last one was an hour ago) uses the stored refresh token.
    const forced = await forceRefresh(w);
    assert.equal(forced.status, 200, forced.text);
    assert.equal(forced.json.refresh_count, 8);
    const c = await sb.counters();
    assert.equal(c.refresh_success, 1);
    assert.equal(c.spent_refresh_tokens_used, 0);
  });
  const saved = JSON.parse(await readStored(file, "state"));
  assert.equal(saved.refresh_count, 8);
  assert.ok("penalty_until_ms" in saved && "confirmed_rejections_ms" in saved, "written in this version's format");
});

test("a request stops waiting at REFRESH_TIMEOUT_MS; the slow refresh continues and its answer is kept", async () => {
  const sb = await fresh();
  // Rotates at once, answers after 25 s: longer than the 15 s a request
  // waits, with room for the checks below before the answer comes.
  await sb.admin("/faults/refresh", { mode: "rotate_then_delay", hang_ms: 25000 });
  await withWorker(sb, {}, async (w) => {
    const t0 = Date.now();
    const r = await op(w);
    const waited = Date.now() - t0;
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.error.code, "upstream_timeout");
    assert.match(r.json.error.message, /keeps running/);
    assert.ok(waited >= 14_500 && waited < 19_500, `waited ${waited} ms`);
    // The answer is still on its way (the sandbox counts it once given)
    // and plumgate holds no pair yet.
    assert.equal((await sb.counters()).refresh_success, 0, "the slow answer is not given yet");
    assert.equal((await tokenStatus(w)).refresh_count, 0);
    // No request waits on it now (a status call joins no refresh): the
    // answer comes, and the authority keeps it on its own.
    await waitFor(async () => (await sb.counters()).refresh_success === 1, { timeout: 15_000, what: "the slow answer" });
    const kept = await waitFor(async () => {
      const s = await tokenStatus(w);
      return s.refresh_count === 1 ? s : null;
    }, { timeout: 5_000, what: "the slow answer, kept with no request waiting" });
    assert.equal(kept.state, "fresh");
    assert.equal(kept.last_error, null);
    const ok = await op(w);
    assert.equal(ok.status, 200, ok.text);
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 1, "one refresh, its answer kept");
    assert.equal(c.spent_refresh_tokens_used, 0);
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.refresh_count, 1);
  });
});

test("the authority stopped mid-refresh (a deploy, an eviction): the next instance says so, and the cron's refresh recovers the pair where Xoxoday lets the old token live on", async () => {
  const sb = await fresh({ rotation: "grace" });
  const dir = newDir();
  const first = await startWorker({ sandbox: sb, keys, persistDir: dir });
  try {
    assert.equal((await op(first)).status, 200);
    // A forced refresh (once a minute at most) that rotates at once and
    // answers after 20 s; the worker dies in between.
    await sleep(61_000);
    await sb.admin("/faults/refresh", { mode: "rotate_then_delay", hang_ms: 20000 });
    const forced = forceRefresh(first).catch(() => null);
    await waitFor(async () => (await sb.counters()).refresh_calls === 2, { what: "the refresh to reach Xoxoday" });
    await sleep(500);
    await first.crash();
    assert.equal(await forced, null, "no answer: the worker died");
  } finally {
    await first.stop();
  }
  await withWorker(sb, { persistDir: dir }, async (w) => {
    // The access token from before is still good: requests are served ...
    assert.equal((await op(w)).status, 200);
    // ... and the status says what happened, not "fresh, no error".
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.refresh_count, 1);
    assert.match(st.last_error, /^refresh interrupted: the token authority stopped \(an eviction or a deploy\) while a refresh was in flight$/);
    // The hourly cron refreshes at once with the refresh token it kept,
    // which Xoxoday's grace rule still takes: the pair is whole again.
    const c0 = await sb.counters();
    await fetch(`${w.url}/__scheduled?cron=17+*+*+*+*`);
    const after = await waitFor(async () => {
      const s = await tokenStatus(w);
      return s.refresh_count === 2 ? s : null;
    }, { timeout: 20_000, what: "the cron's refresh" });
    assert.equal(after.last_error, null);
    const c1 = await sb.counters();
    assert.equal(c1.refresh_success, c0.refresh_success + 1);
    assert.equal(c1.spent_refresh_tokens_used, c0.spent_refresh_tokens_used + 1, "the rotated-away token, inside its grace");
    assert.equal((await op(w)).status, 200);
  });
});

test("a refresh answer carrying a new pair under an error status is kept: the rotation happened upstream", async () => {
  const sb = await fresh();
  // Rotates, then answers the new pair with HTTP 500.
  await sb.admin("/faults/refresh", { mode: "rotate_then_delay", hang_ms: 0, status: 500 });
  await withWorker(sb, {}, async (w) => {
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    const c = await sb.counters();
    assert.equal(c.refresh_calls, 1, "one refresh: its pair was taken, not retried with the old token");
    assert.equal(c.spent_refresh_tokens_used, 0);
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.refresh_count, 1);
  });
});

test("a refresh answer with a new refresh token but no access token: the refresh token is kept and used next", async () => {
  // Strict rotation: the refresh token sent dies with the answer, so the
  // half pair's refresh token is the only live one.
  const sb = await fresh({ rotation: "strict" });
  const dir = newDir();
  await withWorker(sb, { persistDir: dir }, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "rotate_refresh_only", count: 1 });
    const r = await op(w);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, "upstream_error");
    assert.match(r.json.error.message, /refresh answer without access_token \(HTTP 200\): its new refresh token is kept/);
    const st = await tokenStatus(w);
    assert.match(st.last_error, /^refresh answer without access_token/);
    assert.notEqual(st.state, "reauth_required");
    assert.ok(st.retry_at, "backing off");
  });
  // Stored before anyone used it: a new instance has it.
  await withWorker(sb, { persistDir: dir }, async (w) => {
    const retryAt = Date.parse((await tokenStatus(w)).retry_at);
    await sleep(Math.max(0, retryAt - Date.now()) + 200);
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.last_error, null);
  });
  const c = await sb.counters();
  assert.equal(c.refresh_calls, 3, "the first pair, the half pair, then a whole pair with the half pair's refresh token");
  assert.equal(c.spent_refresh_tokens_used, 0, "the rotated-away refresh token was never sent again");
});

/**
 * A refresh run whose three attempts all meet a failure that leaves the
 * refresh token alive (`route`, `fault`: a sandbox fault for those three):
 * the call gets 502 upstream_error saying `why` (`last_error` starts with
 * it), the state is never
 * reauth_required and backs off; once the backoff ends (the fault used up),
 * the same refresh token works. `counted`: the sandbox's counters after the
 * failed run, as [key, value] pairs; `reached`: the refresh calls that
 * reached Xoxoday before the one that works.
 */
async function failedRunKeepsTheToken(sb, w, { route, fault, why, counted, reached }) {
  assert.equal((await op(w)).status, 200);
  await sb.admin("/tokens/revoke-access", {});
  await sb.admin(route, { ...fault, count: 3 });
  await sb.admin("/counters/reset", {});
  const r = await op(w);
  assert.equal(r.status, 502, r.text);
  assert.equal(r.json.error.code, "upstream_error");
  assert.match(r.json.error.message, why);
  const st = await tokenStatus(w);
  assert.notEqual(st.state, "reauth_required");
  assert.match(st.last_error, new RegExp(`^${why.source}`), "the reason, first");
  assert.ok(st.retry_at, "backing off, to try again by itself");
  let c = await sb.counters();
  assert.deepEqual(counted.map(([k]) => c[k]), counted.map(([, v]) => v), "the three attempts of the run");
  await sleep(Math.max(0, Date.parse(st.retry_at) - Date.now()) + 200);
  const ok = await op(w);
  assert.equal(ok.status, 200, ok.text);
  c = await sb.counters();
  assert.deepEqual([c.refresh_calls, c.refresh_success, c.spent_refresh_tokens_used], [reached + 1, 1, 0], "one more refresh, with the live token kept");
  const after = await tokenStatus(w);
  assert.equal(after.state, "fresh");
  assert.equal(after.last_error, null);
  assert.equal(after.refresh_count, 2);
}

test("a 403 HTML page in front of the refresh endpoint (a firewall, a CDN) is transient: never reauth_required, the refresh token kept works once the page is gone", async () => {
  // Without the HTML reading, a 4xx with no JSON would be Xoxoday refusing
  // the refresh token ("refresh token rejected: HTTP 403"): reauth_required
  // and no attempt until a person regenerates tokens that are fine.
  const sb = await fresh();
  await withWorker(sb, {}, (w) =>
    // The layer answers before Xoxoday sees the grant: nothing rotates.
    failedRunKeepsTheToken(sb, w, {
      route: "/faults/proxy",
      fault: { mode: "before", route: "refresh", status: 403 },
      why: /refresh failed: HTTP 403, not an answer of Xoxoday's token endpoint/,
      counted: [["proxy_pages", 3], ["refresh_calls", 0]],
      reached: 0,
    }));
});

test("Xoxoday refusing the account at the refresh endpoint (PIPE10017, HTTP 401): never reauth_required, the refresh token kept works once the account is fixed", async () => {
  // README: "plumgate keeps trying with backoff and recovers by itself (do
  // not regenerate tokens)". Read as a dead refresh token, an IP not yet
  // whitelisted or a disabled user would send a person to regenerate
  // tokens that were fine, and plumgate would stop asking.
  const sb = await fresh();
  await withWorker(sb, {}, (w) =>
    failedRunKeepsTheToken(sb, w, {
      route: "/faults/refresh",
      fault: { mode: "PIPE10017" },
      why: /refresh failed: HTTP 401 PIPE10017, Xoxoday refused the account \(user or company disabled, or IP not whitelisted\), not the refresh token: kept/,
      counted: [["refresh_calls", 3], ["refresh_success", 0]],
      reached: 3,
    }));
});

test("placeOrder while no token can be had: the error says nothing was placed, and the same poNumber places once later", async () => {
  const sb = await fresh();
  await withWorker(sb, {}, async (w) => {
    assert.equal((await op(w)).status, 200);
    await sb.admin("/tokens/revoke-access", {});
    await sb.admin("/faults/refresh", { mode: "5xx", count: 3 });
    const order = { productId: 10100, quantity: 1, denomination: 10, poNumber: `PO-OUTAGE-${Date.now()}`, email: "a@example.com" };
    const r = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body: order });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, "upstream_error");
    assert.match(r.json.error.message, /^Xoxoday token refresh: refresh failed: HTTP 503 server_error \(placeOrder was not executed by Xoxoday: nothing was placed and retrying with the same poNumber is safe\)$/);
    assert.equal((await sb.counters()).orders, 0);
    const retryAt = Date.parse((await tokenStatus(w)).retry_at);
    await sleep(Math.max(0, retryAt - Date.now()) + 200);
    const placed = await call(w, "/v1/ops/placeOrder", { key: keys.writer, body: order });
    assert.equal(placed.status, 200, placed.text);
    assert.equal(placed.headers["x-plumgate-replayed"], undefined, "sent now, not a replay");
    assert.equal((await call(w, "/v1/ops/placeOrder", { key: keys.writer, body: order })).headers["x-plumgate-replayed"], "true");
    assert.equal((await sb.counters()).orders, 1);
  });
});

test("one authority per account: another base URL or client id never gets the previous account's token", async () => {
  const a = await fresh();
  const b = await fresh();
  const dir = newDir();
  await withWorker(a, { persistDir: dir }, async (w) => assert.equal((await op(w)).status, 200));
  await a.admin("/counters/reset", {});
  // Another base URL (another Xoxoday host), same state directory.
  await withWorker(b, { persistDir: dir }, async (w) => {
    assert.equal((await op(w)).status, 200);
    assert.equal((await tokenStatus(w)).refresh_count, 1);
  });
  let cb = await b.counters();
  assert.equal(cb.unauthorized_api_calls, 0, "B never saw A's token");
  assert.equal(cb.refresh_calls, 1);
  // Another client id on A: its own authority, which has no token yet.
  await withWorker(a, { persistDir: dir, vars: { XOXODAY_CLIENT_ID: "another-client" } }, async (w) => {
    const r = await op(w);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, "credentials_rejected", "the sandbox knows only its own client");
  });
  // Back to A's first account: its authority kept its token.
  await withWorker(a, { persistDir: dir }, async (w) => {
    assert.equal((await op(w)).status, 200);
    assert.equal((await tokenStatus(w)).refresh_count, 1);
  });
  const ca = await a.counters();
  assert.equal(ca.unauthorized_api_calls, 0, "A never saw another account's token");
  assert.equal(ca.refresh_success, 0, "no new refresh for A's first account");
  const names = (await authorityFiles(dir)).map((f) => f.name).filter((n) => n?.startsWith("account:"));
  assert.equal(new Set(names).size, 3, names.join(","));
  cb = await b.counters();
  assert.equal(cb.unauthorized_api_calls, 0);
});

test("upgrade: the previous version's single authority hands its state over once", async () => {
  const sb = await fresh({ rotation: "strict" });
  const dir = newDir();
  await withWorker(sb, { persistDir: dir }, async (w) => assert.equal((await op(w)).status, 200));
  const account = await accountFile(dir);
  const legacy = (await authorityFiles(dir)).find((f) => f.name === "xoxoday");
  assert.ok(legacy, "the new authority asked the old one (which had nothing)");
  // Make it look like the previous version: the state lives in the object
  // named "xoxoday", in the previous format; the per-account one has none.
  const state = JSON.parse(await readStored(account.file, "state"));
  for (const k of ["penalty_until_ms", "credentials_rejected_fp", "last_check_fp", "last_check_at_ms", "last_check_result", "confirmed_rejections_ms", "retired_to", "retired_at_ms"]) {
    assert.ok(k in state, `${k} is a field of this version`);
    delete state[k];
  }
  await writeStored(legacy.file, "state", JSON.stringify(state));
  await writeStored(account.file, "state", undefined);
  await sb.admin("/counters/reset", {});
  await withWorker(sb, { persistDir: dir }, async (w) => {
    const st = await tokenStatus(w);
    assert.equal(st.state, "fresh");
    assert.equal(st.refresh_count, 1, "the old state, taken over");
    // Under strict rotation only the taken-over (rotated) refresh token works.
    await sb.admin("/tokens/revoke-access", {});
    const r = await op(w);
    assert.equal(r.status, 200, r.text);
    assert.equal((await tokenStatus(w)).refresh_count, 2);
    await waitFor(() => w.jsonLogs().some((l) => l.event === "legacy_state_imported"), { what: "legacy_state_imported logged" });
  });
  const c = await sb.counters();
  assert.equal(c.refresh_success, 1);
  assert.equal(c.spent_refresh_tokens_used, 0, "never restarted from the spent bootstrap token");
  const old = JSON.parse(await readStored(legacy.file, "state"));
  assert.equal(old.retired_to, account.name, "handed over, to this authority only");
});
