//! `strata scan --from URI db.table` and `strata get --from URI db.table KEY`: rows read straight
//! from a backup (through [`BackupReader`]: ranged reads of only the blocks the table needs), as
//! a restore at that time would hold them, printed as `scan`/`get` on a store print them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use strata_core::sql::{BackupSource, Subdir};
use strata_core::{BackupReader, Error, Executor, KeyRequest, MemKv, Timestamp};
use strata_native::{FileKmsOpener, NativeOpener};

use crate::output::RowWriter;
use crate::{print_value, shown, split_table, Format};

/// Where `scan`/`get` read from instead of the store: a backup.
#[derive(Args, Debug, Default)]
pub(crate) struct FromBackup {
    /// Read from the backup at this URI (a backup directory with its incrementals, or a
    /// collection with --in) instead of the store, as a restore at --as-of would hold it.
    #[arg(long, value_name = "URI")]
    pub(crate) from: Option<String>,
    /// With --from a collection: its `LATEST` full backup, or this dated subdirectory.
    #[arg(long = "in", value_name = "SUBDIR", requires = "from")]
    subdir: Option<String>,
    /// With --from: the backup's passphrase.
    #[arg(long, env = "STRATA_PASSPHRASE", hide_env_values = true)]
    passphrase: Option<String>,
    /// With --from: a KMS key that opens the backup, e.g. file-kms:///path/to/keyfile.
    #[arg(long, requires = "from")]
    kms: Vec<String>,
}

impl FromBackup {
    /// Opens the backup's chain (unlocked with the passphrase or KMS keys, if given);
    /// `nodelocal://` URIs resolve under `nodelocal`.
    async fn open(&self, nodelocal: Option<PathBuf>) -> anyhow::Result<BackupReader> {
        let uri = self.from.clone().context("--from URI is required")?;
        let opener = match nodelocal {
            Some(dir) => NativeOpener::new(dir),
            // nodelocal:// URIs need a store (or --nodelocal); others do not.
            None => NativeOpener::new(std::env::temp_dir().join("strata-no-store")),
        };
        let exec = Executor::new(Arc::new(MemKv::new()), Arc::new(opener)).with_kms_opener(Arc::new(FileKmsOpener));
        let subdir = self.subdir.clone().map(|s| if s == "LATEST" { Subdir::Latest } else { Subdir::Path(s) });
        let collection = subdir.is_some();
        let source = BackupSource { subdir, layers: vec![vec![uri.clone()]] };
        let keys = KeyRequest::new(self.passphrase.as_deref(), &self.kms);
        match exec.open_chain_with_keys(&source, keys).await {
            Ok(chain) => Ok(BackupReader::new(chain)),
            Err(e @ Error::NotFound { .. }) if !collection => {
                Err(anyhow::anyhow!("{e}; if the URI is a collection (BACKUP … INTO), add --in LATEST"))
            }
            Err(e @ Error::Precondition(_)) if self.passphrase.is_none() && self.kms.is_empty() => {
                Err(anyhow::anyhow!("{e}; here: --passphrase (or STRATA_PASSPHRASE) or --kms"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The time `--as-of` names (decimal, '-10s' before the backup's end, or 'YYYY-MM-DD HH:MM:SS'),
/// or the backup's end.
fn as_of(reader: &BackupReader, text: Option<&str>) -> anyhow::Result<Timestamp> {
    let (_, end) = reader.window()?;
    Ok(match text {
        Some(text) => Timestamp::parse_as_of(text, end)?,
        None => end,
    })
}

/// Prints every `KEY<TAB>VALUE` of `table` in the backup, in key order.
pub(crate) async fn scan(
    nodelocal: Option<PathBuf>,
    from: &FromBackup,
    table: &str,
    at: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let (db, t) = split_table(table)?;
    let reader = from.open(nodelocal).await?;
    let ts = as_of(&reader, at)?;
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut rows = RowWriter::new(out, format, &["key", "value"]);
    let mut failed = None;
    reader
        .for_each_row(db, t, Some(ts), |k, v| match rows.row(&[shown(&k, format), shown(&v, format)]) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })
        .await?;
    // A reader that stopped early (`| head`) is not an error.
    match failed.map_or_else(|| rows.finish(), Err) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write the rows to standard output"))
        }
        _ => Ok(()),
    }
}

/// Prints the value of `key` in `table` in the backup.
pub(crate) async fn get(
    nodelocal: Option<PathBuf>,
    from: &FromBackup,
    table: &str,
    key: &str,
    at: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let (db, t) = split_table(table)?;
    let reader = from.open(nodelocal).await?;
    let ts = as_of(&reader, at)?;
    match reader.get(db, t, key.as_bytes(), Some(ts)).await? {
        Some(v) => print_value(key.as_bytes(), &v, format)?,
        None => bail!("key not found: {key} in {table} at {ts} in the backup"),
    }
    Ok(())
}
