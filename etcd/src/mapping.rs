//! Tables whose rows live at native etcd keys; see [`MapMode`].

use std::collections::BTreeMap;

use etcd_client::{DeleteOptions, GetOptions, PutOptions, TxnOp};
use strata_core::{
    keys, prefix_end, read_span, Catalog, DatabaseDescriptor, DescId, Descriptor, DescriptorChange, Error,
    IndexDescriptor, IndexState, KvSink, KvSource, Result, Span, TableDescriptor,
};

use crate::history::range_all;
use crate::store::EtcdKv;

/// Tables whose rows live at native etcd keys: data other programs wrote (a Kubernetes control
/// plane's `/registry/…`) backed up and restored through strata's catalog.
///
/// A mapping says: table `db.table` keeps the row with primary key `k` at the etcd key
/// `prefix + k`, value as is. It is declared once and kept in etcd (`<root>map/<table id>`), and
/// takes effect for stores opened after it:
///
/// - [`MapMode::Create`] (the source): creates `db` (if missing) and `table`, mapped, in one
///   transaction. The keys already under the prefix become the table's rows, with their history.
/// - [`MapMode::ForRestore`] (a restore target): records that a table named `db.table`, when a
///   restore publishes it, moves to `prefix` (`<root>map-name/<db.table>`).
///
/// # Restoring into a mapped prefix, and what "atomic" means there
/// A restore ingests rows under the store root (invisible to other programs). Its publish then,
/// for each table with a pending mapping: checks the prefix is empty (else it fails, nothing
/// changed), writes a *moving* record (`<root>moving/<id>` = prefix), copies the rows to
/// `prefix + key` in transactions of at most `max_txn_ops` keys, and finally commits in one
/// transaction the descriptors, the mapping, the removal of the moving record and of the
/// ingested rows. For strata the switch is that last transaction: before it the table does not
/// exist, after it every row is there. etcd holds no more than 128 operations per transaction,
/// so programs reading the prefix directly see the rows appear batch by batch during the copy:
/// that window is not atomic for them. A restore killed in it leaves a moving record; the next
/// publish for the same prefix, or `discard` of the table's span (the cleanup of a failed
/// restore), deletes the copied rows and the record, so a retried restore starts clean. (Tests
/// kill a restore there with `STRATA_ETCD_FAILPOINT=abort-before-publish`.) Rows the dead
/// attempt ingested under the root stay there, unreachable (no descriptor names them).
///
/// # Modes
/// How [`EtcdKv::map_table`] declares a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapMode {
    /// Create the (database and) table now, mapped: the source of a backup.
    Create,
    /// Map a table of this name when a restore publishes it: a restore target.
    ForRestore,
}

/// Record prefixes under the root.
const MAP_NAME: &[u8] = b"map-name/";
const MOVING: &[u8] = b"moving/";

fn invalid(message: String) -> Error {
    Error::InvalidArgument { what: "etcd table mapping".into(), message }
}

fn show(prefix: &[u8]) -> String {
    String::from_utf8_lossy(prefix).into_owned()
}

/// A pending restore mapping or a moving record: `(record key, value)`.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

impl EtcdKv {
    fn record_prefix(&self, kind: &[u8]) -> Vec<u8> {
        [self.keyspace().layout.root(), kind].concat()
    }

    async fn records(&self, kind: &[u8]) -> Result<Records> {
        let prefix = self.record_prefix(kind);
        let kvs = range_all(self.conn(), &prefix, &prefix_end(&prefix), 0).await?;
        Ok(kvs.into_iter().map(|kv| kv.into_key_value()).collect())
    }

