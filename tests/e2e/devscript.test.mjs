// README command 1 (scripts/dev.sh) as a new user runs it: it serves
// /healthz, prints a caller key that reaches the sandbox through the
// gateway, serves that key to the demo page (for a loopback name only),
// serves the demo page, refuses a second session on its dev directory, and
// Ctrl-C stops every process it started; a dev directory whose name holds
// characters a shell, sed or TOML treats specially works as any other; a
// port in use, a sandbox that exits before it is ready and a gateway with a
// configuration problem are each named at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { join, relative } from "node:path";
import { request } from "node:http";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { ROOT, freePort, tempDir, cleanup, trackChild, ENVELOPE_COUNTERS } from "./harness.mjs";

/** GET `path` on 127.0.0.1:`port` with the `Host` header `host` (fetch cannot set it). */
function getWithHost(port, path, host) {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Start scripts/dev.sh from the project with `env` added, its output
 * gathered in `.out`. `detached` gives it its own process group, as a
 * terminal's foreground job has, so Ctrl-C (SIGINT to the group) can be
 * sent as a user sends it; the harness stops it so if the test ends first.
 */
function spawnDev(env, { detached = true } = {}) {
  const child = spawn("bash", [join(ROOT, "scripts/dev.sh")], {
    cwd: ROOT,
    detached,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  child.out = "";
  child.stdout.on("data", (d) => (child.out += d));
  child.stderr.on("data", (d) => (child.out += d));
  return detached ? trackChild(child, "SIGINT") : child;
}

/**
 * Kill what a dev.sh session left: it starts the sandbox and wrangler each
 * in its own session (setsid), so its own group's kill misses them; their
 * groups are found by the dev directory on their command lines.
 */
function killLeftovers(devDir) {
  const pattern = devDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const found = spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" }).stdout ?? "";
  for (const pid of found.split(/\s+/).filter(Boolean)) {
    try { process.kill(-Number(pid), "SIGKILL"); } catch { try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ } }
  }
}

async function portOpen(port) {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

test("scripts/dev.sh: serves, prints a working key, keeps its dev directory to itself, stops on Ctrl-C", async () => {
  const port = await freePort();
  const sandboxPort = await freePort();
  // A name with a space, `&`, `#`, a quote and a backslash: dev.sh writes
  // the directory into the run's wrangler.toml and hands it to wrangler.
  const devParent = tempDir("plumgate-devscript-");
  const devDir = join(devParent, 'dev a&b#c"d\\e');
  mkdirSync(devDir);
  // The user's own variables (a .dev.vars): used, except the ones dev.sh sets for the sandbox.
  const userVars = join(devDir, "user.dev.vars");
  writeFileSync(userVars, 'ALLOWED_ORIGINS="https://app.example.com"\nXOXODAY_CLIENT_SECRET="not-the-sandbox-secret"\n');
  // wrangler's default debugger port taken (another dev session, an IDE):
  // dev.sh takes the next free one.
  const squatter = createServer();
  await new Promise((res) => squatter.once("error", res).listen(9229, "127.0.0.1", res));
  // The dev directory given relative to the project, as a user may write it.
  const child = spawnDev({ PLUMGATE_PORT: String(port), PLUMGATE_SANDBOX_PORT: String(sandboxPort), PLUMGATE_DEV_DIR: relative(ROOT, devDir), PLUMGATE_DEV_VARS: userVars });
  try {
    const deadline = Date.now() + 240_000;
    while (!/caller key\s+(\S+)/.test(child.out)) {
      if (child.exitCode !== null) assert.fail(`dev.sh exited early:\n${child.out.slice(-2000)}`);
      if (Date.now() > deadline) assert.fail(`dev.sh did not get ready:\n${child.out.slice(-2000)}`);
      await sleep(200);
    }
    assert.match(child.out, /step 1\/4/);
    assert.match(child.out, /step 4\/4/);
    const key = child.out.match(/caller key\s+(\S+)/)[1];
    // A second session on free ports but the same dev directory (named
    // absolute here) is refused before it touches anything of the first's:
    // the checks below run on the first session after it.
    const second = spawnDev({ PLUMGATE_PORT: String(await freePort()), PLUMGATE_SANDBOX_PORT: String(await freePort()), PLUMGATE_DEV_DIR: devDir, PLUMGATE_DEV_VARS: userVars });
    const secondCode = await Promise.race([new Promise((res) => second.once("exit", res)), sleep(30_000, null, { ref: false }).then(() => "running")]);
    // Not refused: Ctrl-C it (its own cleanup stops what it started).
    if (secondCode === "running") { try { process.kill(-second.pid, "SIGINT"); } catch { /* gone */ } }
    assert.equal(secondCode, 1, `a second dev.sh on the same dev directory was not refused:\n${second.out.slice(-2000)}`);
    assert.match(second.out, /another dev\.sh uses .*PLUMGATE_DEV_DIR/, second.out);
    assert.doesNotMatch(second.out, /step 1\/4/, "refused before setup and the builds");
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    const bal = await fetch(`http://127.0.0.1:${port}/v1/ops/getBalance`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(bal.status, 200);
    assert.equal((await bal.json()).data.getBalance.status, 1);
    const cors = await fetch(`http://127.0.0.1:${port}/healthz`, { headers: { origin: "https://app.example.com" } });
    assert.equal(cors.headers.get("access-control-allow-origin"), "https://app.example.com", "ALLOWED_ORIGINS from the user's .dev.vars");
    const counters = await (await fetch(`http://127.0.0.1:${sandboxPort}/__sandbox/counters`)).json();
    assert.equal(counters.api_calls.getBalance, 1, "the call reached the bundled sandbox");
    // As every suite's closing check wants: each call (the token's and the
    // balance's) said the JSON content type and Xoxoday's tag.
    for (const name of ENVELOPE_COUNTERS) assert.equal(counters[name], 0, `${name}: calls Xoxoday documents otherwise`);
    // The page's one-click key: served to a request for a loopback name only,
    // never to a page whose own name resolves to 127.0.0.1 (DNS rebinding).
    const dev = await fetch(`http://127.0.0.1:${port}/v1/dev/caller-key`);
    assert.equal(dev.status, 200);
    assert.equal((await dev.json()).key, key);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
      assert.equal((await getWithHost(port, "/v1/dev/caller-key", host)).status, 200, host);
    }
    const rebound = await getWithHost(port, "/v1/dev/caller-key", `rebind.example:${port}`);
    assert.equal(rebound.status, 404, rebound.body);
    assert.ok(!rebound.body.includes(key), "no key in the refusal");
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    // A build beside the session (scripts/test.sh, scripts/build.sh) rewrites
    // build/ in several steps; the running worker must not be reloaded from
    // it half-written. Rewriting build/index.js with the same bytes is such
    // a step: wrangler would say "Reloading" if it watched build/.
    const built = join(ROOT, "build/index.js");
    const before = child.out.length;
    writeFileSync(built, readFileSync(built));
    await sleep(3000);
    assert.doesNotMatch(child.out.slice(before), /reload/i, "a rewrite of build/ reloaded the running worker");
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  } finally {
    // Ctrl-C: SIGINT to the foreground process group.
    try { process.kill(-child.pid, "SIGINT"); } catch { /* gone */ }
    const deadline = Date.now() + 20_000;
    while ((await portOpen(port)) || (await portOpen(sandboxPort))) {
      if (Date.now() > deadline) break;
      await sleep(250);
    }
    const stillUp = (await portOpen(port)) || (await portOpen(sandboxPort));
    // Its last line says so, once its children are gone (its output closed).
    const closed = await Promise.race([
      new Promise((r) => (child.stdout.destroyed && child.stderr.destroyed ? r(true) : child.once("close", () => r(true)))),
      sleep(10_000).then(() => false),
    ]);
    if (stillUp) {
      try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
      killLeftovers(devDir);
    }
    cleanup(devParent);
    squatter.close();
    assert.equal(stillUp, false, "Ctrl-C stopped the gateway and the sandbox");
    assert.equal(closed, true, "dev.sh ended after Ctrl-C");
    assert.match(child.out, /\[plumgate\]\S* stopped\n/, "dev.sh said it stopped");
  }
});

test("scripts/dev.sh: a port already in use is named at once, before any build", async () => {
  // Another gateway on the port (a second dev.sh, a `wrangler dev`) would
  // otherwise answer this run's health check and be taken for it.
  const squatter = createServer();
  await new Promise((res) => squatter.listen(0, "127.0.0.1", res));
  const taken = squatter.address().port;
  const devDir = tempDir("plumgate-devscript-port-");
  try {
    for (const [env, name] of [[{ PLUMGATE_PORT: String(taken) }, "PLUMGATE_PORT"], [{ PLUMGATE_PORT: String(await freePort()), PLUMGATE_SANDBOX_PORT: String(taken) }, "PLUMGATE_SANDBOX_PORT"]]) {
      const child = spawnDev({ PLUMGATE_DEV_DIR: devDir, ...env }, { detached: false });
      const code = await new Promise((res) => child.once("exit", res));
      assert.equal(code, 1, child.out);
      assert.match(child.out, new RegExp(`port ${taken} is in use.*${name}`), child.out);
      assert.doesNotMatch(child.out, /step 1\/4/, "refused before setup and the builds");
    }
  } finally {
    squatter.close();
    cleanup(devDir);
  }
});

test("scripts/dev.sh: a sandbox that exits before it is ready is named at once, with its own words", async () => {
  // A sandbox state file it cannot read (hand-edited, cut short by a full
  // disk): the sandbox exits 1 naming the file. dev.sh says so then, with
  // the sandbox's log, rather than after its 30 s wait for the sandbox.
  const port = await freePort();
  const sandboxPort = await freePort();
  const devDir = tempDir("plumgate-devscript-state-");
  writeFileSync(join(devDir, "sandbox-state.json"), "{not json\n");
  const child = spawnDev({ PLUMGATE_PORT: String(port), PLUMGATE_SANDBOX_PORT: String(sandboxPort), PLUMGATE_DEV_DIR: devDir });
  try {
    const code = await Promise.race([new Promise((res) => child.once("exit", res)), sleep(240_000, null, { ref: false }).then(() => "running")]);
    assert.equal(code, 1, `dev.sh did not stop:\n${child.out.slice(-2000)}`);
    assert.match(child.out, /step 4\/4/);
    assert.match(child.out, /state file .*sandbox-state\.json is not valid sandbox state/, "the sandbox's own words are printed");
    assert.match(child.out, /the sandbox exited with status 1 before it was ready/, child.out.slice(-2000));
    assert.doesNotMatch(child.out, /within 30 s|plumgate is running/, "named before the wait ran out");
    assert.equal(await portOpen(port), false, "no gateway was started");
  } finally {
    try { process.kill(-child.pid, "SIGINT"); } catch { /* gone */ }
    killLeftovers(devDir);
    cleanup(devDir);
  }
});

test("scripts/dev.sh: a gateway with a configuration problem is named at once, with its problems", async () => {
  // A .dev.vars value the gateway refuses: /healthz answers 503 listing it,
  // which ends the wait for the gateway at once (not a minute later as
  // "did not answer"), and dev.sh stops what it started.
  const port = await freePort();
  const sandboxPort = await freePort();
  const devDir = tempDir("plumgate-devscript-bad-");
  const userVars = join(devDir, "user.dev.vars");
  writeFileSync(userVars, 'ALLOWED_ORIGINS="*"\n');
  const child = spawnDev({ PLUMGATE_PORT: String(port), PLUMGATE_SANDBOX_PORT: String(sandboxPort), PLUMGATE_DEV_DIR: devDir, PLUMGATE_DEV_VARS: userVars });
  try {
    const code = await Promise.race([new Promise((res) => child.once("exit", res)), sleep(240_000, null, { ref: false }).then(() => "running")]);
    assert.equal(code, 1, `dev.sh did not stop on the 503:\n${child.out.slice(-2000)}`);
    assert.match(child.out, /step 4\/4/);
    assert.match(child.out, /"problems":\[[^\]]*ALLOWED_ORIGINS/, "the problems /healthz lists are printed");
    assert.match(child.out, /configuration has the problems above \(\/healthz answered 503\)/, child.out.slice(-2000));
    assert.doesNotMatch(child.out, /plumgate is running/);
    const deadline = Date.now() + 20_000;
    while (((await portOpen(port)) || (await portOpen(sandboxPort))) && Date.now() < deadline) await sleep(250);
    assert.equal((await portOpen(port)) || (await portOpen(sandboxPort)), false, "dev.sh stopped the gateway and the sandbox");
  } finally {
    try { process.kill(-child.pid, "SIGINT"); } catch { /* gone */ }
    killLeftovers(devDir);
    cleanup(devDir);
  }
});
