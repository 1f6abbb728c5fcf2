#!/usr/bin/env bash
# Idempotent setup: everything plumgate needs to build, run and test.
#
# - wasm32 toolchain: rustup's target when present or installable, otherwise
#   Debian's rustc-web + rust-web-src (build-std) + lld.
# - worker-build and wasm-bindgen-cli, cargo-installed at pinned versions into
#   a cache outside the clone ($HOME/.cache/plumgate/tools) so reruns are free.
# - Node packages from the committed lock file (`npm ci`), which brings Node 22,
#   wrangler, esbuild, binaryen (wasm-opt), playwright-core, and for the
#   TypeScript client (an npm workspace, clients/typescript) typescript and
#   openapi-typescript; @redocly/openapi-core lints the OpenAPI document.
# - The TypeScript client's dist/ (the examples import it), when out of date.
# - With --tests (scripts/test.sh), what only the tests use: Debian's chromium
#   for the browser tests, clippy (rustup's component) for the lint,
#   schemathesis and openapi-spec-validator (PyPI, pinned) in venvs.
#   Development and deployment do without them.
# Nothing is downloaded except registry packages.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

WANT_TESTS=0
for a in "$@"; do [[ "$a" == --tests || "$a" == --browser ]] && WANT_TESTS=1; done

for tool in cargo npm; do
  command -v "$tool" >/dev/null || die "$tool is not installed: plumgate starts from Rust (rustup) and Node.js with npm (README: The two commands)"
done

# 0. A C compiler and linker: cargo links every host binary (the sandbox, the
# tests, the tools below) with `cc`, and a bare Debian image with rustup has none.
command -v cc >/dev/null || apt_install gcc libc6-dev

# 1. wasm32 toolchain
if rustup_has_wasm; then
  log "wasm32 target: rustup"
elif [[ "${PLUMGATE_WASM_TOOLCHAIN:-auto}" != debian ]] && command -v rustup >/dev/null && rustup target add wasm32-unknown-unknown >/dev/null 2>&1 && rustup_has_wasm; then
  log "wasm32 target: rustup (added)"
else
  log "wasm32 target: Debian rustc-web + build-std"
  apt_install rustc-web cargo-web rust-web-src lld-19
  # The Debian path always builds with the size options (Rust 1.92; worker
  # 0.8 needs 1.91): bookworm without its security updates has 1.85, which
  # would fail deep in the build. Said here, by name.
  rustc_has_immediate_abort /usr/bin/rustc ||
    die "$(/usr/bin/rustc --version) (Debian's rustc-web) is older than Rust 1.92, which the build needs: with bookworm-security in apt's sources, run apt-get update && apt-get install --only-upgrade rustc-web cargo-web rust-web-src, then this again"
  # worker-build checks that the target libdir exists; build-std fills nothing in it.
  [[ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ]] || $SUDO mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib
fi
# std's sources, to build std with the worker at the wasm's size options
# (scripts/lib.sh, wasm_build_env). Where rustup cannot download them the
# build goes on without build-std (a larger wasm).
if rustup_has_wasm && ! rustup_has_src; then
  if rustup component add rust-src >/dev/null 2>&1 && rustup_has_src; then
    log "rust-src: added (build-std)"
  else
    log "rust-src: not available from rustup; the wasm is built without build-std"
  fi
fi

