//! restic on the same logical data as strata: each table exported to one file, backed up, backed up
//! again after the same change, restored, and the restore compared with the export byte for byte.
//!
//! ```text
//!  source store ──scan page by page──▶ export/bank/<table>.tsv   (untimed; `user key \t value \n`)
//!  restic backup export/ ──▶ restic-repo/        (repository format 2, compression auto)
//!  (1% change) ──▶ changed tables re-exported ──▶ restic backup export/ again (restic rescans)
//!  restic restore latest ──▶ restic-restore/…/export/bank/*.tsv ══ export/bank/*.tsv ?
//! ```
//!
//! Each restic command's peak RSS comes from `wait4`'s `rusage` (see [`Restic::run`] for why restic
//! is started through `sh`); its password travels in `RESTIC_PASSWORD` only, never on a command
//! line or in an error.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use serde::Deserialize;
use strata_core::Executor;

use super::{scan_table, Table};

/// The restic binary's name on `PATH`.
const RESTIC: &str = "restic";
/// Lines of restic's stderr an error quotes.
const STDERR_TAIL_LINES: usize = 20;
/// The `sh -c` script that starts restic (`$0 $@`) for [`Restic::run`]: a background subshell,
/// its stdin `/dev/null` and its output in files, blocks on fd 3 (the script's stdin) until
/// `Restic::run` closes it, then execs restic; the script prints the subshell's pid and exits.
/// The subshell waits so that `sh` cannot reap it: restic could otherwise finish first.
const RELAY: &str = r#"exec 3<&0 </dev/null
{ read -r go <&3; exec "$0" "$@" 3<&-; } >"$STRATA_BENCH_STDOUT" 2>"$STRATA_BENCH_STDERR" &
echo "$!""#;
/// Bytes of each file read at a time when comparing a restore with the export.
const COMPARE_CHUNK: usize = 1 << 20;

