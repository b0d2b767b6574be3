//! The recursive-descent parser: tokens to a [`Statement`].

use super::ast::*;
use super::lexer::{self, is_reserved, Tok, Token};
use crate::error::{Error, Result};

/// Options of BACKUP, in the order error messages list them.
const BACKUP_OPTIONS: &[&str] = &["revision_history", "encryption_passphrase", "kms", "detached"];
/// Options of RESTORE.
const RESTORE_OPTIONS: &[&str] =
    &["into_db", "new_db_name", "encryption_passphrase", "kms", "skip_missing_foreign_keys", "detached"];
/// Options of SHOW BACKUP.
const SHOW_BACKUP_OPTIONS: &[&str] = &["check_files", "encryption_passphrase", "kms"];

const URI: &str = "expected a string literal (URI)";
const SOURCE: &str = "expected a string literal (URI) or LATEST IN";

/// Parses one statement; a trailing `;` is allowed.
///
/// Keywords are case-insensitive, bare identifiers are lowercased, `"quoted"` ones keep their case.
/// On failure the error is [`Error::Parse`]: its `statement` has every passphrase and secret URI
/// parameter replaced by `redacted`, and its `position` is the byte offset of the offending token
/// in that redacted text.
///
/// ```
/// use strata_core::sql::{parse, Statement, Targets};
///
/// let stmt = parse("backup database bank into 's3://b?AWS_SECRET_ACCESS_KEY=k' with revision_history")?;
/// let Statement::Backup(backup) = &stmt else { panic!("not a BACKUP") };
/// assert_eq!(backup.targets, Targets::Databases(vec!["bank".into()]));
/// assert_eq!(
///     stmt.to_string(),
///     "BACKUP DATABASE bank INTO 's3://b?AWS_SECRET_ACCESS_KEY=redacted' WITH revision_history"
/// );
///
/// let err = parse("BACKUP DATABASE bank FOO 'x'").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "at or near \"FOO\": syntax error: expected TO or INTO\nBACKUP DATABASE bank FOO 'x'\n                     ^"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse(sql: &str) -> Result<Statement> {
    let tokens = lexer::lex(sql);
    let (redacted, positions) = lexer::redact(sql, &tokens);
    Parser { tokens, positions, redacted, pos: 0 }.statement()
}

static EOF: Tok = Tok::Eof;

struct Parser {
    tokens: Vec<Token>,
    /// Offset of each token in `redacted`.
    positions: Vec<usize>,
    redacted: String,
    pos: usize,
}

impl Parser {
    // ---- token helpers ----

    fn peek_nth(&self, n: usize) -> &Tok {
        self.tokens.get(self.pos + n).map_or(&EOF, |t| &t.tok)
    }

    fn peek(&self) -> &Tok {
        self.peek_nth(0)
    }

