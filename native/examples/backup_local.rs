//! Back up an in-memory store into a local directory, then restore it into another store.
//!
//! ```sh
//! cargo run -p strata-native --example backup_local -- [DIR]
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_core::{keys, Executor, KvStore, MemKv};
use strata_native::{os_entropy, NativeOpener};

/// strata's in-memory store, on the system's clock (its default clock is a counter, for tests).
fn memory_store() -> Arc<MemKv> {
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Arc::new(MemKv::with_clock(Arc::new(now)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).map_or_else(|| std::env::temp_dir().join("strata-example"), Into::into);
    let uri = format!("file://{}", std::path::absolute(&dir)?.display());
    // An executor runs statements against a store; the opener turns URIs into storage.
    let executor = |store: Arc<MemKv>| {
        Executor::new(store, Arc::new(NativeOpener::new(dir.join("nodelocal")))).with_entropy(os_entropy())
    };
    let store = memory_store();
    let source = executor(store.clone());
    source.execute("CREATE DATABASE bank").await?;
    source.execute("CREATE TABLE bank.accounts").await?;
    let table = source.table_id("bank", "accounts", None).await?;
    store.write(vec![(keys::table_key(table, b"alice"), Some(b"100".to_vec()))]).await?;

    println!("{}", source.execute(&format!("BACKUP DATABASE bank INTO '{uri}'")).await?);
    println!("{}", source.execute(&format!("SHOW BACKUP FROM LATEST IN '{uri}'")).await?);
    let target = executor(memory_store());
    println!("{}", target.execute(&format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'")).await?);
    Ok(())
}
