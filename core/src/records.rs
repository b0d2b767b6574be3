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
//! Records written before the envelope (version 1: one byte `1`, then the same postcard body as
//! version 2) still read. Versions 1 and 2 held the whole statement, passphrase and URI secrets
//! included; version 3 holds a [`StoredBackup`]: references only, and a note of the secrets that
//! were typed in; version 4 (schedules only) adds the schedule's retention policy. An older
//! record is converted when read, and rewritten at once in the current version
//! (scrubbed on read: listing jobs or schedules, or adopting jobs, rewrites every older record of
//! the kind). The store's own older versions of the key keep the old bytes until the store's
//! garbage collection removes them.
//!
//! This module is below the executor and the restore: a full-cluster restore asks it what to
//! write for each system record of the source ([`restored_system_value`]).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use serde::Deserialize;

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::keys::system_key;
use crate::kv::{read_span, KvStore};
use crate::retention::RetentionPolicy;
use crate::schedule::{BackupKind, OnFailure, OnPreviousRunning, Schedule};
use crate::secrets::{LegacyBackup, StoredBackup};
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
pub(crate) const SCHEDULES: RecordStore<ScheduleRecord> =
    RecordStore::new("schedule", b"schedule/", b"schedule-next-id", crate::envelope::SCHEDULE_RECORD).with_legacy(
        4,
        |version, body| match version {
            ..=2 => postcard::from_bytes::<LegacySchedule>(body).map(LegacySchedule::into_record),
            _ => postcard::from_bytes::<ScheduleRecordV3>(body).map(ScheduleRecordV3::into_record),
        },
    );

/// The first stored form, before the envelope: this byte, then postcard.
const V1: u8 = 1;

/// Typed records of one kind in a store's system span: `T` under `prefix ++ id` (big-endian,
/// so records list in id order), and a counter of the next free id.
pub(crate) struct RecordStore<T> {
    what: &'static str,
    prefix: &'static [u8],
    next_id: &'static [u8],
    envelope: Envelope,
    legacy: Option<Legacy<T>>,
    record: PhantomData<fn() -> T>,
}

/// How records of versions before `below` decode (version 1, the byte form, included): their
/// body has another layout, converted into `T`.
struct Legacy<T> {
    below: u16,
    decode: fn(u16, &[u8]) -> postcard::Result<T>,
}

impl<T> Clone for Legacy<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Legacy<T> {}

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
        RecordStore { what, prefix, next_id, envelope, legacy: None, record: PhantomData }
    }

    /// The same records, whose versions before `below` have a body `decode` converts (given the
    /// version and the body).
    pub(crate) const fn with_legacy(mut self, below: u16, decode: fn(u16, &[u8]) -> postcard::Result<T>) -> Self {
        self.legacy = Some(Legacy { below, decode });
        self
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
        self.decode_versioned(bytes).map(|(record, _)| record)
    }

    /// A record from its stored bytes, and whether they are an older form (to rewrite).
    fn decode_versioned(&self, bytes: &[u8]) -> Result<(T, bool)> {
        let shown = format!("system span: {}", self.what);
        let (version, body) = if self.envelope.is_this(bytes) {
            self.envelope.open(bytes, &shown)?
        } else {
            match bytes.split_first() {
                Some((&V1, body)) => (1, body),
                _ => return Err(Error::corrupt(&shown, format!("unknown {} state version", self.what))),
            }
        };
        let record = match self.legacy {
            Some(legacy) if version < legacy.below => (legacy.decode)(version, body),
            _ => postcard::from_bytes(body),
        };
        let record = record.map_err(|e| match version {
            1 => Error::corrupt(&shown, format!("does not decode: {e}")),
            _ => self.envelope.undecodable(&shown, e),
        })?;
        Ok((record, version < self.envelope.version()))
    }

    /// The records of `span`, older forms rewritten in the current one (see the module docs).
    async fn read(&self, store: &dyn KvStore, span: Span) -> Result<Vec<T>> {
        let now = store.now().await?;
        let mut records = Vec::new();
        let mut rewrites = Vec::new();
        for (key, v) in read_span(store, span, now).await? {
            let (record, old) = self.decode_versioned(&v)?;
            if old {
                rewrites.push((key, Some(self.encode(&record))));
            }
            records.push(record);
        }
        if !rewrites.is_empty() {
            store.write(rewrites).await?;
        }
        Ok(records)
    }

    /// Every record, by id.
    pub(crate) async fn all(&self, store: &dyn KvStore) -> Result<Vec<T>> {
        self.read(store, self.span()).await
    }

    /// Record `id`; not found if there is none.
    pub(crate) async fn get(&self, store: &dyn KvStore, id: u64) -> Result<T> {
        match self.read(store, one_key(self.key(id))).await?.pop() {
            Some(record) => Ok(record),
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

/// A schedule's retention policy (`keep_*` options) as its record stores it, in fixed widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRetention {
    last: u32,
    hourly: u32,
    daily: u32,
    weekly: u32,
    monthly: u32,
    yearly: u32,
    within: Option<u64>,
}

impl StoredRetention {
    fn new(p: &RetentionPolicy) -> StoredRetention {
        // Counts are checked to fit in a u32 when the options are parsed.
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        StoredRetention {
            last: n(p.keep_last),
            hourly: n(p.keep_hourly),
            daily: n(p.keep_daily),
            weekly: n(p.keep_weekly),
            monthly: n(p.keep_monthly),
            yearly: n(p.keep_yearly),
            within: p.keep_within,
        }
    }

    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.last as usize,
            keep_hourly: self.hourly as usize,
            keep_daily: self.daily as usize,
            keep_weekly: self.weekly as usize,
            keep_monthly: self.monthly as usize,
            keep_yearly: self.yearly as usize,
            keep_within: self.within,
        }
    }
}

