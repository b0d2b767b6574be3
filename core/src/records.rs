//! Records the executor keeps in the store's system span (jobs, schedules): one [`RecordStore`]
//! per kind, each a key prefix, an [`Envelope`] and a next-id counter.
//!
//! ```text
//!   system_key(b"job/" ++ id u64 BE)      ──▶ STRATAJB │ u16 LE version │ postcard(Job)
//!   system_key(b"job-next-id")            ──▶ next id, u64 BE
//!   system_key(b"schedule/" ++ id u64 BE) ──▶ STRATASC │ u16 LE version │ postcard(Schedule)
//!   system_key(b"schedule-next-id")       ──▶ next id, u64 BE
//! ```
//!
//! Records written before the envelope (version 1: one byte `1`, then the same postcard body)
//! still read; they are rewritten in the envelope form the next time they change.
//!
//! This module is below the executor and the restore: a full-cluster restore asks it what to
//! write for each system record of the source ([`restored_system_value`]).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::keys::system_key;
use crate::kv::{read_span, KvStore};
use crate::schedule::Schedule;
use crate::span::Span;

/// Key prefix (below [`system_key`]) of job records.
pub(crate) const JOB_PREFIX: &[u8] = b"job/";
/// Key (below [`system_key`]) of the next job id.
pub(crate) const JOB_NEXT_ID: &[u8] = b"job-next-id";
/// The prefix shared by every key of the job registry: records and counter.
const JOB_KEYS_PREFIX: &[u8] = b"job";
/// The stored form of a job record.
pub(crate) const JOB_ENVELOPE: Envelope = crate::envelope::JOB_RECORD;

/// The schedules' records: every schedule, and the ids of schedules and their runs.
pub(crate) const SCHEDULES: RecordStore<Schedule> =
    RecordStore::new("schedule", b"schedule/", b"schedule-next-id", crate::envelope::SCHEDULE_RECORD);

/// The first stored form, before the envelope: this byte, then postcard.
const V1: u8 = 1;

/// Typed records of one kind in a store's system span: `T` under `prefix ++ id` (big-endian,
/// so records list in id order), and a counter of the next free id.
pub(crate) struct RecordStore<T> {
    what: &'static str,
    prefix: &'static [u8],
    next_id: &'static [u8],
    envelope: Envelope,
    record: PhantomData<fn() -> T>,
}

// By hand: derives would ask `T: Clone`.
impl<T> Clone for RecordStore<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RecordStore<T> {}

impl<T: Serialize + DeserializeOwned> RecordStore<T> {
    /// Records of kind `what` (`job`, for messages) under `prefix`, with their next id under
    /// `next_id` (both below [`system_key`]), stored as `envelope`.
    pub(crate) const fn new(
        what: &'static str,
        prefix: &'static [u8],
        next_id: &'static [u8],
        envelope: Envelope,
    ) -> RecordStore<T> {
        RecordStore { what, prefix, next_id, envelope, record: PhantomData }
    }

    /// The key of record `id`.
    pub(crate) fn key(&self, id: u64) -> Vec<u8> {
        let mut suffix = self.prefix.to_vec();
        suffix.extend_from_slice(&id.to_be_bytes());
        system_key(&suffix)
    }

    /// The span of every record of this kind (not the counter).
    fn span(&self) -> Span {
        Span::prefix(&system_key(self.prefix))
    }

    /// The stored bytes of `value`.
    pub(crate) fn encode(&self, value: &T) -> Vec<u8> {
        self.envelope.encode(value)
    }

    /// A record from its stored bytes, in the envelope form or the first one.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<T> {
        let shown = format!("system span: {}", self.what);
        if self.envelope.is_this(bytes) {
            return self.envelope.decode(bytes, &shown);
        }
        match bytes.split_first() {
            Some((&V1, body)) => {
                postcard::from_bytes(body).map_err(|e| Error::corrupt(&shown, format!("does not decode: {e}")))
            }
            _ => Err(Error::corrupt(&shown, format!("unknown {} state version", self.what))),
        }
    }

    /// Every record, by id.
    pub(crate) async fn all(&self, store: &dyn KvStore) -> Result<Vec<T>> {
        let now = store.now().await?;
        read_span(store, self.span(), now).await?.iter().map(|(_, v)| self.decode(v)).collect()
    }

    /// Record `id`; not found if there is none.
    pub(crate) async fn get(&self, store: &dyn KvStore, id: u64) -> Result<T> {
        let now = store.now().await?;
        match read_span(store, one_key(self.key(id)), now).await?.first() {
            Some((_, v)) => self.decode(v),
            None => Err(Error::not_found(self.what, id.to_string())),
        }
    }

    /// Stores `value` as record `id`.
    pub(crate) async fn put(&self, store: &dyn KvStore, id: u64, value: &T) -> Result<()> {
        self.write(store, vec![(id, Some(value))]).await
    }

    /// Deletes record `id`.
    pub(crate) async fn delete(&self, store: &dyn KvStore, id: u64) -> Result<()> {
        self.write(store, vec![(id, None)]).await
    }

    /// Stores (`Some`) and deletes (`None`) records in one atomic batch.
    pub(crate) async fn write(&self, store: &dyn KvStore, changes: Vec<(u64, Option<&T>)>) -> Result<()> {
        let batch = changes.into_iter().map(|(id, value)| (self.key(id), value.map(|v| self.encode(v)))).collect();
        store.write(batch).await?;
        Ok(())
    }

    /// Allocates `n` consecutive ids; returns the first. (Ids start at 1.)
    pub(crate) async fn allocate_ids(&self, store: &dyn KvStore, n: u64) -> Result<u64> {
        let key = system_key(self.next_id);
        let now = store.now().await?;
        let next = match read_span(store, one_key(key.clone()), now).await?.first() {
            Some((_, v)) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| Error::corrupt(format!("system span: {} ids", self.what), "bad counter"))?,
            ),
            None => 1,
        };
        store.write(vec![(key, Some((next + n).to_be_bytes().to_vec()))]).await?;
        Ok(next)
    }
}

