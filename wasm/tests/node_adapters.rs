//! The Node storage adapters (wasm/js/fs.js, wasm/js/http.js) pass the storage conformance
//! suite: `fsStorage` on a temporary directory, `httpStorage` against an in-process WebDAV
//! server (tests/js/webdav-server.js), both directly and through presigned URLs. Node only (ES
//! modules): the Chromium run skips this file.
#![cfg(target_arch = "wasm32")]

use strata_core::conformance::storage as storage_suite;
use strata_core::ExternalStorageExt;
use strata_wasm::JsStorage;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_node_experimental);

#[wasm_bindgen(module = "/js/fs.js")]
extern "C" {
    #[wasm_bindgen(js_name = fsStorage)]
    fn fs_storage(root: &str, options: JsValue) -> JsValue;
}

#[wasm_bindgen(module = "/js/http.js")]
extern "C" {
    #[wasm_bindgen(js_name = httpStorage)]
    fn http_storage(base: &str, options: JsValue) -> JsValue;
}

#[wasm_bindgen(module = "/tests/js/webdav-server.js")]
extern "C" {
    #[wasm_bindgen(js_name = startWebDav)]
    fn start_webdav(options: JsValue) -> js_sys::Promise;
    fn presigner(url: &str, secret: &str) -> JsValue;
}

#[wasm_bindgen(inline_js = r#"
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
export function tempDir() { return mkdtempSync(join(tmpdir(), "strata-fs-")); }
export function removeDir(dir) { rmSync(dir, { recursive: true, force: true }); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = tempDir)]
    fn temp_dir() -> String;
    #[wasm_bindgen(js_name = removeDir)]
    fn remove_dir(dir: &str);
}

fn obj(props: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in props {
        js_sys::Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(v, &name.into()).unwrap()
}

struct Server(JsValue);

impl Server {
    async fn start(options: JsValue) -> Server {
        Server(JsFuture::from(start_webdav(options)).await.unwrap())
    }
    fn url(&self) -> String {
        get(&self.0, "url").as_string().unwrap()
    }
    async fn close(self) {
        let close: js_sys::Function = get(&self.0, "close").into();
        JsFuture::from(js_sys::Promise::from(close.call0(&self.0).unwrap())).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn fs_storage_conformance() {
    let dir = temp_dir();
    let storage = JsStorage::new(fs_storage(&dir, obj(&[("fsync", false.into())])), &format!("file://{dir}")).unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);
    remove_dir(&dir);
}

#[wasm_bindgen_test]
async fn http_storage_conformance_webdav() {
    let server = Server::start(JsValue::UNDEFINED).await;
    let storage = JsStorage::new(http_storage(&server.url(), JsValue::UNDEFINED), &server.url()).unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);
    server.close().await;
}

#[wasm_bindgen_test]
async fn http_storage_conformance_presigned() {
    let server = Server::start(obj(&[("secret", "s3cr3t".into()), ("autoParents", true.into())])).await;
    let sign = presigner(&server.url(), "s3cr3t");
    let storage = JsStorage::new(http_storage(&server.url(), obj(&[("sign", sign)])), &server.url()).unwrap();
    wasm_bindgen_test::console_log!("{}", storage_suite::run_all(&storage, &storage_suite::Capabilities::all()).await);

    // A wrong signature is refused, and the error shows no query string.
    let forged = presigner(&server.url(), "wrong");
    let storage = JsStorage::new(http_storage(&server.url(), obj(&[("sign", forged)])), &server.url()).unwrap();
    let err = storage.put("x", bytes::Bytes::from_static(b"1")).await.unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    assert_eq!(err.status(), strata_core::Status::Permanent);
    let text = err.to_string();
    assert!(text.contains("403") && !text.contains("sig="), "{text}");
    server.close().await;
}

#[wasm_bindgen_test]
async fn http_storage_network_errors_are_retryable() {
    // Nothing listens on port 9 of localhost.
    let storage =
        JsStorage::new(http_storage("http://127.0.0.1:9/b/", JsValue::UNDEFINED), "http://127.0.0.1:9/b").unwrap();
    let err = storage.get("BACKUP_MANIFEST").await.unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    assert_eq!(err.status(), strata_core::Status::Temporary, "{err}");
}
