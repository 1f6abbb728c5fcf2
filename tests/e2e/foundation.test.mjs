// Foundation end to end: health, configuration failing closed, one forwarded
// call through the whole pipe, request ids and the per-request log line.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startSandbox, startWorker, standardKeys, call, leakScan } from "./harness.mjs";

const keys = standardKeys();
let sandbox;

after(async () => {
  const hits = await leakScan(sandbox, keys);
  await sandbox?.stop();
  assert.deepEqual(hits, [], "no secret in any response or log line");
});

test("healthz, openapi and a forwarded getBalance", async () => {
  sandbox = await startSandbox();
  const w = await startWorker({ sandbox, keys });
  try {
    const h = await call(w, "/healthz", { method: "GET" });
    assert.equal(h.status, 200);
    assert.equal(h.json.status, "ok");
    assert.match(h.json.version, /^\d+\.\d+\.\d+/);
    assert.match(h.headers["x-request-id"], /^[0-9a-f]{32}$/);
    // Ids come from a pool of random bytes refilled every 32 requests: 70
    // requests cross two refills, and no id repeats.
    const ids = new Set([h.headers["x-request-id"]]);
    for (let i = 0; i < 70; i++) {
      const r = await call(w, "/healthz", { method: "GET" });
      assert.match(r.headers["x-request-id"], /^[0-9a-f]{32}$/);
      ids.add(r.headers["x-request-id"]);
    }
    assert.equal(ids.size, 71, "every request id is distinct");
    // HEAD, as uptime monitors ask: the status, no body; other methods 405.
    const head = await call(w, "/healthz", { method: "HEAD" });
    assert.deepEqual([head.status, head.text], [200, ""]);
    const post = await call(w, "/healthz", { method: "POST", body: {} });
    assert.deepEqual([post.status, post.headers.allow], [405, "GET, HEAD"]);

    const spec = await call(w, "/openapi.json", { method: "GET" });
    assert.equal(spec.status, 200);
    assert.match(spec.json.openapi, /^3\.1/);
    // Served from the static assets (scripts/build.sh writes it): the file in
    // the repo, token for token, as JSON.
    assert.deepEqual(spec.json, JSON.parse(readFileSync(join(ROOT, "crates/core/src/openapi.json"), "utf8")));
    assert.match(spec.headers["content-type"], /^application\/json/);
    // A static asset like the page: HEAD too, and a POST is told both.
    const specHead = await call(w, "/openapi.json", { method: "HEAD" });
    assert.deepEqual([specHead.status, specHead.text], [200, ""]);
    const specPost = await call(w, "/openapi.json", { method: "POST", body: {} });
    assert.deepEqual([specPost.status, specPost.headers.allow], [405, "GET, HEAD"]);

    const b = await call(w, "/v1/ops/getBalance", { key: keys.balance, body: {} });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.data.getBalance.status, 1);
    assert.equal(typeof b.json.data.getBalance.data.value, "number");
    const rid = b.headers["x-request-id"];
    assert.match(rid, /^[0-9a-f]{32}$/);

    const seen = await sandbox.admin("/requests?limit=5");
    const last = seen.requests ? seen.requests.at(-1) : seen.at(-1);
    assert.deepEqual(last.body, { query: "plumProAPI.query.getBalance", tag: "plumProAPI", variables: { data: {} } });
    assert.equal(last.authorized, true);
    const c = await sandbox.counters();
    assert.equal(c.refresh_calls, 1, "token refreshed from the sandbox once");

    // One JSON log line for that request, with the contract's fields.
    const line = (await w.logsFor([rid])).find((l) => l.request_id === rid);
    assert.ok(line, "log line for the request");
    assert.equal(line.method, "POST");
    assert.equal(line.route, "/v1/ops/{operation}");
    assert.equal(line.operation, "getBalance");
    assert.equal(line.caller, "balance-fn");
    assert.equal(line.status, 200);
    assert.equal(line.upstream_status, 200);
    assert.equal(typeof line.duration_ms, "number");
    assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(w.jsonLogs().filter((l) => l.request_id === rid).length, 1, "exactly one line");

    const unknown = await call(w, "/v1/nothing", { method: "GET" });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, "not_found");
    assert.equal(unknown.json.error.request_id, unknown.headers["x-request-id"]);
  } finally {
    await w.stop();
  }
});

