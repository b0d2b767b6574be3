//! Checking a backup's files without restoring it — and, for an encrypted backup, without its key.
//!
//! Every file a manifest names is recorded with the size and SHA-256 of its *stored* bytes, so
//! checking it needs no decryption. An encrypted layer also keeps a plaintext list of its files
//! beside the manifest, so the checks need no key at all:
//!
//! ```text
//! BACKUP-FILES = magic "STRATAFL" | version: u16 LE (1) | postcard(FilesList) | SHA-256 of all bytes before it
//! ```
//!
//! It reveals no more than listing the directory does (names and sizes, whether the layer is a
//! full backup) plus each file's ciphertext digest. With the key, the manifest itself is decrypted and used, and the list is
//! checked against it.
//!
//! [`verify_chain`] reports each problem by file: missing, wrong size, wrong SHA-256, a manifest
//! that does not match its checksum or does not decrypt, a damaged `ENCRYPTION-INFO` or list.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::crypto::aead::is_sealed;
use crate::crypto::info::{EncryptionInfo, ENCRYPTION_INFO_NAME};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::exec::INCREMENTALS_DIR;
use crate::format::manifest::{
    sha256, verify_manifest_checksum, FileInfo, Manifest, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME,
};
use crate::result::QueryResult;
use crate::storage::ExternalStorageExt;
use crate::storage::{subdir, ExternalStorage};

/// Name of the plaintext file list of an encrypted layer.
pub const FILES_LIST_NAME: &str = "BACKUP-FILES";
/// Its magic.
pub const FILES_LIST_MAGIC: &[u8; 8] = b"STRATAFL";
/// The list format version this build writes.
pub const FILES_LIST_VERSION: u16 = 2;

/// One entry of `BACKUP-FILES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFile {
    /// Path relative to the layer's directory.
    pub path: String,
    /// Stored size.
    pub size: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: [u8; 32],
    /// The locality whose location holds it (`None`: the default location). Since version 2.
    pub locality: Option<String>,
}

impl From<&FileInfo> for ListedFile {
    fn from(f: &FileInfo) -> ListedFile {
        ListedFile { path: f.path.clone(), size: f.size, sha256: f.sha256, locality: f.locality.clone() }
    }
}

/// Version 1 of `BACKUP-FILES`, frozen: read and converted, never written.
#[derive(Deserialize)]
struct FilesListV1 {
    full: bool,
    files: Vec<ListedFileV1>,
}

#[derive(Deserialize)]
struct ListedFileV1 {
    path: String,
    size: u64,
    sha256: [u8; 32],
}

impl From<FilesListV1> for FilesList {
    fn from(v1: FilesListV1) -> FilesList {
        FilesList {
            full: v1.full,
            files: v1
                .files
                .into_iter()
                .map(|f| ListedFile { path: f.path, size: f.size, sha256: f.sha256, locality: None })
                .collect(),
        }
    }
}

/// The contents of `BACKUP-FILES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesList {
    /// Whether the layer is a full backup (whose directory then holds `ENCRYPTION-INFO`).
    pub full: bool,
    /// Its data files.
    pub files: Vec<ListedFile>,
}

/// Encodes `BACKUP-FILES` for a layer.
pub fn encode_files_list(manifest: &Manifest) -> Vec<u8> {
    let list = FilesList { full: manifest.is_full(), files: manifest.files.iter().map(ListedFile::from).collect() };
    let mut out = Vec::with_capacity(64 + list.files.len() * 80);
    out.extend_from_slice(FILES_LIST_MAGIC);
    out.extend_from_slice(&FILES_LIST_VERSION.to_le_bytes());
    out.extend(postcard::to_allocvec(&list).expect("file lists serialize"));
    let digest = sha256(&out);
    out.extend_from_slice(&digest);
    out
}

