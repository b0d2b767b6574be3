//! The KV conformance suite: what every [`KvSource`] / [`KvSink`] / [`KvStore`] must do, checked
//! the same way for every implementation ([`MemKv`], the embedded store, a plugin's engine).
//!
//! Each function takes the store under test, expects it fresh and empty, asserts exact results
//! and panics with a message naming the operation and the values on the first difference.
//! [`run_all`] runs every function, each on a new store from a factory; [`run_all_with_gc`] adds
//! the garbage-collection checks for engines that can be told to collect (no trait exposes GC).
//!
//! [`model`] is the randomized part: a seeded history of writes, deletes, ingestions, descriptor
//! publishes, id allocations, discards (and GC) applied to the store under test and to [`MemKv`],
//! with every scan (random spans, windows, filters, small pages) and catalog compared.
//!
//! [`KvSource::scan_changes`] is optional: wherever the suite scans a window, a store that answers
//! it (`Some`) must answer exactly what [`KvSource::scan`] returns for the same request, page by
//! page; one that answers `Ok(None)` (no change index, like [`MemKv`]) passes, since callers then
//! fall back to `scan`. The two
//! stores issue different timestamps, so results are compared modulo timestamps: after each step
//! the suite reads `now()` on both, and a version's timestamp is mapped to the step that wrote it
//! (the one step `i` with `now_{i-1} < ts <= now_i`, which the contract of [`KvSource::now`]
//! guarantees to exist).
//!
//! ```
//! use strata_core::conformance::kv;
//! use strata_core::MemKv;
//!
//! futures::executor::block_on(async {
//!     kv::run_all_with_gc(MemKv::new, |store, threshold| async move {
//!         store.gc(threshold);
//!         Ok(())
//!     })
//!     .await;
//! });
//! ```

use std::fmt::Debug;
use std::future::Future;

use futures::future::join_all;

use crate::catalog::{
    Catalog, DatabaseDescriptor, DescId, Descriptor, DescriptorChange, IndexDescriptor, IndexState, TableDescriptor,
    FIRST_USER_ID,
};
use crate::error::{Error, Result};
use crate::keys;
use crate::kv::{read_span, Entry, KvSink, KvSource, KvStore, MvccFilter, ScanPage, ScanRequest};
use crate::memkv::MemKv;
use crate::span::Span;
use crate::timestamp::Timestamp;

/// The table id the fixed tests write under.
const T: DescId = 200;

/// Runs every check that needs only the traits, each on a fresh store from `make`, then
/// [`model`] with [`ModelOptions::default`] and two more seeds.
pub async fn run_all<S: KvStore>(make: impl Fn() -> S) {
    scan_latest_and_revisions(&make()).await;
    scan_span_bounds(&make()).await;
    paging(&make()).await;
    scan_changes_matches_scan(&make()).await;
    now_is_stable(&make()).await;
    write_is_atomic(&make()).await;
    concurrent_writes(&make()).await;
    id_allocation(&make()).await;
    ingest(&make()).await;
    publish_is_atomic_and_visible(&make()).await;
    catalog_at_history(&make()).await;
    discard(&make()).await;
    for seed in [0, 1, 2] {
        model(&make(), &ModelOptions::default().with_seed(seed)).await;
    }
}

/// [`run_all`], plus [`gc_threshold`] and [`model_with_gc`]. `gc(store, threshold)` must
/// garbage-collect `store` the way [`MemKv::gc`] does: for each key keep the newest version at or
/// below `threshold` unless it is a deletion, drop the older ones, raise the GC threshold to
/// `threshold` (never lower it).
pub async fn run_all_with_gc<S, G, Fut>(make: impl Fn() -> S, gc: G)
where
    S: KvStore + Clone,
    G: Fn(S, Timestamp) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    run_all(&make).await;
    let store = make();
    gc_threshold(&store, |t| gc(store.clone(), t)).await;
    for seed in [10, 11, 12] {
        let store = make();
        model_with_gc(&store, |t| gc(store.clone(), t), &ModelOptions::default().with_seed(seed)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn ok<T>(result: Result<T>, what: impl FnOnce() -> String) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{}: unexpected error: {e}", what()),
    }
}

fn key(user: &str) -> Vec<u8> {
    keys::table_key(T, user.as_bytes())
}

fn entry(key: &[u8], ts: Timestamp, value: Option<&str>) -> Entry {
    Entry::new(key.to_vec(), ts, value.map(|v| v.as_bytes().to_vec()))
}

fn put(k: &[u8], v: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (k.to_vec(), Some(v.as_bytes().to_vec()))
}

fn del(k: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    (k.to_vec(), None)
}

