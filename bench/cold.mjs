// Cold start, paired: is worker B slower to start than worker A?
//
//   node bench/cold.mjs A B [--pairs 15]
//
// Targets as in bench/ab.mjs (a plumgate build directory, run without the
// demo-page assets as the bench's like-for-like row; or js | js:full ...).
// Each pair starts both workers, one after the other (the order alternates
// pair by pair), each in a fresh Miniflare + workerd process, and times the
// spawn to the first `/healthz` 200, as bench/run.mjs's cold-start row does.
// Prints each target's median and the median of the per-pair differences
// B − A with their quartiles, as the full bench's cold-start budget reads
// its 25 paired reps (bench/run.mjs: COLD_REPS): a start's spread (tens of
// ms on a ~1 s start) is wider than the 5-ms budget, and more pairs
// narrow the median difference.
//
// Loopback only; about 2.5 s per start; a hard stop ends it after 10 minutes.
import { join } from "node:path";
import { JS_VARIANTS, ROOT, makeKey, median, quantile, startSandbox, startTarget, cliArgs, runBounded } from "./lib.mjs";

const { opt, positional } = cliArgs();
const PAIRS = Number(opt("--pairs", 15));
if (positional.length !== 2 || positional.some((n) => n.startsWith("js") && !(n in JS_VARIANTS)) || !(PAIRS >= 1)) {
  console.error("usage: node bench/cold.mjs A B [--pairs 15]\n  a target is a plumgate build directory, or js | js:none | js:contract | js:full | js:nolog | js:bindings");
  process.exit(2);
}

async function main(stops) {
  const sandbox = await startSandbox(join(ROOT, "target/release/plumgate-sandbox"));
  stops.push(() => sandbox.stop());
  const key = makeKey("bench", ["*"]);
  const times = [[], []];
  const start = async (i) => {
    const w = await startTarget(sandbox, positional[i], key);
    times[i].push(w.startupMs);
    await w.stop();
  };
  for (let p = 0; p < PAIRS; p++) {
    const order = p % 2 ? [1, 0] : [0, 1];
    for (const i of order) await start(i);
    process.stderr.write(`[cold] pair ${p + 1}/${PAIRS}: A ${times[0].at(-1).toFixed(0)} ms, B ${times[1].at(-1).toFixed(0)} ms\n`);
  }
  const diffs = times[1].map((b, k) => b - times[0][k]);
  const f = (x) => x.toFixed(1);
  console.log(`cold start, spawn to first /healthz 200, ${PAIRS} pairs (order alternating)`);
  positional.forEach((name, i) => console.log(`${"AB"[i]} ${name}: median ${f(median(times[i]))} ms [${f(Math.min(...times[i]))}–${f(Math.max(...times[i]))}]`));
  console.log(`B − A per pair: median ${f(median(diffs))} ms, quartiles ${f(quantile(diffs, 0.25))} / ${f(quantile(diffs, 0.75))} ms; B slower in ${diffs.filter((d) => d > 0).length} of ${PAIRS}`);
}

runBounded("cold", 10, main);
