//! The store's hybrid logical clock: the timestamps issued to writes and answered by
//! [`KvSource::now`](strata_core::KvSource::now) (see "Timestamps" on
//! [`EmbeddedStore`](super::EmbeddedStore)).
//!
//! The clock lives in memory; the last timestamp issued to a write is persisted by the write
//! itself (`"last_timestamp"`, see `write.rs`) and read back when the store opens.

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use strata_core::Timestamp;

/// The hybrid logical clock over the system clock's wall nanoseconds.
pub(crate) struct Clock {
    state: Mutex<ClockState>,
}

struct ClockState {
    /// The last timestamp issued, to a write or by `now()`.
    last: Timestamp,
    /// The timestamp of the write transaction in flight, if any (redb admits one at a time).
    pending: Option<Timestamp>,
}

/// A write transaction's timestamp; clears the clock's in-flight write when dropped, that is when
/// the write transaction ends, committed or not.
pub(crate) struct PendingWrite<'a> {
    clock: &'a Clock,
    pub(crate) ts: Timestamp,
}

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        let mut state = self.clock.lock();
        if state.pending == Some(self.ts) {
            state.pending = None;
        }
    }
}

fn wall_nanos() -> u64 {
    // Before 1970 (a badly set clock) counts as 0: the logical counter then keeps order.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Clock {
    /// A clock that has issued nothing yet (see [`Clock::set_last`]).
    pub(crate) fn new() -> Clock {
        Clock { state: Mutex::new(ClockState { last: Timestamp::ZERO, pending: None }) }
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        // The clock state is two timestamps, consistent after any panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the last timestamp issued: on open, the one a write of an earlier process persisted.
    pub(crate) fn set_last(&self, last: Timestamp) {
        self.lock().last = last;
    }

    /// A new timestamp for a write transaction that has begun: above every timestamp issued so
    /// far. [`Clock::now`] answers below it until the returned guard is dropped.
    pub(crate) fn issue(&self) -> PendingWrite<'_> {
        let physical = wall_nanos();
        let mut state = self.lock();
        let ts = if physical > state.last.wall { Timestamp::from_nanos(physical) } else { state.last.next() };
        state.last = ts;
        state.pending = Some(ts);
        PendingWrite { clock: self, ts }
    }

    /// A timestamp at or above every committed write and below every write that commits later.
    pub(crate) fn now(&self) -> Timestamp {
        let physical = wall_nanos();
        let mut state = self.lock();
        if let Some(pending) = state.pending {
            // Every committed write is below the one in flight; every later write is above it.
            return pending.prev();
        }
        state.last = state.last.max(Timestamp::from_nanos(physical));
        state.last
    }
}
