//! [`NativeOpener`]: storage URIs to [`ObjectStorage`]s (and [`WebDavStorage`]s).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::http::HttpBuilder;
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use strata_core::{Error, ExternalStorage, Result, StorageOpener};

use super::cloud::{self, ClientSettings};
use super::local::LocalDir;
use super::object::ObjectStorage;
use super::uri::StorageUri;
use super::webdav::{self, WebDavClientOptions, WebDavStorage};

/// The schemes this build opens; any other is [`Error::NotSupported`].
const SCHEMES: &[&str] = &["nodelocal", "file", "memory", "s3", "gs", "azure", "azure-blob", "http", "https"];

/// Opens the storage URIs of native strata, with CockroachDB's URI parameters:
///
/// | URI | storage |
/// | --- | --- |
/// | `nodelocal://1/path`, `nodelocal://self/path` | directory `<nodelocal root>/path` (CockroachDB's node-local form; this process is node 1) |
/// | `file:///abs/path` | the absolute directory `/abs/path` |
/// | `memory://name/path` | directory `path` of an in-memory store shared by every URI naming `name`, for the opener's lifetime |
/// | `s3://bucket/path?AWS_ACCESS_KEY_ID=…&AWS_SECRET_ACCESS_KEY=…` | Amazon S3 or an S3-compatible server; also `AWS_SESSION_TOKEN`, `AWS_REGION` (default `us-east-1`), `AWS_ENDPOINT` (an S3-compatible server's URL, addressed path-style), `AWS_USE_PATH_STYLE=true\|false`, `AUTH=specified\|implicit` |
/// | `gs://bucket/path?CREDENTIALS=<base64 key>` | Google Cloud Storage; `CREDENTIALS` is a service account key file, base64-encoded; or `BEARER_TOKEN=…`, or `AUTH=implicit` |
/// | `azure://container/path?AZURE_ACCOUNT_NAME=…&AZURE_ACCOUNT_KEY=…` | Azure Blob Storage (`azure-blob://` too); or `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`, or `AUTH=implicit`; `AZURE_BLOB_ENDPOINT=http://127.0.0.1:10000/devstoreaccount1` points at an emulator (Azurite) or a private endpoint |
/// | `http://[user:password@]host[:port]/path`, `https://…` | a WebDAV server (see [`WebDavStorage`]) |
///
/// Every scheme takes `COCKROACH_LOCALITY=default` or `=key%3Dvalue`, which tags the URIs of a
/// locality-aware backup and is read by the backup, not by the storage. `AUTH=specified` (the
/// default) takes credentials from the URI and names the missing one; `AUTH=implicit` takes
/// them from the environment (the cloud SDKs' variables, metadata services, credential files).
///
/// The path part may be empty, and path segments may be percent-encoded. Local directories
/// are created by the first write into them, never by opening or reading (a missing one reads
/// as empty, and its missing files are named with the directory); cloud URIs are opened
/// without a request, so a wrong credential shows at the first operation. A malformed URI, an unknown, repeated or missing
/// parameter is an [`Error::InvalidArgument`] naming it, with the URI redacted.
///
/// Cloud and WebDAV requests that fail transiently (connection errors, timeouts, `5xx`, `429`)
/// are retried with exponential backoff under [`NativeOpener::with_retry`]; other failures fail
/// at once with the path named. Large objects are streamed with multipart uploads (S3, GCS,
/// Azure) or a spill file and a streamed PUT (WebDAV), with bounded memory.
///
/// # Local files are never half-written
/// Local directories are served by object_store's `LocalFileSystem`, which writes every object
/// to a temporary file `<name>#<n>` beside it and publishes it with a `rename` (a hard link
/// for a create, `put_if_absent`, which fails if the name exists): readers see the old file or
/// the new one, never a prefix. Listings skip the temporary files. With
/// [`NativeOpener::with_fsync`] (on by default) the file and its directory are also synced
/// before a write returns, so a completed backup survives a power loss. Empty directories left
/// by deletes are removed, up to the URI's directory.
///
/// ```
/// use strata_core::{ExternalStorageExt, StorageOpener};
/// use strata_native::NativeOpener;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let opener = NativeOpener::new(dir.path().to_path_buf());
/// let storage = opener.open("nodelocal://1/backups/2026").unwrap();
/// storage.put("BACKUP_MANIFEST", "manifest".into()).await.unwrap();
/// assert!(dir.path().join("backups/2026/BACKUP_MANIFEST").is_file());
/// assert_eq!(storage.describe(), "nodelocal://1/backups/2026");
///
/// // Cloud URIs are checked when opened; secrets never appear in what is shown.
/// let s3 = opener.open("s3://bucket/backups?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=hunter2").unwrap();
/// assert_eq!(s3.describe(), "s3://bucket/backups?AWS_ACCESS_KEY_ID=redacted&AWS_SECRET_ACCESS_KEY=redacted");
/// let err = opener.open("s3://bucket/backups?AWS_ACCESS_KEY_ID=AKIA").err().unwrap();
/// assert!(err.to_string().contains("missing parameter AWS_SECRET_ACCESS_KEY"));
/// # }
/// ```
#[derive(Clone)]
pub struct NativeOpener {
    nodelocal_root: PathBuf,
    fsync: bool,
    memory: Arc<Mutex<HashMap<String, Arc<InMemory>>>>,
    clients: ClientSettings,
    /// One WebDAV client (connection pool) for every `http(s)://` storage, built on first use.
    webdav: Arc<OnceLock<reqwest::Client>>,
}

