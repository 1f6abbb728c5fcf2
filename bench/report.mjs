// The bench's report (bench/run.mjs): BENCHMARKS.md's generated block,
// `markdown(results)` then "What changed since the last run",
// `changes(previous, results)`, from results objects alone. Nothing here
// starts a process or reads a file, so the block can be checked against
// bench/last-run.json (tests/bench/report.test.mjs).
import { GZIP_LABEL, f0, f1, f2, kb, ratio, s2 } from "./verdict.mjs";

// The rows of the hot-path and catalog tables, in order.
export const HOT_ROWS = ["direct", "plumgate", "plumgate_keys_ref", "plumgate_runtime_key", "plumgate_key_limits", "plumgate_dropin", "plumgate_assets", "alt", "js", "js_full", "pg_floor", "noop"];
export const CATALOG_ROWS = ["hit", "hit_control", "hit_penalty", "miss", "alt_hit", "alt_miss", "direct"];

export function markdown(r) {
  const h = r.hot, c = r.catalog, s = r.storm, cs = r.cold, z = r.size;
  const L = [];
  L.push(`Run: ${r.started_at} · ${((r.duration_s) / 60).toFixed(1)} min · git ${r.machine.git} · workers in ${r.runtime === "workerd" ? "local workerd (Miniflare, direct socket: no `wrangler dev` proxy, no entry Worker)" : "`wrangler dev`"}`);
  L.push(`Machine: ${r.machine.cpu}, ${r.machine.memory_gib} GiB, Linux ${r.machine.kernel}; Node ${r.machine.node}, wrangler ${r.machine.wrangler}, ${r.machine.wrk}.`);
  L.push(`Load average (1/5/15 min) at start ${r.load_at_start}, at end ${r.load_at_end}.`);
  L.push(`Load: wrk, 1 thread, ${r.settings.connections} connections × ${r.settings.load_seconds} s for throughput; 1 connection × ${r.settings.latency_seconds} s for latency; hot path median of ${r.settings.rounds} interleaved rounds.`);
  L.push("");
  L.push("### 1. Hot path (token cached, getOrderHistory: never edge-cached)");
  L.push("");
  L.push("plumgate rows run without the demo page's [assets] table (like the JS Worker, which has none) except the row marked \"+ demo-page assets layer\", which is wrangler.toml as shipped.");
  L.push("");
  L.push(`| target | req/s (c=${r.settings.connections}), median [min–max] | p50 / p99 ms (c=${r.settings.connections}) | p50 / p99 ms (c=1) | throughput vs direct | added p50 vs direct (c=1) | CPU ms per request* | non-2xx |`);
  L.push("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const id of HOT_ROWS) {
    const t = h[id];
    if (!t) continue;
    L.push(`| ${t.label} | ${f0(t.rps)} [${f0(t.rps_min)}–${f0(t.rps_max)}] | ${f2(t.load_p50_ms)} / ${f2(t.load_p99_ms)} | ${f2(t.p50_ms)} / ${f2(t.p99_ms)} | ${ratio(t.rps, h.direct.rps)} | ${id === "direct" ? "–" : `${f2(t.p50_ms - h.direct.p50_ms)} ms`} | ${f2(t.cpu_ms_per_req)} | ${t.non2xx} |`);
  }
  L.push("");
  L.push(`\\* CPU time (user + system) of the target's own processes per request during the c=32 phase: for a worker, its ${r.runtime === "workerd" ? "Miniflare host (node) and its workerd" : "`wrangler dev` node process plus its workerd processes"}; for the direct call, the sandbox. Much less sensitive to other load on the machine than req/s.`);
  if (h.js_full) {
    L.push("");
    L.push("† The same JS Worker with the per-request work plumgate's contract requires and the plain baseline skips: the upstream call with a timeout and no redirects, the answer read whole and scanned for a rate-limit reply (contract §4, §6), a request id sent back as `x-request-id` with `vary: Origin`, and a log line with the contract's fields (§7). It still skips body validation and scopes, the penalty check before each call (contract §6: an operation under Xoxoday's penalty answered 429 without calling Xoxoday; row † only spots the rate-limit reply), the shared limiter's leases (Xoxoday's per-minute limits, `limits::admit`) and the per-key usage count with its background KeyRegistry sync (`callers::admit`). The budgets judge plumgate against this row (what a user would otherwise have to write); the plain JS Worker stays as a floor.");
  }
  L.push("");
  L.push(`Paired within each round (median over ${r.settings.rounds} rounds): plumgate / JS Worker throughput ${f2(h.paired.plumgate_vs_js_rps)}×; plumgate p50 over the direct call ${f2(h.paired.plumgate_added_p50_ms)} ms; ` +
    `over the runtime floor (no-op JS worker, c=1): plumgate ${f2(h.paired.plumgate_over_floor_p50_ms)} ms, JS Worker ${f2(h.paired.js_over_floor_p50_ms)} ms; ` +
    `CPU per request plumgate / JS Worker ${f2(h.paired.plumgate_vs_js_cpu)}×; the wasm floor (plumgate /healthz) over the JS floor: ${s2(h.paired.wasm_floor_over_js_floor_cpu_ms)} ms CPU, ${s2(h.paired.wasm_floor_over_js_floor_p50_ms)} ms p50.` +
    (h.paired.plumgate_vs_js_full_rps ? ` Against the JS Worker with plumgate's per-request duties†: throughput ${f2(h.paired.plumgate_vs_js_full_rps)}×, CPU per request ${f2(h.paired.plumgate_vs_js_full_cpu)}× (that worker's throughput is ${f2(h.paired.js_full_vs_js_rps)}× the plain one's).` : "") +
    (h.paired.alt_vs_plumgate_rps ? ` ${r.compare.label}: ${f2(h.paired.alt_vs_plumgate_rps)}× plumgate's throughput, ${f2(h.paired.alt_vs_js_rps)}× the JS Worker's.` : ""));
  L.push("");
  L.push(`Caller keys, paired in each round with the plain call (a \`GATEWAY_KEYS\` key) on their own worker (the reference row): a runtime key found in the isolate's copy of the key directory ${f2(h.paired.runtime_key_vs_static_rps)}× throughput, ${f2(h.paired.runtime_key_vs_static_cpu)}× CPU per request, p50 ${f2(h.paired.runtime_key_over_static_p50_ms)} ms; ` +
    `a runtime key with \`requests_per_minute\` (1,000,000: counted, never reached) ${f2(h.paired.key_limits_vs_static_rps)}×, ${f2(h.paired.key_limits_vs_static_cpu)}×, ${f2(h.paired.key_limits_over_static_p50_ms)} ms. ` +
    "Every plumgate row also goes through the shared limiter's check (`limits::admit`), spending a call it was lent from isolate memory; what a lease costs when one must be asked for is in 1b.");
  if (r.uncached) {
    const u = r.uncached, kc = u.runtime_key_cold, ll = u.limiter_lease;
    L.push("");
    L.push("### 1b. When the isolate has to ask (sequential calls, one connection, getOrderHistory)");
    L.push("");
    L.push("| case | n | p50 / p90 ms | its cached pair, p50 / p90 ms | extra, p50 / p90 ms (paired) | the extra is |");
    L.push("|---|---:|---:|---:|---:|---|");
    L.push(`| runtime key, first use in the isolate (made by POST /v1/keys, which throws the isolate's copy of the directory away) | ${kc.cold.n} | ${f2(kc.cold.p50_ms)} / ${f2(kc.cold.p90_ms)} | ${f2(kc.cached.p50_ms)} / ${f2(kc.cached.p90_ms)} (the same key's next call) | ${f2(kc.extra_p50_ms)} / ${f2(kc.extra_p90_ms)} | one KeyRegistry round trip (a sync: the directory and the usage counted) before the request goes on |`);
    L.push(`| a lease asked for on every call (getOrderHistory budget ${ll.budget} a minute: leases of one call) | ${ll.leased.n} | ${f2(ll.leased.p50_ms)} / ${f2(ll.leased.p90_ms)} | ${f2(ll.plain.p50_ms)} / ${f2(ll.plain.p90_ms)} (the plain worker, called in turn) | ${f2(ll.extra_p50_ms)} / ${f2(ll.extra_p90_ms)} | one RateLimiter round trip (a lease) before the call to Xoxoday |`);
    L.push("");
    L.push("Under load neither is on more than a sliver of requests: an isolate's copy of the key directory is refreshed in the background (after the request that finds it 4 s old), and a lease lends up to 1,000 calls (at most a tenth of the budget), spendable for 5 s, so at these rates (2,000–4,000 calls a second) an isolate asks the RateLimiter a few times a second: that is in the plain hot path's figures.");
  }
  L.push("");
  L.push(`### 2. Refresh storm (${r.settings.storm} concurrent calls, cold token cache, fresh worker)`);
  L.push("");
  L.push("| worker | wall time to all answered | first answer | median answer | upstream refreshes | peak concurrent refreshes | answers |");
  L.push("|---|---:|---:|---:|---:|---:|---|");
  for (const [id, label] of [["plumgate", "plumgate"], ["js", "hand-written JS Worker"]]) {
    const t = s[id];
    L.push(`| ${label} | ${f0(t.wall_ms)} ms | ${f0(t.first_answer_ms)} ms | ${f0(t.p50_answer_ms)} ms | ${t.refresh_calls} | ${t.peak_concurrent_refreshes} | ${Object.entries(t.statuses).map(([k, v]) => `${v}×${k}`).join(", ")} |`);
  }
  L.push("");
  L.push(`### 3. Catalog: getVouchers (response ${f0(c.response_bytes)} bytes)`);
  L.push("");
  L.push(`| case | req/s (c=${r.settings.connections}) | p50 / p99 ms (c=${r.settings.connections}) | p50 / p99 ms (c=1) | vs miss | CPU ms per request | non-2xx / not the expected x-plumgate-cache |`);
  L.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const id of CATALOG_ROWS) {
    const t = c[id];
    if (!t) continue;
    L.push(`| ${t.label} | ${f0(t.rps)} | ${f2(t.load_p50_ms)} / ${f2(t.load_p99_ms)} | ${f2(t.p50_ms)} / ${f2(t.p99_ms)} | ${ratio(t.rps, c.miss.rps)} | ${f2(t.cpu_ms_per_req)} | ${t.non2xx} / ${t.expect_cache ? t.cache_mismatch : "–"} |`);
  }
  L.push("");
  L.push(`Hit under a penalty, its control (a plumgate started with it, never penalised) and the plain hit: ${c.penalty.rounds} interleaved rounds (medians). Paired with the control: ${f2(c.paired.penalty_hit_vs_control_rps)}× throughput, ${f2(c.paired.penalty_hit_vs_control_cpu)}× CPU per request, p50 ${f2(c.paired.penalty_hit_over_control_p50_ms)} ms; with the main plumgate's plain hit: ${f2(c.paired.penalty_hit_vs_hit_rps)}×, ${f2(c.paired.penalty_hit_vs_hit_cpu)}×, ${f2(c.paired.penalty_hit_over_hit_p50_ms)} ms. ` +
    `The penalty: Xoxoday's (the sandbox's getVouchers limit set to one a minute, \`penaltySeconds\` ${c.penalty.seconds}), met by one call the cache could not answer; plumgate then refused such calls itself (429 rate_limited, Retry-After ${c.penalty.retry_after_at_start} s, before and after the rounds) and ${c.penalty.upstream_calls_during} getVouchers calls reached the sandbox meanwhile. Miss and direct: one round.`);
  L.push("");
  L.push(`### 4. Cold start (fresh ${r.runtime === "workerd" ? "Miniflare + workerd" : "`wrangler dev`"} process → first answer; median of ${r.settings.cold_reps}${r.settings.cold_shipped_reps ? `, as shipped of ${r.settings.cold_shipped_reps}` : ""})`);
  L.push("");
  L.push("| worker | spawn → first /healthz 200 | then first operation (cold token, one refresh) |");
  L.push("|---|---:|---:|");
  L.push(`| plumgate (wrangler.toml as shipped, demo-page assets included) | ${f0(cs.plumgate_ms)} ms | ${f0(cs.plumgate_first_op_ms)} ms |`);
  L.push(`| plumgate without the [assets] table (like for like) | ${f0(cs.plumgate_no_assets_ms)} ms | – |`);
  L.push(`| hand-written JS Worker | ${f0(cs.js_ms)} ms | – |`);
  if (cs.js_bindings_ms !== undefined) L.push(`| the same JS Worker with plumgate's Durable Object bindings (four stub classes, its migrations and cron) | ${f0(cs.js_bindings_ms)} ms | – |`);
  L.push("");
  if (cs.no_assets_minus_js_ms !== undefined) {
    const bq = cs.no_assets_minus_js_bindings_q ? ` (quartiles ${f1(cs.no_assets_minus_js_bindings_q[0])} / ${f1(cs.no_assets_minus_js_bindings_q[1])} ms)` : "";
    L.push(`Paired (each rep starts plumgate without assets, the JS Worker and the JS Worker with the bindings one right after the other, the order rotating): plumgate − JS Worker ${f1(cs.no_assets_minus_js_ms)} ms (median; quartiles ${f1(cs.no_assets_minus_js_q[0])} / ${f1(cs.no_assets_minus_js_q[1])} ms; slower in ${cs.no_assets_slower_in} of ${r.settings.cold_reps}); against the JS Worker with the bindings ${f1(cs.no_assets_minus_js_bindings_ms)} ms${bq}.`);
    L.push("");
  }
  L.push("### 5. Size");
  L.push("");
  L.push(`| artifact | raw | gzipped: ${GZIP_LABEL} |`);
  L.push("|---|---:|---:|");
  L.push(`| build/index_bg.wasm | ${f0(z.wasm_raw)} B (${kb(z.wasm_raw)}) | ${f0(z.wasm_gzip)} B (${kb(z.wasm_gzip)}) |`);
  L.push(`| build/index.js | ${f0(z.js_raw)} B (${kb(z.js_raw)}) | ${f0(z.js_gzip)} B (${kb(z.js_gzip)}) |`);
  L.push(`| \`wrangler deploy --dry-run\` upload | ${z.upload_kib !== undefined ? `${z.upload_kib} KiB` : z.upload_error} | ${z.upload_gzip_kib !== undefined ? `${z.upload_gzip_kib} KiB (wrangler's gzip)` : "–"} |`);
  L.push("");
  L.push("### Budgets");
  L.push("");
  L.push("| budget | measured | result |");
  L.push("|---|---|---|");
  for (const b of r.budgets) L.push(`| ${b.name} | ${b.value} | ${b.pass ? "PASS" : "**FAIL**"} |`);
  return L.join("\n");
}

export function changes(prev, cur) {
  if (!prev) return "First recorded run.";
  const rows = [
    ["hot: plumgate req/s", prev.hot?.plumgate?.rps, cur.hot.plumgate.rps, f0],
    ["hot: JS Worker req/s", prev.hot?.js?.rps, cur.hot.js.rps, f0],
    ["hot: direct req/s", prev.hot?.direct?.rps, cur.hot.direct.rps, f0],
    ["hot: plumgate CPU ms/request", prev.hot?.plumgate?.cpu_ms_per_req, cur.hot.plumgate.cpu_ms_per_req, f2],
    ["hot: JS Worker CPU ms/request", prev.hot?.js?.cpu_ms_per_req, cur.hot.js.cpu_ms_per_req, f2],
    ["hot: plumgate / JS throughput (paired)", prev.hot?.paired?.plumgate_vs_js_rps, cur.hot.paired.plumgate_vs_js_rps, f2],
    ["hot: plumgate / JS with duties† throughput (paired)", prev.hot?.paired?.plumgate_vs_js_full_rps, cur.hot.paired.plumgate_vs_js_full_rps, f2],
    ["hot: plumgate p50 c=1 (ms)", prev.hot?.plumgate?.p50_ms, cur.hot.plumgate.p50_ms, f2],
    ["hot: added p50 vs direct (paired, ms)", prev.hot?.paired?.plumgate_added_p50_ms, cur.hot.paired.plumgate_added_p50_ms, f2],
    ["storm: wall (ms)", prev.storm?.plumgate?.wall_ms, cur.storm.plumgate.wall_ms, f0],
    ["storm: refreshes", prev.storm?.plumgate?.refresh_calls, cur.storm.plumgate.refresh_calls, String],
    ["catalog hit req/s", prev.catalog?.hit?.rps, cur.catalog.hit.rps, f0],
    ["catalog miss req/s", prev.catalog?.miss?.rps, cur.catalog.miss.rps, f0],
    ["hot: runtime key / plain throughput (paired)", prev.hot?.paired?.runtime_key_vs_static_rps, cur.hot.paired.runtime_key_vs_static_rps, f2],
    ["hot: key with requests_per_minute / plain throughput (paired)", prev.hot?.paired?.key_limits_vs_static_rps, cur.hot.paired.key_limits_vs_static_rps, f2],
    ["catalog hit under a penalty / plain hit (paired)", prev.catalog?.paired?.penalty_hit_vs_hit_rps, cur.catalog.paired.penalty_hit_vs_hit_rps, f2],
    ["catalog hit under a penalty / its control (paired)", prev.catalog?.paired?.penalty_hit_vs_control_rps, cur.catalog.paired.penalty_hit_vs_control_rps, f2],
    ["runtime key on first use, extra p50 (ms)", prev.uncached?.runtime_key_cold?.extra_p50_ms, cur.uncached.runtime_key_cold.extra_p50_ms, f2],
    ["lease round trip, extra p50 (ms)", prev.uncached?.limiter_lease?.extra_p50_ms, cur.uncached.limiter_lease.extra_p50_ms, f2],
    ["cold start as shipped (ms)", prev.cold?.plumgate_ms, cur.cold.plumgate_ms, f0],
    [`wasm gzipped, ${GZIP_LABEL} (bytes)`, prev.size?.wasm_gzip, cur.size.wasm_gzip, f0],
  ];
  const prevRuntime = prev.runtime ?? "wrangler dev";
  const L = [`Compared with the previous run (${prev.started_at}, git ${prev.machine?.git ?? "?"}, load ${prev.load_at_start ?? "?"}, workers in ${prevRuntime}):`, "",
    ...(prevRuntime !== cur.runtime ? [`**The previous run measured the workers in ${prevRuntime}, this one in ${cur.runtime}: the hot-path, catalog and cold-start rows are not comparable.**`, ""] : []), "| figure | previous | now | change |", "|---|---:|---:|---:|"];
  for (const [name, a, b, fmt] of rows) {
    const pct = typeof a === "number" && a !== 0 ? `${(((b - a) / Math.abs(a)) * 100).toFixed(0)} %` : "–";
    L.push(`| ${name} | ${a === undefined ? "–" : fmt(a)} | ${fmt(b)} | ${pct} |`);
  }
  return L.join("\n");
}