/// A schedule as its record (version 4) stores it: its statement without secrets, and its
/// retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScheduleRecord {
    id: u64,
    label: String,
    kind: BackupKind,
    cron: Option<String>,
    backup: StoredBackup,
    paused: bool,
    status_message: Option<String>,
    next_run: Option<u64>,
    on_failure: OnFailure,
    on_previous_running: OnPreviousRunning,
    paired: Option<u64>,
    running: Vec<u64>,
    last_run: Option<u64>,
    created: u64,
    /// Version 4.
    retention: Option<StoredRetention>,
}

impl ScheduleRecord {
    /// The record of `s`: what its statement has typed in (only a schedule read from an older
    /// record has any) stays out.
    pub(crate) fn new(s: &Schedule) -> ScheduleRecord {
        let mut backup = StoredBackup::new(&s.backup);
        backup.add_typed(&s.typed_secrets);
        ScheduleRecord {
            id: s.id,
            label: s.label.clone(),
            kind: s.kind,
            cron: s.cron.clone(),
            backup,
            paused: s.paused,
            status_message: s.status_message.clone(),
            next_run: s.next_run,
            on_failure: s.on_failure,
            on_previous_running: s.on_previous_running,
            paired: s.paired,
            running: s.running.clone(),
            last_run: s.last_run,
            created: s.created,
            retention: s.retention.as_ref().map(StoredRetention::new),
        }
    }

    /// The schedule's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The schedule.
    pub(crate) fn schedule(&self) -> Schedule {
        let (backup, typed_secrets) = self.backup.statement();
        Schedule {
            id: self.id,
            label: self.label.clone(),
            kind: self.kind,
            cron: self.cron.clone(),
            backup,
            typed_secrets,
            paused: self.paused,
            status_message: self.status_message.clone(),
            next_run: self.next_run,
            on_failure: self.on_failure,
            on_previous_running: self.on_previous_running,
            paired: self.paired,
            running: self.running.clone(),
            last_run: self.last_run,
            created: self.created,
            retention: self.retention.as_ref().map(StoredRetention::policy).filter(|p| !p.is_empty()),
        }
    }
}

/// A schedule as records of version 3 stored it (no retention policy).
#[derive(Deserialize)]
struct ScheduleRecordV3 {
    id: u64,
    label: String,
    kind: BackupKind,
    cron: Option<String>,
    backup: StoredBackup,
    paused: bool,
    status_message: Option<String>,
    next_run: Option<u64>,
    on_failure: OnFailure,
    on_previous_running: OnPreviousRunning,
    paired: Option<u64>,
    running: Vec<u64>,
    last_run: Option<u64>,
    created: u64,
}

impl ScheduleRecordV3 {
    fn into_record(self) -> ScheduleRecord {
        ScheduleRecord {
            id: self.id,
            label: self.label,
            kind: self.kind,
            cron: self.cron,
            backup: self.backup,
            paused: self.paused,
            status_message: self.status_message,
            next_run: self.next_run,
            on_failure: self.on_failure,
            on_previous_running: self.on_previous_running,
            paired: self.paired,
            running: self.running,
            last_run: self.last_run,
            created: self.created,
            retention: None,
        }
    }
}

/// A schedule as records of versions 1 and 2 stored it (the statement with its secrets).
#[derive(Deserialize)]
struct LegacySchedule {
    id: u64,
    label: String,
    kind: BackupKind,
    cron: Option<String>,
    backup: LegacyBackup,
    paused: bool,
    status_message: Option<String>,
    next_run: Option<u64>,
    on_failure: OnFailure,
    on_previous_running: OnPreviousRunning,
    paired: Option<u64>,
    running: Vec<u64>,
    last_run: Option<u64>,
    created: u64,
}

impl LegacySchedule {
    fn into_record(self) -> ScheduleRecord {
        ScheduleRecord {
            id: self.id,
            label: self.label,
            kind: self.kind,
            cron: self.cron,
            backup: self.backup.stored(),
            paused: self.paused,
            status_message: self.status_message,
            next_run: self.next_run,
            on_failure: self.on_failure,
            on_previous_running: self.on_previous_running,
            paired: self.paired,
            running: self.running,
            last_run: self.last_run,
            created: self.created,
            retention: None,
        }
    }
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
            // Written in the current form: a record of an older one loses its secrets here.
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
