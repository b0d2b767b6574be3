//! The storage conformance suite: what every [`ExternalStorage`] must do, checked the same way
//! for every implementation (memory, local files, S3-compatible servers, the JS adapters, a
//! plugin's own).
//!
//! Every backend's test calls [`run_all`], which runs each check of [`CHECKS`] in turn: a check
//! added to the list runs against every backend at once. A backend that cannot pass a check
//! says so by name, with a reason ([`Capabilities::without`]); the [`Report`] that `run_all`
//! returns names it, and backends' tests print it.
//!
//! Each check takes `&dyn ExternalStorage`, works in a scratch directory of its own under
//! `strata-conformance/` (claimed with `put_if_absent`, so several runs can share one bucket),
//! asserts exact values, panics with a message naming the operation, path and values on the
//! first difference, and deletes what it wrote when it passes. A failed run leaves its scratch
//! directory behind for inspection; later runs skip it.
//!
//! The suite does no IO of its own and names no runtime: run it under whatever executor the
//! implementation needs. To see what strata does when a backend fails, wrap it in
//! [`super::faults::Hooked`].
//!
//! ```
//! use strata_core::conformance::storage::{self, Capabilities};
//! use strata_core::MemoryStorage;
//!
//! let report = futures::executor::block_on(storage::run_all(&MemoryStorage::new("doc"), &Capabilities::all()));
//! assert!(report.skipped.is_empty());
//! println!("{report}");
//! ```
//!
//! | check | checks |
//! | --- | --- |
//! | [`put_get_delete`] | round trips, overwrite by a shorter object, volatile puts, empty objects, every byte value, unusual names, `delete` twice |
//! | [`put_if_absent`] | creates once, then [`Error::AlreadyExists`] naming the path, old bytes kept |
//! | [`put_and_get_options`] | `put_opts` with [`PutMode::Create`] (durable and volatile) refuses an existing object; `get_opts` head requests give the size and no bytes; [`GetResult::size`] |
//! | [`ranged_get`] | ranges at both ends, empty ranges, past-the-end and reversed ranges are [`Error::InvalidArgument`] |
//! | [`list_prefixes`] | string prefixes that cut a path segment, nested directories, 1,100 entries, sorted, sizes |
//! | [`list_with_delimiter`] | objects directly under a prefix and common prefixes, for string prefixes too, sorted, once each |
//! | [`missing_objects`] | [`Error::NotFound`] naming the path for every kind of read; a directory is not an object |
//! | [`overwrite_is_atomic`] | readers racing writers see one whole version, never a mix or a prefix |
//! | [`concurrent_writers`] | racing `put_if_absent` on one key: exactly one wins; racing `put`s on one and many keys |

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::future::join_all;

use crate::error::{Error, Result};
use crate::storage::{
    Durability, ExternalStorage, ExternalStorageExt, GetOptions, GetResult, ListResult, ObjectMeta, PutMode, PutOptions,
};

/// The directory under which every run claims its scratch directory.
pub const SCRATCH_ROOT: &str = "strata-conformance";

/// How many operations the suite issues at once when it only needs many objects.
const BATCH: usize = 64;

/// A check's future, borrowing the storage it checks.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// One check of the suite: its name (the name of its function here) and how to run it.
#[derive(Clone, Copy)]
pub struct Check {
    /// The check's name, as [`Capabilities::without`] takes it.
    pub name: &'static str,
    /// Runs the check; it panics on the first difference from the contract.
    pub run: for<'a> fn(&'a dyn ExternalStorage) -> CheckFuture<'a>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish_non_exhaustive()
    }
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check of the suite, in the order [`run_all`] runs them.
        pub const CHECKS: &[Check] = &[$(Check { name: stringify!($name), run: |s| Box::pin($name(s)) }),*];
    };
}

checks!(
    put_get_delete,
    put_if_absent,
    put_and_get_options,
    ranged_get,
    list_prefixes,
    list_with_delimiter,
    missing_objects,
    overwrite_is_atomic,
    concurrent_writers,
);

/// What a storage cannot do: the checks [`run_all`] skips for it, each by name with a reason.
/// The default is everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `(check, reason)` pairs, each check one of [`CHECKS`].
    skipped: Vec<(&'static str, String)>,
}

impl Capabilities {
    /// A storage that passes every check.
    pub fn all() -> Capabilities {
        Capabilities::default()
    }

    /// Skips check `name` of [`CHECKS`] because of `reason`. Panics if no check has that name,
    /// so that a renamed check is never skipped by accident.
    pub fn without(mut self, name: &str, reason: &str) -> Capabilities {
        let check = CHECKS.iter().find(|c| c.name == name).unwrap_or_else(|| {
            let names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
            panic!("Capabilities::without({name:?}): the storage suite has no such check (it has {names:?})")
        });
        self.skipped.push((check.name, reason.to_string()));
        self
    }

    fn skips(&self, name: &str) -> Option<&str> {
        self.skipped.iter().find(|(n, _)| *n == name).map(|(_, reason)| reason.as_str())
    }
}