test("configuration fails closed, naming variables but never values", async () => {
  const w = await startWorker({
    sandbox,
    keys,
    vars: {
      XOXODAY_OAUTH_URL: "http://stagingaccount.invalid/chef",
      GATEWAY_KEYS: "[{\"id\":\"x\",\"sha256\":\"zz-secretish-zz\",\"scopes\":[\"*\"]}]",
      XOXODAY_CLIENT_SECRET: "",
    },
  });
  try {
    const h = await call(w, "/healthz", { method: "GET" });
    assert.equal(h.status, 503);
    assert.equal(h.json.status, "misconfigured");
    const all = h.json.problems.join("\n");
    assert.match(all, /XOXODAY_OAUTH_URL/);
    assert.match(all, /GATEWAY_KEYS/);
    assert.match(all, /XOXODAY_CLIENT_SECRET/);
    assert.doesNotMatch(h.text, /\.invalid|secretish/);
    for (const path of ["/v1/ops/getBalance", "/v1/token", "/chef/v1/oauth/api"]) {
      const get = path === "/v1/token";
      const r = await call(w, path, { method: get ? "GET" : "POST", key: keys.admin, body: get ? undefined : {} });
      assert.equal(r.status, 503, path);
      if (path.startsWith("/chef/")) assert.equal(r.json.errorId, "PLUMGATE_MISCONFIGURED", "Xoxoday's error shape on the drop-in base");
      else assert.equal(r.json.error.code, "misconfigured");
      assert.doesNotMatch(r.text, /\.invalid|secretish/);
      if (path === "/v1/ops/getBalance") {
        // Named before the configuration is read: logged as itself, and a
        // cacheable operation's refusal says the cache was not used.
        assert.equal(r.headers["x-plumgate-cache"], "bypass");
        const [line] = await w.logsFor([r.headers["x-request-id"]]);
        assert.deepEqual([line?.route, line?.operation, line?.status], ["/v1/ops/{operation}", "getBalance", 503]);
      }
    }
    // The demo page and the OpenAPI document too (contract §1: every route
    // but /healthz).
    for (const path of ["/", "/index.html", "/openapi.json"]) {
      const r = await call(w, path, { method: "GET" });
      assert.equal(r.status, 503, path);
      assert.equal(r.json.error.code, "misconfigured", path);
      assert.match(r.json.error.message, /XOXODAY_CLIENT_SECRET/, path);
      assert.doesNotMatch(r.text, /\.invalid|secretish/);
      const [line] = await w.logsFor([r.headers["x-request-id"]]);
      assert.deepEqual([line?.route, line?.status, line?.error], [path === "/openapi.json" ? path : "static", 503, "misconfigured"], path);
    }
    assert.equal((await sandbox.counters()).api_calls.getBalance, 1, "nothing forwarded while misconfigured");
  } finally {
    await w.stop();
  }
  // Nor in a log line: the closing leak scan knows no bad value.
  assert.ok(w.lines.some((l) => /misconfigured/.test(l)), "the refusals were logged");
  assert.deepEqual(w.lines.filter((l) => /\.invalid|secretish/.test(l)), [], "no value of a bad setting in the worker's output");
});

test("the demo page's images: from the visitor's loopback only while the upstream is the sandbox on this machine", async () => {
  const csp = async (w) => {
    const home = await call(w, "/", { method: "GET" });
    assert.equal(home.status, 200);
    return home.headers["content-security-policy"] ?? "";
  };
  const local = await startWorker({ sandbox, keys });
  try {
    assert.match(await csp(local), /img-src 'self' data: http:\/\/127\.0\.0\.1:\* https:;/, "the sandbox's product images");
  } finally {
    await local.stop();
  }
  // A deployment (an https:// Xoxoday; nothing is asked of it here).
  const deployed = await startWorker({ sandbox, keys, vars: { XOXODAY_OAUTH_URL: "https://stagingaccount.invalid/chef" } });
  try {
    const policy = await csp(deployed);
    assert.match(policy, /img-src 'self' data: https:;/);
    assert.doesNotMatch(policy, /127\.0\.0\.1|http:/, "a deployed page never asks the visitor's own machine");
    assert.match(policy, /default-src 'none'.*frame-ancestors 'none'/);
  } finally {
    await deployed.stop();
  }
});

