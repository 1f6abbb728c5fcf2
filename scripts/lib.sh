# Shared helpers for plumgate's scripts. Sourced, never run.
#
# Owns: where cached tools live, how the wasm toolchain is chosen, the
# environment every build needs, and how Debian packages are installed. One
# place, so dev, test, bench and the wrangler build command agree.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${PLUMGATE_TOOLS_DIR:-$HOME/.cache/plumgate/tools}"
WORKER_BUILD_VERSION=0.8.7
# Must equal the wasm-bindgen version pinned in Cargo.toml (checked by setup.sh).
WASM_BINDGEN_VERSION=0.2.130

# The sandbox binary every script and test starts (tests/e2e/harness.mjs,
# bench/*.mjs and dev.sh look for it here), built where they look whatever
# CARGO_TARGET_DIR the user has set.
SANDBOX_BIN="$ROOT/target/release/plumgate-sandbox"
build_sandbox() { CARGO_TARGET_DIR="$ROOT/target" cargo build --release -q -p plumgate-sandbox; }

log() { printf '\033[1;34m[plumgate]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[plumgate] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Debian packages not installed yet, installed as root or through sudo.
# DEBIAN_FRONTEND goes through `env`: set before sudo, its env_reset would
# drop it, and a package's configuration could stop to ask.
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ -z $SUDO ]] || command -v sudo >/dev/null \
    || die "apt packages missing (${missing[*]}): run as root, or install sudo, or install them yourself"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Does rustup's toolchain already carry the wasm32 std?
# PLUMGATE_WASM_TOOLCHAIN=debian forces the Debian fallback (to test it on a
# machine where rustup has the target).
rustup_has_wasm() {
  [[ "${PLUMGATE_WASM_TOOLCHAIN:-auto}" == debian ]] && return 1
  local dir
  dir="$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null)" || return 1
  compgen -G "$dir/libstd-*.rlib" >/dev/null
}

# Does rustup's toolchain carry the std sources (component rust-src), so
# std can be built for wasm32 with the worker (build-std)?
rustup_has_src() {
  [[ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library/std" ]]
}

# Does this rustc (`$1`, or the one on PATH) know `-Cpanic=immediate-abort`
# (Rust 1.92 and later)? An older rustup stable would fail the build with
# it. Asked of rustc itself, not read from its version: a nightly from
# before the option carries 1.92 too.
rustc_has_immediate_abort() {
  RUSTC_BOOTSTRAP=1 "${1:-rustc}" -Zunstable-options -Cpanic=immediate-abort --print cfg >/dev/null 2>&1
}

# Environment for building the worker to wasm32. Picks rustup's target when it
# exists, otherwise Debian's rustc-web with build-std (README: The two commands).
#
# Size (issue 21: the wasm is shipped to every isolate; budget 200 KB gzip):
# - the wasm is built at opt-level "z", the host tools (the sandbox) at the
#   release profile's "s";
# - std is built from source with the worker (build-std; rustup's
#   rust-src, or Debian's rust-web-src), at the same opt-level, with core's
#   size-optimised implementations (`optimize_for_size`) and
#   `-Cpanic=immediate-abort`: a panic traps at once. It already did
#   (`panic = "abort"`, and wasm32-unknown-unknown has no stderr for the
#   panic message), but the message and location formatting stayed in the
#   module. build-std and the panic strategy are unstable options, hence
#   RUSTC_BOOTSTRAP=1, as the Debian path always needed.
# Together about 41 KB of the gzipped wasm when they were added (247 -> 206 KB
# on 2026-12-01), for about +1.5 % CPU per request in paired runs of
# bench/ab.mjs (BENCHMARKS.md, seventh session); "z" was 28 KB of that.
# Without rust-src (rustup cannot download it) the build still works, only
# without build-std: then about 16 KB larger.
wasm_build_env() {
  export CARGO_TARGET_DIR="$ROOT/target/wasm"
  export WASM_BINDGEN_BIN="$TOOLS_DIR/bin/wasm-bindgen"
  export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
  export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
  export PATH="$TOOLS_DIR/bin:$PATH"
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
  if rustup_has_wasm; then
    if ! rustup_has_src; then
      log "rustup has no rust-src: building without build-std (a larger wasm; scripts/setup.sh adds it where rustup can download)"
    elif ! rustc_has_immediate_abort; then
      log "$(rustc --version) predates -Cpanic=immediate-abort (Rust 1.92): building without build-std (a larger wasm; \`rustup update stable\` for the shipped size)"
    else
      wasm_size_flags
    fi
    return 0
  fi
  # Debian toolchain: /usr/bin must win over ~/.cargo/bin, because
  # worker-build runs bare `cargo` and `rustc`.
  export PATH="/usr/bin:$PATH"
  export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld
  wasm_size_flags
}

# build-std with the size options above (both toolchains), and LLVM's
# inliner held back below opt-level "z"'s own threshold (-inline-threshold=-5):
# 0.7 KB off the gzipped wasm (200,081 -> 199,386 B, 2026-12-04) at no CPU
# cost bench/ab.mjs could see (24 pairs on getOrderHistory: 0.996, cheaper
# in 12 of 24; 12 on the getVouchers cache hit: 1.000, 6 of 12).
wasm_size_flags() {
  export RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Cllvm-args=-inline-threshold=-5"
}

# Offline, quiet wrangler.
wrangler_env() {
  export WRANGLER_SEND_METRICS=false
  export WRANGLER_HIDE_BANNER=true
  export CLOUDFLARE_CF_FETCH_ENABLED=false
  export PATH="$ROOT/node_modules/.bin:$PATH"
}
