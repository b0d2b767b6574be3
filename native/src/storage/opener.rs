//! [`NativeOpener`]: storage URIs to [`ObjectStorage`]s.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use strata_core::{redact_uri, Error, ExternalStorage, Result, Status, StorageOpener, REDACTED};

use super::object::{percent_decode, secrets_of, ObjectStorage};

/// Query parameters every scheme accepts and storage ignores: `COCKROACH_LOCALITY` tags a URI
/// of a locality-aware backup and is read by the backup, not by the storage.
const IGNORED_PARAMS: &[&str] = &["COCKROACH_LOCALITY"];

/// The schemes this build opens; any other is [`Error::NotSupported`] (`s3`, `gs`, `azure`,
/// `http(s)` come later).
const SCHEMES: &[&str] = &["nodelocal", "file", "memory"];

/// Opens the storage URIs of native strata:
///
/// | URI | storage |
/// | --- | --- |
/// | `nodelocal://1/path`, `nodelocal://self/path` | directory `<nodelocal root>/path` (CockroachDB's node-local form; this process is node 1) |
/// | `file:///abs/path` | the absolute directory `/abs/path` |
/// | `memory://name/path` | directory `path` of an in-memory store shared by every URI naming `name`, for the opener's lifetime |
///
/// The path part may be empty, and path segments may be percent-encoded. Directories are
/// created when the URI is opened. `s3://`, `gs://`, `azure://` and `http(s)://` are
/// [`Error::NotSupported`] for now, as is any other scheme; a malformed URI, or an unknown query
/// parameter, is an [`Error::InvalidArgument`] naming what is wrong, with the URI redacted.
///
/// # Local files are never half-written
/// Local directories are served by object_store's `LocalFileSystem`, which writes every object
/// (a `put`, a `put_if_absent` or a whole multipart upload) to a temporary file
/// `<name>#<n>` beside it and publishes it with a `rename` (a hard link for `put_if_absent`,
/// which fails if the name exists): readers see the old file or the new one, never a prefix.
/// Listings skip the temporary files, and an aborted or dropped upload deletes its own. With
/// [`NativeOpener::with_fsync`] (on by default) the file and its directory are also synced
/// before a write returns, so a completed backup survives a power loss. Empty directories left
/// by deletes are removed, up to the URI's directory.
///
/// ```
/// use strata_core::StorageOpener;
/// use strata_native::NativeOpener;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let opener = NativeOpener::new(dir.path().to_path_buf());
/// let storage = opener.open("nodelocal://1/backups/2026").unwrap();
/// storage.put("BACKUP_MANIFEST", "manifest".into()).await.unwrap();
/// assert!(dir.path().join("backups/2026/BACKUP_MANIFEST").is_file());
/// assert_eq!(storage.describe(), "nodelocal://1/backups/2026");
/// # }
/// ```
#[derive(Clone)]
pub struct NativeOpener {
    nodelocal_root: PathBuf,
    fsync: bool,
    memory: Arc<Mutex<HashMap<String, Arc<InMemory>>>>,
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
    /// An opener whose `nodelocal://` URIs live under directory `nodelocal_root` (created on
    /// first use).
    pub fn new(nodelocal_root: PathBuf) -> NativeOpener {
        NativeOpener { nodelocal_root, fsync: true, memory: Arc::default() }
    }

    /// Whether local writes are synced to disk (file and directory) before they return; on by
    /// default. Turning it off trades durability after a crash for speed.
    pub fn with_fsync(mut self, fsync: bool) -> NativeOpener {
        self.fsync = fsync;
        self
    }

    /// The directory `nodelocal://1/` maps to.
    pub fn nodelocal_root(&self) -> &FsPath {
        &self.nodelocal_root
    }

    fn open_local(&self, uri: &StorageUri<'_>, dir: PathBuf) -> Result<Arc<dyn ExternalStorage>> {
        let failed = |what: &str, e: &dyn std::fmt::Display| Error::Storage {
            path: redact_uri(uri.raw),
            message: format!("cannot {what} {}: {e}", dir.display()),
            status: Status::Permanent,
        };
        std::fs::create_dir_all(&dir).map_err(|e| failed("create directory", &e))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| failed("open directory", &e))?
            .with_automatic_cleanup(true)
            .with_fsync(self.fsync);
        Ok(Arc::new(ObjectStorage::new(Arc::new(store), uri.raw)))
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
        let storage = ObjectStorage::new(store, uri.raw).with_root(&uri.segments.join("/"))?;
        Ok(Arc::new(storage))
    }
}

