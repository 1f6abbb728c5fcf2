// The bench's verdict (bench/run.mjs): medians, each row's errors, the
// figures' formats and the budget lines, from a results object alone.
// Nothing here starts a process or reads a file, so the budgets can be
// checked on made-up results (tests/bench/verdict.test.mjs).

/**
 * The median of `xs`; NaN when `xs` is empty or holds anything that is not
 * a finite number (a phase that served no request has no CPU per request,
 * a ratio to such a phase is Infinity or NaN): a figure made of one is not
 * a figure, and a budget line reading it fails (`Number.isFinite`).
 */
export function median(xs) {
  const s = [...xs];
  if (!s.length || !s.every(Number.isFinite)) return NaN;
  s.sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** p-quantile (nearest rank) of `xs`; NaN as `median` is. */
export function quantile(xs, p) {
  const s = [...xs];
  if (!s.length || !s.every(Number.isFinite)) return NaN;
  s.sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

/**
 * The paired figure: over `rounds` (each row id's rounds, interleaved), the
 * median over rounds of `f(a's round, b's round)`. Each round's rows ran
 * minutes apart at most, so the machine's drift between rounds cancels in
 * the ratio; the ratio of two medians would not cancel it.
 */
export const pairedIn = (rounds) => (a, b, f) => median(rounds[a].map((x, i) => f(x, rounds[b][i])));

/**
 * The chance that the k-th lowest and k-th highest of `n` independent
 * draws enclose the median of what they are drawn from, whatever the
 * distribution: 1 − 2·P(Binomial(n, ½) < k) (the sign test's interval).
 */
export function coverage(n, k) {
  let below = 0, c = 1; // c = C(n, i)
  for (let i = 0; i < k; i++) { below += c; c = (c * (n - i)) / (i + 1); }
  return 1 - 2 * below / 2 ** n;
}

/**
 * Which order statistic `spreadIn` takes from each end of `n` rounds: the
 * innermost whose interval still holds the median with at least the
 * confidence the lowest and highest of the bench's 5 rounds have (93.75 %),
 * so more rounds narrow the range instead of widening it with their
 * extremes (10 rounds: the 2nd lowest and 2nd highest, 97.8 % as
 * `spreadConfidence` prints it). Up to 8 rounds: the lowest and highest
 * (below 5, at a lower confidence: 87.5 % at 4).
 */
export function spreadRank(n) {
  let k = 1;
  while (k + 1 <= n / 2 && coverage(n, k + 1) >= coverage(5, 1)) k++;
  return k;
}

/**
 * The range of the per-round figures `pairedIn` takes the median of: their
 * `spreadRank`-th lowest and highest, or null when any is not a finite
 * number. If the rounds are independent draws, the median of what they are
 * drawn from lies in it with `spreadConfidence` (93.75 % at the bench's 5
 * rounds, where it is the lowest and highest): a budget's threshold inside
 * it is one this run cannot settle, whichever side its median fell on
 * (`settling`).
 */
export const spreadIn = (rounds) => (a, b, f) => {
  const xs = rounds[a].map((x, i) => f(x, rounds[b][i]));
  if (!xs.length || !xs.every(Number.isFinite)) return null;
  xs.sort((x, y) => x - y);
  const k = spreadRank(xs.length);
  return [xs[k - 1], xs[xs.length - k]];
};

/** The confidence of `spreadIn`'s range over `n` rounds, in percent, rounded down to a tenth. */
export const spreadConfidence = (n) => Math.floor(1000 * coverage(n, spreadRank(n))) / 10;

/**
 * A paired budget line's words on its rounds' spread (`spreadIn`): the
 * range, and when the budget's `threshold` lies inside it, that this run
 * cannot settle the line (its PASS or FAIL is the median's side, which the
 * next run on the same code may not share). "" for a record from before
 * spreads were kept.
 */
export function settling(spread, threshold, fmt, n) {
  if (!Array.isArray(spread)) return "";
  const [lo, hi] = spread;
  const k = spreadRank(n);
  const ends = k === 1 ? "lowest to highest" : `${ordinal(k)} lowest to ${ordinal(k)} highest`;
  const range = `rounds ${fmt(lo)} to ${fmt(hi)} (${ends} of ${n}, ${spreadConfidence(n)} % for the median)`;
  return lo <= threshold && threshold <= hi
    ? `; ${range}: the budget's ${fmt(threshold)} inside, unsettled`
    : `; ${range}: clear of the budget's ${fmt(threshold)}`;
}

/** 2 → "2nd", 3 → "3rd", 11 → "11th", 21 → "21st". */
export function ordinal(k) {
  const tens = Math.floor(k / 10) % 10, s = tens === 1 ? "th" : ["th", "st", "nd", "rd"][k % 10] ?? "th";
  return `${k}${s}`;
}

/**
 * What went wrong in a row's phases (each `{ load, lat }`, bench/lib.mjs's
 * `wrk` results): answers that were not 2xx (a 3xx, a 429 from either
 * limiter, a 5xx, a 401 counts against the row), socket errors, answers
 * whose `x-plumgate-cache` was not the one the row expects, and phases that
 * served no request at all.
 */
export function errorsOf(phases) {
  const sum = (f) => phases.reduce((a, x) => a + f(x.load) + f(x.lat), 0);
  return {
    non2xx: sum((p) => p.non2xx),
    socket_errors: sum((p) => p.socket_errors),
    cache_mismatch: sum((p) => p.cache_mismatch ?? 0),
    empty_phases: sum((p) => (p.requests > 0 ? 0 : 1)),
  };
}

/** What makes a row unfit to judge by, in words ("" when it is clean). */
export function rowProblems(t) {
  if (!t) return "not measured";
  const out = [];
  if (t.non2xx) out.push(`${t.non2xx} non-2xx`);
  if (t.socket_errors) out.push(`${t.socket_errors} socket errors`);
  if (t.cache_mismatch) out.push(`${t.cache_mismatch} cache mismatches`);
  if (t.empty_phases) out.push(`${t.empty_phases} phases with no request`);
  return out.join(", ");
}

export const f1 = (x) => (x === undefined || x === null || Number.isNaN(x) ? "–" : x.toFixed(1));
export const f0 = (x) => (x === undefined || Number.isNaN(x) ? "–" : Math.round(x).toLocaleString("en-US"));
export const f2 = (x) => (x === undefined || x === null || Number.isNaN(x) ? "–" : x.toFixed(2));
export const f3 = (x) => (x === undefined || x === null || Number.isNaN(x) ? "–" : x.toFixed(3));
/** `f2` with its sign: "+0.05", "-0.02" (a difference that can go either way). */
export const s2 = (x) => `${x >= 0 ? "+" : ""}${f2(x)}`;
export const kb = (b) => `${(b / 1024).toFixed(1)} KiB`;
export const ratio = (a, b) => (b ? `${(a / b).toFixed(2)}×` : "–");

/** The wasm's size budget: bytes after zlib at level 9 (Node's gzipSync), "200 KB". */
export const GZIP_BUDGET = 200_000;
/**
 * How the bench compresses (run.mjs's size()), as every printed figure
 * names it: Node's zlib at level 9, 1–2 KB more than GNU `gzip -9` on this
 * wasm (2,073 B on the build of 2026-12-05).
 */
export const GZIP_LABEL = "zlib level 9 (Node's gzipSync)";

/**
 * What makes a row's CPU figures unfit to judge by ("" when each round has
 * one above zero). bench/lib.mjs's `groupCpuSeconds` reads 0 when /proc
 * cannot be read (or the worker's processes are gone), and a ratio with 0
 * on plumgate's side would pass "≤ 1" on nothing measured.
 */
export function cpuProblems(t) {
  if (!t) return "not measured";
  const figures = t.rounds ? t.rounds.map((x) => x.cpu_ms_per_req) : [t.cpu_ms_per_req];
  const none = figures.filter((x) => !(Number.isFinite(x) && x > 0)).length;
  return none ? `${none} of ${figures.length} rounds without a CPU figure above zero (is /proc readable?)` : "";
}

/**
 * One budget line. It passes only when `value` is a finite number that
 * `ok` accepts and every row it reads (`rows`: [id, row]) is clean: a row
 * answering fast errors, or one that served nothing, would otherwise pass a
 * ratio or a latency line on figures that are not the path's. A line that
 * judges CPU (`cpu`) also needs each row's CPU figure above zero in every
 * round. `unjudged`: further reasons not to judge it (the figure was
 * measured under other settings than the budget's).
 */
function judged(name, text, value, ok, rows = [], { cpu = false, unjudged = [] } = {}) {
  const problems = (t) => [rowProblems(t), cpu ? cpuProblems(t) : ""].filter(Boolean).join(", ");
  const dirty = rows.map(([id, t]) => [id, problems(t)]).filter(([, p]) => p);
  const finite = Number.isFinite(value);
  const why = [
    ...(finite ? [] : ["no finite figure"]),
    ...dirty.map(([id, p]) => `${id}: ${p}`),
    ...unjudged,
  ];
  return { name, value: why.length ? `${text}; not judged: ${why.join("; ")}` : text, pass: why.length === 0 && ok(value) };
}

/** The connections of the p99 budget's load phase (bench/run.mjs's default BENCH_CONNECTIONS). */
export const P99_CONNECTIONS = 32;

// The budgets judge plumgate against row † (js_full): the JavaScript Worker
// doing the same per-request duties the contract requires, which is what a
// user would otherwise write. The plain JS Worker stays in the table as a
// floor.
export function budgets(r) {
  const hot = r.hot, p = hot.paired;
  const added = p.plumgate_added_p50_ms;
  const storm = r.storm.plumgate;
  const cold = r.cold;
  const STORM = r.settings.storm;
  const reps = r.settings.cold_reps;
  const conns = r.settings.connections;
  const rows = (...ids) => ids.map((id) => [id, hot[id]]);
  // Each paired line's rounds: their spread, and whether it settles the line.
  const sp = hot.spread ?? {}, n = r.settings.rounds;
  const times = (x) => `${f3(x)}×`, ms = (x) => `${f2(x)} ms`;
  return [
    judged("hot-path throughput: plumgate ≥ the JS Worker with plumgate's per-request duties†",
      `${f3(p.plumgate_vs_js_full_rps)}× (median of per-round ratios; medians ${f0(hot.plumgate?.rps)} vs ${f0(hot.js_full?.rps)} req/s; against the plain JS Worker ${f2(p.plumgate_vs_js_rps)}×; with the demo-page assets layer ${f2(p.assets_vs_js_rps)}× the plain one)${settling(sp.plumgate_vs_js_full_rps, 1, times, n)}`,
      p.plumgate_vs_js_full_rps, (x) => x >= 1, rows("plumgate", "js_full")),
    judged("hot-path CPU per request: plumgate ≤ row †",
      `${f3(p.plumgate_vs_js_full_cpu)}× (paired median; medians ${f3(hot.plumgate?.cpu_ms_per_req)} vs ${f3(hot.js_full?.cpu_ms_per_req)} ms; against the plain JS Worker ${f2(p.plumgate_vs_js_cpu)}×)${settling(sp.plumgate_vs_js_full_cpu, 1, times, n)}`,
      p.plumgate_vs_js_full_cpu, (x) => x <= 1, rows("plumgate", "js_full"), { cpu: true }),
    judged("added p50 latency over the direct call < 1 ms (c=1)",
      `${f2(added)} ms (median of per-round differences; with the demo-page assets layer ${f2(p.assets_added_p50_ms)} ms; ${alsoAdded(r)})${settling(sp.plumgate_added_p50_ms, 1, ms, n)}`,
      added, (x) => x < 1, rows("plumgate", "direct")),
    // Named from the connections the figure was measured at; the budget
    // is at 32 (BENCH_CONNECTIONS can change it): at others it is shown,
    // not judged.
    judged(`p99 at ${conns ?? "?"} connections: plumgate ≤ row †`,
      `${f2(p.plumgate_vs_js_full_load_p99)}× (paired median; medians ${f1(hot.plumgate?.load_p99_ms)} vs ${f1(hot.js_full?.load_p99_ms)} ms)${settling(sp.plumgate_vs_js_full_load_p99, 1, times, n)}`,
      p.plumgate_vs_js_full_load_p99, (x) => x <= 1, rows("plumgate", "js_full"),
      { unjudged: conns === P99_CONNECTIONS ? [] : [`the budget is at ${P99_CONNECTIONS} connections, this run used ${conns ?? "an unrecorded number"}`] }),
    { name: `exactly one upstream refresh per storm of ${STORM}`, value: `${storm.refresh_calls} refresh call(s), ${Object.entries(storm.statuses).map(([k, v]) => `${v}×${k}`).join(", ")}`, pass: storm.refresh_calls === 1 && (storm.statuses[200] ?? 0) === STORM },
    judged(`index_bg.wasm ≤ 200 KB gzipped, ${GZIP_LABEL}`, `${f0(r.size.wasm_gzip)} bytes (${kb(r.size.wasm_gzip)})`,
      r.size.wasm_gzip, (x) => x <= GZIP_BUDGET),
    judged("cold start ≤ the JS Worker's + 5 ms (like for like: neither with static assets)",
      `${cold.no_assets_minus_js_ms >= 0 ? "+" : ""}${f1(cold.no_assets_minus_js_ms)} ms (median of ${reps} paired differences, quartiles ${f1(cold.no_assets_minus_js_q[0])} / ${f1(cold.no_assets_minus_js_q[1])} ms, slower in ${cold.no_assets_slower_in} of ${reps}; medians ${f0(cold.plumgate_no_assets_ms)} vs ${f0(cold.js_ms)} ms; plumgate as shipped, with its demo-page assets, ${f0(cold.plumgate_ms)} ms; against the JS Worker with plumgate's Durable Object bindings ${f1(cold.no_assets_minus_js_bindings_ms)} ms)`,
      cold.no_assets_minus_js_ms, (x) => x <= 5),
    ...variantBudgets(r),
  ];
}

/**
 * What the no-op JS Worker and row † add over the direct call (p50, c=1),
 * beside the added-p50 budget: paired per round as the budget's figure is
 * (run.mjs: `noop_added_p50_ms`, `js_full_added_p50_ms`); a record from
 * before those were kept has only the rows' medians, and says so.
 */
function alsoAdded(r) {
  const h = r.hot, p = h.paired;
  const text = (noop, full) => `a no-op JS Worker alone adds ${f2(noop)} ms, row † ${f2(full)} ms`;
  if (p.noop_added_p50_ms !== undefined || p.js_full_added_p50_ms !== undefined) return text(p.noop_added_p50_ms, p.js_full_added_p50_ms);
  return `differences of medians: ${text(h.noop?.p50_ms - h.direct?.p50_ms, h.js_full?.p50_ms - h.direct?.p50_ms)}`;
}

/**
 * What the later features put on the request path, when cached: each
 * variant's throughput within 5 % of its plain row (paired per round), and
 * every measured answer a 2xx of the kind the row expects.
 */
function variantBudgets(r) {
  const h = r.hot.paired, c = r.catalog.paired;
  const times = (x) => `${f3(x)}×`;
  const within = (name, rps, cpu, p50, of, ids, table, [spread, n]) => judged(
    `${name}: throughput within 5 % of ${of}`,
    `${f3(rps)}× (paired median; CPU per request ${f2(cpu)}×, p50 c=1 ${s2(p50)} ms)${settling(spread, 0.95, times, n)}`,
    rps, (x) => x >= 0.95, ids.map((id) => [id, table[id]]),
  );
  const hs = r.hot.spread ?? {}, cs = r.catalog.spread ?? {};
  const hn = r.settings.rounds, cn = r.catalog.penalty?.rounds;
  const rows = [...Object.entries(r.hot), ...Object.entries(r.catalog)].filter(([, t]) => t && t.label);
  const bad = rows.filter(([, t]) => rowProblems(t));
  return [
    within("runtime key, isolate-cached", h.runtime_key_vs_static_rps, h.runtime_key_vs_static_cpu, h.runtime_key_over_static_p50_ms, "the plain hot path", ["plumgate_runtime_key", "plumgate_keys_ref"], r.hot, [hs.runtime_key_vs_static_rps, hn]),
    within("runtime key with requests_per_minute", h.key_limits_vs_static_rps, h.key_limits_vs_static_cpu, h.key_limits_over_static_p50_ms, "the plain hot path", ["plumgate_key_limits", "plumgate_keys_ref"], r.hot, [hs.key_limits_vs_static_rps, hn]),
    within("catalog hit under Xoxoday's penalty", c.penalty_hit_vs_control_rps, c.penalty_hit_vs_control_cpu, c.penalty_hit_over_control_p50_ms, "a plain catalog hit on a plumgate of the same age", ["hit_penalty", "hit_control"], r.catalog, [cs.penalty_hit_vs_control_rps, cn]),
    {
      name: "every measured request answered 2xx (no 3xx, no 429 from either limiter), hits as hits and misses as misses",
      value: bad.length
        ? bad.map(([id, t]) => `${id}: ${rowProblems(t)}`).join("; ")
        : `${rows.length} rows, none (no getVouchers call reached Xoxoday during the penalty)`,
      pass: bad.length === 0,
    },
  ];
}
