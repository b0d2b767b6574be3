#!/usr/bin/env bash
# Builds the npm package's WebAssembly into wasm/pkg/ (git-ignored):
#   pkg/node/  wasm-bindgen --target nodejs  (CommonJS; js/node.js re-exports it as ES modules)
#   pkg/web/   wasm-bindgen --target web     (ES module with an async init(); js/web.js)
#
#   wasm/build.sh          release build (what users get; what the benchmark measures)
#   wasm/build.sh --dev    debug build (faster to compile)
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at the version Cargo.lock names
# (scripts/test-all.sh installs both). Honours CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

profile=release
cargo_flags=(--release)
if [[ "${1:-}" == --dev ]]; then
    profile=debug
    cargo_flags=()
fi

cargo build --target wasm32-unknown-unknown -p strata-wasm --lib "${cargo_flags[@]}"
target_dir="${CARGO_TARGET_DIR:-target}"
wasm="$target_dir/wasm32-unknown-unknown/$profile/strata_wasm.wasm"

rm -rf "$here/pkg/node" "$here/pkg/web"
wasm-bindgen --target nodejs --out-dir "$here/pkg/node" "$wasm"
wasm-bindgen --target web --out-dir "$here/pkg/web" "$wasm"
# The package is "type": "module"; the nodejs output is CommonJS.
echo '{ "type": "commonjs" }' >"$here/pkg/node/package.json"
echo "built $profile: $(du -h "$here/pkg/web/strata_wasm_bg.wasm" | cut -f1) of wasm in $here/pkg/{node,web}"
