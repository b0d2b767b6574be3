//! Where strata keeps what in etcd: every key strata writes lives under one root prefix
//! (`/strata/` by default), except the rows of mapped tables, which live at their native etcd
//! keys (see [`crate::mapping`]).
//!
//! ```text
//! <root>d/<strata key>     strata's own rows: catalog, system span, tables made with SQL or `put`
//!                          value: 0x01 + bytes, or 0x00 for a deletion (a tombstone is a version)
//! <root>c/<wall: u64 BE>   a clock tick, created by now(): its create revision ↔ that wall time
//! <root>clock-last         the newest tick's wall time (compare-and-swap guard of the ticks)
//! <root>discard            written by discard() in the txn that deletes the spans it names:
//!                          hides every version at or below its revision in those spans
//! <root>fence              written to learn that the history watch has caught up
//! <root>init               created once; its create revision is the store's first revision
//! <root>map/<table id BE>  a mapped table: the etcd key prefix holding its rows
//! <root>map-name/<db.t>    a mapping waiting for a restore to publish table db.t
//! <root>moving/<id BE>     a restore copying rows to a mapped prefix (cleanup if it dies)
//! ```

use strata_core::{prefix_end, Span};

/// The default root prefix of a store.
pub const DEFAULT_ROOT: &str = "/strata/";

const DATA: &[u8] = b"d/";
const CLOCK: &[u8] = b"c/";
const CLOCK_LAST: &[u8] = b"clock-last";
const DISCARD: &[u8] = b"discard";
const FENCE: &[u8] = b"fence";
const INIT: &[u8] = b"init";
const MAP: &[u8] = b"map/";

/// What an etcd key under the root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootKey<'a> {
    /// A row of strata's own key space.
    Data(&'a [u8]),
    /// A clock tick at this wall time.
    Tick(u64),
    /// The discard marker.
    Discard,
    /// A table mapping record.
    Map,
    /// Anything else (fence, init, clock-last, unknown).
    Other,
}

/// The key layout of one store: its root prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    root: Vec<u8>,
}

fn join(a: &[u8], b: &[u8], c: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + c.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k.extend_from_slice(c);
    k
}

impl Layout {
    pub(crate) fn new(root: &[u8]) -> Layout {
        Layout { root: root.to_vec() }
    }

    pub(crate) fn root(&self) -> &[u8] {
        &self.root
    }

    /// `[root, end of root)`.
    pub(crate) fn root_range(&self) -> (Vec<u8>, Vec<u8>) {
        (self.root.clone(), prefix_end(&self.root))
    }

    pub(crate) fn data_key(&self, key: &[u8]) -> Vec<u8> {
        join(&self.root, DATA, key)
    }

    /// The etcd range holding the own rows of `span`.
    pub(crate) fn data_range(&self, span: &Span) -> (Vec<u8>, Vec<u8>) {
        (self.data_key(&span.start), self.data_key(&span.end))
    }

    pub(crate) fn tick_key(&self, wall: u64) -> Vec<u8> {
        join(&self.root, CLOCK, &wall.to_be_bytes())
    }

    pub(crate) fn clock_last_key(&self) -> Vec<u8> {
        join(&self.root, CLOCK_LAST, b"")
    }

    pub(crate) fn discard_key(&self) -> Vec<u8> {
        join(&self.root, DISCARD, b"")
    }

    pub(crate) fn fence_key(&self) -> Vec<u8> {
        join(&self.root, FENCE, b"")
    }

    pub(crate) fn init_key(&self) -> Vec<u8> {
        join(&self.root, INIT, b"")
    }

    pub(crate) fn map_prefix(&self) -> Vec<u8> {
        join(&self.root, MAP, b"")
    }

    pub(crate) fn map_key(&self, table: u32) -> Vec<u8> {
        join(&self.root, MAP, &table.to_be_bytes())
    }

    /// What `key` is, if it is under the root.
    pub(crate) fn classify<'a>(&self, key: &'a [u8]) -> Option<RootKey<'a>> {
        let rest = key.strip_prefix(self.root.as_slice())?;
        Some(if let Some(k) = rest.strip_prefix(DATA) {
            RootKey::Data(k)
        } else if let Some(w) = rest.strip_prefix(CLOCK) {
            match <[u8; 8]>::try_from(w) {
                Ok(b) => RootKey::Tick(u64::from_be_bytes(b)),
                Err(_) => RootKey::Other,
            }
        } else if rest == DISCARD {
            RootKey::Discard
        } else if rest.starts_with(MAP) {
            RootKey::Map
        } else {
            RootKey::Other
        })
    }
}

/// Encodes a version of an own row: `0x01 + value`, or `0x00` for a deletion.
pub(crate) fn encode_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v);
            out
        }
        None => vec![0],
    }
}

/// Decodes [`encode_value`]; an empty or unknown value reads as a deletion.
pub(crate) fn decode_value(stored: &[u8]) -> Option<&[u8]> {
    match stored.split_first() {
        Some((1, v)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_classify_back() {
        let l = Layout::new(b"/s/");
        assert_eq!(l.classify(&l.data_key(b"\x10abc")), Some(RootKey::Data(b"\x10abc")));
        assert_eq!(l.classify(&l.tick_key(42)), Some(RootKey::Tick(42)));
        assert_eq!(l.classify(&l.discard_key()), Some(RootKey::Discard));
        assert_eq!(l.classify(&l.map_key(7)), Some(RootKey::Map));
        assert_eq!(l.classify(&l.clock_last_key()), Some(RootKey::Other));
        assert_eq!(l.classify(&l.fence_key()), Some(RootKey::Other));
        assert_eq!(l.classify(b"/registry/pods"), None);
        assert_eq!(decode_value(&encode_value(Some(b""))), Some(&b""[..]));
        assert_eq!(decode_value(&encode_value(None)), None);
    }
}
