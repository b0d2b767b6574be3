//! The storage conformance suite: what every [`ExternalStorage`] must do, checked the same way
//! for every implementation (memory, local files, S3-compatible servers, the JS adapters, a
//! plugin's own).
//!
//! Each function takes `&dyn ExternalStorage`, works in a scratch directory of its own under
//! `strata-conformance/` (claimed with [`ExternalStorage::put_if_absent`], so several runs can
//! share one bucket), asserts exact values, panics with a message naming the operation, path and
//! values on the first difference, and deletes what it wrote when it passes. A failed run leaves
//! its scratch directory behind for inspection; later runs skip it.
//!
//! The suite does no IO of its own and names no runtime: run it under whatever executor the
//! implementation needs.
//!
//! ```
//! use strata_core::{conformance::storage, MemoryStorage};
//!
//! futures::executor::block_on(storage::run_all(&MemoryStorage::new("doc")));
//! ```
//!
//! | function | checks |
//! | --- | --- |
//! | [`put_get_delete`] | round trips, overwrite by a shorter object, empty objects, every byte value, unusual names, `delete` twice |
//! | [`put_if_absent`] | creates once, then [`Error::AlreadyExists`] naming the path, old bytes kept |
//! | [`ranged_get`] | ranges at both ends, empty ranges, past-the-end and reversed ranges are [`Error::InvalidArgument`] |
//! | [`list_prefixes`] | string prefixes that cut a path segment, nested directories, 1,100 entries, sorted, sizes |
//! | [`missing_objects`] | [`Error::NotFound`] naming the path for `get`, `get_range`, `size`; a directory is not an object |
//! | [`overwrite_is_atomic`] | readers racing writers see one whole version, never a mix or a prefix |
//! | [`multipart`] | several MiB in many parts, invisible until complete, abort leaves nothing |
//! | [`concurrent_writers`] | racing `put_if_absent` on one key: exactly one wins; racing `put`s on one and many keys |

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::future::join_all;

use crate::error::{Error, Result};
use crate::storage::{ExternalStorage, ObjectMeta};

/// The directory under which every run claims its scratch directory.
pub const SCRATCH_ROOT: &str = "strata-conformance";

/// How many operations the suite issues at once when it only needs many objects.
const BATCH: usize = 64;

