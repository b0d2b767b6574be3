//! Odd input (issue 13 §7): unparsable detached destinations, terminal controls in backup
//! metadata, read-only commands on missing paths, a layer whose manifest is gone, statements too
//! long for one argument.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::cli_support::{sql, strata, Run};

mod new_user;

/// The first line of what a failed run printed on standard error.
fn error_line(run: &Run) -> String {
    assert!(!run.out.status.success(), "strata {:?} should have failed: {}", run.args, run.stdout());
    run.stderr().lines().next().unwrap_or_default().to_string()
}

fn json(store: &Path, statement: &str) -> serde_json::Value {
    let out = strata(store, &["--format", "json", "sql", statement]).ok().stdout();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{statement}: not JSON ({e}): {out:?}"))
}

#[test]
fn detached_backups_check_their_destination_before_queuing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    sql(&store, "CREATE DATABASE d").ok();
    for uri in [
        "nodeloal://1/c",
        "%%%",
        "nodelocal://1/c?%zz",
        "nodelocal://1/c?A=1&A=2",
        "nodelocal://7/c",
        "s3://b/p",
        "gopher://host/c",
    ] {
        for statement in [format!("BACKUP INTO '{uri}'"), format!("BACKUP DATABASE d TO '{uri}'")] {
            let run = sql(&store, &statement);
            let detached = sql(&store, &format!("{statement} WITH detached"));
            assert_eq!(error_line(&detached), error_line(&run), "{statement} WITH detached fails as it would run");
        }
    }
    let bad_layer = "BACKUP DATABASE d TO 'nodelocal://1/inc' INCREMENTAL FROM 'nodeloal://1/full' WITH detached";
    sql(&store, bad_layer).fails_with("nodeloal storage is not supported");
    assert_eq!(json(&store, "SHOW JOBS"), serde_json::json!([]), "no job was recorded");

    // A valid destination is queued, and checking it created nothing.
    let queued = json(&store, "BACKUP INTO 'nodelocal://1/later' WITH detached");
    assert_eq!(queued[0]["status"], "pending", "{queued}");
    assert!(!store.join("extern").exists(), "checking the destination wrote nothing");
}

/// Names with terminal controls: ESC sequences (clear screen, set the title), BEL, CR, newline,
/// a C1 CSI and a right-to-left override.
const HOSTILE_DB: &str = "ev\x1b[2J\x1b]0;owned\x07il\rfake\nrow";
const HOSTILE_TABLE: &str = "t\x1b[31m\u{9b}1m\u{202e}gpj.exe";

#[test]
fn terminal_controls_in_names_are_escaped_in_tables_and_valid_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let (db, table) = (format!("\"{HOSTILE_DB}\""), format!("\"{HOSTILE_TABLE}\""));
    sql(&store, &format!("CREATE DATABASE {db}")).ok();
    sql(&store, &format!("CREATE TABLE {db}.{table}")).ok();
    sql(&store, &format!("BACKUP DATABASE {db} INTO 'nodelocal://1/c'")).ok();
    for (statement, rows) in [
        ("SHOW DATABASES".to_string(), 1),
        (format!("SHOW TABLES FROM {db}"), 1),
        ("SHOW BACKUP LATEST IN 'nodelocal://1/c'".to_string(), 2),
    ] {
        let out = sql(&store, &statement).ok().stdout();
        let raw: Vec<char> = out.chars().filter(|c| (c.is_control() && *c != '\n') || *c == '\u{202e}').collect();
        assert!(raw.is_empty(), "{statement}: raw controls {raw:?} in {out:?}");
        assert_eq!(out.lines().count(), rows + 3, "{statement}: header, rule, one line per row, count: {out}");
        assert!(out.contains("ev\\x1b[2J\\x1b]0;owned\\x07il\\rfake\\nrow"), "{statement}: {out}");
        // JSON escapes them (serde) and keeps the names exact.
        let v = json(&store, &statement);
        let text = v.to_string();
        assert!(!text.contains('\x1b') && !text.contains('\x07') && !text.contains('\r'), "{text}");
        assert!(v.as_array().unwrap().iter().any(|r| r["database_name"] == HOSTILE_DB), "{v}");
    }
    let show = json(&store, "SHOW BACKUP LATEST IN 'nodelocal://1/c'");
    assert!(show.as_array().unwrap().iter().any(|r| r["table_name"] == HOSTILE_TABLE), "{show}");
    // Rows read back are escaped like non-UTF-8 bytes: one line per row, no raw controls.
    let qualified = format!("{HOSTILE_DB}.{HOSTILE_TABLE}");
    strata(&store, &["put", &qualified, "k\x1b[2J\n", "v\x07\r\u{9b}"]).ok();
    assert_eq!(strata(&store, &["scan", &qualified]).ok().stdout(), "k\\x1b[2J\\n\tv\\x07\\r\\u{9b}\n");
    assert_eq!(strata(&store, &["get", &qualified, "k\x1b[2J\n"]).ok().stdout(), "v\\x07\\r\\u{9b}\n");
    // Errors naming them are escaped too.
    let run = strata(&store, &["scan", &format!("{HOSTILE_DB}.nope")]);
    let err = run.stderr();
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(err.contains("ev\\x1b[2J"), "{err}");
}