/// Finds `restic` in the directories of `path_var` (the value of `PATH`), or says how to get it.
pub(super) fn locate(path_var: Option<&OsStr>) -> anyhow::Result<PathBuf> {
    let found = path_var.into_iter().flat_map(std::env::split_paths).map(|d| d.join(RESTIC)).find(|p| is_executable(p));
    match found {
        Some(p) => Ok(p),
        None => bail!(
            "restic is not on PATH: install it (`apt-get install restic`, Debian's restic 0.14 or later) \
             or pass --no-restic to skip the comparison with restic"
        ),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One restic repository in the bench's working directory, with its cache beside it (never in
/// `~/.cache`). `Debug` leaves out the password.
#[derive(Clone)]
pub(super) struct Restic {
    bin: PathBuf,
    /// The directory holding the repository, the cache and restic's output files.
    dir: PathBuf,
    /// The repository directory.
    pub(super) repo: PathBuf,
    /// restic's cache directory (`--cache-dir`).
    pub(super) cache: PathBuf,
    password: String,
    /// The first line of `restic version`.
    pub(super) version: String,
}

impl std::fmt::Debug for Restic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restic")
            .field("bin", &self.bin)
            .field("dir", &self.dir)
            .field("repo", &self.repo)
            .field("cache", &self.cache)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What one restic command did.
#[derive(Debug, Clone)]
pub(super) struct Run {
    /// Wall-clock seconds from spawning restic to reaping it.
    pub(super) seconds: f64,
    /// restic's own peak RSS (`ru_maxrss`), in MiB.
    pub(super) peak_rss_mib: f64,
    stdout: Vec<u8>,
}

/// The summary line of `restic backup --json` (restic 0.14's fields; `data_added` counts bytes
/// before compression).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct BackupSummary {
    pub(super) files_new: u64,
    pub(super) files_changed: u64,
    pub(super) files_unmodified: u64,
    pub(super) data_added: u64,
    pub(super) total_bytes_processed: u64,
}

impl Restic {
    /// A repository at `<dir>/restic-repo` (not created yet) with its cache at
    /// `<dir>/restic-cache`, using the restic at `bin`.
    pub(super) fn new(bin: PathBuf, dir: &Path, password: String) -> anyhow::Result<Restic> {
        let (repo, cache) = (dir.join("restic-repo"), dir.join("restic-cache"));
        let mut restic = Restic { bin, dir: dir.to_path_buf(), repo, cache, password, version: String::new() };
        let run = restic.run(&["version"])?;
        restic.version = String::from_utf8_lossy(&run.stdout).lines().next().unwrap_or_default().trim().to_string();
        Ok(restic)
    }

    /// `restic init --repository-version 2`: restic 0.14's default ("stable") is format 1, which
    /// has no compression; format 2 compresses (`--compression auto`, restic's default for it).
    pub(super) fn init(&self) -> anyhow::Result<Run> {
        self.run(&["init", "--repository-version", "2"])
    }

    /// `restic backup --json -q <dir>` and its summary.
    pub(super) fn backup(&self, dir: &Path) -> anyhow::Result<(Run, BackupSummary)> {
        let run = self.run(&[OsStr::new("backup"), OsStr::new("--json"), OsStr::new("-q"), dir.as_os_str()])?;
        let summary = String::from_utf8_lossy(&run.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message_type"] == "summary")
            .context("`restic backup --json` printed no summary line")?;
        let summary: BackupSummary =
            serde_json::from_value(summary).context("`restic backup --json` printed an unexpected summary")?;
        Ok((run, summary))
    }

    /// `restic restore latest --target <target>` (restic recreates the backed-up absolute paths
    /// under `target`).
    pub(super) fn restore_latest(&self, target: &Path) -> anyhow::Result<Run> {
        self.run(&[
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            target.as_os_str(),
            OsStr::new("-q"),
        ])
    }

    /// Runs `restic -r <repo> --cache-dir <cache> <args>`, its password in the environment and no
    /// other `RESTIC_*` variable, and measures its time and its own peak RSS.
    ///
    /// restic is not spawned by this process directly: a program exec'd from a child of this
    /// process inherits this process's peak RSS as its own `ru_maxrss` (exec records the replaced
    /// memory map's high-water mark), so every restic command would report the bench's peak.
    /// Instead `sh` runs [`RELAY`]: it forks a subshell (a fresh fork of a small process) that
    /// waits, prints its pid and exits; this process, a child subreaper, adopts the subshell, then
    /// lets it exec restic and reaps it with `wait4`, whose `rusage` is restic's own. The time
    /// runs from that go to the reaping. restic's stdout and stderr go to files in a scratch
    /// directory in `dir`.
    fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Run> {
        let mut argv: Vec<OsString> =
            vec!["-r".into(), self.repo.clone().into(), "--cache-dir".into(), self.cache.clone().into()];
        argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        let shown = std::iter::once(self.bin.as_os_str())
            .chain(argv.iter().map(OsString::as_os_str))
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        become_child_subreaper().context("cannot adopt restic's process to measure its peak RSS")?;
        let scratch = tempfile::Builder::new()
            .prefix("restic-output-")
            .tempdir_in(&self.dir)
            .with_context(|| format!("cannot create a directory in {}", self.dir.display()))?;
        let (out_path, err_path) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(RELAY)
            .arg(&self.bin)
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("RESTIC_") {
                command.env_remove(name);
            }
        }
        command
            .env("RESTIC_PASSWORD", &self.password)
            .env("STRATA_BENCH_STDOUT", &out_path)
            .env("STRATA_BENCH_STDERR", &err_path);

        let mut sh = command.spawn().with_context(|| format!("cannot run `{shown}` (through /bin/sh)"))?;
        // Held until `sh` is reaped: the background subshell waits for its end of file.
        let go = sh.stdin.take();
        let sh = sh.wait_with_output().with_context(|| format!("cannot wait for /bin/sh starting `{shown}`"))?;
        let pid = String::from_utf8_lossy(&sh.stdout).trim().parse::<libc::pid_t>().ok().filter(|p| *p > 0);
        let Some(pid) = pid.filter(|_| sh.status.success()) else {
            bail!(
                "cannot start `{shown}`: /bin/sh {}, printed {:?}, stderr: {}",
                sh.status,
                String::from_utf8_lossy(&sh.stdout),
                String::from_utf8_lossy(&sh.stderr)
            );
        };
        // `sh` is gone: its subshell is this process's child now. Let it exec restic.
        let started = Instant::now();
        drop(go);
        let waited = wait_with_peak_rss(pid);
        let seconds = started.elapsed().as_secs_f64();
        let (status, peak_rss_mib) = waited.with_context(|| format!("cannot wait for `{shown}` (pid {pid})"))?;
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read restic's output {}", p.display()));
        let stdout = read(&out_path)?;
        if !status.success() {
            let stderr = read(&err_path)?;
            let stderr = String::from_utf8_lossy(&stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
            bail!("`{shown}` failed ({status}; RESTIC_PASSWORD set in its environment); its stderr ends:\n{tail}");
        }
        Ok(Run { seconds, peak_rss_mib, stdout })
    }
}

/// Makes this process adopt its orphaned descendants (`PR_SET_CHILD_SUBREAPER`), once.
#[allow(unsafe_code)]
fn become_child_subreaper() -> std::io::Result<()> {
    static DONE: std::sync::OnceLock<Result<(), i32>> = std::sync::OnceLock::new();
    let result = DONE.get_or_init(|| {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory of ours.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        }
    });
    result.map_err(std::io::Error::from_raw_os_error)
}

/// Reaps the child `pid` with `wait4`, returning its exit status and its peak RSS in MiB.
#[allow(unsafe_code)]
fn wait_with_peak_rss(pid: libc::pid_t) -> std::io::Result<(ExitStatus, f64)> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers and `timeval`s, for which all-zero bytes
    // are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are live, writable and of the types `wait4` writes; `pid` is
        // an adopted child of this process that nothing else waits for.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    // `ru_maxrss` is in KiB on Linux.
    Ok((ExitStatus::from_raw(status), usage.ru_maxrss as f64 / 1024.0))
}

