//! Copying a backup chain, or a whole collection, to another storage: every file read whole and
//! checked (size and SHA-256 against its manifest or `BACKUP-FILES`) before it is written,
//! optionally re-encrypted (opened with the source chain's key, sealed with a new one, the
//! manifests re-sealed with new checksums and a new `ENCRYPTION-INFO`).
//!
//! ```text
//!   source chain ──per layer: manifest (checksum checked), its file list
//!               ──ENCRYPTION-INFO (copied, or a new key) ──data files of every layer (checked, resealed)
//!               ──then per layer, oldest first: BACKUP-FILES, checksum, BACKUP_MANIFEST (create-only)
//!   collection: every chain, then LATEST last
//! ```
//!
//! The manifests (and `LATEST`) are written last, so a half copy is never a backup. A rerun
//! resumes: a data file already at the destination is kept when it checks out (same size and
//! SHA-256 as the source names; re-encrypted, when it opens with the destination's key — sealing
//! is deterministic, so a rerun produces the same bytes and the same manifests).

use std::sync::Arc;

use bytes::Bytes;

use crate::chain::{create_keys, read_manifest, unlock};
use crate::crypto::aead::is_sealed;
use crate::crypto::keyring::{KeyRequest, Keyring};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::files_list::{decode_files_list, encode_files_list, ListedFile};
use crate::format::manifest::{manifest_checksum, sha256, verify_manifest_checksum, Manifest};
use crate::layout::{
    finished_layers, full_backups, ENCRYPTION_INFO_NAME, FILES_LIST_NAME, LATEST_NAME, MANIFEST_CHECKSUM_NAME,
    MANIFEST_NAME,
};
use crate::locality::Locations;
use crate::storage::{ExternalStorage, ExternalStorageExt};

/// How [`copy_chain`] and [`copy_collection`] treat encryption.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions<'a> {
    /// The source chain's key (empty: copied as stored, which needs no key).
    pub from: KeyRequest<'a>,
    /// `None`: files are copied as stored. `Some(keys)`: re-encrypted with a new data key
    /// wrapped by `keys` (needs `from`); `Some` of an empty request writes the copy unencrypted.
    pub to: Option<KeyRequest<'a>>,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Chains copied.
    pub chains: usize,
    /// Layers copied (full backups and incrementals).
    pub layers: usize,
    /// Data files written.
    pub files_copied: usize,
    /// Data files already at the destination and intact (a resumed copy).
    pub files_skipped: usize,
    /// Bytes written.
    pub bytes: u64,
}

impl CopyReport {
    fn extend(&mut self, o: CopyReport) {
        self.chains += o.chains;
        self.layers += o.layers;
        self.files_copied += o.files_copied;
        self.files_skipped += o.files_skipped;
        self.bytes += o.bytes;
    }
}

/// One source layer, read and checked.
struct SourceLayer {
    /// Relative to the chain's root (`""` for the full backup).
    rel: String,
    manifest_bytes: Bytes,
    /// The decoded manifest, when the chain is plain or its key was given.
    manifest: Option<Manifest>,
    /// Its data files (from the manifest, or from `BACKUP-FILES` without the key).
    files: Vec<ListedFile>,
    files_list: Option<Bytes>,
}

fn storage_for(dir: &Locations, locality: &Option<String>, path: &str) -> Result<Arc<dyn ExternalStorage>> {
    match locality {
        None => Ok(dir.storage().clone()),
        Some(tier) => dir.tier(tier).cloned().ok_or_else(|| {
            Error::invalid(
                "copy",
                format!("{path} is stored in locality {tier}, but no location for it was given: list every location"),
            )
        }),
    }
}

