// Lints crates/core/src/openapi.json (the document the worker serves at
// /openapi.json) with Redocly's rules: the engine `redocly lint` runs
// (@redocly/openapi-core, pinned in package-lock.json), its
// `recommended-strict` set (every rule an error), and every example checked
// against its schema. scripts/test.sh runs it with openapi-spec-validator
// (PyPI), which checks the document against the OpenAPI 3.1 meta-schema.
//
//   node scripts/lint-openapi.mjs [file]
import { createConfig, formatProblems, getTotals, lint } from "@redocly/openapi-core";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const file = resolve(process.argv[2] ?? fileURLToPath(new URL("../crates/core/src/openapi.json", import.meta.url)));
const config = await createConfig({
  extends: ["recommended-strict"],
  rules: {
    // Examples must match their schemas. Extra fields are allowed there, as
    // in the schemas themselves (Xoxoday's answers grow).
    "no-invalid-media-type-examples": { severity: "error", allowAdditionalProperties: true },
    // GET /healthz, /openapi.json and / take no input and need no key: they
    // have no 4xx answer to document (another method gets 405, and OPTIONS
    // a CORS preflight's 204 on every path but /healthz, which the
    // document's description states once).
    "operation-4xx-response": "off",
  },
});
const problems = await lint({ ref: file, config });
const totals = getTotals(problems);
if (problems.length > 0) {
  formatProblems(problems, { format: "codeframe", totals, version: "lint-openapi" });
}
console.log(`openapi lint: ${file}: ${totals.errors} errors, ${totals.warnings} warnings`);
process.exit(totals.errors + totals.warnings > 0 ? 1 : 0);