/// What [`run_all`] did: the checks that passed and those skipped, with their reasons. Its
/// `Display` is one line per skipped check, for the test to print.
#[must_use = "print the report, so that skipped checks are seen"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The storage, as it describes itself.
    pub storage: String,
    /// The checks that ran and passed, in order.
    pub passed: Vec<&'static str>,
    /// The checks skipped, with their reasons.
    pub skipped: Vec<(&'static str, String)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage conformance of {}: {} of {} checks passed", self.storage, self.passed.len(), CHECKS.len())?;
        for (name, reason) in &self.skipped {
            write!(f, "\n  SKIPPED {name}: {reason}")?;
        }
        Ok(())
    }
}

/// Runs every check of [`CHECKS`] against `storage`, one after the other, except those
/// `capabilities` skips. Panics on the first failure; returns what ran and what was skipped.
pub async fn run_all(storage: &dyn ExternalStorage, capabilities: &Capabilities) -> Report {
    let mut report = Report { storage: storage.describe(), passed: Vec::new(), skipped: Vec::new() };
    for check in CHECKS {
        match capabilities.skips(check.name) {
            Some(reason) => report.skipped.push((check.name, reason.to_string())),
            None => {
                (check.run)(storage).await;
                report.passed.push(check.name);
            }
        }
    }
    report
}

/// Objects round-trip exactly; a `put` (or `put_volatile`) replaces the whole object (a shorter
/// one leaves no tail of the longer); empty objects and every byte value survive; names with spaces, punctuation,
/// capitals and non-ASCII letters work; `delete` removes and may be repeated.
pub async fn put_get_delete(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "put_get_delete").await;
    assert!(!storage.describe().is_empty(), "describe() must name the storage");

    let p = s.path("dir/object");
    let long = pattern(1000, 1);
    ok(storage.put(&p, long.clone()).await, "put", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), &long, &format!("get {p} after put"));
    assert_eq!(ok(storage.size(&p).await, "size", &p), 1000, "size of {p} after a put of 1000 bytes");

    // A volatile put is a put as far as readers can tell, and replaces the object too.
    let volatile = pattern(700, 3);
    ok(storage.put_volatile(&p, volatile.clone()).await, "put_volatile", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), &volatile, &format!("get {p} after put_volatile"));
    assert_eq!(ok(storage.size(&p).await, "size", &p), 700, "size of {p} after a put_volatile of 700 bytes");

    // A shorter object replaces the longer one completely.
    ok(storage.put(&p, Bytes::from_static(b"short")).await, "put", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), b"short", &format!("get {p} after overwriting 1000 bytes"));
    assert_eq!(ok(storage.size(&p).await, "size", &p), 5, "size of {p} after overwrite");

    let empty = s.path("empty");
    ok(storage.put(&empty, Bytes::new()).await, "put", &empty);
    expect_bytes(&ok(storage.get(&empty).await, "get", &empty), b"", &format!("get {empty}"));
    assert_eq!(ok(storage.size(&empty).await, "size", &empty), 0, "size of the empty object {empty}");

    let every = s.path("every-byte");
    let all: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    ok(storage.put(&every, Bytes::from(all.clone())).await, "put", &every);
    expect_bytes(&ok(storage.get(&every).await, "get", &every), &all, &format!("get {every}"));

    let names = ["names/with space", "names/k=v,x;y", "names/plus+dash-under_dot.sst", "names/ünïcødé", "names/UPPER"];
    for (i, name) in names.iter().enumerate() {
        let p = s.path(name);
        let data = pattern(10 + i, i as u64);
        ok(storage.put(&p, data.clone()).await, "put", &p);
        expect_bytes(&ok(storage.get(&p).await, "get", &p), &data, &format!("get {p}"));
    }
    let listed = s.list("names/").await;
    let mut expected: Vec<ObjectMeta> =
        names.iter().enumerate().map(|(i, n)| ObjectMeta { path: n.to_string(), size: 10 + i as u64 }).collect();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(listed, expected, "list(\"names/\") under {}", s.dir);

    assert_eq!(
        s.list("").await,
        [
            ObjectMeta { path: "dir/object".into(), size: 5 },
            ObjectMeta { path: "empty".into(), size: 0 },
            ObjectMeta { path: "every-byte".into(), size: 512 },
        ]
        .into_iter()
        .chain(expected)
        .collect::<Vec<_>>(),
        "list of everything under {}",
        s.dir
    );

    ok(storage.delete(&p).await, "delete", &p);
    expect_not_found(storage.get(&p).await, &p, "get after delete");
    ok(storage.delete(&p).await, "a second delete", &p);
    assert!(!s.list("dir/").await.iter().any(|o| o.path == "dir/object"), "{p} still listed after delete");
    s.finish().await;
}