/// The export file of `table` in `dir`: `<dir>/<table>.tsv`.
pub(super) fn export_path(dir: &Path, table: Table) -> PathBuf {
    dir.join(format!("{}.tsv", table.name()))
}

/// What exporting tables wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Exported {
    /// Rows written.
    pub(super) rows: u64,
    /// Their logical bytes as the store holds them (table-prefixed key + value), as strata counts.
    pub(super) logical_bytes: u64,
    /// Bytes of the files.
    pub(super) file_bytes: u64,
}

/// Writes each of `tables` of `exec`'s store to [`export_path`] in `dir` (created if missing,
/// files replaced), one line per row: the user key, a tab, the value, a newline. It streams, a
/// scan page at a time, and refuses keys or values the format could not tell apart.
pub(super) async fn export_tables(exec: &Executor, dir: &Path, tables: &[Table]) -> anyhow::Result<Exported> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut total = Exported::default();
    for &table in tables {
        let path = export_path(dir, table);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let write_error = |e: std::io::Error| anyhow::Error::new(e).context(format!("cannot write {}", path.display()));
        scan_table(exec, table, |key, user_key, value| {
            let shown = || String::from_utf8_lossy(user_key).into_owned();
            let Some(value) = value else { bail!("bank.{} holds a deletion of key {}", table.name(), shown()) };
            ensure!(
                !user_key.iter().any(|b| matches!(b, b'\t' | b'\n')) && !value.contains(&b'\n'),
                "bank.{} key {} has a tab or newline the export format cannot hold",
                table.name(),
                shown()
            );
            out.write_all(user_key).map_err(write_error)?;
            out.write_all(b"\t").map_err(write_error)?;
            out.write_all(value).map_err(write_error)?;
            out.write_all(b"\n").map_err(write_error)?;
            total.rows += 1;
            total.logical_bytes += (key.len() + value.len()) as u64;
            total.file_bytes += (user_key.len() + value.len() + 2) as u64;
            Ok(())
        })
        .await?;
        let file = out.into_inner().map_err(|e| write_error(e.into_error()))?;
        file.sync_all().map_err(write_error)?;
    }
    Ok(total)
}

