// Runs one Worker in local workerd through Miniflare, without `wrangler dev`.
//
//   node bench/workerd-host.mjs CONFIG.json
//
// CONFIG.json: { "toml": "/abs/wrangler.toml", "vars": { NAME: "value" },
//                "port": 0, "inspectorPort": 9229 (optional),
//                "viaEntry": false (optional) }
// Bindings (KV, Durable Objects, assets, compatibility date and flags) come
// from the wrangler.toml through wrangler's own converter, so the Worker
// sees what `wrangler dev` would give it. The modules are the toml's `main`
// (ES module) plus every .wasm beside it (compiled wasm).
//
// Why not `wrangler dev`: wrangler dev puts a proxy Worker and an inspector
// connection (which carries every console.log) in front of the Worker; on
// this machine that floor alone is ~2.8 ms per request and ~1.5 ms per
// logged line, more than the gateway's own work. The bench measures the
// Worker in the runtime, as the issue asks ("local workerd").
//
// Requests go straight to the Worker: Miniflare's direct socket, not its
// entry Worker. The entry Worker is a dev-only layer (it rebuilds every
// request and response, parses the URL three times, routes, and handles
// dev endpoints); on this machine it cost ~0.2 ms CPU per request, a third
// of the JS baseline's whole cost, and nothing like it runs in production.
// With `viaEntry` the URL is Miniflare's usual one (for comparison). A
// Worker with [assets] is reached through the assets router either way.
//
// Prints `WORKERD_READY <url>` on stdout when it answers; the Worker's
// console output follows on stdout/stderr. SIGTERM/SIGINT stop it.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { workerOptions, main } = unstable_getMiniflareWorkerOptions(cfg.toml);
const mainPath = resolve(dirname(cfg.toml), main);
const root = dirname(mainPath);
const modules = [
  { type: "ESModule", path: mainPath },
  ...readdirSync(root).filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm", path: join(root, f) })),
];

const mf = new Miniflare(convertV4MiniflareOptions({
  workers: [{
    ...workerOptions,
    name: "bench-worker",
    modulesRules: undefined,
    modulesRoot: root,
    modules,
    bindings: { ...(workerOptions.bindings ?? {}), ...cfg.vars },
    unsafeDirectSockets: cfg.viaEntry ? undefined : [{ host: "127.0.0.1", port: cfg.port ?? 0 }],
  }],
  host: "127.0.0.1",
  port: cfg.viaEntry ? cfg.port ?? 0 : 0,
  inspectorPort: cfg.inspectorPort, // for bench/profile.mjs
  cf: false, // no fetch of Request.cf from the internet
  log: new Log(LogLevel.WARN), // no per-request access log from Miniflare
}));

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try { await mf.dispose(); } finally { process.exit(0); }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

const entryUrl = await mf.ready;
const url = cfg.viaEntry ? entryUrl : await mf.unsafeGetDirectURL("bench-worker");
console.log(`WORKERD_READY ${url.href.replace(/\/$/, "")}`);
