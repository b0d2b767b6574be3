#!/usr/bin/env bash
# Runs every test of strata: the one command for a new machine, and what CI runs (.ci/run).
#
#   scripts/test-all.sh              every step, in order
#   scripts/test-all.sh clippy test  only the named steps (after the installs); --list names them
#
# First it installs what it needs, idempotently (quick when everything is there): the
# wasm32-unknown-unknown target, rustfmt and clippy, and wasm-bindgen-cli at exactly the
# wasm-bindgen version in Cargo.lock. Node.js (>= 19) must already be on the machine.
#
# Every step runs even when an earlier one failed, so one run shows every failure; the exit
# status is non-zero if any step failed. STRATA_FAIL_FAST=1 stops at the first failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi

# A CI run builds once from scratch: incremental compilation would only add work.
if [[ "${CI:-}" == true ]]; then
    export CARGO_INCREMENTAL=0
fi

WASM_TARGET=wasm32-unknown-unknown
# Crates the core must never depend on, on any target: it does no IO and names no runtime.
FORBIDDEN_IN_CORE='tokio|object_store|reqwest|mio|hyper'

# The steps, in order. Later steps (a headless Chromium run of the wasm tests, node:test
# suites of the JS package, real storage servers) are added in the marked spot below.
STEPS=(fmt clippy architecture storage-servers test wasm-build wasm-parity wasm-test-core wasm-test-wasm
       wasm-test-chromium js wasm-example)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