impl fmt::Debug for NativeOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the in-memory stores themselves: their Debug prints every object.
        let mut memory: Vec<String> =
            self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).keys().cloned().collect();
        memory.sort();
        f.debug_struct("NativeOpener")
            .field("nodelocal_root", &self.nodelocal_root)
            .field("fsync", &self.fsync)
            .field("memory_stores", &memory)
            .finish()
    }
}

impl NativeOpener {
    /// An opener whose `nodelocal://` URIs live under directory `nodelocal_root` (created by
    /// the first write).
    pub fn new(nodelocal_root: PathBuf) -> NativeOpener {
        NativeOpener {
            nodelocal_root,
            fsync: true,
            memory: Arc::default(),
            clients: ClientSettings { retry: RetryConfig::default(), options: ClientOptions::new() },
            webdav: Arc::default(),
        }
    }

    /// Whether local writes are synced to disk (file and directory) before they return; on by
    /// default. Turning it off trades durability after a crash for speed.
    pub fn with_fsync(mut self, fsync: bool) -> NativeOpener {
        self.fsync = fsync;
        self
    }

    /// How cloud and WebDAV requests are retried: object_store's [`RetryConfig`] (by default up
    /// to 10 retries within 3 minutes, backing off exponentially from 100 ms to 15 s). Only
    /// transient failures are retried.
    pub fn with_retry(mut self, retry: RetryConfig) -> NativeOpener {
        self.clients.retry = retry;
        self
    }

    /// The HTTP client options of the S3, GCS, Azure and WebDAV-read clients (timeouts,
    /// proxies, …); `allow_http` is set per URI, from its endpoint.
    pub fn with_client_options(mut self, options: ClientOptions) -> NativeOpener {
        self.clients.options = options;
        self
    }

    /// The directory `nodelocal://1/` maps to.
    pub fn nodelocal_root(&self) -> &FsPath {
        &self.nodelocal_root
    }

    /// The local directory `dir`, created by the first write into it (see [`LocalDir`]).
    fn open_local(&self, uri: &StorageUri<'_>, dir: PathBuf) -> Result<Arc<dyn ExternalStorage>> {
        Ok(Arc::new(LocalDir::new(uri.raw, dir, self.fsync)))
    }

    /// The local directory a `nodelocal://` or `file://` URI names, without opening it; `None`
    /// for other schemes and URIs that do not parse.
    pub fn local_dir(&self, uri: &str) -> Option<PathBuf> {
        let parsed = StorageUri::parse(uri, SCHEMES, &["http", "https"], &["http", "https"]).ok()?;
        match parsed.scheme.as_str() {
            "nodelocal" => Some(parsed.segments.iter().fold(self.nodelocal_root.clone(), |dir, s| dir.join(s))),
            "file" => Some(parsed.segments.iter().fold(PathBuf::from("/"), |dir, s| dir.join(s))),
            _ => None,
        }
    }

    fn open_memory(&self, uri: &StorageUri<'_>) -> Result<Arc<dyn ExternalStorage>> {
        if uri.host.is_empty() {
            return Err(uri.invalid("a memory URI names its store: memory://name/path"));
        }
        let store: Arc<dyn ObjectStore> = self
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(uri.host.to_string())
            .or_insert_with(|| Arc::new(InMemory::new()))
            .clone();
        let storage = ObjectStorage::new(store, uri.raw).with_root(&uri.path())?;
        Ok(Arc::new(storage))
    }

