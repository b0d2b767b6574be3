//! Key-encryption keys: the [`KeyProvider`] trait for KMS plugins, and the [`Keyring`] that wraps
//! a chain's data key for each passphrase and KMS key, and unwraps it again. Reading and writing
//! a chain's `ENCRYPTION-INFO` is the chain's business (`crate::chain`).

use std::sync::Arc;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::crypto::info::{EncryptionInfo, WrappedKey};
use crate::crypto::kdf::{KdfParams, SALT_LEN};
use crate::crypto::{DataKey, Entropy, FileCodec};
use crate::error::{Error, Result};
use crate::kv::MaybeSendSync;
use crate::offload::Offload;
use crate::redact::redact_uri;

/// A key-encryption key held by a key management service (or a local key file): it wraps and
/// unwraps a backup chain's 32-byte data key, which never leaves strata unwrapped.
///
/// Opened from a `kms = 'uri'` option by a [`KmsOpener`]. strata-native ships `file-kms:///path`,
/// a key in a local file; cloud KMS plugins implement the same trait, for example:
///
/// | URI (CockroachDB's forms) | `key_id` | `wrap` / `unwrap` |
/// | --- | --- | --- |
/// | `aws-kms:///{key ARN or alias}?AUTH=implicit&REGION=us-east-1` | the key's ARN | KMS `Encrypt` / `Decrypt` |
/// | `gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=implicit` | the key's resource name | Cloud KMS `encrypt` / `decrypt` |
/// | `azure-kms:///{key name}/{version}?AZURE_VAULT_NAME=…&AZURE_CLIENT_SECRET=…` | vault, key name and version | Key Vault `wrapKey` / `unwrapKey` |
///
/// # Contract
/// - [`KeyProvider::key_id`] names the key, not the URI: every URI naming the same key gives the
///   same id, and it holds no secret (it is stored in plaintext in `ENCRYPTION-INFO`, printed in
///   errors, and used to find the entry a provider can unwrap).
/// - [`KeyProvider::wrap`] returns bytes that only this key unwraps; it may be randomized, and
///   the result may be of any length.
/// - [`KeyProvider::unwrap`] returns exactly the bytes `wrap` was given, or fails when the bytes
///   were not wrapped by this key or were altered (an authenticated wrapping, as every KMS does).
///   strata also checks the result against the chain's key check value.
/// - Errors never contain key material or credentials (redact the URI).
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait KeyProvider: MaybeSendSync {
    /// The key's stable, non-secret identifier.
    fn key_id(&self) -> String;

    /// Wraps (encrypts) a data key.
    async fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>>;

    /// Unwraps what [`KeyProvider::wrap`] returned.
    async fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>>;
}

/// Opens [`KeyProvider`]s for `kms = 'uri'` options (like [`crate::StorageOpener`] for storage).
///
/// # Contract
/// An unknown scheme or malformed URI is an [`Error::InvalidArgument`] or [`Error::NotSupported`]
/// naming the URI redacted; opening does not need to contact the KMS.
pub trait KmsOpener: MaybeSendSync {
    /// The provider for `uri`.
    fn open(&self, uri: &str) -> Result<Arc<dyn KeyProvider>>;
}

/// The keys a statement gives: a passphrase, KMS URIs, or neither.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyRequest<'a> {
    /// `encryption_passphrase` (or `NEW_PASSPHRASE` / `OLD_PASSPHRASE`).
    pub passphrase: Option<&'a str>,
    /// `kms` (or `NEW_KMS` / `OLD_KMS`).
    pub kms: &'a [String],
}

impl<'a> KeyRequest<'a> {
    /// A request from a statement's options.
    pub fn new(passphrase: Option<&'a str>, kms: &'a [String]) -> KeyRequest<'a> {
        KeyRequest { passphrase, kms }
    }

    /// Whether no key is given.
    pub fn is_empty(&self) -> bool {
        self.passphrase.is_none() && self.kms.is_empty()
    }

    pub(crate) fn option_name(&self) -> &'static str {
        if self.passphrase.is_some() {
            "encryption_passphrase"
        } else {
            "kms"
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.passphrase.is_some() && !self.kms.is_empty() {
            return Err(Error::invalid("encryption options", crate::sql::BOTH_PASSPHRASE_AND_KMS));
        }
        if self.passphrase == Some("") {
            return Err(Error::invalid("encryption_passphrase", "the passphrase is empty"));
        }
        Ok(())
    }
}

/// What encryption needs from the host, and how it is tuned: randomness, a KMS opener, KDF
/// parameters for new passphrases, the chunk size of new files. Set on the executor
/// (`Executor::with_entropy`, …).
#[derive(Clone, Default)]
pub struct Keyring {
    entropy: Option<Entropy>,
    kms: Option<Arc<dyn KmsOpener>>,
    kdf: KdfParams,
    chunk_size: Option<u32>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("entropy", &self.entropy.is_some())
            .field("kms", &self.kms.is_some())
            .field("kdf", &self.kdf)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

impl Keyring {
    /// Sets the source of random bytes (needed to make keys; restores do without).
    pub fn with_entropy(mut self, entropy: Entropy) -> Self {
        self.entropy = Some(entropy);
        self
    }

    /// Sets how `kms = 'uri'` options are opened.
    pub fn with_kms_opener(mut self, opener: Arc<dyn KmsOpener>) -> Self {
        self.kms = Some(opener);
        self
    }

    /// Sets the KDF parameters of passphrases added from now on (existing backups keep theirs).
    pub fn with_kdf_params(mut self, kdf: KdfParams) -> Self {
        self.kdf = kdf;
        self
    }

