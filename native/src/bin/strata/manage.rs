//! `strata copy`, `strata compact` and `strata forget`: managing backups in storage without
//! the store (the library calls of `strata_core::manage`).

use std::path::Path;
use std::sync::Arc;

use clap::Args;
use strata_core::{
    compact_in_collection, copy_chain, copy_collection, forget, open_locations, parse_keep_within, CompactOptions,
    CopyOptions, ExternalStorageExt, KeyRequest, Keyring, Locations, RetentionPolicy, StorageOpener, Timestamp,
    MANIFEST_NAME,
};
use strata_native::{os_entropy, FileKmsOpener, NativeOpener};

use crate::output::print_result;
use crate::Format;

/// The keys of a backup: `--passphrase` / `--kms`.
#[derive(Args, Clone, Default)]
pub(crate) struct Keys {
    /// The backup's passphrase.
    #[arg(long, env = "STRATA_PASSPHRASE", hide_env_values = true)]
    passphrase: Option<String>,
    /// A KMS key that opens the backup, e.g. file-kms:///path/to/keyfile.
    #[arg(long)]
    kms: Vec<String>,
}

impl Keys {
    fn request(&self) -> KeyRequest<'_> {
        KeyRequest::new(self.passphrase.as_deref(), &self.kms)
    }
}

#[derive(Args)]
pub(crate) struct CopyArgs {
    /// The source: a collection (every backup and LATEST are copied) or a backup directory.
    from: String,
    /// The destination (a new, empty place; a rerun of an interrupted copy resumes).
    to: String,
    /// Copy only this dated full backup of the collection (`LATEST` for the newest), with its
    /// incrementals, into the same subdirectory of the destination.
    #[arg(long = "in", value_name = "SUBDIR")]
    subdir: Option<String>,
    #[command(flatten)]
    keys: Keys,
    /// Re-encrypt the copy with a new data key wrapped by this passphrase.
    #[arg(long, env = "STRATA_NEW_PASSPHRASE", hide_env_values = true)]
    new_passphrase: Option<String>,
    /// Re-encrypt the copy with a new data key wrapped by this KMS key.
    #[arg(long)]
    new_kms: Vec<String>,
    /// Write the copy unencrypted (needs the source's key).
    #[arg(long, conflicts_with_all = ["new_passphrase", "new_kms"])]
    decrypt: bool,
}

#[derive(Args)]
pub(crate) struct CompactArgs {
    /// The collection.
    uri: String,
    /// The dated full backup whose chain is compacted (default: the one LATEST names).
    #[arg(long = "in", value_name = "SUBDIR")]
    subdir: Option<String>,
    #[command(flatten)]
    keys: Keys,
    /// Keep only the end time's data, not the revision history.
    #[arg(long)]
    drop_history: bool,
}

#[derive(Args)]
pub(crate) struct ForgetArgs {
    /// The collection.
    uri: String,
    /// Keep the newest N backups.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_last: usize,
    /// Keep the newest backup of each of the newest N hours that have backups.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_hourly: usize,
    /// … of each of the newest N days (UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_daily: usize,
    /// … of each of the newest N weeks (Monday to Sunday, UTC).
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_weekly: usize,
    /// … of each of the newest N months.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_monthly: usize,
    /// … of each of the newest N years.
    #[arg(long, default_value_t = 0, value_name = "N")]
    keep_yearly: usize,
    /// Keep every backup younger than this (`36h`, `7d`, `90m`).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Delete what the plan removes (without it, only the plan is printed).
    #[arg(long)]
    prune: bool,
}

fn keyring() -> Keyring {
    Keyring::default().with_entropy(os_entropy()).with_kms_opener(Arc::new(FileKmsOpener))
}

/// The opener of the CLI, `nodelocal://` under `nodelocal_root`.
fn opener(nodelocal_root: &Path) -> NativeOpener {
    NativeOpener::new(nodelocal_root.to_path_buf())
}

fn locations(opener: &NativeOpener, uri: &str) -> anyhow::Result<Locations> {
    Ok(open_locations(opener as &dyn StorageOpener, &[uri.to_string()])?)
}

pub(crate) async fn copy(nodelocal_root: &Path, a: CopyArgs) -> anyhow::Result<()> {
    let opener = opener(nodelocal_root);
    let (src, dst) = (locations(&opener, &a.from)?, locations(&opener, &a.to)?);
    let to = if a.decrypt || a.new_passphrase.is_some() || !a.new_kms.is_empty() {
        Some(KeyRequest::new(a.new_passphrase.as_deref(), &a.new_kms))
    } else {
        None
    };
    let options = CopyOptions { from: a.keys.request(), to };
    let keyring = keyring();
    let is_chain = src.storage().size(MANIFEST_NAME).await.is_ok();
    let report = match (&a.subdir, is_chain) {
        (Some(sub), _) => {
            let sub = match sub.as_str() {
                "LATEST" => strata_core::manage::forget::latest(src.storage().as_ref()).await?,
                s => s.trim_matches('/').to_string(),
            };
            copy_chain(&src.subdir(&sub), &dst.subdir(&sub), &keyring, options).await?
        }
        (None, true) => copy_chain(&src, &dst, &keyring, options).await?,
        (None, false) => copy_collection(&src, &dst, &keyring, options).await?,
    };
    eprintln!(
        "copied {} chains ({} layers): {} files written ({} bytes), {} already there and intact",
        report.chains, report.layers, report.files_copied, report.bytes, report.files_skipped
    );
    Ok(())
}

pub(crate) async fn compact(nodelocal_root: &Path, a: CompactArgs) -> anyhow::Result<()> {
    let opener = opener(nodelocal_root);
    let root = locations(&opener, &a.uri)?;
    let options = CompactOptions { keep_history: !a.drop_history, ..CompactOptions::default() };
    let (dir, m) = compact_in_collection(&root, a.subdir.as_deref(), &keyring(), a.keys.request(), &options).await?;
    crate::output::line(format_args!("/{dir}"))?;
    eprintln!(
        "compacted into /{dir}: a full backup as of {} with {} files, {} rows{}",
        m.end_time,
        m.files.len(),
        m.files.iter().map(|f| f.rows).sum::<u64>(),
        if m.has_revision_history() { ", revision history kept" } else { "" }
    );
    Ok(())
}

pub(crate) fn policy(a: &ForgetArgs) -> anyhow::Result<RetentionPolicy> {
    Ok(RetentionPolicy {
        keep_last: a.keep_last,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within: a.keep_within.as_deref().map(parse_keep_within).transpose()?,
    })
}

pub(crate) async fn run_forget(nodelocal_root: &Path, a: ForgetArgs, format: Format) -> anyhow::Result<()> {
    let opener = opener(nodelocal_root);
    let root = locations(&opener, &a.uri)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let plan = forget(root.storage(), &policy(&a)?, Timestamp::from_nanos(now), a.prune).await?;
    print_result(&plan.to_result(), format, None)?;
    let removed = plan.removed().count() + plan.leftovers.len();
    if a.prune {
        eprintln!("kept {} backups, removed {removed}", plan.kept().count());
    } else {
        eprintln!("kept {} backups, would remove {removed}: run with --prune to delete them", plan.kept().count());
    }
    Ok(())
}
