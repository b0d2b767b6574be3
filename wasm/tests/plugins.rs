//! Plugins written in JavaScript, seen through the adapters: the storage conformance suite on JS
//! storage plugins (one with only the required methods, one with every optional one), the KV
//! conformance suite on `MemoryKv` (wasm/js/memory-kv.js), errors thrown by plugins, and a
//! `Strata` whose store and storage are both JavaScript. Runs under Node and in headless
//! Chromium (scripts/test-all.sh).
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use strata_core::conformance::{kv as kv_suite, storage as storage_suite};
use strata_core::{Error, ExternalStorageExt, KvSource, ScanRequest, Span, Timestamp};
use strata_wasm::{JsKv, JsStorage, Strata};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen(module = "/js/memory-kv.js")]
extern "C" {
    type MemoryKv;
    #[wasm_bindgen(constructor)]
    fn new() -> MemoryKv;
    #[wasm_bindgen(method)]
    fn gc(this: &MemoryKv, threshold: JsValue);
}

#[wasm_bindgen(inline_js = r#"
// A storage plugin with only the required methods: the adapter supplies getRange, size and putIfAbsent.
export function minimalStorage() {
  const m = new Map();
  return {
    async put(p, d) { m.set(p, d.slice()); },
    async get(p) { return m.get(p) ?? null; },
    async list(prefix) {
      return [...m].filter(([k]) => k.startsWith(prefix)).map(([path, d]) => ({ path, size: d.length }));
    },
    async delete(p) { m.delete(p); },
  };
}

// Every optional method, synchronous results mixed with Promises, and errors thrown the Node way.
export function fullStorage() {
  const m = new Map();
  const enoent = (p) => Object.assign(new Error(`ENOENT: no such file, open '${p}'`), { code: "ENOENT" });
  return {
    put(p, d) { m.set(p, new Uint8Array(d)); },
    async get(p) { if (!m.has(p)) throw enoent(p); return m.get(p).buffer.slice(0); },
    async getRange(p, s, e) { if (!m.has(p)) return undefined; return m.get(p).subarray(s, e); },
    async size(p) { return m.has(p) ? m.get(p).length : null; },
    async putIfAbsent(p, d) { if (m.has(p)) return false; m.set(p, d.slice()); return true; },
    list(prefix) { return [...m.keys()].filter((k) => k.startsWith(prefix)).reverse(); },
    async delete(p) { if (!m.has(p)) throw enoent(p); m.delete(p); },
  };
}

// Fails every call the way a flaky network does.
export function flakyStorage() {
  const fail = async () => { throw Object.assign(new Error("connection reset"), { retryable: true }); };
  return { put: fail, get: fail, list: fail, delete: fail };
}

// A KV plugin that returns pages out of order.
export function unsortedKv() {
  return {
    async now() { return 10n; },
    async scan() {
      const k = (s) => new TextEncoder().encode(s);
      return { entries: [{ key: k("\x10b"), ts: 5n, value: k("1") }, { key: k("\x10a"), ts: 5n, value: null }] };
    },
    async write() { return 11n; },
    async discard() {},
  };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = minimalStorage)]
    fn minimal_storage() -> JsValue;
    #[wasm_bindgen(js_name = fullStorage)]
    fn full_storage() -> JsValue;
    #[wasm_bindgen(js_name = flakyStorage)]
    fn flaky_storage() -> JsValue;
    #[wasm_bindgen(js_name = unsortedKv)]
    fn unsorted_kv() -> JsValue;
}

#[wasm_bindgen_test]
async fn storage_conformance_minimal_plugin() {
    let storage = JsStorage::new(minimal_storage(), "js://minimal").unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);
}

#[wasm_bindgen_test]
async fn storage_conformance_full_plugin() {
    let storage = JsStorage::new(full_storage(), "js://full").unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);
}

#[wasm_bindgen_test]
async fn storage_plugin_errors_become_strata_errors() {
    let storage = JsStorage::new(flaky_storage(), "https://host/b?X-Amz-Signature=secret").unwrap();
    let err = storage.get("BACKUP_MANIFEST").await.unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    assert_eq!(err.status(), strata_core::Status::Temporary);
    let text = err.to_string();
    assert!(text.contains("connection reset") && text.contains("BACKUP_MANIFEST"), "{text}");
    assert!(!text.contains("secret"), "{text}");

    let err = JsStorage::new(JsValue::from_str("nope"), "js://x").err().unwrap();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let no_delete = js_sys::Object::new();
    for m in ["put", "get", "list"] {
        js_sys::Reflect::set(&no_delete, &m.into(), &js_sys::Function::new_no_args("")).unwrap();
    }
    let err = JsStorage::new(no_delete.into(), "js://x").err().unwrap();
    assert!(err.to_string().contains("delete()"), "{err}");
}

