//! strata's key space: where the system span, descriptors and each table's data live.
//!
//! ```text
//! 0x01 'd' <id u32 BE>        descriptor of database or table <id>   } system span [0x01, 0x02)
//! 0x01 'i'                    next free descriptor id                }
//! 0x01 's' ...                other system state (schedules, jobs)   }
//! 0x02 "store-id"             the store's own random id: outside every backed-up span, so a
//!                             restored store keeps its own
//! 0x10 <table id u32 BE> ...  a table's rows: the user's key follows the prefix
//! ```

use std::fmt;

use crate::span::Span;

/// A descriptor id. Databases and tables share one id space; user ids start at [`FIRST_USER_ID`].
pub type DescId = u32;

/// The first id given to a user-created database or table.
pub const FIRST_USER_ID: DescId = 100;

/// First byte of every system key.
pub const SYSTEM_PREFIX: u8 = 0x01;
/// First byte of every table key.
pub const TABLE_PREFIX: u8 = 0x10;
/// Key of the id counter.
pub const ID_COUNTER_KEY: &[u8] = &[SYSTEM_PREFIX, b'i'];

/// The key of the store's id (see `strata_core::store_id`): written once, never backed up.
pub const STORE_ID_KEY: &[u8] = b"\x02store-id";

/// The system span: descriptors, the id counter and other cluster state.
pub fn system_span() -> Span {
    Span::new(vec![SYSTEM_PREFIX], vec![SYSTEM_PREFIX + 1])
}

/// The span holding every descriptor.
pub fn descriptor_span() -> Span {
    Span::prefix(&[SYSTEM_PREFIX, b'd'])
}

/// The key of descriptor `id`.
pub fn descriptor_key(id: DescId) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b'd'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The descriptor id a descriptor key names.
pub fn decode_descriptor_key(key: &[u8]) -> Option<DescId> {
    match key {
        [SYSTEM_PREFIX, b'd', rest @ ..] if rest.len() == 4 => Some(DescId::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// A key of other system state, e.g. `system_key(b"schedule/", ...)`.
pub fn system_key(suffix: &[u8]) -> Vec<u8> {
    let mut k = vec![SYSTEM_PREFIX, b's'];
    k.extend_from_slice(suffix);
    k
}

/// The prefix of table `id`'s rows.
pub fn table_prefix(id: DescId) -> [u8; 5] {
    let b = id.to_be_bytes();
    [TABLE_PREFIX, b[0], b[1], b[2], b[3]]
}

/// The span of table `id`'s rows.
pub fn table_span(id: DescId) -> Span {
    Span::prefix(&table_prefix(id))
}

/// The key of `user_key` in table `id`.
pub fn table_key(id: DescId, user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + user_key.len());
    k.extend_from_slice(&table_prefix(id));
    k.extend_from_slice(user_key);
    k
}

/// Splits a table key into its table id and the user's key.
pub fn decode_table_key(key: &[u8]) -> Option<(DescId, &[u8])> {
    if key.len() < 5 || key[0] != TABLE_PREFIX {
        return None;
    }
    Some((DescId::from_be_bytes([key[1], key[2], key[3], key[4]]), &key[5..]))
}

/// Replaces the table id of a table key, keeping the user's key (restore's key rewriting).
pub fn rewrite_table_key(key: &mut [u8], new_id: DescId) {
    debug_assert!(key.len() >= 5 && key[0] == TABLE_PREFIX);
    key[1..5].copy_from_slice(&new_id.to_be_bytes());
}

/// A human-readable form of a key for errors and debugging: `/Table/52/"user-key"`.
pub fn pretty_key(key: &[u8]) -> String {
    if let Some((id, rest)) = decode_table_key(key) {
        return format!("/Table/{id}/{}", escape(rest));
    }
    if let Some(id) = decode_descriptor_key(key) {
        return format!("/System/descriptor/{id}");
    }
    match key {
        [] => "/Min".to_string(),
        [0xff] => "/Max".to_string(),
        [SYSTEM_PREFIX, rest @ ..] => format!("/System/{}", escape(rest)),
        _ => escape(key),
    }
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

// A span prints its bounds as keys of this key space (here, so that `span` needs no `keys`).
impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", pretty_key(&self.start), pretty_key(&self.end))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn table_keys_round_trip() {
        let mut k = table_key(52, b"alice");
        assert_eq!(decode_table_key(&k), Some((52, &b"alice"[..])));
        assert!(table_span(52).contains(&k));
        assert!(!table_span(53).contains(&k));
        rewrite_table_key(&mut k, 107);
        assert_eq!(decode_table_key(&k), Some((107, &b"alice"[..])));
        assert_eq!(pretty_key(&k), "/Table/107/\"alice\"");
    }

    #[test]
    fn descriptor_keys_are_in_the_system_span() {
        let k = descriptor_key(7);
        assert_eq!(decode_descriptor_key(&k), Some(7));
        assert!(system_span().contains(&k));
        assert!(descriptor_span().contains(&k));
        assert!(!descriptor_span().contains(ID_COUNTER_KEY));
        assert!(system_span().contains(ID_COUNTER_KEY));
    }
}