/// `put_if_absent` creates an object once; then it fails with [`Error::AlreadyExists`] naming
/// the path and leaves the first bytes in place. A plain `put` still overwrites, and after a
/// `delete` the path can be created again.
pub async fn put_if_absent(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "put_if_absent").await;
    let p = s.path("LATEST");
    ok(storage.put_if_absent(&p, Bytes::from_static(b"first")).await, "put_if_absent of a new object", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), b"first", &format!("get {p}"));

    expect_already_exists(storage.put_if_absent(&p, Bytes::from_static(b"second")).await, &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), b"first", &format!("get {p} after a refused put_if_absent"));

    ok(storage.put(&p, Bytes::from_static(b"third")).await, "put over an existing object", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), b"third", &format!("get {p} after put"));
    expect_already_exists(storage.put_if_absent(&p, Bytes::new()).await, &p);

    ok(storage.delete(&p).await, "delete", &p);
    ok(storage.put_if_absent(&p, Bytes::from_static(b"fourth")).await, "put_if_absent after delete", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), b"fourth", &format!("get {p}"));

    // In directories that do not exist yet, and with an empty object.
    let nested = s.path("a/b/c/marker");
    ok(storage.put_if_absent(&nested, Bytes::new()).await, "put_if_absent in new directories", &nested);
    assert_eq!(ok(storage.size(&nested).await, "size", &nested), 0, "size of {nested}");
    expect_already_exists(storage.put_if_absent(&nested, Bytes::from_static(b"x")).await, &nested);
    s.finish().await;
}

/// The full-option methods themselves: `put_opts` in [`PutMode::Create`] creates once, then
/// refuses with [`Error::AlreadyExists`] naming the path, durable or volatile, and keeps the
/// first bytes; a volatile overwrite replaces them. `get_opts` with `head` gives the size and
/// no bytes (any range is ignored), for an empty object too; a whole read's
/// [`GetResult::size`] is the object's size; a ranged read's is that size or `None`.
pub async fn put_and_get_options(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "put_and_get_options").await;
    let p = s.path("created");
    let create = PutOptions::default().with_mode(PutMode::Create);
    let volatile = PutOptions::default().with_durability(Durability::Volatile);
    let volatile_create = create.with_durability(Durability::Volatile);
    let first = pattern(300, 5);
    ok(storage.put_opts(&p, first.clone(), volatile_create).await, "put_opts(Create, Volatile) of a new object", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), &first, &format!("get {p} after a volatile create"));
    expect_already_exists(storage.put_opts(&p, pattern(10, 6), create).await, &p);
    expect_already_exists(storage.put_opts(&p, Bytes::new(), volatile_create).await, &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), &first, &format!("get {p} after refused creates"));
    let second = pattern(20, 7);
    ok(storage.put_opts(&p, second.clone(), volatile).await, "put_opts(Overwrite, Volatile)", &p);
    expect_bytes(&ok(storage.get(&p).await, "get", &p), &second, &format!("get {p} after a volatile overwrite"));

    let head = GetOptions::default().with_head(true);
    for (options, what) in [(head.clone(), "a head request"), (head.with_range(2..5), "a head request with a range")] {
        let got = ok(storage.get_opts(&p, options).await, what, &p);
        assert_eq!(got.size, Some(20), "{what} of {p} (20 bytes): size");
        assert!(got.bytes.is_empty(), "{what} of {p} returned {} bytes, expected none", got.bytes.len());
    }
    let whole = ok(storage.get_opts(&p, GetOptions::default()).await, "get_opts of the whole object", &p);
    assert_eq!(whole.size, Some(20), "get_opts of the whole of {p} (20 bytes): size");
    expect_bytes(&whole.bytes, &second, &format!("get_opts of the whole of {p}"));
    let ranged = ok(storage.get_opts(&p, GetOptions::default().with_range(5..9)).await, "get_opts of 5..9", &p);
    expect_bytes(&ranged.bytes, &second[5..9], &format!("get_opts({p}, 5..9)"));
    assert!(matches!(ranged.size, None | Some(20)), "get_opts({p}, 5..9): size {:?}, expected 20 or None", ranged.size);

    let empty = s.path("empty");
    ok(storage.put_opts(&empty, Bytes::new(), create).await, "put_opts(Create) of an empty object", &empty);
    let got = ok(storage.get_opts(&empty, GetOptions::default().with_head(true)).await, "a head request", &empty);
    assert_eq!(got, GetResult::head(0), "a head request of the empty object {empty}");
    expect_already_exists(storage.put_opts(&empty, Bytes::new(), create).await, &empty);
    s.finish().await;
}

