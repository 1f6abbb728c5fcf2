#!/usr/bin/env bash
# Build the worker to build/index.js + build/index_bg.wasm (release profile).
# Used as wrangler's [build] command, so `npx wrangler dev` and
# `npx wrangler deploy` build the same way. Set PLUMGATE_SKIP_BUILD=1 to reuse
# an existing build (the test harness builds once, then starts many workers).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [[ "${PLUMGATE_SKIP_BUILD:-0}" == 1 && -f build/index.js ]]; then
  exit 0
fi
[[ -x "$TOOLS_DIR/bin/worker-build" ]] || die "worker-build is missing: run scripts/setup.sh first"
wasm_build_env
log "building worker (wasm32, release)"
worker-build --release "$@"
ls -l build/index_bg.wasm 2>/dev/null | awk '{print "[plumgate] index_bg.wasm " $5 " bytes"}' >&2 || true