#[test]
fn read_only_commands_on_missing_paths_create_nothing_and_say_where_they_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    sql(&store, "CREATE DATABASE d").ok();
    let ext = store.join("extern");
    let note = |name: &str| {
        format!("note: nodelocal://1/{name} is the directory {} (it does not exist)", ext.join(name).display())
    };
    let cases = [
        ("m1", vec!["sql", "RESTORE DATABASE d FROM LATEST IN 'nodelocal://1/m1' WITH new_db_name = 'e'"]),
        ("m2", vec!["sql", "RESTORE FROM 'nodelocal://1/m2'"]),
        ("m3", vec!["sql", "SHOW BACKUP LATEST IN 'nodelocal://1/m3'"]),
        ("m4", vec!["sql", "SHOW BACKUP 'nodelocal://1/m4'"]),
        // The place it looked in is the dated subdirectory.
        ("m5/2026/11/23-101500.00", vec!["sql", "SHOW BACKUP '2026/11/23-101500.00' IN 'nodelocal://1/m5'"]),
        ("m6", vec!["verify", "nodelocal://1/m6"]),
        ("m7", vec!["verify", "nodelocal://1/m7", "--in", "LATEST"]),
        (
            "m8",
            vec!["sql", "RESTORE DATABASE d FROM 'nodelocal://1/m8', 'nodelocal://1/m8/inc' WITH new_db_name = 'e'"],
        ),
    ];
    for (name, args) in &cases {
        let run = strata(&store, args).fails_with(&format!("nodelocal://1/{name}"));
        assert!(run.stderr().contains(&note(name)), "{args:?}: {}", run.stderr());
    }
    // SHOW BACKUPS of a collection that does not exist is an error naming where it looked
    // (issue 17 §5), and prints no table.
    let run = strata(&store, &["sql", "SHOW BACKUPS IN 'nodelocal://1/m9'"])
        .fails_with("backup collection not found: nodelocal://1/m9 (nothing is stored there");
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    assert!(run.stderr().contains(&note("m9")), "{}", run.stderr());
    // file:// URIs name their directory themselves.
    let missing = tmp.path().join("no/such/dir");
    let file = format!("file://{}", missing.display());
    sql(&store, &format!("RESTORE FROM LATEST IN '{file}'")).fails_with(&file);
    sql(&store, &format!("SHOW BACKUP '{file}'")).fails_with(&file);
    strata(&store, &["verify", &file]).fails_with(&file);
    sql(&store, &format!("SHOW BACKUPS IN '{file}'")).fails_with(&file);
    assert!(!ext.exists(), "nothing was created under {}", ext.display());
    assert!(!tmp.path().join("no").exists(), "nothing was created for {file}");
}