async fn write<S: KvStore + ?Sized>(store: &S, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Timestamp {
    let what = format!("write {}", show_batch(&batch));
    let ts = ok(store.write(batch).await, || what.clone());
    note_write(store, ts, what);
    ts
}

// ---------------------------------------------------------------------------------------------
// Failure messages: keys with `keys::pretty_key`, the first difference only, and the operation
// that wrote a version.

/// What the fixed checks wrote, per store (by address, while a check runs): for each commit
/// timestamp, the operation, so that a failure can say which operation wrote a version.
static WRITES: std::sync::Mutex<Vec<(usize, Timestamp, String)>> = std::sync::Mutex::new(Vec::new());

fn store_id<S: ?Sized>(store: &S) -> usize {
    store as *const S as *const () as usize
}

fn writes() -> std::sync::MutexGuard<'static, Vec<(usize, Timestamp, String)>> {
    WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forgets what an earlier check wrote into a store at the same address.
fn forget_writes<S: ?Sized>(store: &S) {
    let id = store_id(store);
    writes().retain(|(s, _, _)| *s != id);
}

fn note_write<S: ?Sized>(store: &S, ts: Timestamp, what: String) {
    writes().push((store_id(store), ts, what));
}

/// Which operation of the running check wrote at `ts`.
fn written_by<S: ?Sized>(store: &S, ts: Timestamp) -> String {
    let id = store_id(store);
    match writes().iter().find(|(s, t, _)| *s == id && *t == ts) {
        Some((_, _, what)) => format!("written by: {what}"),
        None => "not the timestamp of a write or publish of this check (an ingest or id allocation wrote it, \
                 or none did)"
            .to_string(),
    }
}

/// A value as failure messages show it: text when it is printable, else escaped bytes; long
/// values cut.
pub(crate) fn show_value(value: Option<&[u8]>) -> String {
    let Some(v) = value else { return "(deleted)".to_string() };
    let mut shown = String::from("\"");
    for &b in v.iter().take(40) {
        if (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\' {
            shown.push(b as char);
        } else {
            shown.push_str(&format!("\\x{b:02x}"));
        }
    }
    shown.push('"');
    if v.len() > 40 {
        shown.push_str(&format!("… ({} bytes)", v.len()));
    }
    shown
}

/// A batch of writes as failure messages show it: `put /Table/200/"a" = "1", delete …`.
fn show_batch(batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> String {
    let shown: Vec<String> = batch
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("put {} = {}", keys::pretty_key(k), show_value(Some(v))),
            None => format!("delete {}", keys::pretty_key(k)),
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Descriptor changes as failure messages show them.
fn show_changes(changes: &[DescriptorChange]) -> String {
    let shown: Vec<String> = changes
        .iter()
        .map(|c| match c {
            DescriptorChange::Put(d) => format!("put descriptor {} {:?}", d.id(), d.name()),
            DescriptorChange::Delete(id) => format!("delete descriptor {id}"),
            DescriptorChange::SystemRow { key, .. } => format!("system row {}", keys::pretty_key(key)),
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Spans as failure messages show them.
fn show_spans(spans: &[Span]) -> String {
    format!("[{}]", spans.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// The first index at which two lists differ (one may be a prefix of the other).
fn first_difference<T: PartialEq>(got: &[T], expected: &[T]) -> Option<usize> {
    if got == expected {
        return None;
    }
    Some(got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len())))
}

fn show_entry<S: ?Sized>(store: &S, entry: Option<&Entry>) -> String {
    match entry {
        None => "(nothing: the list ends here)".to_string(),
        Some(e) => format!(
            "{} @ {} = {}; {}",
            keys::pretty_key(&e.key),
            e.ts,
            show_value(e.value.as_deref()),
            written_by(store, e.ts)
        ),
    }
}

/// Panics with the first difference of two lists of versions, keys shown readably.
#[track_caller]
fn assert_entries<S: ?Sized>(store: &S, what: &str, actual: &[Entry], expected: &[Entry]) {
    if let Some(i) = first_difference(actual, expected) {
        panic!(
            "{what}: the scan returned {} versions, {} expected; the first difference is at version {i}:\n  \
             got      {}\n  expected {}",
            actual.len(),
            expected.len(),
            show_entry(store, actual.get(i)),
            show_entry(store, expected.get(i)),
        );
    }
}

/// Publishes `changes`, noting the publish for failure messages.
async fn publish<S: KvStore + ?Sized>(store: &S, changes: Vec<DescriptorChange>) -> Timestamp {
    let what = format!("publish {}", show_changes(&changes));
    let ts = ok(store.publish(changes).await, || what.clone());
    note_write(store, ts, what);
    ts
}

async fn now<S: KvSource + ?Sized>(store: &S) -> Timestamp {
    ok(store.now().await, || "now()".into())
}

/// Every page of a scan, in pages of `target_bytes`.
async fn scan_pages<S: KvSource + ?Sized>(store: &S, mut request: ScanRequest) -> Result<Vec<ScanPage>> {
    let mut pages = Vec::new();
    loop {
        let page = store.scan(request.clone()).await?;
        let resume = page.resume_key.clone();
        pages.push(page);
        match resume {
            Some(k) => {
                assert!(
                    k > request.span.start || !pages.last().is_some_and(|p| p.entries.is_empty()),
                    "scan of {} makes no progress: an empty page resumes at its own start",
                    request.span
                );
                request.span.start = k;
            }
            None => return Ok(pages),
        }
        assert!(pages.len() <= 100_000, "scan of {} does not end", request.span);
    }
}

/// Every entry of a scan, paging through with the default page size.
async fn scan<S: KvSource + ?Sized>(
    store: &S,
    span: Span,
    start: Timestamp,
    end: Timestamp,
    filter: MvccFilter,
) -> Vec<Entry> {
    let what = format!("scan of {span} in ({start}, {end}] {filter:?}");
    let pages = ok(scan_pages(store, ScanRequest::new(span, start, end, filter)).await, || what);
    pages.into_iter().flat_map(|p| p.entries).collect()
}

/// Pages through `request` the way an incremental backup does, asking both
/// [`KvSource::scan_changes`] and [`KvSource::scan`] for each page: `Ok(None)` ends the check (the
/// caller would fall back to `scan`), `Some` must equal `scan`'s page exactly, and an error must
/// be of the same kind as `scan`'s. Returns how many pages `scan_changes` answered.
async fn check_scan_changes<S: KvSource + ?Sized>(
    store: &S,
    mut request: ScanRequest,
    what: &dyn Fn() -> String,
) -> usize {
    let mut answered = 0;
    loop {
        let fast = store.scan_changes(request.clone()).await;
        let slow = store.scan(request.clone()).await;
        let resume = match (fast, slow) {
            (Ok(None), _) => return answered,
            (Ok(Some(fast)), Ok(slow)) => {
                assert_eq!(
                    fast,
                    slow,
                    "{}: page {answered} of scan_changes (left) differs from scan's (right) for {request:?}",
                    what()
                );
                slow.resume_key
            }
            (Err(fast), Err(slow)) => {
                assert_eq!(
                    fast.code(),
                    slow.code(),
                    "{}: page {answered}: scan_changes failed with {fast}, scan with {slow}",
                    what()
                );
                return answered;
            }
            (Ok(Some(fast)), Err(slow)) => {
                panic!("{}: page {answered}: scan_changes returned {fast:?}, scan failed: {slow}", what())
            }
            (Err(fast), Ok(slow)) => {
                panic!("{}: page {answered}: scan_changes failed: {fast}; scan returned {slow:?}", what())
            }
        };
        answered += 1;
        match resume {
            Some(k) => request.span.start = k,
            None => return answered,
        }
        assert!(answered <= 100_000, "{}: scan_changes does not end", what());
    }
}

fn database(id: DescId, name: &str, version: u64) -> Descriptor {
    Descriptor::Database(DatabaseDescriptor {
        id,
        name: name.into(),
        version,
        modification_time: Timestamp::new(version, 0),
    })
}

fn table(id: DescId, name: &str, parent_id: DescId, version: u64) -> Descriptor {
    Descriptor::Table(TableDescriptor {
        id,
        name: name.into(),
        parent_id,
        version,
        modification_time: Timestamp::new(version, 0),
        indexes: vec![IndexDescriptor { id: 1, name: "primary".into(), unique: true, state: IndexState::Public }],
    })
}

// ---------------------------------------------------------------------------------------------
// Fixed checks.

/// Scans with [`MvccFilter::Latest`] and [`MvccFilter::AllRevisions`] over several time windows
/// `(start, end]`: boundaries exact, tombstones returned, versions newest first.
pub async fn scan_latest_and_revisions<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let t1 = write(store, vec![put(&a, "a1"), put(&b, "b1")]).await;
    let t2 = write(store, vec![put(&a, "a2"), put(&c, "c1")]).await;
    let t3 = write(store, vec![del(&b)]).await;
    let t4 = write(store, vec![put(&a, "a3")]).await;
    assert!(t1 < t2 && t2 < t3 && t3 < t4, "write timestamps must increase: {t1} {t2} {t3} {t4}");
    let span = keys::table_span(T);
    let z = Timestamp::ZERO;
    use MvccFilter::{AllRevisions as All, Latest};
    let cases: Vec<(&str, Timestamp, Timestamp, MvccFilter, Vec<Entry>)> = vec![
        (
            "latest at t4",
            z,
            t4,
            Latest,
            vec![entry(&a, t4, Some("a3")), entry(&b, t3, None), entry(&c, t2, Some("c1"))],
        ),
        ("latest at t1", z, t1, Latest, vec![entry(&a, t1, Some("a1")), entry(&b, t1, Some("b1"))]),
        (
            "latest at t3",
            z,
            t3,
            Latest,
            vec![entry(&a, t2, Some("a2")), entry(&b, t3, None), entry(&c, t2, Some("c1"))],
        ),
        ("latest just before t2", z, t2.prev(), Latest, vec![entry(&a, t1, Some("a1")), entry(&b, t1, Some("b1"))]),
        ("latest before every write", z, t1.prev(), Latest, vec![]),
        (
            "all revisions up to t4",
            z,
            t4,
            All,
            vec![
                entry(&a, t4, Some("a3")),
                entry(&a, t2, Some("a2")),
                entry(&a, t1, Some("a1")),
                entry(&b, t3, None),
                entry(&b, t1, Some("b1")),
                entry(&c, t2, Some("c1")),
            ],
        ),
        (
            "all revisions in (t1, t3]",
            t1,
            t3,
            All,
            vec![entry(&a, t2, Some("a2")), entry(&b, t3, None), entry(&c, t2, Some("c1"))],
        ),
        (
            "latest in (t1, t3]",
            t1,
            t3,
            Latest,
            vec![entry(&a, t2, Some("a2")), entry(&b, t3, None), entry(&c, t2, Some("c1"))],
        ),
        ("latest in (t2, t4]", t2, t4, Latest, vec![entry(&a, t4, Some("a3")), entry(&b, t3, None)]),
        (
            "all revisions in (t2.prev(), t2]",
            t2.prev(),
            t2,
            All,
            vec![entry(&a, t2, Some("a2")), entry(&c, t2, Some("c1"))],
        ),
        ("all revisions in (t2, t2]", t2, t2, All, vec![]),
        ("all revisions in (t4, MAX]", t4, Timestamp::MAX, All, vec![]),
    ];
    for (what, start, end, filter, expected) in cases {
        let actual = scan(store, span.clone(), start, end, filter).await;
        assert_entries(store, what, &actual, &expected);
    }
    let live = ok(read_span(store, span, t3).await, || "read_span at t3".into());
    assert_eq!(live, vec![(a, b"a2".to_vec()), (c, b"c1".to_vec())], "read_span at t3 drops deletions");
}

/// Spans are `[start, end)` over raw bytes: empty user keys, `0x00` and `0xff` bytes, keys that
/// prefix others, neighbouring tables, empty spans.
pub async fn scan_span_bounds<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let user_keys: [&[u8]; 9] = [b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"ab", b"b", b"\xff", b"\xff\xff"];
    let mut batch: Vec<_> = user_keys.iter().map(|u| (keys::table_key(T, u), Some(u.to_vec()))).collect();
    batch.push((keys::table_key(T - 1, b"\xff"), Some(b"before".to_vec())));
    batch.push((keys::table_key(T + 1, b""), Some(b"after".to_vec())));
    let ts = write(store, batch).await;
    let expect = |users: &[&[u8]]| -> Vec<Entry> {
        users.iter().map(|u| Entry::new(keys::table_key(T, u), ts, Some(u.to_vec()))).collect()
    };
    let k = |u: &[u8]| keys::table_key(T, u);
    let cases: Vec<(&str, Span, Vec<Entry>)> = vec![
        ("the table's span", keys::table_span(T), expect(&user_keys)),
        ("[a, ab)", Span::new(k(b"a"), k(b"ab")), expect(&[b"a", b"a\x00"])),
        ("[a, a)", Span::new(k(b"a"), k(b"a")), vec![]),
        ("[a\\x00, b]", Span::new(k(b"a\x00"), k(b"b\x00")), expect(&[b"a\x00", b"ab", b"b"])),
        ("[prefix, \\x00)", Span::new(keys::table_prefix(T).to_vec(), k(b"\x00")), expect(&[b""])),
        ("[\\xff, end of table)", Span::new(k(b"\xff"), keys::table_span(T).end), expect(&[b"\xff", b"\xff\xff"])),
    ];
    for (what, span, expected) in cases {
        let actual = scan(store, span, Timestamp::ZERO, ts, MvccFilter::Latest).await;
        assert_entries(store, what, &actual, &expected);
    }
    let everything = scan(store, Span::new(vec![], vec![0xff]), Timestamp::ZERO, ts, MvccFilter::Latest).await;
    let keys_seen: Vec<_> = everything.iter().map(|e| e.key.clone()).collect();
    let mut expected_keys = vec![keys::table_key(T - 1, b"\xff")];
    expected_keys.extend(user_keys.iter().map(|u| keys::table_key(T, u)));
    expected_keys.push(keys::table_key(T + 1, b""));
    assert_eq!(keys_seen, expected_keys, "scan of [/Min, /Max) returns every key in byte order");
}

/// Pages end at key boundaries once they hold `target_bytes` (counting keys and values), all
/// versions of a key in one page, `resume_key` the first key not returned; the pages together
/// equal one unpaged scan.
pub async fn paging<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let names: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    for round in 0..3 {
        // Keys k00..k19; every third key gets a version in each round, the others only in round 0.
        let batch: Vec<_> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| round == 0 || i % 3 == 0)
            .map(|(_, n)| put(&key(n), &format!("value-{round}")))
            .collect();
        write(store, batch).await;
    }
    let end = now(store).await;
    for filter in [MvccFilter::Latest, MvccFilter::AllRevisions] {
        let whole = scan(store, keys::table_span(T), Timestamp::ZERO, end, filter).await;
        for target_bytes in [1u64, 2, 13, 14, 15, 29, 30, 31, 100, 1 << 20] {
            let mut request = ScanRequest::new(keys::table_span(T), Timestamp::ZERO, end, filter);
            request.target_bytes = target_bytes;
            let what = format!("{filter:?} scan in pages of {target_bytes} bytes");
            let pages = ok(scan_pages(store, request).await, || what.clone());
            let joined: Vec<Entry> = pages.iter().flat_map(|p| p.entries.clone()).collect();
            assert_entries(store, &format!("{what}: pages joined"), &joined, &whole);
            for (i, page) in pages.iter().enumerate() {
                let size = |es: &[Entry]| -> u64 { es.iter().map(Entry::bytes).sum() };
                let last_key = page.entries.last().map(|e| e.key.clone());
                let without_last_key: Vec<Entry> =
                    page.entries.iter().filter(|e| Some(&e.key) != last_key.as_ref()).cloned().collect();
                match (&page.resume_key, pages.get(i + 1)) {
                    (Some(resume), Some(next)) => {
                        assert!(size(&page.entries) >= target_bytes, "{what}: page {i} ends before target_bytes");
                        assert!(
                            size(&without_last_key) < target_bytes,
                            "{what}: page {i} goes on past target_bytes to another key"
                        );
                        assert_eq!(
                            Some(&resume[..]),
                            next.entries.first().map(|e| &e.key[..]),
                            "{what}: page {i}'s resume_key is not the next page's first key"
                        );
                    }
                    (None, None) => {}
                    (r, _) => panic!("{what}: page {i} has resume_key {r:?} but is the last page or not"),
                }
            }
            if target_bytes == 1 {
                assert_eq!(pages.len(), names.len(), "{what}: one key per page");
            }
            if target_bytes == 1 << 20 {
                assert_eq!(pages.len(), 1, "{what}: one page");
            }
        }
    }
    // A key with no version in the window still ends a full page: the next page starts there.
    let (p, q, r) = (key("p"), key("q"), key("r"));
    write(store, vec![put(&q, "old")]).await;
    let t = write(store, vec![put(&p, "new"), put(&r, "new")]).await;
    let mut request = ScanRequest::new(Span::new(p.clone(), key("s")), t.prev(), t, MvccFilter::Latest);
    request.target_bytes = 1;
    let page = ok(store.scan(request).await, || "scan of [p, s) in pages of 1 byte".into());
    assert_entries(store, "first page of [p, s)", &page.entries, &[entry(&p, t, Some("new"))]);
    assert_eq!(
        page.resume_key,
        Some(q),
        "resume_key is the first key not returned, even with no version in the window"
    );
}

/// Where the store answers [`KvSource::scan_changes`] (`Some`), every page equals the page
/// [`KvSource::scan`] returns for the same request: over a history of writes (tombstones
/// included), ingestions, publishes, id allocations and a discard, for windows between any two
/// points of it (empty and reversed ones too), spans inside, across and outside the tables, both
/// filters and pages from 1 byte to 1 MiB. A store without a change index answers `Ok(None)`
/// and passes.
///
/// Returns how many pages `scan_changes` answered, so that the tests of a store with a change
/// index can check that it was used.
pub async fn scan_changes_matches_scan<S: KvStore + ?Sized>(store: &S) -> usize {
    forget_writes(store);
    let mut rng = Rng(0x5ca7);
    let users: Vec<String> = (0..24).map(|i| format!("k{i:02}")).collect();
    let mut points = vec![Timestamp::ZERO, now(store).await];
    for round in 0..12 {
        let ts = match round % 4 {
            0 | 1 => {
                let mut batch = Vec::new();
                for u in &users {
                    if !rng.chance(30) {
                        continue;
                    }
                    for k in [keys::table_key(T, u.as_bytes()), keys::table_key(T + 1, u.as_bytes())] {
                        let value = if rng.chance(25) { None } else { Some(rng.bytes(20)) };
                        batch.push((k, value));
                    }
                }
                write(store, batch).await
            }
            2 => {
                let mut pairs = Vec::new();
                for u in &users {
                    if !rng.chance(50) {
                        continue;
                    }
                    pairs.push((keys::table_key(T + 2, u.as_bytes()), rng.bytes(20)));
                }
                ok(store.ingest(pairs.into()).await, || format!("ingest in round {round}"));
                now(store).await
            }
            _ => {
                ok(store.allocate_ids(1).await, || "allocate_ids(1)".into());
                let change = DescriptorChange::Put(database(FIRST_USER_ID + round, &format!("db{round}"), 1));
                publish(store, vec![change]).await
            }
        };
        points.extend([ts.prev(), ts]);
    }
    let discarded = Span::new(keys::table_key(T + 1, b"k08"), keys::table_key(T + 1, b"k16"));
    ok(store.discard(&[discarded]).await, || "discard".into());
    points.push(now(store).await);
    points.push(Timestamp::MAX);
    let spans = [
        keys::table_span(T),
        keys::table_span(T + 1),
        Span::new(key("k05"), key("k15")),
        Span::new(key("k03"), key("k03\0")),
        Span::new(key("k07"), key("k07")),
        Span::new(keys::table_key(T, b"k20"), keys::table_key(T + 2, b"k04")),
        Span::new(vec![], vec![0xff]),
        keys::table_span(T + 3),
    ];
    let mut answered = 0;
    for check in 0..240 {
        let (start, end) = (*rng.pick(&points), *rng.pick(&points));
        let (start, end) = if rng.chance(90) { (start.min(end), start.max(end)) } else { (start, end) };
        let span = rng.pick(&spans).clone();
        let filter = if rng.chance(50) { MvccFilter::Latest } else { MvccFilter::AllRevisions };
        let target_bytes = *rng.pick(&[1u64, 7, 40, 200, 1 << 20]);
        let request = ScanRequest { span, start, end, filter, target_bytes };
        let what = || format!("scan_changes check {check}: {request:?}");
        answered += check_scan_changes(store, request.clone(), &what).await;
    }
    answered
}

/// `now()` is at or above every committed write, never goes backwards, and is below every later
/// write, so a read at `now()` is stable.
pub async fn now_is_stable<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let n0 = now(store).await;
    let t1 = write(store, vec![put(&key("a"), "1")]).await;
    assert!(t1 > n0, "a write after now() = {n0} is at {t1}, not above it");
    let n1 = now(store).await;
    assert!(n1 >= t1, "now() = {n1} is below the committed write at {t1}");
    let n2 = now(store).await;
    assert!(n2 >= n1, "now() went backwards: {n1} then {n2}");
    let before = scan(store, keys::table_span(T), Timestamp::ZERO, n2, MvccFilter::AllRevisions).await;
    let t2 = write(store, vec![put(&key("a"), "2"), put(&key("b"), "2")]).await;
    assert!(t2 > n2, "a write after now() = {n2} is at {t2}, not above it");
    let after = scan(store, keys::table_span(T), Timestamp::ZERO, n2, MvccFilter::AllRevisions).await;
    assert_entries(store, "a read at an earlier now() after another write", &after, &before);
    let n3 = now(store).await;
    assert!(n3 >= t2, "now() = {n3} is below the committed write at {t2}");
}

/// A batch is written at one fresh timestamp, all or nothing: deletions of absent keys write
/// tombstones, the last write of a key in a batch wins, an empty batch still gets a timestamp.
pub async fn write_is_atomic<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let (a, b, c, d) = (key("a"), key("b"), key("c"), key("d"));
    let t0 = write(store, vec![put(&a, "old")]).await;
    let ts = write(store, vec![put(&b, "1"), put(&a, "new"), del(&c), put(&d, "first"), put(&d, "second")]).await;
    assert!(ts > t0, "batch at {ts} is not above the write before it at {t0}");
    let span = keys::table_span(T);
    let all = scan(store, span.clone(), Timestamp::ZERO, Timestamp::MAX, MvccFilter::AllRevisions).await;
    assert_entries(
        store,
        "every version after one batch",
        &all,
        &[
            entry(&a, ts, Some("new")),
            entry(&a, t0, Some("old")),
            entry(&b, ts, Some("1")),
            entry(&c, ts, None),
            entry(&d, ts, Some("second")),
        ],
    );
    let before = scan(store, span.clone(), Timestamp::ZERO, ts.prev(), MvccFilter::Latest).await;
    assert_entries(store, "the store just before the batch", &before, &[entry(&a, t0, Some("old"))]);
    let empty = write(store, vec![]).await;
    assert!(empty > ts, "an empty batch at {empty} is not above the batch before it at {ts}");
    let empty_value = write(store, vec![put(&a, "")]).await;
    let latest = scan(store, Span::new(a.clone(), b.clone()), Timestamp::ZERO, empty_value, MvccFilter::Latest).await;
    assert_entries(store, "an empty value is a value, not a deletion", &latest, &[entry(&a, empty_value, Some(""))]);
}