/// Decodes `BACKUP-FILES` read from `shown`.
pub fn decode_files_list(bytes: &[u8], shown: &str) -> Result<FilesList> {
    if bytes.len() < 10 + 32 || &bytes[..8] != FILES_LIST_MAGIC {
        return Err(Error::corrupt(shown, "not a strata BACKUP-FILES list (bad magic or too short)"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if sha256(body) != digest {
        return Err(Error::corrupt(shown, "SHA-256 does not match its contents: the file is damaged"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let undecodable = |e: postcard::Error| Error::corrupt(shown, format!("BACKUP-FILES does not decode: {e}"));
    match version {
        1 => postcard::from_bytes::<FilesListV1>(&body[10..]).map(FilesList::from).map_err(undecodable),
        2 => postcard::from_bytes(&body[10..]).map_err(undecodable),
        _ => Err(Error::corrupt(
            shown,
            format!("BACKUP-FILES version {version} is not readable by this build (reads up to {FILES_LIST_VERSION})"),
        )),
    }
}

/// When a manifest does not match its checksum file, which of the two is damaged: with the
/// chain's key, the manifest's encryption tells (it authenticates, or not). `None` without a key.
pub fn blame_checksum_mismatch(dir: &dyn ExternalStorage, codec: &FileCodec, manifest: &Bytes) -> Option<Error> {
    if !codec.is_encrypted() {
        return None;
    }
    let shown = dir.describe();
    Some(match codec.open(MANIFEST_NAME, manifest.clone(), &format!("{shown}/{MANIFEST_NAME}")) {
        Ok(_) => Error::corrupt(
            format!("{shown}/{MANIFEST_CHECKSUM_NAME}"),
            format!("does not match {MANIFEST_NAME}, which is intact (its encryption authenticates it)"),
        ),
        Err(_) => Error::corrupt(
            format!("{shown}/{MANIFEST_NAME}"),
            format!("does not match {MANIFEST_CHECKSUM_NAME}, and fails authentication: the manifest is damaged"),
        ),
    })
}

/// A problem with one file of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file (its storage URI, redacted, and path).
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

/// What [`verify_chain`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Backup layers checked.
    pub layers: usize,
    /// Files checked (data files, manifests and their checksums, lists, `ENCRYPTION-INFO`).
    pub files: usize,
    /// Every problem found, in the order found.
    pub problems: Vec<FileProblem>,
}

impl VerifyReport {
    /// One row per problem: `path`, `problem` (no rows when every file is intact).
    pub fn to_result(&self) -> QueryResult {
        let mut r = QueryResult::new(&["path", "problem"]);
        for p in &self.problems {
            r.push(vec![p.path.clone().into(), p.problem.clone().into()]);
        }
        r
    }

    /// Merges another report into this one.
    pub fn extend(&mut self, other: VerifyReport) {
        self.layers += other.layers;
        self.files += other.files;
        self.problems.extend(other.problems);
    }

    fn problem(&mut self, dir: &dyn ExternalStorage, name: &str, problem: impl Into<String>) {
        self.problems.push(FileProblem { path: format!("{}/{name}", dir.describe()), problem: problem.into() });
    }

    fn error(&mut self, dir: &dyn ExternalStorage, name: &str, e: Error) {
        let problem = match e {
            Error::Corrupt { message, .. } => message,
            Error::NotFound { .. } => "missing".into(),
            e => e.to_string(),
        };
        self.problem(dir, name, problem);
    }
}

/// The layer directories of the chain rooted at `root`: `root`, then each layer appended under
/// `incrementals/` (found by any of its files, so a layer whose manifest is gone is still
/// checked), in name (time) order.
pub async fn layer_dirs(root: &Arc<dyn ExternalStorage>) -> Result<Vec<Arc<dyn ExternalStorage>>> {
    let mut dirs: Vec<String> = Vec::new();
    for o in root.list(&format!("{INCREMENTALS_DIR}/")).await? {
        let dir = match o.path.split_once("/data/") {
            Some((dir, _)) => dir,
            None => match o.path.rsplit_once('/') {
                Some((dir, name)) if LAYER_FILES.contains(&name) => dir,
                _ => continue,
            },
        };
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_string());
        }
    }
    dirs.sort();
    Ok(std::iter::once(root.clone()).chain(dirs.iter().map(|d| subdir(root, d))).collect())
}

/// The files every layer directory holds besides its data files.
const LAYER_FILES: &[&str] = &[MANIFEST_NAME, MANIFEST_CHECKSUM_NAME, FILES_LIST_NAME];

/// Checks every file of a chain: `ENCRYPTION-INFO` in `root` (the full backup's directory), and
/// each of `layers` (see [`verify_layer`]). `codec` is the chain's, when its key is known.
pub async fn verify_chain(
    root: &Arc<dyn ExternalStorage>,
    layers: &[Arc<dyn ExternalStorage>],
    codec: Option<&FileCodec>,
) -> VerifyReport {
    let mut report = VerifyReport::default();
    let root_sealed = match root.get_range(MANIFEST_NAME, 0..8).await {
        Ok(head) => is_sealed(&head),
        Err(_) => codec.is_some_and(FileCodec::is_encrypted),
    };
    // An encrypted layer listed on its own (`INCREMENTAL FROM`) has no ENCRYPTION-INFO: it is in
    // its chain's full backup. Its file list says which it is (a full backup when unknown).
    let root_is_full = match root.get(FILES_LIST_NAME).await {
        Ok(bytes) => decode_files_list(&bytes, "").map_or(true, |l| l.full),
        Err(_) => true,
    };
    match root.get(ENCRYPTION_INFO_NAME).await {
        Ok(bytes) => {
            report.files += 1;
            let shown = format!("{}/{ENCRYPTION_INFO_NAME}", root.describe());
            match EncryptionInfo::decode(&bytes, &shown) {
                Ok(info) => {
                    if let Some(key) = codec.and_then(FileCodec::key) {
                        if !info.opens_with(key) {
                            report.problem(root.as_ref(), ENCRYPTION_INFO_NAME, "does not hold this chain's key");
                        }
                    }
                }
                Err(e) => report.error(root.as_ref(), ENCRYPTION_INFO_NAME, e),
            }
        }
        Err(Error::NotFound { .. }) if root_sealed && root_is_full => {
            report.problem(root.as_ref(), ENCRYPTION_INFO_NAME, "missing, but the backup is encrypted")
        }
        Err(Error::NotFound { .. }) => {}
        Err(e) => report.error(root.as_ref(), ENCRYPTION_INFO_NAME, e),
    }
    for layer in layers {
        report.extend(verify_layer(layer.as_ref(), codec).await);
    }
    report
}

/// Checks one layer's directory: its manifest against its checksum (and, with the key, that it
/// decrypts), then every data file it names for existence, size and SHA-256 of the stored bytes.
/// Without the key, an encrypted layer's data files are taken from `BACKUP-FILES`.
pub async fn verify_layer(dir: &dyn ExternalStorage, codec: Option<&FileCodec>) -> VerifyReport {
    let mut report = VerifyReport { layers: 1, ..VerifyReport::default() };
    let manifest = read_or_report(dir, MANIFEST_NAME, &mut report).await;
    let checksum = read_or_report(dir, MANIFEST_CHECKSUM_NAME, &mut report).await;
    let mut intact = false;
    if let (Some(m), Some(c)) = (&manifest, &checksum) {
        match verify_manifest_checksum(m, c, "") {
            Ok(()) => intact = true,
            Err(_) => match codec.and_then(|codec| blame_checksum_mismatch(dir, codec, m)) {
                Some(Error::Corrupt { path, message }) => {
                    intact = path.ends_with(MANIFEST_CHECKSUM_NAME);
                    report.problems.push(FileProblem { path, problem: message });
                }
                _ => report.problem(
                    dir,
                    MANIFEST_NAME,
                    format!("does not match {MANIFEST_CHECKSUM_NAME} (one of the two is damaged)"),
                ),
            },
        }
    }
    let sealed = manifest.as_deref().is_some_and(is_sealed) || codec.is_some_and(FileCodec::is_encrypted);
    let plain = manifest.as_deref().is_some_and(|m| !is_sealed(m));
    // The files to check, and where their list came from.
    let mut files: Option<(Vec<ListedFile>, &str)> = None;
    if let Some(m) = manifest.filter(|_| intact || !sealed) {
        let shown = format!("{}/{MANIFEST_NAME}", dir.describe());
        let decoded = match (is_sealed(&m), codec) {
            (true, Some(c)) if c.is_encrypted() => Some(c.open(MANIFEST_NAME, m, &shown)),
            (true, _) => None,
            (false, Some(c)) if c.is_encrypted() => {
                Some(Err(Error::corrupt(&shown, "is not encrypted, but the backup chain is")))
            }
            (false, _) => Some(Ok(m)),
        };
        match decoded.map(|r| r.and_then(|plain| Manifest::decode(&plain, &shown))) {
            Some(Ok(m)) => files = Some((m.files.iter().map(ListedFile::from).collect(), "the manifest")),
            Some(Err(e)) => report.error(dir, MANIFEST_NAME, e),
            None => {}
        }
    }
    // An encrypted layer (or one whose manifest is gone) lists its files in BACKUP-FILES too.
    if !plain {
        let shown = format!("{}/{FILES_LIST_NAME}", dir.describe());
        match dir.get(FILES_LIST_NAME).await.and_then(|b| decode_files_list(&b, &shown)) {
            Ok(FilesList { files: listed, .. }) => {
                report.files += 1;
                match &files {
                    Some((from_manifest, _)) if *from_manifest != listed => {
                        report.problem(dir, FILES_LIST_NAME, "does not agree with the manifest")
                    }
                    Some(_) => {}
                    None => files = Some((listed, FILES_LIST_NAME)),
                }
            }
            Err(Error::NotFound { .. }) if !sealed => {}
            Err(e) => {
                report.files += 1;
                report.error(dir, FILES_LIST_NAME, e);
            }
        }
    }
    let Some((files, source)) = files else {
        report.problem(dir, "data/", "the data files cannot be checked: there is no intact list of them");
        return report;
    };
    for f in &files {
        report.files += 1;
        // A locality-aware backup keeps each file in its locality's location.
        let located;
        let dir: &dyn ExternalStorage = match &f.locality {
            None => dir,
            Some(tier) => {
                match dir.locality(tier) {
                    Some(location) => {
                        located = location;
                        located.as_ref()
                    }
                    None => {
                        report.problem(
                        dir,
                        &f.path,
                        format!("is stored in locality {tier}, whose URI was not given: list every location of the backup"),
                    );
                        continue;
                    }
                }
            }
        };
        match dir.size(&f.path).await {
            Err(Error::NotFound { .. }) => report.problem(dir, &f.path, format!("missing ({source} names it)")),
            Err(e) => report.error(dir, &f.path, e),
            Ok(n) if n != f.size => {
                report.problem(dir, &f.path, format!("size is {n} bytes, {source} says {}", f.size))
            }
            Ok(_) => match dir.get(&f.path).await {
                Ok(bytes) if sha256(&bytes) != f.sha256 => {
                    report.problem(dir, &f.path, format!("SHA-256 does not match {source}"))
                }
                Ok(_) => {}
                Err(e) => report.error(dir, &f.path, e),
            },
        }
    }
    report
}

async fn read_or_report(dir: &dyn ExternalStorage, name: &str, report: &mut VerifyReport) -> Option<Bytes> {
    report.files += 1;
    match dir.get(name).await {
        Ok(b) => Some(b),
        Err(Error::NotFound { .. }) => {
            report.problem(dir, name, "missing");
            None
        }
        Err(e) => {
            report.error(dir, name, e);
            None
        }
    }
}
