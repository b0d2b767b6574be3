//! Half-open key ranges and sets of them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A half-open key range `[start, end)`. A span with `start >= end` is empty.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First key in the span.
    pub start: Vec<u8>,
    /// First key after the span.
    pub end: Vec<u8>,
}

impl Span {
    /// The span `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Span {
        Span { start: start.into(), end: end.into() }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Span {
        Span { start: prefix.to_vec(), end: prefix_end(prefix) }
    }

    /// Whether the span holds no key.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether `key` is inside the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }

    /// Whether the two spans share a key.
    pub fn overlaps(&self, other: &Span) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// The keys in both spans (possibly empty).
    pub fn intersect(&self, other: &Span) -> Span {
        let start = self.start.clone().max(other.start.clone());
        let end = self.end.clone().min(other.end.clone());
        Span { start, end }
    }
}

/// The smallest key greater than every key with this prefix (`[0xff]` for an all-`0xff` prefix,
/// which no key in strata's key space reaches).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff]
}

/// A normalized set of spans: sorted, non-overlapping, non-adjacent, none empty.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanSet {
    spans: Vec<Span>,
}

impl SpanSet {
    /// The empty set.
    pub fn new() -> SpanSet {
        SpanSet::default()
    }

    /// The set covering exactly these spans.
    pub fn from_spans(spans: impl IntoIterator<Item = Span>) -> SpanSet {
        let mut spans: Vec<Span> = spans.into_iter().filter(|s| !s.is_empty()).collect();
        spans.sort();
        let mut out: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            match out.last_mut() {
                Some(last) if s.start <= last.end => {
                    if s.end > last.end {
                        last.end = s.end;
                    }
                }
                _ => out.push(s),
            }
        }
        SpanSet { spans: out }
    }

    /// The spans, sorted.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &[u8]) -> bool {
        let i = self.spans.partition_point(|s| s.end.as_slice() <= key);
        self.spans.get(i).is_some_and(|s| s.contains(key))
    }

    /// Keys in either set.
    pub fn union(&self, other: &SpanSet) -> SpanSet {
        SpanSet::from_spans(self.spans.iter().chain(other.spans.iter()).cloned())
    }

    /// Keys in both sets.
    pub fn intersect(&self, other: &SpanSet) -> SpanSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.spans.len() && j < other.spans.len() {
            let (a, b) = (&self.spans[i], &other.spans[j]);
            let x = a.intersect(b);
            if !x.is_empty() {
                out.push(x);
            }
            if a.end < b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        SpanSet::from_spans(out)
    }

    /// Keys in `self` but not in `other`.
    pub fn subtract(&self, other: &SpanSet) -> SpanSet {
        let mut out = Vec::new();
        for s in &self.spans {
            let mut cur = s.start.clone();
            for o in other.spans.iter().filter(|o| o.overlaps(s)) {
                if o.start > cur {
                    out.push(Span::new(cur.clone(), o.start.clone()));
                }
                if o.end > cur {
                    cur = o.end.clone();
                }
            }
            if cur < s.end {
                out.push(Span::new(cur, s.end.clone()));
            }
        }
        SpanSet::from_spans(out)
    }

    /// Whether every key of `other` is in `self`.
    pub fn covers(&self, other: &SpanSet) -> bool {
        other.subtract(self).is_empty()
    }
}

impl fmt::Debug for SpanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.spans).finish()
    }
}

impl FromIterator<Span> for SpanSet {
    fn from_iter<T: IntoIterator<Item = Span>>(iter: T) -> Self {
        SpanSet::from_spans(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn s(a: u8, b: u8) -> Span {
        Span::new(vec![a], vec![b])
    }

    #[test]
    fn normalizes() {
        let set = SpanSet::from_spans([s(5, 7), s(1, 3), s(3, 4), s(6, 9), s(9, 9)]);
        assert_eq!(set.spans(), &[s(1, 4), s(5, 9)]);
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0xff]);
        assert_eq!(prefix_end(&[0x10, 0, 0, 0, 7]), vec![0x10, 0, 0, 0, 8]);
    }

    fn model(set: &SpanSet) -> Vec<bool> {
        (0u8..32).map(|k| set.contains(&[k])).collect()
    }

    proptest! {
        #[test]
        fn set_algebra_matches_model(a in prop::collection::vec((0u8..32, 0u8..32), 0..6),
                                     b in prop::collection::vec((0u8..32, 0u8..32), 0..6)) {
            let sa = SpanSet::from_spans(a.iter().map(|&(x, y)| s(x, y)));
            let sb = SpanSet::from_spans(b.iter().map(|&(x, y)| s(x, y)));
            let (ma, mb) = (model(&sa), model(&sb));
            let u = model(&sa.union(&sb));
            let i = model(&sa.intersect(&sb));
            let d = model(&sa.subtract(&sb));
            for k in 0..32 {
                prop_assert_eq!(u[k], ma[k] || mb[k]);
                prop_assert_eq!(i[k], ma[k] && mb[k]);
                prop_assert_eq!(d[k], ma[k] && !mb[k]);
            }
            prop_assert_eq!(sa.covers(&sa.intersect(&sb)), true);
        }
    }
}