/// `get_range` returns exactly the requested bytes, including ranges that touch either end and
/// empty ranges (also at the very end); a range that ends past the object, starts past it, or
/// is reversed is an [`Error::InvalidArgument`].
pub async fn ranged_get(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "ranged_get").await;
    let p = s.path("data.sst");
    let data = pattern(1000, 7);
    ok(storage.put(&p, data.clone()).await, "put", &p);

    for range in [0..1000, 0..1, 0..10, 10..500, 500..1000, 999..1000, 0..0, 500..500, 1000..1000] {
        let got = ok(storage.get_range(&p, range.clone()).await, &format!("get_range {range:?}"), &p);
        expect_bytes(&got, &data[range.start as usize..range.end as usize], &format!("get_range({p}, {range:?})"));
    }
    for range in [1000..1001, 500..1001, 0..1001, 1001..1001, 1001..2000, 2000..3000] {
        expect_invalid_range(storage.get_range(&p, range.clone()).await, &p, &range);
    }
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 10..5;
    expect_invalid_range(storage.get_range(&p, reversed.clone()).await, &p, &reversed);

    let empty = s.path("empty");
    ok(storage.put(&empty, Bytes::new()).await, "put", &empty);
    expect_bytes(&ok(storage.get_range(&empty, 0..0).await, "get_range 0..0", &empty), b"", "empty range of empty");
    expect_invalid_range(storage.get_range(&empty, 0..1).await, &empty, &(0..1));
    s.finish().await;
}

/// `list(prefix)` matches a *string* prefix, not a path segment: `a/b` lists `a/b/c`, `a/bc`
/// and `a/bd/e`. Results are sorted by path, recurse into directories, carry exact sizes, and
/// include every one of 1,100 entries.
pub async fn list_prefixes(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "list_prefixes").await;
    let names = ["a/b/c", "a/b/d", "a/bc", "a/bd/e", "a/c", "ab", "b", "a-", "a/b/c0/deep/er"];
    for (i, name) in names.iter().enumerate() {
        let p = s.path(name);
        ok(storage.put(&p, pattern(i, 0)).await, "put", &p);
    }
    let size_of = |name: &str| names.iter().position(|n| *n == name).expect("a name of the fixture") as u64;
    let cases: &[(&str, &[&str])] = &[
        ("", &["a-", "a/b/c", "a/b/c0/deep/er", "a/b/d", "a/bc", "a/bd/e", "a/c", "ab", "b"]),
        ("a", &["a-", "a/b/c", "a/b/c0/deep/er", "a/b/d", "a/bc", "a/bd/e", "a/c", "ab"]),
        ("a/", &["a/b/c", "a/b/c0/deep/er", "a/b/d", "a/bc", "a/bd/e", "a/c"]),
        ("a/b", &["a/b/c", "a/b/c0/deep/er", "a/b/d", "a/bc", "a/bd/e"]),
        ("a/b/", &["a/b/c", "a/b/c0/deep/er", "a/b/d"]),
        ("a/b/c", &["a/b/c", "a/b/c0/deep/er"]),
        ("a/b/c/", &[]),
        ("a/b/c0/d", &["a/b/c0/deep/er"]),
        ("a/bd/e", &["a/bd/e"]),
        ("a/bd/ee", &[]),
        ("zzz", &[]),
        ("no/such/dir/", &[]),
    ];
    for (prefix, expected) in cases {
        let expected: Vec<ObjectMeta> =
            expected.iter().map(|n| ObjectMeta { path: n.to_string(), size: size_of(n) }).collect();
        assert_eq!(s.list(prefix).await, expected, "list({:?}) with objects {names:?}", s.path(prefix));
    }

    // Many entries, spread over nested directories, whose numeric order is not their string order.
    let many: Vec<String> = (0..1100).map(|i| format!("many/{}/{i}", i % 7)).collect();
    for batch in many.chunks(BATCH) {
        let puts = batch.iter().map(|name| {
            let p = s.path(name);
            async move {
                let data = Bytes::from(name.clone().into_bytes());
                ok(storage.put(&p, data).await, "put", &p);
            }
        });
        join_all(puts).await;
    }
    let mut expected: Vec<ObjectMeta> =
        many.iter().map(|n| ObjectMeta { path: n.clone(), size: n.len() as u64 }).collect();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    let listed = s.list("many/").await;
    assert_eq!(listed.len(), 1100, "list({:?}) should return all 1100 objects", s.path("many/"));
    assert_eq!(listed, expected, "list({:?}) must be complete and sorted by path", s.path("many/"));
    let sub = s.list("many/3/1").await;
    let expected_sub: Vec<ObjectMeta> = expected.iter().filter(|o| o.path.starts_with("many/3/1")).cloned().collect();
    assert_eq!(sub, expected_sub, "list({:?})", s.path("many/3/1"));
    assert!(!sub.is_empty());
    s.finish().await;
}