/// Writes, ingestions and id allocations issued together each get their own timestamp (or ids)
/// and all land.
pub async fn concurrent_writes<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let writes = join_all(
        (0..8).map(|i| store.write(vec![put(&key(&format!("w{i}")), "v"), put(&key("shared"), &format!("{i}"))])),
    );
    let ingests = join_all((0..8u32).map(|i| {
        let batch =
            (0..10).map(|j| (keys::table_key(T + 1 + i, format!("{j:02}").as_bytes()), vec![i as u8; 8])).collect();
        store.ingest(batch)
    }));
    let ids = join_all((0..8).map(|_| store.allocate_ids(2)));
    let (writes, ingests, ids) = futures::join!(writes, ingests, ids);
    let mut write_ts: Vec<Timestamp> = writes.into_iter().map(|r| ok(r, || "concurrent write".into())).collect();
    for r in ingests {
        ok(r, || "concurrent ingest".into());
    }
    let mut ids: Vec<DescId> = ids.into_iter().map(|r| ok(r, || "concurrent allocate_ids(2)".into())).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..8).map(|i| FIRST_USER_ID + 2 * i).collect::<Vec<_>>(), "ids handed out concurrently");
    write_ts.sort_unstable();
    write_ts.dedup();
    assert_eq!(write_ts.len(), 8, "concurrent writes share a timestamp");
    let end = now(store).await;
    let shared =
        scan(store, Span::new(key("shared"), key("shared\0")), Timestamp::ZERO, end, MvccFilter::AllRevisions).await;
    let shared_ts: Vec<Timestamp> = shared.iter().map(|e| e.ts).rev().collect();
    assert_eq!(shared_ts, write_ts, "every concurrent write of one key is a version of it");
    for i in 0..8u32 {
        let span = keys::table_span(T + 1 + i);
        let rows = scan(store, span.clone(), Timestamp::ZERO, end, MvccFilter::AllRevisions).await;
        assert_eq!(rows.len(), 10, "rows of concurrent ingest {i}");
        assert!(
            rows.iter().all(|e| e.ts == rows[0].ts && e.value.as_deref() == Some(&[i as u8; 8][..])),
            "ingest {i}: {rows:?}"
        );
    }
}

