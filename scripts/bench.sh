#!/usr/bin/env bash
# README bench command:
#
#   bash scripts/bench.sh [--quick] [--hot-only] [--no-write | --write] [--compare DIR [--compare-label TEXT]] [--wrangler-dev]
#
# 1. setup (idempotent), 2. the load generator (Debian's wrk, installed only
# if missing), 3. release builds of the worker (wasm) and the sandbox,
# 4. bench/run.mjs: the sandbox, plumgate and the hand-written JS Worker
# (bench/js-worker) in local workerd through Miniflare (--wrangler-dev:
# under `wrangler dev`), loopback only, bounded (about 10 minutes after the
# build; --quick about 1.5). Prints the
# table and the budget check, writes bench/results/latest.{json,md} and refreshes the
# generated block of BENCHMARKS.md and bench/last-run.json (--no-write: leave
# them alone; --quick, --wrangler-dev and --compare runs, and runs with a
# BENCH_ROUNDS, BENCH_SECONDS, BENCH_LATENCY_SECONDS, BENCH_CONNECTIONS or
# BENCH_CATALOG_ROUNDS setting, leave them unless --write).
# Budgets that fail are printed as FAIL; the exit code is 0 unless the bench
# itself broke (set BENCH_FAIL_ON_BUDGET=1 to exit 1 on a failed budget).
# Do not run two benches at once; other load on the machine skews figures.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
START=$(date +%s)
step() { log "[$(( $(date +%s) - START ))s] $*"; }

# One bench at a time: two would measure each other.
mkdir -p bench/results
exec 9>bench/results/.lock
flock -n 9 || die "another bench is running (bench/results/.lock)"

step "setup"
bash scripts/setup.sh

if ! command -v wrk >/dev/null; then
  step "apt-get install wrk (load generator)"
  apt_install wrk
fi

step "build: sandbox (release) and worker (wasm, release)"
build_sandbox
bash scripts/build.sh
# Snapshot the build so a concurrent rebuild of build/ cannot change the
# worker under measurement.
SNAP="bench/results/build"
rm -rf "$SNAP" && mkdir -p "$SNAP"
cp build/index.js build/index_bg.wasm "$SNAP/"

step "bench (loopback only)"
wrangler_env
node bench/run.mjs --build-dir "$SNAP" "$@"
step "bench done"
