//! `ENCRYPTION-INFO`: the wrapped copies of a chain's data key, in plaintext in the full backup's
//! directory.
//!
//! ```text
//! ENCRYPTION-INFO = magic "STRATAEI" | version: u16 LE (1) | postcard(EncryptionInfo) | SHA-256 of all bytes before it
//! ```
//!
//! It holds no secret: each entry is the data key encrypted (AES-256-GCM) under one
//! key-encryption key — a passphrase's (argon2id with the entry's own salt and parameters) or a
//! KMS key's (wrapped by the KMS). Adding an entry (`ALTER BACKUP … ADD NEW_PASSPHRASE`/`NEW_KMS`)
//! rewrites only this file; removing one would too. The trailing SHA-256 lets damage be told
//! apart from a wrong passphrase, and be found without any key.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use serde::{Deserialize, Serialize};

use crate::crypto::kdf::{KdfParams, MAX_COST, SALT_LEN};
use crate::crypto::{DataKey, Entropy};
use crate::envelope::ENCRYPTION_INFO;
use crate::error::{Error, Result};

/// The most wrapped copies of the data key an `ENCRYPTION-INFO` holds (passphrases and KMS keys).
pub const MAX_KEYS: usize = 16;
/// The most passphrase copies it holds: each may cost one KDF run when the backup is opened.
pub const MAX_PASSPHRASES: usize = 8;
/// The most KDF work all its passphrase copies together may ask for, in KiB-passes: four
/// maximum-cost derivations ([`MAX_COST`]). Opening a backup with a wrong passphrase runs every
/// one of them, so this bounds the time a hostile `ENCRYPTION-INFO` can make a restore or
/// `verify` spend (about ten seconds) where it would otherwise be unbounded.
pub const MAX_TOTAL_COST: u64 = 4 * MAX_COST;

/// Its magic.
pub const MAGIC: &[u8; 8] = ENCRYPTION_INFO.magic();
/// The format version this build writes.
pub const VERSION: u16 = ENCRYPTION_INFO.version();

/// One wrapped copy of the data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WrappedKey {
    /// Wrapped with the key argon2id derives from a passphrase.
    Passphrase {
        /// The KDF's parameters for this passphrase.
        kdf: KdfParams,
        /// The KDF's salt for this passphrase.
        salt: [u8; SALT_LEN],
        /// The AES-GCM nonce of the wrapping.
        nonce: [u8; 12],
        /// The wrapped data key (32 bytes and a 16-byte tag).
        ciphertext: Vec<u8>,
    },
    /// Wrapped by a KMS key through a [`crate::crypto::keyring::KeyProvider`].
    Kms {
        /// The provider's [`crate::crypto::keyring::KeyProvider::key_id`].
        key_id: String,
        /// What the provider's `wrap` returned.
        ciphertext: Vec<u8>,
    },
}

/// The contents of `ENCRYPTION-INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// [`DataKey::check_value`] of the chain's data key.
    pub key_check: [u8; 16],
    /// Every wrapped copy of the data key.
    pub keys: Vec<WrappedKey>,
}

impl EncryptionInfo {
    /// An info for `key` with no wrapped copies yet.
    pub fn new(key: &DataKey) -> EncryptionInfo {
        EncryptionInfo { key_check: key.check_value(), keys: Vec::new() }
    }

    /// Encodes the file.
    pub fn encode(&self) -> Vec<u8> {
        ENCRYPTION_INFO.encode(self)
    }

    /// Decodes the file read from `shown`.
    pub fn decode(bytes: &[u8], shown: &str) -> Result<EncryptionInfo> {
        let info: EncryptionInfo = ENCRYPTION_INFO.decode(bytes, shown)?;
        info.check_bounds().map_err(|why| Error::corrupt(shown, why))?;
        for k in &info.keys {
            if let WrappedKey::Passphrase { kdf, .. } = k {
                kdf.check(shown)?;
            }
        }
        Ok(info)
    }

