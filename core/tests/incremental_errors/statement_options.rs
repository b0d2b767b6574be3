//! Options that do not apply to a statement's form are refused before anything runs, with
//! CockroachDB's text (the whole option × form table is `strata_core::sql`'s unit test); the
//! forms they apply to do what they say.

use std::sync::Arc;

use futures::executor::block_on;
use strata_core::{Error, Executor, KvSink, MemKv};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{env, rows_of};

#[test]
fn restore_options_of_other_forms_are_refused_and_restore_nothing() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("BACKUP INTO 'memory://cluster'").await;
        let kv = MemKv::new();
        let x = Executor::new(Arc::new(kv.clone()), Arc::new(e.opener.clone()));
        for (sql, message) in [
            (
                "RESTORE FROM LATEST IN 'memory://cluster' WITH new_db_name = 'd2'",
                "new_db_name can only be used for RESTORE DATABASE with a single target database",
            ),
            (
                "RESTORE DATABASE d FROM LATEST IN 'memory://cluster' WITH into_db = 'x'",
                "cannot use \"into_db\" option when restoring database(s)",
            ),
            (
                "RESTORE FROM LATEST IN 'memory://cluster' WITH into_db = 'x'",
                "cannot use \"into_db\" option when restoring database(s)",
            ),
            (
                "RESTORE TABLE d.t FROM LATEST IN 'memory://cluster' WITH new_db_name = 'd2'",
                "new_db_name can only be used for RESTORE DATABASE with a single target database",
            ),
        ] {
            let err = x.execute(sql).await.expect_err(sql);
            assert_eq!(err.to_string(), format!("invalid RESTORE options: {message}"), "{sql}");
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
            let catalog = kv.catalog().await.unwrap();
            assert!(catalog.databases.is_empty() && catalog.tables.is_empty(), "{sql} restored something");
        }
        // Where they apply, they are obeyed.
        x.execute("RESTORE DATABASE d FROM LATEST IN 'memory://cluster' WITH new_db_name = 'd2'").await.unwrap();
        assert_eq!(rows_of(&x, &kv, "d2", "t").await, vec![("a".to_string(), "1".to_string())]);
        x.execute("CREATE DATABASE x").await.unwrap();
        x.execute("RESTORE TABLE d.t FROM LATEST IN 'memory://cluster' WITH into_db = 'x'").await.unwrap();
        assert_eq!(rows_of(&x, &kv, "x", "t").await, vec![("a".to_string(), "1".to_string())]);
        assert!(kv.catalog().await.unwrap().database("d").is_none());
    });
}

#[test]
fn a_passphrase_and_kms_together_are_refused_by_every_statement() {
    block_on(async {
        let e = env();
        e.setup().await;
        for (sql, statement) in [
            ("BACKUP DATABASE d INTO 'memory://k' WITH encryption_passphrase = 'p', kms = 'test-kms:///k'", "BACKUP"),
            ("RESTORE DATABASE d FROM LATEST IN 'memory://k' WITH encryption_passphrase = 'p', kms = 'test-kms:///k'", "RESTORE"),
            ("SHOW BACKUP LATEST IN 'memory://k' WITH encryption_passphrase = 'p', kms = 'test-kms:///k'", "SHOW BACKUP"),
            (
                "CREATE SCHEDULE s FOR BACKUP INTO 'memory://k' WITH encryption_passphrase_env = 'P', \
                 kms = 'test-kms:///k' RECURRING '@daily'",
                "CREATE SCHEDULE",
            ),
        ] {
            let err = e.fail(sql).await;
            assert_eq!(
                err.to_string(),
                format!("invalid {statement} options: cannot have both encryption_passphrase and kms option set"),
                "{sql}"
            );
            assert!(!err.to_string().contains("'p'"), "{err}");
        }
        assert!(e.exec.execute("SHOW SCHEDULES").await.unwrap().rows.is_empty());
    });
}