/// `list_with_delimiter(prefix)` returns the objects whose path starts with the *string*
/// prefix and has no `/` after it, with exact sizes, and the common prefixes of the deeper ones,
/// each ending with that `/`: `a/b` gives the object `a/bc` and the prefixes `a/b/` and `a/bd/`.
/// Both are sorted and hold each entry once; a prefix that matches nothing gives nothing.
pub async fn list_with_delimiter(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "list_with_delimiter").await;
    let names = ["a/b/c", "a/b/d", "a/bc", "a/bd/e", "a/bd/f", "a/c", "ab", "b", "a-", "a/b/c0/deep/er", "top"];
    for (i, name) in names.iter().enumerate() {
        let p = s.path(name);
        ok(storage.put(&p, pattern(i, 0)).await, "put", &p);
    }
    let size_of = |name: &str| names.iter().position(|n| *n == name).expect("a name of the fixture") as u64;
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("", &["a-", "ab", "b", "top"], &["a/"]),
        ("a", &["a-", "ab"], &["a/"]),
        ("a/", &["a/bc", "a/c"], &["a/b/", "a/bd/"]),
        ("a/b", &["a/bc"], &["a/b/", "a/bd/"]),
        ("a/b/", &["a/b/c", "a/b/d"], &["a/b/c0/"]),
        ("a/b/c", &["a/b/c"], &["a/b/c0/"]),
        ("a/b/c0/", &[], &["a/b/c0/deep/"]),
        ("a/bd/", &["a/bd/e", "a/bd/f"], &[]),
        ("a/bd/e", &["a/bd/e"], &[]),
        ("zzz", &[], &[]),
        ("no/such/dir/", &[], &[]),
    ];
    for (prefix, objects, prefixes) in cases {
        let objects: Vec<ObjectMeta> =
            objects.iter().map(|n| ObjectMeta { path: n.to_string(), size: size_of(n) }).collect();
        let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
        let expected = ListResult::new(objects, prefixes);
        assert_eq!(
            s.list_with_delimiter(prefix).await,
            expected,
            "list_with_delimiter({:?}) with objects {names:?}",
            s.path(prefix)
        );
    }

    // More entries than fit one small page, directly under the prefix and in directories.
    let many: Vec<String> =
        (0..150).map(|i| if i % 3 == 0 { format!("many/d{}/{i}", i % 5) } else { format!("many/{i}") }).collect();
    for batch in many.chunks(BATCH) {
        let puts = batch.iter().map(|name| {
            let p = s.path(name);
            async move { ok(storage.put(&p, Bytes::from(name.clone().into_bytes())).await, "put", &p) }
        });
        join_all(puts).await;
    }
    let listed = s.list_with_delimiter("many/").await;
    let mut objects: Vec<ObjectMeta> = many
        .iter()
        .filter(|n| n.matches('/').count() == 1)
        .map(|n| ObjectMeta { path: n.clone(), size: n.len() as u64 })
        .collect();
    objects.sort_by(|a, b| a.path.cmp(&b.path));
    let prefixes: Vec<String> = (0..5).map(|d| format!("many/d{d}/")).collect();
    assert_eq!(listed, ListResult::new(objects, prefixes), "list_with_delimiter({:?})", s.path("many/"));
    s.finish().await;
}

/// Reading a missing object — by `get`, `get_range` (even an empty range) or `size` — is an
/// [`Error::NotFound`] naming the path. A directory is not an object. `delete` of a missing
/// object or of a directory succeeds and removes nothing else; listing a missing directory
/// is empty, not an error.
pub async fn missing_objects(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "missing_objects").await;
    for name in ["missing", "no/such/dir/object"] {
        let p = s.path(name);
        expect_not_found(storage.get(&p).await, &p, "get");
        expect_not_found(storage.get_range(&p, 0..1).await, &p, "get_range 0..1");
        expect_not_found(storage.get_range(&p, 0..0).await, &p, "get_range 0..0");
        expect_not_found(storage.size(&p).await, &p, "size");
        ok(storage.delete(&p).await, "delete of a missing object", &p);
        assert_eq!(s.list(name).await, [], "list({p:?}) of nothing");
    }
    assert_eq!(s.list("no/such/").await, [], "list of a missing directory");
    assert_eq!(
        s.list_with_delimiter("no/such/").await,
        ListResult::default(),
        "list_with_delimiter of a missing directory"
    );

    let child = s.path("dir/child");
    ok(storage.put(&child, Bytes::from_static(b"child")).await, "put", &child);
    let dir = s.path("dir");
    expect_not_found(storage.get(&dir).await, &dir, "get of a directory");
    expect_not_found(storage.size(&dir).await, &dir, "size of a directory");
    expect_not_found(storage.get_range(&dir, 0..1).await, &dir, "get_range of a directory");
    ok(storage.delete(&dir).await, "delete of a directory (not an object)", &dir);
    expect_bytes(&ok(storage.get(&child).await, "get", &child), b"child", "an object inside a deleted 'directory'");
    s.finish().await;
}