    /// Whether opening it costs bounded work: at most [`MAX_KEYS`] copies, [`MAX_PASSPHRASES`]
    /// of them passphrases, whose KDF costs add up to at most [`MAX_TOTAL_COST`]. Checked
    /// before any KDF runs; the message says which bound is crossed.
    pub fn check_bounds(&self) -> std::result::Result<(), String> {
        let kdfs: Vec<&KdfParams> = self
            .keys
            .iter()
            .filter_map(|k| match k {
                WrappedKey::Passphrase { kdf, .. } => Some(kdf),
                WrappedKey::Kms { .. } => None,
            })
            .collect();
        if self.keys.len() > MAX_KEYS || kdfs.len() > MAX_PASSPHRASES {
            return Err(format!(
                "holds {} wrapped keys ({} passphrases): more than the {MAX_KEYS} ({MAX_PASSPHRASES} passphrases) \
                 strata writes or opens",
                self.keys.len(),
                kdfs.len()
            ));
        }
        let total = kdfs.iter().map(|k| k.cost()).fold(0u64, u64::saturating_add);
        if total > MAX_TOTAL_COST {
            return Err(format!(
                "its passphrases ask for {total} KiB-passes of argon2id work in all, more than the {MAX_TOTAL_COST} \
                 strata spends opening a backup"
            ));
        }
        Ok(())
    }

    /// Adds a copy of `key` wrapped with `passphrase` (a fresh salt, the given KDF parameters).
    pub fn add_passphrase(&mut self, key: &DataKey, passphrase: &str, kdf: KdfParams, entropy: &Entropy) -> Result<()> {
        let salt: [u8; SALT_LEN] = entropy.array()?;
        let kek = kdf.derive(passphrase, &salt)?;
        self.add_derived(key, kdf, salt, &kek, entropy)
    }

    /// [`EncryptionInfo::add_passphrase`] with the key-encryption key already derived from the
    /// passphrase with `kdf` and `salt` (by [`KdfParams::derive`], which may run elsewhere).
    pub(crate) fn add_derived(
        &mut self,
        key: &DataKey,
        kdf: KdfParams,
        salt: [u8; SALT_LEN],
        kek: &[u8; crate::crypto::KEY_LEN],
        entropy: &Entropy,
    ) -> Result<()> {
        let nonce: [u8; 12] = entropy.array()?;
        let cipher = Aes256Gcm::new_from_slice(&kek[..]).expect("32-byte key");
        let aad = passphrase_aad(&kdf, &salt, &self.key_check);
        let ciphertext = cipher
            .encrypt(GenericArray::from_slice(&nonce), Payload { msg: key.expose(), aad: &aad })
            .expect("AES-GCM encrypts 32 bytes");
        self.keys.push(WrappedKey::Passphrase { kdf, salt, nonce, ciphertext });
        if let Err(why) = self.check_bounds() {
            self.keys.pop();
            return Err(Error::invalid(
                "NEW_PASSPHRASE",
                format!("the backup's ENCRYPTION-INFO would be refused: it {why}"),
            ));
        }
        Ok(())
    }

    /// Whether any copy is wrapped with a passphrase.
    pub fn has_passphrase(&self) -> bool {
        self.keys.iter().any(|k| matches!(k, WrappedKey::Passphrase { .. }))
    }

    /// The ids of the KMS keys holding a copy.
    pub fn kms_key_ids(&self) -> Vec<&str> {
        self.keys
            .iter()
            .filter_map(|k| match k {
                WrappedKey::Kms { key_id, .. } => Some(key_id.as_str()),
                WrappedKey::Passphrase { .. } => None,
            })
            .collect()
    }