header() { printf '\n==== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# Installs
# ---------------------------------------------------------------------------------------------

# Package installs that only download and unpack (pip, npm; never apt, whose locks the steps'
# own installs take) start in the background when the script starts, and the step that needs
# one waits for it: they then cost no wall time beside clippy's compile. Their output is shown
# when they are waited for.
declare -A PREFETCH=()

prefetch() {
    local name=$1 log
    shift
    log=$(mktemp)
    ("$@") </dev/null >"$log" 2>&1 &
    PREFETCH[$name]="$!:$log"
}

# Waits for the prefetch `name` and shows its output; runs "$@" itself if none was started.
await_prefetch() {
    local name=$1 entry status=0
    shift
    entry=${PREFETCH[$name]:-}
    if [[ -z "$entry" ]]; then
        "$@"
        return
    fi
    unset "PREFETCH[$name]"
    wait "${entry%%:*}" || status=$?
    cat "${entry#*:}"
    rm -f "${entry#*:}"
    ((status == 0)) || echo "error: $name (in the background) failed: exit status $status" >&2
    return "$status"
}

install_rust_parts() {
    if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
        rustup target add "$WASM_TARGET"
    fi
    local c
    for c in rustfmt clippy; do
        if ! rustup component list --installed | grep -q "^$c"; then
            rustup component add "$c"
        fi
    done
    echo "rust: $(rustc --version); targets: $(rustup target list --installed | tr '\n' ' ')"
}

# The wasm-bindgen version Cargo.lock resolves: wasm-bindgen-cli must match it exactly.
locked_wasm_bindgen_version() {
    [[ -f Cargo.lock ]] || cargo generate-lockfile >/dev/null
    awk '/^\[\[package\]\]/ { name = "" }
         /^name = / { name = $3 }
         /^version = / && name == "\"wasm-bindgen\"" { gsub(/"/, "", $3); print $3; exit }' Cargo.lock
}

install_wasm_bindgen_cli() {
    local want have=""
    want=$(locked_wasm_bindgen_version)
    if [[ -z "$want" ]]; then
        echo "error: no wasm-bindgen package in Cargo.lock" >&2
        return 1
    fi
    if command -v wasm-bindgen >/dev/null && command -v wasm-bindgen-test-runner >/dev/null; then
        have=$(wasm-bindgen --version | awk '{ print $2 }')
    fi
    if [[ "$have" == "$want" ]]; then
        echo "wasm-bindgen-cli $have (matches Cargo.lock)"
        return 0
    fi
    echo "installing wasm-bindgen-cli $want (found: ${have:-none})"
    # --locked first; its lock file can name a dependency version the registry no longer
    # serves (a yanked release), in which case resolve afresh within the same CLI version.
    if ! cargo install wasm-bindgen-cli --version "$want" --locked; then
        echo "cargo install --locked failed; retrying with a fresh dependency resolution"
        cargo install wasm-bindgen-cli --version "$want"
    fi
    wasm-bindgen --version
}

check_node() {
    if ! command -v node >/dev/null; then
        echo "error: Node.js is not installed; the wasm tests run under it (wasm-bindgen-test-runner)." >&2
        echo "       Install Node.js 19 or newer (e.g. apt-get install nodejs) and run this again." >&2
        return 1
    fi
    local v major
    v=$(node --version)
    major=${v#v}
    major=${major%%.*}
    if ((major < 19)); then
        echo "error: Node.js $v is too old: the wasm tests need 19 or newer (global crypto.getRandomValues)." >&2
        return 1
    fi
    echo "node $v"
}

# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------

step_fmt() { cargo fmt --all -- --check; }

step_clippy() { cargo clippy --workspace --all-targets -- -D warnings; }

# The core's normal dependency tree, for the host and for wasm32, names no runtime, HTTP client
# or object store.
step_architecture() {
    local target tree bad status=0
    for target in host "$WASM_TARGET"; do
        local args=(-p strata-core -e normal)
        [[ "$target" == host ]] || args+=(--target "$target")
        tree=$(cargo tree "${args[@]}") || return 1
        bad=$(grep -E "(^|[^A-Za-z0-9_-])($FORBIDDEN_IN_CORE)(-[A-Za-z0-9_-]+)? v[0-9]" <<<"$tree" || true)
        if [[ -n "$bad" ]]; then
            echo "error: strata-core ($target) depends on crates it must not use:" >&2
            echo "$bad" >&2
            echo "  (see why: cargo tree ${args[*]} -i <crate>)" >&2
            status=1
        else
            echo "strata-core ($target): $(wc -l <<<"$tree") dependency lines, none of: ${FORBIDDEN_IN_CORE//|/, }"
        fi
    done
    return "$status"
}

# The bench's smoke test (tests/src/bench.rs) runs restic on the same data as strata: install
# Debian's restic when missing, and require it (STRATA_REQUIRE_RESTIC=1) so the test fails, not
# skips restic, if it is not there.
install_restic() {
    if ! command -v restic >/dev/null; then
        apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 restic >/dev/null
    fi
    restic version
}

# strata-etcd builds its gRPC client with protoc, and its tests (and the CLI's etcd tests) start
# real etcd clusters on loopback: install Debian's etcd-server, etcd-client and
# protobuf-compiler when missing (before any cargo build), and require etcd
# (STRATA_REQUIRE_ETCD=1) in the test step so those tests fail, not skip, without it.
install_etcd() {
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null || ! command -v protoc >/dev/null; then
        apt-get update -qq &&
            apt-get install -y -qq -o DPkg::Lock::Timeout=600 etcd-server etcd-client protobuf-compiler >/dev/null
    fi
    echo "$(etcd --version | head -1); $(protoc --version)"
}

# `cargo test --workspace`, with several test binaries at a time (scripts/run-tests.py): most of
# them wait on servers, child processes and fsyncs, and one at a time left a core idle for half
# the step.
step_test() {
    install_restic && STRATA_REQUIRE_RESTIC=1 STRATA_REQUIRE_ETCD=1 scripts/run-tests.py --doc --workspace
}

step_wasm-build() { cargo build --target "$WASM_TARGET" -p strata-core -p strata-wasm; }

# Keeps the core's tests running on wasm32 too (STYLE.md: "the same tests on wasm32"):
# - every core file with tests imports quinn's alias, so its #[test]s are wasm-bindgen tests:
#       #[cfg(all(target_family = "wasm", target_os = "unknown"))]
#       use wasm_bindgen_test::wasm_bindgen_test as test;
# - every #[should_panic] test is ignored on wasm32, where a panic aborts without unwinding and
#   leaves futures' block_on guard set, failing every later test of the same binary:
#       #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
step_wasm-parity() {
    local files missing bad
    files=$(find core/src core/tests -name '*.rs' | sort)
    # shellcheck disable=SC2086
    missing=$(grep -lE '#\[test\]|proptest!' $files | xargs -r grep -L 'wasm_bindgen_test::wasm_bindgen_test as test' || true)
    # shellcheck disable=SC2086
    bad=$(awk 'FNR == 1 { p1 = p2 = p3 = "" }
               /#\[should_panic/ && (p1 p2 p3) !~ /target_family = "wasm".*ignore/ { print FILENAME ":" FNR }
               { p3 = p2; p2 = p1; p1 = $0 }' $files)
    if [[ -n "$missing" ]]; then
        echo "error: these core files have tests but not the wasm alias line (add it in each test module):" >&2
        echo "$missing" | sed 's/^/    /' >&2
    fi
    if [[ -n "$bad" ]]; then
        echo "error: these #[should_panic] tests are not ignored on wasm32 (add the cfg_attr line above):" >&2
        echo "$bad" | sed 's/^/    /' >&2
    fi
    [[ -z "$missing$bad" ]] && echo "every core test file runs under wasm-bindgen-test; should_panic tests are native-only"
}

# The core's unit and integration tests, compiled for wasm32 and run under Node, several
# binaries at a time (scripts/run-tests.py: Node runs each on one core).
step_wasm-test-core() {
    scripts/run-tests.py --runner wasm-bindgen-test-runner -p strata-core --target "$WASM_TARGET" --lib --tests
}

# The wasm crate's own tests (its unit tests and wasm/tests/*.rs), under Node; the browser-only
# suite (wasm/tests/browser_adapters.rs) runs in step wasm-test-chromium.
step_wasm-test-wasm() {
    WASM_BINDGEN_TEST_ONLY_NODE=1 scripts/run-tests.py --runner wasm-bindgen-test-runner \
        -p strata-wasm --target "$WASM_TARGET" --lib --tests
}

# ---- LATER STEPS GO HERE ---------------------------------------------------------------------
# Add a function step_<name> and append <name> to STEPS above. Planned:
#   wasm-test-chromium  the same wasm tests in headless Chromium (Debian's chromium and
#                       chromium-driver; installs go in the install section above)
#   js                  node:test suites of the npm package built from wasm/
#   storage-servers     the storage conformance suite against real local servers
# ----------------------------------------------------------------------------------------------

# ---- storage-servers: real S3, Azure and WebDAV servers on loopback for the `test` step ------
# Installs (idempotently) and starts, on free 127.0.0.1 ports:
#   S3      moto_server           PyPI moto[server]
#   Azure   azurite-blob          npm azurite (tests/servers/package.json + lockfile, npm ci)
#   WebDAV  rclone serve webdav   Debian's rclone, with a random basic-auth password
# creates the buckets strata-a and strata-b and the container strata-test, and exports
# STRATA_TEST_S3_ENDPOINT, STRATA_TEST_AZURE_ENDPOINT, STRATA_TEST_AZURE_ACCOUNT_KEY and
# STRATA_TEST_WEBDAV_URL for the steps after it, with STRATA_REQUIRE_SERVERS=1: the server tests
# (native/tests/storage_servers.rs, storage_backups.rs) then fail, not skip, if one is missing.
# The step runs before `test`, which runs those tests; `scripts/test-all.sh storage-servers test`
# runs just them. The servers stop when the script exits. (GCS has no emulator object_store's
# client works with; see storage_servers.rs. gs:// is covered by URI tests.)
STORAGE_SERVERS_DIR=""
STORAGE_SERVER_PIDS=()

# The servers' pip and npm packages: no apt, so it can run in the background (see prefetch).
install_server_packages() {
    if ! command -v moto_server >/dev/null || ! python3 -c 'import moto, flask_cors, azure.storage.blob' 2>/dev/null; then
        python3 -m pip install --quiet 'moto[server]' azure-storage-blob
    fi
    if [[ ! -x tests/servers/node_modules/.bin/azurite-blob ]]; then
        (cd tests/servers && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

install_storage_servers() {
    await_prefetch server-packages install_server_packages || return 1
    if ! command -v rclone >/dev/null; then
        apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 rclone >/dev/null
    fi
    echo "moto $(python3 -c 'import moto; print(moto.__version__)'), azurite $(tests/servers/node_modules/.bin/azurite-blob --version), $(rclone version | head -1)"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until `curl` gets any HTTP answer from $1 (at most 60 s).
wait_for_http() {
    local i
    for i in $(seq 1 120); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.5
    done
    echo "error: no server answered at $1 within 60 s" >&2
    return 1
}

stop_storage_servers() {
    local pid
    for pid in "${STORAGE_SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    STORAGE_SERVER_PIDS=()
    [[ -n "$STORAGE_SERVERS_DIR" ]] && rm -rf "$STORAGE_SERVERS_DIR"
    STORAGE_SERVERS_DIR=""
}

start_storage_servers() {
    stop_storage_servers
    STORAGE_SERVERS_DIR=$(mktemp -d)
    # Added to (not replacing) any EXIT trap an earlier step set.
    local previous
    previous=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
    # shellcheck disable=SC2064
    trap "stop_storage_servers${previous:+; $previous}" EXIT

    local s3_port azure_port dav_port azure_key dav_password logs="$STORAGE_SERVERS_DIR/logs"
    mkdir -p "$logs" "$STORAGE_SERVERS_DIR/azurite" "$STORAGE_SERVERS_DIR/webdav"
    s3_port=$(free_port)
    azure_port=$(free_port)
    dav_port=$(free_port)
    azure_key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
    dav_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

    moto_server -H 127.0.0.1 -p "$s3_port" >"$logs/moto.log" 2>&1 &
    STORAGE_SERVER_PIDS+=($!)
    AZURITE_ACCOUNTS="strata:$azure_key" tests/servers/node_modules/.bin/azurite-blob \
        --blobHost 127.0.0.1 --blobPort "$azure_port" --location "$STORAGE_SERVERS_DIR/azurite" \
        --skipApiVersionCheck --loose --silent >"$logs/azurite.log" 2>&1 &
    STORAGE_SERVER_PIDS+=($!)
    rclone serve webdav "$STORAGE_SERVERS_DIR/webdav" --addr "127.0.0.1:$dav_port" \
        --user strata --pass "$dav_password" --config /dev/null >"$logs/rclone.log" 2>&1 &
    STORAGE_SERVER_PIDS+=($!)

    wait_for_http "http://127.0.0.1:$s3_port/" &&
        wait_for_http "http://127.0.0.1:$azure_port/" &&
        wait_for_http "http://127.0.0.1:$dav_port/" || {
        tail -n 20 "$logs"/*.log >&2
        return 1
    }
    local bucket
    for bucket in strata-a strata-b; do
        curl -sf -o /dev/null -X PUT "http://127.0.0.1:$s3_port/$bucket" || { echo "error: cannot create bucket $bucket" >&2; return 1; }
    done
    python3 - "$azure_port" "$azure_key" <<'PY' || return 1
import sys
from azure.storage.blob import BlobServiceClient
port, key = sys.argv[1], sys.argv[2]
conn = f"DefaultEndpointsProtocol=http;AccountName=strata;AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/strata;"
BlobServiceClient.from_connection_string(conn).create_container("strata-test")
PY
    export STRATA_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    export STRATA_TEST_AZURE_ENDPOINT="http://127.0.0.1:$azure_port/strata"
    export STRATA_TEST_AZURE_ACCOUNT_KEY="$azure_key"
    export STRATA_TEST_WEBDAV_URL="http://strata:$dav_password@127.0.0.1:$dav_port"
    export STRATA_REQUIRE_SERVERS=1
    echo "S3 (moto) at $STRATA_TEST_S3_ENDPOINT, Azure (Azurite) at $STRATA_TEST_AZURE_ENDPOINT, WebDAV (rclone) at http://127.0.0.1:$dav_port"
}

step_storage-servers() {
    install_storage_servers && start_storage_servers
}

# ---- wasm package (wasm/): headless Chromium, the npm package, the browser example ------------
#   wasm-test-chromium  the wasm crate's wasm-bindgen tests in headless Chromium
#                       (Debian's chromium + chromium-driver, driven by wasm-bindgen-test-runner),
#                       including wasm/tests/browser_adapters.rs (OPFS, IndexedDB). The core's
#                       tests run on wasm32 under Node only (wasm-test-core): the core does no IO
#                       and reaches no host API, so a browser runs the same code Node does; what
#                       differs in a browser (storage adapters, randomness, the clock, fetch) lives
#                       in the wasm crate, whose tests run here. (Running the core's tests a
#                       second time in Chromium cost about a minute of the 12-minute CI budget.)
#   js                  builds the npm package (wasm/build.sh --dev: --target nodejs and --target web)
#                       and the CLI, type-checks the TypeScript types, and runs the package's
#                       node:test suites (wasm/tests/js/: full + incremental + encrypted restores
#                       through JS storage plugins, a JS KV plugin, interop with the native CLI)
#   wasm-example        the browser example (wasm/examples/browser/) in headless Chromium through
#                       playwright-core; saves a screenshot to <target>/wasm-example/
# npm packages come from wasm/package-lock.json (npm ci); playwright drives Debian's chromium
# (it downloads no browser).

# Debian's chromium and chromium-driver, installed when missing.
ensure_chromium() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        return 0
    fi
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || {
            echo "error: chromium and chromium-driver are missing: apt-get install chromium chromium-driver" >&2
            return 1
        }
        sudo=(sudo)
    fi
    echo "installing chromium and chromium-driver"
    "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            chromium chromium-driver >/dev/null || return 1
    chromedriver --version
}

# wasm/node_modules from the lock file, when missing or older than it.
ensure_wasm_npm() {
    if [[ ! -f wasm/node_modules/.package-lock.json || wasm/package-lock.json -nt wasm/node_modules/.package-lock.json ]]; then
        (cd wasm && npm ci --no-audit --no-fund --loglevel=error) || return 1
    fi
}

step_wasm-test-chromium() {
    ensure_chromium || return 1
    local dir status=0
    dir=$(mktemp -d)
    # Capabilities for chromedriver (the runner adds --headless and --no-sandbox). No
    # --user-data-dir: chromedriver gives every session a fresh temporary profile.
    cat >"$dir/webdriver.json" <<EOF
{ "goog:chromeOptions": { "binary": "$(command -v chromium)", "args": ["--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] } }
EOF
    CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_TEST_WEBDRIVER_JSON="$dir/webdriver.json" \
        WASM_BINDGEN_USE_BROWSER=1 WASM_BINDGEN_TEST_ONLY_WEB=1 WASM_BINDGEN_TEST_TIMEOUT=900 \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
        cargo test -p strata-wasm --target "$WASM_TARGET" --lib --tests --no-fail-fast || status=$?
    rm -rf "$dir"
    return "$status"
}

# The package's tests use the debug build of the wasm (wasm/build.sh --dev): the wasm-build step
# has compiled it already, while a release build would compile every dependency again for
# wasm32 (about 80 s of the 12-minute CI budget). The release build is what users get
# (`npm run build`) and what the benchmark measures; it is the same code.
# The interop tests run the CLI, target/debug/strata: the test step's build (`cargo test
# --workspace --no-run`, a no-op after it) has made it. `cargo build -p strata-native --bin
# strata` would build it again with fewer features unified and recompile a dozen crates for it
# (about 30 s of the 12-minute CI budget).
step_js() {
    # Test files three at a time (Node >= 20.10; older ones run them one at a time).
    local concurrency=()
    if node --help | grep -- --test-concurrency >/dev/null; then concurrency=(--test-concurrency=3); fi
    await_prefetch wasm-npm ensure_wasm_npm && wasm/build.sh --dev && cargo test --workspace --no-run --quiet || return 1
    (cd wasm && npx --no-install tsc -p tests/types && npx --no-install tsc -p tests/types/tsconfig.es2023.json &&
        echo "TypeScript types: ok (also with lib es2023 only)" && node --test "${concurrency[@]}" tests/js/*.test.js)
}

step_wasm-example() {
    ensure_chromium && await_prefetch wasm-npm ensure_wasm_npm && wasm/build.sh --dev || return 1
    (cd wasm && CHROMIUM_BIN="$(command -v chromium)" node --test tests/browser/*.test.js)
}

# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

main() {
    local selected=("${STEPS[@]}")
    if (($# > 0)); then
        if [[ "$1" == --list ]]; then
            printf '%s\n' "${STEPS[@]}"
            return 0
        fi
        local s
        for s in "$@"; do
            if ! declare -F "step_$s" >/dev/null; then
                echo "error: unknown step '$s'; steps: ${STEPS[*]}" >&2
                return 2
            fi
        done
        selected=("$@")
    fi

    local start t0 name
    start=$(now)
    header "install: rust target and components"
    t0=$(now)
    install_rust_parts
    echo "---- install rust parts: $(elapsed "$t0")"
    header "install: wasm-bindgen-cli"
    t0=$(now)
    install_wasm_bindgen_cli
    echo "---- install wasm-bindgen-cli: $(elapsed "$t0")"
    header "install: etcd and protoc"
    t0=$(now)
    install_etcd
    echo "---- install etcd: $(elapsed "$t0")"
    header "check: node"
    check_node
    local wanted=" ${selected[*]} "
    if [[ "$wanted" == *" storage-servers "* ]]; then
        prefetch server-packages install_server_packages
    fi
    if [[ "$wanted" == *" js "* || "$wanted" == *" wasm-example "* ]]; then
        prefetch wasm-npm ensure_wasm_npm
    fi

    local summary=() failed=()
    for name in "${selected[@]}"; do
        header "step: $name"
        t0=$(now)
        if "step_$name"; then
            summary+=("$(printf '  %-18s ok      %s' "$name" "$(elapsed "$t0")")")
            echo "---- $name: ok ($(elapsed "$t0"))"
        else
            summary+=("$(printf '  %-18s FAILED  %s' "$name" "$(elapsed "$t0")")")
            failed+=("$name")
            echo "---- $name: FAILED ($(elapsed "$t0"))"
            if [[ "${STRATA_FAIL_FAST:-0}" == 1 ]]; then
                break
            fi
        fi
    done

    header "summary ($(elapsed "$start") in all)"
    printf '%s\n' "${summary[@]}"
    if ((${#failed[@]} > 0)); then
        echo "FAILED steps: ${failed[*]}"
        return 1
    fi
    echo "all steps passed"
}

main "$@"
