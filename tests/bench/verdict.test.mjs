// Unit tests of the bench's budget lines (bench/verdict.mjs) on made-up
// results: a line passes on clean, finite figures only. No worker, no load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { budgets, coverage, errorsOf, median, ordinal, pairedIn, quantile, settling, spreadConfidence, spreadIn, spreadRank } from "../../bench/verdict.mjs";

/** One wrk phase as bench/lib.mjs's `wrk` returns it. */
const phase = ({ rps = 3000, p50 = 1, p99 = 5, non2xx = 0, requests = rps * 5 } = {}) =>
  ({ requests, rps, p50_ms: p50, p99_ms: p99, non2xx, socket_errors: 0, cache_mismatch: 0 });

/** A row of `rounds` rounds, as bench/run.mjs's `interleaved` makes it. */
function row(label, opts = {}, rounds = 3) {
  return rowOf(label, Array.from({ length: rounds }, () => opts));
}

/** A row whose rounds have figures of their own (`perRound`: `row`'s options, one object a round). */
function rowOf(label, perRound) {
  const rs = perRound.map(({ rps = 3000, cpu = 0.5, p50 = 1, p99 = 5, non2xx = 0, requests } = {}) => ({
    load: phase({ rps, p99, non2xx, requests }),
    lat: phase({ rps: 1000 / p50, p50, requests: requests === 0 ? 0 : undefined }),
    cpu_ms_per_req: requests === 0 ? undefined : cpu,
  }));
  return {
    label, rps: median(rs.map((x) => x.load.rps)), cpu_ms_per_req: median(rs.map((x) => x.cpu_ms_per_req)),
    load_p99_ms: median(rs.map((x) => x.load.p99_ms)), p50_ms: median(rs.map((x) => x.lat.p50_ms)),
    ...errorsOf(rs), rounds: rs,
  };
}

/** `t` with its rounds' c=1 p50s set to `p50s`, its median updated. */
function withP50s(t, p50s) {
  t.rounds.forEach((x, i) => { x.lat.p50_ms = p50s[i]; });
  t.p50_ms = median(p50s);
  return t;
}

/** `t` with `n` of `field` (non2xx, socket_errors, cache_mismatch) in its first round's `which` phase ("load" or "lat"), its counts updated. */
function withErrors(t, which, field, n = 1) {
  t.rounds[0][which][field] = n;
  return Object.assign(t, errorsOf(t.rounds));
}

/** The paired figure over two rows' rounds, by run.mjs's own `pairedIn`. */
const paired = (a, b, f) => pairedIn({ a: a.rounds, b: b.rounds })("a", "b", f);
/** Their rounds' spread, by run.mjs's own `spreadIn`. */
const spread = (a, b, f) => spreadIn({ a: a.rounds, b: b.rounds })("a", "b", f);

test("pairedIn is the median of per-round figures, a's round against b's", () => {
  // Drift: b's rounds slow down as a's do. Per round a is 0.9×, 0.9×, 1.2× b:
  // the paired median 0.9; the ratio of the medians (200 / 150) would say 1.33.
  const rounds = { a: [{ v: 90 }, { v: 180 }, { v: 240 }], b: [{ v: 100 }, { v: 200 }, { v: 200 }], c: [{ v: 1 }, { v: 1 }, { v: 1 }] };
  const p = pairedIn(rounds);
  assert.equal(p("a", "b", (x, y) => x.v / y.v), 0.9);
  assert.equal(p("b", "a", (x, y) => x.v / y.v), 1 / 0.9, "a over b, not b over a");
  assert.equal(p("a", "c", (x, y) => x.v - y.v), 179, "the rounds of the rows named");
});

