//! The statements users already know from CockroachDB: parsed into plain data, printed back as
//! canonical SQL.
//!
//! ```text
//!  "backup database bank into 's3://b?AWS_SECRET_ACCESS_KEY=k' with revision_history"
//!        │ parse()                 lexer → tokens → recursive descent
//!        ▼
//!  Statement::Backup(BackupStmt { targets: Databases(["bank"]), destination: Into { … }, … })
//!        │ to_string()             uppercase keywords, secrets redacted
//!        ▼
//!  "BACKUP DATABASE bank INTO 's3://b?AWS_SECRET_ACCESS_KEY=redacted' WITH revision_history"
//! ```
//!
//! Understood: `BACKUP`, `RESTORE`, `SHOW BACKUP`, `SHOW BACKUPS IN`, `ALTER BACKUP … ADD NEW_KMS |
//! NEW_PASSPHRASE`, `CREATE SCHEDULE … FOR BACKUP`, `SHOW SCHEDULES`, `PAUSE | RESUME | DROP
//! SCHEDULE`, `SHOW JOBS`, `SHOW JOB`, `PAUSE | RESUME | CANCEL JOB`, and the little DDL a key-value
//! catalog needs (`CREATE | DROP DATABASE`, `CREATE | DROP TABLE`, `SHOW DATABASES`, `SHOW TABLES`).
//!
//! A parse error is [`Error::Parse`](crate::error::Error::Parse): its statement has every passphrase
//! and secret URI parameter replaced by `redacted`, and its position points at the offending token
//! in that text. [`Statement`]'s `Display` never prints a secret either, so it is safe for job
//! descriptions and `SHOW SCHEDULES`.

mod ast;
mod display;
mod lexer;
mod parser;
#[cfg(test)]
mod round_trip;
mod validate;

pub use ast::*;
pub use parser::parse;
pub(crate) use validate::BOTH_PASSPHRASE_AND_KMS;
pub use validate::{check_options, check_restore_options};