    /// The data key, unwrapped with `passphrase`; `None` when no passphrase copy opens with it.
    /// Each distinct (parameters, salt) costs one KDF run.
    pub fn unwrap_passphrase(&self, passphrase: &str) -> Result<Option<DataKey>> {
        for k in &self.keys {
            let WrappedKey::Passphrase { kdf, salt, nonce, ciphertext } = k else { continue };
            let kek = kdf.derive(passphrase, salt)?;
            let cipher = Aes256Gcm::new_from_slice(&kek[..]).expect("32-byte key");
            let aad = passphrase_aad(kdf, salt, &self.key_check);
            let Ok(plain) = cipher.decrypt(GenericArray::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            else {
                continue;
            };
            let plain = zeroize::Zeroizing::new(plain);
            if let Some(key) = DataKey::from_bytes(&plain).filter(|k| self.opens_with(k)) {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// Whether `key` is the chain's data key.
    pub fn opens_with(&self, key: &DataKey) -> bool {
        key.check_value() == self.key_check
    }
}

fn passphrase_aad(kdf: &KdfParams, salt: &[u8; SALT_LEN], key_check: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"strata passphrase-wrapped key v1".to_vec();
    aad.extend(postcard::to_allocvec(kdf).expect("params serialize"));
    aad.extend_from_slice(salt);
    aad.extend_from_slice(key_check);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn counter_entropy() -> Entropy {
        let n = std::sync::atomic::AtomicU8::new(0);
        Entropy::new(move |b| {
            for x in b.iter_mut() {
                *x = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
    }

    #[test]
    fn passphrases_unwrap_and_damage_is_named() {
        let e = counter_entropy();
        let key = DataKey::generate(&e).unwrap();
        let mut info = EncryptionInfo::new(&key);
        let cheap = KdfParams::argon2id(64, 1, 1).unwrap();
        info.add_passphrase(&key, "one", cheap, &e).unwrap();
        info.add_passphrase(&key, "two", KdfParams::argon2id(128, 2, 1).unwrap(), &e).unwrap();
        let bytes = info.encode();
        let back = EncryptionInfo::decode(&bytes, "x/ENCRYPTION-INFO").unwrap();
        assert_eq!(back, info);
        assert_eq!(back.unwrap_passphrase("one").unwrap(), Some(key.clone()));
        assert_eq!(back.unwrap_passphrase("two").unwrap(), Some(key));
        assert_eq!(back.unwrap_passphrase("three").unwrap(), None);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            let err = EncryptionInfo::decode(&bad, "x/ENCRYPTION-INFO").unwrap_err();
            assert!(err.to_string().starts_with("corrupt x/ENCRYPTION-INFO: "), "{err}");
        }
    }

    #[test]
    fn too_many_or_too_costly_passphrases_are_refused_before_any_kdf_runs() {
        let e = counter_entropy();
        let key = DataKey::generate(&e).unwrap();
        let mut info = EncryptionInfo::new(&key);
        let cheap = KdfParams::argon2id(8, 1, 1).unwrap();
        for i in 0..MAX_PASSPHRASES {
            info.add_passphrase(&key, &format!("p{i}"), cheap, &e).unwrap();
        }
        let err = info.add_passphrase(&key, "one more", cheap, &e).unwrap_err();
        assert!(err.to_string().contains("would be refused"), "{err}");
        assert_eq!(info.keys.len(), MAX_PASSPHRASES);
        EncryptionInfo::decode(&info.encode(), "x/ENCRYPTION-INFO").unwrap();

        let mut forged = info.clone();
        forged.keys.push(forged.keys[0].clone());
        let err = EncryptionInfo::decode(&forged.encode(), "x/ENCRYPTION-INFO").unwrap_err();
        assert!(err.to_string().starts_with("corrupt x/ENCRYPTION-INFO: holds 9 wrapped keys"), "{err}");

        // Each entry within its own bound, together past the total.
        let max = KdfParams::argon2id(1 << 20, 4, 1).unwrap();
        let mut costly = EncryptionInfo::new(&key);
        costly.keys = vec![WrappedKey::Passphrase { kdf: max, salt: [0; 16], nonce: [0; 12], ciphertext: vec![] }; 5];
        let err = EncryptionInfo::decode(&costly.encode(), "x/ENCRYPTION-INFO").unwrap_err();
        assert!(err.to_string().contains("KiB-passes of argon2id work in all"), "{err}");
        costly.keys.pop();
        EncryptionInfo::decode(&costly.encode(), "x/ENCRYPTION-INFO").unwrap();
    }
}