    /// Sets the plaintext bytes per chunk of encrypted files written from now on.
    pub fn with_chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = Some(bytes);
        self
    }

    /// The KDF parameters new passphrases get.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf
    }

    pub(crate) fn codec(&self, key: DataKey) -> FileCodec {
        let codec = FileCodec::encrypted(key);
        match self.chunk_size {
            Some(n) => codec.with_chunk_size(n),
            None => codec,
        }
    }

    pub(crate) fn entropy(&self) -> Result<&Entropy> {
        self.entropy.as_ref().ok_or_else(|| {
            Error::Precondition(
                "encryption needs a source of random bytes, and none is configured (Executor::with_entropy)".into(),
            )
        })
    }

    pub(crate) fn kms_opener(&self) -> Result<&Arc<dyn KmsOpener>> {
        self.kms.as_ref().ok_or_else(|| {
            Error::Precondition(
                "kms = '…' needs a KMS, and none is configured for this executor (Executor::with_kms_opener)".into(),
            )
        })
    }

    /// Adds `key` wrapped with every key of `request` to `info`. The passphrase's argon2id
    /// derivation (a fraction of a second, the slow part) runs through `offload`, so that a new
    /// encrypted backup can scan and encrypt with `key` meanwhile.
    pub(crate) async fn wrap_into(
        &self,
        info: &mut EncryptionInfo,
        key: &DataKey,
        request: KeyRequest<'_>,
        offload: &Offload,
    ) -> Result<()> {
        if let Some(p) = request.passphrase {
            let entropy = self.entropy()?;
            let salt: [u8; SALT_LEN] = entropy.array()?;
            let (kdf, passphrase) = (self.kdf, Zeroizing::new(p.to_string()));
            let kek = offload.run(move || kdf.derive(&passphrase, &salt)).await??;
            info.add_derived(key, kdf, salt, &kek, entropy)?;
        }
        for uri in request.kms {
            let provider = self.kms_opener()?.open(uri)?;
            info.keys.push(self.wrap_kms(provider.as_ref(), uri, key).await?);
        }
        Ok(())
    }

    /// Wraps `key` with a KMS key, checking the provider unwraps it back.
    pub(crate) async fn wrap_kms(&self, provider: &dyn KeyProvider, uri: &str, key: &DataKey) -> Result<WrappedKey> {
        let ciphertext = provider.wrap(key.expose()).await?;
        let back = Zeroizing::new(provider.unwrap(&ciphertext).await?);
        if back.as_slice() != key.expose() {
            return Err(Error::Precondition(format!(
                "the KMS key {} does not unwrap what it wrapped; the provider is broken",
                redact_uri(uri)
            )));
        }
        Ok(WrappedKey::Kms { key_id: provider.key_id(), ciphertext })
    }

    /// The chain's data key, from the keys of `request`.
    pub(crate) async fn unwrap(&self, info: &EncryptionInfo, request: KeyRequest<'_>, shown: &str) -> Result<DataKey> {
        if let Some(p) = request.passphrase {
            if !info.has_passphrase() {
                return Err(Error::WrongKey(format!(
                    "the backup at {shown} is encrypted with a KMS key, not a passphrase: give kms = '…' ({})",
                    describe_keys(info)
                )));
            }
            return info.unwrap_passphrase(p)?.ok_or_else(|| {
                Error::WrongKey(format!("the passphrase is wrong: it does not open the encrypted backup at {shown}"))
            });
        }
        let ids = info.kms_key_ids();
        if ids.is_empty() {
            return Err(Error::WrongKey(format!(
                "the backup at {shown} is encrypted with a passphrase, not a KMS key: give encryption_passphrase = '…'"
            )));
        }
        let opener = self.kms_opener()?;
        let mut failures = Vec::new();
        for uri in request.kms {
            let provider = opener.open(uri)?;
            let id = provider.key_id();
            for k in &info.keys {
                let WrappedKey::Kms { key_id, ciphertext } = k else { continue };
                if *key_id != id {
                    continue;
                }
                match provider.unwrap(ciphertext).await {
                    Ok(bytes) => {
                        let bytes = Zeroizing::new(bytes);
                        match DataKey::from_bytes(&bytes).filter(|k| info.opens_with(k)) {
                            Some(key) => return Ok(key),
                            None => failures.push(format!("{id}: unwrapped a key that is not the backup's")),
                        }
                    }
                    Err(e) => failures.push(format!("{id}: {e}")),
                }
            }
        }
        let given: Vec<String> = request.kms.iter().map(|u| redact_uri(u)).collect();
        let failures = if failures.is_empty() { String::new() } else { format!("; {}", failures.join("; ")) };
        Err(Error::WrongKey(format!(
            "the KMS key is wrong: {} does not open the encrypted backup at {shown} ({}){failures}",
            given.join(", "),
            describe_keys(info)
        )))
    }
}

/// `a passphrase and KMS keys file-kms:ab12…`, for messages.
pub(crate) fn describe_keys(info: &EncryptionInfo) -> String {
    let mut parts = Vec::new();
    let n = info.keys.iter().filter(|k| matches!(k, WrappedKey::Passphrase { .. })).count();
    match n {
        0 => {}
        1 => parts.push("a passphrase".to_string()),
        n => parts.push(format!("{n} passphrases")),
    }
    let ids = info.kms_key_ids();
    if !ids.is_empty() {
        parts.push(format!("KMS keys {}", ids.join(", ")));
    }
    if parts.is_empty() {
        "no key at all".into()
    } else {
        format!("it opens with {}", parts.join(" and "))
    }
}