/// Ids are consecutive, start at [`FIRST_USER_ID`], are never handed out twice, and the counter
/// lives at [`keys::ID_COUNTER_KEY`] as a big-endian u32 in the system span.
pub async fn id_allocation<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let mut next = FIRST_USER_ID;
    for count in [3u32, 1, 0, 2, 10] {
        let first = ok(store.allocate_ids(count).await, || format!("allocate_ids({count})"));
        assert_eq!(first, next, "allocate_ids({count}) after handing out ids below {next}");
        next += count;
    }
    let end = now(store).await;
    let system = ok(read_span(store, keys::system_span(), end).await, || "read of the system span".into());
    assert_eq!(system, vec![(keys::ID_COUNTER_KEY.to_vec(), next.to_be_bytes().to_vec())], "the system span");
}

/// Ingested pairs land at one timestamp above earlier writes and at or below `now()`.
pub async fn ingest<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let before = write(store, vec![put(&key("existing"), "x")]).await;
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..100)
        .map(|i| (keys::table_key(T + 1, format!("{i:03}").as_bytes()), format!("row {i}").into_bytes()))
        .collect();
    ok(store.ingest(pairs.clone().into()).await, || "ingest of 100 rows".into());
    let end = now(store).await;
    let rows = scan(store, keys::table_span(T + 1), Timestamp::ZERO, end, MvccFilter::AllRevisions).await;
    assert_eq!(rows.len(), 100, "versions after ingesting 100 rows");
    let ts = rows[0].ts;
    assert!(before < ts && ts <= end, "ingest at {ts} is not in (previous write {before}, now() {end}]");
    assert!(rows.iter().all(|e| e.ts == ts), "an ingested batch has one timestamp");
    let got: Vec<(Vec<u8>, Vec<u8>)> =
        rows.into_iter().map(|e| (e.key.to_vec(), e.value.unwrap_or_default().to_vec())).collect();
    assert_eq!(got, pairs, "ingested rows read back");
    let earlier = scan(store, keys::table_span(T + 1), Timestamp::ZERO, ts.prev(), MvccFilter::Latest).await;
    assert_entries(store, "the ingested span before the ingestion", &earlier, &[]);
}