# 2. pinned cargo tools, cached outside the clone
mkdir -p "$TOOLS_DIR"
tool_version() { "$TOOLS_DIR/bin/$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1; }
if [[ "$(tool_version worker-build)" != "$WORKER_BUILD_VERSION" ]]; then
  # It links OpenSSL (openssl-sys): headers and pkg-config to build it.
  { command -v pkg-config >/dev/null && pkg-config --exists openssl; } || apt_install pkg-config libssl-dev
  log "cargo install worker-build $WORKER_BUILD_VERSION (first time only, ~3 min)"
  cargo install --quiet --locked --root "$TOOLS_DIR" worker-build --version "$WORKER_BUILD_VERSION"
fi
if [[ "$(tool_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (first time only, ~2 min)"
  # Not --locked: its lock file pins a yanked crate.
  cargo install --quiet --root "$TOOLS_DIR" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
grep -Eq "^wasm-bindgen = (\{ version = )?\"=$WASM_BINDGEN_VERSION\"" Cargo.toml \
  || die "Cargo.toml must pin wasm-bindgen = \"=$WASM_BINDGEN_VERSION\" (the CLI version)"

# 3. node packages from the lock file (re-run only when the lock changes)
STAMP="node_modules/.plumgate-lock.sha256"
LOCK_SUM="$(sha256sum package-lock.json | awk '{print $1}')"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$LOCK_SUM" || ! -x node_modules/.bin/wrangler ]]; then
  log "npm ci"
  # --include=dev: every package here is a devDependency, and NODE_ENV=production would drop them.
  # --include=optional: esbuild and workerd come as optional platform packages, which a user's
  # npmrc with omit=optional would drop.
  npm ci --include=dev --include=optional --no-audit --no-fund --loglevel=error
  echo "$LOCK_SUM" > "$STAMP"
fi

# dev.sh polls the gateway's /healthz with curl.
command -v curl >/dev/null || apt_install curl
# The client's tests make a throwaway certificate to serve HTTPS on loopback.
command -v openssl >/dev/null || apt_install openssl

# 3b. the TypeScript client's build: dist/ is not committed, and the README's
# examples (examples/node-function, examples/worker) import it. Built when
# missing or older than its sources or the OpenAPI document its types come
# from; scripts/test.sh builds it again with its type tests.
CLIENT_DIR=clients/typescript
if [[ ! -f "$CLIENT_DIR/dist/index.js" ]] \
  || [[ -n "$(find "$CLIENT_DIR/src" "$CLIENT_DIR/package.json" crates/core/src/openapi.json -newer "$CLIENT_DIR/dist/index.js" -not -path '*/generated/*' -print -quit)" ]]; then
  log "building the TypeScript client ($CLIENT_DIR/dist, which the examples import)"
  ( wrangler_env; npm run --silent build -w @plumgate/client )
fi

if [[ $WANT_TESTS -eq 0 ]]; then
  log "setup complete"
  exit 0
fi
# A venv at $1. Debian's python3 makes one only with python3-venv
# (ensurepip): installed when the first try fails, whose leftovers go.
make_venv() {
  if ! python3 -m venv "$1" 2>/dev/null; then
    apt_install python3-venv
    rm -rf "$1"
    python3 -m venv "$1"
  fi
}
# 4. browser for the demo-page tests
apt_install chromium
# 4b. clippy for scripts/test.sh's lint: a minimal rustup profile has none.
# Without rustup it cannot be added here; test.sh then names the lint as
# not run.
if ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null && rustup component add clippy >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
    log "clippy: added"
  else
    log "clippy: not available (rustup could not add it); scripts/test.sh skips the clippy lint"
  fi
fi
# --- 5. schemathesis for tests/e2e/schema.test.mjs (issue 4) -----------------
# A pinned schemathesis from PyPI in a venv outside the clone; installed only
# when missing or at another version, so reruns cost nothing.
SCHEMATHESIS_VERSION=4.32.5
VENV_DIR="${PLUMGATE_VENV:-$HOME/.cache/plumgate/venv}"
if [[ "$("$VENV_DIR/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]]; then
  log "pip install schemathesis $SCHEMATHESIS_VERSION into $VENV_DIR (first time only, ~1 min)"
  make_venv "$VENV_DIR"
  "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
# --- end of schemathesis block --------------------------------------------------
# --- 6. openapi-spec-validator for the OpenAPI lint in scripts/test.sh ---------
# Its own venv: it needs newer jsonschema releases than the schemathesis venv
# holds, and must not move schemathesis's dependencies.
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
OPENAPI_VENV_DIR="${PLUMGATE_OPENAPI_VENV:-$HOME/.cache/plumgate/venv-openapi}"
if [[ "$("$OPENAPI_VENV_DIR/bin/openapi-spec-validator" --version 2>/dev/null | awk '{print $NF}')" != "$OPENAPI_SPEC_VALIDATOR_VERSION" ]]; then
  log "pip install openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION into $OPENAPI_VENV_DIR (first time only)"
  rm -rf "$OPENAPI_VENV_DIR"
  make_venv "$OPENAPI_VENV_DIR"
  "$OPENAPI_VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
fi
log "setup complete"
