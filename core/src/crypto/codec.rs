//! [`FileCodec`]: how a backup's files are stored — as they are, or sealed with the chain's key.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::aead::{self, Opener, DEFAULT_CHUNK_SIZE, HEADER_LEN, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::crypto::DataKey;
use crate::error::{Error, Result};
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;

/// How the files strata writes into a backup directory are stored: plain (the default, the
/// format of unencrypted backups), or encrypted with a chain's [`DataKey`] in the chunked format
/// of [`aead`]. Backup seals every file it writes with it, restore opens every file it reads.
///
/// `path` arguments are paths relative to the backup layer's directory (`data/….sst`,
/// `BACKUP_MANIFEST`); they are bound into the encryption, so a file read at another path than
/// it was written at fails. `shown` arguments name the file in errors.
#[derive(Clone)]
pub struct FileCodec {
    key: Option<Arc<DataKey>>,
    chunk_size: u32,
}

impl Default for FileCodec {
    fn default() -> Self {
        FileCodec::plain()
    }
}

impl fmt::Debug for FileCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            None => f.write_str("FileCodec::Plain"),
            Some(_) => write!(f, "FileCodec::Encrypted {{ key: redacted, chunk_size: {} }}", self.chunk_size),
        }
    }
}

impl FileCodec {
    /// Files stored as they are.
    pub fn plain() -> FileCodec {
        FileCodec { key: None, chunk_size: DEFAULT_CHUNK_SIZE }
    }

    /// Files encrypted with `key`.
    pub fn encrypted(key: DataKey) -> FileCodec {
        FileCodec { key: Some(Arc::new(key)), chunk_size: DEFAULT_CHUNK_SIZE }
    }

    /// Sets the plaintext bytes per chunk of files sealed from now on (clamped to
    /// 64 B ..= 16 MiB). Readers take the chunk size from each file's header.
    pub fn with_chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = bytes.clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE);
        self
    }

    /// Whether files are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// The data key, when encrypting.
    pub fn key(&self) -> Option<&DataKey> {
        self.key.as_deref()
    }

    /// The bytes to store for the file at `path` holding `bytes`.
    pub fn seal(&self, path: &str, bytes: Vec<u8>) -> Vec<u8> {
        match &self.key {
            None => bytes,
            Some(key) => aead::seal(key, path, &bytes, self.chunk_size),
        }
    }

    /// The contents of the file at `path` from its whole stored bytes.
    pub fn open(&self, path: &str, stored: Bytes, shown: &str) -> Result<Bytes> {
        match &self.key {
            None => Ok(stored),
            Some(key) => Ok(Bytes::from(aead::open(key, path, &stored, shown)?)),
        }
    }

    /// A reader of byte ranges of the contents of the file at `path`, whose stored size is
    /// `stored_size` (an encrypted file's header is fetched once, here).
    pub async fn reader<'a>(
        &self,
        storage: &'a dyn ExternalStorage,
        path: &str,
        stored_size: u64,
        shown: &str,
    ) -> Result<FileReader<'a>> {
        let opener = match &self.key {
            None => None,
            Some(key) => {
                let header = if stored_size >= HEADER_LEN {
                    storage.get_range(path, 0..HEADER_LEN).await?
                } else {
                    Bytes::new()
                };
                Some(Opener::new(key, path, &header, stored_size, shown)?)
            }
        };
        Ok(FileReader { storage, path: path.to_string(), shown: shown.to_string(), opener, stored_size })
    }
}

/// Reads plaintext byte ranges of one stored file (see [`FileCodec::reader`]).
pub struct FileReader<'a> {
    storage: &'a dyn ExternalStorage,
    path: String,
    shown: String,
    opener: Option<Opener>,
    stored_size: u64,
}

impl FileReader<'_> {
    /// The size of the file's contents.
    pub fn plain_size(&self) -> u64 {
        self.opener.as_ref().map_or(self.stored_size, |o| o.layout().plain)
    }

    /// Bytes `range` of the file's contents: a ranged read of the chunks covering them, decrypted.
    pub async fn read_range(&self, range: Range<u64>) -> Result<Bytes> {
        let Some(opener) = &self.opener else {
            return self.storage.get_range(&self.path, range).await;
        };
        if range.start > range.end || range.end > opener.layout().plain {
            return Err(Error::corrupt(
                &self.shown,
                format!("bytes {}..{} are outside its {} bytes of contents", range.start, range.end, self.plain_size()),
            ));
        }
        let chunks = opener.layout().chunks_for(&range);
        if chunks.is_empty() {
            return Ok(Bytes::new());
        }
        let stored = self.storage.get_range(&self.path, opener.layout().stored_range(&chunks)).await?;
        let plain = opener.open_chunks(chunks.start, &stored)?;
        let offset = (range.start - chunks.start * opener.layout().chunk_size as u64) as usize;
        Ok(Bytes::from(plain).slice(offset..offset + (range.end - range.start) as usize))
    }
}
