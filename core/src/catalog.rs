//! Descriptors of databases and tables, and the catalog they form at a point in time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::DESCRIPTOR;
use crate::error::{Error, Result};
use crate::keys;
use crate::span::Span;
use crate::timestamp::Timestamp;

pub use crate::keys::{DescId, FIRST_USER_ID};

/// Where an index is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexState {
    /// Readable and maintained.
    Public,
    /// Being built: written, not yet read.
    Adding,
    /// Being removed.
    Dropping,
}

/// An index of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDescriptor {
    /// Id within its table; 1 is the primary index.
    pub id: u32,
    /// Name, e.g. `primary`.
    pub name: String,
    /// Whether values are unique.
    pub unique: bool,
    /// Its state.
    pub state: IndexState,
}

/// A database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDescriptor {
    /// Its id.
    pub id: DescId,
    /// Its name, unique in the cluster.
    pub name: String,
    /// Incremented by every change.
    pub version: u64,
    /// When it last changed.
    pub modification_time: Timestamp,
}

/// A table: a key span owned through its id-derived prefix, and its indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDescriptor {
    /// Its id; its rows live under [`keys::table_prefix`] of it.
    pub id: DescId,
    /// Its name, unique in its database.
    pub name: String,
    /// The database it belongs to.
    pub parent_id: DescId,
    /// Incremented by every change.
    pub version: u64,
    /// When it last changed.
    pub modification_time: Timestamp,
    /// Its indexes; the first is the primary index.
    pub indexes: Vec<IndexDescriptor>,
}

impl TableDescriptor {
    /// The key span of this table's rows.
    pub fn span(&self) -> Span {
        keys::table_span(self.id)
    }
}

/// A database or table descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Descriptor {
    /// A database.
    Database(DatabaseDescriptor),
    /// A table.
    Table(TableDescriptor),
}

impl Descriptor {
    /// Its id.
    pub fn id(&self) -> DescId {
        match self {
            Descriptor::Database(d) => d.id,
            Descriptor::Table(t) => t.id,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Descriptor::Database(d) => &d.name,
            Descriptor::Table(t) => &t.name,
        }
    }

    /// Encodes the descriptor as stored under its key in the system span: in its envelope
    /// (`STRATADS`, version 2), a postcard body.
    pub fn encode(&self) -> Vec<u8> {
        DESCRIPTOR.encode(self)
    }

    /// Decodes a stored descriptor, of either form: version 2 in its envelope, or version 1, a
    /// single byte `1` before the same postcard body (what an older store holds, and the system
    /// span of older backups).
    pub fn decode(bytes: &[u8]) -> Result<Descriptor> {
        const SHOWN: &str = "descriptor";
        match bytes.split_first() {
            None => Err(Error::corrupt(SHOWN, "empty descriptor")),
            Some((&DESCRIPTOR_V1, body)) => postcard::from_bytes(body).map_err(|e| DESCRIPTOR.undecodable(SHOWN, e)),
            Some(_) => DESCRIPTOR.decode(bytes, SHOWN),
        }
    }
}

/// The first byte of a version-1 descriptor (it cannot start an envelope, whose magic starts with `S`).
const DESCRIPTOR_V1: u8 = 1;

/// A change to the catalog that [`crate::KvSink::publish`] applies atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorChange {
    /// Create or replace the descriptor with this id.
    Put(Descriptor),
    /// Remove the descriptor with this id (its data becomes unreachable).
    Delete(DescId),
    /// Write a row of the system span outside the descriptors (a job, a schedule, a setting):
    /// what a full-cluster restore carries over, published with its descriptors so that a failed
    /// restore leaves none of them behind.
    SystemRow {
        /// The key, in [`keys::system_span`] and outside [`keys::descriptor_span`].
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
}

impl DescriptorChange {
    /// The write that applies the change in the system span: the descriptor's key, and its
    /// encoding or `None` (a deletion).
    pub fn into_write(self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            DescriptorChange::Put(d) => (keys::descriptor_key(d.id()), Some(d.encode())),
            DescriptorChange::Delete(id) => (keys::descriptor_key(id), None),
            DescriptorChange::SystemRow { key, value } => (key, Some(value)),
        }
    }
}

/// The set of databases and tables at one point in time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Databases by id.
    pub databases: BTreeMap<DescId, DatabaseDescriptor>,
    /// Tables by id.
    pub tables: BTreeMap<DescId, TableDescriptor>,
}

impl Catalog {
    /// A catalog of these descriptors.
    pub fn from_descriptors(descs: impl IntoIterator<Item = Descriptor>) -> Catalog {
        let mut c = Catalog::default();
        for d in descs {
            c.insert(d);
        }
        c
    }