/// Runs every check of the suite, one after the other.
pub async fn run_all(storage: &dyn ExternalStorage) {
    put_get_delete(storage).await;
    put_if_absent(storage).await;
    ranged_get(storage).await;
    list_prefixes(storage).await;
    missing_objects(storage).await;
    overwrite_is_atomic(storage).await;
    multipart(storage).await;
    concurrent_writers(storage).await;
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

/// `put_multipart` streams several MiB in many parts of odd sizes (and many tiny writes); the
/// object is invisible until `complete`, an overwritten object keeps its old bytes until then,
/// `abort` leaves nothing behind (nor touches the object it would have replaced), and an upload
/// of nothing completes to an empty object.
pub async fn multipart(storage: &dyn ExternalStorage) {
    let s = Scratch::claim(storage, "multipart").await;
    let sizes = [1usize, 4095, 65536, 1 << 20, (1 << 20) + 7, 3, 2 << 20, 500_000, 1 << 20, 12_345];
    let total: usize = sizes.iter().sum();
    let data = pattern(total, 42);

    let p = s.path("data/big.sst");
    let mut upload = ok(storage.put_multipart(&p).await, "put_multipart", &p);
    let mut at = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        ok(upload.write(data.slice(at..at + size)).await, &format!("write of {size} bytes at {at}"), &p);
        at += size;
        if i == 3 {
            expect_not_found(storage.get(&p).await, &p, "get of an upload in progress");
        }
    }
    expect_not_found(storage.get(&p).await, &p, "get before complete");
    assert_eq!(s.list("data/").await, [], "an upload in progress must not be listed");
    ok(upload.complete().await, "complete", &p);
    assert_eq!(ok(storage.size(&p).await, "size", &p), total as u64, "size after multipart upload");
    expect_bytes(&ok(storage.get(&p).await, "get", &p), &data, &format!("get {p} after multipart upload"));
    let across = ((1 << 20) - 10)..((1 << 20) + 10);
    expect_bytes(
        &ok(storage.get_range(&p, across.clone()).await, "get_range", &p),
        &data[across.start as usize..across.end as usize],
        "a range across part boundaries",
    );
    assert_eq!(s.list("data/").await, [ObjectMeta { path: "data/big.sst".into(), size: total as u64 }]);

    // Many tiny writes.
    let tiny = s.path("data/tiny");
    let mut upload = ok(storage.put_multipart(&tiny).await, "put_multipart", &tiny);
    let small = pattern(10_000 * 101, 3);
    for chunk in 0..10_000 {
        ok(upload.write(small.slice(chunk * 101..(chunk + 1) * 101)).await, "write of 101 bytes", &tiny);
    }
    ok(upload.complete().await, "complete", &tiny);
    expect_bytes(&ok(storage.get(&tiny).await, "get", &tiny), &small, "10,000 writes of 101 bytes");

    // Overwriting: the old object stays whole until complete.
    let q = s.path("replace");
    ok(storage.put(&q, Bytes::from_static(b"old")).await, "put", &q);
    let mut upload = ok(storage.put_multipart(&q).await, "put_multipart over an existing object", &q);
    ok(upload.write(data.slice(..3 << 20)).await, "write", &q);
    expect_bytes(&ok(storage.get(&q).await, "get", &q), b"old", "an object being replaced by an upload in progress");
    ok(upload.complete().await, "complete", &q);
    expect_bytes(&ok(storage.get(&q).await, "get", &q), &data[..3 << 20], "an object replaced by an upload");

    // Abort leaves nothing: no object, no listing, the replaced object untouched.
    let r = s.path("aborted/object");
    let mut upload = ok(storage.put_multipart(&r).await, "put_multipart", &r);
    ok(upload.write(data.slice(..(2 << 20) + 5)).await, "write", &r);
    ok(upload.write(data.slice(..(1 << 20))).await, "write", &r);
    ok(upload.abort().await, "abort", &r);
    expect_not_found(storage.get(&r).await, &r, "get after abort");
    assert_eq!(s.list("aborted").await, [], "an aborted upload must leave nothing");
    let keep = s.path("keep");
    ok(storage.put(&keep, Bytes::from_static(b"keep")).await, "put", &keep);
    let mut upload = ok(storage.put_multipart(&keep).await, "put_multipart", &keep);
    ok(upload.write(data.slice(..1 << 20)).await, "write", &keep);
    ok(upload.abort().await, "abort", &keep);
    expect_bytes(&ok(storage.get(&keep).await, "get", &keep), b"keep", "an object whose replacement was aborted");

    // An upload of nothing.
    let e = s.path("empty");
    let upload = ok(storage.put_multipart(&e).await, "put_multipart", &e);
    ok(upload.complete().await, "complete of an upload of nothing", &e);
    assert_eq!(ok(storage.size(&e).await, "size", &e), 0, "size of an upload of nothing");
    expect_bytes(&ok(storage.get(&e).await, "get", &e), b"", "an upload of nothing");
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

    use futures::executor::block_on;

    use super::*;
    use crate::storage::{MemoryStorage, Prefixed};

    fn memory() -> MemoryStorage {
        MemoryStorage::new("conformance")
    }

    fn prefixed() -> Prefixed {
        Prefixed::new(Arc::new(MemoryStorage::new("conformance")), "some/view")
    }

    macro_rules! suite {
        ($($check:ident),* $(,)?) => {
            mod memory {
                #[cfg(all(target_family = "wasm", target_os = "unknown"))]
                use wasm_bindgen_test::wasm_bindgen_test as test;
                $(#[test] fn $check() { futures::executor::block_on(super::super::$check(&super::memory())); })*
            }
            mod prefixed {
                #[cfg(all(target_family = "wasm", target_os = "unknown"))]
                use wasm_bindgen_test::wasm_bindgen_test as test;
                $(#[test] fn $check() { futures::executor::block_on(super::super::$check(&super::prefixed())); })*
            }
        };
    }

    suite!(
        put_get_delete,
        put_if_absent,
        ranged_get,
        list_prefixes,
        missing_objects,
        overwrite_is_atomic,
        multipart,
        concurrent_writers,
    );

    #[test]
    fn run_all_shares_one_store_and_cleans_up() {
        let store = Arc::new(MemoryStorage::new("shared"));
        block_on(async {
            // Two runs on one store, one through a view: neither sees the other's objects.
            let view = Prefixed::new(store.clone(), "sub");
            futures::join!(run_all(store.as_ref()), run_all(&view));
            assert_eq!(store.list("").await.unwrap(), [], "the suite must delete what it wrote");
        });
    }

    #[test]
    fn a_claimed_run_number_is_skipped() {
        let store = memory();
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

    #[test]
    // On wasm32 a panic aborts without unwinding: the executor guard `block_on` holds stays set
    // and every later `block_on` in the same test instance fails, so this runs natively only.
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "expected AlreadyExists, got success")]
    fn a_storage_without_put_if_absent_fails() {
        // put_if_absent that overwrites: the suite must notice.
        struct Overwriting(MemoryStorage);
        #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
        #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
        impl ExternalStorage for Overwriting {
            fn describe(&self) -> String {
                self.0.describe()
            }
            async fn put(&self, path: &str, data: Bytes) -> Result<()> {
                self.0.put(path, data).await
            }
            async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
                self.0.put(path, data).await
            }
            async fn get(&self, path: &str) -> Result<Bytes> {
                self.0.get(path).await
            }
            async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
                self.0.get_range(path, range).await
            }
            async fn size(&self, path: &str) -> Result<u64> {
                self.0.size(path).await
            }
            async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
                self.0.list(prefix).await
            }
            async fn delete(&self, path: &str) -> Result<()> {
                self.0.delete(path).await
            }
        }
        block_on(put_if_absent(&Overwriting(memory())));
    }
}