/** A whole results object; `over` replaces hot-path rows by id. */
function results(over = {}) {
  const hot = {
    direct: row("direct", { p50: 0.5, cpu: 0.2 }),
    plumgate: row("plumgate", { rps: 3200, cpu: 0.45, p50: 1.2, p99: 4 }),
    plumgate_keys_ref: row("ref"),
    plumgate_runtime_key: row("runtime key"),
    plumgate_key_limits: row("key limits"),
    js: row("js", { rps: 3500 }),
    js_full: row("js full", { rps: 3000, cpu: 0.5, p99: 5 }),
    noop: row("noop", { p50: 0.3 }),
    ...over,
  };
  const h = hot;
  hot.paired = {
    plumgate_vs_js_full_rps: paired(h.plumgate, h.js_full, (a, b) => a.load.rps / b.load.rps),
    plumgate_vs_js_full_cpu: paired(h.plumgate, h.js_full, (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    plumgate_vs_js_full_load_p99: paired(h.plumgate, h.js_full, (a, b) => a.load.p99_ms / b.load.p99_ms),
    plumgate_added_p50_ms: paired(h.plumgate, h.direct, (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    noop_added_p50_ms: paired(h.noop, h.direct, (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    js_full_added_p50_ms: paired(h.js_full, h.direct, (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    runtime_key_vs_static_rps: paired(h.plumgate_runtime_key, h.plumgate_keys_ref, (a, b) => a.load.rps / b.load.rps),
    key_limits_vs_static_rps: paired(h.plumgate_key_limits, h.plumgate_keys_ref, (a, b) => a.load.rps / b.load.rps),
  };
  hot.spread = {
    plumgate_vs_js_full_rps: spread(h.plumgate, h.js_full, (a, b) => a.load.rps / b.load.rps),
    plumgate_vs_js_full_cpu: spread(h.plumgate, h.js_full, (a, b) => a.cpu_ms_per_req / b.cpu_ms_per_req),
    plumgate_vs_js_full_load_p99: spread(h.plumgate, h.js_full, (a, b) => a.load.p99_ms / b.load.p99_ms),
    plumgate_added_p50_ms: spread(h.plumgate, h.direct, (a, b) => a.lat.p50_ms - b.lat.p50_ms),
    runtime_key_vs_static_rps: spread(h.plumgate_runtime_key, h.plumgate_keys_ref, (a, b) => a.load.rps / b.load.rps),
    key_limits_vs_static_rps: spread(h.plumgate_key_limits, h.plumgate_keys_ref, (a, b) => a.load.rps / b.load.rps),
  };
  const hit_control = row("hit control"), hit_penalty = row("hit penalty");
  return {
    settings: { connections: 32, storm: 500, cold_reps: 25, rounds: 3 },
    hot,
    catalog: {
      hit_control, hit_penalty, penalty: { rounds: 3 },
      paired: { penalty_hit_vs_control_rps: paired(hit_penalty, hit_control, (a, b) => a.load.rps / b.load.rps) },
      spread: { penalty_hit_vs_control_rps: spread(hit_penalty, hit_control, (a, b) => a.load.rps / b.load.rps) },
    },
    storm: { plumgate: { refresh_calls: 1, statuses: { 200: 500 } } },
    size: { wasm_gzip: 199_000 },
    cold: { no_assets_minus_js_ms: 2, no_assets_minus_js_q: [0, 4], no_assets_slower_in: 14 },
  };
}

const line = (bs, start) => bs.find((b) => b.name.startsWith(start));

test("clean results with better numbers pass every line", () => {
  const bs = budgets(results());
  for (const b of bs) assert.ok(b.pass, `${b.name}: ${b.value}`);
});

test("each line's threshold: just past it fails, at it passes", () => {
  const plumgate = (o) => ({ plumgate: row("plumgate", { rps: 3200, cpu: 0.45, p50: 1.2, p99: 4, ...o }) });
  const rowCases = [
    // Row † (js_full): 3000 req/s, 0.5 ms CPU, p99 5 ms; the direct call's p50 0.5 ms.
    ["hot-path throughput", plumgate({ rps: 2970 }), plumgate({ rps: 3000 })],
    ["hot-path CPU", plumgate({ cpu: 0.505 }), plumgate({ cpu: 0.5 })],
    ["p99 at 32", plumgate({ p99: 5.05 }), plumgate({ p99: 5 })],
    ["added p50", plumgate({ p50: 1.5 }), plumgate({ p50: 1.49 })],
    ["runtime key, isolate-cached", { plumgate_runtime_key: row("runtime key", { rps: 2820 }) }, { plumgate_runtime_key: row("runtime key", { rps: 2850 }) }],
    ["runtime key with requests_per_minute", { plumgate_key_limits: row("key limits", { rps: 2820 }) }, { plumgate_key_limits: row("key limits", { rps: 2850 }) }],
  ];
  for (const [start, past, at] of rowCases) {
    const failing = line(budgets(results(past)), start), passing = line(budgets(results(at)), start);
    assert.equal(failing.pass, false, `${failing.name}: ${failing.value}`);
    assert.equal(passing.pass, true, `${passing.name}: ${passing.value}`);
  }
  const judgedWith = (start, change) => {
    const r = results();
    change(r);
    return line(budgets(r), start).pass;
  };
  const figureCases = [
    ["index_bg.wasm", (r) => { r.size.wasm_gzip = 200_001; }, (r) => { r.size.wasm_gzip = 200_000; }],
    ["cold start", (r) => { r.cold.no_assets_minus_js_ms = 5.1; }, (r) => { r.cold.no_assets_minus_js_ms = 5; }],
    ["exactly one upstream refresh", (r) => { r.storm.plumgate.refresh_calls = 2; }, () => {}],
    // None is no pass either: the token was not cold, the storm tested nothing.
    ["exactly one upstream refresh", (r) => { r.storm.plumgate.refresh_calls = 0; }, () => {}],
    ["exactly one upstream refresh", (r) => { r.storm.plumgate.statuses = { 200: 499, 502: 1 }; }, () => {}],
    ["catalog hit under Xoxoday's penalty", (r) => { r.catalog.paired.penalty_hit_vs_control_rps = 0.94; }, (r) => { r.catalog.paired.penalty_hit_vs_control_rps = 0.95; }],
  ];
  for (const [start, past, at] of figureCases) {
    assert.equal(judgedWith(start, past), false, `${start}: past the threshold`);
    assert.equal(judgedWith(start, at), true, `${start}: at the threshold`);
  }
});

test("plumgate answering non-2xx faster than row † fails the lines that read it", () => {
  const bs = budgets(results({ plumgate: row("plumgate", { rps: 9000, cpu: 0.1, p50: 0.4, p99: 1, non2xx: 40 }) }));
  for (const start of ["hot-path throughput", "hot-path CPU", "added p50", "p99 at 32"]) {
    const b = line(bs, start);
    assert.equal(b.pass, false, `${b.name}: ${b.value}`);
    assert.match(b.value, /plumgate: \d+ non-2xx/);
  }
  assert.equal(line(bs, "every measured request").pass, false);
  // Lines that do not read the plumgate row are judged on their own rows.
  assert.equal(line(bs, "runtime key, isolate-cached").pass, true);
});

test("a round with no request fails the lines, it does not pass them", () => {
  const bs = budgets(results({ plumgate: row("plumgate", { rps: 0, p50: 0, p99: 0, requests: 0 }) }));
  for (const start of ["hot-path throughput", "hot-path CPU", "added p50", "p99 at 32"]) {
    const b = line(bs, start);
    assert.equal(b.pass, false, `${b.name}: ${b.value}`);
    assert.match(b.value, /phases with no request/);
  }
});

test("a round whose CPU figure is 0 (/proc unreadable) fails the CPU line on either side, it does not pass a ratio of 0", () => {
  for (const over of [
    { plumgate: row("plumgate", { rps: 3200, cpu: 0, p50: 1.2, p99: 4 }) },
    { js_full: row("js full", { rps: 3000, cpu: 0, p99: 5 }) },
  ]) {
    const b = line(budgets(results(over)), "hot-path CPU");
    assert.equal(b.pass, false, `${b.name}: ${b.value}`);
    assert.match(b.value, /(plumgate|js_full): 3 of 3 rounds without a CPU figure above zero/);
  }
  // One round of three is enough to fail it, though the median ratio is fine.
  const r = results();
  r.hot.plumgate.rounds[1].cpu_ms_per_req = 0;
  const b = line(budgets(r), "hot-path CPU");
  assert.equal(b.pass, false, `${b.name}: ${b.value}`);
  assert.match(b.value, /plumgate: 1 of 3 rounds without a CPU figure above zero/);
  // The lines that do not judge CPU are not held to it.
  assert.equal(line(budgets(results({ plumgate: row("plumgate", { rps: 3200, cpu: 0, p50: 1.2, p99: 4 }) })), "hot-path throughput").pass, true);
});

test("a key row with errors fails its own line", () => {
  const bs = budgets(results({ plumgate_key_limits: row("key limits", { rps: 3100, non2xx: 3 }) }));
  assert.equal(line(bs, "runtime key with requests_per_minute").pass, false);
  assert.equal(line(bs, "runtime key, isolate-cached").pass, true);
});

test("a figure that is not finite fails its line", () => {
  const r = results();
  r.hot.paired.plumgate_vs_js_full_cpu = NaN;
  r.cold.no_assets_minus_js_ms = NaN;
  const bs = budgets(r);
  assert.equal(line(bs, "hot-path CPU").pass, false);
  assert.equal(line(bs, "cold start").pass, false);
  assert.match(line(bs, "hot-path CPU").value, /no finite figure/);
});

test("the p99 line is named from the run's connections, and judged at 32 only", () => {
  const r = results();
  assert.equal(line(budgets(r), "p99 at").name, "p99 at 32 connections: plumgate ≤ row †");
  r.settings.connections = 8;
  const b = line(budgets(r), "p99 at");
  assert.equal(b.name, "p99 at 8 connections: plumgate ≤ row †");
  assert.equal(b.pass, false, `${b.name}: ${b.value}`);
  assert.match(b.value, /^0\.80× .*; not judged: the budget is at 32 connections, this run used 8$/);
  // The other lines are judged as before.
  for (const x of budgets(r)) if (x !== b && !x.name.startsWith("p99 at")) assert.ok(x.pass, `${x.name}: ${x.value}`);
  // More connections than the budget's is not the budget's run either.
  r.settings.connections = 64;
  assert.equal(line(budgets(r), "p99 at").pass, false);
  assert.match(line(budgets(r), "p99 at").value, /not judged: the budget is at 32 connections, this run used 64$/);
});

test("the added-p50 line quotes the no-op and row † figures paired, as its label says, not differences of medians", () => {
  // Per round (c=1 p50, ms): direct 0.1, 0.5, 0.9; no-op 0.2, 0.3, 1.6; row † 1.0, 0.6, 0.7.
  // No-op: median of differences 0.10, difference of medians -0.20.
  // Row †: median of differences 0.10, difference of medians 0.20.
  const r = results({
    direct: withP50s(row("direct", { cpu: 0.2 }), [0.1, 0.5, 0.9]),
    noop: withP50s(row("noop"), [0.2, 0.3, 1.6]),
    js_full: withP50s(row("js full", { rps: 3000, cpu: 0.5, p99: 5 }), [1.0, 0.6, 0.7]),
  });
  const b = line(budgets(r), "added p50");
  assert.match(b.value, /\(median of per-round differences; .*a no-op JS Worker alone adds 0\.10 ms, row † 0\.10 ms\); rounds /);
  // A record from before the paired figures were kept says what it quotes.
  delete r.hot.paired.noop_added_p50_ms;
  delete r.hot.paired.js_full_added_p50_ms;
  assert.match(line(budgets(r), "added p50").value, /; differences of medians: a no-op JS Worker alone adds -0\.20 ms, row † 0\.20 ms\); rounds /);
});

test("the CPU line calls the two rows' own figures medians, beside the paired ratio", () => {
  assert.match(line(budgets(results()), "hot-path CPU").value, /^0\.900× \(paired median; medians 0\.450 vs 0\.500 ms;/);
});

test("median and quantile are NaN on anything not finite, and sort numbers as numbers", () => {
  assert.equal(median([10, 9, 100]), 10);
  assert.equal(median([1, 2, 3, 4]), 2.5);
  assert.ok(Number.isNaN(median([1, undefined, 3])));
  assert.ok(Number.isNaN(median([1, NaN, 3])));
  assert.ok(Number.isNaN(median([1, Infinity])));
  assert.ok(Number.isNaN(median([])));
  assert.equal(quantile([5, 1, 4, 2, 3], 0.9), 5);
  assert.ok(Number.isNaN(quantile([1, undefined], 0.5)));
});

test("an error of any kind in either phase of plumgate's rounds fails the lines that read the row", () => {
  const words = { non2xx: "1 non-2xx", socket_errors: "1 socket errors", cache_mismatch: "1 cache mismatches" };
  for (const which of ["load", "lat"]) {
    for (const [field, said] of Object.entries(words)) {
      const bs = budgets(results({ plumgate: withErrors(row("plumgate", { rps: 3200, cpu: 0.45, p50: 1.2, p99: 4 }), which, field) }));
      for (const start of ["hot-path throughput", "hot-path CPU", "added p50", "p99 at 32", "every measured request"]) {
        const b = line(bs, start);
        assert.equal(b.pass, false, `${which} ${field}: ${b.name}: ${b.value}`);
        assert.ok(b.value.includes(`plumgate: ${said}`), `${which} ${field}: ${b.value}`);
      }
    }
  }
});

test("errors in a line's reference row fail that line, and the lines that do not read the row are judged on their own", () => {
  const cases = [
    // [what is dirtied, the lines that read it, a line that does not]
    [(r) => withErrors(r.hot.js_full, "load", "non2xx"), ["hot-path throughput", "hot-path CPU", "p99 at 32"], "added p50"],
    [(r) => withErrors(r.hot.js_full, "load", "socket_errors"), ["hot-path throughput", "hot-path CPU", "p99 at 32"], "added p50"],
    [(r) => withErrors(r.hot.direct, "lat", "non2xx"), ["added p50"], "hot-path throughput"],
    [(r) => withErrors(r.hot.plumgate_keys_ref, "load", "non2xx"), ["runtime key, isolate-cached", "runtime key with requests_per_minute"], "hot-path throughput"],
    [(r) => withErrors(r.catalog.hit_control, "load", "cache_mismatch"), ["catalog hit under Xoxoday's penalty"], "runtime key, isolate-cached"],
    [(r) => withErrors(r.catalog.hit_penalty, "lat", "cache_mismatch"), ["catalog hit under Xoxoday's penalty"], "runtime key, isolate-cached"],
  ];
  for (const [dirty, reading, other] of cases) {
    const r = results();
    dirty(r);
    const bs = budgets(r);
    for (const start of [...reading, "every measured request"]) {
      const b = line(bs, start);
      assert.equal(b.pass, false, `${b.name}: ${b.value}`);
    }
    assert.equal(line(bs, other).pass, true, other);
  }
});

test("the every-2xx line reads the catalog rows too", () => {
  const r = results();
  r.catalog.miss = withErrors(row("miss"), "load", "cache_mismatch", 7);
  const b = line(budgets(r), "every measured request");
  assert.equal(b.pass, false, b.value);
  assert.match(b.value, /^miss: 7 cache mismatches$/);
});

test("a row that was not measured fails the lines that read it, whatever figure is at hand", () => {
  const r = results();
  delete r.hot.js_full;
  const bs = budgets(r);
  for (const start of ["hot-path throughput", "hot-path CPU", "p99 at 32"]) {
    const b = line(bs, start);
    assert.equal(b.pass, false, `${b.name}: ${b.value}`);
    assert.match(b.value, /js_full: not measured/);
  }
});

test("each paired line judges the median of per-round ratios (or differences), not the ratio of the rows' medians", () => {
  // Per round, plumgate against its reference: the paired median is past
  // the threshold, the ratio (difference) of the two rows' medians within it.
  const cases = [
    // 4000/4100, 2000/2100, 3000/2000: median 0.976 (fails ≥ 1); medians 3000 / 2100 = 1.43.
    ["hot-path throughput", { plumgate: rowOf("plumgate", [{ rps: 4000 }, { rps: 2000 }, { rps: 3000 }]), js_full: rowOf("js full", [{ rps: 4100 }, { rps: 2100 }, { rps: 2000 }]) }, /^0\.976× /],
    // 0.5/0.45, 0.3/0.6, 0.9/0.8: median 1.111 (fails ≤ 1); medians 0.5 / 0.6 = 0.83.
    ["hot-path CPU", { plumgate: rowOf("plumgate", [{ cpu: 0.5 }, { cpu: 0.3 }, { cpu: 0.9 }]), js_full: rowOf("js full", [{ cpu: 0.45 }, { cpu: 0.6 }, { cpu: 0.8 }]) }, /^1\.111× /],
    // 6/5, 4/8, 10/9: median 1.11 (fails ≤ 1); medians 6 / 8 = 0.75.
    ["p99 at 32", { plumgate: rowOf("plumgate", [{ p99: 6 }, { p99: 4 }, { p99: 10 }]), js_full: rowOf("js full", [{ p99: 5 }, { p99: 8 }, { p99: 9 }]) }, /^1\.11× /],
    // 1.1−0.05, 1.2−0.9, 3.0−1.9: median 1.05 ms (fails < 1); medians 1.2 − 0.9 = 0.3 ms.
    ["added p50", { plumgate: rowOf("plumgate", [{ p50: 1.1 }, { p50: 1.2 }, { p50: 3.0 }]), direct: rowOf("direct", [{ p50: 0.05 }, { p50: 0.9 }, { p50: 1.9 }]) }, /^1\.05 ms /],
    // 4000/4300, 2000/2200, 3000/2000: median 0.930 (fails ≥ 0.95); medians 3000 / 2200 = 1.36.
    ["runtime key, isolate-cached", { plumgate_runtime_key: rowOf("runtime key", [{ rps: 4000 }, { rps: 2000 }, { rps: 3000 }]), plumgate_keys_ref: rowOf("ref", [{ rps: 4300 }, { rps: 2200 }, { rps: 2000 }]) }, /^0\.930× /],
  ];
  for (const [start, over, figure] of cases) {
    const b = line(budgets(results(over)), start);
    assert.equal(b.pass, false, `${b.name}: ${b.value}`);
    assert.match(b.value, figure);
  }
});

test("spreadIn is the lowest and highest per-round figure up to 8 rounds, null when one is not finite", () => {
  const rounds = { a: [{ v: 90 }, { v: 180 }, { v: 240 }], b: [{ v: 100 }, { v: 200 }, { v: 200 }], z: [{ v: 0 }, { v: 1 }, { v: 1 }] };
  assert.deepEqual(spreadIn(rounds)("a", "b", (x, y) => x.v / y.v), [0.9, 1.2]);
  assert.deepEqual(spreadIn(rounds)("b", "a", (x, y) => x.v - y.v), [-40, 20], "a's rounds against b's");
  assert.equal(spreadIn(rounds)("a", "z", (x, y) => x.v / y.v), null, "a round over 0 is no figure");
  assert.equal(spreadIn({ a: [], b: [] })("a", "b", (x, y) => x / y), null);
});

test("from 9 rounds spreadIn takes order statistics further in, so more rounds narrow the range rather than widen it", () => {
  // Ten rounds, their ratios 0.70 (an outlier), 0.91 … 1.05, 1.30 (another), shuffled.
  const ratios = [1.02, 0.70, 0.97, 1.30, 0.91, 1.05, 0.99, 0.94, 1.00, 0.96];
  const rounds = { a: ratios.map((v) => ({ v })), b: ratios.map(() => ({ v: 1 })) };
  assert.deepEqual(spreadIn(rounds)("a", "b", (x, y) => x.v / y.v), [0.91, 1.05], "the 2nd lowest and 2nd highest of 10");
  assert.equal(spreadRank(10), 2);
  assert.equal(spreadRank(20), 6);
  assert.equal(spreadRank(8), 1, "the 2nd of 8 would hold the median only 93.0 % of the time");
  assert.equal(spreadRank(9), 2);
});

test("coverage is the sign test's: 1 − 2·P(Binomial(n, ½) < k); the spread keeps at least the 5-round range's", () => {
  assert.equal(coverage(5, 1), 1 - 2 / 32);
  assert.equal(coverage(10, 2), 1 - 2 * 11 / 1024);
  assert.equal(coverage(10, 3), 1 - 2 * 56 / 1024);
  assert.equal(coverage(1, 1), 0, "one round says nothing of the median");
  for (let n = 5; n <= 40; n++) {
    const k = spreadRank(n);
    assert.ok(coverage(n, k) >= coverage(5, 1), `${n} rounds: rank ${k}`);
    assert.ok(k + 1 > n / 2 || coverage(n, k + 1) < coverage(5, 1), `${n} rounds: rank ${k} is the innermost`);
  }
  assert.equal(spreadConfidence(5), 93.7);
  assert.equal(spreadConfidence(10), 97.8);
  assert.equal(spreadConfidence(3), 75);
  assert.equal(spreadConfidence(1), 0);
  assert.deepEqual([2, 3, 4, 11, 12, 13, 21, 22, 23, 111].map(ordinal), ["2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "111th"]);
});

test("settling names the rounds' range, and a threshold inside it as unsettled, at either end too", () => {
  const x = (v) => `${v.toFixed(3)}×`;
  assert.equal(settling([0.9, 1.1], 1, x, 5), "; rounds 0.900× to 1.100× (lowest to highest of 5, 93.7 % for the median): the budget's 1.000× inside, unsettled");
  assert.match(settling([1, 1.1], 1, x, 5), /inside, unsettled$/, "at the low end");
  assert.match(settling([0.9, 1], 1, x, 5), /inside, unsettled$/, "at the high end");
  assert.equal(settling([1.001, 1.2], 1, x, 5), "; rounds 1.001× to 1.200× (lowest to highest of 5, 93.7 % for the median): clear of the budget's 1.000×");
  assert.match(settling([0.8, 0.999], 1, x, 5), /: clear of the budget's 1\.000×$/, "clear on the failing side too");
  assert.equal(settling([0.95, 0.99], 1, x, 10), "; rounds 0.950× to 0.990× (2nd lowest to 2nd highest of 10, 97.8 % for the median): clear of the budget's 1.000×");
  assert.equal(settling(undefined, 1, x, 5), "", "a record from before spreads were kept");
  assert.equal(settling(null, 1, x, 5), "", "a spread with a round that is no figure");
});

test("each paired line quotes its rounds' spread and says when its budget lies inside it; the verdict stays the median's", () => {
  // Per round plumgate against row †: 0.9×, 1.05×, 1.2× (median 1.05, PASS, but a round below 1).
  const straddles = { plumgate: rowOf("plumgate", [{ rps: 2700 }, { rps: 3150 }, { rps: 3600 }]) };
  const t = line(budgets(results(straddles)), "hot-path throughput");
  assert.equal(t.pass, true, t.value);
  assert.match(t.value, /; rounds 0\.900× to 1\.200× \(lowest to highest of 3, 75 % for the median\): the budget's 1\.000× inside, unsettled$/);
  const clear = line(budgets(results()), "hot-path throughput");
  assert.match(clear.value, /; rounds 1\.067× to 1\.067× \(lowest to highest of 3, 75 % for the median\): clear of the budget's 1\.000×$/);
  // Every paired line says so, at its own threshold and in its own unit.
  const bs = budgets(results());
  for (const [start, tail] of [
    ["hot-path CPU", /rounds 0\.900× to 0\.900× \(lowest to highest of 3, 75 % for the median\): clear of the budget's 1\.000×$/],
    ["added p50", /rounds 0\.70 ms to 0\.70 ms \(lowest to highest of 3, 75 % for the median\): clear of the budget's 1\.00 ms$/],
    ["p99 at 32", /rounds 0\.800× to 0\.800× \(lowest to highest of 3, 75 % for the median\): clear of the budget's 1\.000×$/],
    ["runtime key, isolate-cached", /rounds 1\.000× to 1\.000× \(lowest to highest of 3, 75 % for the median\): clear of the budget's 0\.950×$/],
    ["runtime key with requests_per_minute", /rounds 1\.000× to 1\.000× \(lowest to highest of 3, 75 % for the median\): clear of the budget's 0\.950×$/],
    ["catalog hit under Xoxoday's penalty", /rounds 1\.000× to 1\.000× \(lowest to highest of 3, 75 % for the median\): clear of the budget's 0\.950×$/],
  ]) assert.match(line(bs, start).value, tail, start);
  // A 5 % line whose rounds straddle 0.95.
  const keys = line(budgets(results({ plumgate_runtime_key: rowOf("runtime key", [{ rps: 2700 }, { rps: 3000 }, { rps: 3300 }]) })), "runtime key, isolate-cached");
  assert.match(keys.value, /the budget's 0\.950× inside, unsettled$/);
  // A record without spreads (before they were kept) reads as it did.
  const old = results();
  delete old.hot.spread;
  delete old.catalog.spread;
  for (const b of budgets(old)) assert.doesNotMatch(b.value, /rounds .* to /, b.name);
});

test("quantile is the nearest rank: the smallest value with at least p of the values at or below it", () => {
  const xs = Array.from({ length: 25 }, (_, i) => 25 - i); // 25 … 1, as the cold start's 25 paired differences
  assert.equal(quantile(xs, 0.25), 7);
  assert.equal(quantile(xs, 0.75), 19);
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2);
  assert.equal(quantile([4, 1, 3, 2], 1), 4);
});
