//! Managing backups where they are, without the store (`copy`, `compact`, `forget`): the
//! library calls of `strata_core::manage` over the storage this `Strata` mounts, as the CLI's
//! `strata copy | compact | forget` run them.
//!
//! ```text
//!   copy({ from, to, … })        ──copy_collection / copy_chain──▶ CopyResult
//!   compact({ collection, … })   ──compact_in_collection──────────▶ CompactResult (a new full backup)
//!   forget({ collection, keep… }) ──forget (plan; prune: delete)──▶ ForgetResult
//! ```

use js_sys::Object;
use strata_core::manage::forget::latest;
use strata_core::{
    compact_in_collection, copy_chain, copy_collection, forget, open_locations, CompactOptions, CopyOptions,
    CopyReport, Error, ExternalStorageExt, ForgetPlan, KeepRule, KeyRequest, Locations, Manifest, Result,
    RetentionPolicy, StorageOpener, MANIFEST_NAME,
};
use wasm_bindgen::prelude::*;

use crate::convert::{result_rows_to_objects, set, u64_from_js};
use crate::error::to_js_error;
use crate::options::Options;
use crate::strata::Strata;

/// Options of `copy()`.
const COPY_OPTIONS: &[&str] =
    &["from", "to", "latest", "subdir", "encryptionPassphrase", "kms", "newEncryptionPassphrase", "newKms", "decrypt"];
/// Options of `compact()`.
const COMPACT_OPTIONS: &[&str] = &["collection", "subdir", "encryptionPassphrase", "kms", "dropHistory"];
/// The retention options of `forget()`, with the schedule option each is.
const KEEP: [(&str, &str); 7] = [
    ("keepLast", "keep_last"),
    ("keepHourly", "keep_hourly"),
    ("keepDaily", "keep_daily"),
    ("keepWeekly", "keep_weekly"),
    ("keepMonthly", "keep_monthly"),
    ("keepYearly", "keep_yearly"),
    ("keepWithin", "keep_within"),
];
/// Options of `forget()`.
const FORGET_OPTIONS: &[&str] = &[
    "collection",
    "keepLast",
    "keepHourly",
    "keepDaily",
    "keepWeekly",
    "keepMonthly",
    "keepYearly",
    "keepWithin",
    "prune",
];

fn required(o: &Options, call: &str, name: &str, what: &str) -> Result<String> {
    o.string(name)?.ok_or_else(|| Error::InvalidArgument {
        what: format!("{call} option {name}"),
        message: format!("is required: {what}"),
    })
}

/// Rust API.
impl Strata {
    /// The locations a backup URI names, through this strata's mounts.
    pub fn locations(&self, uri: &str) -> Result<Locations> {
        open_locations(self.mounts().as_ref() as &dyn StorageOpener, &[uri.to_string()])
    }

    /// Copies the collection `from` (every backup, then `LATEST`) to `to`, or the backup
    /// directory `from` with its incrementals, or with `full` (a dated subdirectory, or
    /// `LATEST`) that one chain of the collection into the same subdirectory of `to`.
    pub async fn copy_backups(
        &self,
        from: &str,
        to: &str,
        full: Option<&str>,
        options: CopyOptions<'_>,
    ) -> Result<CopyReport> {
        let (src, dst) = (self.locations(from)?, self.locations(to)?);
        let keyring = self.executor().keyring();
        match full {
            Some(sub) => {
                let sub = match sub {
                    "LATEST" => latest(src.storage().as_ref()).await?,
                    s => s.trim_matches('/').to_string(),
                };
                copy_chain(&src.subdir(&sub), &dst.subdir(&sub), keyring, options).await
            }
            None if src.storage().size(MANIFEST_NAME).await.is_ok() => copy_chain(&src, &dst, keyring, options).await,
            None => copy_collection(&src, &dst, keyring, options).await,
        }
    }

    /// Compacts a chain of the collection (its `full` backup, default the one `LATEST` names)
    /// into a new full backup of the collection; returns its directory and manifest.
    pub async fn compact_backups(
        &self,
        collection: &str,
        full: Option<&str>,
        keys: KeyRequest<'_>,
        options: &CompactOptions,
    ) -> Result<(String, Manifest)> {
        let root = self.locations(collection)?;
        compact_in_collection(&root, full, self.executor().keyring(), keys, options).await
    }

