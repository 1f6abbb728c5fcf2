// The baseline a user would otherwise hand-write: a minimal module Worker
// that keeps the Xoxoday bearer in isolate memory (fetched once with the
// refresh grant, cached in KV), authenticates the caller by SHA-256 compare,
// wraps the body in the Xoxoday envelope and forwards it. One JSON log line
// per request, like plumgate (contract §7), so the comparison is fair.
//
// Deliberately naive where a hand-written worker usually is: no body
// validation, no single-flight across isolates, no refresh-token rotation
// safety beyond "write the new one to KV", no rate-limit penalties.
// Used only by the benchmark, never deployed. bench/run.mjs runs it as is
// and as `js:full` (BENCH_UPSTREAM=contract + BENCH_LOG=long: the per-request
// duties plumgate's contract requires; row †, the row the budgets judge
// plumgate against, bench/verdict.mjs); bench/ab.mjs and
// bench/profile.mjs also run the other BENCH_UPSTREAM variants below.

const QUERIES = {
  getFilters: "plumProAPI.mutation.getFilters",
  getVouchers: "plumProAPI.mutation.getVouchers",
  getBalance: "plumProAPI.query.getBalance",
  placeOrder: "plumProAPI.mutation.placeOrder",
  getOrderDetails: "plumProAPI.mutation.getOrderDetails",
  getOrderHistory: "plumProAPI.mutation.getOrderHistory",
};

const enc = new TextEncoder();
const LIMIT_MARK = enc.encode("request_limit_exceeded");
// What the sandbox answers getOrderHistory with, for BENCH_UPSTREAM=none.
const FIXED_ANSWER = '{"data":{"getOrderHistory":{"data":[],"status":1}}}';

/** Does `bytes` contain `mark`? */
function includes(bytes, mark) {
  for (let i = bytes.indexOf(mark[0]); i >= 0 && i + mark.length <= bytes.length; i = bytes.indexOf(mark[0], i + 1)) {
    let k = 1;
    while (k < mark.length && bytes[i + k] === mark[k]) k++;
    if (k === mark.length) return true;
  }
  return false;
}
let token = null; // { access, exp } in isolate memory
let inflight = null; // one refresh at a time in this isolate
let keyHash = null;

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(text)));
}

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

async function authorised(request, env) {
  const h = request.headers.get("authorization") || "";
  if (!h.startsWith("Bearer ")) return false;
  keyHash ??= hexToBytes(env.CALLER_KEY_SHA256);
  const got = await sha256(h.slice(7));
  return crypto.subtle.timingSafeEqual(got, keyHash);
}

async function refresh(env) {
  const refreshToken = (await env.TOKEN_CACHE.get("refresh_token")) ?? env.XOXODAY_REFRESH_TOKEN;
  const r = await fetch(`${env.XOXODAY_OAUTH_URL}/v1/oauth/token/user`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      client_id: env.XOXODAY_CLIENT_ID,
      client_secret: env.XOXODAY_CLIENT_SECRET,
    }),
  });
  if (!r.ok) throw new Error(`refresh failed: ${r.status}`);
  const j = await r.json();
  const t = { access: j.access_token, exp: Date.now() + Number(j.expires_in) * 1000 };
  await env.TOKEN_CACHE.put("refresh_token", j.refresh_token);
  await env.TOKEN_CACHE.put("access_token", JSON.stringify(t), { expirationTtl: 86400 });
  return t;
}

async function bearer(env) {
  const now = Date.now();
  if (token && token.exp - 300_000 > now) return token.access;
  const cached = await env.TOKEN_CACHE.get("access_token", "json");
  if (cached && cached.exp - 300_000 > now) {
    token = cached;
    return token.access;
  }
  inflight ??= refresh(env).finally(() => { inflight = null; });
  token = await inflight;
  return token.access;
}