/// Checks that the directory `restored` holds exactly the files of `expected`, each byte for byte
/// the same (streamed, never held whole); returns how many files it compared. Errors name the file.
pub(super) fn verify_restored(expected: &Path, restored: &Path) -> anyhow::Result<u64> {
    let names = |dir: &Path| -> anyhow::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            names.push(entry.with_context(|| format!("cannot list {}", dir.display()))?.file_name());
        }
        names.sort();
        Ok(names)
    };
    let (want, got) = (names(expected)?, names(restored)?);
    if let Some(missing) = want.iter().find(|n| !got.contains(n)) {
        bail!("restic's restore lacks {}", restored.join(missing).display());
    }
    if let Some(extra) = got.iter().find(|n| !want.contains(n)) {
        bail!("restic's restore holds {}, which the export does not", restored.join(extra).display());
    }
    for name in &want {
        let (a, b) = (expected.join(name), restored.join(name));
        if let Some(offset) = first_difference(&a, &b)? {
            bail!("restic's restore of {} differs from the export {} from byte {offset} on", b.display(), a.display());
        }
    }
    Ok(want.len() as u64)
}

/// The offset of the first byte where the files differ (a shorter file differs at its end), or
/// `None` if they are identical.
fn first_difference(a: &Path, b: &Path) -> anyhow::Result<Option<u64>> {
    let open = |p: &Path| File::open(p).map(BufReader::new).with_context(|| format!("cannot open {}", p.display()));
    let (mut ra, mut rb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; COMPARE_CHUNK], vec![0u8; COMPARE_CHUNK]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut ra, &mut ba).with_context(|| format!("cannot read {}", a.display()))?;
        let nb = read_full(&mut rb, &mut bb).with_context(|| format!("cannot read {}", b.display()))?;
        if let Some(i) = ba[..na.min(nb)].iter().zip(&bb[..na.min(nb)]).position(|(x, y)| x != y) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + na.min(nb) as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += na as u64;
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::super::{open, Engine};
    use super::*;
    use strata_core::keys;

    /// The export writes `key \t value \n` per row in key order, and the verification catches a
    /// restored file with a flipped byte, a truncated or extended one, a missing and an extra one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_format_and_restore_verification() {
        let tmp = tempfile::tempdir().unwrap();
        let exec = open(&tmp.path().join("store"), Engine::Redb).unwrap();
        for stmt in ["CREATE DATABASE bank", "CREATE TABLE bank.customers", "CREATE TABLE bank.accounts"] {
            exec.execute(stmt).await.unwrap();
        }
        let id = exec.table_id("bank", "customers", None).await.unwrap();
        let rows: [(&[u8], &[u8]); 3] =
            [(b"00000002", br#"{"name":"b"}"#), (b"00000000", br#"{"name":"a"}"#), (b"00000011", br#"{"x":[1,2]}"#)];
        let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            rows.iter().map(|(k, v)| (keys::table_key(id, k), Some(v.to_vec()))).collect();
        batch.sort();
        exec.store().write(batch).await.unwrap();

        let dir = tmp.path().join("export");
        let exported = export_tables(&exec, &dir, &Table::ALL).await.unwrap();
        let text = std::fs::read_to_string(export_path(&dir, Table::Customers)).unwrap();
        assert_eq!(text, "00000000\t{\"name\":\"a\"}\n00000002\t{\"name\":\"b\"}\n00000011\t{\"x\":[1,2]}\n");
        assert_eq!(std::fs::read(export_path(&dir, Table::Accounts)).unwrap(), b"");
        let prefix = keys::table_key(id, b"").len() as u64;
        let stored: u64 = rows.iter().map(|(k, v)| prefix + (k.len() + v.len()) as u64).sum();
        assert_eq!(exported, Exported { rows: 3, logical_bytes: stored, file_bytes: text.len() as u64 });

        let copy = |to: &Path| {
            std::fs::create_dir_all(to).unwrap();
            for t in Table::ALL {
                std::fs::copy(export_path(&dir, t), export_path(to, t)).unwrap();
            }
        };
        let restored = tmp.path().join("restored");
        copy(&restored);
        assert_eq!(verify_restored(&dir, &restored).unwrap(), 2);

        let customers = export_path(&restored, Table::Customers);
        let mut bytes = std::fs::read(&customers).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&customers, &bytes).unwrap();
        let err = verify_restored(&dir, &restored).unwrap_err().to_string();
        assert!(err.contains("customers.tsv") && err.contains("from byte 20 on"), "{err}");

        bytes[20] ^= 1;
        for (len, at) in [(bytes.len() - 1, bytes.len() - 1), (bytes.len() + 1, bytes.len())] {
            let mut b = bytes.clone();
            b.resize(len, b'\n');
            std::fs::write(&customers, &b).unwrap();
            let err = verify_restored(&dir, &restored).unwrap_err().to_string();
            assert!(err.contains("customers.tsv") && err.contains(&format!("from byte {at} on")), "{err}");
        }
        std::fs::write(&customers, &bytes).unwrap();
        verify_restored(&dir, &restored).unwrap();

        std::fs::write(restored.join("stray.tsv"), b"").unwrap();
        let err = verify_restored(&dir, &restored).unwrap_err().to_string();
        assert!(err.contains("stray.tsv"), "{err}");
        std::fs::remove_file(restored.join("stray.tsv")).unwrap();
        std::fs::remove_file(export_path(&restored, Table::Accounts)).unwrap();
        let err = verify_restored(&dir, &restored).unwrap_err().to_string();
        assert!(err.contains("lacks") && err.contains("accounts.tsv"), "{err}");
    }

    #[test]
    fn a_missing_restic_says_how_to_get_it() {
        let empty = tempfile::tempdir().unwrap();
        let err = locate(Some(empty.path().as_os_str())).unwrap_err().to_string();
        assert!(err.contains("apt-get install restic") && err.contains("--no-restic"), "{err}");
        assert!(locate(None).is_err());

        let bin = empty.path().join(RESTIC);
        std::fs::write(&bin, b"#!/bin/sh\n").unwrap();
        assert!(locate(Some(empty.path().as_os_str())).is_err(), "a file that is not executable is no restic");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), empty.path()]).unwrap();
        assert_eq!(locate(Some(&path)).unwrap(), bin);
    }

    /// A failing restic command errors with its command line and stderr, never its password.
    #[test]
    fn a_failing_command_shows_its_stderr_not_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fake-restic");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho \"restic 9.9\"\n[ \"$5\" = version ] && exit 0\necho \"no repo at $2\" >&2\nexit 3\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = "pw-3b1f-not-for-output".to_string();
        let restic = Restic::new(bin, dir.path(), secret.clone()).unwrap();
        assert_eq!(restic.version, "restic 9.9");
        assert!(!format!("{restic:?}").contains(&secret));
        let err = format!("{:#}", restic.init().unwrap_err());
        assert!(err.contains("fake-restic -r") && err.contains("init --repository-version 2"), "{err}");
        assert!(err.contains("exit status: 3") && err.contains("no repo at"), "{err}");
        assert!(!err.contains(&secret), "{err}");
    }

    /// A restic command's peak RSS is its own, not this (larger) process's: spawned directly, a
    /// child reports its parent's high-water mark as its own `ru_maxrss`.
    #[test]
    fn the_peak_rss_is_restics_own() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fake-restic");
        std::fs::write(&bin, "#!/bin/sh\necho \"restic 9.9\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Raise this process's peak well above a shell's.
        let mut big = vec![0u8; 256 << 20];
        for i in (0..big.len()).step_by(4096) {
            big[i] = 1;
        }
        std::hint::black_box(&big);
        drop(big);
        let restic = Restic::new(bin, dir.path(), "pw".into()).unwrap();
        let run = restic.run(&["version"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), "restic 9.9\n");
        assert!(run.peak_rss_mib > 0.0 && run.peak_rss_mib < 64.0, "{} MiB", run.peak_rss_mib);
        if let Some(own) = super::super::vm_hwm_mib() {
            assert!(own > 256.0, "{own} MiB");
        }
    }
}
