//! A real `strata` process killed (SIGKILL) in the middle of a backup, then the same statement
//! run again: it resumes from its `BACKUP-PLAN` and done records, the files finished before the kill are not
//! written again, and the backup restores exactly.

#![cfg(unix)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod cli_support;
use std::time::{Duration, Instant};

use strata_core::{read_run, FileCodec, RunState, StorageOpener, MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR};
use strata_native::NativeOpener;

/// The run a backup directory holds (its plan and done records), read as strata reads it.
fn run_in(dir: &Path) -> Option<RunState> {
    let storage = NativeOpener::new(dir.to_path_buf()).open(&format!("file://{}", dir.display())).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(read_run(storage.as_ref(), &FileCodec::plain()))
}

fn strata(store: &Path, args: &[&str]) -> Output {
    cli_support::strata(store, args).ok().out
}

fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
    out
}

/// Every file below `dir`.
fn find_all(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find_all(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether process `pid` is stopped (state `T` in `/proc/<pid>/stat`).
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
}

/// A file's identity and content: (inode, mtime in ns, bytes).
type Fingerprint = (u64, i128, Vec<u8>);

fn fingerprint(path: &Path) -> Fingerprint {
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128, std::fs::read(path).unwrap())
}

#[test]
fn a_killed_backup_resumes_without_rewriting_finished_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("source");
    strata(&store, &["workload", "init", "bank", "--rows", "20000"]);
    let statement = "BACKUP INTO 'nodelocal://1/c'";
    let collection = store.join("extern/c");

    // The CLI's fault-injection hook freezes the process (SIGSTOP) once it has stored and
    // recorded its first data file; it is killed there (SIGKILL), mid-backup, every time.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(&store)
        .args(["sql", statement])
        .env_remove("STRATA_STORE")
        .env("STRATA_BACKUP_STOP_AFTER_FILES", "1")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !stopped(child.id()) {
        assert!(child.try_wait().unwrap().is_none(), "the backup ended before its first file was recorded");
        assert!(Instant::now() < deadline, "the backup did not stop after its first file");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (dir, checkpoint) = find(&collection, PLAN_NAME)
        .into_iter()
        .find_map(|p| {
            let dir = p.parent().unwrap().to_path_buf();
            let c = run_in(&dir)?;
            (c.files().count() > 0).then_some((dir, c))
        })
        .expect("a done record names the finished file");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(find(&collection, MANIFEST_NAME).is_empty(), "killed before the manifest");
    let finished: Vec<(PathBuf, Fingerprint)> =
        checkpoint.files().map(|f| dir.join(&f.path)).map(|p| (p.clone(), fingerprint(&p))).collect();
    assert!(!finished.is_empty());
    // What object_store's LocalFileSystem leaves of a put killed mid-way: its staging file
    // (the kill above may or may not have hit one; this one is certain).
    let staging = dir.join(format!("data/{}-000000-0123456789abcdef-1-0099.sst#1", checkpoint.plan.file_prefix()));
    std::fs::write(&staging, b"half a file").unwrap();

    // The same statement again: it resumes in the same directory with the same end time.
    std::thread::sleep(Duration::from_millis(20)); // a rewrite would show in the mtime
    let out = String::from_utf8(strata(&store, &["--format", "json", "sql", statement]).stdout).unwrap();
    let shown = dir.strip_prefix(&collection).unwrap().display().to_string();
    assert!(out.contains(&format!("\"path\": \"/{shown}\"")), "{out}");
    assert!(out.contains(&format!("\"end_time\": \"{}\"", checkpoint.plan.end_time)), "{out}");
    for (path, before) in &finished {
        assert!(fingerprint(path) == *before, "{} was rewritten", path.display());
    }
    assert!(find(&collection, PLAN_NAME).is_empty(), "the plan is removed at the end");
    let staged = find_all(&collection).into_iter().filter(|p| p.to_string_lossy().contains('#')).collect::<Vec<_>>();
    assert!(staged.is_empty(), "staging files of killed puts are left: {staged:?}");
    assert!(
        !dir.join(PROGRESS_DIR).exists() || std::fs::read_dir(dir.join(PROGRESS_DIR)).unwrap().next().is_none(),
        "so are the done records"
    );
    assert_eq!(find(&collection, MANIFEST_NAME).len(), 1);
    let written = find_all(&dir.join("data")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "sst")).count();
    assert!(
        written > finished.len(),
        "the resumed run wrote files too ({written} in all, {} before the kill)",
        finished.len()
    );

    // It restores exactly: a fresh store sharing the collection.
    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(store.join("extern"), target.join("extern")).unwrap();
    strata(&target, &["sql", "RESTORE FROM LATEST IN 'nodelocal://1/c'"]);
    for table in ["bank.customers", "bank.accounts"] {
        let want = strata(&store, &["scan", table]).stdout;
        let got = strata(&target, &["scan", table]).stdout;
        assert!(!want.is_empty());
        assert!(got == want, "{table} differs after restore");
    }
}
