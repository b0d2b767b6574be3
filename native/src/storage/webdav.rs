//! [`WebDavStorage`]: `http(s)://` URIs served by a WebDAV server.
//!
//! Reads, listings (`PROPFIND`) and deletes go through object_store's `HttpStore`. Writes are
//! strata's own, because a plain `PUT` is not atomic on every server (rclone writes the file in
//! place, so a reader sees a prefix) and `HttpStore` has neither conditional nor streamed puts:
//!
//! ```text
//!   put_opts, Overwrite  PUT  dir/.name.strata-tmp-<unique>   then  MOVE → dir/name  (Overwrite: T)
//!   put_opts, Create     PUT  dir/.name.strata-tmp-<unique>   then  MOVE → dir/name  (Overwrite: F; 412 = exists)
//! ```
//!
//! A `MOVE` is a rename on the server, so readers never see a partial object. Over an existing
//! object a `MOVE` first deletes it (RFC 4918), so reads that find nothing look again twice
//! (after 20 ms and 100 ms) before answering "not found". Temporary objects are never listed,
//! and a failed write deletes its own.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::RetryConfig;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use strata_core::{
    Error, ExternalStorage, GetOptions, GetResult, ListResult, ObjectMeta, PutMode, PutOptions, Result, Status,
};
use url::Url;

use super::object::ObjectStorage;

/// What marks a temporary object's name; such objects are never listed.
const TMP_MARK: &str = ".strata-tmp-";

/// An [`ExternalStorage`] on a WebDAV server (`http://` or `https://`, with optional
/// `user:password@` basic authentication), keeping the whole contract: atomic `put`,
/// creates that exactly one of racing writers wins, and `delete` that never removes a directory. Transient failures (connection errors,
/// timeouts, `5xx`, `429`, `423 Locked`) are retried with exponential backoff under the
/// opener's [`RetryConfig`]; other failures fail at once, naming the path.
pub struct WebDavStorage {
    inner: ObjectStorage,
    client: reqwest::Client,
    /// The URL of the storage's root directory, ending with `/`, without user info.
    root_url: Url,
    /// The `Authorization` header of every request (basic authentication), marked sensitive.
    auth: Option<HeaderValue>,
    retry: RetryConfig,
}

impl fmt::Debug for WebDavStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavStorage").field("uri", &self.inner.describe()).finish_non_exhaustive()
    }
}

impl WebDavStorage {
    /// A storage on the WebDAV directory `root_url` (an `http(s)://` URL without user info),
    /// sending `auth` as the `Authorization` header. `reads` serves reads, listings and deletes
    /// of the same directory; `client` sends the writes.
    pub(crate) fn new(
        reads: ObjectStorage,
        client: reqwest::Client,
        root_url: Url,
        auth: Option<HeaderValue>,
        retry: RetryConfig,
    ) -> Self {
        let mut root_url = root_url;
        if !root_url.path().ends_with('/') {
            let path = format!("{}/", root_url.path());
            root_url.set_path(&path);
        }
        WebDavStorage { inner: reads, client, root_url, auth, retry }
    }

    /// The URL of `path` (relative to the root), percent-encoded segment by segment.
    fn url(&self, path: &str) -> Url {
        let mut url = self.root_url.clone();
        {
            let mut segments = url.path_segments_mut().expect("http URLs have paths");
            segments.pop_if_empty();
            segments.extend(path.split('/'));
        }
        url
    }

