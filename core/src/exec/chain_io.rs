//! Reading backup chains: a layer's manifest, the chain below a backup directory, the chain a
//! statement's source names, and the directory names a collection uses (`LATEST`,
//! `incrementals/`). Shared by the BACKUP, RESTORE and SHOW BACKUP services.

use std::sync::Arc;

use crate::crypto::aead::is_sealed;
use crate::crypto::keys::{KeyRequest, Keyring};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::manifest::{verify_manifest_checksum, Manifest, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME};
use crate::redact::redact_uri;
use crate::restore::validate_chain;
use crate::sql::{BackupSource, Subdir};
use crate::storage::{subdir, ExternalStorage, StorageOpener};

/// Name of the file in a collection that names its newest full backup.
pub const LATEST_NAME: &str = "LATEST";

/// Where incremental layers appended to a backup directory live, below it.
pub const INCREMENTALS_DIR: &str = "incrementals";

/// Reads and checks a backup directory's manifest (of a plain backup).
pub async fn read_manifest(storage: &dyn ExternalStorage) -> Result<Manifest> {
    read_manifest_with(storage, &FileCodec::plain()).await
}

/// Reads and checks a backup directory's manifest, decrypting it with the chain's `codec`. The
/// checksum covers the stored bytes. A plain manifest in an encrypted chain, and an encrypted
/// one read without a key, are errors.
pub async fn read_manifest_with(storage: &dyn ExternalStorage, codec: &FileCodec) -> Result<Manifest> {
    let where_ = format!("{}/{MANIFEST_NAME}", storage.describe());
    let bytes = storage.get(MANIFEST_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::not_found("backup", format!("{} (no {MANIFEST_NAME})", storage.describe())),
        e => e,
    })?;
    let checksum = storage.get(MANIFEST_CHECKSUM_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::corrupt(&where_, format!("{MANIFEST_CHECKSUM_NAME} is missing")),
        e => e,
    })?;
    if let Err(e) = verify_manifest_checksum(&bytes, &checksum, &where_) {
        return Err(crate::verify::blame_checksum_mismatch(storage, codec, &bytes).unwrap_or(e));
    }
    let bytes = match (codec.is_encrypted(), is_sealed(&bytes)) {
        (true, true) => codec.open(MANIFEST_NAME, bytes, &where_)?,
        (true, false) => return Err(Error::corrupt(&where_, "is not encrypted, but the backup chain is")),
        (false, true) => {
            return Err(Error::Precondition(format!(
                "the backup at {} is encrypted: give encryption_passphrase = '…' or kms = '…'",
                storage.describe()
            )))
        }
        (false, false) => bytes,
    };
    Manifest::decode(&bytes, &where_)
}

/// The layers of a backup chain: manifests with the storage of each layer's directory.
#[derive(Default)]
pub struct Chain {
    /// Manifests, the full backup first.
    pub manifests: Vec<Manifest>,
    /// Each layer's directory.
    pub storages: Vec<Arc<dyn ExternalStorage>>,
    /// Each layer's location, redacted, for messages and `dependencies`.
    pub names: Vec<String>,
    /// How the chain's files are stored (plain, or encrypted with the chain's data key).
    pub codec: FileCodec,
}

impl Chain {
    pub(super) fn push(&mut self, storage: Arc<dyn ExternalStorage>, manifest: Manifest, name: String) {
        self.storages.push(storage);
        self.manifests.push(manifest);
        self.names.push(name);
    }
}

/// Reads the chain rooted at a backup directory: its full backup, then every incremental layer
/// appended under `incrementals/`, in time order; validated. (A plain chain; see [`read_chain_with`].)
pub async fn read_chain(dir: &Arc<dyn ExternalStorage>) -> Result<Chain> {
    read_chain_with(dir, &FileCodec::plain()).await
}

/// [`read_chain`] of a chain whose files are stored with `codec`.
pub async fn read_chain_with(dir: &Arc<dyn ExternalStorage>, codec: &FileCodec) -> Result<Chain> {
    let mut chain = Chain { codec: codec.clone(), ..Chain::default() };
    chain.push(dir.clone(), read_manifest_with(dir.as_ref(), codec).await?, dir.describe());
    let suffix = format!("/{MANIFEST_NAME}");
    let mut layers = Vec::new();
    for o in dir.list(&format!("{INCREMENTALS_DIR}/")).await? {
        if let Some(layer_dir) = o.path.strip_suffix(&suffix) {
            let storage = subdir(dir, layer_dir);
            let manifest = read_manifest_with(storage.as_ref(), codec).await?;
            layers.push((manifest, storage, format!("{}/{layer_dir}", dir.describe())));
        }
    }
    layers.sort_by_key(|(m, _, _)| (m.end_time, m.start_time));
    for (m, storage, name) in layers {
        chain.push(storage, m, name);
    }
    validate_chain(&chain.manifests, &chain.names)?;
    Ok(chain)
}

/// A new, empty layer directory `dir` below `root` (an error if something is already there).
pub(crate) async fn new_layer_dir(root: &Arc<dyn ExternalStorage>, dir: &str) -> Result<Arc<dyn ExternalStorage>> {
    if !root.list(&format!("{dir}/")).await?.is_empty() {
        return Err(Error::exists("backup", format!("{}/{dir}", root.describe())));
    }
    Ok(subdir(root, dir))
}

/// The subdirectory a collection's `LATEST` or `'subdir'` names.
pub(crate) async fn resolve_subdir(root: &Arc<dyn ExternalStorage>, sub: &Subdir) -> Result<String> {
    match sub {
        Subdir::Latest => {
            let latest = root.get(LATEST_NAME).await.map_err(|e| match e {
                Error::NotFound { .. } => Error::not_found("backup collection (no LATEST file)", root.describe()),
                e => e,
            })?;
            Ok(String::from_utf8_lossy(&latest).trim().to_string())
        }
        Subdir::Path(p) => Ok(p.clone()),
    }
}

/// Finds the chain of layers a statement's source names, reads and validates it: a list of
/// layers given one by one, or a backup directory (with `LATEST IN` / `'subdir' IN` for a
/// collection) holding a full backup and the incrementals appended to it. `keys` must open the
/// chain if it is encrypted, and be empty if it is not; the chain's codec is in [`Chain::codec`].
pub(crate) async fn open_chain(
    opener: &dyn StorageOpener,
    keyring: &Keyring,
    source: &BackupSource,
    keys: KeyRequest<'_>,
) -> Result<Chain> {
    if source.layers.len() > 1 {
        if source.subdir.is_some() {
            return Err(Error::invalid("backup source", "a list of layers cannot be combined with IN"));
        }
        let mut chain = Chain::default();
        for layer in &source.layers {
            let storage = crate::locality::open_locations(opener, layer)?;
            if chain.storages.is_empty() {
                chain.codec = keyring.open_chain(storage.as_ref(), keys).await?;
            }
            let manifest = read_manifest_with(storage.as_ref(), &chain.codec).await?;
            chain.push(storage, manifest, redact_uri(&layer[0]));
        }
        validate_chain(&chain.manifests, &chain.names)?;
        return Ok(chain);
    }
    let root = crate::locality::open_locations(opener, source.layers.first().map_or(&[][..], |l| &l[..]))?;
    let dir = match &source.subdir {
        None => root,
        Some(sub) => {
            let dir = resolve_subdir(&root, sub).await?;
            subdir(&root, &dir)
        }
    };
    let codec = keyring.open_chain(dir.as_ref(), keys).await?;
    read_chain_with(&dir, &codec).await
}