#[test]
fn a_layer_without_its_manifest_is_skipped_with_a_warning_and_a_row() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s");
    let coll = format!("file://{}", tmp.path().join("c").display());
    sql(&s, "CREATE DATABASE d").ok();
    sql(&s, "CREATE TABLE d.t").ok();
    strata(&s, &["put", "d.t", "a", "1"]).ok();
    sql(&s, &format!("BACKUP DATABASE d INTO '{coll}'")).ok();
    strata(&s, &["put", "d.t", "b", "2"]).ok();
    sql(&s, &format!("BACKUP DATABASE d INTO LATEST IN '{coll}'")).ok();
    strata(&s, &["put", "d.t", "c", "3"]).ok();
    sql(&s, &format!("BACKUP DATABASE d INTO LATEST IN '{coll}'")).ok();
    let latest = std::fs::read_to_string(tmp.path().join("c/LATEST")).unwrap();
    let full = tmp.path().join("c").join(latest.trim().trim_start_matches('/'));
    let mut layers: Vec<_> = walk(&full.join("incrementals"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "BACKUP_MANIFEST"))
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    layers.sort();
    assert_eq!(layers.len(), 2);
    std::fs::remove_file(layers[1].join("BACKUP_MANIFEST")).unwrap();
    let dir = layers[1].strip_prefix(&full).unwrap().display().to_string();

    let target = tmp.path().join("t");
    let run = sql(&target, &format!("RESTORE DATABASE d FROM LATEST IN '{coll}'")).ok();
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "warning: skipped the incremental layer {coll}{latest}/{dir}: it holds",
            latest = latest.trim()
        )) && err.contains("but no BACKUP_MANIFEST (lost or deleted?); without it the chain ends at"),
        "{err}"
    );
    assert_eq!(super::scan(&target, "d.t"), "a\t1\nb\t2\n", "the previous layer's time, as the warning says");

    let show = json(&s, &format!("SHOW BACKUP LATEST IN '{coll}'"));
    let kinds: Vec<&str> = show.as_array().unwrap().iter().map(|r| r["backup_type"].as_str().unwrap()).collect();
    let skipped = format!("skipped (no BACKUP_MANIFEST): {dir}");
    assert_eq!(kinds.last().copied(), Some(skipped.as_str()), "{show}");
    let run = sql(&s, &format!("SHOW BACKUP LATEST IN '{coll}'")).ok();
    assert!(run.stderr().contains("warning: skipped the incremental layer"), "{}", run.stderr());

    // A layer directory with a run's plan is a run in progress (or killed), not a lost manifest.
    std::fs::write(layers[1].join("BACKUP-PLAN"), b"plan").unwrap();
    let run = sql(&s, &format!("SHOW BACKUP LATEST IN '{coll}'")).ok();
    assert!(run.stderr().contains("a backup run that has not finished"), "{}", run.stderr());
    assert!(run.stdout().contains(&format!("skipped (unfinished): {dir}")), "{}", run.stdout());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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

#[test]
fn statements_come_from_a_file_or_standard_input() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    // Past what one argument may hold (128 KiB on Linux): padding and a comment.
    let big = |name: &str| format!("CREATE DATABASE {name}\n-- {}\n{};", "x".repeat(300 << 10), " ".repeat(10 << 10));
    assert!(big("a").len() > 256 << 10);
    let file = tmp.path().join("statement.sql");
    std::fs::write(&file, big("from_file")).unwrap();
    strata(&store, &["sql", "-f", file.to_str().unwrap()]).ok();
    strata(&store, &["sql", "--file", file.to_str().unwrap()]).fails_with("database already exists: from_file");
    for (name, args) in [("from_stdin", &["sql", "-"][..]), ("from_stdin_f", &["sql", "-f", "-"][..])] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--store")
            .arg(&store)
            .args(args)
            .env_remove("STRATA_STORE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let text = big(name);
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dbs = json(&store, "SHOW DATABASES");
    let names: Vec<&str> = dbs.as_array().unwrap().iter().map(|r| r["database_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["from_file", "from_stdin", "from_stdin_f"]);
    strata(&store, &["sql", "-f", tmp.path().join("nope.sql").to_str().unwrap()])
        .fails_with("cannot read the statement from");
    strata(&store, &["sql", "SHOW DATABASES", "-f", file.to_str().unwrap()]).fails_with("cannot be used with");
}