async fn read_layer(root: &Locations, rel: &str, codec: Option<&FileCodec>) -> Result<SourceLayer> {
    let dir = if rel.is_empty() { root.clone() } else { root.subdir(rel) };
    let storage = dir.storage().as_ref();
    let shown = format!("{}/{MANIFEST_NAME}", storage.describe());
    let (manifest, manifest_bytes) = match codec {
        Some(codec) => (Some(read_manifest(storage, codec).await?), storage.get(MANIFEST_NAME).await?),
        None => {
            let bytes = storage.get(MANIFEST_NAME).await?;
            verify_manifest_checksum(&bytes, &storage.get(MANIFEST_CHECKSUM_NAME).await?, &shown)?;
            let m = if is_sealed(&bytes) { None } else { Some(Manifest::decode(&bytes, &shown)?) };
            (m, bytes)
        }
    };
    let files_list = match storage.get(FILES_LIST_NAME).await {
        Ok(b) => Some(b),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let files = match (&manifest, &files_list) {
        (Some(m), _) => m.files.iter().map(ListedFile::from).collect(),
        (None, Some(b)) => decode_files_list(b, &format!("{}/{FILES_LIST_NAME}", storage.describe()))?.files,
        (None, None) => {
            return Err(Error::corrupt(
                format!("{}/{FILES_LIST_NAME}", storage.describe()),
                "is missing: without it (or the key) the encrypted layer's files cannot be checked",
            ))
        }
    };
    if let (Some(m), Some(b)) = (&manifest, &files_list) {
        let listed = decode_files_list(b, &format!("{}/{FILES_LIST_NAME}", storage.describe()))?.files;
        let named: Vec<ListedFile> = m.files.iter().map(ListedFile::from).collect();
        if listed != named {
            return Err(Error::corrupt(
                format!("{}/{FILES_LIST_NAME}", storage.describe()),
                "does not agree with the manifest",
            ));
        }
    }
    Ok(SourceLayer { rel: rel.to_string(), manifest_bytes, manifest, files, files_list })
}

/// Writes `bytes` at `path` unless the same bytes are there; an error if other bytes are.
async fn put_same(dst: &dyn ExternalStorage, path: &str, bytes: Bytes, create_only: bool) -> Result<()> {
    match dst.get(path).await {
        Ok(there) if there == bytes => return Ok(()),
        Ok(_) if create_only => {
            return Err(Error::exists("backup file", format!("{}/{path} (with other contents)", dst.describe())))
        }
        Ok(_) | Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    if create_only {
        dst.put_if_absent(path, bytes).await
    } else {
        dst.put(path, bytes).await
    }
}

/// Copies the chain whose full backup is `src` (a backup directory) to `dst` (a directory that
/// holds no other backup), with its incremental layers. See the module documentation.
pub async fn copy_chain(
    src: &Locations,
    dst: &Locations,
    keyring: &Keyring,
    options: CopyOptions<'_>,
) -> Result<CopyReport> {
    let src_root = src.storage().as_ref();
    let src_encrypted = src_root.size(ENCRYPTION_INFO_NAME).await.is_ok();
    let codec = if options.from.is_empty() && !src_encrypted {
        Some(FileCodec::plain())
    } else if options.from.is_empty() {
        None
    } else {
        Some(unlock(src_root, keyring, options.from).await?)
    };
    // Where the copy's files are sealed with a new codec, and which.
    let new_codec = match options.to {
        None => None,
        Some(to) => {
            let Some(old) = &codec else {
                return Err(Error::Precondition(format!(
                    "the backup at {} is encrypted: re-encrypting a copy needs its key (encryption_passphrase or kms)",
                    src_root.describe()
                )));
            };
            let _ = old;
            Some(create_keys(dst.storage().as_ref(), keyring, to).await?.0)
        }
    };
    let mut layers = vec![read_layer(src, "", codec.as_ref()).await?];
    for rel in finished_layers(src_root).await? {
        layers.push(read_layer(src, &rel, codec.as_ref()).await?);
    }
    if let Some(m) = layers[0].manifest.as_ref().filter(|m| !m.is_full()) {
        return Err(Error::Precondition(format!(
            "{} is an incremental layer (from {}): copy its chain's full backup",
            src_root.describe(),
            m.start_time
        )));
    }
    let dst_root = dst.storage().as_ref();
    check_destination(dst_root, &layers[0], new_codec.as_ref()).await?;
    if new_codec.is_none() {
        if let Ok(info) = src_root.get(ENCRYPTION_INFO_NAME).await {
            put_same(dst_root, ENCRYPTION_INFO_NAME, info, false).await?;
        }
    }
    let mut report = CopyReport { chains: 1, layers: layers.len(), ..CopyReport::default() };
    // Data files of every layer, each checked on the way; new sizes and digests when resealed.
    let mut new_files: Vec<Vec<ListedFile>> = Vec::new();
    for layer in &layers {
        let (sdir, ddir) = if layer.rel.is_empty() {
            (src.clone(), dst.clone())
        } else {
            (src.subdir(&layer.rel), dst.subdir(&layer.rel))
        };
        let mut out = Vec::new();
        for f in &layer.files {
            let s = storage_for(&sdir, &f.locality, &f.path)?;
            let d = storage_for(&ddir, &f.locality, &f.path)?;
            let shown = format!("{}/{}", s.describe(), f.path);
            if let Some(written) = existing_copy(d.as_ref(), f, new_codec.as_ref()).await? {
                report.files_skipped += 1;
                out.push(written);
                continue;
            }
            let bytes = s.get(&f.path).await?;
            if bytes.len() as u64 != f.size {
                return Err(Error::corrupt(&shown, format!("size is {} bytes, its list says {}", bytes.len(), f.size)));
            }
            if sha256(&bytes) != f.sha256 {
                return Err(Error::corrupt(&shown, "SHA-256 does not match its manifest"));
            }
            let bytes = match (&new_codec, &codec) {
                (Some(new), Some(old)) => Bytes::from(new.seal(&f.path, old.open(&f.path, bytes, &shown)?.to_vec())),
                _ => bytes,
            };
            let written = ListedFile {
                path: f.path.clone(),
                size: bytes.len() as u64,
                sha256: sha256(&bytes),
                locality: f.locality.clone(),
            };
            report.bytes += written.size;
            d.put(&f.path, bytes).await?;
            let stored = d.size(&f.path).await?;
            if stored != written.size {
                return Err(Error::corrupt(
                    format!("{}/{}", d.describe(), f.path),
                    format!("was written with {} bytes, but {stored} are stored", written.size),
                ));
            }
            report.files_copied += 1;
            out.push(written);
        }
        new_files.push(out);
    }
    // Then the layers' lists and manifests, oldest first: each layer becomes a backup only now.
    for (layer, files) in layers.iter().zip(new_files) {
        let ddir = if layer.rel.is_empty() { dst.storage().clone() } else { dst.subdir(&layer.rel).storage().clone() };
        let (manifest_bytes, files_list) = match &new_codec {
            None => (layer.manifest_bytes.clone(), layer.files_list.clone()),
            Some(new) => {
                let mut m = layer.manifest.clone().expect("decoded with the source key");
                for (info, f) in m.files.iter_mut().zip(&files) {
                    info.size = f.size;
                    info.sha256 = f.sha256;
                }
                let list = new.is_encrypted().then(|| Bytes::from(encode_files_list(&m)));
                (Bytes::from(new.seal(MANIFEST_NAME, m.encode())), list)
            }
        };
        match files_list {
            Some(list) => put_same(ddir.as_ref(), FILES_LIST_NAME, list, false).await?,
            None => ddir.delete(FILES_LIST_NAME).await?,
        }
        let checksum = Bytes::from(manifest_checksum(&manifest_bytes));
        // The checksum first: the manifest, written last, makes the layer a backup at once (a
        // manifest without its checksum would be refused by readers).
        put_same(ddir.as_ref(), MANIFEST_CHECKSUM_NAME, checksum, false).await?;
        put_same(ddir.as_ref(), MANIFEST_NAME, manifest_bytes, true).await?;
    }
    Ok(report)
}

/// Refuses a destination that holds another backup: a manifest there must be the one this copy
/// writes (an earlier run of it), as stored, or — re-encrypted — the same manifest but for its
/// files' stored sizes and digests.
async fn check_destination(dst: &dyn ExternalStorage, full: &SourceLayer, new_codec: Option<&FileCodec>) -> Result<()> {
    let there = match dst.get(MANIFEST_NAME).await {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let shown = format!("{}/{MANIFEST_NAME}", dst.describe());
    let same = match new_codec {
        None => there == full.manifest_bytes,
        Some(codec) => {
            let strip = |mut m: Manifest| {
                m.files.iter_mut().for_each(|f| {
                    f.size = 0;
                    f.sha256 = [0; 32];
                });
                m
            };
            let decoded = codec.open(MANIFEST_NAME, there, &shown).and_then(|b| Manifest::decode(&b, &shown));
            match (decoded, &full.manifest) {
                (Ok(m), Some(source)) => strip(m) == strip(source.clone()),
                _ => false,
            }
        }
    };
    if same {
        Ok(())
    } else {
        Err(Error::exists("backup", format!("{} (another backup is there: copy into an empty place)", dst.describe())))
    }
}

/// The file as the copy wrote it, when it is already at the destination intact.
async fn existing_copy(
    d: &dyn ExternalStorage,
    f: &ListedFile,
    new_codec: Option<&FileCodec>,
) -> Result<Option<ListedFile>> {
    let size = match d.size(&f.path).await {
        Ok(n) => n,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if new_codec.is_none() && size != f.size {
        return Ok(None);
    }
    let bytes = d.get(&f.path).await?;
    let digest = sha256(&bytes);
    let intact = match new_codec {
        None => digest == f.sha256,
        // Resealed: intact when it opens with the new key (authenticated, whole, at this path).
        Some(new) => new.open(&f.path, bytes, "").is_ok(),
    };
    Ok(intact.then(|| ListedFile { path: f.path.clone(), size, sha256: digest, locality: f.locality.clone() }))
}

/// Copies every backup of the collection `src` into the collection `dst` (same directory
/// names), then its `LATEST`.
pub async fn copy_collection(
    src: &Locations,
    dst: &Locations,
    keyring: &Keyring,
    options: CopyOptions<'_>,
) -> Result<CopyReport> {
    let mut report = CopyReport::default();
    let fulls = full_backups(src.storage().as_ref()).await?;
    if fulls.is_empty() {
        return Err(Error::not_found("backup", format!("{} (a collection without backups)", src.describe())));
    }
    for full in fulls {
        report.extend(copy_chain(&src.subdir(&full), &dst.subdir(&full), keyring, options).await?);
    }
    if let Ok(latest) = src.storage().get(LATEST_NAME).await {
        put_same(dst.storage().as_ref(), LATEST_NAME, latest, false).await?;
    }
    Ok(report)
}