fn memory_kv() -> (MemoryKv, JsKv) {
    let plugin = MemoryKv::new();
    let kv = JsKv::new(plugin.clone()).unwrap();
    (plugin, kv)
}

#[wasm_bindgen_test]
async fn kv_conformance_memory_kv() {
    kv_suite::run_all(|| memory_kv().1).await;
}

#[wasm_bindgen_test]
async fn kv_conformance_memory_kv_gc() {
    let gc = |plugin: MemoryKv| {
        move |t: Timestamp| {
            plugin.gc(js_sys::BigInt::from(t.wall).into());
            std::future::ready(Ok(()))
        }
    };
    let (plugin, kv) = memory_kv();
    kv_suite::gc_threshold(&kv, gc(plugin)).await;
    for seed in [20, 21] {
        let (plugin, kv) = memory_kv();
        kv_suite::model_with_gc(&kv, gc(plugin), &kv_suite::ModelOptions::default().with_seed(seed)).await;
    }
}

#[wasm_bindgen_test]
async fn kv_plugin_pages_are_checked() {
    let kv = JsKv::new(unsorted_kv()).unwrap();
    let span = Span::new(vec![0x10], vec![0x11]);
    let request = ScanRequest::new(span, Timestamp::ZERO, Timestamp::from_nanos(10), strata_core::MvccFilter::Latest);
    let err = kv.scan(request).await.unwrap_err();
    assert!(matches!(err, Error::Kv { .. }), "{err:?}");
    assert!(err.to_string().contains("out of order"), "{err}");
    let err = JsKv::new(js_sys::Object::new().into()).err().unwrap();
    assert!(err.to_string().contains("now()"), "{err}");
}

/// A `Strata` whose store and backup storage are both JavaScript: full, incremental and
/// encrypted backups, restored under new names, equal the source at each backup's time.
#[wasm_bindgen_test]
async fn strata_over_javascript_plugins() {
    let (plugin, kv) = memory_kv();
    let s = Strata::with_store(Arc::new(kv));
    s.mounts().mount("js://b", Arc::new(JsStorage::new(minimal_storage(), "js://b").unwrap())).unwrap();
    s.execute("CREATE DATABASE app").await.unwrap();
    s.execute("CREATE TABLE app.notes").await.unwrap();
    for i in 0..50u32 {
        s.put("app", "notes", format!("n{i:03}").as_bytes(), format!("v{i}").as_bytes()).await.unwrap();
    }
    s.execute("BACKUP DATABASE app INTO 'js://b/plain'").await.unwrap();
    let pass = "encryption_passphrase = 'a long passphrase'";
    s.execute(&format!("BACKUP DATABASE app INTO 'js://b/enc' WITH {pass}")).await.unwrap();
    s.delete("app", "notes", b"n000").await.unwrap();
    s.put("app", "notes", b"n001", b"changed").await.unwrap();
    s.put("app", "notes", b"n100", b"new").await.unwrap();
    s.execute("BACKUP DATABASE app INTO LATEST IN 'js://b/plain'").await.unwrap();
    s.execute(&format!("BACKUP DATABASE app INTO LATEST IN 'js://b/enc' WITH {pass}")).await.unwrap();
    let expected = s.scan("app", "notes", b"", None, None).await.unwrap();
    assert_eq!(expected.len(), 50);

    s.execute("RESTORE DATABASE app FROM LATEST IN 'js://b/plain' WITH new_db_name = 'plain'").await.unwrap();
    assert_eq!(s.scan("plain", "notes", b"", None, None).await.unwrap(), expected);
    let err = s.execute("RESTORE DATABASE app FROM LATEST IN 'js://b/enc' WITH new_db_name = 'enc'").await.unwrap_err();
    assert!(err.to_string().contains("encrypt"), "{err}");
    s.execute(&format!("RESTORE DATABASE app FROM LATEST IN 'js://b/enc' WITH new_db_name = 'enc', {pass}"))
        .await
        .unwrap();
    assert_eq!(s.scan("enc", "notes", b"", None, None).await.unwrap(), expected);
    // The plugin holds the restored rows itself.
    let snapshot = js_sys::Reflect::get(&plugin, &"rows".into()).unwrap();
    assert!(js_sys::Array::from(&snapshot).length() >= 150);
    assert!(!s.store().catalog().await.unwrap().has_no_user_objects());
    assert!(s.store().now().await.unwrap() > Timestamp::ZERO);
}
