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

use bytes::Bytes;

use crate::chain::blame_checksum_mismatch;
use crate::crypto::aead::is_sealed;
use crate::crypto::info::EncryptionInfo;
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
pub use crate::format::files_list::{
    decode_files_list, encode_files_list, FilesList, ListedFile, FILES_LIST_MAGIC, FILES_LIST_VERSION,
};
use crate::format::manifest::{sha256, verify_manifest_checksum, Manifest};
use crate::layout::{self, ENCRYPTION_INFO_NAME, FILES_LIST_NAME, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME};
use crate::locality::Locations;
use crate::result::QueryResult;
use crate::storage::{ExternalStorage, ExternalStorageExt};

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
pub async fn layer_dirs(root: &Locations) -> Result<Vec<Locations>> {
    let dirs = layout::layer_dirs(root.storage().as_ref()).await?;
    Ok(std::iter::once(root.clone()).chain(dirs.iter().map(|d| root.subdir(d))).collect())
}

/// Checks every file of a chain: `ENCRYPTION-INFO` in `root` (the full backup's directory), and
/// each of `layers` (see [`verify_layer`]). `codec` is the chain's, when its key is known.
pub async fn verify_chain(root: &Locations, layers: &[Locations], codec: Option<&FileCodec>) -> VerifyReport {
    let root = root.storage();
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
        report.extend(verify_layer(layer, codec).await);
    }
    report
}

/// Checks one layer's directory: its manifest against its checksum (and, with the key, that it
/// decrypts), then every data file it names for existence, size and SHA-256 of the stored bytes.
/// Without the key, an encrypted layer's data files are taken from `BACKUP-FILES`.
pub async fn verify_layer(locations: &Locations, codec: Option<&FileCodec>) -> VerifyReport {
    let dir = locations.storage().as_ref();
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
        let dir: &dyn ExternalStorage = match &f.locality {
            None => dir,
            Some(tier) => {
                match locations.tier(tier) {
                    Some(location) => location.as_ref(),
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