    /// Checks `prefix` is usable: not empty, disjoint from the root and every other mapping.
    async fn check_prefix(&self, prefix: &[u8], except_name: Option<&[u8]>) -> Result<()> {
        if prefix.is_empty() {
            return Err(invalid("the etcd key prefix of a mapped table must not be empty".into()));
        }
        let mut others: Vec<(Vec<u8>, String)> =
            vec![(self.keyspace().layout.root().to_vec(), "the strata root".into())];
        let map_prefix = self.keyspace().layout.map_prefix();
        for kv in range_all(self.conn(), &map_prefix, &prefix_end(&map_prefix), 0).await? {
            others.push((kv.value().to_vec(), "a mapped table".into()));
        }
        for (k, v) in self.records(MAP_NAME).await? {
            if Some(&k[self.record_prefix(MAP_NAME).len()..]) != except_name {
                others.push((v, format!("the pending mapping of {}", show(&k))));
            }
        }
        for (other, what) in others {
            if other.starts_with(prefix) || prefix.starts_with(&other) {
                return Err(invalid(format!("prefix {:?} overlaps {what} at {:?}", show(prefix), show(&other))));
            }
        }
        Ok(())
    }

    /// Declares that table `database.table` keeps its rows at the etcd keys `prefix + primary
    /// key`; see [`MapMode`]. Returns the table's id ([`MapMode::Create`]) or `None`
    /// ([`MapMode::ForRestore`]). Takes effect for stores opened afterwards.
    pub async fn map_table(&self, database: &str, table: &str, prefix: &[u8], mode: MapMode) -> Result<Option<DescId>> {
        let name = format!("{database}.{table}").into_bytes();
        self.check_prefix(prefix, Some(&name)).await?;
        let catalog = self.catalog().await?;
        if catalog.table(database, table).is_some() {
            return Err(Error::AlreadyExists {
                what: "table".into(),
                name: format!("{database}.{table} (map it before creating or restoring it)"),
            });
        }
        if mode == MapMode::ForRestore {
            let key = [self.record_prefix(MAP_NAME), name].concat();
            self.put_records(vec![TxnOp::put(key, prefix.to_vec(), None::<PutOptions>)]).await?;
            return Ok(None);
        }
        let now = self.now().await?;
        let db = match catalog.database(database) {
            Some(db) => db.id,
            None => {
                let id = self.allocate_ids(1).await?;
                let d = DatabaseDescriptor { id, name: database.into(), version: 1, modification_time: now };
                self.publish(vec![DescriptorChange::Put(Descriptor::Database(d))]).await?;
                id
            }
        };
        let id = self.allocate_ids(1).await?;
        let t = TableDescriptor {
            id,
            name: table.into(),
            parent_id: db,
            version: 1,
            modification_time: now,
            indexes: vec![IndexDescriptor { id: 1, name: "primary".into(), unique: true, state: IndexState::Public }],
        };
        let (key, value) = DescriptorChange::Put(Descriptor::Table(t)).into_write();
        let (desc_op, _) = self.keyspace().write_op(&key, value.as_deref());
        let map_op = TxnOp::put(self.keyspace().layout.map_key(id), prefix.to_vec(), None::<PutOptions>);
        self.put_records(vec![desc_op, map_op]).await?;
        Ok(Some(id))
    }

    async fn put_records(&self, ops: Vec<TxnOp>) -> Result<i64> {
        let ops = ops.into_iter().map(|op| (op, 0)).collect();
        let rev = self.write_ops("write mapping records", ops, true).await?;
        self.sync_to(rev).await?;
        Ok(rev)
    }

    /// Deletes the rows a dead restore copied to `prefix` and its moving record.
    fn clean_moving(record: Vec<u8>, prefix: &[u8]) -> Vec<TxnOp> {
        vec![
            TxnOp::delete(prefix.to_vec(), Some(DeleteOptions::new().with_range(prefix_end(prefix)))),
            TxnOp::delete(record, None),
        ]
    }

