//! [`crate::kv_conformance_tests!`]: one `#[test]` per check of the KV conformance suite.

/// Makes one `#[test]` per check of the KV conformance suite ([`crate::conformance::kv`]), so
/// that a failing check does not hide the others and each shows by name in `cargo test`.
///
/// Arguments, in this order:
/// - optionally, the attributes of each test: your async runtime's test attribute (a
///   multi-threaded one, if the store needs its runtime's threads); without one, each test is a
///   plain `#[test]` that runs the check with `futures::executor::block_on`;
/// - optionally, `let` statements (`let dir = tempfile::tempdir().unwrap();`) run at the start
///   of each test, whose bindings the next arguments may use and which live as long as the test;
/// - `store:` an expression giving a fresh, empty store (evaluated once per test, inside the
///   test's async body, so it may `.await`);
/// - optionally `hold:` an expression evaluated (and held) before each check without GC, e.g. a
///   shared lock guard;
/// - optionally `gc:` a closure `|store: S, threshold| async move { … }` that garbage-collects a
///   clone of the store the way [`crate::MemKv::gc`] does (see
///   [`crate::conformance::kv::run_all_with_gc`]); it adds the GC checks, which need `S: Clone`;
///   then optionally `hold_gc:`, held before each of them (e.g. an exclusive lock guard).
///
/// The tests are named after the checks (`paging`, `discard`, `model_seed_0`, …): put the macro
/// in a module of its own.
///
/// ```ignore
/// mod kv_conformance {
///     strata_core::kv_conformance_tests! {
///         store: my_engine::Engine::in_memory(),
///         gc: |store: my_engine::Engine, threshold| async move { store.gc(threshold) },
///     }
/// }
/// ```
#[macro_export]
macro_rules! kv_conformance_tests {
    (
        #[$attr:meta] $(#[$more:meta])*
        $(let $p:pat = $e:expr;)*
        store: $store:expr
        $(, hold: $hold:expr)?
        $(, gc: $gc:expr $(, hold_gc: $hold_gc:expr)?)?
        $(,)?
    ) => {
        $crate::kv_conformance_tests!(@all [async #[$attr] $(#[$more])*] [$(let $p = $e;)*] ($store)
            ($crate::__kv_or_unit!($($hold)?)) [$(($gc) ($crate::__kv_or_unit!($($hold_gc)?)))?]);
    };
    (
        $(let $p:pat = $e:expr;)*
        store: $store:expr
        $(, hold: $hold:expr)?
        $(, gc: $gc:expr $(, hold_gc: $hold_gc:expr)?)?
        $(,)?
    ) => {
        $crate::kv_conformance_tests!(@all [sync] [$(let $p = $e;)*] ($store)
            ($crate::__kv_or_unit!($($hold)?)) [$(($gc) ($crate::__kv_or_unit!($($hold_gc)?)))?]);
    };
    (@all $how:tt $pre:tt ($store:expr) ($hold:expr) [$(($gc:expr) ($hold_gc:expr))?]) => {
        $crate::kv_conformance_tests!(@checks $how $pre ($store) ($hold));
        $($crate::kv_conformance_tests!(@gc_checks $how $pre ($store) ($gc) ($hold_gc));)?
    };
    (@checks $how:tt $pre:tt ($store:expr) ($hold:expr)) => {
        $crate::kv_conformance_tests!(@test $how $pre scan_latest_and_revisions ($hold) {
            $crate::conformance::kv::scan_latest_and_revisions(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre scan_span_bounds ($hold) {
            $crate::conformance::kv::scan_span_bounds(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre paging ($hold) {
            $crate::conformance::kv::paging(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre scan_changes_matches_scan ($hold) {
            $crate::conformance::kv::scan_changes_matches_scan(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre now_is_stable ($hold) {
            $crate::conformance::kv::now_is_stable(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre write_is_atomic ($hold) {
            $crate::conformance::kv::write_is_atomic(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre concurrent_writes ($hold) {
            $crate::conformance::kv::concurrent_writes(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre id_allocation ($hold) {
            $crate::conformance::kv::id_allocation(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre ingest ($hold) {
            $crate::conformance::kv::ingest(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre publish_is_atomic_and_visible ($hold) {
            $crate::conformance::kv::publish_is_atomic_and_visible(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre catalog_at_history ($hold) {
            $crate::conformance::kv::catalog_at_history(&$store).await;
        });
        $crate::kv_conformance_tests!(@test $how $pre discard ($hold) {
            $crate::conformance::kv::discard(&$store).await;
        });
        $crate::kv_conformance_tests!(@model $how $pre model_seed_0 0 ($store) ($hold));
        $crate::kv_conformance_tests!(@model $how $pre model_seed_1 1 ($store) ($hold));
        $crate::kv_conformance_tests!(@model $how $pre model_seed_2 2 ($store) ($hold));
    };
    (@gc_checks $how:tt $pre:tt ($store:expr) ($gc:expr) ($hold:expr)) => {
        $crate::kv_conformance_tests!(@test $how $pre gc_threshold ($hold) {
            let store = $store;
            let gc = $gc;
            $crate::conformance::kv::gc_threshold(&store, |t| gc(::core::clone::Clone::clone(&store), t)).await;
        });
        $crate::kv_conformance_tests!(@model_gc $how $pre model_with_gc_seed_10 10 ($store) ($gc) ($hold));
        $crate::kv_conformance_tests!(@model_gc $how $pre model_with_gc_seed_11 11 ($store) ($gc) ($hold));
        $crate::kv_conformance_tests!(@model_gc $how $pre model_with_gc_seed_12 12 ($store) ($gc) ($hold));
    };
    (@model $how:tt $pre:tt $name:ident $seed:literal ($store:expr) ($hold:expr)) => {
        $crate::kv_conformance_tests!(@test $how $pre $name ($hold) {
            let options = $crate::conformance::kv::ModelOptions::default().with_seed($seed);
            $crate::conformance::kv::model(&$store, &options).await;
        });
    };
    (@model_gc $how:tt $pre:tt $name:ident $seed:literal ($store:expr) ($gc:expr) ($hold:expr)) => {
        $crate::kv_conformance_tests!(@test $how $pre $name ($hold) {
            let store = $store;
            let gc = $gc;
            let options = $crate::conformance::kv::ModelOptions::default().with_seed($seed);
            $crate::conformance::kv::model_with_gc(&store, |t| gc(::core::clone::Clone::clone(&store), t), &options)
                .await;
        });
    };
    (@test [sync] [$($pre:tt)*] $name:ident ($hold:expr) $body:block) => {
        #[test]
        fn $name() {
            $crate::conformance::block_on(async {
                $($pre)*
                let _hold = $hold;
                $body
            });
        }
    };
    (@test [async $(#[$attr:meta])*] [$($pre:tt)*] $name:ident ($hold:expr) $body:block) => {
        $(#[$attr])*
        async fn $name() {
            $($pre)*
            let _hold = $hold;
            $body
        }
    };
}

/// The expression given, or `()`: the optional arguments of [`crate::kv_conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __kv_or_unit {
    () => {
        ()
    };
    ($e:expr) => {
        $e
    };
}

#[cfg(test)]
mod memkv {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    crate::kv_conformance_tests! {
        store: crate::MemKv::new(),
        gc: |store: crate::MemKv, threshold| async move {
            store.gc(threshold);
            Ok(())
        },
    }
}
