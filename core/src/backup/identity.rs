//! Whose data a backup holds: the source store's id, a random value the store keeps under
//! [`keys::STORE_ID_KEY`] (outside every span a backup exports, so a restored store keeps its
//! own). A run records it, and never adopts a run of another store: two copies of one database
//! (same tables, different rows) backing up into one collection never mix their files.

use crate::crypto::Entropy;
use crate::error::Result;
use crate::keys;
use crate::kv::{KvSource, KvStore, MvccFilter, ScanRequest};
use crate::span::Span;
use crate::timestamp::Timestamp;

/// The source store's id, if it has one (a store that never ran a backup of this strata, or
/// an engine that does not keep the key, has none: its runs are matched as older strata's were).
pub async fn store_id(source: &dyn KvSource) -> Result<Option<String>> {
    let now = source.now().await?;
    let mut end = keys::STORE_ID_KEY.to_vec();
    end.push(0);
    let request =
        ScanRequest::new(Span::new(keys::STORE_ID_KEY.to_vec(), end), Timestamp::ZERO, now, MvccFilter::Latest);
    let page = source.scan(request).await?;
    Ok(page
        .entries
        .into_iter()
        .find(|e| e.key.as_ref() == keys::STORE_ID_KEY)
        .and_then(|e| e.value)
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// The store's id, made (16 random hex digits from `entropy`) and written the first time it is
/// asked for; `None` without entropy for a store that has none yet. Two first calls at once may
/// both write: the later write wins and both answer what is stored after their write.
pub async fn ensure_store_id(store: &dyn KvStore, entropy: Option<&Entropy>) -> Result<Option<String>> {
    if let Some(id) = store_id(store).await? {
        return Ok(Some(id));
    }
    let Some(entropy) = entropy else { return Ok(None) };
    let mut bytes = [0u8; 8];
    entropy.fill(&mut bytes)?;
    store.write(vec![(keys::STORE_ID_KEY.to_vec(), Some(hex::encode(bytes).into_bytes()))]).await?;
    store_id(store).await
}
