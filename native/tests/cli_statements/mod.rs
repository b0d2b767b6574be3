//! `SHOW BACKUP FILES | RANGES | SCHEMAS` (issue 17 §3) against a real collection on disk.

use std::path::Path;

use super::cli_support::strata;

fn rows(store: &Path, statement: &str) -> Vec<serde_json::Value> {
    let out = strata(store, &["--format", "json", "sql", statement]).ok().stdout();
    match serde_json::from_str(&out) {
        Ok(serde_json::Value::Array(rows)) => rows,
        other => panic!("{statement}: not a JSON array ({other:?}): {out:?}"),
    }
}

fn text(row: &serde_json::Value, column: &str) -> String {
    match &row[column] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "NULL".into(),
        v => v.to_string(),
    }
}

#[test]
fn show_backup_files_ranges_and_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "100"]).ok();
    strata(&store, &["sql", "BACKUP DATABASE bank INTO 'nodelocal://1/c'"]).ok();
    strata(&store, &["put", "bank.accounts", "0000000001", "changed"]).ok();
    strata(&store, &["sql", "BACKUP DATABASE bank INTO LATEST IN 'nodelocal://1/c'"]).ok();

    let files = rows(&store, "SHOW BACKUP FILES FROM LATEST IN 'nodelocal://1/c'");
    let kinds: Vec<String> = files.iter().map(|f| text(f, "backup_type")).collect();
    assert!(
        kinds.first().is_some_and(|k| k == "full") && kinds.last().is_some_and(|k| k == "incremental"),
        "{kinds:?}"
    );
    let mut total_rows = 0;
    for f in &files {
        // The path is below the collection, and the file is there with the stored size shown.
        let path = text(f, "path");
        let on_disk = store.join("extern/c").join(path.trim_start_matches('/'));
        let size = std::fs::metadata(&on_disk).unwrap_or_else(|e| panic!("{path}: {e}")).len();
        assert_eq!(f["file_bytes"], serde_json::json!(size), "{f}");
        assert!(f["size_bytes"].as_u64().unwrap() > 0, "{f}");
        assert!(text(f, "start_pretty").starts_with("/Table/"), "{f}");
        assert!(text(f, "start_key").starts_with("\\x"), "{f}");
        assert_eq!(text(f, "locality"), "NULL");
        if text(f, "backup_type") == "full" {
            total_rows += f["rows"].as_u64().unwrap();
        }
    }
    // The files' rows add up to what SHOW BACKUP counts for the full backup's tables.
    let shown: u64 = rows(&store, "SHOW BACKUP FROM LATEST IN 'nodelocal://1/c'")
        .iter()
        .filter(|r| text(r, "backup_type") == "full" && text(r, "table_name") != "NULL")
        .map(|r| r["rows"].as_u64().unwrap())
        .sum();
    assert!(total_rows >= 100);
    assert_eq!(total_rows, shown);

    let ranges = rows(&store, "SHOW BACKUP RANGES FROM LATEST IN 'nodelocal://1/c'");
    let columns: Vec<&String> = ranges[0].as_object().unwrap().keys().collect();
    assert_eq!(columns, ["end_key", "end_pretty", "start_key", "start_pretty"], "(sorted by the JSON reader)");
    assert_eq!(ranges.len() % 2, 0, "each layer lists its spans: {ranges:?}");

    let schemas = rows(&store, "SHOW BACKUP SCHEMAS FROM LATEST IN 'nodelocal://1/c'");
    let statements: Vec<String> = schemas.iter().map(|r| text(r, "create_statement")).collect();
    assert_eq!(
        statements,
        ["CREATE DATABASE bank", "CREATE TABLE bank.customers", "CREATE TABLE bank.accounts"].repeat(2)
    );
}
