//! Keys for encrypted backups on native platforms: [`os_entropy`], the operating system's random
//! bytes, and `file-kms://`, a key-encryption key kept in a local file.
//!
//! ```text
//!   BACKUP … WITH kms = 'file-kms:///etc/strata/backup.key'
//!        │
//!        └─ FileKmsOpener::open ─▶ FileKey (32 bytes from the file) ─ wrap/unwrap ─▶ the chain's data key
//! ```
//!
//! A key file holds 32 random bytes as 64 hexadecimal digits (whitespace around them is
//! ignored); `strata keygen FILE` makes one, readable by its owner only. The key's id, stored in
//! `ENCRYPTION-INFO` to find the entry it wraps, is `file-kms:` and 16 hex digits of a hash of
//! the key — not its path, so the file may move. Wrapping is AES-256-GCM with a random nonce.
//!
//! ```
//! use strata_core::KmsOpener;
//! use strata_native::{generate_key_file, FileKmsOpener};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("backup.key");
//! generate_key_file(&path).unwrap();
//! let key = FileKmsOpener.open(&format!("file-kms://{}", path.display())).unwrap();
//! let wrapped = key.wrap(&[7u8; 32]).await.unwrap();
//! assert_eq!(key.unwrap(&wrapped).await.unwrap(), vec![7u8; 32]);
//! assert!(key.key_id().starts_with("file-kms:"));
//! # }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use async_trait::async_trait;
use strata_core::manifest::sha256;
use strata_core::{redact_uri, Entropy, Error, KeyProvider, KmsOpener, Result};
use zeroize::Zeroizing;

/// The scheme of keys in local files: `file-kms:///absolute/path/to/keyfile`.
pub const FILE_KMS_SCHEME: &str = "file-kms";

/// The operating system's random bytes (`getrandom`), for `Executor::with_entropy`.
pub fn os_entropy() -> Entropy {
    Entropy::new(|buf| getrandom::fill(buf).map_err(|e| e.to_string()))
}

/// Writes a new key file at `path`: 32 random bytes as hex and a newline, created (never
/// overwritten) with mode 0600 on Unix.
pub fn generate_key_file(path: &Path) -> std::io::Result<()> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..]).map_err(std::io::Error::other)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(&key[..])));
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Opens `file-kms:///path` URIs (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileKmsOpener;

impl KmsOpener for FileKmsOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn KeyProvider>> {
        let shown = redact_uri(uri);
        let invalid = |message: String| Error::InvalidArgument { what: "KMS URI".into(), message };
        let Some(rest) = uri.strip_prefix("file-kms://") else {
            let scheme = uri.split("://").next().unwrap_or(uri);
            return Err(Error::NotSupported {
                feature: format!(
                    "KMS scheme '{scheme}' (in '{shown}'; this build has {FILE_KMS_SCHEME}:///path/to/keyfile)"
                ),
            });
        };
        if !rest.starts_with('/') || rest.contains(['?', '#']) {
            return Err(invalid(format!(
                "'{shown}' must name an absolute path to a key file, as {FILE_KMS_SCHEME}:///path/to/keyfile"
            )));
        }
        let path = PathBuf::from(strata_core::percent_decode(&format!("key file path of '{shown}'"), rest)?);
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| Error::Storage {
            path: shown.clone(),
            message: format!("cannot read the key file {}: {e}", path.display()),
            status: if e.kind() == std::io::ErrorKind::NotFound {
                strata_core::Status::Permanent
            } else {
                strata_core::Status::Temporary
            },
        })?);
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut key[..]).map_err(|_| {
            invalid(format!("the key file {} must hold 64 hexadecimal digits (32 bytes)", path.display()))
        })?;
        let digest = sha256(&[b"strata file-kms key id v1".as_slice(), &key[..]].concat());
        let id = format!("{FILE_KMS_SCHEME}:{}", hex::encode(&digest[..8]));
        Ok(Arc::new(FileKey { id, key, shown }))
    }
}

/// A key-encryption key read from a key file.
struct FileKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
    shown: String,
}

impl FileKey {
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.key[..]).expect("32-byte key")
    }

    fn aad(&self) -> Vec<u8> {
        [b"strata file-kms v1 ".as_slice(), self.id.as_bytes()].concat()
    }
}

/// Wrapped form: version (1) | nonce (12) | AES-256-GCM ciphertext and tag.
const WRAP_VERSION: u8 = 1;

#[async_trait]
impl KeyProvider for FileKey {
    fn key_id(&self) -> String {
        self.id.clone()
    }

    async fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        os_entropy().fill(&mut nonce)?;
        let ciphertext = self
            .cipher()
            .encrypt(GenericArray::from_slice(&nonce), Payload { msg: data_key, aad: &self.aad() })
            .expect("AES-GCM encrypts a key");
        Ok([&[WRAP_VERSION][..], &nonce, &ciphertext].concat())
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>> {
        let wrong = || Error::WrongKey(format!("the key of {} did not wrap this data key", self.shown));
        if wrapped.len() < 1 + 12 + 16 || wrapped[0] != WRAP_VERSION {
            return Err(wrong());
        }
        self.cipher()
            .decrypt(GenericArray::from_slice(&wrapped[1..13]), Payload { msg: &wrapped[13..], aad: &self.aad() })
            .map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wraps_unwraps_and_refuses_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.key"), dir.path().join("b%20c.key"));
        generate_key_file(&a).unwrap();
        generate_key_file(&b).unwrap();
        assert!(generate_key_file(&a).is_err(), "never overwrites a key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let ka = FileKmsOpener.open(&format!("file-kms://{}", a.display())).unwrap();
        let kb = FileKmsOpener.open(&format!("file-kms://{}", dir.path().join("b%2520c.key").display())).unwrap();
        assert_ne!(ka.key_id(), kb.key_id());
        let wrapped = ka.wrap(&[9; 32]).await.unwrap();
        assert_ne!(wrapped, ka.wrap(&[9; 32]).await.unwrap(), "a random nonce per wrap");
        assert_eq!(ka.unwrap(&wrapped).await.unwrap(), vec![9; 32]);
        let err = kb.unwrap(&wrapped).await.unwrap_err();
        assert!(matches!(err, Error::WrongKey(_)), "{err:?}");
        // The same key at another path has the same id.
        let moved = dir.path().join("moved.key");
        std::fs::copy(&a, &moved).unwrap();
        let km = FileKmsOpener.open(&format!("file-kms://{}", moved.display())).unwrap();
        assert_eq!(km.key_id(), ka.key_id());
        assert_eq!(km.unwrap(&wrapped).await.unwrap(), vec![9; 32]);
    }

    #[test]
    fn bad_uris_and_key_files_are_named_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not hex at all").unwrap();
        let err = FileKmsOpener.open(&format!("file-kms://{}", bad.display())).err().unwrap();
        assert!(err.to_string().contains("64 hexadecimal digits"), "{err}");
        let err = FileKmsOpener.open("file-kms://relative/key").err().unwrap();
        assert!(err.to_string().contains("absolute path"), "{err}");
        let err = FileKmsOpener.open("aws-kms:///arn?AUTH=implicit").err().unwrap();
        assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
        let err = FileKmsOpener.open("file-kms:///nonexistent/key").err().unwrap();
        assert!(err.to_string().contains("/nonexistent/key"), "{err}");
    }
}
