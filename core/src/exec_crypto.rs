//! The executor's encryption and verification statements: its key settings,
//! `ALTER BACKUP … ADD NEW_KMS / NEW_PASSPHRASE`, `SHOW BACKUP … WITH check_files` and the
//! key-less verification behind `strata verify`.

use std::sync::Arc;

use crate::backup::is_dated_subdir;
use crate::crypto::info::ENCRYPTION_INFO_NAME;
use crate::crypto::kdf::KdfParams;
use crate::crypto::keys::{KeyRequest, Keyring, KmsOpener};
use crate::crypto::Entropy;
use crate::error::{Error, Result};
use crate::exec::{resolve_subdir, Executor, INCREMENTALS_DIR};
use crate::format::manifest::MANIFEST_NAME;
use crate::result::QueryResult;
use crate::sql::{AlterBackupStmt, BackupSource, KeyChange};
use crate::storage::ExternalStorageExt;
use crate::storage::{subdir, ExternalStorage};
use crate::verify::{layer_dirs, verify_chain, FileProblem, VerifyReport};

impl Executor {
    /// Sets the source of random bytes encrypted backups need (for data keys and salts). Without
    /// one, `BACKUP … WITH encryption_passphrase` / `kms` fails saying so; restores need none.
    pub fn with_entropy(mut self, entropy: Entropy) -> Self {
        self.keyring = self.keyring.with_entropy(entropy);
        self
    }

    /// Sets how `kms = 'uri'` options are opened into [`crate::KeyProvider`]s.
    pub fn with_kms_opener(mut self, opener: Arc<dyn KmsOpener>) -> Self {
        self.keyring = self.keyring.with_kms_opener(opener);
        self
    }

    /// Sets the argon2id parameters of passphrases added from now on (default: 64 MiB, 3
    /// iterations, 4 lanes). Existing backups open with the parameters stored in their
    /// `ENCRYPTION-INFO`, whatever this is.
    pub fn with_kdf_params(mut self, params: KdfParams) -> Self {
        self.keyring = self.keyring.with_kdf_params(params);
        self
    }

    /// Replaces every encryption setting at once.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = keyring;
        self
    }

    /// The encryption settings.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// `ALTER BACKUP … ADD NEW_KMS = … WITH OLD_KMS = …` (or `NEW_PASSPHRASE`/`OLD_PASSPHRASE`):
    /// wraps the chain's data key with the new keys too, rewriting only its `ENCRYPTION-INFO`.
    pub(crate) async fn alter_backup(&self, a: &AlterBackupStmt) -> Result<QueryResult> {
        if a.source.layers.len() > 1 {
            return Err(Error::invalid("ALTER BACKUP", "name the full backup's directory, not a list of layers"));
        }
        let root = self.source_dir(&a.source).await?;
        let (old, new) = match &a.change {
            KeyChange::Kms { new, old } => (KeyRequest::new(None, old), KeyRequest::new(None, new)),
            KeyChange::Passphrase { new, old } => {
                (KeyRequest::new(Some(old.expose()), &[]), KeyRequest::new(Some(new.expose()), &[]))
            }
        };
        let keys = self.keyring.add_keys(root.as_ref(), old, new).await?;
        let mut r = QueryResult::new(&["status", "path", "keys"]);
        r.push(vec!["succeeded".into(), root.describe().into(), (keys as u64).into()]);
        Ok(r)
    }

    /// Checks that every file of the backup `source` names exists with the size and SHA-256
    /// its manifest records, without restoring: each layer's manifest against its checksum,
    /// `ENCRYPTION-INFO`, and every data file. A backup directory is checked with the incremental
    /// layers appended to it; a collection (no `IN`) has each of its full backups checked.
    ///
    /// An encrypted backup is checked without its key when `keys` is empty and `require_keys`
    /// is false (its plaintext `BACKUP-FILES` lists the data files); with keys, its manifests are
    /// decrypted and used. With `require_keys` (as `SHOW BACKUP … WITH check_files`), the keys
    /// must match the backup as for any other `SHOW BACKUP`.
    pub async fn check_files(
        &self,
        source: &BackupSource,
        keys: KeyRequest<'_>,
        require_keys: bool,
    ) -> Result<VerifyReport> {
        if source.layers.len() > 1 {
            if source.subdir.is_some() {
                return Err(Error::invalid("backup source", "a list of layers cannot be combined with IN"));
            }
            let mut dirs = Vec::new();
            for layer in &source.layers {
                dirs.push(self.open_uris(layer)?);
            }
            return self.check_chain(&dirs[0].clone(), dirs, keys, require_keys).await;
        }
        let dir = self.source_dir(source).await?;
        if source.subdir.is_none() && dir.size(MANIFEST_NAME).await.is_err() {
            let fulls = collection_backups(dir.as_ref()).await?;
            if !fulls.is_empty() {
                let mut report = VerifyReport::default();
                for full in fulls {
                    let full = subdir(&dir, &full);
                    report.extend(self.check_chain(&full, layer_dirs(&full).await?, keys, require_keys).await?);
                }
                return Ok(report);
            }
            if dir.list("").await?.is_empty() {
                return Err(Error::not_found("backup", format!("{} (it is empty)", dir.describe())));
            }
        }
        self.check_chain(&dir, layer_dirs(&dir).await?, keys, require_keys).await
    }

    async fn check_chain(
        &self,
        root: &Arc<dyn ExternalStorage>,
        layers: Vec<Arc<dyn ExternalStorage>>,
        keys: KeyRequest<'_>,
        require_keys: bool,
    ) -> Result<VerifyReport> {
        let mut problems = Vec::new();
        let codec = if keys.is_empty() && !require_keys {
            None
        } else {
            match self.keyring.open_chain(root.as_ref(), keys).await {
                Ok(codec) => Some(codec),
                // A damaged or missing ENCRYPTION-INFO is a finding; the rest is checked without it.
                Err(Error::Corrupt { path, message }) => {
                    if !path.ends_with(ENCRYPTION_INFO_NAME) {
                        problems.push(FileProblem { path, problem: message });
                    }
                    None
                }
                Err(e) => return Err(e),
            }
        };
        let mut report = verify_chain(root, &layers, codec.as_ref()).await;
        report.problems.splice(0..0, problems);
        Ok(report)
    }

    /// The directory a single-location source names (resolving `LATEST IN` / `'subdir' IN`).
    async fn source_dir(&self, source: &BackupSource) -> Result<Arc<dyn ExternalStorage>> {
        let root = self.open_uris(source.layers.first().map_or(&[][..], |l| &l[..]))?;
        Ok(match &source.subdir {
            None => root,
            Some(sub) => {
                let dir = resolve_subdir(&root, sub).await?;
                subdir(&root, &dir)
            }
        })
    }
}

/// The full backups of a collection (`2026/11/23-101500.00`, …): dated directories holding any
/// file, whether or not their manifest survived.
async fn collection_backups(dir: &dyn ExternalStorage) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for o in dir.list("").await? {
        let p = &o.path;
        if p.len() > 21 && is_dated_subdir(&p[..20]) && p.as_bytes()[20] == b'/' && !p.starts_with(INCREMENTALS_DIR) {
            let d = p[..20].to_string();
            if out.last() != Some(&d) {
                out.push(d);
            }
        }
    }
    out.dedup();
    Ok(out)
}