test("[vars] written as TOML numbers and tables are read as their JSON text, not taken for unset", async () => {
  // They reach the worker as a number and an object, not as text: read as
  // unset before, so the defaults held while /healthz said ok.
  // Its own token pair: the first test's worker has rotated the default one.
  const { refresh_token } = await sandbox.admin("/tokens/issue", {});
  const w = await startWorker({
    sandbox,
    keys,
    vars: { XOXODAY_RATE_LIMITS: null, XOXODAY_REFRESH_TOKEN: refresh_token },
    tomlVars: "XOXODAY_RATE_LIMITS = { getOrderHistory = 2 }\nALERT_REFRESH_FAILURES = 5\nCATALOG_CACHE_TTL_SECS = 21600",
  });
  try {
    assert.equal((await call(w, "/healthz", { method: "GET" })).status, 200);
    const history = { startDate: "2020-01-01", endDate: "2020-01-02" };
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(w, "/v1/ops/getOrderHistory", { key: keys.admin, body: history })).status);
    assert.deepEqual(statuses, [200, 200, 429], "the table's budget of 2 a minute holds");
  } finally {
    await w.stop();
  }
  const bad = await startWorker({ sandbox, keys, tomlVars: "ALERT_REFRESH_FAILURES = 0\nALLOWED_ORIGINS = [\"*\"]" });
  try {
    const h = await call(bad, "/healthz", { method: "GET" });
    assert.equal(h.status, 503, h.text);
    const all = h.json.problems.join("\n");
    assert.match(all, /ALERT_REFRESH_FAILURES/);
    assert.match(all, /ALLOWED_ORIGINS/);
  } finally {
    await bad.stop();
  }
});

// The usual way a binding goes missing: a second deployment under
// [env.<name>], which inherits none. /healthz names each one missing (it
// once said ok: calls then ran without the token cache or the shared
// limiter, saying so only in a log line), and never its configuration.
test("a KV or Durable Object binding left out of wrangler.toml: /healthz names it", async () => {
  const w = await startWorker({
    sandbox,
    keys,
    tomlEdit: (t) => {
      const out = t.replace(/^\[\[kv_namespaces\]\][\s\S]*?(?=^\[)/m, "").replace(/^ *\{ name = "RATE_LIMITER".*\n/m, "");
      assert.notEqual(out, t);
      assert.doesNotMatch(out, /TOKEN_CACHE|"RATE_LIMITER"/, "both left out");
      return out;
    },
  });
  try {
    const h = await call(w, "/healthz", { method: "GET" });
    assert.equal(h.status, 503, h.text);
    assert.deepEqual(h.json, { status: "misconfigured", problems: ["TOKEN_CACHE binding is missing", "RATE_LIMITER binding is missing"] });
    // Only what needs a binding fails: the token authority still answers.
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.equal(st.status, 200, st.text);
  } finally {
    await w.stop();
  }
});

test("XOXODAY_OAUTH_URL without /chef: the refresh's 404 is not taken for a dead refresh token", async () => {
  const { refresh_token } = await sandbox.admin("/tokens/issue", {});
  const w = await startWorker({
    sandbox,
    keys,
    vars: { XOXODAY_OAUTH_URL: sandbox.oauthUrl.replace(/\/chef$/, ""), XOXODAY_REFRESH_TOKEN: refresh_token },
  });
  try {
    const r = await call(w, "/v1/ops/getOrderHistory", { key: keys.admin, body: { startDate: "2020-01-01", endDate: "2020-01-02" } });
    assert.ok(r.status >= 500 && r.status !== 503, `no token, and not reauth_required: ${r.status} ${r.text}`);
    const st = await call(w, "/v1/token", { method: "GET", key: keys.admin });
    assert.notEqual(st.json.state, "reauth_required", JSON.stringify(st.json));
    assert.match(st.json.last_error, /HTTP 404, not an answer of Xoxoday's token endpoint \(check XOXODAY_OAUTH_URL/);
  } finally {
    await w.stop();
  }
});
