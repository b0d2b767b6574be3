//! The conformance suites of the core (`strata_core::conformance`), run on plugins written in
//! JavaScript: what `strata-wasm/conformance` (js/conformance.js) drives.
//!
//! A check of the suites panics on the first difference from the contract, and a panic in wasm
//! traps: the instance is unusable afterwards. So js/conformance.js runs the checks in an instance
//! of the module of their own (never the application's), one check at a time, and polls the
//! check's future itself (`conformancePoll`, called from JavaScript inside a `try`) instead of
//! handing it to wasm-bindgen-futures' queue, where a trap would be an uncaught exception: the
//! trap then ends that call, the panic hook has already handed the message to JavaScript, and
//! the next check gets a fresh instance.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use js_sys::{Array, BigInt, Function, Promise};
use strata_core::conformance::{kv as kv_suite, storage as storage_suite};
use strata_core::{Error, Result, Timestamp};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::{from_js_error, to_js_error, PluginKind};
use crate::{JsKv, JsStorage};

type Check = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    static RUNNING: RefCell<Option<Check>> = const { RefCell::new(None) };
    static WAKE: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// The checks of the KV suite, in order: the fixed ones, then the model with three seeds; with
/// `gc`, the garbage-collection checks too.
const KV_CHECKS: &[&str] = &[
    "scan_latest_and_revisions",
    "scan_span_bounds",
    "paging",
    "scan_changes_matches_scan",
    "now_is_stable",
    "write_is_atomic",
    "concurrent_writes",
    "id_allocation",
    "ingest",
    "publish_is_atomic_and_visible",
    "catalog_at_history",
    "discard",
    "model_seed_0",
    "model_seed_1",
    "model_seed_2",
];
const KV_GC_CHECKS: &[&str] = &["gc_threshold", "model_with_gc_seed_10", "model_with_gc_seed_11"];

/// `conformanceChecks(kind, gc)`: the names of the checks of suite `kind` (`"kv"` or `"storage"`).
#[wasm_bindgen(js_name = conformanceChecks, skip_typescript)]
pub fn conformance_checks(kind: &str, gc: bool) -> Array {
    let names: Vec<&str> = match kind {
        "kv" if gc => KV_CHECKS.iter().chain(KV_GC_CHECKS).copied().collect(),
        "kv" => KV_CHECKS.to_vec(),
        _ => storage_suite::CHECKS.iter().map(|c| c.name).collect(),
    };
    names.into_iter().map(JsValue::from_str).collect()
}

/// `conformanceStart(kind, name, subject, gc, wake, onPanic)`: prepares check `name` of suite
/// `kind` on `subject` (a storage plugin, or for `"kv"` a fresh KV plugin); `wake()` is called
/// when `conformancePoll()` should be called again, `onPanic(message)` when the check fails.
#[wasm_bindgen(js_name = conformanceStart, skip_typescript)]
pub fn conformance_start(
    kind: &str,
    name: &str,
    subject: JsValue,
    gc: JsValue,
    wake: Function,
    on_panic: Function,
) -> std::result::Result<(), JsValue> {
    if !std::thread::panicking() {
        std::panic::set_hook(Box::new(move |info| {
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info.payload().downcast_ref::<String>().cloned().unwrap_or_else(|| info.to_string()),
            };
            let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
            let _ = on_panic.call1(&JsValue::NULL, &JsValue::from_str(&format!("{message}{at}")));
        }));
    }
    let check = build(kind, name, subject, gc).map_err(|e| to_js_error(&e))?;
    RUNNING.with(|r| *r.borrow_mut() = Some(check));
    WAKE.with(|w| *w.borrow_mut() = Some(wake));
    Ok(())
}

/// `conformancePoll()`: advances the running check; true once it has passed.
#[wasm_bindgen(js_name = conformancePoll, skip_typescript)]
pub fn conformance_poll() -> bool {
    let Some(mut check) = RUNNING.with(|r| r.borrow_mut().take()) else { return true };
    let waker = Waker::from(Arc::new(JsWake));
    match check.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(()) => true,
        Poll::Pending => {
            RUNNING.with(|r| *r.borrow_mut() = Some(check));
            false
        }
    }
}

