//! The storage conformance suite against `ObjectStorage` over local files (`file://`,
//! `nodelocal://`) and object_store's in-memory store (`memory://`), and `NativeOpener`'s URI
//! handling.

use std::sync::Arc;

use bytes::Bytes;
use strata_core::conformance::storage::{self as suite, Capabilities};
use strata_core::{Error, ExternalStorage, ExternalStorageExt, StorageOpener};
use strata_native::{NativeOpener, ObjectStorage};

/// A fresh directory and an opener whose nodelocal root lives in it.
fn setup() -> (tempfile::TempDir, NativeOpener) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opener = NativeOpener::new(dir.path().join("nodelocal"));
    (dir, opener)
}

fn file_storage(dir: &tempfile::TempDir, opener: &NativeOpener) -> Arc<dyn ExternalStorage> {
    let uri = format!("file://{}/backups/file", dir.path().display());
    opener.open(&uri).unwrap_or_else(|e| panic!("open {uri}: {e}"))
}

fn nodelocal_storage(_dir: &tempfile::TempDir, opener: &NativeOpener) -> Arc<dyn ExternalStorage> {
    opener.open("nodelocal://1/backups/node").expect("open nodelocal")
}

fn memory_storage(_dir: &tempfile::TempDir, opener: &NativeOpener) -> Arc<dyn ExternalStorage> {
    opener.open("memory://conformance/some/dir").expect("open memory")
}

