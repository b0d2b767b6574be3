//! Progress bars are drawn only on a terminal: with stderr piped, a backup and a restore print
//! nothing there. (The bars themselves are checked by hand under a pseudo-terminal.)

use std::path::Path;
use std::process::{Command, Output};

fn strata(store: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("STRATA_STORE")
        .output()
        .expect("run strata");
    assert!(out.status.success(), "strata {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn no_progress_output_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "2000"]);
    let backup = strata(&store, &["sql", "BACKUP DATABASE bank INTO 'nodelocal://1/c'"]);
    assert!(backup.stderr.is_empty(), "{}", String::from_utf8_lossy(&backup.stderr));
    let restore =
        strata(&store, &["sql", "RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/c' WITH new_db_name = 'copy'"]);
    assert!(restore.stderr.is_empty(), "{}", String::from_utf8_lossy(&restore.stderr));
}
