//! The CLI as a new user met it (issue 17 §5): `| head`, JSON output, DDL confirmations, where
//! results go, readable times, and `bytes` that agree.

use std::path::Path;
use std::process::{Command, Stdio};

use super::super::cli_support::{sql, strata};
use super::json;

/// Runs `strata --store STORE ARGS…` with standard output a pipe whose reader is already gone
/// (what `| head` leaves once it has its lines): every write fails with a broken pipe.
fn with_closed_stdout(store: &Path, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("STRATA_STORE")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    child.wait_with_output().expect("wait for strata")
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "20"]).ok();
    for args in [
        &["scan", "bank.accounts"][..],
        &["--format", "json", "scan", "bank.accounts"],
        &["get", "bank.accounts", "0000000001"],
        &["now"],
        &["sql", "SHOW DATABASES"],
        &["--format", "json", "sql", "SHOW TABLES"],
    ] {
        let out = with_closed_stdout(&store, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: nothing on stderr: {stderr}");
    }
}

#[test]
fn json_keeps_column_order_and_every_read_command_honours_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    // DDL in table form prints its command, as CockroachDB's shell does.
    assert_eq!(sql(&store, "CREATE DATABASE d").ok().stdout(), "CREATE DATABASE\n");
    assert_eq!(sql(&store, "CREATE TABLE d.t").ok().stdout(), "CREATE TABLE\n");
    assert_eq!(strata(&store, &["--format", "json", "sql", "CREATE TABLE d.u"]).ok().stdout(), "[]\n");
    strata(&store, &["put", "d.t", "b", "two\u{1b}"]).ok();
    strata(&store, &["put", "d.t", "a", "one"]).ok();

    let out = strata(&store, &["--format", "json", "sql", "SHOW TABLES FROM d"]).ok().stdout();
    let order: Vec<usize> = ["database_name", "table_name"].iter().map(|k| out.find(k).unwrap()).collect();
    assert!(order[0] < order[1], "keys in column order, not sorted: {out}");
    // Sorted keys would put `rows` before `status`.
    let out = strata(&store, &["--format", "json", "sql", "BACKUP DATABASE d INTO 'nodelocal://1/c'"]).ok().stdout();
    assert!(out.find("\"status\"").unwrap() < out.find("\"rows\"").unwrap(), "{out}");

    let scanned = strata(&store, &["--format", "json", "scan", "d.t"]).ok().stdout();
    let scanned: serde_json::Value = serde_json::from_str(&scanned).unwrap();
    assert_eq!(scanned, serde_json::json!([{"key": "a", "value": "one"}, {"key": "b", "value": "two\u{1b}"}]));
    let got = strata(&store, &["--format", "json", "get", "d.t", "b"]).ok().stdout();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap(),
        serde_json::json!([{"key": "b", "value": "two\u{1b}"}])
    );
    // The table form stays what scripts read: the value, escaped for a terminal.
    assert_eq!(strata(&store, &["get", "d.t", "b"]).ok().stdout(), "two\\x1b\n");
    assert_eq!(strata(&store, &["scan", "d.t"]).ok().stdout(), "a\tone\nb\ttwo\\x1b\n");
    // From a backup too.
    let from = ["--format", "json", "scan", "d.t", "--from", "nodelocal://1/c", "--in", "LATEST"];
    let from_backup: serde_json::Value = serde_json::from_str(&strata(&store, &from).ok().stdout()).unwrap();
    assert_eq!(from_backup, scanned, "the backup holds the same rows");
    let from = ["--format", "json", "get", "d.t", "a", "--from", "nodelocal://1/c", "--in", "LATEST"];
    let got: serde_json::Value = serde_json::from_str(&strata(&store, &from).ok().stdout()).unwrap();
    assert_eq!(got, serde_json::json!([{"key": "a", "value": "one"}]));

    let now = strata(&store, &["--format", "json", "now"]).ok().stdout();
    let now: serde_json::Value = serde_json::from_str(&now).unwrap();
    let decimal = now[0]["now"].as_str().unwrap();
    assert!(decimal.parse::<strata_core::Timestamp>().is_ok(), "{now}");
    assert!(now[0]["time"].as_str().unwrap().ends_with("+00:00"), "{now}");
}