impl StorageOpener for NativeOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        let parsed = StorageUri::parse(uri)?;
        match parsed.scheme.as_str() {
            "nodelocal" => {
                parsed.check_params()?;
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
                parsed.check_params()?;
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
                parsed.check_params()?;
                self.open_memory(&parsed)
            }
            other => Err(Error::NotSupported { feature: format!("{other} storage") }),
        }
    }
}

/// The parts of a storage URI `scheme://host/seg/seg?k=v&k=v`, percent-decoded.
struct StorageUri<'a> {
    raw: &'a str,
    /// Lower-cased.
    scheme: String,
    host: &'a str,
    /// Non-empty, decoded, never `.` or `..`.
    segments: Vec<String>,
    /// Decoded names; values are not kept.
    params: Vec<String>,
}

impl<'a> StorageUri<'a> {
    fn parse(raw: &'a str) -> Result<StorageUri<'a>> {
        let fail = |message: String| Err(invalid_uri(raw, &message));
        if let Some(c) = raw.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return fail(format!("it contains the character {c:?}; percent-encode it"));
        }
        const EXAMPLE: &str = "expected a URI such as nodelocal://1/backups or file:///var/backups";
        let Some((scheme, rest)) = raw.split_once("://") else {
            return match raw.split_once(':') {
                Some((scheme, _)) if !scheme.contains('/') => {
                    fail(format!("\"{scheme}:\" is not followed by \"//\": {EXAMPLE}"))
                }
                _ => fail(format!("it has no scheme: {EXAMPLE}")),
            };
        };
        let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return fail(format!("{scheme:?} is not a URI scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(Error::NotSupported { feature: format!("{scheme} storage") });
        }
        if rest.contains('#') {
            return fail("'#' starts a fragment, which storage URIs do not have; percent-encode it as %23".into());
        }
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        if host.contains('@') {
            return fail(format!("{scheme} URIs take no user or password"));
        }
        if host.contains(':') {
            return fail(format!("{scheme} URIs take no port"));
        }
        let mut segments = Vec::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let decoded = percent_decode(segment);
            if decoded == "." || decoded == ".." {
                return fail(format!("the path may not contain {decoded:?} segments"));
            }
            if decoded.contains('/') || decoded.chars().any(|c| c.is_control()) {
                return fail(format!("the path segment {segment:?} decodes to '/' or a control character"));
            }
            segments.push(decoded);
        }
        let params = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| percent_decode(p.split_once('=').map_or(p, |(k, _)| k)))
            .collect();
        Ok(StorageUri { raw, scheme, host, segments, params })
    }

    /// Rejects query parameters the scheme does not know.
    fn check_params(&self) -> Result<()> {
        match self.params.iter().find(|p| !IGNORED_PARAMS.iter().any(|i| i.eq_ignore_ascii_case(p))) {
            Some(unknown) => Err(self.invalid(&format!("unknown parameter {unknown:?} for {} storage", self.scheme))),
            None => Ok(()),
        }
    }

    fn invalid(&self, message: &str) -> Error {
        invalid_uri(self.raw, message)
    }
}

/// `invalid storage URI: '<redacted uri>': <message>`, with every secret of the URI scrubbed,
/// also those [`redact_uri`] misses (a percent-encoded parameter name).
fn invalid_uri(raw: &str, message: &str) -> Error {
    let before_query = raw.split('?').next().unwrap_or_default();
    let shown = match before_query.rfind('@') {
        // Without `://`, user info cannot be told from the rest: hide everything before the '@'.
        Some(at) if !before_query.contains("://") => redact_uri(&format!("{REDACTED}@{}", &raw[at + 1..])),
        _ => redact_uri(raw),
    };
    let mut message = format!("'{shown}': {message}");
    for secret in secrets_of(raw) {
        message = message.replace(&secret, REDACTED);
    }
    Error::InvalidArgument { what: "storage URI".into(), message }
}
