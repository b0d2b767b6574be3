#!/usr/bin/env bash
# Builds the npm package's WebAssembly into wasm/pkg/ (git-ignored), once for Node and browsers:
#   pkg/strata_wasm_bg.wasm  the module
#   pkg/strata_wasm.js       wasm-bindgen --target web glue (an ES module): js/web.js loads the
#                            module with an async init(), js/node.js reads it from disk with
#                            initSync() on import
#   pkg/types.d.ts           the glue's types without the web-only init() part (InitInput names
#                            RequestInfo, BufferSource…): what the Node entry and the plugins' types import
#
#   wasm/build.sh          release build (what users get; `npm pack` and `npm publish` run it:
#                          prepack): no name or producers section, then wasm-opt -Oz (binaryen
#                          from npm, pinned; needs npm and the registry on first use)
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
    # binaryen's wasm-opt, from npm at a pinned version (fetched into npm's cache on first use;
    # Debian's binaryen 108 breaks wasm-bindgen's externref table). Only release builds use it.
    wasm_opt=(npx --yes --package=binaryen@132.0.0 -- wasm-opt)
    before=$(wc -c <"$pkg/strata_wasm_bg.wasm")
    # The features rustc's wasm32 target enables by default, which wasm-opt must accept.
    "${wasm_opt[@]}" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$pkg/strata_wasm_bg.wasm" -o "$pkg/strata_wasm_bg.opt.wasm"
    mv "$pkg/strata_wasm_bg.opt.wasm" "$pkg/strata_wasm_bg.wasm"
    echo "$("${wasm_opt[@]}" --version): $before -> $(wc -c <"$pkg/strata_wasm_bg.wasm") bytes"
fi

# The types without the web-only init section (everything from `export type InitInput` on), and
# showBackup typed by its checkFiles option (wasm-bindgen declares one signature per method).
# `[Symbol.dispose]` goes too: it needs lib esnext.disposable (free() is the same call).
awk '/^export type InitInput/ { exit } /\[Symbol\.dispose\]\(\)/ { next } { print }' "$pkg/strata_wasm.d.ts" >"$pkg/types.d.ts"
show='showBackup(options: ShowBackupOptions): Promise<BackupContents[]>;'
grep -qF "$show" "$pkg/types.d.ts" || {
    echo "error: build.sh: no '$show' in the generated types (did the signature change?)" >&2
    exit 1
}
overload='showBackup(options: ShowBackupOptions & { checkFiles: true }): Promise<FileProblem[]>;'
# free() documented (wasm-bindgen generates it bare).
free_doc='/** Releases the WebAssembly memory of this Strata now (else the garbage collector does, eventually). Call it once no call of it is running; a later call fails with code PRECONDITION, a second free() does nothing. */'
for f in "$pkg/types.d.ts" "$pkg/strata_wasm.d.ts"; do
    SHOW="$show" OVERLOAD="$overload" FREE_DOC="$free_doc" perl -pi -e '
        s/^(\s*)\Q$ENV{SHOW}\E/$1$ENV{OVERLOAD}\n$1$ENV{SHOW}/;
        s/^(\s*)free\(\): void;/$1$ENV{FREE_DOC}\n$1free(): void;/' "$f"
done
echo "built $profile: $(du -h "$pkg/strata_wasm_bg.wasm" | cut -f1) of wasm in $pkg"