/// A `put` over an existing object is atomic: concurrent readers see one whole version (the old
/// one or one of the new ones), never a mix or a prefix, and the last version fully replaces
/// the first even when it is shorter.
pub async fn overwrite_is_atomic(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "overwrite_is_atomic").await;
    let p = s.path("object");
    // Version k is filled with byte k; lengths alternate between large and small.
    let len_of = |k: u8| if k.is_multiple_of(2) { (1 << 20) + k as usize } else { 4096 + k as usize };
    let version = |k: u8| Bytes::from(vec![k; len_of(k)]);
    let check = |data: &Bytes, what: &str| -> u8 {
        let k = *data.first().unwrap_or_else(|| panic!("{what} of {p}: got an empty object"));
        assert!(data.len() == len_of(k), "{what} of {p}: {} bytes of {k}, a torn or partial write", data.len());
        assert!(data.iter().all(|b| *b == k), "{what} of {p}: bytes of two versions mixed");
        k
    };
    ok(storage.put(&p, version(0)).await, "put", &p);

    for round in 0..3u8 {
        let writers = (1..=8u8).map(|k| {
            let p = &p;
            async move {
                ok(storage.put(p, version(k + 8 * round)).await, "racing put", p);
            }
        });
        let readers = (0..16).map(|_| async {
            let data = ok(storage.get(&p).await, "get racing writers", &p);
            check(&data, "get racing writers");
        });
        let sizes = (0..8).map(|_| async {
            let size = ok(storage.size(&p).await, "size racing writers", &p);
            let valid = (0..=24u8).any(|k| len_of(k) as u64 == size);
            assert!(valid, "size of {p} racing writers: {size} is no version's size");
        });
        futures::join!(
            async {
                join_all(writers).await;
            },
            async {
                join_all(readers).await;
            },
            async {
                join_all(sizes).await;
            }
        );
        let last = check(&ok(storage.get(&p).await, "get", &p), "get after racing puts");
        assert!((1 + 8 * round..=8 + 8 * round).contains(&last), "round {round}: the final version {last} is stale");
    }

    // The new content fully replaces the old.
    ok(storage.put(&p, version(2)).await, "put", &p);
    ok(storage.put(&p, version(3)).await, "put", &p);
    assert_eq!(check(&ok(storage.get(&p).await, "get", &p), "get"), 3);
    assert_eq!(ok(storage.size(&p).await, "size", &p), len_of(3) as u64, "size after a shorter put");
    s.finish().await;
}

/// Many writers at once: of 16 `put_if_absent` racing on one key exactly one wins and the
/// others get [`Error::AlreadyExists`] (the object holds the winner's bytes); 16 `put`s racing
/// on one key all succeed and leave one whole version; 64 `put`s and 64 `put_if_absent` on
/// different keys all land.
pub async fn concurrent_writers(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "concurrent_writers").await;
    let content = |i: usize| Bytes::from(format!("writer {i} ").repeat(100 + i));

    for round in 0..5 {
        let key = s.path(&format!("race/{round}"));
        let results = join_all((0..16).map(|i| storage.put_if_absent(&key, content(i)))).await;
        let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
        assert_eq!(winners.len(), 1, "exactly one of 16 racing put_if_absent on {key} must win, winners: {winners:?}");
        for (i, r) in results.into_iter().enumerate() {
            if i != winners[0] {
                expect_already_exists(r, &key);
            }
        }
        let got = ok(storage.get(&key).await, "get", &key);
        expect_bytes(&got, &content(winners[0]), &format!("{key} after writer {} won", winners[0]));
    }

    let same = s.path("same");
    let results = join_all((0..16).map(|i| storage.put(&same, content(i)))).await;
    for r in results {
        ok(r, "racing put", &same);
    }
    let got = ok(storage.get(&same).await, "get", &same);
    assert!((0..16).any(|i| got == content(i)), "{same} after 16 racing puts holds no single writer's bytes");

    let results = join_all((0..64).map(|i| {
        let p = s.path(&format!("different/put/{i:02}"));
        async move { (storage.put(&p, content(i)).await, p) }
    }))
    .await;
    for (r, p) in results {
        ok(r, "put", &p);
    }
    let results = join_all((0..64).map(|i| {
        let p = s.path(&format!("different/create/{i:02}"));
        async move { (storage.put_if_absent(&p, content(i)).await, p) }
    }))
    .await;
    for (r, p) in results {
        ok(r, "put_if_absent of a new key racing others", &p);
    }
    for kind in ["put", "create"] {
        let listed = s.list(&format!("different/{kind}/")).await;
        let expected: Vec<ObjectMeta> = (0..64)
            .map(|i| ObjectMeta { path: format!("different/{kind}/{i:02}"), size: content(i).len() as u64 })
            .collect();
        assert_eq!(listed, expected, "list after 64 concurrent writes ({kind})");
        for i in [0, 17, 63] {
            let p = s.path(&format!("different/{kind}/{i:02}"));
            expect_bytes(&ok(storage.get(&p).await, "get", &p), &content(i), &format!("get {p}"));
        }
    }
    s.finish().await;
}

/// A scratch directory claimed for one check of one run.
struct Scratch<'a> {
    storage: &'a dyn ExternalStorage,
    /// `strata-conformance/<n>/<check>/`.
    dir: String,
    /// `strata-conformance/<n>.claim`, created with `put_if_absent`.
    claim: String,
}

/// Where this process starts probing for a free run number; it only saves probes, the claim
/// itself is what makes a directory unique.
static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);

