#!/usr/bin/env bash
# README command 1: run plumgate locally against the bundled Xoxoday sandbox.
#
#   bash scripts/dev.sh            # http://127.0.0.1:8787
#
# Ensures setup, builds the worker and the sandbox, starts the sandbox on
# 127.0.0.1:8788 and `wrangler dev` on 127.0.0.1:8787 (local mode, offline,
# telemetry off), wires them together, creates a dev caller key with every
# scope and prints it. Ctrl-C stops everything.
#
# Environment: PLUMGATE_PORT (8787), PLUMGATE_SANDBOX_PORT (8788),
# PLUMGATE_DEV_DIR (.wrangler/plumgate-dev: dev key, sandbox and worker state),
# PLUMGATE_DEV_VARS (.dev.vars: more variables for the gateway),
# PLUMGATE_INSPECTOR_PORT (wrangler's debugger port: the first free one from
# 9229, so another tool on 9229 is no obstacle). A second dev session needs
# its own PLUMGATE_PORT, PLUMGATE_SANDBOX_PORT and PLUMGATE_DEV_DIR: a dev
# directory serves one session at a time (a second is refused), as its
# build copy, config and state are that session's.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT="${PLUMGATE_PORT:-8787}"
SANDBOX_PORT="${PLUMGATE_SANDBOX_PORT:-8788}"
# Something answers on 127.0.0.1:$1?
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Checked first: a gateway already on the port (another dev.sh, a `wrangler
# dev`) would answer this run's health check and be taken for it.
port_in_use "$PORT" && die "port $PORT is in use (another plumgate or wrangler dev?): stop it or set PLUMGATE_PORT"
port_in_use "$SANDBOX_PORT" && die "port $SANDBOX_PORT is in use: stop what holds it or set PLUMGATE_SANDBOX_PORT"
INSPECTOR_PORT="${PLUMGATE_INSPECTOR_PORT:-}"
if [ -z "$INSPECTOR_PORT" ]; then
  for p in $(seq 9229 9329); do
    port_in_use "$p" || { INSPECTOR_PORT=$p; break; }
  done
  [ -n "$INSPECTOR_PORT" ] || die "no free inspector port in 9229-9329: set PLUMGATE_INSPECTOR_PORT"
fi
DEV_DIR="${PLUMGATE_DEV_DIR:-$ROOT/.wrangler/plumgate-dev}"
mkdir -p "$DEV_DIR"
# Absolute from here on: wrangler reads paths in the config written below
# relative to the config's own folder.
DEV_DIR="$(cd "$DEV_DIR" && pwd)"
# One session per dev directory: a second would rewrite the first's build
# copy, config and sandbox state, and share its worker state (the rotated
# refresh token: 503 reauth_required). Held until this shell and the
# processes it starts have exited (flock: util-linux, essential on Debian).
exec 8>"$DEV_DIR/.lock"
flock -n 8 || die "another dev.sh uses $DEV_DIR: stop it, or set PLUMGATE_DEV_DIR (and other ports) for a second session"

# The build steps get no copy of the lock (8>&-): a tool they leave running
# (a compiler cache's server) would hold it after this session ended.
log "step 1/4: setup (installs only what is missing)"
bash scripts/setup.sh 8>&-

log "step 2/4: building the sandbox (host binary)"
build_sandbox 8>&-

log "step 3/4: building the worker (wasm; the first build takes a minute or two)"
bash scripts/build.sh 8>&-

# A dev caller key with every scope, kept across runs so a browser tab that
# remembers it keeps working. Only its SHA-256 goes to the worker.
if [[ ! -s "$DEV_DIR/caller-key" ]]; then
  # umask 077: the file is private from its first byte, not after a chmod.
  ( umask 077; printf 'pgk_dev_%s' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$DEV_DIR/caller-key" )
fi
KEY="$(cat "$DEV_DIR/caller-key")"
KEY_SHA="$(printf '%s' "$KEY" | sha256sum | awk '{print $1}')"

# Config for this run: the root wrangler.toml without its [build] step (we
# just built), and a .dev.vars: the project's own .dev.vars (if any: e.g.
# ALLOWED_ORIGINS, BALANCE_ALERT_BELOW), then the sandbox's credentials,
# GATEWAY_KEYS with the dev key, and DEV_CALLER_KEY, which win over the
# same names there (wrangler reads the last). The project's file is left
# as it is.
CONF_DIR="$DEV_DIR/config"
mkdir -p "$CONF_DIR"
# The worker runs from a copy of build/, so a build started beside this
# session (scripts/test.sh, scripts/build.sh), which rewrites build/ in
# several steps, is not hot-reloaded half-written into it: restart dev.sh to
# take a new build.
rm -rf "$DEV_DIR/build.new"
cp -R build "$DEV_DIR/build.new"
rm -rf "$DEV_DIR/build"
mv "$DEV_DIR/build.new" "$DEV_DIR/build"
# The two paths go in as TOML strings (a backslash or a quote escaped) and
# through awk's ENVIRON, never a sed replacement or awk -v, so any character
# a directory's name may hold (`&`, `#`, `\`, `"`) arrives as it is.
toml_str() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }
PG_MAIN="$(toml_str "$DEV_DIR/build/index.js")" PG_ASSETS="$(toml_str "$ROOT/www")" awk '
  /^\[build\]/ { skip = 1 }
  skip { if ($0 == "") skip = 0; next }
  /^main = / { print "main = " ENVIRON["PG_MAIN"]; next }
  $0 == "directory = \"./www\"" { print "directory = " ENVIRON["PG_ASSETS"]; next }
  { print }