    /// The extra operations of a publish that makes restored tables mapped: moves their rows to
    /// their prefixes first (see the module docs) and returns what the publish transaction must
    /// also do.
    pub(crate) async fn prepare_mapped_publish(&self, changes: &[DescriptorChange]) -> Result<Vec<TxnOp>> {
        let pending = self.records(MAP_NAME).await?;
        if pending.is_empty() {
            return Ok(vec![]);
        }
        let name_prefix = self.record_prefix(MAP_NAME).len();
        let pending: BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)> =
            pending.into_iter().map(|(k, v)| (k[name_prefix..].to_vec(), (k, v))).collect();
        let mut catalog: Option<Catalog> = None;
        let mut extra = Vec::new();
        for change in changes {
            let DescriptorChange::Put(Descriptor::Table(t)) = change else { continue };
            if self.keyspace().maps.contains_key(&t.id) {
                continue;
            }
            let db_name = match changes.iter().find_map(|c| match c {
                DescriptorChange::Put(Descriptor::Database(d)) if d.id == t.parent_id => Some(d.name.clone()),
                _ => None,
            }) {
                Some(n) => n,
                None => {
                    if catalog.is_none() {
                        catalog = Some(self.catalog().await?);
                    }
                    catalog.as_ref().expect("read").database_name(t.parent_id).to_string()
                }
            };
            let Some((record, prefix)) = pending.get(format!("{db_name}.{}", t.name).as_bytes()) else { continue };
            self.move_rows(t.id, prefix).await?;
            let own = self.keyspace().layout.data_range(&keys::table_span(t.id));
            extra.extend([
                TxnOp::put(self.keyspace().layout.map_key(t.id), prefix.clone(), None::<PutOptions>),
                TxnOp::delete(record.clone(), None),
                TxnOp::delete([self.record_prefix(MOVING), t.id.to_be_bytes().to_vec()].concat(), None),
                TxnOp::delete(own.0, Some(DeleteOptions::new().with_range(own.1))),
            ]);
        }
        Ok(extra)
    }

    /// Copies table `id`'s ingested rows to `prefix + key`, after cleaning what dead attempts
    /// left there; the prefix must otherwise be empty.
    async fn move_rows(&self, id: DescId, prefix: &[u8]) -> Result<()> {
        let moving_prefix = self.record_prefix(MOVING);
        let mut cleanup = Vec::new();
        for (record, p) in self.records(MOVING).await? {
            if p == prefix {
                cleanup.extend(EtcdKv::clean_moving(record, &p));
            }
        }
        if !cleanup.is_empty() {
            self.put_records(cleanup).await?;
        }
        let end = prefix_end(prefix);
        let count = self
            .conn()
            .kv("count keys under a mapped prefix", |mut kv| {
                let (start, end) = (prefix.to_vec(), end.clone());
                async move { kv.get(start, Some(GetOptions::new().with_range(end).with_count_only())).await }
            })
            .await?
            .count();
        if count > 0 {
            return Err(Error::Precondition(format!(
                "cannot restore table {id} into etcd prefix {:?}: it already holds {count} keys",
                show(prefix)
            )));
        }
        let record = [moving_prefix, id.to_be_bytes().to_vec()].concat();
        self.put_records(vec![TxnOp::put(record, prefix.to_vec(), None::<PutOptions>)]).await?;
        let now = self.now().await?;
        let rows = read_span(self, keys::table_span(id), now).await?;
        let ops = rows
            .into_iter()
            .map(|(k, v)| {
                let key = [prefix, &k[5..]].concat();
                let size = key.len() + v.len();
                (TxnOp::put(key, v, None::<PutOptions>), size)
            })
            .collect();
        // Outside the watched range until the mapping exists: nothing to wait for.
        self.write_ops("copy restored rows to their etcd prefix", ops, false).await?;
        if std::env::var("STRATA_ETCD_FAILPOINT").is_ok_and(|v| v == "abort-before-publish") {
            eprintln!("STRATA_ETCD_FAILPOINT=abort-before-publish: aborting after copying the rows of table {id}");
            std::process::abort();
        }
        Ok(())
    }

    /// The etcd ranges a discard of `spans` must also delete: rows a restore copied to a mapped
    /// prefix before it died (its moving records), with the records.
    pub(crate) async fn moving_cleanup(&self, spans: &[Span]) -> Result<Vec<TxnOp>> {
        let moving = self.records(MOVING).await?;
        let start = self.record_prefix(MOVING).len();
        let mut ops = Vec::new();
        for (record, prefix) in moving {
            let Ok(id) = <[u8; 4]>::try_from(&record[start..]) else { continue };
            let table = keys::table_span(u32::from_be_bytes(id));
            if spans.iter().any(|s| s.overlaps(&table)) {
                ops.extend(EtcdKv::clean_moving(record, &prefix));
            }
        }
        Ok(ops)
    }
}
