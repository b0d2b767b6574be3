//! Reading rows straight from a backup, without restoring it (`scanBackup`, `getFromBackup`):
//! a [`BackupReader`] over the chain the options name fetches only the blocks (and, encrypted,
//! the chunks) of the table asked for, through the same mounted storage restores read.

use js_sys::{Array, Object};
use strata_core::sql::BackupSource;
use strata_core::{BackupReader, Error, KeyRequest, Result, TableRows, Timestamp};
use wasm_bindgen::prelude::*;

use crate::convert::{bytes_from_js, bytes_to_js, set};
use crate::error::to_js_error;
use crate::options::Options;
use crate::strata::Strata;

/// Options of `scanBackup()`.
const SCAN_BACKUP_OPTIONS: &[&str] =
    &["from", "latest", "subdir", "encryptionPassphrase", "kms", "table", "asOf", "limit"];
/// Options of `getFromBackup()`.
const GET_FROM_BACKUP_OPTIONS: &[&str] =
    &["from", "latest", "subdir", "encryptionPassphrase", "kms", "table", "asOf", "key"];

/// Rust API.
impl Strata {
    /// A reader of the chain `source` names (unlocked with `keys` if it is encrypted).
    pub async fn backup_reader(&self, source: &BackupSource, keys: KeyRequest<'_>) -> Result<BackupReader> {
        Ok(BackupReader::new(self.executor().open_chain_with_keys(source, keys).await?))
    }
}

/// What the options of both calls share: the reader, the table, and the time.
async fn open(strata: &Strata, o: &Options<'_>) -> Result<(BackupReader, String, String, Option<Timestamp>)> {
    let source = o.source()?;
    let passphrase = o.string("encryptionPassphrase")?;
    let kms = o.strings("kms")?;
    let table = o.string("table")?.unwrap_or_default();
    let Some((db, t)) = table.split_once('.').filter(|(d, t)| !d.is_empty() && !t.is_empty()) else {
        return Err(Error::InvalidArgument {
            what: "table".into(),
            message: format!("'{table}': expected db.table (the table to read from the backup)"),
        });
    };
    let (db, t) = (db.to_string(), t.to_string());
    let reader = strata.backup_reader(&source, KeyRequest::new(passphrase.as_deref(), &kms)).await?;
    let at = match o.string("asOf")? {
        Some(a) => Some(Timestamp::parse_as_of(&a, reader.window()?.1)?),
        None => None,
    };
    Ok((reader, db, t, at))
}

fn rows_to_js(rows: &TableRows) -> JsValue {
    let obj = Object::new();
    set(&obj, "asOf", &rows.as_of.to_string().into());
    set(&obj, "tableId", &(rows.table.id as f64).into());
    let pairs: Array =
        rows.rows.iter().map(|(k, v)| JsValue::from(Array::of2(&bytes_to_js(k), &bytes_to_js(v)))).collect();
    set(&obj, "rows", &pairs);
    obj.into()
}

/// JavaScript API.
#[wasm_bindgen]
impl Strata {
    /// `scanBackup(options)`: the rows of `options.table` (`db.table`) in the backup `options`
    /// names, as a restore as of `options.asOf` (default: the backup's end) would hold them;
    /// resolves to `{ asOf, tableId, rows }`, at most `options.limit` rows. Only the table's blocks
    /// are fetched.
    #[wasm_bindgen(js_name = scanBackup, unchecked_return_type = "BackupRows")]
    pub async fn scan_backup_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ScanBackupOptions")] options: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let run = async {
            let o = Options::new(&options, "scanBackup", SCAN_BACKUP_OPTIONS)?;
            let limit = match o.get("limit") {
                v if v.is_undefined() || v.is_null() => usize::MAX,
                v => crate::convert::u64_from_js(&v, "scanBackup option limit")? as usize,
            };
            let (reader, db, table, at) = open(self, &o).await?;
            let mut rows = Vec::new();
            let (as_of, table) = reader
                .for_each_row(&db, &table, at, |k, v| {
                    if rows.len() < limit {
                        rows.push((k, v));
                    }
                    rows.len() < limit
                })
                .await?;
            Ok::<_, Error>(TableRows { as_of, table, rows })
        };
        run.await.map(|rows| rows_to_js(&rows)).map_err(|e| to_js_error(&e))
    }

    /// `getFromBackup(options)`: the value of `options.key` in `options.table` in the backup, as
    /// a restore as of `options.asOf` would hold it, or `undefined`.
    #[wasm_bindgen(js_name = getFromBackup)]
    pub async fn get_from_backup_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GetFromBackupOptions")] options: JsValue,
    ) -> std::result::Result<Option<Vec<u8>>, JsValue> {
        let run = async {
            let o = Options::new(&options, "getFromBackup", GET_FROM_BACKUP_OPTIONS)?;
            let key = bytes_from_js(&o.get("key"), "getFromBackup option key")?;
            let (reader, db, table, at) = open(self, &o).await?;
            Ok::<_, Error>(reader.get(&db, &table, &key, at).await?.map(|v| v.to_vec()))
        };
        run.await.map_err(|e| to_js_error(&e))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;
    use strata_core::sql::Subdir;

    use super::*;

    #[test]
    fn rows_of_a_backup_at_a_time() {
        let s = Strata::in_memory();
        block_on(async {
            s.execute("CREATE DATABASE bank").await.unwrap();
            s.execute("CREATE TABLE bank.accounts").await.unwrap();
            let t1 = s.put("bank", "accounts", b"alice", b"100").await.unwrap();
            s.execute("BACKUP DATABASE bank INTO 'memory://b' WITH revision_history").await.unwrap();
            s.put("bank", "accounts", b"alice", b"90").await.unwrap();
            s.put("bank", "accounts", b"bob", b"7").await.unwrap();
            s.execute("BACKUP DATABASE bank INTO LATEST IN 'memory://b' WITH revision_history").await.unwrap();
            let source = BackupSource { subdir: Some(Subdir::Latest), layers: vec![vec!["memory://b".into()]] };
            let reader = s.backup_reader(&source, KeyRequest::default()).await.unwrap();
            let now = reader.scan_table("bank", "accounts", None).await.unwrap();
            let rows: Vec<(&[u8], &[u8])> = now.rows.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            assert_eq!(rows, vec![(&b"alice"[..], &b"90"[..]), (&b"bob"[..], &b"7"[..])]);
            let then = reader.scan_table("bank", "accounts", Some(t1)).await.unwrap();
            assert_eq!(then.rows.len(), 1);
            assert_eq!(&then.rows[0].1[..], b"100");
            assert_eq!(reader.get("bank", "accounts", b"bob", Some(t1)).await.unwrap(), None);
        });
    }
}