' wrangler.toml > "$CONF_DIR/wrangler.toml"
USER_VARS="${PLUMGATE_DEV_VARS:-$ROOT/.dev.vars}"
# Private from its first byte: the user's file may hold real credentials.
rm -f "$CONF_DIR/.dev.vars"
( umask 077; { [[ -f "$USER_VARS" ]] && cat "$USER_VARS" && echo; true; } > "$CONF_DIR/.dev.vars" )
cat >> "$CONF_DIR/.dev.vars" <<VARS
XOXODAY_OAUTH_URL="http://127.0.0.1:$SANDBOX_PORT/chef"
XOXODAY_CLIENT_ID="plumgate-dev-client"
XOXODAY_CLIENT_SECRET="plumgate-dev-secret"
XOXODAY_REFRESH_TOKEN="plumgate-dev-refresh-token"
GATEWAY_KEYS='[{"id":"dev","sha256":"$KEY_SHA","scopes":["*"]}]'
DEV_CALLER_KEY="$KEY"
VARS
chmod 600 "$CONF_DIR/.dev.vars"

PIDS=()
cleanup() {
  trap - INT TERM EXIT
  # Kill first, talk later: if our output went to a pipe that Ctrl-C also
  # closed (e.g. `| tee`), writing would kill this shell before the children.
  trap '' PIPE
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # SIGPIPE is ignored above: on a closed pipe this fails, and says nothing.
  log "stopped" || true
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

log "step 4/4: starting the sandbox and the gateway"
setsid "$SANDBOX_BIN" --host 127.0.0.1 --port "$SANDBOX_PORT" \
  --state "$DEV_DIR/sandbox-state.json" > "$DEV_DIR/sandbox.out" 2> "$DEV_DIR/sandbox.log" &
SANDBOX=$!
PIDS+=("$SANDBOX")
# Up to 30 s: on a loaded machine (a build or a test run beside it) 10 s
# was seen to pass before it said it was ready. A sandbox that exits first
# (a state file it cannot read, a bad flag) is named at once with its own
# words. Only a failing exit ends the wait: were setsid ever to fork, the
# pid it leaves would be gone at once with status 0 while the sandbox runs.
SANDBOX_GONE=""
for _ in $(seq 1 300); do
  grep -q SANDBOX_READY "$DEV_DIR/sandbox.out" 2>/dev/null && break
  if [[ -z $SANDBOX_GONE ]] && ! kill -0 "$SANDBOX" 2>/dev/null; then
    SANDBOX_GONE=1
    rc=0; wait "$SANDBOX" || rc=$?
    if (( rc != 0 )); then
      tail -n 20 "$DEV_DIR/sandbox.log" >&2 || true
      die "the sandbox exited with status $rc before it was ready (its log is above, in $DEV_DIR/sandbox.log)"
    fi
  fi
  sleep 0.1
done
grep -q SANDBOX_READY "$DEV_DIR/sandbox.out" || die "the sandbox did not say it was ready within 30 s (see $DEV_DIR/sandbox.log)"

wrangler_env
setsid "$ROOT/node_modules/.bin/wrangler" dev --config "$CONF_DIR/wrangler.toml" --ip 127.0.0.1 --port "$PORT" \
  --inspector-port "$INSPECTOR_PORT" --persist-to "$DEV_DIR/state" --show-interactive-dev-session=false --test-scheduled \
  < /dev/null &
WRANGLER=$!
PIDS+=("$WRANGLER")

# Any HTTP answer ends the wait (its body, then its status on a line of
# its own): a gateway with a configuration problem answers 503 at once.
HEALTH=""
for _ in $(seq 1 300); do
  HEALTH="$(curl -sS -w '\n%{http_code}' "http://127.0.0.1:$PORT/healthz" 2>/dev/null)" && break
  # wrangler gone (a port in use, a bad config): say so now, not in a minute.
  kill -0 "$WRANGLER" 2>/dev/null || die "wrangler dev exited before the gateway answered (its output is above; a port in use? try PLUMGATE_PORT=... or PLUMGATE_INSPECTOR_PORT=...)"
  sleep 0.2
done
case "${HEALTH##*$'\n'}" in
  200) ;;
  000|"") die "gateway did not answer /healthz" ;;
  # plumgate's own 503 lists the problems, naming variables, never their
  # values (another 503, from in front of it, goes to the generic case).
  503) [[ $HEALTH == *'"misconfigured"'* ]] || die "gateway answered /healthz with HTTP 503: ${HEALTH%$'\n'*}"
       printf '%s\n' "${HEALTH%$'\n'*}" >&2
       die "the gateway's configuration has the problems above (/healthz answered 503): fix them in $USER_VARS (or wrangler.toml's [vars]) and run dev.sh again" ;;
  *) printf '%s\n' "${HEALTH%$'\n'*}" >&2
     die "gateway answered /healthz with HTTP ${HEALTH##*$'\n'}" ;;
esac

cat >&2 <<MSG

  plumgate is running
    gateway     http://127.0.0.1:$PORT   (demo page at /, API under /v1)
    sandbox     http://127.0.0.1:$SANDBOX_PORT   (bundled Xoxoday imitation)
    caller key  $KEY   (every scope)

  try:
    curl -s -X POST http://127.0.0.1:$PORT/v1/ops/getBalance \\
      -H 'Authorization: Bearer $KEY' -H 'content-type: application/json' -d '{}'

  Ctrl-C stops everything.
MSG
# Until Ctrl-C, or until either process stops by itself (then say so and
# stop the other, rather than wait on it for ever).
wait -n "${PIDS[@]}" || true
die "the sandbox or the gateway stopped by itself (see the output above and $DEV_DIR/sandbox.log); stopping"