    fn advance(&mut self) {
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn at_eof(&self) -> bool {
        *self.peek() == Tok::Eof
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_nth(n), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        if found {
            self.advance();
        }
        found
    }

    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(format!("expected {kw}")))
        }
    }

    fn is_punct(&self, c: char) -> bool {
        *self.peek() == Tok::Punct(c)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let found = self.is_punct(c);
        if found {
            self.advance();
        }
        found
    }

    fn expect_punct(&mut self, c: char, message: &str) -> Result<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    /// An error at the current token.
    fn error(&self, message: impl Into<String>) -> Error {
        self.error_at(self.pos, message)
    }

    /// An error at token `index`; a token the lexer could not read reports its own message.
    fn error_at(&self, index: usize, message: impl Into<String>) -> Error {
        let message = match self.tokens.get(index).and_then(|t| t.tok.lex_error()) {
            Some(lex) => lex.to_string(),
            None => message.into(),
        };
        let position = self.positions.get(index).copied().unwrap_or(self.redacted.len());
        Error::Parse { message, statement: self.redacted.clone(), position }
    }

    // ---- literals and names ----

    /// A string literal; `message` if the current token is not one.
    fn string(&mut self, message: &str) -> Result<String> {
        match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(self.error(message)),
        }
    }

    /// `'uri'` or `('uri', …)`.
    fn uri_list(&mut self, message: &str) -> Result<Vec<String>> {
        if !self.eat_punct('(') {
            return Ok(vec![self.string(message)?]);
        }
        let mut uris = vec![self.string(URI)?];
        while self.eat_punct(',') {
            uris.push(self.string(URI)?);
        }
        self.expect_punct(')', "expected ',' or ')'")?;
        Ok(uris)
    }

    /// A bare (lowercased, not reserved) or quoted identifier; `message` otherwise.
    fn ident(&mut self, message: &str) -> Result<String> {
        let name = match self.peek() {
            Tok::Word(w) if !is_reserved(w) => w.to_lowercase(),
            Tok::QuotedIdent(s) => s.clone(),
            _ => return Err(self.error(message)),
        };
        self.advance();
        Ok(name)
    }

    /// `t`, `db.t`, `db.public.t`; with `allow_star` also `*`, `db.*` and `db.public.*`.
    fn table_name(&mut self, allow_star: bool) -> Result<TableName> {
        let star = |p: &mut Self| allow_star && p.eat_punct('*');
        if star(self) {
            return Ok(TableName { database: None, table: "*".into() });
        }
        let first = self.ident("expected a table name")?;
        if !self.eat_punct('.') {
            return Ok(TableName { database: None, table: first });
        }
        let database = Some(first);
        let table_message = if allow_star { "expected a table name or *" } else { "expected a table name" };
        if star(self) {
            return Ok(TableName { database, table: "*".into() });
        }
        let schema = self.pos;
        let second = self.ident(table_message)?;
        if !self.eat_punct('.') {
            return Ok(TableName { database, table: second });
        }
        if second != "public" {
            return Err(self.error_at(schema, "only the public schema is supported"));
        }
        if star(self) {
            return Ok(TableName { database, table: "*".into() });
        }
        Ok(TableName { database, table: self.ident(table_message)? })
    }

    /// A schedule or job ID.
    fn id(&mut self, what: &str) -> Result<u64> {
        let id = match self.peek() {
            Tok::Number(n) => n.parse::<u64>().ok(),
            _ => None,
        };
        match id {
            Some(id) => {
                self.advance();
                Ok(id)
            }
            None => Err(self.error(format!("expected a {what} ID (an integer)"))),
        }
    }

    /// `IF NOT EXISTS`, if present.
    fn if_not_exists(&mut self) -> Result<bool> {
        if !self.eat_kw("IF") {
            return Ok(false);
        }
        self.expect_kw("NOT")?;
        self.expect_kw("EXISTS")?;
        Ok(true)
    }

    /// `IF EXISTS`, if present.
    fn if_exists(&mut self) -> Result<bool> {
        if !self.eat_kw("IF") {
            return Ok(false);
        }
        self.expect_kw("EXISTS")?;
        Ok(true)
    }

    // ---- clauses ----

    /// `TABLE t, …`, `DATABASE d, …`, or nothing (the cluster).
    fn targets(&mut self) -> Result<Targets> {
        if self.eat_kw("TABLE") {
            let mut tables = vec![self.table_name(true)?];
            while self.eat_punct(',') {
                tables.push(self.table_name(true)?);
            }
            Ok(Targets::Tables(tables))
        } else if self.eat_kw("DATABASE") {
            let mut names = vec![self.ident("expected a database name")?];
            while self.eat_punct(',') {
                names.push(self.ident("expected a database name")?);
            }
            Ok(Targets::Databases(names))
        } else {
            Ok(Targets::Cluster)
        }
    }

    /// What follows `INTO`: `LATEST IN uris`, `'subdir' IN uris`, or `uris`.
    fn destination_after_into(&mut self) -> Result<BackupDestination> {
        if self.eat_kw("LATEST") {
            self.expect_kw("IN")?;
            return Ok(BackupDestination::Into { subdir: Some(Subdir::Latest), uris: self.uri_list(URI)? });
        }
        if let (Tok::Str(path), true) = (self.peek(), self.is_kw_at(1, "IN")) {
            let subdir = Some(Subdir::Path(path.clone()));
            self.advance();
            self.advance();
            return Ok(BackupDestination::Into { subdir, uris: self.uri_list(URI)? });
        }
        Ok(BackupDestination::Into { subdir: None, uris: self.uri_list(SOURCE)? })
    }

    /// What RESTORE, SHOW BACKUP and ALTER BACKUP read: `LATEST IN uris`, `'subdir' IN uris`, or
    /// layers `'full', 'inc', …` where each layer is a URI or a parenthesized locality list.
    fn source(&mut self) -> Result<BackupSource> {
        if self.eat_kw("LATEST") {
            self.expect_kw("IN")?;
            return Ok(BackupSource { subdir: Some(Subdir::Latest), layers: vec![self.uri_list(URI)?] });
        }
        if let (Tok::Str(path), true) = (self.peek(), self.is_kw_at(1, "IN")) {
            let subdir = Some(Subdir::Path(path.clone()));
            self.advance();
            self.advance();
            return Ok(BackupSource { subdir, layers: vec![self.uri_list(URI)?] });
        }
        let mut layers = vec![self.uri_list(SOURCE)?];
        while self.eat_punct(',') {
            layers.push(self.uri_list(URI)?);
        }
        Ok(BackupSource { subdir: None, layers })
    }

    /// `AS OF SYSTEM TIME x`, `x` a string literal or a number, kept as written.
    fn as_of(&mut self) -> Result<AsOf> {
        for kw in ["AS", "OF", "SYSTEM", "TIME"] {
            self.expect_kw(kw)?;
        }
        let time = match self.peek() {
            Tok::Str(s) | Tok::Number(s) => AsOf(s.clone()),
            _ => return Err(self.error("expected a timestamp (a string literal or a number)")),
        };
        self.advance();
        Ok(time)
    }

    /// The option list after `WITH`: `a, b = x, …` or `OPTIONS (a, b = x, …)`. Checks each name
    /// against `known` and for duplicates, then lets `apply` read its value.
    fn options(&mut self, known: &[&str], mut apply: impl FnMut(&mut Self, &str) -> Result<()>) -> Result<()> {
        let parens = self.eat_kw("OPTIONS");
        if parens {
            self.expect_punct('(', "expected '('")?;
        }
        let expected = known.join(", ");
        let mut seen: Vec<String> = Vec::new();
        loop {
            let name = match self.peek() {
                Tok::Word(w) => w.to_lowercase(),
                _ => return Err(self.error(format!("expected an option name; expected one of: {expected}"))),
            };
            if !known.contains(&name.as_str()) {
                return Err(self.error(format!("unknown option \"{name}\"; expected one of: {expected}")));
            }
            if seen.contains(&name) {
                return Err(self.error(format!("duplicate option \"{name}\"")));
            }
            self.advance();
            apply(self, &name)?;
            seen.push(name);
            if !self.eat_punct(',') {
                break;
            }
        }
        if parens {
            self.expect_punct(')', "expected ',' or ')'")?;
        }
        Ok(())
    }

    /// A flag option's optional `= true|false`.
    fn flag(&mut self) -> Result<bool> {
        if !self.eat_punct('=') {
            return Ok(true);
        }
        let value = match self.peek() {
            Tok::Word(w) | Tok::Str(w) if w.eq_ignore_ascii_case("true") => true,
            Tok::Word(w) | Tok::Str(w) if w.eq_ignore_ascii_case("false") => false,
            _ => return Err(self.error("expected TRUE or FALSE")),
        };
        self.advance();
        Ok(value)
    }

    /// `= 'value'`.
    fn string_value(&mut self, message: &str) -> Result<String> {
        self.expect_punct('=', "expected '='")?;
        self.string(message)
    }

    /// `= 'passphrase'`.
    fn secret(&mut self) -> Result<Secret> {
        Ok(Secret(self.string_value("expected a string literal (passphrase)")?))
    }

    /// `= 'uri'` or `= ('uri', …)`.
    fn kms(&mut self) -> Result<Vec<String>> {
        self.expect_punct('=', "expected '='")?;
        self.uri_list(URI)
    }

    fn backup_options(&mut self) -> Result<BackupOptions> {
        let mut o = BackupOptions::default();
        self.options(BACKUP_OPTIONS, |p, name| {
            match name {
                "revision_history" => o.revision_history = p.flag()?,
                "encryption_passphrase" => o.encryption_passphrase = Some(p.secret()?),
                "kms" => o.kms = p.kms()?,
                _ => o.detached = p.flag()?,
            }
            Ok(())
        })?;
        Ok(o)
    }

    fn restore_options(&mut self) -> Result<RestoreOptions> {
        let mut o = RestoreOptions::default();
        self.options(RESTORE_OPTIONS, |p, name| {
            match name {
                "into_db" => o.into_db = Some(p.string_value("expected a string literal (database name)")?),
                "new_db_name" => o.new_db_name = Some(p.string_value("expected a string literal (database name)")?),
                "encryption_passphrase" => o.encryption_passphrase = Some(p.secret()?),
                "kms" => o.kms = p.kms()?,
                "skip_missing_foreign_keys" => o.skip_missing_foreign_keys = p.flag()?,
                _ => o.detached = p.flag()?,
            }
            Ok(())
        })?;
        Ok(o)
    }

    fn show_backup_options(&mut self) -> Result<ShowBackupOptions> {
        let mut o = ShowBackupOptions::default();
        self.options(SHOW_BACKUP_OPTIONS, |p, name| {
            match name {
                "check_files" => o.check_files = p.flag()?,
                "encryption_passphrase" => o.encryption_passphrase = Some(p.secret()?),
                _ => o.kms = p.kms()?,
            }
            Ok(())
        })?;
        Ok(o)
    }

    // ---- statements ----

    fn statement(&mut self) -> Result<Statement> {
        if self.at_eof() || (self.is_punct(';') && *self.peek_nth(1) == Tok::Eof) {
            return Err(self.error("empty statement"));
        }
        let stmt = if self.eat_kw("BACKUP") {
            Statement::Backup(self.backup()?)
        } else if self.eat_kw("RESTORE") {
            Statement::Restore(self.restore()?)
        } else if self.eat_kw("SHOW") {
            self.show()?
        } else if self.eat_kw("ALTER") {
            Statement::AlterBackup(self.alter_backup()?)
        } else if self.eat_kw("CREATE") {
            self.create()?
        } else if self.eat_kw("DROP") {
            self.drop()?
        } else if self.eat_kw("PAUSE") {
            self.schedule_or_job(Statement::PauseSchedule, Statement::PauseJob)?
        } else if self.eat_kw("RESUME") {
            self.schedule_or_job(Statement::ResumeSchedule, Statement::ResumeJob)?
        } else if self.eat_kw("CANCEL") {
            self.expect_kw("JOB")?;
            Statement::CancelJob(self.id("job")?)
        } else {
            return Err(self.error("expected BACKUP, RESTORE, SHOW, ALTER, CREATE, DROP, PAUSE, RESUME or CANCEL"));
        };
        self.eat_punct(';');
        if !self.at_eof() {
            return Err(self.error("unexpected input after end of statement"));
        }
        Ok(stmt)
    }

    /// After `BACKUP`.
    fn backup(&mut self) -> Result<BackupStmt> {
        let targets = self.targets()?;
        let destination = if self.eat_kw("TO") {
            BackupDestination::To(self.uri_list(URI)?)
        } else if self.eat_kw("INTO") {
            self.destination_after_into()?
        } else if targets == Targets::Cluster {
            return Err(self.error("expected TABLE, DATABASE, TO or INTO"));
        } else {
            return Err(self.error("expected TO or INTO"));
        };
        let mut as_of = None;
        let mut incremental_from = None;
        loop {
            if self.is_kw("AS") {
                if as_of.is_some() {
                    return Err(self.error("AS OF SYSTEM TIME given twice"));
                }
                as_of = Some(self.as_of()?);
            } else if self.is_kw("INCREMENTAL") {
                if incremental_from.is_some() {
                    return Err(self.error("INCREMENTAL FROM given twice"));
                }
                self.advance();
                self.expect_kw("FROM")?;
                let mut uris = vec![self.string(URI)?];
                while self.eat_punct(',') {
                    uris.push(self.string(URI)?);
                }
                incremental_from = Some(uris);
            } else {
                break;
            }
        }
        let options = if self.eat_kw("WITH") { self.backup_options()? } else { BackupOptions::default() };
        Ok(BackupStmt { targets, destination, as_of, incremental_from: incremental_from.unwrap_or_default(), options })
    }

    /// After `RESTORE`.
    fn restore(&mut self) -> Result<RestoreStmt> {
        let targets = self.targets()?;
        if !self.eat_kw("FROM") {
            let message =
                if targets == Targets::Cluster { "expected TABLE, DATABASE or FROM" } else { "expected FROM" };
            return Err(self.error(message));
        }
        let source = self.source()?;
        let as_of = if self.is_kw("AS") { Some(self.as_of()?) } else { None };
        let options = if self.eat_kw("WITH") { self.restore_options()? } else { RestoreOptions::default() };
        Ok(RestoreStmt { targets, source, as_of, options })
    }

    /// After `SHOW`.
    fn show(&mut self) -> Result<Statement> {
        Ok(if self.eat_kw("BACKUPS") {
            self.expect_kw("IN")?;
            Statement::ShowBackups { collection: self.uri_list(URI)? }
        } else if self.eat_kw("BACKUP") {
            self.eat_kw("FROM");
            let source = self.source()?;
            let options = if self.eat_kw("WITH") { self.show_backup_options()? } else { ShowBackupOptions::default() };
            Statement::ShowBackup(ShowBackupStmt { source, options })
        } else if self.eat_kw("SCHEDULES") {
            Statement::ShowSchedules
        } else if self.eat_kw("JOBS") {
            Statement::ShowJobs
        } else if self.eat_kw("JOB") {
            Statement::ShowJob(self.id("job")?)
        } else if self.eat_kw("DATABASES") {
            Statement::ShowDatabases
        } else if self.eat_kw("TABLES") {
            let database = if self.eat_kw("FROM") { Some(self.ident("expected a database name")?) } else { None };
            Statement::ShowTables { database }
        } else {
            return Err(self.error("expected BACKUP, BACKUPS, SCHEDULES, JOBS, JOB, DATABASES or TABLES"));
        })
    }

    /// After `ALTER`.
    fn alter_backup(&mut self) -> Result<AlterBackupStmt> {
        self.expect_kw("BACKUP")?;
        let source = self.source()?;
        self.expect_kw("ADD")?;
        let change = if self.eat_kw("NEW_KMS") {
            let new = self.kms()?;
            self.expect_kw("WITH")?;
            self.expect_kw("OLD_KMS")?;
            KeyChange::Kms { new, old: self.kms()? }
        } else if self.eat_kw("NEW_PASSPHRASE") {
            let new = self.secret()?;
            self.expect_kw("WITH")?;
            self.expect_kw("OLD_PASSPHRASE")?;
            KeyChange::Passphrase { new, old: self.secret()? }
        } else {
            return Err(self.error("expected NEW_KMS or NEW_PASSPHRASE"));
        };
        Ok(AlterBackupStmt { source, change })
    }

    /// After `CREATE`.
    fn create(&mut self) -> Result<Statement> {
        if self.eat_kw("SCHEDULE") {
            return Ok(Statement::CreateSchedule(self.create_schedule()?));
        }
        if self.eat_kw("DATABASE") {
            let if_not_exists = self.if_not_exists()?;
            return Ok(Statement::CreateDatabase { name: self.ident("expected a database name")?, if_not_exists });
        }
        if !self.eat_kw("TABLE") {
            return Err(self.error("expected SCHEDULE, DATABASE or TABLE"));
        }
        let if_not_exists = self.if_not_exists()?;
        let name = self.table_name(false)?;
        if self.is_punct('(') {
            // The column list means nothing to a key-value table: skip it, balanced.
            let mut depth = 0usize;
            loop {
                match self.peek() {
                    Tok::Punct('(') => depth += 1,
                    Tok::Punct(')') => depth -= 1,
                    Tok::Eof => return Err(self.error("expected ')'")),
                    // `error` reports the lexer's own message for such a token.
                    t if t.lex_error().is_some() => return Err(self.error("unreadable token")),
                    _ => {}
                }
                self.advance();
                if depth == 0 {
                    break;
                }
            }
        }
        Ok(Statement::CreateTable { name, if_not_exists })
    }

    /// After `CREATE SCHEDULE`.
    fn create_schedule(&mut self) -> Result<CreateScheduleStmt> {
        let if_not_exists = self.if_not_exists()?;
        let label = match self.peek() {
            _ if self.is_kw("FOR") => None,
            Tok::Str(s) => {
                let s = s.clone();
                self.advance();
                Some(s)
            }
            _ => Some(self.ident("expected a schedule label or FOR")?),
        };
        self.expect_kw("FOR")?;
        self.expect_kw("BACKUP")?;
        let targets = self.targets()?;
        if self.is_kw("TO") {
            return Err(self.error("a schedule's backup must use INTO, not TO"));
        }
        if !self.eat_kw("INTO") {
            let message =
                if targets == Targets::Cluster { "expected TABLE, DATABASE or INTO" } else { "expected INTO" };
            return Err(self.error(message));
        }
        if self.is_kw("LATEST") || self.is_kw_at(1, "IN") {
            return Err(self.error("a schedule's backup takes only the collection URI(s) after INTO"));
        }
        let uris = self.uri_list(URI)?;
        let with = self.eat_kw("WITH");
        if with && self.is_kw("SCHEDULE") {
            return Err(self.error("WITH SCHEDULE OPTIONS must come after RECURRING"));
        }
        let options = if with { self.backup_options()? } else { BackupOptions::default() };
        if !self.eat_kw("RECURRING") {
            return Err(self.error(if with { "expected RECURRING" } else { "expected WITH or RECURRING" }));
        }
        let recurring = match self.peek() {
            Tok::Str(s) => Recurrence::Cron(s.clone()),
            _ if self.is_kw("NEVER") => Recurrence::Never,
            _ => return Err(self.error("expected a cron expression (string literal) or NEVER")),
        };
        self.advance();
        let full_backup = if self.eat_kw("FULL") {
            self.expect_kw("BACKUP")?;
            let full = match self.peek() {
                Tok::Str(s) => Recurrence::Cron(s.clone()),
                _ if self.is_kw("ALWAYS") => Recurrence::Always,
                _ => return Err(self.error("expected a cron expression (string literal) or ALWAYS")),
            };
            self.advance();
            Some(full)
        } else {
            None
        };
        let mut schedule_options: Vec<(String, String)> = Vec::new();
        if self.eat_kw("WITH") {
            self.expect_kw("SCHEDULE")?;
            self.expect_kw("OPTIONS")?;
            loop {
                let key = match self.peek() {
                    Tok::Word(w) => w.to_lowercase(),
                    Tok::QuotedIdent(s) => s.clone(),
                    _ => return Err(self.error("expected a schedule option name")),
                };
                if schedule_options.iter().any(|(k, _)| *k == key) {
                    return Err(self.error(format!("duplicate schedule option \"{key}\"")));
                }
                self.advance();
                // A bare name is a flag (`ignore_existing_backups`): it reads as `= 'true'`.
                let value = if self.eat_punct('=') {
                    let value = match self.peek() {
                        Tok::Str(s) | Tok::Number(s) | Tok::QuotedIdent(s) => s.clone(),
                        Tok::Word(w) => w.to_lowercase(),
                        _ => return Err(self.error("expected a value")),
                    };
                    self.advance();
                    value
                } else {
                    "true".to_string()
                };
                schedule_options.push((key, value));
                if !self.eat_punct(',') {
                    break;
                }
            }
        }
        let destination = BackupDestination::Into { subdir: None, uris };
        let backup = BackupStmt { targets, destination, as_of: None, incremental_from: Vec::new(), options };
        Ok(CreateScheduleStmt { if_not_exists, label, backup, recurring, full_backup, schedule_options })
    }

    /// After `DROP`.
    fn drop(&mut self) -> Result<Statement> {
        if self.eat_kw("SCHEDULE") {
            return Ok(Statement::DropSchedule(self.id("schedule")?));
        }
        if self.eat_kw("DATABASE") {
            let if_exists = self.if_exists()?;
            let name = self.ident("expected a database name")?;
            let cascade = self.eat_kw("CASCADE");
            if !cascade {
                self.eat_kw("RESTRICT");
            }
            return Ok(Statement::DropDatabase { name, if_exists, cascade });
        }
        if !self.eat_kw("TABLE") {
            return Err(self.error("expected SCHEDULE, DATABASE or TABLE"));
        }
        let if_exists = self.if_exists()?;
        Ok(Statement::DropTable { name: self.table_name(false)?, if_exists })
    }

    /// After `PAUSE` or `RESUME`.
    fn schedule_or_job(&mut self, schedule: fn(u64) -> Statement, job: fn(u64) -> Statement) -> Result<Statement> {
        if self.eat_kw("SCHEDULE") {
            Ok(schedule(self.id("schedule")?))
        } else if self.eat_kw("JOB") {
            Ok(job(self.id("job")?))
        } else {
            Err(self.error("expected SCHEDULE or JOB"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ok(sql: &str) -> Statement {
        match parse(sql) {
            Ok(stmt) => stmt,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// `(message, position, statement)` of a parse error.
    fn err(sql: &str) -> (String, usize, String) {
        match parse(sql) {
            Err(Error::Parse { message, statement, position }) => (message, position, statement),
            other => panic!("{sql}: expected a parse error, got {other:?}"),
        }
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    fn t(db: Option<&str>, table: &str) -> TableName {
        TableName { database: db.map(s), table: s(table) }
    }

    fn into(uris: &[&str]) -> BackupDestination {
        BackupDestination::Into { subdir: None, uris: v(uris) }
    }

    #[test]
    fn backup_database_into() {
        assert_eq!(
            ok("backup database bank INTO 'nodelocal://1/backups'"),
            Statement::Backup(BackupStmt {
                targets: Targets::Databases(v(&["bank"])),
                destination: into(&["nodelocal://1/backups"]),
                as_of: None,
                incremental_from: vec![],
                options: BackupOptions::default(),
            })
        );
    }

    #[test]
    fn backup_cluster_to_with_every_clause() {
        let sql = "BACKUP TO ('s3://a?AWS_SECRET_ACCESS_KEY=k', 's3://b') AS OF SYSTEM TIME '-10s' \
                   INCREMENTAL FROM 'full', 'inc1' WITH revision_history, encryption_passphrase = 'pw', \
                   kms = ('aws:///k1', 'aws:///k2'), detached = false;";
        assert_eq!(
            ok(sql),
            Statement::Backup(BackupStmt {
                targets: Targets::Cluster,
                destination: BackupDestination::To(v(&["s3://a?AWS_SECRET_ACCESS_KEY=k", "s3://b"])),
                as_of: Some(AsOf(s("-10s"))),
                incremental_from: v(&["full", "inc1"]),
                options: BackupOptions {
                    revision_history: true,
                    encryption_passphrase: Some(Secret(s("pw"))),
                    kms: v(&["aws:///k1", "aws:///k2"]),
                    detached: false,
                },
            })
        );
    }

    #[test]
    fn backup_incremental_before_as_of_and_with_options_parens() {
        assert_eq!(
            ok("BACKUP DATABASE a, \"B\" TO 'x' INCREMENTAL FROM 'f' AS OF SYSTEM TIME 1700000000000000000.0000000001 \
                WITH OPTIONS (detached, revision_history = TRUE, kms = 'k')"),
            Statement::Backup(BackupStmt {
                targets: Targets::Databases(v(&["a", "B"])),
                destination: BackupDestination::To(v(&["x"])),
                as_of: Some(AsOf(s("1700000000000000000.0000000001"))),
                incremental_from: v(&["f"]),
                options: BackupOptions { revision_history: true, detached: true, kms: v(&["k"]), ..Default::default() },
            })
        );
    }

    #[test]
    fn backup_tables_into_latest() {
        assert_eq!(
            ok("BACKUP TABLE bank.accounts, \"Bank\".\"Users\", Bank.*, t, db.public.x, db.PUBLIC.*, * \
                INTO LATEST IN 's3://x' AS OF SYSTEM TIME 1700000000"),
            Statement::Backup(BackupStmt {
                targets: Targets::Tables(vec![
                    t(Some("bank"), "accounts"),
                    t(Some("Bank"), "Users"),
                    t(Some("bank"), "*"),
                    t(None, "t"),
                    t(Some("db"), "x"),
                    t(Some("db"), "*"),
                    t(None, "*"),
                ]),
                destination: BackupDestination::Into { subdir: Some(Subdir::Latest), uris: v(&["s3://x"]) },
                as_of: Some(AsOf(s("1700000000"))),
                incremental_from: vec![],
                options: BackupOptions::default(),
            })
        );
    }

    #[test]
    fn backup_into_subdir() {
        assert_eq!(
            ok("BACKUP INTO '/2026/11/23-101500.00' IN ('a', 'b')"),
            Statement::Backup(BackupStmt {
                targets: Targets::Cluster,
                destination: BackupDestination::Into {
                    subdir: Some(Subdir::Path(s("/2026/11/23-101500.00"))),
                    uris: v(&["a", "b"]),
                },
                as_of: None,
                incremental_from: vec![],
                options: BackupOptions::default(),
            })
        );
    }

    #[test]
    fn restore_cluster_from_latest() {
        assert_eq!(
            ok("RESTORE FROM LATEST IN 'gs://b/c'"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Cluster,
                source: BackupSource { subdir: Some(Subdir::Latest), layers: vec![v(&["gs://b/c"])] },
                as_of: None,
                options: RestoreOptions::default(),
            })
        );
    }

    #[test]
    fn restore_tables_from_layers_with_every_option() {
        assert_eq!(
            ok("RESTORE TABLE bank.accounts FROM 'full', 'inc1', 'inc2' AS OF SYSTEM TIME '2026-11-23 10:00:00' \
                WITH into_db = 'other', new_db_name = 'n', encryption_passphrase = 'it''s', kms = 'k', \
                skip_missing_foreign_keys, detached"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Tables(vec![t(Some("bank"), "accounts")]),
                source: BackupSource { subdir: None, layers: vec![v(&["full"]), v(&["inc1"]), v(&["inc2"])] },
                as_of: Some(AsOf(s("2026-11-23 10:00:00"))),
                options: RestoreOptions {
                    into_db: Some(s("other")),
                    new_db_name: Some(s("n")),
                    encryption_passphrase: Some(Secret(s("it's"))),
                    kms: v(&["k"]),
                    skip_missing_foreign_keys: true,
                    detached: true,
                },
            })
        );
    }

    #[test]
    fn restore_database_from_locality_lists_and_subdir() {
        assert_eq!(
            ok("RESTORE DATABASE bank FROM ('a', 'b'), ('c', 'd'), 'e'"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Databases(v(&["bank"])),
                source: BackupSource { subdir: None, layers: vec![v(&["a", "b"]), v(&["c", "d"]), v(&["e"])] },
                as_of: None,
                options: RestoreOptions::default(),
            })
        );
        assert_eq!(
            ok("RESTORE DATABASE bank FROM '/2026/11/23-101500.00' IN 'x'"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Databases(v(&["bank"])),
                source: BackupSource {
                    subdir: Some(Subdir::Path(s("/2026/11/23-101500.00"))),
                    layers: vec![v(&["x"])]
                },
                as_of: None,
                options: RestoreOptions::default(),
            })
        );
    }

    #[test]
    fn show_backup_and_backups() {
        assert_eq!(
            ok("SHOW BACKUP FROM LATEST IN 'x' WITH check_files, encryption_passphrase = 'p', kms = 'k'"),
            Statement::ShowBackup(ShowBackupStmt {
                source: BackupSource { subdir: Some(Subdir::Latest), layers: vec![v(&["x"])] },
                options: ShowBackupOptions {
                    check_files: true,
                    encryption_passphrase: Some(Secret(s("p"))),
                    kms: v(&["k"]),
                },
            })
        );
        assert_eq!(
            ok("show backup 'x'"),
            Statement::ShowBackup(ShowBackupStmt {
                source: BackupSource { subdir: None, layers: vec![v(&["x"])] },
                options: ShowBackupOptions::default(),
            })
        );
        assert_eq!(ok("SHOW BACKUPS IN ('a', 'b')"), Statement::ShowBackups { collection: v(&["a", "b"]) });
    }

    #[test]
    fn alter_backup() {
        assert_eq!(
            ok("ALTER BACKUP LATEST IN 's3://x' ADD NEW_KMS = ('aws:///n1', 'aws:///n2') WITH OLD_KMS = 'aws:///o'"),
            Statement::AlterBackup(AlterBackupStmt {
                source: BackupSource { subdir: Some(Subdir::Latest), layers: vec![v(&["s3://x"])] },
                change: KeyChange::Kms { new: v(&["aws:///n1", "aws:///n2"]), old: v(&["aws:///o"]) },
            })
        );
        assert_eq!(
            ok("alter backup 's3://x' add new_passphrase = 'new' with old_passphrase = 'old'"),
            Statement::AlterBackup(AlterBackupStmt {
                source: BackupSource { subdir: None, layers: vec![v(&["s3://x"])] },
                change: KeyChange::Passphrase { new: Secret(s("new")), old: Secret(s("old")) },
            })
        );
    }

    #[test]
    fn create_schedule_with_everything() {
        assert_eq!(
            ok("CREATE SCHEDULE IF NOT EXISTS Nightly FOR BACKUP DATABASE bank INTO 's3://x' \
                WITH revision_history RECURRING '@daily' FULL BACKUP '@weekly' \
                WITH SCHEDULE OPTIONS first_run = 'now', on_execution_failure = pause, ignore_existing_backups"),
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists: true,
                label: Some(s("nightly")),
                backup: BackupStmt {
                    targets: Targets::Databases(v(&["bank"])),
                    destination: into(&["s3://x"]),
                    as_of: None,
                    incremental_from: vec![],
                    options: BackupOptions { revision_history: true, ..Default::default() },
                },
                recurring: Recurrence::Cron(s("@daily")),
                full_backup: Some(Recurrence::Cron(s("@weekly"))),
                schedule_options: vec![
                    (s("first_run"), s("now")),
                    (s("on_execution_failure"), s("pause")),
                    (s("ignore_existing_backups"), s("true")),
                ],
            })
        );
    }

    #[test]
    fn create_schedule_minimal_and_string_label() {
        let backup = BackupStmt {
            targets: Targets::Cluster,
            destination: into(&["a", "b"]),
            as_of: None,
            incremental_from: vec![],
            options: BackupOptions::default(),
        };
        assert_eq!(
            ok("CREATE SCHEDULE FOR BACKUP INTO ('a', 'b') RECURRING NEVER"),
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists: false,
                label: None,
                backup: backup.clone(),
                recurring: Recurrence::Never,
                full_backup: None,
                schedule_options: vec![],
            })
        );
        assert_eq!(
            ok("CREATE SCHEDULE 'My Schedule' FOR BACKUP INTO ('a', 'b') RECURRING '0 * * * *' FULL BACKUP ALWAYS"),
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists: false,
                label: Some(s("My Schedule")),
                backup,
                recurring: Recurrence::Cron(s("0 * * * *")),
                full_backup: Some(Recurrence::Always),
                schedule_options: vec![],
            })
        );
    }

    #[test]
    fn schedule_and_job_control() {
        assert_eq!(ok("SHOW SCHEDULES"), Statement::ShowSchedules);
        assert_eq!(ok("pause schedule 42"), Statement::PauseSchedule(42));
        assert_eq!(ok("RESUME SCHEDULE 18446744073709551615"), Statement::ResumeSchedule(u64::MAX));
        assert_eq!(ok("DROP SCHEDULE 7;"), Statement::DropSchedule(7));
        assert_eq!(ok("SHOW JOBS"), Statement::ShowJobs);
        assert_eq!(ok("SHOW JOB 1"), Statement::ShowJob(1));
        assert_eq!(ok("PAUSE JOB 2"), Statement::PauseJob(2));
        assert_eq!(ok("RESUME JOB 3"), Statement::ResumeJob(3));
        assert_eq!(ok("CANCEL JOB 4"), Statement::CancelJob(4));
    }

    #[test]
    fn ddl() {
        assert_eq!(ok("CREATE DATABASE bank"), Statement::CreateDatabase { name: s("bank"), if_not_exists: false });
        assert_eq!(
            ok("create database if not exists \"Bank\""),
            Statement::CreateDatabase { name: s("Bank"), if_not_exists: true }
        );
        assert_eq!(
            ok("CREATE TABLE IF NOT EXISTS bank.accounts (id INT PRIMARY KEY, n DECIMAL(10, 2), s STRING DEFAULT ')')"),
            Statement::CreateTable { name: t(Some("bank"), "accounts"), if_not_exists: true }
        );
        assert_eq!(ok("CREATE TABLE t"), Statement::CreateTable { name: t(None, "t"), if_not_exists: false });
        assert_eq!(
            ok("DROP DATABASE IF EXISTS bank CASCADE"),
            Statement::DropDatabase { name: s("bank"), if_exists: true, cascade: true }
        );
        assert_eq!(
            ok("DROP DATABASE bank RESTRICT"),
            Statement::DropDatabase { name: s("bank"), if_exists: false, cascade: false }
        );
        assert_eq!(
            ok("DROP TABLE IF EXISTS bank.public.accounts"),
            Statement::DropTable { name: t(Some("bank"), "accounts"), if_exists: true }
        );
        assert_eq!(ok("DROP TABLE t"), Statement::DropTable { name: t(None, "t"), if_exists: false });
        assert_eq!(ok("SHOW DATABASES"), Statement::ShowDatabases);
        assert_eq!(ok("SHOW TABLES"), Statement::ShowTables { database: None });
        assert_eq!(ok("SHOW TABLES FROM Bank"), Statement::ShowTables { database: Some(s("bank")) });
    }

    #[test]
    fn comments_case_and_quoting() {
        assert_eq!(
            ok("-- nightly\nBaCkUp TABLE \"from\".\"Tab\"\"le\" -- the table\n  InTo 'x' ; -- done"),
            Statement::Backup(BackupStmt {
                targets: Targets::Tables(vec![t(Some("from"), "Tab\"le")]),
                destination: into(&["x"]),
                as_of: None,
                incremental_from: vec![],
                options: BackupOptions::default(),
            })
        );
    }

    #[test]
    fn error_points_at_unexpected_keyword() {
        let sql = "BACKUP DATABASE bank FOO 'x'";
        assert_eq!(err(sql), (s("expected TO or INTO"), 21, s(sql)));
        assert_eq!(
            parse(sql).map_err(|e| e.to_string()),
            Err(s("at or near \"FOO\": syntax error: expected TO or INTO\n\
                   BACKUP DATABASE bank FOO 'x'\n                     ^"))
        );
        assert_eq!(err("BACKUP FOO 'x").0, "expected TABLE, DATABASE, TO or INTO");
    }

    #[test]
    fn error_missing_names() {
        assert_eq!(err("RESTORE TABLE FROM 'x'").0.as_str(), "expected a table name");
        assert_eq!(err("RESTORE TABLE FROM 'x'").1, 14);
        assert_eq!(err("BACKUP DATABASE TO 'x'"), (s("expected a database name"), 16, s("BACKUP DATABASE TO 'x'")));
        assert_eq!(err("BACKUP TABLE db. INTO 'x'").1, 17);
        assert_eq!(err("BACKUP TABLE db. INTO 'x'").0, "expected a table name or *");
        assert_eq!(err("DROP TABLE a.b.c").0, "only the public schema is supported");
        assert_eq!(err("DROP TABLE a.b.c").1, 13);
        assert_eq!(
            err("RESTORE bank FROM 'x'"),
            (s("expected TABLE, DATABASE or FROM"), 8, s("RESTORE bank FROM 'x'"))
        );
    }

    #[test]
    fn error_unknown_and_duplicate_options() {
        // The value of an unknown option might be a misspelled passphrase: it is not shown.
        assert_eq!(
            err("BACKUP INTO 'x' WITH revision_history, Foo = 1"),
            (
                s("unknown option \"foo\"; expected one of: revision_history, encryption_passphrase, kms, detached"),
                39,
                s("BACKUP INTO 'x' WITH revision_history, Foo = redacted")
            )
        );
        assert_eq!(
            err("RESTORE FROM 'x' WITH revision_history").0,
            "unknown option \"revision_history\"; expected one of: into_db, new_db_name, encryption_passphrase, kms, \
             skip_missing_foreign_keys, detached"
        );
        assert_eq!(err("BACKUP INTO 'x' WITH detached, DETACHED").0, "duplicate option \"detached\"");
        assert_eq!(err("BACKUP INTO 'x' WITH detached, DETACHED").1, 31);
        assert_eq!(err("BACKUP INTO 'x' WITH revision_history = maybe").0, "expected TRUE or FALSE");
        assert_eq!(err("BACKUP INTO 'x' WITH OPTIONS (detached").0, "expected ',' or ')'");
        assert_eq!(
            err("BACKUP INTO 'x' WITH").0,
            "expected an option name; expected one of: revision_history, encryption_passphrase, kms, detached"
        );
    }

    #[test]
    fn error_literals_and_end_of_input() {
        assert_eq!(err("BACKUP INTO 'x"), (s("unterminated string literal"), 12, s("BACKUP INTO 'x")));
        assert_eq!(err("BACKUP TABLE \"x INTO 'y'").0, "unterminated quoted identifier");
        assert_eq!(err("BACKUP INTO 'x' @"), (s("unexpected character"), 16, s("BACKUP INTO 'x' @")));
        assert_eq!(err("BACKUP TO"), (s("expected a string literal (URI)"), 9, s("BACKUP TO")));
        assert_eq!(err("BACKUP INTO ('a', b)").0, "expected a string literal (URI)");
        assert_eq!(err("BACKUP INTO x").0, "expected a string literal (URI) or LATEST IN");
        assert_eq!(err("RESTORE FROM LATEST 'x'").0, "expected IN");
        assert_eq!(err("SHOW JOBS now"), (s("unexpected input after end of statement"), 10, s("SHOW JOBS now")));
        assert_eq!(err("SHOW JOBS; SHOW JOBS").1, 11);
        assert_eq!(err(""), (s("empty statement"), 0, s("")));
        assert_eq!(err("  ; ").0, "empty statement");
        assert_eq!(err("SELECT 1").0, "expected BACKUP, RESTORE, SHOW, ALTER, CREATE, DROP, PAUSE, RESUME or CANCEL");
        assert_eq!(
            err("BACKUP INTO 'x' AS OF SYSTEM TIME now").0,
            "expected a timestamp (a string literal or a number)"
        );
        assert_eq!(err("BACKUP INTO 'x' AS OF SYSTEM TIME '1' AS OF SYSTEM TIME '2'").1, 38);
        assert_eq!(err("BACKUP INTO 'x' AS OF TIME '1'").0, "expected SYSTEM");
        assert_eq!(err("CREATE TABLE t (a INT").0, "expected ')'");
        assert_eq!(err("CREATE TABLE t (a 'b)").0, "unterminated string literal");
    }

    #[test]
    fn error_ids() {
        assert_eq!(err("PAUSE JOB abc"), (s("expected a job ID (an integer)"), 10, s("PAUSE JOB abc")));
        assert_eq!(err("DROP SCHEDULE 18446744073709551616").0, "expected a schedule ID (an integer)");
        assert_eq!(err("SHOW JOB 1.5").0, "expected a job ID (an integer)");
        assert_eq!(err("PAUSE 1").0, "expected SCHEDULE or JOB");
    }

    #[test]
    fn error_schedules() {
        let sql = "CREATE SCHEDULE s FOR BACKUP TO 'x' RECURRING '@daily'";
        assert_eq!(err(sql), (s("a schedule's backup must use INTO, not TO"), 29, s(sql)));
        assert_eq!(err("CREATE SCHEDULE s FOR BACKUP INTO 'x'").0, "expected WITH or RECURRING");
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO LATEST IN 'x' RECURRING NEVER"),
            (
                s("a schedule's backup takes only the collection URI(s) after INTO"),
                34,
                s("CREATE SCHEDULE s FOR BACKUP INTO LATEST IN 'x' RECURRING NEVER")
            )
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'sub' IN 'x' RECURRING NEVER").0,
            "a schedule's backup takes only the collection URI(s) after INTO"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING ALWAYS").0,
            "expected a cron expression (string literal) or NEVER"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING NEVER FULL BACKUP NEVER").0,
            "expected a cron expression (string literal) or ALWAYS"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' WITH SCHEDULE OPTIONS a = 'b' RECURRING NEVER").0,
            "WITH SCHEDULE OPTIONS must come after RECURRING"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING NEVER WITH SCHEDULE OPTIONS a = 'b', A = 'c'").0,
            "duplicate schedule option \"a\""
        );
        assert_eq!(err("CREATE SCHEDULE FOR FOR BACKUP INTO 'x' RECURRING NEVER").0, "expected BACKUP");
        assert_eq!(err("CREATE SCHEDULE , FOR BACKUP").0, "expected a schedule label or FOR");
    }
}
