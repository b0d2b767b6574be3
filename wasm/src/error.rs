//! Errors as JavaScript sees them: an `Error` with a stable `code` to switch on.

use js_sys::Reflect;
use strata_core::{Error, Status};
use wasm_bindgen::JsValue;

/// Turns a strata error into the JS `Error` every method rejects with: `name` is `"StrataError"`,
/// `message` the error's text, `code` its [`Error::code`] and `retryable` whether the same call
/// may succeed later ([`Status::Temporary`]).
pub fn to_js_error(err: &Error) -> JsValue {
    let e = js_sys::Error::new(&err.to_string());
    e.set_name("StrataError");
    // Setting an own property on a fresh, unfrozen Error cannot fail.
    let _ = Reflect::set(&e, &"code".into(), &err.code().into());
    let _ = Reflect::set(&e, &"retryable".into(), &(err.status() == Status::Temporary).into());
    e.into()
}
