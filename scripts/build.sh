#!/usr/bin/env bash
# Build the worker to build/index.js + build/index_bg.wasm (release profile).
# Used as wrangler's [build] command, so `npx wrangler dev` and
# `npx wrangler deploy` build the same way. Set PLUMGATE_SKIP_BUILD=1 to reuse
# an existing build (the test harness builds once, then starts many workers).
#
# After worker-build, three steps keep what is shipped small:
# - one more wasm-opt pass, at -Oz: worker-build's own pass is -Os; -Oz
#   after it takes 2.2 KB more off the gzipped wasm, with no change in the
#   hot path's CPU per request (bench/ab.mjs, 12 pairs: 0.987x), for ~4 s
#   of build time;
#   Two more options in that pass take 1.4 KB more off: `--gufa` (binaryen's
#   whole-program flow analysis: what values can reach each place) and
#   `--low-memory-unused`, which lets the optimizer fold added constants
#   into load and store offsets. It assumes no access reaches the lowest
#   1 KiB of memory by wrapping around 2^32: Rust computes no such address,
#   and that KiB is the far end of the 1 MiB stack (the linker puts the
#   stack first: `__stack_pointer` starts at 1 MiB, the data above it);
# - worker-build runs wasm-opt with `--debuginfo`, which keeps the "name"
#   section (every function's Rust name: ~40 KB of the gzipped wasm, used
#   only by profilers and stack traces); it is stripped in the same pass,
#   with the producers and target-features sections (tools' notes: which
#   compiler, which wasm features it used; the runtime reads neither).
#   The wasm-opt command line states the features itself. PLUMGATE_KEEP_NAMES=1 keeps both (for
#   twiggy or a CPU profile with Rust names).
# - the OpenAPI document is served from the static assets, not embedded in
#   the wasm (~20 KB gzipped): `www/openapi.json` (not in git) is written
#   here from crates/core/src/openapi.json without its indentation.
# - the exports of six classes that workers-rs and wasm-streams declare
#   with #[wasm_bindgen] and plumgate never uses (ContainerStartupOptions,
#   MinifyConfig, R2Range, IntoUnderlying{Source,ByteSource,Sink}) are
#   removed in the same pass. Exports are roots, so their code stayed
#   (~8.5 KB raw, ~1.9 KB gzipped). JavaScript can only reach them through an
#   object the wasm hands out; the classes have no constructor, and
#   index.js wraps no wasm object at all (no `__wrap`), which is checked
#   below: the build fails if a change starts handing such objects out.
#   The closures the stream classes' methods put in the function table are
#   taken out of it first (scripts/prune-table.mjs), or the exported table
#   would keep their code (~9 KB raw, 3.5 KB gzipped); so are the closure
#   shims of closure types no JavaScript adapter calls (~40 shims of js_sys
#   callbacks plumgate never makes: 2.7 KB raw, 0.67 KB gzipped). The text that code
#   formatted (every `std::io::ErrorKind`'s) stays in the data, which the
#   optimizer never trims: once the optimized code cannot reach it, it is
#   zeroed (scripts/zero-dead-text.mjs: ~0.48 KB gzipped).
# - the ~130 functions the wasm imports from index.js, and the ~30 exports
#   index.js reads (closure shims, allocator, the classes' methods), get
#   short names in both files (scripts/short-imports.mjs): wasm-bindgen's
#   names carry hashes, ~3 KB of the gzipped wasm; their module,
#   `./index_bg.js` in each import, becomes `a` (0.13 KB).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [[ "${PLUMGATE_SKIP_BUILD:-0}" == 1 && -f build/index.js ]]; then
  exit 0
fi
[[ -x "$TOOLS_DIR/bin/worker-build" ]] || die "worker-build is missing: run scripts/setup.sh first"
wasm_build_env
wrangler_env
log "building worker (wasm32, release)"
worker-build --release "$@"
strip=(--strip-debug --strip-producers --strip-target-features)
unused=()
for class in containerstartupoptions minifyconfig r2range intounderlying; do
  unused+=(--remove-exports "--pass-arg=remove-exports@*${class}*")
done
grep -q "__wrap" build/index.js \
  && die "build/index.js wraps wasm objects (__wrap): check that none is of a class whose exports scripts/build.sh removes"
[[ "${PLUMGATE_KEEP_NAMES:-0}" == 1 ]] && strip=(--debuginfo)
node scripts/prune-table.mjs build/index_bg.wasm
"$WASM_OPT_BIN" build/index_bg.wasm -o build/index_bg.wasm "${unused[@]}" --low-memory-unused --gufa -Oz -Oz "${strip[@]}" \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
  --enable-multivalue --enable-reference-types --enable-exception-handling
node scripts/zero-dead-text.mjs build/index_bg.wasm
node scripts/short-imports.mjs build/index_bg.wasm build/index.js
node -e 'const fs = require("fs"); const [src, dst] = process.argv.slice(1);
fs.writeFileSync(dst, JSON.stringify(JSON.parse(fs.readFileSync(src, "utf8"))));' \
  crates/core/src/openapi.json www/openapi.json
ls -l build/index_bg.wasm 2>/dev/null | awk '{print "[plumgate] index_bg.wasm " $5 " bytes"}' >&2 || true
