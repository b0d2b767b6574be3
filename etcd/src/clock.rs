//! etcd revisions ↔ strata timestamps, both ways.
//!
//! `now()` writes a *tick*: the pair (revision `q`, wall time `w`) with `w` above every earlier
//! tick's. Revision `r` maps to the timestamp `(w, r − q)` of the last tick `(q, w)` at or before
//! `r`: wall time from the tick, the distance in revisions as the logical counter. Revisions
//! before the first tick (data other programs wrote before the store existed) map to
//! `(r ns, 0)`, far below every real wall time. The map is strictly increasing, so a window of
//! timestamps `(s, e]` is exactly a window of revisions `(rev(s), rev(e)]`, where `rev(t)` is
//! the largest revision whose timestamp is at or below `t`.
//!
//! More than `u32::MAX` revisions after one tick would saturate the logical counter; every
//! `now()` ticks, so that needs four billion writes by other programs between two strata calls.

use std::collections::BTreeMap;

use strata_core::Timestamp;

/// The ticks known so far: revision → wall nanoseconds, walls strictly increasing with revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ticks {
    by_rev: BTreeMap<i64, u64>,
}

impl Ticks {
    /// Records a tick. Ticks out of order (a wall not above the previous tick's) are ignored:
    /// the compare-and-swap of `now()` never writes one.
    pub(crate) fn insert(&mut self, rev: i64, wall: u64) {
        let below_ok = self.by_rev.range(..rev).next_back().is_none_or(|(_, w)| *w < wall);
        let above_ok = self.by_rev.range(rev + 1..).next().is_none_or(|(_, w)| *w > wall);
        if below_ok && above_ok {
            self.by_rev.insert(rev, wall);
        }
    }

    /// The newest tick `(revision, wall)`.
    #[cfg(test)]
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.by_rev.iter().next_back().map(|(r, w)| (*r, *w))
    }

    /// The timestamp of revision `rev`.
    pub(crate) fn ts_of(&self, rev: i64) -> Timestamp {
        match self.by_rev.range(..=rev).next_back() {
            Some((q, w)) => Timestamp::new(*w, u32::try_from(rev - q).unwrap_or(u32::MAX)),
            None => Timestamp::new(rev.max(0) as u64, 0),
        }
    }

    /// The largest revision whose timestamp is at or below `t`, or `None` when that is past the
    /// newest tick's known range (a revision not yet known: the caller caps it at the revision
    /// the history has reached).
    pub(crate) fn rev_of(&self, t: Timestamp) -> Option<i64> {
        // The last tick whose wall is at or below t.wall (walls increase with revisions).
        let mut found: Option<(i64, u64)> = None;
        let mut next_rev: Option<i64> = None;
        for (q, w) in &self.by_rev {
            if *w <= t.wall {
                found = Some((*q, *w));
            } else {
                next_rev = Some(*q);
                break;
            }
        }
        let candidate = match found {
            None => {
                let pre = i64::try_from(t.wall).unwrap_or(i64::MAX);
                Some(match next_rev {
                    Some(first) => pre.min(first - 1),
                    None => pre,
                })
            }
            Some((q, w)) if w == t.wall => Some(q.saturating_add(i64::from(t.logical))),
            Some(_) => None,
        };
        match (candidate, next_rev) {
            (Some(c), Some(n)) => Some(c.min(n - 1)),
            (None, Some(n)) => Some(n - 1),
            (c, None) => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_and_timestamps_map_both_ways() {
        let mut t = Ticks::default();
        t.insert(10, 1_000);
        t.insert(20, 2_000);
        assert_eq!(t.ts_of(5), Timestamp::new(5, 0));
        assert_eq!(t.ts_of(10), Timestamp::new(1_000, 0));
        assert_eq!(t.ts_of(13), Timestamp::new(1_000, 3));
        assert_eq!(t.ts_of(25), Timestamp::new(2_000, 5));
        for r in 1..40 {
            assert_eq!(t.rev_of(t.ts_of(r)).map(|x| x.min(39)), Some(r), "round trip of {r}");
            if r < 20 {
                assert_eq!(t.rev_of(t.ts_of(r).prev()), Some(r - 1), "just below revision {r}");
            }
        }
        assert_eq!(t.rev_of(Timestamp::new(1_500, 0)), Some(19));
        assert_eq!(t.rev_of(Timestamp::new(999, 7)), Some(9));
        assert_eq!(t.rev_of(Timestamp::new(2_001, 0)), None);
        assert_eq!(t.rev_of(Timestamp::MAX), None);
        assert_eq!(t.rev_of(Timestamp::ZERO), Some(0));
        t.insert(30, 1_500);
        assert_eq!(t.last(), Some((20, 2_000)), "a tick whose wall goes backwards is ignored");
    }
}
