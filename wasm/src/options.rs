//! The option objects of the typed calls (`backup`, `restore`, `showBackup`, `execute`), read
//! from JavaScript and turned into the same statements the SQL text parses to.

use js_sys::{Array, Object, Reflect};
use strata_core::sql::{
    AsOf, BackupDestination, BackupSource, BackupStmt, BackupStmtOptions, RestoreStmt, RestoreStmtOptions, Secret,
    ShowBackupOptions, ShowBackupStmt, Statement, Subdir, TableName, Targets,
};
use strata_core::{Error, Result};
use wasm_bindgen::{JsCast, JsValue};

use crate::convert::describe_value;

/// A JS options object being read: every property read is remembered, so that a misspelt one
/// (`revisonHistory`) is an error instead of being silently ignored.
pub struct Options<'a> {
    obj: Option<&'a Object>,
    what: &'static str,
    allowed: &'static [&'static str],
}

impl<'a> Options<'a> {
    /// Reads `value` (an object, or `undefined`/`null` for no options) as the options of `what`,
    /// which may hold only the properties `allowed`.
    pub fn new(value: &'a JsValue, what: &'static str, allowed: &'static [&'static str]) -> Result<Options<'a>> {
        if value.is_undefined() || value.is_null() {
            return Ok(Options { obj: None, what, allowed });
        }
        let Some(obj) = value.dyn_ref::<Object>().filter(|_| !Array::is_array(value) && !value.is_function()) else {
            return Err(Error::InvalidArgument {
                what: what.into(),
                message: format!("expected an options object, got {}", describe_value(value)),
            });
        };
        let opts = Options { obj: Some(obj), what, allowed };
        for key in Object::keys(obj).iter() {
            let key = key.as_string().unwrap_or_default();
            let value = Reflect::get(obj, &JsValue::from_str(&key)).unwrap_or(JsValue::UNDEFINED);
            if !allowed.contains(&key.as_str()) && !value.is_undefined() {
                return Err(opts.invalid(&key, format!("unknown option (known: {})", allowed.join(", "))));
            }
        }
        Ok(opts)
    }

    fn invalid(&self, name: &str, message: impl std::fmt::Display) -> Error {
        Error::InvalidArgument { what: format!("{} option {name}", self.what), message: message.to_string() }
    }

    /// The raw value of `name` (`undefined` if absent).
    pub fn get(&self, name: &str) -> JsValue {
        debug_assert!(self.allowed.contains(&name), "{name} is read but not allowed");
        match self.obj {
            Some(obj) => Reflect::get(obj, &name.into()).unwrap_or(JsValue::UNDEFINED),
            None => JsValue::UNDEFINED,
        }
    }

    /// A string option.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.as_string()
            .map(Some)
            .ok_or_else(|| self.invalid(name, format!("expected a string, got {}", describe_value(&v))))
    }

    /// A boolean option (absent is `false`).
    pub fn flag(&self, name: &str) -> Result<bool> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(false);
        }
        v.as_bool().ok_or_else(|| self.invalid(name, format!("expected a boolean, got {}", describe_value(&v))))
    }

    /// A string, or an array of strings, option (absent is empty).
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(Vec::new());
        }
        if let Some(s) = v.as_string() {
            return Ok(vec![s]);
        }
        if Array::is_array(&v) {
            return Array::from(&v)
                .iter()
                .map(|item| {
                    item.as_string().ok_or_else(|| {
                        self.invalid(name, format!("expected strings, got an array holding {}", describe_value(&item)))
                    })
                })
                .collect();
        }
        Err(self.invalid(name, format!("expected a string or an array of strings, got {}", describe_value(&v))))
    }

    /// A function option.
    pub fn function(&self, name: &str) -> Result<Option<js_sys::Function>> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.dyn_into()
            .map(Some)
            .map_err(|v| self.invalid(name, format!("expected a function, got {}", describe_value(&v))))
    }

    /// An object option (e.g. an `AbortSignal`).
    pub fn object(&self, name: &str) -> Result<Option<Object>> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.dyn_into()
            .map(Some)
            .map_err(|v| self.invalid(name, format!("expected an object, got {}", describe_value(&v))))
    }

    /// `databases` / `tables`: the whole cluster when neither is given.
    fn targets(&self) -> Result<Targets> {
        let databases = self.strings("databases")?;
        let tables = self.strings("tables")?;
        match (databases.is_empty(), tables.is_empty()) {
            (true, true) => Ok(Targets::Cluster),
            (false, true) => Ok(Targets::Databases(databases)),
            (true, false) => tables.iter().map(|t| table_name(t)).collect::<Result<_>>().map(Targets::Tables),
            (false, false) => Err(self.invalid("tables", "give databases or tables, not both")),
        }
    }

    fn as_of(&self) -> Result<Option<AsOf>> {
        Ok(self.string("asOf")?.map(AsOf))
    }

    fn secret(&self, name: &str) -> Result<Option<Secret>> {
        Ok(self.string(name)?.map(Secret))
    }

    /// `from` with `latest` / `subdir`: where RESTORE and SHOW BACKUP read.
    fn source(&self) -> Result<BackupSource> {
        let from = self.strings("from")?;
        if from.is_empty() {
            return Err(self.invalid("from", "is required: the backup's URI (or a list of layer URIs)"));
        }
        let subdir = match (self.flag("latest")?, self.string("subdir")?) {
            (true, Some(_)) => return Err(self.invalid("subdir", "give latest or subdir, not both")),
            (true, None) => Some(Subdir::Latest),
            (false, Some(s)) => Some(Subdir::Path(s)),
            (false, None) => None,
        };
        if subdir.is_some() && from.len() > 1 {
            return Err(self.invalid("from", "a list of layers cannot be combined with latest or subdir"));
        }
        Ok(BackupSource { subdir, layers: from.into_iter().map(|uri| vec![uri]).collect() })
    }
}

