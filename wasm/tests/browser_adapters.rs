//! The browser storage adapters (wasm/js/opfs.js, wasm/js/indexeddb.js) pass the storage
//! conformance suite in headless Chromium, and a `Strata` backs up into OPFS and restores from
//! it. Browser only: the Node run skips this file (WASM_BINDGEN_TEST_ONLY_NODE).
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use strata_core::conformance::storage as storage_suite;
use strata_wasm::{JsStorage, Strata};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(module = "/js/opfs.js")]
extern "C" {
    #[wasm_bindgen(js_name = opfsStorage)]
    fn opfs_storage(dir: &str) -> JsValue;
}

#[wasm_bindgen(module = "/js/indexeddb.js")]
extern "C" {
    #[wasm_bindgen(js_name = indexedDbStorage)]
    fn indexed_db_storage(name: &str) -> JsValue;
}

/// A name no earlier run used (OPFS and IndexedDB persist per origin).
fn unique(what: &str) -> String {
    format!("strata-test-{what}-{}", js_sys::Date::now() as u64)
}

#[wasm_bindgen_test]
async fn opfs_storage_conformance() {
    let dir = unique("opfs");
    let storage = JsStorage::new(opfs_storage(&dir), &format!("opfs://{dir}")).unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);
}

#[wasm_bindgen_test]
async fn indexed_db_storage_conformance() {
    let name = unique("idb");
    let storage = JsStorage::new(indexed_db_storage(&name), &format!("idb://{name}")).unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);
}

#[wasm_bindgen_test]
async fn backup_to_opfs_and_restore() {
    let dir = unique("backups");
    let s = Strata::in_memory();
    s.mounts().mount("opfs://b", Arc::new(JsStorage::new(opfs_storage(&dir), "opfs://b").unwrap())).unwrap();
    s.execute("CREATE DATABASE app").await.unwrap();
    s.execute("CREATE TABLE app.notes").await.unwrap();
    for i in 0..200u32 {
        s.put("app", "notes", format!("note-{i:04}").as_bytes(), &[i as u8; 100]).await.unwrap();
    }
    s.execute("BACKUP DATABASE app INTO 'opfs://b/c' WITH encryption_passphrase = 'pw'").await.unwrap();
    s.put("app", "notes", b"note-9999", b"late").await.unwrap();
    s.execute("BACKUP DATABASE app INTO LATEST IN 'opfs://b/c' WITH encryption_passphrase = 'pw'").await.unwrap();

    // A second strata in the same page (a fresh store) restores from the same OPFS directory.
    let t = Strata::in_memory();
    t.mounts().mount("opfs://b", Arc::new(JsStorage::new(opfs_storage(&dir), "opfs://b").unwrap())).unwrap();
    t.execute("RESTORE DATABASE app FROM LATEST IN 'opfs://b/c' WITH encryption_passphrase = 'pw'").await.unwrap();
    let expected = s.scan("app", "notes", b"", None, None).await.unwrap();
    assert_eq!(t.scan("app", "notes", b"", None, None).await.unwrap(), expected);
    assert_eq!(expected.len(), 201);
}