/// Descriptors published together appear together at the returned timestamp, under their keys,
/// encoded with [`Descriptor::encode`]; deletes write tombstones; older catalogs stay readable.
pub async fn publish_is_atomic_and_visible<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    assert_eq!(ok(store.catalog().await, || "catalog()".into()), Catalog::default(), "a fresh store's catalog");
    assert!(ok(store.catalog().await, || "catalog()".into()).has_no_user_objects(), "a fresh store is empty");
    let descs = vec![database(100, "bank", 1), table(101, "accounts", 100, 1), table(102, "branches", 100, 1)];
    // As a restore does: the spans first, then the ingests, then the publish.
    let spans = [keys::table_span(101), keys::table_span(102)];
    ok(store.prepare_ingest(&spans).await, || "prepare_ingest of the tables' spans".into());
    ok(store.ingest(vec![(keys::table_key(101, b"alice"), b"10".to_vec())].into()).await, || "ingest".into());
    let ts = publish(store, descs.iter().cloned().map(DescriptorChange::Put).collect()).await;
    let at = |t: Timestamp| async move { ok(store.catalog_at(t).await, || format!("catalog_at({t})")) };
    assert_eq!(at(ts.prev()).await, Catalog::default(), "the catalog just before the publish");
    assert_eq!(at(ts).await, Catalog::from_descriptors(descs.clone()), "the catalog at the publish");
    assert_eq!(ok(store.catalog().await, || "catalog()".into()), Catalog::from_descriptors(descs.clone()), "catalog()");
    assert!(
        !ok(store.catalog().await, || "catalog()".into()).has_no_user_objects(),
        "a store with database bank is not empty"
    );
    let stored = scan(store, keys::descriptor_span(), Timestamp::ZERO, Timestamp::MAX, MvccFilter::AllRevisions).await;
    let expected: Vec<Entry> =
        descs.iter().map(|d| Entry::new(keys::descriptor_key(d.id()), ts, Some(d.encode()))).collect();
    assert_entries(store, "descriptor keys after one publish", &stored, &expected);

    let renamed = table(101, "accounts2", 100, 2);
    let ts2 = publish(store, vec![DescriptorChange::Delete(102), DescriptorChange::Put(renamed.clone())]).await;
    assert!(ts2 > ts, "second publish at {ts2} is not above the first at {ts}");
    assert_eq!(at(ts).await, Catalog::from_descriptors(descs.clone()), "the catalog at the first publish, later");
    assert_eq!(at(ts2).await, Catalog::from_descriptors([descs[0].clone(), renamed]), "after rename and drop");
    let dropped = scan(store, Span::prefix(&keys::descriptor_key(102)), Timestamp::ZERO, ts2, MvccFilter::Latest).await;
    assert_entries(
        store,
        "a deleted descriptor",
        &dropped,
        &[Entry::new(keys::descriptor_key(102), ts2, None::<Vec<u8>>)],
    );
}

/// The catalog at any time is the one the publishes up to then made.
pub async fn catalog_at_history<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    let steps: Vec<Vec<DescriptorChange>> = vec![
        vec![DescriptorChange::Put(database(100, "a", 1))],
        vec![DescriptorChange::Put(table(101, "t", 100, 1))],
        vec![DescriptorChange::Put(table(101, "t", 100, 2)), DescriptorChange::Put(database(102, "b", 1))],
        vec![DescriptorChange::Put(table(103, "u", 102, 1)), DescriptorChange::Delete(101)],
        vec![DescriptorChange::Delete(103), DescriptorChange::Delete(102)],
        vec![DescriptorChange::Put(table(101, "t", 100, 3))],
    ];
    let mut expected = vec![(Timestamp::ZERO, Catalog::default())];
    let mut catalog = Catalog::default();
    for changes in steps {
        for c in &changes {
            match c {
                DescriptorChange::Put(d) => catalog.insert(d.clone()),
                DescriptorChange::Delete(id) => {
                    catalog.databases.remove(id);
                    catalog.tables.remove(id);
                }
                DescriptorChange::SystemRow { .. } => {}
            }
        }
        // Unrelated writes between publishes must not disturb the catalog.
        write(store, vec![put(&key("noise"), "x")]).await;
        let ts = publish(store, changes).await;
        expected.push((ts, catalog.clone()));
    }
    for (i, (ts, catalog)) in expected.iter().enumerate() {
        let at = ok(store.catalog_at(*ts).await, || format!("catalog_at({ts})"));
        assert_eq!(&at, catalog, "the catalog after publish {i}");
        if let Some((next, _)) = expected.get(i + 1) {
            let before_next = ok(store.catalog_at(next.prev()).await, || format!("catalog_at({})", next.prev()));
            assert_eq!(&before_next, catalog, "the catalog just before publish {}", i + 1);
        }
    }
    assert_eq!(ok(store.catalog().await, || "catalog()".into()), expected.last().expect("steps").1, "catalog()");
}

/// `discard` removes every version in the spans, leaves everything else, and succeeds on spans
/// that hold nothing (or that are empty), again and again.
pub async fn discard<S: KvStore + ?Sized>(store: &S) {
    forget_writes(store);
    for i in 0..3 {
        let batch =
            (T..T + 3).flat_map(|t| [(keys::table_key(t, b"x"), Some(vec![i])), (keys::table_key(t, b"y"), None)]);
        write(store, batch.collect()).await;
    }
    publish(store, vec![DescriptorChange::Put(database(100, "keep", 1))]).await;
    let all_of =
        |span: Span| async move { scan(store, span, Timestamp::ZERO, Timestamp::MAX, MvccFilter::AllRevisions).await };
    let kept_before = (all_of(keys::table_span(T)).await, all_of(keys::table_span(T + 2)).await);
    let system_before = all_of(keys::system_span()).await;
    assert_eq!(all_of(keys::table_span(T + 1)).await.len(), 6, "versions in the span to discard");
    let spans = [
        keys::table_span(T + 1),
        keys::table_span(900),
        Span::new(keys::table_key(T, b"m"), keys::table_key(T, b"m")),
        Span::new(keys::table_key(T + 1, b"a"), keys::table_key(T + 1, b"z")),
    ];
    for attempt in 0..2 {
        ok(store.discard(&spans).await, || format!("discard, attempt {attempt}"));
        assert_entries(store, "the discarded span", &all_of(keys::table_span(T + 1)).await, &[]);
        let kept = (all_of(keys::table_span(T)).await, all_of(keys::table_span(T + 2)).await);
        assert_eq!(kept, kept_before, "spans next to the discarded one");
        assert_eq!(all_of(keys::system_span()).await, system_before, "the system span");
    }
    ok(store.discard(&[]).await, || "discard of no spans".into());
}