    /// Plans forgetting the collection's backups by `policy` at the store's time, and with
    /// `prune` carries the plan out.
    pub async fn forget_backups(&self, collection: &str, policy: &RetentionPolicy, prune: bool) -> Result<ForgetPlan> {
        let root = self.locations(collection)?;
        let now = self.store().now().await?;
        forget(root.storage(), policy, now, prune).await
    }
}

fn copy_report_to_js(r: &CopyReport) -> JsValue {
    let obj = Object::new();
    set(&obj, "chains", &(r.chains as f64).into());
    set(&obj, "layers", &(r.layers as f64).into());
    set(&obj, "filesCopied", &(r.files_copied as f64).into());
    set(&obj, "filesSkipped", &(r.files_skipped as f64).into());
    set(&obj, "bytes", &(r.bytes as f64).into());
    obj.into()
}

/// The policy of `forget()`'s `keep…` options, each checked as the schedule option of the same
/// name is (`KeepRule::parse`).
fn policy_from_js(o: &Options) -> Result<RetentionPolicy> {
    let mut policy = RetentionPolicy::default();
    for (js, name) in KEEP {
        let v = o.get(js);
        if v.is_undefined() || v.is_null() {
            continue;
        }
        let text = match v.as_string() {
            Some(s) if js == "keepWithin" => s,
            _ if js == "keepWithin" => {
                return Err(Error::InvalidArgument {
                    what: "forget option keepWithin".into(),
                    message: "expected a duration like \"36h\", \"7d\" or \"90m\"".into(),
                })
            }
            _ => u64_from_js(&v, &format!("forget option {js}"))?.to_string(),
        };
        let rule = KeepRule::parse(name, &text)?.expect("a retention option");
        policy = policy.with(rule);
    }
    Ok(policy)
}

fn forget_plan_to_js(plan: &ForgetPlan, pruned: bool) -> JsValue {
    let obj = Object::new();
    set(&obj, "backups", &result_rows_to_objects(&plan.to_result()));
    set(&obj, "kept", &(plan.kept().count() as f64).into());
    set(&obj, "removed", &((plan.removed().count() + plan.leftovers.len()) as f64).into());
    let latest = match &plan.new_latest {
        Some(l) if l.is_empty() => JsValue::NULL,
        Some(l) => JsValue::from_str(&format!("/{l}")),
        None => JsValue::UNDEFINED,
    };
    set(&obj, "newLatest", &latest);
    set(&obj, "pruned", &pruned.into());
    obj.into()
}

