//! [`JsKv`]: a [`KvStore`] over a JavaScript object with async methods (TypeScript `KvPlugin`),
//! so a JavaScript application can back up its own data store and restore into it.

use async_trait::async_trait;
use futures::lock::Mutex;
use js_sys::{Array, Object, Reflect};
use strata_core::{
    keys, Catalog, DescId, DescriptorChange, Entry, Error, IngestBatch, KvSink, KvSource, KvStore, MvccFilter, Result,
    ScanPage, ScanRequest, Span, Status, Timestamp, FIRST_USER_ID,
};
use wasm_bindgen::JsValue;

use crate::convert::{bytes_from_js, bytes_to_js, describe_value, set, ts_from_js, ts_to_js, type_name, u64_from_js};
use crate::error::{from_js_error, PluginKind};
use crate::js_storage::{call_method, check_plugin, has_method};

/// The methods every KV plugin has; `ingest`, `publish`, `allocateIds`, `gcThreshold` and
/// `scanChanges` are optional.
const REQUIRED: &[&str] = &["now", "scan", "write", "discard"];

/// A key-value engine written in JavaScript, seen as a [`KvStore`].
///
/// The plugin keeps versions of keys (`Uint8Array`s) at timestamps (`bigint` nanoseconds; see
/// [`crate::convert::ts_to_js`] for why there is no logical part). Its contract is
/// [`KvSource`]'s, [`KvSink`]'s and [`KvStore`]'s, reduced to what a JavaScript store needs:
///
/// - `write(batch)` applies `[key, value | null]` pairs atomically at one fresh timestamp above
///   every earlier one, and returns it; `now()` returns a timestamp at or above every write.
/// - `scan(request)` returns one page of versions with `startTime < ts <= endTime` of keys in
///   `[start, end)`, by key ascending and newest first, only the newest per key unless
///   `allRevisions`; a page ends at a key boundary after about `targetBytes`, with `resumeKey`
///   the first key not returned. The adapter checks the order and the window of every page.
/// - `discard(spans)` removes every version of every key in the spans.
///
/// Descriptors and the id counter are ordinary keys in the system span, so by default
/// `publish(batch)` and `ingest(pairs)` are `write`s and `allocateIds(count)` is a
/// read-modify-write of the counter key, serialized by this adapter (enough for one `Strata`
/// per store; a store shared between several should provide its own `allocateIds`). A store
/// that can keep restored rows invisible until `publish` should provide `ingest`.
pub struct JsKv {
    plugin: Object,
    /// Serializes the default `allocateIds` (a read then a write, with awaits between).
    ids: Mutex<()>,
}

impl JsKv {
    /// Wraps `plugin`; fails with [`Error::InvalidArgument`] naming the first required method it lacks.
    pub fn new(plugin: JsValue) -> Result<JsKv> {
        let plugin = check_plugin(plugin, REQUIRED, "KV plugin", "the KV plugin")?;
        Ok(JsKv { plugin, ids: Mutex::new(()) })
    }

    async fn call(&self, method: &str, args: &[JsValue]) -> Result<JsValue> {
        call_method(&self.plugin, method, args)
            .await
            .map_err(|e| from_js_error(&e, PluginKind::Kv, &format!("KV plugin {method}()")))
    }

    fn bad(&self, method: &str, message: impl std::fmt::Display) -> Error {
        Error::Kv { message: format!("the KV plugin's {method}() {message}"), status: Status::Permanent }
    }

    async fn timestamp(&self, method: &str, args: &[JsValue]) -> Result<Timestamp> {
        let v = self.call(method, args).await?;
        ts_from_js(&v, method).map_err(|e| self.bad(method, format!("returned a bad timestamp: {e}")))
    }

    async fn page(&self, method: &str, request: &ScanRequest) -> Result<Option<ScanPage>> {
        let v = self.call(method, &[scan_request_to_js(request).into()]).await?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        let page = scan_page_from_js(&v).map_err(|m| self.bad(method, m))?;
        check_page(&page, request).map_err(|m| self.bad(method, m))?;
        Ok(Some(page))
    }