/// GC: the threshold is reported, raised never lowered, reads below it are refused with
/// [`Error::InvalidTime`], and reads at or above it see the same data as before.
///
/// `gc(threshold)` garbage-collects `store`; see [`run_all_with_gc`].
pub async fn gc_threshold<S, G, Fut>(store: &S, gc: G)
where
    S: KvStore + ?Sized,
    G: Fn(Timestamp) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    forget_writes(store);
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let span = keys::table_span(T);
    let t1 = write(store, vec![put(&a, "1"), put(&b, "1")]).await;
    let t2 = write(store, vec![put(&a, "2")]).await;
    let t3 = write(store, vec![del(&b)]).await;
    let t4 = write(store, vec![put(&a, "3"), put(&c, "1")]).await;
    let threshold = |what: &'static str| async move {
        ok(store.gc_threshold(&keys::table_span(T)).await, || format!("gc_threshold() {what}"))
    };
    assert!(threshold("before GC").await <= t1, "the GC threshold before any GC is above every write");
    ok(gc(t3).await, || format!("gc({t3})"));
    assert_eq!(threshold("after gc(t3)").await, t3, "the GC threshold after gc(t3)");
    let span_ref = &span;
    let refused = |start: Timestamp, end: Timestamp, filter: MvccFilter| async move {
        match store.scan(ScanRequest::new(span_ref.clone(), start, end, filter)).await {
            Err(Error::InvalidTime(message)) => {
                assert!(message.contains("GC threshold"), "the error should name the GC threshold: {message}")
            }
            other => panic!("scan in ({start}, {end}] {filter:?} below the GC threshold {t3}: {other:?}"),
        }
        // A change index must not answer below the threshold either.
        match store.scan_changes(ScanRequest::new(span_ref.clone(), start, end, filter)).await {
            Ok(None) | Err(Error::InvalidTime(_)) => {}
            other => panic!("scan_changes in ({start}, {end}] {filter:?} below the GC threshold {t3}: {other:?}"),
        }
    };
    refused(Timestamp::ZERO, t2, MvccFilter::Latest).await;
    refused(Timestamp::ZERO, t4, MvccFilter::AllRevisions).await;
    refused(t2, t4, MvccFilter::Latest).await;
    refused(t3.prev(), t4, MvccFilter::AllRevisions).await;
    assert!(store.catalog_at(t2).await.is_err(), "catalog_at below the GC threshold must fail");
    let span = keys::table_span(T);
    let at_threshold = scan(store, span.clone(), Timestamp::ZERO, t3, MvccFilter::Latest).await;
    assert_entries(store, "latest at the GC threshold", &at_threshold, &[entry(&a, t2, Some("2"))]);
    let latest = scan(store, span.clone(), Timestamp::ZERO, t4, MvccFilter::Latest).await;
    assert_entries(
        store,
        "latest above the GC threshold",
        &latest,
        &[entry(&a, t4, Some("3")), entry(&c, t4, Some("1"))],
    );
    let since = scan(store, span.clone(), t3, t4, MvccFilter::AllRevisions).await;
    assert_entries(
        store,
        "revisions since the GC threshold",
        &since,
        &[entry(&a, t4, Some("3")), entry(&c, t4, Some("1"))],
    );
    for filter in [MvccFilter::Latest, MvccFilter::AllRevisions] {
        let request = ScanRequest::new(span.clone(), t3, t4, filter);
        check_scan_changes(store, request, &|| format!("changes since the GC threshold, {filter:?}")).await;
    }
    ok(gc(t1).await, || format!("gc({t1})"));
    assert_eq!(threshold("after a lower gc(t1)").await, t3, "a lower GC must not lower the threshold");
    let t5 = write(store, vec![del(&a)]).await;
    ok(gc(t5).await, || format!("gc({t5})"));
    let at_t5 = scan(store, span, Timestamp::ZERO, t5, MvccFilter::Latest).await;
    assert_entries(store, "latest after gc at a deletion", &at_t5, &[entry(&c, t4, Some("1"))]);
}

// ---------------------------------------------------------------------------------------------
// The randomized model test.

/// Options of [`model`] and [`model_with_gc`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelOptions {
    /// Seed of the random history.
    pub seed: u64,
    /// Number of operations.
    pub steps: usize,
    /// Random scans compared after each operation.
    pub scans_per_step: usize,
    /// Whether pages must equal [`MemKv`]'s exactly (same entries, same `resume_key`). Without
    /// it only the contract is checked: pages end at key boundaries, `resume_key` lies after the
    /// page's keys and at or before the next page's, and the pages joined equal [`MemKv`]'s.
    pub exact_pages: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { seed: 0, steps: 120, scans_per_step: 3, exact_pages: true }
    }
}

impl ModelOptions {
    /// With this seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// With this many operations.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// With this many scans after each operation.
    pub fn with_scans_per_step(mut self, scans: usize) -> Self {
        self.scans_per_step = scans;
        self
    }

    /// Whether pages must equal [`MemKv`]'s exactly.
    pub fn with_exact_pages(mut self, exact: bool) -> Self {
        self.exact_pages = exact;
        self
    }
}

/// A seeded random history applied to `store` and to [`MemKv`], comparing every result modulo
/// timestamps. `store` must be fresh.
pub async fn model<S: KvStore + ?Sized>(store: &S, options: &ModelOptions) {
    model_impl(store, None::<fn(Timestamp) -> std::future::Ready<Result<()>>>, options).await;
}

/// [`model`] with garbage collections in the history; `gc(threshold)` garbage-collects `store`
/// (see [`run_all_with_gc`]).
pub async fn model_with_gc<S, G, Fut>(store: &S, gc: G, options: &ModelOptions)
where
    S: KvStore + ?Sized,
    G: Fn(Timestamp) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    model_impl(store, Some(gc), options).await;
}

/// SplitMix64: a small deterministic generator (core has no randomness of its own).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, X>(&mut self, xs: &'a [X]) -> &'a X {
        &xs[self.below(xs.len())]
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        (0..self.below(max_len + 1)).map(|_| self.next() as u8).collect()
    }
}

/// A point in the history, resolved to a timestamp separately in each store.
#[derive(Debug, Clone, Copy)]
enum Point {
    Zero,
    /// `now()` read after step `i` (step 0: before any operation).
    Now(usize),
    /// The timestamp step `i` returned.
    Write(usize),
    /// Just below it.
    BeforeWrite(usize),
}

/// A version of the model with its timestamp replaced by the step that wrote it: (key, step,
/// value).
type Mapped = (Vec<u8>, usize, Option<Vec<u8>>);

/// One store's view of the history.
struct Side<'a, S: ?Sized> {
    name: &'static str,
    store: &'a S,
    nows: Vec<Timestamp>,
    writes: Vec<Option<Timestamp>>,
}

impl<S: KvStore + ?Sized> Side<'_, S> {
    fn at(&self, p: Point) -> Timestamp {
        match p {
            Point::Zero => Timestamp::ZERO,
            Point::Now(i) => self.nows[i],
            Point::Write(i) => self.writes[i].expect("a step that wrote"),
            Point::BeforeWrite(i) => self.writes[i].expect("a step that wrote").prev(),
        }
    }

    /// The step that wrote a version at `ts`.
    fn step_of(&self, ts: Timestamp) -> usize {
        let step = self.nows.partition_point(|n| *n < ts);
        assert!(
            step > 0 && step < self.nows.len(),
            "{}: version at {ts} is outside the history (now() before the first step {}, last {:?})",
            self.name,
            self.nows[0],
            self.nows.last()
        );
        if let Some(w) = self.writes[step] {
            assert_eq!(
                ts, w,
                "{}: version written by step {step} is not at the timestamp that step returned",
                self.name
            );
        }
        step
    }

    fn mapped(&self, entries: &[Entry]) -> Vec<Mapped> {
        entries.iter().map(|e| (e.key.to_vec(), self.step_of(e.ts), e.value.as_deref().map(<[u8]>::to_vec))).collect()
    }

    /// A GC threshold as a point: `None` for zero, else the step whose write it is.
    fn threshold_step(&self, ts: Timestamp) -> Option<usize> {
        (!ts.is_zero()).then(|| self.writes.iter().position(|w| *w == Some(ts)).unwrap_or(usize::MAX))
    }
}

fn compare_results<A: PartialEq + Debug>(what: &dyn Fn() -> String, reference: Result<A>, subject: Result<A>) {
    match (reference, subject) {
        (Ok(r), Ok(s)) => assert_eq!(s, r, "{}: store under test (left) differs from MemKv (right)", what()),
        (Err(r), Err(s)) => assert_eq!(s.code(), r.code(), "{}: error kinds differ: {s} / MemKv: {r}", what()),
        (Ok(r), Err(s)) => panic!("{}: store under test failed: {s}; MemKv returned {r:?}", what()),
        (Err(r), Ok(s)) => panic!("{}: store under test returned {s:?}; MemKv failed: {r}", what()),
    }
}

fn random_descriptor(rng: &mut Rng, step: usize) -> DescriptorChange {
    let id = FIRST_USER_ID + rng.below(6) as DescId;
    let version = step as u64;
    match rng.below(5) {
        0 => DescriptorChange::Delete(id),
        1 | 2 => DescriptorChange::Put(database(id, &format!("db{}", rng.below(4)), version)),
        _ => DescriptorChange::Put(table(id, &format!("t{}", rng.below(4)), FIRST_USER_ID, version)),
    }
}

