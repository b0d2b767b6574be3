//! Backup chains, in one place: a full backup and the incremental layers that extend it —
//! opened (the layers found, their manifests read and checked), unlocked (an encrypted chain's
//! data key found through its `ENCRYPTION-INFO`), validated (each layer starts where the last
//! ended), and asked which layers a restore to a time reads.
//!
//! ```text
//!   Locations of a backup dir ──unlock──▶ FileCodec ──read manifests──▶ Chain { layers, codec } ──validate
//!                                                                         │
//!                           restore (prepare, run) and verify read chains through this module
//! ```

use bytes::Bytes;

use crate::catalog::Catalog;
use crate::crypto::aead::is_sealed;
use crate::crypto::info::EncryptionInfo;
use crate::crypto::keyring::{describe_keys, KeyRequest, Keyring};
use crate::crypto::DataKey;
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::manifest::{verify_manifest_checksum, Manifest};
use crate::layout::{finished_layers, ENCRYPTION_INFO_NAME, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME};
use crate::locality::Locations;
use crate::offload::Offload;
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;
use crate::timestamp::Timestamp;

/// One layer of a chain: its manifest, its directory, and its location (secrets redacted) for
/// messages and for the `dependencies` of layers that extend it.
#[derive(Clone)]
pub struct Layer {
    /// The layer's location, redacted.
    pub name: String,
    /// The layer's directory (with the locations of a locality-aware backup).
    pub dir: Locations,
    /// Its manifest.
    pub manifest: Manifest,
}

impl AsRef<Manifest> for Layer {
    fn as_ref(&self) -> &Manifest {
        &self.manifest
    }
}

/// A validated backup chain: its layers, the full backup first, and how its files are stored.
#[derive(Clone, Default)]
pub struct Chain {
    /// The layers, oldest (the full backup) first.
    pub layers: Vec<Layer>,
    /// How the chain's files are stored (plain, or encrypted with the chain's data key).
    pub codec: FileCodec,
}

impl Chain {
    /// The newest layer's manifest.
    pub fn last(&self) -> Option<&Manifest> {
        self.layers.last().map(|l| &l.manifest)
    }