    /// A request to `url`, authenticated.
    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.auth {
            Some(auth) => request.header(AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    fn storage_error(&self, op: &str, path: &str, message: String, status: Status) -> Error {
        Error::Storage {
            path: self.inner.location(path),
            message: self.inner.scrub(format!("{op} failed: {message}")),
            status,
        }
    }

    /// The error for a final, unexpected response.
    async fn status_error(&self, op: &str, path: &str, response: reqwest::Response) -> Error {
        let status = response.status();
        match status {
            StatusCode::NOT_FOUND => return Error::NotFound { what: "file".into(), name: self.inner.location(path) },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return self.storage_error(op, path, format!("permission denied ({status})"), Status::Permanent);
            }
            _ => {}
        }
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        let status_kind = if transient(status) { Status::Temporary } else { Status::Permanent };
        self.storage_error(op, path, format!("the server answered {status}: {}", body.trim()), status_kind)
    }

    /// Sends the request `make` builds, again after a backoff while the failure is transient,
    /// within the retry budget. Returns the last response whatever its status; a transport error
    /// that outlasts the budget (or cannot be retried) is an error.
    async fn send(
        &self,
        op: &str,
        path: &str,
        mut make: impl FnMut() -> Result<reqwest::RequestBuilder>,
    ) -> Result<reqwest::Response> {
        let start = Instant::now();
        let mut backoff = Backoff::new(&self.retry);
        let mut retries = 0;
        loop {
            let result = make()?.send().await;
            let exhausted = retries >= self.retry.max_retries || start.elapsed() >= self.retry.retry_timeout;
            match result {
                Ok(response) if !transient(response.status()) || exhausted => return Ok(response),
                Ok(_) => {}
                Err(e) if exhausted || !(e.is_connect() || e.is_timeout() || e.is_request()) => {
                    let status = if e.is_connect() || e.is_timeout() { Status::Temporary } else { Status::Permanent };
                    let message = format!("{} (after {retries} retries in {:?})", error_chain(&e), start.elapsed());
                    return Err(self.storage_error(op, path, message, status));
                }
                Err(_) => {}
            }
            retries += 1;
            tokio::time::sleep(backoff.next()).await;
        }
    }

    /// Creates the missing parent directories of the object at `target` (MKCOL), the storage's
    /// root directories included: walks up until a directory exists, then creates the rest
    /// downwards. `path` names the object in messages.
    async fn make_parents(&self, op: &str, path: &str, target: &str) -> Result<()> {
        let mkcol = Method::from_bytes(b"MKCOL").expect("a valid method");
        // Every directory from the server's root down to the object's: `a/`, `a/b/`, …
        let mut dirs: Vec<Url> = Vec::new();
        let mut url = self.root_url.clone();
        url.set_path("/");
        let root_segments: Vec<String> = self
            .root_url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        let mut segments: Vec<String> = root_segments;
        segments.extend(target.split('/').map(percent_encode_segment));
        segments.pop();
        for i in 1..=segments.len() {
            let mut dir = url.clone();
            dir.set_path(&format!("/{}/", segments[..i].join("/")));
            dirs.push(dir);
        }
        let mut missing = Vec::new();
        for dir in dirs.iter().rev() {
            let response = self.send(op, path, || Ok(self.request(mkcol.clone(), dir.clone()))).await?;
            match response.status() {
                s if s.is_success() || s == StatusCode::METHOD_NOT_ALLOWED => break,
                StatusCode::CONFLICT | StatusCode::NOT_FOUND => missing.push(dir),
                _ => return Err(self.status_error(op, path, response).await),
            }
        }
        for dir in missing.into_iter().rev() {
            let response = self.send(op, path, || Ok(self.request(mkcol.clone(), dir.clone()))).await?;
            if !(response.status().is_success() || response.status() == StatusCode::METHOD_NOT_ALLOWED) {
                return Err(self.status_error(op, path, response).await);
            }
        }
        Ok(())
    }

    /// PUTs `body` at `target`, creating parent directories when the server asks for them;
    /// `path` names the object in messages.
    async fn upload(&self, op: &str, path: &str, target: &str, body: &Bytes) -> Result<()> {
        let url = self.url(target);
        for attempt in 0..2 {
            let response =
                self.send(op, path, || Ok(self.request(Method::PUT, url.clone()).body(body.clone()))).await?;
            match response.status() {
                s if s.is_success() => return Ok(()),
                // A missing parent directory (some servers say 404).
                StatusCode::CONFLICT | StatusCode::NOT_FOUND if attempt == 0 => {
                    self.make_parents(op, path, target).await?
                }
                _ => return Err(self.status_error(op, path, response).await),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Uploads `body` to a temporary name beside `path` and renames it into place.
    async fn write(&self, op: &str, path: &str, body: Bytes, overwrite: bool) -> Result<()> {
        self.inner.object_path(path)?;
        let tmp = temp_name(path);
        self.upload(op, path, &tmp, &body).await?;
        let result = self.publish(op, &tmp, path, overwrite).await;
        if result.is_err() {
            // Best effort: a leftover temporary object is never listed.
            let _ = self.delete_raw(op, path, &tmp).await;
        }
        result
    }

    /// MOVEs `tmp` to `path`: atomically replacing it, or only if it does not exist.
    async fn publish(&self, op: &str, tmp: &str, path: &str, overwrite: bool) -> Result<()> {
        let mv = Method::from_bytes(b"MOVE").expect("a valid method");
        let (source, destination) = (self.url(tmp), self.url(path).to_string());
        let response = self
            .send(op, path, || {
                Ok(self
                    .request(mv.clone(), source.clone())
                    .header("Destination", destination.as_str())
                    .header("Overwrite", if overwrite { "T" } else { "F" }))
            })
            .await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED if !overwrite => {
                Err(Error::AlreadyExists { what: "file".into(), name: self.inner.location(path) })
            }
            _ => Err(self.status_error(op, path, response).await),
        }
    }

    /// DELETEs the object at `target` (`path` in messages); a missing one is fine.
    async fn delete_raw(&self, op: &str, path: &str, target: &str) -> Result<()> {
        let url = self.url(target);
        let response = self.send(op, path, || Ok(self.request(Method::DELETE, url.clone()))).await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.status_error(op, path, response).await),
        }
    }
}

#[async_trait]
impl ExternalStorage for WebDavStorage {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    /// Both durabilities are the same here: the server decides when bytes reach its disk.
    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        match options.mode {
            PutMode::Create => self.write("put_if_absent", path, data, false).await,
            _ => self.write("put", path, data, true).await,
        }
    }

    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        look_again(|| self.inner.get_opts(path, options.clone())).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut listed = self.inner.list(prefix).await?;
        listed.retain(|o| !is_temporary(&o.path));
        Ok(listed)
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|o| !is_temporary(&o.path));
        Ok(listed)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        // A WebDAV DELETE of a collection removes everything in it: delete objects only.
        match self.inner.get_opts(path, GetOptions::default().with_head(true)).await {
            Ok(_) => self.delete_raw("delete", path, path).await,
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Whether `path` names a temporary object of a write in progress (never listed).
fn is_temporary(path: &str) -> bool {
    path.rsplit('/').next().unwrap_or_default().contains(TMP_MARK)
}

/// Runs a read; if it finds nothing, runs it again after 20 ms and then 100 ms before saying so.
///
/// A WebDAV `MOVE` over an existing object deletes it before renaming the new one into place
/// (RFC 4918 §9.9.3: "the server must perform a DELETE … prior to performing the move"), so a
/// reader racing an overwrite can find no object for the instant between the two steps. Looking
/// again closes that window; it never shows a partial object, which the rename rules out.
async fn look_again<T, F, Fut>(read: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    for pause in [Duration::from_millis(20), Duration::from_millis(100)] {
        match read().await {
            Err(Error::NotFound { .. }) => tokio::time::sleep(pause).await,
            other => return other,
        }
    }
    read().await
}

/// The `Authorization` header of HTTP basic authentication with the URI's `user[:password]`
/// (percent-decoded), marked sensitive so that it is never logged.
pub(crate) fn basic_auth(userinfo: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let user = strata_core::percent_decode("user of the URI", user).ok()?;
    let password = strata_core::percent_decode("password of the URI", password).ok()?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A path segment as it appears in a URL path.
fn percent_encode_segment(segment: &str) -> String {
    let mut url = Url::parse("http://h/").expect("a valid URL");
    url.path_segments_mut().expect("http URLs have paths").pop_if_empty().push(segment);
    url.path()[1..].to_string()
}

/// Whether a response status means "try again later".
fn transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        // WebDAV: another request holds a lock on the resource for a moment.
        || status == StatusCode::LOCKED
}

/// A fresh temporary name in the directory of `path`: `dir/.name.strata-tmp-<unique>`.
fn temp_name(path: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let unique = format!("{:x}-{:x}-{n:x}", std::process::id(), nanos & 0xffff_ffff_ffff);
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}{TMP_MARK}{unique}"),
        None => format!(".{path}{TMP_MARK}{unique}"),
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Exponential backoff with jitter, under a [`RetryConfig`]'s backoff settings.
struct Backoff {
    next: f64,
    max: f64,
    base: f64,
    init: f64,
    seed: u64,
}

impl Backoff {
    fn new(retry: &RetryConfig) -> Backoff {
        let init = retry.backoff.init_backoff.as_secs_f64();
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Backoff {
            next: init,
            max: retry.backoff.max_backoff.as_secs_f64(),
            base: retry.backoff.base,
            init,
            seed: seed | 1,
        }
    }

    /// The next pause: between the initial backoff and `base` times the previous one, capped.
    fn next(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        let current = self.next;
        let upper = (current * self.base).min(self.max).max(self.init);
        self.next = self.init + (upper - self.init) * jitter;
        Duration::from_secs_f64(current.min(self.max))
    }
}

/// The WebDAV client of an opener: one connection pool for every `http(s)://` storage.
pub(crate) fn client(options: &WebDavClientOptions) -> Result<reqwest::Client> {
    super::tls::install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .build()
        .map_err(|e| Error::Storage {
            path: "http(s) storage".into(),
            message: format!("cannot build the HTTP client: {e}"),
            status: Status::Permanent,
        })
}

/// Timeouts of WebDAV writes.
#[derive(Debug, Clone)]
pub(crate) struct WebDavClientOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
}

impl Default for WebDavClientOptions {
    fn default() -> Self {
        WebDavClientOptions { connect_timeout: Duration::from_secs(5), read_timeout: Duration::from_secs(60) }
    }
}