/// `db.table` or `db.*`.
fn table_name(name: &str) -> Result<TableName> {
    match name.split_once('.') {
        Some((db, table)) if !db.is_empty() && !table.is_empty() => {
            Ok(TableName { database: Some(db.to_string()), table: table.to_string() })
        }
        _ => Err(Error::InvalidArgument {
            what: "table name".into(),
            message: format!("'{name}': expected db.table or db.*"),
        }),
    }
}

/// The progress and cancellation options every long call takes.
pub const RUN_OPTIONS: &[&str] = &["onProgress", "signal"];

/// Options of `backup()`.
pub const BACKUP_OPTIONS: &[&str] = &[
    "databases",
    "tables",
    "into",
    "incremental",
    "subdir",
    "to",
    "incrementalFrom",
    "asOf",
    "revisionHistory",
    "encryptionPassphrase",
    "kms",
    "onProgress",
    "signal",
];

/// `backup(options)` as a statement.
pub fn backup_statement(o: &Options) -> Result<Statement> {
    let into = o.string("into")?;
    let to = o.string("to")?;
    let incremental_from = o.strings("incrementalFrom")?;
    let destination = match (into, to) {
        (Some(uri), None) => {
            let subdir = match (o.flag("incremental")?, o.string("subdir")?) {
                (true, Some(_)) => return Err(o.invalid("subdir", "give incremental or subdir, not both")),
                (true, None) => Some(Subdir::Latest),
                (false, Some(s)) => Some(Subdir::Path(s)),
                (false, None) => None,
            };
            if !incremental_from.is_empty() {
                return Err(o.invalid("incrementalFrom", "goes with to, not into"));
            }
            BackupDestination::Into { subdir, uris: vec![uri] }
        }
        (None, Some(uri)) => {
            if o.flag("incremental")? || o.string("subdir")?.is_some() {
                return Err(o.invalid(
                    "incremental",
                    "goes with into (a backup to a directory holding one appends an incremental by itself)",
                ));
            }
            BackupDestination::To(vec![uri])
        }
        (Some(_), Some(_)) => return Err(o.invalid("to", "give into or to, not both")),
        (None, None) => {
            return Err(o.invalid("into", "is required: a collection URI (or give to: a backup directory URI)"))
        }
    };
    Ok(Statement::Backup(BackupStmt {
        targets: o.targets()?,
        destination,
        as_of: o.as_of()?,
        incremental_from,
        options: BackupStmtOptions {
            revision_history: o.flag("revisionHistory")?,
            encryption_passphrase: o.secret("encryptionPassphrase")?,
            encryption_passphrase_from: None,
            kms: o.strings("kms")?,
            detached: false,
        },
    }))
}

/// Options of `restore()`.
pub const RESTORE_OPTIONS: &[&str] = &[
    "databases",
    "tables",
    "from",
    "latest",
    "subdir",
    "asOf",
    "intoDb",
    "newDbName",
    "encryptionPassphrase",
    "kms",
    "skipMissingForeignKeys",
    "onProgress",
    "signal",
];

/// `restore(options)` as a statement.
pub fn restore_statement(o: &Options) -> Result<Statement> {
    Ok(Statement::Restore(RestoreStmt {
        targets: o.targets()?,
        source: o.source()?,
        as_of: o.as_of()?,
        options: RestoreStmtOptions {
            into_db: o.string("intoDb")?,
            new_db_name: o.string("newDbName")?,
            encryption_passphrase: o.secret("encryptionPassphrase")?,
            kms: o.strings("kms")?,
            skip_missing_foreign_keys: o.flag("skipMissingForeignKeys")?,
            detached: false,
        },
    }))
}

/// Options of `showBackup()`.
pub const SHOW_BACKUP_OPTIONS: &[&str] =
    &["from", "latest", "subdir", "encryptionPassphrase", "kms", "checkFiles", "onProgress", "signal"];

/// `showBackup(options)` as a statement.
pub fn show_backup_statement(o: &Options) -> Result<Statement> {
    Ok(Statement::ShowBackup(ShowBackupStmt {
        source: o.source()?,
        options: ShowBackupOptions {
            check_files: o.flag("checkFiles")?,
            encryption_passphrase: o.secret("encryptionPassphrase")?,
            kms: o.strings("kms")?,
        },
    }))
}
