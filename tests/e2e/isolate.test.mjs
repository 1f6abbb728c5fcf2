// Requests of one isolate that wait for another request's work (the key
// directory's sync, the token lookup) must finish in their own request:
// a waiter resumed by the other request runs in that request's context,
// where workerd refuses I/O on the waiter's own request body ("Cannot
// perform I/O on behalf of a different request", a 500). It showed only
// under sustained load on workerd without wrangler dev's proxy in front
// (31 of 32 callers failed in one bench round), so this file starts the
// built worker the way the bench does (bench/lib.mjs `startTarget`: workerd directly),
// with the product's defaults: the copy of the key directory expires after
// 8 s idle, and the test waits that long rather than shorten it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { startTarget, liftSandboxLimits } from "../../bench/lib.mjs";
import { ROOT, startSandbox, makeKey, leakScan, capturedLogs, capturedResponses } from "./harness.mjs";
import { join } from "node:path";

// One GATEWAY_KEYS key (the bench's targets take one): it makes the runtime keys too.
const key = makeKey("operator", ["*"]);
const admin = key;
const HISTORY = { startDate: "2020-01-01", endDate: "2030-12-31", limit: 1, page: 1 };
const CONNECTIONS = 32;
let sandbox;
let w;
const seen = []; // every worker line that is not a 2xx request's log line
const answers = new Set(); // every distinct answer (status and body)
const made = []; // the runtime keys made here

before(async () => {
  sandbox = await startSandbox(["--quiet"]);
  await liftSandboxLimits(sandbox);
  w = await startTarget(sandbox, join(ROOT, "build"), key);
  // The host keeps only its last lines: watch each as it comes.
  const push = w.lines.push.bind(w.lines);
  w.lines.push = (...lines) => {
    for (const l of lines) {
      if (!/"status":2\d\d/.test(l)) seen.push(l);
      capturedLogs.push(`[worker] ${l}`);
    }
    return push(...lines);
  };
});

after(async () => {
  await w?.stop(); // and its temp dir
  // As every suite's closing check: every call plumgate made said what
  // Xoxoday documents (the JSON content type, its envelope's tag), and no
  // answer or log line holds the admin key or a Xoxoday token. The runtime
  // keys are in their own 201 answers by design: looked for in the lines.
  capturedResponses.push(...answers);
  const hits = sandbox ? await leakScan(sandbox, { key }) : [];
  await sandbox?.stop();
  assert.deepEqual(hits, []);
  const lines = capturedLogs.filter((l) => l.startsWith("[worker] "));
  assert.ok(lines.length > 0, "the worker's lines were seen");
  assert.deepEqual(lines.filter((l) => made.some((k) => l.includes(k))).slice(0, 3), [], "no runtime key in a log line");
});

const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
function post(path, auth, body) {
  return new Promise((resolve) => {
    const u = new URL(w.url + path);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", agent, headers: { authorization: `Bearer ${auth}`, "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (c) => { text += c; });
      res.on("end", () => {
        answers.add(`${res.statusCode} ${text}`);
        resolve({ status: res.statusCode, text });
      });
    });
    req.on("error", (e) => resolve({ status: 0, text: String(e) }));
    req.end(JSON.stringify(body));
  });
}

/** `CONNECTIONS` callers, each calling again as soon as it is answered, for `ms`. */
async function load(auth, ms) {
  const counts = {};
  const odd = [];
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (Date.now() < end) {
      const r = await post("/v1/ops/getOrderHistory", auth, HISTORY);
      counts[r.status] = (counts[r.status] ?? 0) + 1;
      if (r.status !== 200 && odd.length < 3) odd.push(`${r.status} ${r.text.slice(0, 160)}`);
    }
  }));
  return { counts, odd };
}

test("bursts after the isolate's key directory was thrown away or expired: every caller waits in its own request, all answered 200", async () => {
  const burst = await post("/v1/keys", admin.key, { id: "burst", scopes: ["orders:read"] });
  assert.equal(burst.status, 201, burst.text);
  const runtimeKey = JSON.parse(burst.text).key;
  made.push(runtimeKey);
  // The cold token lookup is shared too (its waiters, like the keys').
  const first = await load(key.key, 1_000);
  assert.deepEqual(Object.keys(first.counts), ["200"], first.odd.join("\n"));
  // Each round throws the isolate's copy away first: a key made here (as
  // an operator does), or, twice, 9 s idle (past MAX_AGE_MS, 8 s). The
  // round's first request syncs; the others wait for it.
  for (let round = 0; round < 10; round++) {
    if (round % 5 === 4) await sleep(9_000);
    else {
      const r = await post("/v1/keys", admin.key, { id: `burst-${round}`, scopes: ["orders:read"] });
      assert.equal(r.status, 201, r.text);
      made.push(JSON.parse(r.text).key);
    }
    const { counts, odd } = await load(runtimeKey, 1_500);
    assert.deepEqual(Object.keys(counts), ["200"], `round ${round}: ${JSON.stringify(counts)}\n${odd.join("\n")}`);
  }
  const foreign = seen.filter((l) => /different request|Uncaught/i.test(l));
  assert.deepEqual(foreign.slice(0, 3), [], "no request ran in another's context");
});