#[test]
fn workload_init_and_verify_print_their_result_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let run = strata(&store, &["workload", "init", "bank", "--rows", "10"]).ok();
    assert!(run.stdout().starts_with("workload bank: 10 accounts, 1 customers"), "{}", run.stdout());
    assert!(run.stderr().is_empty(), "{}", run.stderr());
    sql(&store, "BACKUP INTO 'nodelocal://1/c'").ok();
    let run = strata(&store, &["verify", "nodelocal://1/c"]).ok();
    assert!(run.stdout().contains("backup layers: no problems"), "{}", run.stdout());
    assert!(run.stderr().is_empty(), "{}", run.stderr());
}

/// Whether `s` looks like `2026-12-06 19:38:34.123456+00:00` (fraction optional).
fn is_utc_time(s: &str) -> bool {
    let Some(rest) = s.strip_suffix("+00:00") else { return false };
    let (secs, frac) = rest.split_once('.').unwrap_or((rest, "1"));
    secs.len() == 19
        && secs.as_bytes()[10] == b' '
        && !frac.is_empty()
        && frac.len() <= 6
        && !frac.ends_with('0')
        && frac.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn times_read_as_cockroachdb_shows_them_and_bytes_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "30"]).ok();
    let full = json(&store, "BACKUP DATABASE bank INTO 'nodelocal://1/c'");
    strata(&store, &["put", "bank.accounts", "zz", "new"]).ok();
    let inc = json(&store, "BACKUP DATABASE bank INTO LATEST IN 'nodelocal://1/c'");
    let shown = json(&store, "SHOW BACKUP FROM LATEST IN 'nodelocal://1/c'");
    let rows = shown.as_array().unwrap();
    assert_eq!(rows.len(), 6, "{shown}");
    for (row, backup) in rows[..3].iter().map(|r| (r, &full)).chain(rows[3..].iter().map(|r| (r, &inc))) {
        let end = row["end_time"].as_str().unwrap();
        assert!(is_utc_time(end), "{row}");
        // The exact time is there too, the one BACKUP returned.
        assert_eq!(row["end_time_decimal"], backup[0]["end_time"], "{row}");
        let decimal: strata_core::Timestamp = row["end_time_decimal"].as_str().unwrap().parse().unwrap();
        assert_eq!(decimal.to_utc_string(), end);
    }
    // A full backup has no start time (CockroachDB: NULL); an incremental starts where the full ended.
    assert!(rows[..3].iter().all(|r| r["start_time"].is_null()), "{shown}");
    assert!(rows[3..].iter().all(|r| r["start_time"] == rows[0]["end_time"]), "{shown}");

    // bytes: BACKUP's, SHOW BACKUP's size_bytes and RESTORE's are one figure (keys and values).
    let layer_bytes = |layer: &[serde_json::Value]| layer.iter().filter_map(|r| r["size_bytes"].as_u64()).sum::<u64>();
    assert_eq!(full[0]["bytes"].as_u64().unwrap(), layer_bytes(&rows[..3]), "{full} {shown}");
    assert_eq!(inc[0]["bytes"].as_u64().unwrap(), layer_bytes(&rows[3..]), "{inc} {shown}");
    assert!(full[0]["stored_bytes"].as_u64().unwrap() > 0, "{full}");
    let target = tmp.path().join("t");
    let restore = format!(
        "RESTORE DATABASE bank FROM LATEST IN 'file://{}' AS OF SYSTEM TIME {}",
        store.join("extern/c").display(),
        full[0]["end_time"].as_str().unwrap()
    );
    let restored = json(&target, &restore);
    assert_eq!(restored[0]["bytes"], full[0]["bytes"], "{restored} {full}");
}
