//! DDL against the store's catalog: `CREATE|DROP DATABASE|TABLE`, `SHOW DATABASES|TABLES`, and
//! the name lookups row operations use. Stateless: everything is in the store.

use crate::catalog::{
    DatabaseDescriptor, DescId, Descriptor, DescriptorChange, IndexDescriptor, IndexState, TableDescriptor,
};
use crate::error::{Error, Result};
use crate::kv::KvStore;
use crate::result::QueryResult;
use crate::sql::TableName;
use crate::timestamp::Timestamp;

pub(super) async fn create_database(store: &dyn KvStore, name: &str, if_not_exists: bool) -> Result<QueryResult> {
    let catalog = store.catalog().await?;
    if catalog.database(name).is_some() {
        return if if_not_exists { Ok(QueryResult::default()) } else { Err(Error::exists("database", name)) };
    }
    let id = store.allocate_ids(1).await?;
    let now = store.now().await?;
    let db = DatabaseDescriptor { id, name: name.to_string(), version: 1, modification_time: now };
    store.publish(vec![DescriptorChange::Put(Descriptor::Database(db))]).await?;
    Ok(QueryResult::default())
}

pub(super) async fn create_table(store: &dyn KvStore, name: &TableName, if_not_exists: bool) -> Result<QueryResult> {
    let db_name = qualified(name)?;
    let catalog = store.catalog().await?;
    let db = catalog.require_database(db_name)?;
    if catalog.table(db_name, &name.table).is_some() {
        return if if_not_exists {
            Ok(QueryResult::default())
        } else {
            Err(Error::exists("table", format!("{db_name}.{}", name.table)))
        };
    }
    let id = store.allocate_ids(1).await?;
    let now = store.now().await?;
    let t = TableDescriptor {
        id,
        name: name.table.clone(),
        parent_id: db.id,
        version: 1,
        modification_time: now,
        indexes: vec![IndexDescriptor { id: 1, name: "primary".into(), unique: true, state: IndexState::Public }],
    };
    store.publish(vec![DescriptorChange::Put(Descriptor::Table(t))]).await?;
    Ok(QueryResult::default())
}

pub(super) async fn drop_database(
    store: &dyn KvStore,
    name: &str,
    if_exists: bool,
    cascade: bool,
) -> Result<QueryResult> {
    let catalog = store.catalog().await?;
    let Some(db) = catalog.database(name) else {
        return if if_exists { Ok(QueryResult::default()) } else { Err(Error::not_found("database", name)) };
    };
    let tables: Vec<_> = catalog.tables_in(db.id).map(|t| t.id).collect();
    if !tables.is_empty() && !cascade {
        return Err(Error::Precondition(format!(
            "database {name} is not empty ({} tables); use DROP DATABASE {name} CASCADE",
            tables.len()
        )));
    }
    let changes = tables.into_iter().chain([db.id]).map(DescriptorChange::Delete).collect();
    store.publish(changes).await?;
    Ok(QueryResult::default())
}

pub(super) async fn drop_table(store: &dyn KvStore, name: &TableName, if_exists: bool) -> Result<QueryResult> {
    let db_name = qualified(name)?;
    let catalog = store.catalog().await?;
    match catalog.require_table(db_name, &name.table) {
        Ok(t) => {
            store.publish(vec![DescriptorChange::Delete(t.id)]).await?;
            Ok(QueryResult::default())
        }
        Err(_) if if_exists => Ok(QueryResult::default()),
        Err(e) => Err(e),
    }
}

/// Resolves `db.table` (as of `at`, or now) to its descriptor id, for row operations.
pub(super) async fn table_id(store: &dyn KvStore, db: &str, table: &str, at: Option<Timestamp>) -> Result<DescId> {
    let catalog = match at {
        Some(ts) => store.catalog_at(ts).await?,
        None => store.catalog().await?,
    };
    Ok(catalog.require_table(db, table)?.id)
}

fn qualified(name: &TableName) -> Result<&str> {
    name.database.as_deref().ok_or_else(|| {
        Error::invalid(
            "table name",
            format!("'{}' must be qualified with its database, as db.{}", name.table, name.table),
        )
    })
}

pub(super) async fn show_databases(store: &dyn KvStore) -> Result<QueryResult> {
    let catalog = store.catalog().await?;
    let mut r = QueryResult::new(&["database_name"]);
    let mut names: Vec<&str> = catalog.databases.values().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    for n in names {
        r.push(vec![n.into()]);
    }
    Ok(r)
}

pub(super) async fn show_tables(store: &dyn KvStore, database: Option<&str>) -> Result<QueryResult> {
    let catalog = store.catalog().await?;
    let mut r = QueryResult::new(&["database_name", "table_name"]);
    let mut rows: Vec<(String, String)> = catalog
        .tables
        .values()
        .map(|t| (catalog.database_name(t.parent_id).to_string(), t.name.clone()))
        .filter(|(db, _)| database.is_none_or(|d| d == db))
        .collect();
    if let Some(d) = database {
        catalog.require_database(d)?;
    }
    rows.sort();
    for (db, t) in rows {
        r.push(vec![db.into(), t.into()]);
    }
    Ok(r)
}
