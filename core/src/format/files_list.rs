//! `BACKUP-FILES`: the plaintext list of an encrypted layer's data files, beside its manifest, so
//! a backup can be checked without its key.
//!
//! ```text
//! BACKUP-FILES = magic "STRATAFL" | version: u16 LE (2) | postcard(FilesList) | SHA-256 of all bytes before it
//! ```
//!
//! It reveals no more than listing the directory does (names and sizes, whether the layer is a
//! full backup) plus each file's ciphertext digest. Version 1 had no localities; it is read
//! through its frozen struct.

use serde::{Deserialize, Serialize};

use crate::envelope::FILES_LIST;
use crate::error::Result;
use crate::format::manifest::{FileInfo, Manifest};

/// Its magic.
pub const FILES_LIST_MAGIC: &[u8; 8] = FILES_LIST.magic();
/// The list format version this build writes.
pub const FILES_LIST_VERSION: u16 = FILES_LIST.version();

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
    FILES_LIST.encode(&list)
}

/// Decodes `BACKUP-FILES` read from `shown`, accepting every version this build knows.
pub fn decode_files_list(bytes: &[u8], shown: &str) -> Result<FilesList> {
    let (version, body) = FILES_LIST.open(bytes, shown)?;
    let undecodable = |e: postcard::Error| FILES_LIST.undecodable(shown, e);
    match version {
        1 => postcard::from_bytes::<FilesListV1>(body).map(FilesList::from).map_err(undecodable),
        FILES_LIST_VERSION => postcard::from_bytes(body).map_err(undecodable),
        // `open` refuses versions past the current one; an older one without an arm here is a
        // build that forgot its frozen struct.
        v => Err(FILES_LIST.undecodable(shown, format!("no reader for version {v}"))),
    }
}
