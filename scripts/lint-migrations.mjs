// wrangler.toml's Durable Object migrations stay as released (scripts/test.sh).
//
// wrangler sends a deployment the migration steps after the last tag it
// applied, and all of them when that tag is missing from wrangler.toml. A
// tag edited after a release (a class added to it) never creates that
// class where the tag was applied; a tag renamed or removed makes wrangler
// send every step again, which Cloudflare refuses for classes that exist.
// So the tags are append-only: the ones released so far, in order, with
// their classes, are pinned here; a new tag may follow them.
import { readFileSync } from "node:fs";

// ("v2" was first released naming RateLimiter too, right after
// "v2-rate-limiter" had created it; it names KeyRegistry alone since, which
// a deployment already at "v2" never reads again: see wrangler.toml.)
const RELEASED = [
  ["v1", ["TokenAuthority", "OrderLedger"]],
  ["v2-rate-limiter", ["RateLimiter"]],
  ["v2", ["KeyRegistry"]],
];

const toml = readFileSync(new URL("../wrangler.toml", import.meta.url), "utf8");
const steps = [...toml.matchAll(/^\[\[migrations\]\]\n((?:(?!\[).*\n?)*)/gm)].map(([, body]) => {
  const tag = body.match(/^tag = "([^"]+)"$/m)?.[1];
  const keys = [...body.matchAll(/^(\w+) = /gm)].map((m) => m[1]).filter((k) => k !== "tag");
  const classes = body.match(/^new_sqlite_classes = \[([^\]]*)\]$/m)?.[1].split(",").map((c) => c.trim().replace(/^"|"$/g, "")).filter(Boolean);
  return { tag, keys, classes };
});

const problems = [];
RELEASED.forEach(([tag, classes], i) => {
  const step = steps[i];
  if (!step) problems.push(`migration ${i + 1} is missing: tag "${tag}" (${classes.join(", ")}) was released`);
  else if (step.tag !== tag) problems.push(`migration ${i + 1} is tag "${step.tag}", but "${tag}" was released there`);
  else if (JSON.stringify(step.keys) !== JSON.stringify(["new_sqlite_classes"]) || JSON.stringify(step.classes) !== JSON.stringify(classes)) {
    problems.push(`tag "${tag}" was released as new_sqlite_classes = ${JSON.stringify(classes)}; it must stay so (a new class gets a new tag)`);
  }
});
const tags = steps.map((s) => s.tag);
tags.forEach((t, i) => {
  if (!t) problems.push(`migration ${i + 1} has no tag`);
  else if (tags.indexOf(t) !== i) problems.push(`tag "${t}" is used twice`);
});

if (problems.length) {
  for (const p of problems) console.error(`wrangler.toml: ${p}`);
  process.exit(1);
}
console.log(`wrangler.toml migrations: the ${RELEASED.length} released tags as released${steps.length > RELEASED.length ? `, ${steps.length - RELEASED.length} new after them` : ""}`);