/// Runs every check of the suite on `storage`, and prints what ran and what was skipped.
async fn run_all(storage: &dyn ExternalStorage) {
    println!("{}", suite::run_all(storage, &Capabilities::all()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_storage_passes_the_suite() {
    let (dir, opener) = setup();
    run_all(file_storage(&dir, &opener).as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodelocal_storage_passes_the_suite() {
    let (dir, opener) = setup();
    run_all(nodelocal_storage(&dir, &opener).as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_passes_the_suite() {
    let (dir, opener) = setup();
    run_all(memory_storage(&dir, &opener).as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_without_fsync() {
    let (dir, opener) = setup();
    let opener = opener.with_fsync(false);
    run_all(file_storage(&dir, &opener).as_ref()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn run_all_on_a_current_thread_runtime() {
    let (dir, opener) = setup();
    run_all(nodelocal_storage(&dir, &opener).as_ref()).await;
}

#[tokio::test]
async fn a_storage_rooted_in_a_subdirectory_passes_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let storage = ObjectStorage::new(Arc::new(store), "file:///somewhere").with_root("sub/dir").unwrap();
    run_all(&storage).await;
    assert_eq!(storage.root(), "sub/dir/");
    // Everything was cleaned up, temporary files included.
    let left: Vec<_> = walk(dir.path());
    assert!(left.iter().all(|p| !p.is_file()), "files left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[tokio::test]
async fn nodelocal_and_file_map_to_directories() {
    let (dir, opener) = setup();
    let root = dir.path().join("nodelocal");
    for uri in ["nodelocal://1/a/b", "nodelocal://self/a/b", "NODELOCAL://SELF/a//b/", "nodelocal://1/a/%62"] {
        let s = opener.open(uri).unwrap_or_else(|e| panic!("open {uri}: {e}"));
        s.put("x/y", Bytes::from(uri.to_string())).await.unwrap();
        assert_eq!(std::fs::read(root.join("a/b/x/y")).unwrap(), uri.as_bytes(), "{uri} writes under <root>/a/b");
        assert_eq!(s.describe(), uri);
    }
    // The path part may be empty.
    let s = opener.open("nodelocal://1").unwrap();
    assert_eq!(s.get("a/b/x/y").await.unwrap(), Bytes::from_static(b"nodelocal://1/a/%62"));
    let s = opener.open("nodelocal://self/").unwrap();
    assert_eq!(s.size("a/b/x/y").await.unwrap(), 19);

    let file_uri = format!("file://{}/f/g?COCKROACH_LOCALITY=default", dir.path().display());
    let s = opener.open(&file_uri).unwrap();
    s.put("obj", Bytes::from_static(b"file")).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("f/g/obj")).unwrap(), b"file");
    // Every query value is hidden where a URI is shown (errors, descriptions): issue 13 §2.
    assert_eq!(s.describe(), file_uri.replace("=default", "=redacted"));
    let err = s.get("nope").await.unwrap_err();
    assert_eq!(err.to_string(), format!("file not found: file://{}/f/g/nope", dir.path().display()));

    // Opening and reading create nothing (a missing file names the missing directory); the first
    // write creates the directory; deleting the last object removes empty subdirectories but
    // keeps the URI's directory.
    let s = opener.open("nodelocal://1/fresh/dir").unwrap();
    assert!(s.list("").await.unwrap().is_empty());
    assert!(s.list_with_delimiter("").await.unwrap().objects.is_empty());
    s.delete("nope").await.unwrap();
    let err = s.get("LATEST").await.unwrap_err();
    let shown = root.join("fresh/dir");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("file not found: nodelocal://1/fresh/dir/LATEST (the directory {} does not exist)", shown.display())
    );
    assert!(!root.join("fresh").exists());
    assert_eq!(opener.local_dir("nodelocal://1/fresh/dir"), Some(shown));
    s.put("deep/er/obj", Bytes::new()).await.unwrap();
    s.delete("deep/er/obj").await.unwrap();
    assert!(!root.join("fresh/dir/deep").exists());
    assert!(root.join("fresh/dir").is_dir());
}

#[tokio::test]
async fn local_writes_leave_whole_files_only() {
    let (dir, opener) = setup();
    let s = opener.open("nodelocal://1/atomic").unwrap();
    s.put("data/1.sst", Bytes::from(vec![7; 3 << 20])).await.unwrap();
    s.put_volatile("data/2.sst", Bytes::from(vec![1; 1000])).await.unwrap();
    s.put_if_absent("data/3.sst", Bytes::from_static(b"x")).await.unwrap();
    assert!(matches!(s.put_if_absent("data/3.sst", Bytes::new()).await, Err(Error::AlreadyExists { .. })));
    // Each write went through a temporary `<name>#<n>`, renamed or linked into place.
    let data = dir.path().join("nodelocal/atomic/data");
    let mut names: Vec<String> =
        std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["1.sst", "2.sst", "3.sst"]);
    assert_eq!(std::fs::read(data.join("1.sst")).unwrap().len(), 3 << 20);
    assert_eq!(std::fs::read(data.join("3.sst")).unwrap(), b"x");
}

#[tokio::test]
async fn memory_stores_are_shared_by_name() {
    let (_dir, opener) = setup();
    let a = opener.open("memory://shared/x").unwrap();
    a.put("obj", Bytes::from_static(b"1")).await.unwrap();
    let root = opener.open("memory://shared").unwrap();
    assert_eq!(root.list("").await.unwrap(), [strata_core::ObjectMeta { path: "x/obj".into(), size: 1 }]);
    assert_eq!(opener.clone().open("memory://shared/x/").unwrap().get("obj").await.unwrap(), "1");
    let other = opener.open("memory://other/x").unwrap();
    assert!(matches!(other.get("obj").await, Err(Error::NotFound { .. })));
    assert_eq!(a.describe(), "memory://shared/x");
    assert_eq!(a.get("missing").await.unwrap_err().to_string(), "file not found: memory://shared/x/missing");
    assert!(format!("{opener:?}").ends_with("memory_stores: [\"other\", \"shared\"] }"), "{opener:?}");
    // A fresh opener has fresh stores.
    let fresh = setup().1.open("memory://shared/x").unwrap();
    assert!(fresh.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_paths_are_invalid_arguments() {
    let (_dir, opener) = setup();
    let s = opener.open("memory://paths").unwrap();
    for bad in ["", "/abs", "dir/", "a//b", "a/../b", "./a", "a\u{1}b"] {
        let err = s.put(bad, Bytes::new()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "put({bad:?}): {err:?}");
        assert!(matches!(s.get(bad).await, Err(Error::InvalidArgument { .. })), "get({bad:?})");
    }
    for bad in ["/", "/a", "a//", "../x"] {
        assert!(matches!(s.list(bad).await, Err(Error::InvalidArgument { .. })), "list({bad:?})");
    }
}

fn open_err(opener: &NativeOpener, uri: &str) -> Error {
    match opener.open(uri) {
        Ok(s) => panic!("open({uri:?}) should fail, opened {}", s.describe()),
        Err(e) => e,
    }
}

#[test]
fn unsupported_schemes() {
    let (_dir, opener) = setup();
    for (uri, scheme) in
        [("ftp://host/path", "ftp"), ("sftp://u:hunter2@host/p", "sftp"), ("userfile://defaultdb/x", "userfile")]
    {
        let err = open_err(&opener, uri);
        assert_eq!(err, Error::NotSupported { feature: format!("{scheme} storage") }, "{uri}");
        assert_eq!(err.to_string(), format!("{scheme} storage is not supported yet"));
        assert!(!format!("{err:?}").contains("hunter2"));
    }
}

#[test]
fn malformed_uris_say_what_is_wrong() {
    let (_dir, opener) = setup();
    for (uri, expected) in [
        ("backups/x", "'backups/x': it has no scheme: expected a URI such as nodelocal://1/backups or file:///var/backups"),
        ("nodelocal:/1/x", "'nodelocal:/1/x': \"nodelocal:\" is not followed by \"//\": expected a URI such as nodelocal://1/backups or file:///var/backups"),
        ("1nodelocal://1/x", "'1nodelocal://1/x': \"1nodelocal\" is not a URI scheme"),
        ("nodelocal://1/my dir", "'nodelocal://1/my dir': it contains the character ' '; percent-encode it"),
        ("nodelocal:///x", "'nodelocal:///x': nodelocal URIs name a node: nodelocal://1/path or nodelocal://self/path"),
        ("nodelocal://2/x", "'nodelocal://2/x': node 2 does not exist: this process is node 1 (use nodelocal://1/ or nodelocal://self/)"),
        ("nodelocal://node/x", "'nodelocal://node/x': the node of a nodelocal URI is a node number or 'self', not \"node\""),
        ("nodelocal://1:26257/x", "'nodelocal://1:26257/x': nodelocal URIs take no port"),
        ("nodelocal://1/a/../../etc", "'nodelocal://1/a/../../etc': the path may not contain \"..\" segments"),
        ("nodelocal://1/a/%2e%2e/etc", "'nodelocal://1/a/%2e%2e/etc': the path may not contain \"..\" segments"),
        ("nodelocal://1/a%2Fb", "'nodelocal://1/a%2Fb': the path segment \"a%2Fb\" decodes to '/' or a control character"),
        ("nodelocal://1/x#frag", "'nodelocal://1/x#frag': '#' starts a fragment, which storage URIs do not have; percent-encode it as %23"),
        ("file://otherhost/x", "'file://otherhost/x': file URIs name a local directory (file:///abs/path), not one on host \"otherhost\""),
        ("memory:///x", "'memory:///x': a memory URI names its store: memory://name/path"),
        ("memory://m/x?FOO=1", "'memory://m/x?FOO=redacted': unknown parameter \"FOO\" for memory storage (it takes COCKROACH_LOCALITY)"),
        ("file:///tmp/x?COCKROACH_LOCALITY=default&AUTH=implicit", "'file:///tmp/x?COCKROACH_LOCALITY=redacted&AUTH=implicit': unknown parameter \"AUTH\" for file storage (it takes COCKROACH_LOCALITY)"),
        ("memory://m/x?COCKROACH_LOCALITY=default&cockroach_locality=default", "'memory://m/x?COCKROACH_LOCALITY=redacted&cockroach_locality=redacted': the parameter cockroach_locality is given twice"),
    ] {
        let err = open_err(&opener, uri);
        assert_eq!(
            err,
            Error::InvalidArgument { what: "storage URI".into(), message: expected.into() },
            "open({uri:?})"
        );
        assert_eq!(err.to_string(), format!("invalid storage URI: {expected}"));
    }
}

#[test]
fn secrets_never_reach_errors() {
    let (_dir, opener) = setup();
    for uri in [
        "nodelocal://1/x?AWS_SECRET_ACCESS_KEY=hunter2",
        "nodelocal://1/x?aws_secret_access_key=hunter2&FOO=bar",
        "nodelocal://1/x?AWS%5FSECRET%5FACCESS%5FKEY=hunter2",
        "nodelocal://user:hunter2@1/x",
        "memory://m/x?CREDENTIALS=hunter2",
        "file:///tmp/x?AZURE_ACCOUNT_KEY=hunter2",
        "s3://b/p?AWS_SECRET_ACCESS_KEY=hunter2",
        "nodelocal://1/bad path?AWS_SECRET_ACCESS_KEY=hunter2",
        "no-scheme?AWS_SECRET_ACCESS_KEY=hunter2",
        "user:hunter2@host/x",
        "nodelocal:user:hunter2@1/x?KEY=hunter2",
    ] {
        let err = open_err(&opener, uri);
        assert!(!err.to_string().contains("hunter2"), "open({uri:?}) leaked the secret: {err}");
        assert!(!format!("{err:?}").contains("hunter2"), "open({uri:?}) leaked the secret: {err:?}");
    }
    let err = open_err(&opener, "nodelocal://1/x?AWS_SECRET_ACCESS_KEY=hunter2");
    assert_eq!(
        err.to_string(),
        "invalid storage URI: 'nodelocal://1/x?AWS_SECRET_ACCESS_KEY=redacted': unknown parameter \
         \"AWS_SECRET_ACCESS_KEY\" for nodelocal storage (it takes COCKROACH_LOCALITY)"
    );
}

#[tokio::test]
async fn object_storage_redacts_its_uri() {
    let storage = ObjectStorage::new(
        Arc::new(object_store::memory::InMemory::new()),
        "s3://bucket/backups?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=hunter2",
    );
    assert_eq!(storage.describe(), "s3://bucket/backups?AWS_ACCESS_KEY_ID=redacted&AWS_SECRET_ACCESS_KEY=redacted");
    assert!(!format!("{storage:?}").contains("hunter2"));
    let err = storage.get("data/1.sst").await.unwrap_err();
    assert_eq!(err, Error::NotFound { what: "file".into(), name: "s3://bucket/backups/data/1.sst".into() });
    storage.put("obj", Bytes::from_static(b"abc")).await.unwrap();
    let err = storage.get_range("obj", 1..4).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid range: 1..4 is outside s3://bucket/backups/obj (3 bytes)");
    let err = storage.put_if_absent("obj", Bytes::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "file already exists: s3://bucket/backups/obj");
}

#[tokio::test]
async fn storage_errors_carry_status_and_location() {
    // A file where a directory is needed: a permanent storage error naming the location.
    let (dir, opener) = setup();
    let s = opener.open(&format!("file://{}/st", dir.path().display())).unwrap();
    s.put("file", Bytes::from_static(b"x")).await.unwrap();
    let err = s.put("file/child", Bytes::new()).await.unwrap_err();
    match &err {
        Error::Storage { path, status, message } => {
            assert_eq!(path, &format!("file://{}/st/file/child", dir.path().display()));
            assert_eq!(*status, strata_core::Status::Permanent);
            assert!(message.starts_with("put failed: "), "{message}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
}