fn one_key(key: Vec<u8>) -> Span {
    let mut end = key.clone();
    end.push(0);
    Span::new(key, end)
}

/// What a full-cluster restore writes for a system key of the source: schedules come back
/// paused (a daemon on the restored cluster must not start backing up into the source's
/// collections on its own), job records not at all (they belong to the source's processes).
pub(crate) fn restored_system_value(key: &[u8], value: Vec<u8>) -> Option<Vec<u8>> {
    if key.starts_with(&system_key(JOB_KEYS_PREFIX)) {
        return None;
    }
    if key.starts_with(&system_key(SCHEDULES.prefix)) {
        return match SCHEDULES.decode(&value) {
            Ok(mut s) => {
                s.paused = true;
                s.status_message = Some("paused by a full cluster restore; RESUME SCHEDULE to run it here".into());
                Some(SCHEDULES.encode(&s))
            }
            // Carried over as it was: SHOW SCHEDULES names the damage.
            Err(_) => Some(value),
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memkv::MemKv;
    use crate::timestamp::Timestamp;
    use futures::executor::block_on;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOTES: RecordStore<String> =
        RecordStore::new("note", b"note/", b"note-next-id", Envelope::new(b"STRATANT", "note record", 2));

    #[test]
    fn stores_lists_counts_and_deletes() {
        let kv = MemKv::new();
        block_on(async {
            assert_eq!(NOTES.allocate_ids(&kv, 3).await.unwrap(), 1);
            assert_eq!(NOTES.allocate_ids(&kv, 1).await.unwrap(), 4);
            // The counter is a big-endian u64 under its own key, as before the envelope.
            let counter = kv.get_at(&system_key(b"note-next-id"), Timestamp::from_nanos(u64::MAX)).unwrap();
            assert_eq!(counter, 5u64.to_be_bytes());
            for (id, text) in [(300, "c"), (2, "b"), (1, "a")] {
                NOTES.put(&kv, id, &text.to_string()).await.unwrap();
            }
            assert_eq!(NOTES.all(&kv).await.unwrap(), ["a", "b", "c"], "in id order");
            assert_eq!(NOTES.get(&kv, 2).await.unwrap(), "b");
            NOTES.write(&kv, vec![(2, None), (1, Some(&"A".to_string()))]).await.unwrap();
            NOTES.delete(&kv, 300).await.unwrap();
            assert_eq!(NOTES.all(&kv).await.unwrap(), ["A"]);
            assert_eq!(NOTES.get(&kv, 2).await.unwrap_err(), Error::not_found("note", "2"));
            let stored = kv.get_at(&NOTES.key(1), Timestamp::from_nanos(u64::MAX)).unwrap();
            assert_eq!(&stored[..10], b"STRATANT\x02\x00");
        });
    }

    #[test]
    fn reads_the_first_form_and_refuses_what_it_does_not_know() {
        let mut v1 = vec![V1];
        v1.extend(postcard::to_allocvec("old").unwrap());
        assert_eq!(NOTES.decode(&v1).unwrap(), "old");
        let e = NOTES.decode(&[9, 1, 2]).unwrap_err();
        assert_eq!(e, Error::corrupt("system span: note", "unknown note state version"));
        assert!(NOTES.decode(&[V1, 0xff]).unwrap_err().to_string().contains("does not decode"));
        let mut newer = NOTES.encode(&"x".to_string());
        newer[8] = 3;
        assert!(NOTES.decode(&newer).unwrap_err().to_string().contains("version 3 is not readable"));
    }
}