async fn model_impl<S, G, Fut>(store: &S, gc: Option<G>, options: &ModelOptions)
where
    S: KvStore + ?Sized,
    G: Fn(Timestamp) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let reference = MemKv::new();
    let mut rng = Rng(options.seed);
    let seed = options.seed;
    let user_keys: [&[u8]; 8] = [b"", b"\x00", b"a", b"a\x00", b"ab", b"b", b"k", b"\xff"];
    let tables: Vec<DescId> = (FIRST_USER_ID..FIRST_USER_ID + 4).collect();
    let mut universe: Vec<Vec<u8>> =
        tables.iter().flat_map(|t| user_keys.iter().map(|u| keys::table_key(*t, u))).collect();
    universe.extend([keys::system_key(b"x"), keys::system_key(b"y")]);
    let mut bounds: Vec<Vec<u8>> = vec![vec![], vec![0x01], vec![0xff], vec![0xff, 0xff]];
    for span in
        [keys::system_span(), keys::descriptor_span()].into_iter().chain(tables.iter().map(|t| keys::table_span(*t)))
    {
        bounds.extend([span.start, span.end]);
    }
    bounds.extend(universe.iter().cloned());
    bounds.extend(universe.iter().map(|k| [k.as_slice(), &[0]].concat()));
    bounds.push(keys::ID_COUNTER_KEY.to_vec());
    bounds.extend((FIRST_USER_ID..FIRST_USER_ID + 6).map(keys::descriptor_key));
    let random_span = |rng: &mut Rng| {
        let (a, b) = (rng.pick(&bounds).clone(), rng.pick(&bounds).clone());
        if a <= b {
            Span::new(a, b)
        } else {
            Span::new(b, a)
        }
    };

    let mut r = Side { name: "MemKv", store: &reference, nows: vec![], writes: vec![None] };
    let mut s = Side { name: "store under test", store, nows: vec![], writes: vec![None] };
    r.nows.push(now(r.store).await);
    s.nows.push(now(s.store).await);
    let mut points = vec![Point::Zero, Point::Now(0)];
    let mut write_steps: Vec<usize> = Vec::new();
    // What each step did, for failure messages ("written by step 7: write [...]").
    let mut ops: Vec<String> = vec!["(before the history)".to_string()];

    for step in 1..=options.steps {
        let roll = rng.below(100);
        let (op, rw, sw): (String, Option<Timestamp>, Option<Timestamp>) = if roll < 40 {
            let mut batch = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let k = if rng.chance(3) { keys::ID_COUNTER_KEY.to_vec() } else { rng.pick(&universe).clone() };
                let v = match (rng.chance(25), k == keys::ID_COUNTER_KEY) {
                    (true, _) => None,
                    (false, true) => Some((FIRST_USER_ID + rng.below(20) as u32).to_be_bytes().to_vec()),
                    (false, false) => Some(rng.bytes(12)),
                };
                batch.push((k, v));
            }
            let op = format!("write {}", show_batch(&batch));
            let rt = ok(r.store.write(batch.clone()).await, || format!("MemKv: {op}"));
            let st = ok(s.store.write(batch).await, || format!("seed {seed} step {step}: {op}"));
            (op, Some(rt), Some(st))
        } else if roll < 55 {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..1 + rng.below(6))
                .map(|_| (rng.pick(&universe[..universe.len() - 2]).clone(), rng.bytes(12)))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|a, b| a.0 == b.0);
            let shown: Vec<_> = pairs.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            let op = format!("ingest {}", show_batch(&shown));
            ok(r.store.ingest(pairs.clone().into()).await, || format!("MemKv: {op}"));
            ok(s.store.ingest(pairs.into()).await, || format!("seed {seed} step {step}: {op}"));
            (op, None, None)
        } else if roll < 70 {
            let changes: Vec<DescriptorChange> =
                (0..1 + rng.below(3)).map(|_| random_descriptor(&mut rng, step)).collect();
            let op = format!("publish {}", show_changes(&changes));
            let rt = ok(r.store.publish(changes.clone()).await, || format!("MemKv: {op}"));
            let st = ok(s.store.publish(changes).await, || format!("seed {seed} step {step}: {op}"));
            (op, Some(rt), Some(st))
        } else if roll < 78 {
            let count = rng.below(4) as u32;
            let op = format!("allocate_ids({count})");
            let rid = ok(r.store.allocate_ids(count).await, || format!("MemKv: {op}"));
            let sid = ok(s.store.allocate_ids(count).await, || format!("seed {seed} step {step}: {op}"));
            assert_eq!(sid, rid, "seed {seed} step {step}: {op}: store under test (left) differs from MemKv (right)");
            (op, None, None)
        } else if roll < 84 {
            let spans: Vec<Span> = (0..1 + rng.below(2)).map(|_| random_span(&mut rng)).collect();
            let op = format!("discard {}", show_spans(&spans));
            ok(r.store.discard(&spans).await, || format!("MemKv: {op}"));
            ok(s.store.discard(&spans).await, || format!("seed {seed} step {step}: {op}"));
            (op, None, None)
        } else if roll < 92 && gc.is_some() && !write_steps.is_empty() {
            // Thresholds only at write timestamps: both stores then order them the same way
            // against every point (now() may equal a write's timestamp in one store only).
            let at = *rng.pick(&write_steps[write_steps.len().saturating_sub(8)..]);
            let op = format!("gc at the write of step {at}");
            reference.gc(r.at(Point::Write(at)));
            let gc = gc.as_ref().expect("checked");
            ok(gc(s.at(Point::Write(at))).await, || format!("seed {seed} step {step}: {op}"));
            (op, None, None)
        } else {
            ("nothing".to_string(), None, None)
        };
        ops.push(op.clone());
        r.writes.push(rw);
        s.writes.push(sw);
        r.nows.push(now(r.store).await);
        s.nows.push(now(s.store).await);
        points.push(Point::Now(step));
        if rw.is_some() {
            write_steps.push(step);
            points.extend([Point::Write(step), Point::BeforeWrite(step)]);
            let (n0, w, n1) = (s.nows[step - 1], s.at(Point::Write(step)), s.nows[step]);
            assert!(
                n0 < w && w <= n1,
                "seed {seed} step {step}: {op}: written at {w}, not in (now() before {n0}, now() after {n1}]"
            );
        }
        let (n0, n1) = (s.nows[step - 1], s.nows[step]);
        assert!(n0 <= n1, "seed {seed} step {step}: now() went backwards from {n0} to {n1}");

        for scan_no in 0..options.scans_per_step {
            let span = random_span(&mut rng);
            let (mut p0, mut p1) = (*rng.pick(&points), *rng.pick(&points));
            if r.at(p0) > r.at(p1) || s.at(p0) > s.at(p1) {
                std::mem::swap(&mut p0, &mut p1);
            }
            let filter = if rng.chance(50) { MvccFilter::Latest } else { MvccFilter::AllRevisions };
            let target_bytes = *rng.pick(&[1u64, 3, 10, 25, 60, 1 << 20]);
            let what = || {
                format!(
                    "seed {seed} step {step} (after {op}) scan {scan_no}: {span} in ({p0:?}, {p1:?}] {filter:?}, \
                     pages of {target_bytes} bytes"
                )
            };
            let request = |side_start: Timestamp, side_end: Timestamp| ScanRequest {
                span: span.clone(),
                start: side_start,
                end: side_end,
                filter,
                target_bytes,
            };
            let rp = scan_pages(r.store, request(r.at(p0), r.at(p1))).await;
            let sp = scan_pages(s.store, request(s.at(p0), s.at(p1))).await;
            compare_pages(&what, &ops, &r, rp, &s, sp, options.exact_pages);
            check_scan_changes(r.store, request(r.at(p0), r.at(p1)), &what).await;
            check_scan_changes(s.store, request(s.at(p0), s.at(p1)), &what).await;
        }

        if rng.chance(30) {
            let p = *rng.pick(&points);
            let what = || format!("seed {seed} step {step} (after {op}): catalog_at({p:?})");
            compare_results(&what, r.store.catalog_at(r.at(p)).await, s.store.catalog_at(s.at(p)).await);
            let what = || format!("seed {seed} step {step} (after {op}): catalog()");
            compare_results(&what, r.store.catalog().await, s.store.catalog().await);
        }
        if gc.is_some() && rng.chance(20) {
            let span = random_span(&mut rng);
            let what = || format!("seed {seed} step {step} (after {op}): gc_threshold({span}) as a step");
            let rt = r.store.gc_threshold(&span).await.map(|t| r.threshold_step(t));
            let st = s.store.gc_threshold(&span).await.map(|t| s.threshold_step(t));
            compare_results(&what, rt, st);
        }
    }
}