/// Wakes the check by asking JavaScript to poll again.
struct JsWake;

impl Wake for JsWake {
    fn wake(self: Arc<Self>) {
        WAKE.with(|w| {
            if let Some(f) = w.borrow().as_ref() {
                let _ = f.call0(&JsValue::NULL);
            }
        });
    }
}

/// `gc(plugin, threshold)` of the caller, as the suite calls it.
fn gc_fn(gc: &JsValue, plugin: &JsValue) -> impl Fn(Timestamp) -> Pin<Box<dyn Future<Output = Result<()>>>> {
    let (gc, plugin) = (Function::from(gc.clone()), plugin.clone());
    move |t: Timestamp| {
        let result = gc.call2(&JsValue::NULL, &plugin, &BigInt::from(t.wall).into());
        Box::pin(async move {
            let value = result.map_err(|e| from_js_error(&e, PluginKind::Kv, "gc"))?;
            JsFuture::from(Promise::resolve(&value)).await.map_err(|e| from_js_error(&e, PluginKind::Kv, "gc"))?;
            Ok(())
        })
    }
}

fn build(kind: &str, name: &str, subject: JsValue, gc: JsValue) -> Result<Check> {
    if kind == "storage" {
        let check = storage_suite::CHECKS.iter().find(|c| c.name == name).copied().ok_or_else(|| unknown(name))?;
        let storage = JsStorage::new(subject, "js://conformance")?;
        return Ok(Box::pin(async move { (check.run)(&storage).await }));
    }
    let plugin = subject;
    let kv = JsKv::new(plugin.clone())?;
    let model = |seed: u64| kv_suite::ModelOptions::default().with_seed(seed);
    let seed = |prefix: &str| name.strip_prefix(prefix).and_then(|s| s.parse::<u64>().ok());
    Ok(match name {
        "scan_latest_and_revisions" => Box::pin(async move { kv_suite::scan_latest_and_revisions(&kv).await }),
        "scan_span_bounds" => Box::pin(async move { kv_suite::scan_span_bounds(&kv).await }),
        "paging" => Box::pin(async move { kv_suite::paging(&kv).await }),
        "scan_changes_matches_scan" => Box::pin(async move {
            kv_suite::scan_changes_matches_scan(&kv).await;
        }),
        "now_is_stable" => Box::pin(async move { kv_suite::now_is_stable(&kv).await }),
        "write_is_atomic" => Box::pin(async move { kv_suite::write_is_atomic(&kv).await }),
        "concurrent_writes" => Box::pin(async move { kv_suite::concurrent_writes(&kv).await }),
        "id_allocation" => Box::pin(async move { kv_suite::id_allocation(&kv).await }),
        "ingest" => Box::pin(async move { kv_suite::ingest(&kv).await }),
        "publish_is_atomic_and_visible" => Box::pin(async move { kv_suite::publish_is_atomic_and_visible(&kv).await }),
        "catalog_at_history" => Box::pin(async move { kv_suite::catalog_at_history(&kv).await }),
        "discard" => Box::pin(async move { kv_suite::discard(&kv).await }),
        "gc_threshold" if gc.is_function() => {
            let gc = gc_fn(&gc, &plugin);
            Box::pin(async move { kv_suite::gc_threshold(&kv, gc).await })
        }
        _ if seed("model_with_gc_seed_").is_some() && gc.is_function() => {
            let (gc, options) = (gc_fn(&gc, &plugin), model(seed("model_with_gc_seed_").unwrap_or_default()));
            Box::pin(async move { kv_suite::model_with_gc(&kv, gc, &options).await })
        }
        _ if seed("model_seed_").is_some() => {
            let options = model(seed("model_seed_").unwrap_or_default());
            Box::pin(async move { kv_suite::model(&kv, &options).await })
        }
        _ => return Err(unknown(name)),
    })
}

fn unknown(name: &str) -> Error {
    Error::InvalidArgument { what: "conformance check".into(), message: format!("no check named {name:?}") }
}