/// JavaScript API.
#[wasm_bindgen]
impl Strata {
    /// `copy(options)`: copies a collection (every backup, then `LATEST`), a backup directory,
    /// or one chain of a collection (`latest` / `subdir`) to another storage, checking every
    /// file's size and SHA-256 on the way, optionally re-encrypted (`newEncryptionPassphrase`,
    /// or `decrypt`). A rerun of an interrupted copy resumes. Resolves to what was copied.
    #[wasm_bindgen(js_name = copy, unchecked_return_type = "CopyResult")]
    pub async fn copy_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CopyOptions")] options: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let run = async {
            let o = Options::new(&options, "copy", COPY_OPTIONS)?;
            let from = required(&o, "copy", "from", "the collection or backup directory to copy")?;
            let to = required(&o, "copy", "to", "where the copy goes (a new, empty place)")?;
            let full = match (o.flag("latest")?, o.string("subdir")?) {
                (true, Some(_)) => {
                    return Err(Error::InvalidArgument {
                        what: "copy option subdir".into(),
                        message: "give latest or subdir, not both".into(),
                    })
                }
                (true, None) => Some("LATEST".to_string()),
                (false, s) => s,
            };
            let (passphrase, kms) = (o.string("encryptionPassphrase")?, o.strings("kms")?);
            let (new_passphrase, new_kms) = (o.string("newEncryptionPassphrase")?, o.strings("newKms")?);
            let decrypt = o.flag("decrypt")?;
            if decrypt && (new_passphrase.is_some() || !new_kms.is_empty()) {
                return Err(Error::InvalidArgument {
                    what: "copy option decrypt".into(),
                    message: "give decrypt or a new key (newEncryptionPassphrase, newKms), not both".into(),
                });
            }
            let reencrypt = decrypt || new_passphrase.is_some() || !new_kms.is_empty();
            let options = CopyOptions {
                from: KeyRequest::new(passphrase.as_deref(), &kms),
                to: reencrypt.then(|| KeyRequest::new(new_passphrase.as_deref(), &new_kms)),
            };
            self.copy_backups(&from, &to, full.as_deref(), options).await
        };
        run.await.map(|r| copy_report_to_js(&r)).map_err(|e| to_js_error(&e))
    }

    /// `compact(options)`: merges a chain of the collection (the one `LATEST` names, or
    /// `subdir`'s) into one new full backup of the collection at the chain's end time, read from
    /// the backup alone; revision history is kept unless `dropHistory`. `LATEST` is not changed.
    /// Resolves to the new backup's `path` (a subdirectory, as `showBackups` lists them).
    #[wasm_bindgen(js_name = compact, unchecked_return_type = "CompactResult")]
    pub async fn compact_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CompactOptions")] options: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let run = async {
            let o = Options::new(&options, "compact", COMPACT_OPTIONS)?;
            let collection = required(&o, "compact", "collection", "the collection whose chain is compacted")?;
            let full = o.string("subdir")?;
            let (passphrase, kms) = (o.string("encryptionPassphrase")?, o.strings("kms")?);
            let options = CompactOptions { keep_history: !o.flag("dropHistory")?, ..CompactOptions::default() };
            let keys = KeyRequest::new(passphrase.as_deref(), &kms);
            self.compact_backups(&collection, full.as_deref(), keys, &options).await
        };
        let (dir, m) = run.await.map_err(|e| to_js_error(&e))?;
        let obj = Object::new();
        set(&obj, "path", &format!("/{dir}").into());
        set(&obj, "endTime", &m.end_time.to_string().into());
        set(&obj, "files", &(m.files.len() as f64).into());
        set(&obj, "rows", &(m.files.iter().map(|f| f.rows).sum::<u64>() as f64).into());
        set(&obj, "revisionHistory", &m.has_revision_history().into());
        Ok(obj.into())
    }

    /// `forget(options)`: decides by restic's rules (`keepLast`, `keepDaily`, …, `keepWithin`)
    /// which backups of the collection to keep, at the store's time — a kept incremental keeps
    /// its full backup and every layer between — and, with `prune`, deletes the others (their
    /// manifests first). Without `prune` nothing is deleted. Resolves to the plan.
    #[wasm_bindgen(js_name = forget, unchecked_return_type = "ForgetResult")]
    pub async fn forget_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ForgetOptions")] options: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let run = async {
            let o = Options::new(&options, "forget", FORGET_OPTIONS)?;
            let collection = required(&o, "forget", "collection", "the collection to forget old backups of")?;
            let policy = policy_from_js(&o)?;
            let prune = o.flag("prune")?;
            Ok::<_, Error>((self.forget_backups(&collection, &policy, prune).await?, prune))
        };
        run.await.map(|(plan, pruned)| forget_plan_to_js(&plan, pruned)).map_err(|e| to_js_error(&e))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;
    use strata_core::sql::{BackupSource, Subdir};

    use super::*;

    #[test]
    fn copy_compact_and_forget_through_the_mounts() {
        let s = Strata::in_memory();
        block_on(async {
            s.execute("CREATE DATABASE bank").await.unwrap();
            s.execute("CREATE TABLE bank.accounts").await.unwrap();
            s.put("bank", "accounts", b"alice", b"100").await.unwrap();
            s.execute("BACKUP DATABASE bank INTO 'memory://m'").await.unwrap();
            s.put("bank", "accounts", b"bob", b"7").await.unwrap();
            s.execute("BACKUP DATABASE bank INTO LATEST IN 'memory://m'").await.unwrap();
            let report = s.copy_backups("memory://m", "memory://c", None, CopyOptions::default()).await.unwrap();
            assert_eq!((report.chains, report.layers), (1, 2));
            let (dir, m) =
                s.compact_backups("memory://c", None, KeyRequest::default(), &CompactOptions::default()).await.unwrap();
            assert!(m.is_full());
            let source = BackupSource { subdir: Some(Subdir::Path(dir)), layers: vec![vec!["memory://c".into()]] };
            let rows = s.backup_reader(&source, KeyRequest::default()).await.unwrap();
            assert_eq!(rows.scan_table("bank", "accounts", None).await.unwrap().rows.len(), 2);
            let keep_last = RetentionPolicy { keep_last: 1, ..RetentionPolicy::default() };
            let plan = s.forget_backups("memory://c", &keep_last, true).await.unwrap();
            assert_eq!((plan.kept().count(), plan.removed().count()), (1, 2));
            assert_eq!(s.execute("SHOW BACKUPS IN 'memory://c'").await.unwrap().rows.len(), 1);
        });
    }
}