    /// Adds or replaces a descriptor.
    pub fn insert(&mut self, d: Descriptor) {
        match d {
            Descriptor::Database(db) => {
                self.databases.insert(db.id, db);
            }
            Descriptor::Table(t) => {
                self.tables.insert(t.id, t);
            }
        }
    }

    /// Every descriptor, databases first.
    pub fn descriptors(&self) -> Vec<Descriptor> {
        self.databases
            .values()
            .cloned()
            .map(Descriptor::Database)
            .chain(self.tables.values().cloned().map(Descriptor::Table))
            .collect()
    }

    /// The database with this name.
    pub fn database(&self, name: &str) -> Option<&DatabaseDescriptor> {
        self.databases.values().find(|d| d.name == name)
    }

    /// The database with this name, or a not-found error.
    pub fn require_database(&self, name: &str) -> Result<&DatabaseDescriptor> {
        self.database(name).ok_or_else(|| Error::not_found("database", name))
    }

    /// The table `db.table`.
    pub fn table(&self, db: &str, table: &str) -> Option<&TableDescriptor> {
        let db = self.database(db)?;
        self.tables.values().find(|t| t.parent_id == db.id && t.name == table)
    }

    /// The table `db.table`, or a not-found error naming it.
    pub fn require_table(&self, db: &str, table: &str) -> Result<&TableDescriptor> {
        self.require_database(db)?;
        self.table(db, table).ok_or_else(|| Error::not_found("table", format!("{db}.{table}")))
    }

    /// The tables of database `db_id`, by id.
    pub fn tables_in(&self, db_id: DescId) -> impl Iterator<Item = &TableDescriptor> {
        self.tables.values().filter(move |t| t.parent_id == db_id)
    }

    /// The name of a table's database, or `?` for an orphan.
    pub fn database_name(&self, db_id: DescId) -> &str {
        self.databases.get(&db_id).map_or("?", |d| d.name.as_str())
    }

    /// Whether the catalog holds no user database or table.
    pub fn has_no_user_objects(&self) -> bool {
        self.databases.keys().chain(self.tables.keys()).all(|id| *id < FIRST_USER_ID)
    }

    /// The largest id in use, if any.
    pub fn max_id(&self) -> Option<DescId> {
        self.databases.keys().chain(self.tables.keys()).copied().max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn sample() -> Catalog {
        Catalog::from_descriptors([
            Descriptor::Database(DatabaseDescriptor {
                id: 100,
                name: "bank".into(),
                version: 1,
                modification_time: Timestamp::new(1, 0),
            }),
            Descriptor::Table(TableDescriptor {
                id: 101,
                name: "accounts".into(),
                parent_id: 100,
                version: 1,
                modification_time: Timestamp::new(2, 0),
                indexes: vec![IndexDescriptor {
                    id: 1,
                    name: "primary".into(),
                    unique: true,
                    state: IndexState::Public,
                }],
            }),
        ])
    }

    #[test]
    fn lookups() {
        let c = sample();
        assert_eq!(c.require_table("bank", "accounts").unwrap().id, 101);
        assert_eq!(
            c.require_table("bank", "nope").unwrap_err(),
            Error::NotFound { what: "table".into(), name: "bank.nope".into() }
        );
        assert_eq!(c.require_table("nodb", "x").unwrap_err().to_string(), "database not found: nodb");
        assert!(!c.has_no_user_objects());
        assert!(Catalog::default().has_no_user_objects());
    }

    #[test]
    fn descriptor_encoding_round_trips() {
        for d in sample().descriptors() {
            assert_eq!(Descriptor::decode(&d.encode()).unwrap(), d);
        }
        assert!(matches!(Descriptor::decode(&[9, 1, 2]), Err(Error::Corrupt { .. })));
        assert!(matches!(Descriptor::decode(&[]), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn descriptors_are_stored_in_their_envelope_and_the_one_byte_form_still_reads() {
        for d in sample().descriptors() {
            let bytes = d.encode();
            assert_eq!(&bytes[..10], b"STRATADS\x02\x00");
            let mut v1 = vec![1u8];
            v1.extend_from_slice(&bytes[10..]);
            assert_eq!(Descriptor::decode(&v1).unwrap(), d);
            let mut newer = bytes.clone();
            newer[8] = 3;
            assert_eq!(
                Descriptor::decode(&newer).unwrap_err().to_string(),
                "corrupt descriptor: descriptor format version 3 is not readable by this build (reads up to 2)"
            );
        }
    }
}