// Stubs for plumgate's four Durable Object classes, bound only when the
// bench starts this Worker with plumgate's bindings (lib.mjs jsWorkerToml,
// target `js:bindings`): the cold-start row that separates what the
// bindings cost from what the wasm costs. Never called.
class DurableStub {
  fetch() { return new Response(null, { status: 501 }); }
}
export class TokenAuthority extends DurableStub {}
export class OrderLedger extends DurableStub {}
export class RateLimiter extends DurableStub {}
export class KeyRegistry extends DurableStub {}

export default {
  async fetch(request, env) {
    const start = Date.now();
    // BENCH_LOG=long (bench/ab.mjs `js:full`, with BENCH_UPSTREAM=contract):
    // a request id for a line as long as plumgate's and, on the contract
    // path, the per-response headers plumgate's contract adds.
    const rid = env.BENCH_LOG === "long" ? crypto.randomUUID().replaceAll("-", "") : null;
    const url = new URL(request.url);
    if (url.pathname === "/__noop") return new Response(null, { status: 204 });
    if (url.pathname === "/healthz") return json(200, { status: "ok" });
    const op = url.pathname.startsWith("/v1/ops/") ? url.pathname.slice(8) : null;
    let status = 500;
    try {
      if (!op || !QUERIES[op]) return json(status = 404, { error: "unknown operation" });
      if (request.method !== "POST") return json(status = 405, { error: "method not allowed" });
      if (!(await authorised(request, env))) return json(status = 401, { error: "unauthorized" });
      let data;
      try { data = await request.json(); } catch { return json(status = 400, { error: "invalid json" }); }
      const access = await bearer(env);
      const envelope = JSON.stringify({ query: QUERIES[op], tag: "plumProAPI", variables: { data } });
      // BENCH_UPSTREAM (bench/ab.mjs `js:none`, `js:contract`, `js:full`;
      // bench/run.mjs sets "contract" for row †, with BENCH_LOG=long, and
      // nothing for the plain row): "none" answers a fixed body instead of calling
      // upstream (the front half alone); "contract" calls upstream the way
      // plumgate must (contract §4: timeout, no redirects, the whole body
      // read and scanned for a rate-limit answer) instead of streaming it.
      if (env.BENCH_UPSTREAM === "none") {
        status = 200;
        return new Response(FIXED_ANSWER, { status, headers: { "content-type": "application/json; charset=utf-8" } });
      }
      const contract = env.BENCH_UPSTREAM === "contract";
      const init = {
        method: "POST",
        headers: {
          authorization: `Bearer ${access}`,
          "content-type": "application/json",
          accept: "application/json",
        },
        body: envelope,
      };
      if (contract) {
        init.redirect = "manual";
        init.signal = AbortSignal.timeout(30_000);
      }
      const upstream = await fetch(`${env.XOXODAY_OAUTH_URL}/v1/oauth/api`, init);
      status = upstream.status;
      if (contract) {
        const bytes = new Uint8Array(await upstream.arrayBuffer());
        if (status === 401 || status === 429 || includes(bytes, LIMIT_MARK)) return json(status = 502, { error: "token or rate-limit answer" });
        const headers = { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" };
        if (rid) Object.assign(headers, { "x-request-id": rid, vary: "Origin" });
        return new Response(bytes, { status, headers });
      }
      return new Response(upstream.body, {
        status,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    } catch (e) {
      return json(status = 502, { error: "upstream error" });
    } finally {
      // BENCH_LOG=off (bench/ab.mjs `js:nolog`): no log line, to price it;
      // BENCH_LOG=long: a line as long as plumgate's.
      if (env.BENCH_LOG === "long") {
        console.log(JSON.stringify({ time: new Date(start).toISOString(), level: "info", request_id: rid, method: request.method, route: "/v1/ops/{operation}", operation: op, caller: "bench-js", status, upstream_status: status, cache: null, error: null, note: null, token: null, duration_ms: Date.now() - start }));
      } else if (env.BENCH_LOG !== "off") {
        console.log(JSON.stringify({ t: start, op, status, ms: Date.now() - start }));
      }
    }
  },
};
