//! Encrypted backups: keys, the key-encryption keys that wrap them, and the chunked file format.
//!
//! ```text
//!   passphrase ──argon2id(salt, params)──▶ KEK ─┐
//!   KMS key (KeyProvider::wrap/unwrap) ─────────┼─ wrap/unwrap ─▶ data key (32 random bytes, one per chain)
//!                                               │                   │
//!   ENCRYPTION-INFO (plaintext, in the full     │                   ├─ HMAC ─▶ per-file key ─▶ AES-256-GCM chunks
//!   backup's directory): every wrapped copy ◀───┘                   │        (data/*.sst, BACKUP_MANIFEST, …)
//!   of the data key, KDF salt and parameters                        └─ HMAC ─▶ key check value
//! ```
//!
//! - [`kdf`]: argon2id with the parameters and salt stored beside each passphrase's wrapped key,
//!   so the cost can be raised for new keys while old backups still open with theirs.
//! - [`aead`]: the chunked file format every encrypted file uses; ranged reads decrypt only the
//!   chunks covering the wanted bytes.
//! - [`info`]: the `ENCRYPTION-INFO` file.
//! - [`keyring`]: the [`keyring::KeyProvider`] trait for KMS plugins, and how a chain's data key is made,
//!   found and re-wrapped (`ALTER BACKUP … ADD NEW_KMS / NEW_PASSPHRASE`).
//! - [`FileCodec`]: the one value backup and restore pass around — plain, or encrypting with a
//!   chain's data key.
//!
//! The core does no IO and reads no clock; randomness (for data keys, salts and wrapping nonces)
//! arrives as an [`Entropy`] set on the executor. Files are sealed deterministically from the
//! data key, their path and their contents (see [`aead`]), so sealing needs no randomness and a
//! re-run of the same backup writes the same bytes.

pub mod aead;
mod codec;
pub mod info;
pub mod kdf;
pub mod keyring;

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub use codec::{FileCodec, FileReader};

/// Bytes of a data key (AES-256).
pub const KEY_LEN: usize = 32;

#[cfg(not(target_arch = "wasm32"))]
type EntropyFn = dyn Fn(&mut [u8]) -> std::result::Result<(), String> + Send + Sync;
#[cfg(target_arch = "wasm32")]
type EntropyFn = dyn Fn(&mut [u8]) -> std::result::Result<(), String>;

/// A source of cryptographically secure random bytes, handed to the core by its host: the OS's
/// (`getrandom`) natively, the Web Crypto API's in wasm.
///
/// # Contract
/// The function fills the whole buffer with unpredictable bytes, or fails with a message; it is
/// never asked for more than a few dozen bytes at a time.
#[derive(Clone)]
pub struct Entropy(Arc<EntropyFn>);

impl Entropy {
    /// Entropy from a fill function.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(fill: impl Fn(&mut [u8]) -> std::result::Result<(), String> + Send + Sync + 'static) -> Entropy {
        Entropy(Arc::new(fill))
    }

    /// Entropy from a fill function.
    #[cfg(target_arch = "wasm32")]
    pub fn new(fill: impl Fn(&mut [u8]) -> std::result::Result<(), String> + 'static) -> Entropy {
        Entropy(Arc::new(fill))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) -> Result<()> {
        (self.0)(buf).map_err(|e| Error::Precondition(format!("cannot get random bytes from the host: {e}")))
    }

    /// `N` random bytes.
    pub(crate) fn array<const N: usize>(&self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy(..)")
    }
}

/// A backup chain's data key: 32 random bytes, made at the full backup, that every file of every
/// layer of the chain is encrypted with (through per-file keys). Never printed; zeroed on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate(entropy: &Entropy) -> Result<DataKey> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        entropy.fill(&mut key[..])?;
        Ok(DataKey(key))
    }

    /// A data key from its bytes (as a [`keyring::KeyProvider`] returns them).
    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(bytes)))
    }

    /// The key's bytes, to wrap with a key-encryption key. Never show them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A value that identifies the key without revealing it: stored in `ENCRYPTION-INFO` so an
    /// unwrapped key is checked before use.
    pub fn check_value(&self) -> [u8; 16] {
        let full = self.prf(&[b"strata key check v1"]);
        full[..16].try_into().expect("16 of 32 bytes")
    }

    /// HMAC-SHA256 keyed by the data key over the concatenated parts.
    pub(crate) fn prf(&self, parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
        }
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(redacted)")
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &DataKey) -> bool {
        // Constant time is not needed for a test helper, but costs nothing.
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Eq for DataKey {}