    /// An object store rooted at the URI's path.
    fn object_storage(&self, uri: &StorageUri<'_>, store: Arc<dyn ObjectStore>) -> Result<Arc<dyn ExternalStorage>> {
        let storage = ObjectStorage::new(store, uri.raw).with_root(&uri.path())?;
        Ok(Arc::new(storage))
    }

    fn open_webdav(&self, uri: &StorageUri<'_>) -> Result<Arc<dyn ExternalStorage>> {
        uri.check_params(&[])?;
        if uri.host.is_empty() {
            return Err(uri.invalid(&format!("{} URIs name a server: {}://host[:port]/path", uri.scheme, uri.scheme)));
        }
        let mut origin = format!("{}://{}", uri.scheme, uri.host);
        if let Some(port) = uri.port {
            origin.push_str(&format!(":{port}"));
        }
        origin.push('/');
        let mut root = url::Url::parse(&origin).map_err(|e| uri.invalid(&format!("not a valid URL: {e}")))?;
        let auth = match uri.userinfo {
            Some(userinfo) => Some(
                webdav::basic_auth(userinfo)
                    .ok_or_else(|| uri.invalid("the user or password cannot be sent in an HTTP header"))?,
            ),
            None => None,
        };
        let mut options = self.clients.options.clone().with_allow_http(uri.scheme == "http");
        if let Some(auth) = &auth {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, auth.clone());
            options = options.with_default_headers(headers);
        }
        let store = HttpBuilder::new()
            .with_url(origin.as_str())
            .with_client_options(options)
            .with_retry(self.clients.retry.clone())
            .build()
            .map_err(|e| uri.invalid(&format!("cannot configure the HTTP client: {e}")))?;
        let reads = ObjectStorage::new(Arc::new(store), uri.raw).with_root(&uri.path())?;
        root.path_segments_mut().expect("http URLs have paths").pop_if_empty().extend(&uri.segments);
        let client = match self.webdav.get() {
            Some(client) => client.clone(),
            None => {
                let client = webdav::client(&WebDavClientOptions::default())?;
                self.webdav.get_or_init(|| client).clone()
            }
        };
        Ok(Arc::new(WebDavStorage::new(reads, client, root, auth, self.clients.retry.clone())))
    }
}

impl StorageOpener for NativeOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        super::tls::install_tls_provider();
        let parsed = StorageUri::parse(uri, SCHEMES, &["http", "https"], &["http", "https"])?;
        match parsed.scheme.as_str() {
            "nodelocal" => {
                parsed.check_params(&[])?;
                let node = parsed.host;
                if node.is_empty() {
                    return Err(
                        parsed.invalid("nodelocal URIs name a node: nodelocal://1/path or nodelocal://self/path")
                    );
                }
                if !node.eq_ignore_ascii_case("self") && node != "1" {
                    let message = if node.bytes().all(|b| b.is_ascii_digit()) {
                        format!("node {node} does not exist: this process is node 1 (use nodelocal://1/ or nodelocal://self/)")
                    } else {
                        format!("the node of a nodelocal URI is a node number or 'self', not {node:?}")
                    };
                    return Err(parsed.invalid(&message));
                }
                let dir = parsed.segments.iter().fold(self.nodelocal_root.clone(), |dir, s| dir.join(s));
                self.open_local(&parsed, dir)
            }
            "file" => {
                parsed.check_params(&[])?;
                if !parsed.host.is_empty() && !parsed.host.eq_ignore_ascii_case("localhost") {
                    return Err(parsed.invalid(&format!(
                        "file URIs name a local directory (file:///abs/path), not one on host {:?}",
                        parsed.host
                    )));
                }
                let dir = parsed.segments.iter().fold(PathBuf::from("/"), |dir, s| dir.join(s));
                self.open_local(&parsed, dir)
            }
            "memory" => {
                parsed.check_params(&[])?;
                self.open_memory(&parsed)
            }
            "s3" => self.object_storage(&parsed, cloud::s3(&parsed, &self.clients)?),
            "gs" => self.object_storage(&parsed, cloud::gs(&parsed, &self.clients)?),
            "azure" | "azure-blob" => self.object_storage(&parsed, cloud::azure(&parsed, &self.clients)?),
            "http" | "https" => self.open_webdav(&parsed),
            other => Err(Error::NotSupported { feature: format!("{other} storage") }),
        }
    }
}