    /// The layers' names, oldest first.
    pub fn names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Opens the chain rooted at a backup directory: unlocks it with `keys` (see
    /// [`unlock`]), reads its full backup's manifest and every incremental layer appended under
    /// `incrementals/`, in time order, and validates it.
    pub async fn open_dir(dir: &Locations, keyring: &Keyring, keys: KeyRequest<'_>) -> Result<Chain> {
        let codec = unlock(dir.storage().as_ref(), keyring, keys).await?;
        let mut layers = vec![Layer {
            name: dir.describe(),
            dir: dir.clone(),
            manifest: read_manifest(dir.storage().as_ref(), &codec).await?,
        }];
        let mut incrementals = Vec::new();
        for layer_dir in finished_layers(dir.storage().as_ref()).await? {
            let layer = dir.subdir(&layer_dir);
            let manifest = read_manifest(layer.storage().as_ref(), &codec).await?;
            incrementals.push(Layer { name: format!("{}/{layer_dir}", dir.describe()), dir: layer, manifest });
        }
        incrementals.sort_by_key(|l| (l.manifest.end_time, l.manifest.start_time));
        layers.extend(incrementals);
        let chain = Chain { layers, codec };
        validate(&chain.layers)?;
        Ok(chain)
    }

    /// Opens a chain given layer by layer (`INCREMENTAL FROM`, `RESTORE FROM 'full', 'inc', …`):
    /// `(directory, name)` pairs, the full backup first; unlocked through the first one's
    /// `ENCRYPTION-INFO`, validated.
    pub async fn open_layers(dirs: Vec<(Locations, String)>, keyring: &Keyring, keys: KeyRequest<'_>) -> Result<Chain> {
        let mut chain = Chain::default();
        for (i, (dir, name)) in dirs.into_iter().enumerate() {
            if i == 0 {
                chain.codec = unlock(dir.storage().as_ref(), keyring, keys).await?;
            }
            let manifest = read_manifest(dir.storage().as_ref(), &chain.codec).await?;
            chain.layers.push(Layer { name, dir, manifest });
        }
        validate(&chain.layers)?;
        Ok(chain)
    }
}

/// The codec of the chain whose full backup is the directory `root`: plain for a plain
/// chain opened without keys, encrypting with the chain's data key when `request` opens it.
/// A plain chain given a key, an encrypted one given none, and a key that does not open it
/// are errors that say so.
pub async fn unlock(root: &dyn ExternalStorage, keyring: &Keyring, request: KeyRequest<'_>) -> Result<FileCodec> {
    request.check()?;
    let shown = root.describe();
    let Some(info) = read_info(root).await? else {
        if manifest_is_sealed(root).await {
            return Err(Error::corrupt(
                format!("{shown}/{ENCRYPTION_INFO_NAME}"),
                "is missing, but the backup is encrypted: its data key cannot be found without it",
            ));
        }
        if request.is_empty() {
            return Ok(FileCodec::plain());
        }
        return Err(Error::Precondition(format!(
            "the backup at {shown} is not encrypted; run the statement without {}",
            request.option_name()
        )));
    };
    if request.is_empty() {
        return Err(Error::Precondition(format!(
            "the backup at {shown} is encrypted: give encryption_passphrase = '…' or kms = '…' ({})",
            describe_keys(&info)
        )));
    }
    Ok(keyring.codec(keyring.unwrap(&info, request, &shown).await?))
}

/// Makes the data key of a new chain whose full backup goes into `dir` (which holds no
/// backup) and writes its `ENCRYPTION-INFO` there; plain when `request` is empty. Returns the
/// codec and whether an `ENCRYPTION-INFO` was written (to remove if the backup fails).
///
/// An `ENCRYPTION-INFO` already in `dir` without a manifest beside it is left by an unfinished
/// backup: when `request` opens it its key is reused (a retry writes the same files), and
/// otherwise it is an error.
pub async fn create_keys(
    dir: &dyn ExternalStorage,
    keyring: &Keyring,
    request: KeyRequest<'_>,
) -> Result<(FileCodec, bool)> {
    match prepare_keys(dir, keyring, request).await? {
        NewKeys::Ready(codec) => Ok((codec, false)),
        NewKeys::Generated(key) => match write_keys(dir, keyring, request, &key, &Offload::inline()).await? {
            KeysWritten::Ours => Ok((keyring.codec(key), true)),
            KeysWritten::Theirs(codec) => Ok((codec, false)),
        },
    }
}

/// The data key of a new chain, as [`prepare_keys`] finds or makes it.
pub(crate) enum NewKeys {
    /// Plain, or the key of an `ENCRYPTION-INFO` an unfinished backup left (nothing to write).
    Ready(FileCodec),
    /// A fresh data key, not written anywhere yet: [`write_keys`] wraps and writes it.
    Generated(DataKey),
}

/// Whose `ENCRYPTION-INFO` [`write_keys`] left in the directory.
pub(crate) enum KeysWritten {
    /// The one it wrote.
    Ours,
    /// Another run's, written first (its key opened with the same request): this codec.
    Theirs(FileCodec),
}

/// The first half of [`create_keys`]: reuses the key of an `ENCRYPTION-INFO` left in `dir` (see
/// there), or generates a fresh one, without wrapping it. A new backup encrypts with a fresh key
/// while [`write_keys`] derives the passphrase's key-encryption key (argon2id, the slow part).
pub(crate) async fn prepare_keys(
    dir: &dyn ExternalStorage,
    keyring: &Keyring,
    request: KeyRequest<'_>,
) -> Result<NewKeys> {
    request.check()?;
    let shown = dir.describe();
    let existing = read_info(dir).await?;
    if request.is_empty() {
        return match existing {
            Some(_) => Err(stale_info(&shown, "this backup is not encrypted".into())),
            None => Ok(NewKeys::Ready(FileCodec::plain())),
        };
    }
    let entropy = keyring.entropy()?;
    if let Some(info) = existing {
        let key = keyring.unwrap(&info, request, &shown).await.map_err(|e| stale_info(&shown, e.to_string()))?;
        return Ok(NewKeys::Ready(keyring.codec(key)));
    }
    // What can be checked without the network fails here, before a backup scans anything.
    for uri in request.kms {
        keyring.kms_opener()?.open(uri)?;
    }
    Ok(NewKeys::Generated(DataKey::generate(entropy)?))
}

/// The second half of [`create_keys`]: wraps `key` with every key of `request` (the passphrase's
/// derivation through `offload`) and writes the `ENCRYPTION-INFO` into `dir`, create-only.
pub(crate) async fn write_keys(
    dir: &dyn ExternalStorage,
    keyring: &Keyring,
    request: KeyRequest<'_>,
    key: &DataKey,
    offload: &Offload,
) -> Result<KeysWritten> {
    let shown = dir.describe();
    let mut info = EncryptionInfo::new(key);
    keyring.wrap_into(&mut info, key, request, offload).await?;
    match dir.put_if_absent(ENCRYPTION_INFO_NAME, Bytes::from(info.encode())).await {
        Ok(()) => Ok(KeysWritten::Ours),
        Err(Error::AlreadyExists { .. }) => {
            // Another backup into the same directory raced us: use its key if ours opens it.
            let info = read_info(dir).await?.ok_or_else(|| stale_info(&shown, "it vanished".into()))?;
            let key = keyring.unwrap(&info, request, &shown).await.map_err(|e| stale_info(&shown, e.to_string()))?;
            Ok(KeysWritten::Theirs(keyring.codec(key)))
        }
        Err(e) => Err(e),
    }
}

fn stale_info(shown: &str, why: String) -> Error {
    Error::Precondition(format!(
        "{shown}/{ENCRYPTION_INFO_NAME} was left by an unfinished backup ({why}); remove it, \
         or back up with that backup's key"
    ))
}

/// Adds the keys `new` to the encrypted chain whose full backup is `root`, opened with `old`;
/// rewrites only its `ENCRYPTION-INFO` (one atomic `put`). Keys already present are not
/// added twice. Returns the number of keys the chain then opens with.
pub async fn add_keys(
    root: &dyn ExternalStorage,
    keyring: &Keyring,
    old: KeyRequest<'_>,
    new: KeyRequest<'_>,
) -> Result<usize> {
    old.check()?;
    new.check()?;
    let shown = root.describe();
    if root.size(MANIFEST_NAME).await.is_err() {
        return Err(Error::not_found("backup", format!("{shown} (no {MANIFEST_NAME})")));
    }
    let Some(mut info) = read_info(root).await? else {
        return Err(Error::Precondition(format!(
            "the backup at {shown} is not encrypted: there is no key to add a key to"
        )));
    };
    let key = keyring.unwrap(&info, old, &shown).await?;
    let before = info.keys.len();
    if let Some(p) = new.passphrase {
        if info.unwrap_passphrase(p)?.is_none() {
            info.add_passphrase(&key, p, keyring.kdf_params(), keyring.entropy()?)?;
        }
    }
    for uri in new.kms {
        let provider = keyring.kms_opener()?.open(uri)?;
        if !info.kms_key_ids().contains(&provider.key_id().as_str()) {
            info.keys.push(keyring.wrap_kms(provider.as_ref(), uri, &key).await?);
        }
    }
    if let Err(why) = info.check_bounds() {
        return Err(Error::invalid(
            "ALTER BACKUP",
            format!("{shown}/{ENCRYPTION_INFO_NAME} would be refused: it {why}"),
        ));
    }
    if info.keys.len() != before {
        root.put(ENCRYPTION_INFO_NAME, Bytes::from(info.encode())).await?;
    }
    Ok(info.keys.len())
}

/// Reads `ENCRYPTION-INFO` from a full backup's directory (`None`: not there).
pub async fn read_info(root: &dyn ExternalStorage) -> Result<Option<EncryptionInfo>> {
    match root.get(ENCRYPTION_INFO_NAME).await {
        Ok(bytes) => Ok(Some(EncryptionInfo::decode(&bytes, &format!("{}/{ENCRYPTION_INFO_NAME}", root.describe()))?)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the directory's manifest exists and is encrypted.
async fn manifest_is_sealed(dir: &dyn ExternalStorage) -> bool {
    match dir.size(MANIFEST_NAME).await {
        Ok(n) if n >= 8 => dir.get_range(MANIFEST_NAME, 0..8).await.is_ok_and(|b| is_sealed(&b)),
        _ => false,
    }
}

/// Reads and checks a backup directory's manifest, decrypting it with the chain's `codec`. The
/// checksum covers the stored bytes. A plain manifest in an encrypted chain, and an encrypted
/// one read without a key, are errors.
pub async fn read_manifest(dir: &dyn ExternalStorage, codec: &FileCodec) -> Result<Manifest> {
    let where_ = format!("{}/{MANIFEST_NAME}", dir.describe());
    let bytes = dir.get(MANIFEST_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::not_found("backup", format!("{} (no {MANIFEST_NAME})", dir.describe())),
        e => e,
    })?;
    let checksum = dir.get(MANIFEST_CHECKSUM_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::corrupt(&where_, format!("{MANIFEST_CHECKSUM_NAME} is missing")),
        e => e,
    })?;
    if let Err(e) = verify_manifest_checksum(&bytes, &checksum, &where_) {
        return Err(blame_checksum_mismatch(dir, codec, &bytes).unwrap_or(e));
    }
    let bytes = match (codec.is_encrypted(), is_sealed(&bytes)) {
        (true, true) => codec.open(MANIFEST_NAME, bytes, &where_)?,
        (true, false) => return Err(Error::corrupt(&where_, "is not encrypted, but the backup chain is")),
        (false, true) => {
            return Err(Error::Precondition(format!(
                "the backup at {} is encrypted: give encryption_passphrase = '…' or kms = '…'",
                dir.describe()
            )))
        }
        (false, false) => bytes,
    };
    Manifest::decode(&bytes, &where_)
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

/// Checks that layers form one chain: a full backup first, then each layer starting where the
/// previous one ends, with the same targets and revision-history setting.
pub fn validate(layers: &[Layer]) -> Result<()> {
    let manifests: Vec<&Manifest> = layers.iter().map(|l| &l.manifest).collect();
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    validate_manifests(&manifests, &names)
}

/// [`validate`] of manifests named by `names` (their locations, for messages).
pub fn validate_manifests(chain: &[&Manifest], names: &[&str]) -> Result<()> {
    let Some(first) = chain.first() else {
        return Err(Error::not_found("backup", "an empty list of layers"));
    };
    if !first.is_full() {
        let deps =
            if first.dependencies.is_empty() { String::new() } else { format!(": {}", first.dependencies.join(", ")) };
        return Err(Error::Precondition(format!(
            "{} is an incremental backup (from {} to {}); restore needs the whole chain, starting with its full backup{deps}",
            names[0], first.start_time, first.end_time
        )));
    }
    for (i, pair) in chain.windows(2).enumerate() {
        let (prev, next) = (&pair[0], &pair[1]);
        if next.is_full() {
            return Err(Error::Precondition(format!(
                "{} is a full backup, but it is listed as an incremental layer after {}",
                names[i + 1],
                names[i]
            )));
        }
        if next.start_time != prev.end_time {
            let missing =
                next.dependencies.get(i + 1).map(|d| format!("; the missing layer is {d}")).unwrap_or_default();
            return Err(Error::Precondition(format!(
                "the chain has a gap: {} ends at {}, but the next layer {} starts at {}{missing}",
                names[i],
                prev.end_time,
                names[i + 1],
                next.start_time
            )));
        }
        if next.scope != prev.scope || next.mvcc_filter != prev.mvcc_filter {
            return Err(Error::Precondition(format!(
                "{} does not extend {}: its targets or revision_history setting differ",
                names[i + 1],
                names[i]
            )));
        }
    }
    Ok(())
}

/// The restorable window of a chain, `[from, to]`.
fn window<M: AsRef<Manifest>>(chain: &[M]) -> (Timestamp, Timestamp) {
    let first = chain[0].as_ref();
    let lo = if first.has_revision_history() { first.revision_start_time } else { first.end_time };
    (lo, chain[chain.len() - 1].as_ref().end_time)
}

/// How many layers (a prefix of the chain) a restore as of `t` reads, checking that `t` is
/// restorable.
pub fn layers_for<M: AsRef<Manifest>>(chain: &[M], t: Timestamp) -> Result<usize> {
    let (lo, hi) = window(chain);
    if t < lo || t > hi {
        return Err(Error::InvalidTime(format!(
            "cannot restore as of {t}: it is outside the backup's window [{lo}, {hi}]"
        )));
    }
    let j = chain.iter().position(|m| m.as_ref().end_time >= t).expect("t <= last end time");
    if !chain[j].as_ref().can_restore_to(t) {
        let ends: Vec<String> = chain.iter().map(|m| m.as_ref().end_time.to_string()).collect();
        return Err(Error::InvalidTime(format!(
            "cannot restore as of {t}: restoring to a time between backups requires a backup taken WITH revision_history; \
             this chain can restore only to its end times: {}",
            ends.join(", ")
        )));
    }
    Ok(j + 1)
}

/// The catalog as of `t` from the first `layers` layers of a chain.
pub fn catalog_at<M: AsRef<Manifest>>(chain: &[M], layers: usize, t: Timestamp) -> Catalog {
    let last = chain[layers - 1].as_ref();
    if t == last.end_time {
        return last.catalog();
    }
    // Inside a revision-history window: the state at its start, then its changes up to t.
    let mut catalog = if layers >= 2 { chain[layers - 2].as_ref().catalog() } else { Catalog::default() };
    for r in last.descriptor_changes.iter().filter(|r| r.ts <= t) {
        match &r.descriptor {
            Some(d) => catalog.insert(d.clone()),
            None => {
                catalog.databases.remove(&r.id);
                catalog.tables.remove(&r.id);
            }
        }
    }
    catalog
}

impl AsRef<Manifest> for Manifest {
    fn as_ref(&self) -> &Manifest {
        self
    }
}