    async fn write_batch(&self, method: &str, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        let pairs: Array = batch
            .iter()
            .map(|(k, v)| {
                let value: JsValue = v.as_deref().map_or(JsValue::NULL, |v| bytes_to_js(v).into());
                JsValue::from(Array::of2(&bytes_to_js(k), &value))
            })
            .collect();
        self.timestamp(method, &[pairs.into()]).await
    }
}

#[async_trait(?Send)]
impl KvSource for JsKv {
    async fn now(&self) -> Result<Timestamp> {
        self.timestamp("now", &[]).await
    }

    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        // Empty spans and windows go to the plugin too: below its GC threshold they are errors.
        match self.page("scan", &request).await? {
            Some(page) => Ok(page),
            None => Err(self.bad("scan", "returned nothing (expected { entries, resumeKey })")),
        }
    }

    async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
        if !has_method(&self.plugin, "gcThreshold") {
            return Ok(Timestamp::ZERO);
        }
        self.timestamp("gcThreshold", &[span_to_js(span).into()]).await
    }

    async fn scan_changes(&self, request: ScanRequest) -> Result<Option<ScanPage>> {
        if !has_method(&self.plugin, "scanChanges") {
            return Ok(None);
        }
        self.page("scanChanges", &request).await
    }
}

#[async_trait(?Send)]
impl KvSink for JsKv {
    async fn catalog(&self) -> Result<Catalog> {
        let now = self.now().await?;
        self.catalog_at(now).await
    }

    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        if has_method(&self.plugin, "allocateIds") {
            let v = self.call("allocateIds", &[count.into()]).await?;
            let first = u64_from_js(&v, "allocateIds").map_err(|e| self.bad("allocateIds", e))?;
            return DescId::try_from(first)
                .map_err(|_| self.bad("allocateIds", format!("returned {first}, above 2^32")));
        }
        let _serialized = self.ids.lock().await;
        let counter = Span::new(keys::ID_COUNTER_KEY.to_vec(), [keys::ID_COUNTER_KEY, &[0]].concat());
        let now = self.now().await?;
        let page = self.scan(ScanRequest::new(counter, Timestamp::ZERO, now, MvccFilter::Latest)).await?;
        let current = match page.entries.first().and_then(|e| e.value.as_deref()) {
            Some(v) => u32::from_be_bytes(v.try_into().map_err(|_| Error::Corrupt {
                path: "the KV plugin's id counter".into(),
                message: format!("it holds {} bytes, not 4", v.len()),
            })?),
            None => FIRST_USER_ID,
        };
        let next = current
            .checked_add(count)
            .ok_or_else(|| Error::Kv { message: "descriptor ids are exhausted".into(), status: Status::Permanent })?;
        self.write(vec![(keys::ID_COUNTER_KEY.to_vec(), Some(next.to_be_bytes().to_vec()))]).await?;
        Ok(current)
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        if !has_method(&self.plugin, "ingest") {
            return self.write(batch.iter().map(|(k, v)| (k.to_vec(), Some(v.to_vec()))).collect()).await.map(|_| ());
        }
        let array: Array =
            batch.iter().map(|(k, v)| JsValue::from(Array::of2(&bytes_to_js(k), &bytes_to_js(v)))).collect();
        self.call("ingest", &[array.into()]).await.map(|_| ())
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        let batch = changes.into_iter().map(DescriptorChange::into_write).collect();
        let method = if has_method(&self.plugin, "publish") { "publish" } else { "write" };
        self.write_batch(method, batch).await
    }

    async fn discard(&self, spans: &[Span]) -> Result<()> {
        let array: Array = spans.iter().map(|s| JsValue::from(span_to_js(s))).collect();
        self.call("discard", &[array.into()]).await.map(|_| ())
    }
}

#[async_trait(?Send)]
impl KvStore for JsKv {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.write_batch("write", batch).await
    }
}

