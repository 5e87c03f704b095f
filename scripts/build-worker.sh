#!/usr/bin/env bash
# Builds the Worker into build/ (index.js and its wasm) with worker-build, using the wasm-bindgen CLI and
# binaryen's wasm-opt that scripts/install-deps.sh installed (worker-build would download them otherwise).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}
export WASM_OPT_BIN=${WASM_OPT_BIN:-$ROOT/node_modules/.bin/wasm-opt}
mkdir -p .local
worker-build --release > .local/worker-build.log 2>&1 || { cat .local/worker-build.log >&2; echo "build-worker: failed" >&2; exit 1; }
printf 'worker built: build/index_bg.wasm, %s bytes\n' "$(stat -c %s build/index_bg.wasm)"
