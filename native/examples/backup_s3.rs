//! Back up an in-memory store into S3 (or any S3-compatible server), taking the place and the
//! credentials from the environment.
//!
//! ```sh
//! S3_BUCKET=my-bucket AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… [AWS_REGION=…] \
//!   [AWS_ENDPOINT=http://127.0.0.1:9000] cargo run -p strata-native --example backup_s3 -- [PREFIX]
//! ```
//!
//! The credentials go into the URI as CockroachDB's `s3://` URIs carry them; strata never
//! shows them (every URI it prints, logs or stores is redacted). `native/tests/storage_servers.rs`
//! runs [`backup_into_s3`] against the tests' S3 server.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_core::{keys, Executor, KvStore, MemKv, QueryResult};
use strata_native::{os_entropy, NativeOpener};

/// The collection `s3://BUCKET/PREFIX?…` from the variables `env` looks up.
pub fn collection_uri(env: impl Fn(&str) -> Option<String>, prefix: &str) -> anyhow::Result<String> {
    let var = |name: &str| env(name).ok_or_else(|| anyhow::anyhow!("set {name}"));
    let enc = |v: String| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let mut uri = format!(
        "s3://{}/{prefix}?AWS_ACCESS_KEY_ID={}&AWS_SECRET_ACCESS_KEY={}&AWS_REGION={}",
        var("S3_BUCKET")?,
        enc(var("AWS_ACCESS_KEY_ID")?),
        enc(var("AWS_SECRET_ACCESS_KEY")?),
        enc(env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()))
    );
    if let Some(endpoint) = env("AWS_ENDPOINT") {
        uri += &format!("&AWS_ENDPOINT={}", enc(endpoint));
    }
    Ok(uri)
}

/// Fills an in-memory store with a row and backs its database up into the collection `uri`.
pub async fn backup_into_s3(uri: &str) -> anyhow::Result<(QueryResult, QueryResult)> {
    let store = memory_store();
    let opener = Arc::new(NativeOpener::new(std::env::temp_dir().join("strata-nodelocal")));
    let exec = Executor::new(store.clone(), opener).with_entropy(os_entropy());
    exec.execute("CREATE DATABASE bank").await?;
    exec.execute("CREATE TABLE bank.accounts").await?;
    let table = exec.table_id("bank", "accounts", None).await?;
    store.write(vec![(keys::table_key(table, b"alice"), Some(b"100".to_vec()))]).await?;
    let backup = exec.execute(&format!("BACKUP DATABASE bank INTO '{uri}'")).await?;
    Ok((backup, exec.execute(&format!("SHOW BACKUP FROM LATEST IN '{uri}'")).await?))
}

/// strata's in-memory store, on the system's clock (its default clock is a counter, for tests).
fn memory_store() -> Arc<MemKv> {
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Arc::new(MemKv::with_clock(Arc::new(now)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let prefix = std::env::args().nth(1).unwrap_or_else(|| "strata-example".into());
    let (backup, shown) = backup_into_s3(&collection_uri(|k| std::env::var(k).ok(), &prefix)?).await?;
    println!("{backup}\n{shown}");
    Ok(())
}