fn span_to_js(span: &Span) -> Object {
    let obj = Object::new();
    set(&obj, "start", &bytes_to_js(&span.start));
    set(&obj, "end", &bytes_to_js(&span.end));
    obj
}

fn scan_request_to_js(r: &ScanRequest) -> Object {
    let obj = span_to_js(&r.span);
    set(&obj, "startTime", &ts_to_js(r.start));
    set(&obj, "endTime", &ts_to_js(r.end));
    set(&obj, "allRevisions", &(r.filter == MvccFilter::AllRevisions).into());
    set(&obj, "targetBytes", &(r.target_bytes as f64).into());
    obj
}

fn get(obj: &JsValue, name: &str) -> JsValue {
    Reflect::get(obj, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

fn scan_page_from_js(v: &JsValue) -> std::result::Result<ScanPage, String> {
    let entries = get(v, "entries");
    if !Array::is_array(&entries) {
        return Err(format!("returned a page whose entries are {}, not an array", type_name(&entries)));
    }
    let entries = Array::from(&entries);
    let mut page = ScanPage { entries: Vec::with_capacity(entries.length() as usize), resume_key: None };
    for (i, e) in entries.iter().enumerate() {
        let key = bytes_from_js(&get(&e, "key"), "key").map_err(|err| format!("entry {i}: {err}"))?;
        let ts = ts_from_js(&get(&e, "ts"), "ts").map_err(|err| format!("entry {i}: {err}"))?;
        let value = get(&e, "value");
        let value = if value.is_null() || value.is_undefined() {
            None
        } else {
            Some(bytes_from_js(&value, "value").map_err(|err| format!("entry {i}: {err}"))?)
        };
        page.entries.push(Entry::new(key, ts, value));
    }
    let resume = get(v, "resumeKey");
    if !(resume.is_null() || resume.is_undefined()) {
        page.resume_key = Some(bytes_from_js(&resume, "resumeKey").map_err(|e| e.to_string())?);
    }
    Ok(page)
}

/// The checks every page passes: keys in the span, ascending; versions of a key newest first and
/// one per key for `Latest`; timestamps in the window (floored as [`ts_to_js`] describes); the
/// resume key after the last entry and inside the span.
fn check_page(page: &ScanPage, r: &ScanRequest) -> std::result::Result<(), String> {
    let (start, end) = (r.start.wall, r.end.wall);
    let mut previous: Option<&Entry> = None;
    for (i, e) in page.entries.iter().enumerate() {
        if !r.span.contains(&e.key) {
            return Err(format!("returned entry {i} with key {} outside the span {}", hex(&e.key), r.span));
        }
        if e.ts.wall <= start || e.ts.wall > end {
            return Err(format!(
                "returned entry {i} at {} outside the window ({start}, {end}]",
                describe_value(&ts_to_js(e.ts))
            ));
        }
        if let Some(p) = previous {
            let ordered = match p.key.cmp(&e.key) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => r.filter == MvccFilter::AllRevisions && p.ts > e.ts,
                std::cmp::Ordering::Greater => false,
            };
            if !ordered {
                return Err(format!(
                    "returned entries out of order at {i} (keys ascending, each key's versions newest first{}): \
                     {} at {} after {} at {}",
                    if r.filter == MvccFilter::Latest { ", one per key unless allRevisions" } else { "" },
                    hex(&e.key),
                    e.ts.wall,
                    hex(&p.key),
                    p.ts.wall
                ));
            }
        }
        previous = Some(e);
    }
    if let Some(k) = &page.resume_key {
        if !r.span.contains(k) || previous.is_some_and(|p| p.key[..] >= k[..]) {
            return Err(format!("returned resumeKey {} that is not after the page's last key inside the span", hex(k)));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes.iter().take(40) {
        s.push_str(&format!("{b:02x}"));
    }
    if bytes.len() > 40 {
        s.push('…');
    }
    s
}
