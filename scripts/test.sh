#!/usr/bin/env bash
# README command 2: every test.
#
#   bash scripts/test.sh
#
# 1. setup (idempotent), 2. host tests of the pure core and the sandbox
# (+ clippy), the OpenAPI lint, the TypeScript client's build and unit tests,
# the bench's budget-line and record-writing unit tests, the unit tests of
# the build's wasm passes (tests/build/), 3. the wasm build
# (its gzipped size printed; over the bench's budget, named on the last
# line), 4. end-to-end tests:
# the built worker in workerd (wrangler dev) against the sandbox, over
# loopback only.
# Pass test file names (tests/e2e/foo.test.mjs) to run only those e2e files.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
START=$(date +%s)
step() { log "[$(( $(date +%s) - START ))s] $*"; }
# Checks this machine could not run: named again on the last line, so a
# green run never hides them.
SKIPPED=()

step "setup"
bash scripts/setup.sh --tests

step "host tests: cargo test (core + sandbox)"
# --locked: a Cargo.toml changed without its Cargo.lock fails here, rather
# than testing dependencies other than the committed ones.
cargo test --locked -q -p plumgate-core -p plumgate-sandbox

if ! cargo clippy --version >/dev/null 2>&1; then
  log "clippy skipped: this cargo has none (scripts/setup.sh adds it where rustup can)"
  SKIPPED+=("clippy (this cargo has none)")
else
  step "lint: cargo clippy -D warnings (core + sandbox)"
  cargo clippy -q -p plumgate-core -p plumgate-sandbox --all-targets -- -D warnings
  if rustup_has_wasm; then
    step "lint: cargo clippy -D warnings (worker crate, wasm32)"
    CARGO_TARGET_DIR="$ROOT/target/wasm-clippy" cargo clippy -q --target wasm32-unknown-unknown -p plumgate -- -D warnings
  else
    log "worker clippy skipped: rustup has no wasm32 target here (the Debian toolchain builds it instead)"
    SKIPPED+=("worker clippy (no rustup wasm32 target)")
  fi
fi

step "lint: no import circles in the worker crate"
node scripts/check-layers.mjs

step "lint: Markdown tables render as written"
node scripts/lint-tables.mjs

step "lint: wrangler.toml's migration tags stay as released"
node scripts/lint-migrations.mjs

step "lint: docs/storage.md lists every stored field and registry column the code has"
node scripts/lint-storage.mjs

step "lint: openapi.json (Redocly recommended-strict, examples; openapi-spec-validator)"
# Node 22 and the npm tools first on PATH for these two steps only (subshells).
( wrangler_env
node scripts/lint-openapi.mjs
"${PLUMGATE_OPENAPI_VENV:-$HOME/.cache/plumgate/venv-openapi}/bin/openapi-spec-validator" crates/core/src/openapi.json )

step "client: build (types generated from openapi.json, type tests) and unit tests on Node 22 and the system Node"
SYS_NODE="$(PATH=/usr/local/bin:/usr/bin:/bin command -v node || true)"
( wrangler_env
npm run --silent build -w @plumgate/client
node --test clients/typescript/test/*.test.mjs
if [[ -n $SYS_NODE && "$("$SYS_NODE" --version)" != "$(node --version)" ]]; then
  log "client unit tests on $("$SYS_NODE" --version) ($SYS_NODE)"
  "$SYS_NODE" --test clients/typescript/test/*.test.mjs
fi )
if [[ -z $SYS_NODE ]]; then
  log "client unit tests on the system Node skipped: no node in /usr/local/bin, /usr/bin or /bin"
  SKIPPED+=("client tests on the system Node (none found)")
fi

step "bench: unit tests of the budget lines and of which runs write the record (made-up results, no load), and the rows the audit page's SQL reads (local workerd)"
( wrangler_env
node --test tests/bench/*.test.mjs )

step "build passes: unit tests of the wasm rewrites after worker-build (prune-table, zero-dead-text, short-imports, wasm-leb) on hand-built modules"
( wrangler_env
node --test tests/build/*.test.mjs )

step "build: sandbox (release) and worker (wasm)"
build_sandbox
bash scripts/build.sh
# The size budget is the bench's (bench/verdict.mjs, zlib level 9); printed
# here too, and named on the last line when over, without failing the run:
# the size depends on the toolchain path (without build-std ~16 KB more).
WASM_SIZE="$( ( wrangler_env; node --input-type=module -e '
  import { gzipSync } from "node:zlib"; import { readFileSync } from "node:fs";
  import { GZIP_BUDGET } from "./bench/verdict.mjs";
  const n = gzipSync(readFileSync("build/index_bg.wasm"), { level: 9 }).length;
  console.log(`${n} ${GZIP_BUDGET}`);' ) )"
read -r WASM_GZIP WASM_BUDGET <<< "$WASM_SIZE"
log "wasm: $WASM_GZIP B gzipped (zlib level 9), budget $WASM_BUDGET B"
OVER=""
if (( WASM_GZIP > WASM_BUDGET )); then
  OVER="; the wasm is over its size budget: $WASM_GZIP B gzipped > $WASM_BUDGET B (bench/verdict.mjs)"
fi

step "end-to-end tests (workerd + sandbox)"
wrangler_env
if [[ $# -gt 0 ]]; then FILES=("$@"); else FILES=(tests/e2e/*.test.mjs); fi
node --test --test-concurrency=1 --test-timeout=600000 "${FILES[@]}"
if [[ ${#SKIPPED[@]} -gt 0 ]]; then
  step "all tests passed, but not run here: $(IFS=';'; echo "${SKIPPED[*]}")$OVER"
else
  step "all tests passed$OVER"
fi