impl<'a> Scratch<'a> {
    async fn claim(storage: &'a dyn ExternalStorage, check: &str) -> Scratch<'a> {
        for _ in 0..100_000 {
            let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
            let claim = format!("{SCRATCH_ROOT}/{n}.claim");
            match storage.put_if_absent(&claim, Bytes::from(check.to_string())).await {
                Ok(()) => return Scratch { storage, dir: format!("{SCRATCH_ROOT}/{n}/{check}/"), claim },
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => panic!("{check}: claiming a scratch directory with put_if_absent({claim:?}) failed: {e}"),
            }
        }
        panic!("{check}: no free scratch directory under {SCRATCH_ROOT}/ after 100,000 claims: put_if_absent never succeeds");
    }

    /// The full path of `name` inside the scratch directory.
    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.dir)
    }

    /// `list(dir + prefix)`, with paths made relative to the scratch directory.
    async fn list(&self, prefix: &str) -> Vec<ObjectMeta> {
        let full = self.path(prefix);
        let listed = ok(self.storage.list(&full).await, "list", &full);
        listed
            .into_iter()
            .map(|o| {
                let path = o.path.strip_prefix(&self.dir).unwrap_or_else(|| {
                    panic!("list({full:?}) returned {:?}, which does not start with the prefix", o.path)
                });
                ObjectMeta { path: path.to_string(), size: o.size }
            })
            .collect()
    }

    /// `list_with_delimiter(dir + prefix)`, with paths made relative to the scratch directory.
    async fn list_with_delimiter(&self, prefix: &str) -> ListResult {
        let full = self.path(prefix);
        let listed = ok(self.storage.list_with_delimiter(&full).await, "list_with_delimiter", &full);
        let relative = |path: String| -> String {
            match path.strip_prefix(&self.dir) {
                Some(p) => p.to_string(),
                None => panic!("list_with_delimiter({full:?}) returned {path:?}, which does not start with the prefix"),
            }
        };
        let objects = listed.objects.into_iter().map(|o| ObjectMeta { path: relative(o.path), size: o.size }).collect();
        ListResult::new(objects, listed.common_prefixes.into_iter().map(relative).collect())
    }

    /// Deletes everything the check wrote, checks that it is gone, and releases the claim.
    async fn finish(self) {
        let left = self.list("").await;
        for batch in left.chunks(BATCH) {
            let deletes = batch.iter().map(|o| {
                let p = self.path(&o.path);
                async move { ok(self.storage.delete(&p).await, "delete", &p) }
            });
            join_all(deletes).await;
        }
        assert_eq!(self.list("").await, [], "objects left under {} after deleting every listed one", self.dir);
        ok(self.storage.delete(&self.claim).await, "delete", &self.claim);
    }
}

/// `len` bytes that differ from `seed` to `seed`, with no short period.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// The value of a call that must succeed.
#[track_caller]
fn ok<T>(result: Result<T>, op: &str, path: &str) -> T {
    result.unwrap_or_else(|e| panic!("{op} {path:?} failed: {e} ({e:?})"))
}

/// Compares bytes without printing megabytes: lengths and the first difference.
#[track_caller]
fn expect_bytes(got: &[u8], expected: &[u8], what: &str) {
    if got == expected {
        return;
    }
    let first = got.iter().zip(expected).position(|(a, b)| a != b);
    match first {
        Some(i) => panic!(
            "{what}: byte {i} is {:#04x}, expected {:#04x} ({} bytes, expected {})",
            got[i],
            expected[i],
            got.len(),
            expected.len()
        ),
        None => panic!("{what}: {} bytes, expected {} (one is a prefix of the other)", got.len(), expected.len()),
    }
}

