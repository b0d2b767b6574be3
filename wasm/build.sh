#!/usr/bin/env bash
# Builds the npm package's WebAssembly into wasm/pkg/ (git-ignored), once for Node and browsers:
#   pkg/strata_wasm_bg.wasm  the module
#   pkg/strata_wasm.js       wasm-bindgen --target web glue (an ES module): js/web.js loads the
#                            module with an async init(), js/node.js reads it from disk with
#                            initSync() on import
#   pkg/types.d.ts           the glue's types without the web-only init() part (InitInput names
#                            RequestInfo, BufferSource…): what the Node entry and the plugins' types import
#
#   wasm/build.sh          release build (what users get, `npm pack` runs it: prepack): no name
#                          section, then wasm-opt -Oz (binaryen, from wasm/node_modules: npm ci)
#   wasm/build.sh --dev    debug build (faster to compile; what the tests use), no wasm-opt
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at the version Cargo.lock names
# (scripts/test-all.sh installs both). Honours CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

profile=release
cargo_flags=(--release)
bindgen_flags=(--remove-name-section --remove-producers-section)
if [[ "${1:-}" == --dev ]]; then
    profile=debug
    cargo_flags=()
    bindgen_flags=()
fi

cargo build --target wasm32-unknown-unknown -p strata-wasm --lib "${cargo_flags[@]}"
target_dir="${CARGO_TARGET_DIR:-target}"
wasm="$target_dir/wasm32-unknown-unknown/$profile/strata_wasm.wasm"

pkg="$here/pkg"
rm -rf "$pkg"
wasm-bindgen --target web --out-dir "$pkg" "${bindgen_flags[@]}" "$wasm"

if [[ "$profile" == release ]]; then
    wasm_opt="$here/node_modules/.bin/wasm-opt"
    if [[ ! -x "$wasm_opt" ]]; then
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    before=$(wc -c <"$pkg/strata_wasm_bg.wasm")
    # The features rustc's wasm32 target enables by default; wasm-opt must accept them.
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$pkg/strata_wasm_bg.wasm" -o "$pkg/strata_wasm_bg.opt.wasm"
    mv "$pkg/strata_wasm_bg.opt.wasm" "$pkg/strata_wasm_bg.wasm"
    echo "wasm-opt -Oz: $before -> $(wc -c <"$pkg/strata_wasm_bg.wasm") bytes"
fi

# The types without the web-only init section (everything from `export type InitInput` on), and
# showBackup typed by its checkFiles option (wasm-bindgen declares one signature per method).
awk '/^export type InitInput/ { exit } { print }' "$pkg/strata_wasm.d.ts" >"$pkg/types.d.ts"
show='showBackup(options: ShowBackupOptions): Promise<BackupContents[]>;'
grep -qF "$show" "$pkg/types.d.ts" || {
    echo "error: build.sh: no '$show' in the generated types (did the signature change?)" >&2
    exit 1
}
overload='showBackup(options: ShowBackupOptions \& { checkFiles: true }): Promise<FileProblem[]>;'
for f in "$pkg/types.d.ts" "$pkg/strata_wasm.d.ts"; do
    perl -pi -e "s/^(\s*)\Q$show\E/\$1$overload\n\$1$show/" "$f"
done
echo "built $profile: $(du -h "$pkg/strata_wasm_bg.wasm" | cut -f1) of wasm in $pkg"