fn compare_pages<S: KvStore + ?Sized>(
    what: &dyn Fn() -> String,
    ops: &[String],
    r: &Side<'_, MemKv>,
    reference: Result<Vec<ScanPage>>,
    s: &Side<'_, S>,
    subject: Result<Vec<ScanPage>>,
    exact: bool,
) {
    let (reference, subject) = match (reference, subject) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let a = a.map(|pages| pages.len());
            let b = b.map(|pages| pages.len());
            return compare_results(what, a, b);
        }
    };
    if exact {
        let mapped_r: Vec<_> = reference.iter().map(|p| (r.mapped(&p.entries), p.resume_key.clone())).collect();
        let mapped_s: Vec<_> = subject.iter().map(|p| (s.mapped(&p.entries), p.resume_key.clone())).collect();
        if let Some(page) = first_difference(&mapped_s, &mapped_r) {
            let (got, expected) = (mapped_s.get(page), mapped_r.get(page));
            let detail = match (got, expected) {
                (Some((g, g_resume)), Some((e, e_resume))) => match first_difference(g, e) {
                    Some(i) => format!(
                        "version {i} of the page:\n  got      {}\n  MemKv    {}",
                        show_mapped(ops, g.get(i)),
                        show_mapped(ops, e.get(i))
                    ),
                    None => format!(
                        "its resume_key:\n  got      {}\n  MemKv    {}",
                        show_resume(g_resume.as_deref()),
                        show_resume(e_resume.as_deref())
                    ),
                },
                (g, e) => format!(
                    "the number of pages: got {}, MemKv {}{}",
                    mapped_s.len(),
                    mapped_r.len(),
                    if g.is_none() {
                        ""
                    } else if e.is_none() {
                        " (the store under test goes on)"
                    } else {
                        ""
                    }
                ),
            };
            panic!("{}: the pages differ from MemKv's first at page {page}, {detail}", what());
        }
        return;
    }
    let mut last_key: Option<&[u8]> = None;
    for (i, page) in subject.iter().enumerate() {
        if let (Some(prev), Some(first)) = (last_key, page.entries.first()) {
            assert!(&first.key[..] > prev, "{}: page {i} starts inside or before the previous page's last key", what());
        }
        if let Some(last) = page.entries.last() {
            last_key = Some(&last.key[..]);
        }
        if let (Some(resume), Some(last)) = (&page.resume_key, page.entries.last()) {
            assert!(resume[..] > last.key[..], "{}: page {i}'s resume_key is not after its last key", what());
        }
        if let (Some(resume), Some(first)) = (&page.resume_key, subject.get(i + 1).and_then(|p| p.entries.first())) {
            assert!(resume <= &first.key, "{}: page {i}'s resume_key is after the next page's first key", what());
        }
    }
    let joined_r: Vec<Entry> = reference.into_iter().flat_map(|p| p.entries).collect();
    let joined_s: Vec<Entry> = subject.into_iter().flat_map(|p| p.entries).collect();
    let (mapped_s, mapped_r) = (s.mapped(&joined_s), r.mapped(&joined_r));
    if let Some(i) = first_difference(&mapped_s, &mapped_r) {
        panic!(
            "{}: the versions differ from MemKv's first at version {i} of the scan:\n  got      {}\n  MemKv    {}",
            what(),
            show_mapped(ops, mapped_s.get(i)),
            show_mapped(ops, mapped_r.get(i))
        );
    }
}

/// A version of the model as failure messages show it: its key, the step that wrote it and
/// what that step did, its value.
fn show_mapped(ops: &[String], version: Option<&Mapped>) -> String {
    match version {
        None => "(nothing: the page ends here)".to_string(),
        Some((key, step, value)) => format!(
            "{} = {}, written by step {step}: {}",
            keys::pretty_key(key),
            show_value(value.as_deref()),
            ops.get(*step).map_or("?", String::as_str)
        ),
    }
}

fn show_resume(key: Option<&[u8]>) -> String {
    key.map_or("None (the scan ends)".to_string(), keys::pretty_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::IngestBatch;
    use futures::executor::block_on;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn memkv_passes_the_model_with_contract_only_paging() {
        block_on(async {
            for seed in 100..105 {
                let kv = MemKv::new();
                let gc = |t| {
                    kv.gc(t);
                    std::future::ready(Ok(()))
                };
                let options = ModelOptions::default().with_seed(seed).with_exact_pages(false);
                model_with_gc(&kv, gc, &options).await;
            }
        });
    }

    /// A MemKv whose pages pass through `scan` (a plausible bug, or the identity), and which
    /// answers `scan_changes` (for `start > ZERO`) with its own `scan` page passed through
    /// `changes`, if set: a correct change index when `changes` is the identity.
    struct Altered {
        kv: MemKv,
        scan: fn(ScanPage) -> ScanPage,
        changes: Option<fn(ScanPage) -> ScanPage>,
    }

    fn identity(page: ScanPage) -> ScanPage {
        page
    }

    /// A MemKv with a change index whose pages pass through `alter`.
    fn with_changes(kv: MemKv, alter: fn(ScanPage) -> ScanPage) -> Altered {
        Altered { kv, scan: identity, changes: Some(alter) }
    }

    /// A MemKv whose scans leave deletions out: a plausible bug.
    fn no_tombstones() -> Altered {
        let scan = |mut page: ScanPage| {
            page.entries.retain(|e| e.value.is_some());
            page
        };
        Altered { kv: MemKv::new(), scan, changes: None }
    }

    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl KvSource for Altered {
        async fn now(&self) -> Result<Timestamp> {
            self.kv.now().await
        }
        async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
            Ok((self.scan)(self.kv.scan(request).await?))
        }
        async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
            self.kv.gc_threshold(span).await
        }
        async fn scan_changes(&self, request: ScanRequest) -> Result<Option<ScanPage>> {
            match self.changes {
                Some(alter) if !request.start.is_zero() => Ok(Some(alter(self.kv.scan(request).await?))),
                _ => Ok(None),
            }
        }
    }
    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl KvSink for Altered {
        async fn allocate_ids(&self, count: u32) -> Result<DescId> {
            self.kv.allocate_ids(count).await
        }
        async fn ingest(&self, batch: IngestBatch) -> Result<()> {
            self.kv.ingest(batch).await
        }
        async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
            self.kv.publish(changes).await
        }
        async fn discard(&self, spans: &[Span]) -> Result<()> {
            self.kv.discard(spans).await
        }
    }
    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl KvStore for Altered {
        async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
            self.kv.write(batch).await
        }
    }

    #[test]
    fn a_store_whose_scan_changes_equals_scan_passes() {
        block_on(async {
            let store = with_changes(MemKv::new(), |page| page);
            assert!(scan_changes_matches_scan(&store).await > 100, "the fast path answers most checks");
            for seed in 0..3 {
                model(&with_changes(MemKv::new(), |page| page), &ModelOptions::default().with_seed(seed)).await;
            }
            let kv = MemKv::new();
            let store = with_changes(kv.clone(), |page| page);
            let gc = |t| {
                kv.gc(t);
                std::future::ready(Ok(()))
            };
            gc_threshold(&store, gc).await;
        });
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "differs from scan's")]
    fn the_suite_catches_scan_changes_that_ends_a_page_without_resume_key() {
        let store = with_changes(MemKv::new(), |mut page| {
            page.resume_key = None;
            page
        });
        block_on(scan_changes_matches_scan(&store));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "differs from scan's")]
    fn the_model_catches_scan_changes_that_drops_tombstones() {
        let store = with_changes(MemKv::new(), |mut page| {
            page.entries.retain(|e| e.value.is_some());
            page
        });
        block_on(model(&store, &ModelOptions::default()));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "written by step")]
    fn the_model_catches_a_store_that_drops_tombstones() {
        block_on(model(&no_tombstones(), &ModelOptions::default()));
    }

    /// A failure names the first differing version by its readable key, and the operation of the
    /// check that wrote it.
    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "expected /Table/200/\"b\" @ ")]
    fn a_failed_check_shows_the_first_difference_readably() {
        block_on(scan_latest_and_revisions(&no_tombstones()));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "= (deleted); written by: write [delete /Table/200/\"b\"]")]
    fn a_failed_check_names_the_write_of_a_version() {
        block_on(scan_latest_and_revisions(&no_tombstones()));
    }
}