/// Describes a result without its (possibly huge) value.
fn outcome<T>(result: &Result<T>) -> String {
    match result {
        Ok(_) => "success".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

#[track_caller]
fn expect_not_found<T>(result: Result<T>, path: &str, op: &str) {
    match &result {
        Err(Error::NotFound { name, .. }) => {
            assert!(name.ends_with(path), "{op} {path:?}: NotFound should name the path, got {name:?}")
        }
        _ => panic!("{op} {path:?}: expected NotFound, got {}", outcome(&result)),
    }
}

#[track_caller]
fn expect_already_exists<T>(result: Result<T>, path: &str) {
    match &result {
        Err(Error::AlreadyExists { name, .. }) => {
            assert!(name.ends_with(path), "put_if_absent {path:?}: AlreadyExists should name the path, got {name:?}")
        }
        _ => panic!("put_if_absent {path:?} over an existing object: expected AlreadyExists, got {}", outcome(&result)),
    }
}

#[track_caller]
fn expect_invalid_range<T>(result: Result<T>, path: &str, range: &Range<u64>) {
    match &result {
        Err(Error::InvalidArgument { message, .. }) => assert!(
            message.contains(path),
            "get_range({path:?}, {range:?}): InvalidArgument should name the path, got {message:?}"
        ),
        _ => panic!("get_range({path:?}, {range:?}): expected InvalidArgument, got {}", outcome(&result)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use async_trait::async_trait;
    use futures::executor::block_on;

    use super::*;
    use crate::storage::{MemoryStorage, Prefixed, StorageWrapper};

    #[test]
    fn memory_passes_every_check() {
        let report = block_on(run_all(&MemoryStorage::new("conformance"), &Capabilities::all()));
        assert_eq!(report.passed, CHECKS.iter().map(|c| c.name).collect::<Vec<_>>());
        assert_eq!(
            report.to_string(),
            format!("storage conformance of memory://conformance: {0} of {0} checks passed", CHECKS.len())
        );
    }

    #[test]
    fn a_prefixed_view_passes_every_check() {
        let view = Prefixed::new(Arc::new(MemoryStorage::new("conformance")), "some/view");
        let report = block_on(run_all(&view, &Capabilities::all()));
        assert!(report.skipped.is_empty() && report.passed.len() == CHECKS.len(), "{report}");
    }

    #[test]
    fn checks_have_distinct_names() {
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len(), "{names:?}");
    }

    #[test]
    fn skipped_checks_are_named_in_the_report() {
        let capabilities = Capabilities::all().without("overwrite_is_atomic", "readers racing a MOVE see torn objects");
        let report = block_on(run_all(&MemoryStorage::new("m"), &capabilities));
        assert!(!report.passed.contains(&"overwrite_is_atomic"));
        assert_eq!(report.passed.len(), CHECKS.len() - 1);
        assert_eq!(
            report.to_string(),
            format!(
                "storage conformance of memory://m: {} of {} checks passed\n  SKIPPED overwrite_is_atomic: readers racing a MOVE see torn objects",
                CHECKS.len() - 1,
                CHECKS.len()
            )
        );
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "the storage suite has no such check")]
    fn only_existing_checks_can_be_skipped() {
        let _ = Capabilities::all().without("multipart", "gone");
    }

    #[test]
    fn run_all_shares_one_store_and_cleans_up() {
        let store = Arc::new(MemoryStorage::new("shared"));
        block_on(async {
            // Two runs on one store, one through a view: neither sees the other's objects.
            let view = Prefixed::new(store.clone(), "sub");
            let all = Capabilities::all();
            let (a, b) = futures::join!(run_all(store.as_ref(), &all), run_all(&view, &all));
            assert_eq!((a.passed.len(), b.passed.len()), (CHECKS.len(), CHECKS.len()));
            assert_eq!(store.list("").await.unwrap(), [], "the suite must delete what it wrote");
        });
    }

    #[test]
    fn a_claimed_run_number_is_skipped() {
        let store = MemoryStorage::new("conformance");
        block_on(async {
            // Another run holds every number this process would try next.
            let next = NEXT_RUN.load(Ordering::Relaxed);
            for n in next..next + 3 {
                store.put_if_absent(&format!("{SCRATCH_ROOT}/{n}.claim"), Bytes::new()).await.unwrap();
            }
            let s = Scratch::claim(&store, "check").await;
            assert!(!s.dir.starts_with(&format!("{SCRATCH_ROOT}/{next}/")), "reused a claimed directory: {}", s.dir);
            s.finish().await;
        });
    }

    /// A memory storage with one deliberate defect, to show that the suite notices it.
    struct Broken {
        inner: MemoryStorage,
        defect: Defect,
    }

    #[derive(PartialEq)]
    enum Defect {
        CreateOverwrites,
        HeadReturnsBytes,
        DelimiterIgnored,
    }

    #[cfg_attr(not(target_arch = "wasm32"), async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
    impl StorageWrapper for Broken {
        fn inner(&self) -> &dyn ExternalStorage {
            &self.inner
        }
        async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
            let options = if self.defect == Defect::CreateOverwrites { PutOptions::default() } else { options };
            self.inner.put_opts(path, data, options).await
        }
        async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
            let options = if self.defect == Defect::HeadReturnsBytes { options.with_head(false) } else { options };
            self.inner.get_opts(path, options).await
        }
        async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
            if self.defect != Defect::DelimiterIgnored {
                return self.inner.list_with_delimiter(prefix).await;
            }
            Ok(ListResult::new(self.inner.list(prefix).await?, Vec::new()))
        }
    }

    fn broken(defect: Defect) -> Broken {
        Broken { inner: MemoryStorage::new("broken"), defect }
    }

    // On wasm32 a panic aborts without unwinding: the executor guard `block_on` holds stays set
    // and every later `block_on` in the same test instance fails, so these run natively only.
    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "expected AlreadyExists, got success")]
    fn a_storage_without_put_if_absent_fails() {
        block_on(put_if_absent(&broken(Defect::CreateOverwrites)));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "returned 20 bytes, expected none")]
    fn a_storage_whose_head_reads_bytes_fails() {
        block_on(put_and_get_options(&broken(Defect::HeadReturnsBytes)));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "list_with_delimiter(")]
    fn a_storage_without_a_delimiter_fails() {
        block_on(list_with_delimiter(&broken(Defect::DelimiterIgnored)));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "expected AlreadyExists, got success")]
    fn run_all_runs_the_checks_of_the_list() {
        let _ = block_on(run_all(&broken(Defect::CreateOverwrites), &Capabilities::all()));
    }
}
