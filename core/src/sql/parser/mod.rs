//! The recursive-descent parser: tokens to a [`Statement`].
//!
//! This module holds the token cursor, the literals, names and clauses every statement shares, and
//! the dispatch on the first keyword; each statement family reads the rest in its own file:
//! `backup` (BACKUP, RESTORE, SHOW BACKUP(S), ALTER BACKUP), `schedule` (CREATE SCHEDULE,
//! PAUSE | RESUME) and `ddl` (databases and tables).

mod alter_schedule;
mod backup;
mod ddl;
mod schedule;

use super::ast::*;
use super::lexer::{self, is_reserved, Tok, Token};
use crate::error::{Error, Result};

const URI: &str = "expected a string literal (URI)";
const SOURCE: &str = "expected a string literal (URI) or LATEST IN";

/// Parses one statement; a trailing `;` is allowed.
///
/// Keywords are case-insensitive, bare identifiers are lowercased, `"quoted"` ones keep their case.
/// On failure the error is [`Error::Parse`]: its `statement` has every passphrase, every URI
/// query value that may be a secret and every string literal but URIs and the grammar's own values
/// replaced by `redacted`, and its `position` is the byte offset of the offending token in that
/// redacted text.
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
/// // A literal that is not a URI may be a secret typed in the wrong place: it is not shown.
/// let err = parse("BACKUP DATABASE bank FOO 'hunter2'").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "at or near \"FOO\": syntax error: expected TO or INTO\nBACKUP DATABASE bank FOO 'redacted'\n                     ^"
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
            _ => Err(self.value_error(message)),
        }
    }

    /// An error at the current token, where a value (a literal, a number, TRUE or FALSE) was
    /// expected: a bare word or number found there may be that value, a secret typed without its
    /// quotes, so it is shown as `redacted`.
    fn value_error(&self, message: impl Into<String>) -> Error {
        let mut e = self.error(message);
        let original = match self.tokens.get(self.pos).map(|t| &t.tok) {
            Some(Tok::Word(w) | Tok::Number(w)) if !lexer::is_keyword(w) => w,
            _ => return e,
        };
        if let Error::Parse { statement, position, .. } = &mut e {
            if statement[*position..].starts_with(original.as_str()) {
                statement.replace_range(*position..*position + original.len(), crate::redact::REDACTED);
            }
        }
        e
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
            None => Err(self.value_error(format!("expected a {what} ID (an integer)"))),
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

    /// `AS OF SYSTEM TIME x`, `x` a string literal or a number, kept as written.
    fn as_of(&mut self) -> Result<AsOf> {
        for kw in ["AS", "OF", "SYSTEM", "TIME"] {
            self.expect_kw(kw)?;
        }
        let time = match self.peek() {
            Tok::Str(s) | Tok::Number(s) => AsOf(s.clone()),
            _ => return Err(self.value_error("expected a timestamp (a string literal or a number)")),
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
            _ => return Err(self.value_error("expected TRUE or FALSE")),
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
            if self.is_kw("BACKUP") && self.is_kw_at(1, "SCHEDULE") {
                self.advance();
                self.advance();
                Statement::AlterBackupSchedule(self.alter_backup_schedule()?)
            } else {
                Statement::AlterBackup(self.alter_backup()?)
            }
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

    /// After `SHOW`.
    fn show(&mut self) -> Result<Statement> {
        Ok(if self.eat_kw("BACKUPS") {
            Statement::ShowBackups { collection: self.show_backups()? }
        } else if self.eat_kw("BACKUP") {
            match self.backup_details() {
                Some(details) => Statement::ShowBackupDetails { details, show: self.show_backup()? },
                None => Statement::ShowBackup(self.show_backup()?),
            }
        } else if self.eat_kw("SCHEDULES") {
            Statement::ShowSchedules
        } else if self.eat_kw("SCHEDULE") {
            Statement::ShowSchedule(self.id("schedule")?)
        } else if self.eat_kw("JOBS") {
            Statement::ShowJobs
        } else if self.eat_kw("JOB") {
            Statement::ShowJob(self.id("job")?)
        } else if self.eat_kw("DATABASES") {
            Statement::ShowDatabases
        } else if self.eat_kw("TABLES") {
            self.show_tables()?
        } else {
            return Err(self.error("expected BACKUP, BACKUPS, SCHEDULES, SCHEDULE, JOBS, JOB, DATABASES or TABLES"));
        })
    }

    /// After `CREATE`.
    fn create(&mut self) -> Result<Statement> {
        if self.eat_kw("SCHEDULE") {
            Ok(Statement::CreateSchedule(self.create_schedule()?))
        } else if self.eat_kw("DATABASE") {
            self.create_database()
        } else if self.eat_kw("TABLE") {
            self.create_table()
        } else {
            Err(self.error("expected SCHEDULE, DATABASE or TABLE"))
        }
    }

    /// After `DROP`.
    fn drop(&mut self) -> Result<Statement> {
        if self.eat_kw("SCHEDULE") {
            Ok(Statement::DropSchedule(self.id("schedule")?))
        } else if self.eat_kw("DATABASE") {
            self.drop_database()
        } else if self.eat_kw("TABLE") {
            self.drop_table()
        } else {
            Err(self.error("expected SCHEDULE, DATABASE or TABLE"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    pub(super) fn ok(sql: &str) -> Statement {
        match parse(sql) {
            Ok(stmt) => stmt,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// `(message, position, statement)` of a parse error.
    pub(super) fn err(sql: &str) -> (String, usize, String) {
        match parse(sql) {
            Err(Error::Parse { message, statement, position }) => (message, position, statement),
            other => panic!("{sql}: expected a parse error, got {other:?}"),
        }
    }

    pub(super) fn s(x: &str) -> String {
        x.to_string()
    }

    pub(super) fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    pub(super) fn t(db: Option<&str>, table: &str) -> TableName {
        TableName { database: db.map(s), table: s(table) }
    }

    pub(super) fn into(uris: &[&str]) -> BackupDestination {
        BackupDestination::Into { subdir: None, uris: v(uris) }
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
                options: BackupStmtOptions::default(),
            })
        );
    }

    #[test]
    fn error_missing_names() {
        assert_eq!(err("RESTORE TABLE FROM 'x'").0.as_str(), "expected a table name");
        assert_eq!(err("RESTORE TABLE FROM 'x'").1, 14);
        assert_eq!(
            err("BACKUP DATABASE TO 'x'"),
            (s("expected a database name"), 16, s("BACKUP DATABASE TO 'redacted'"))
        );
        assert_eq!(err("BACKUP TABLE db. INTO 'x'").1, 17);
        assert_eq!(err("BACKUP TABLE db. INTO 'x'").0, "expected a table name or *");
        assert_eq!(err("DROP TABLE a.b.c").0, "only the public schema is supported");
        assert_eq!(err("DROP TABLE a.b.c").1, 13);
        assert_eq!(
            err("RESTORE bank FROM 'x'"),
            (s("expected TABLE, DATABASE or FROM"), 8, s("RESTORE bank FROM 'redacted'"))
        );
    }

    #[test]
    fn error_literals_and_end_of_input() {
        assert_eq!(err("BACKUP INTO 'x"), (s("unterminated string literal"), 12, s("BACKUP INTO 'redacted")));
        assert_eq!(err("BACKUP TABLE \"x INTO 'y'").0, "unterminated quoted identifier");
        assert_eq!(err("BACKUP INTO 'x' @"), (s("unexpected character"), 23, s("BACKUP INTO 'redacted' @")));
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
        assert_eq!(err("BACKUP INTO 'x' AS OF SYSTEM TIME '1' AS OF SYSTEM TIME '2'").1, 52);
        assert_eq!(err("BACKUP INTO 'x' AS OF TIME '1'").0, "expected SYSTEM");
        assert_eq!(err("CREATE TABLE t (a INT").0, "expected ')'");
        assert_eq!(err("CREATE TABLE t (a 'b)").0, "unterminated string literal");
    }

    /// Issue 13 §2: whatever the spelling, and wherever a secret is typed, a parse error shows
    /// none of it: literals are hidden unless they are URIs (shown through `redact_uri`, which
    /// shows no query value that may be a secret) or one of the grammar's own values.
    #[test]
    fn parse_errors_never_show_a_secret_typed_anywhere() {
        const S: &str = "Zq9SECRETvalue";
        let uris = [
            "s3://b/p?AWS_SECRET_KEY={s}",
            "s3://b/p?AWS_SECRET_ACCESS_KEY={s}",
            "azure://c/p?AZURE_ACCOUNT_SECRET={s}",
            "gs://b/p?CREDENTIAL={s}",
            "s3://b/p?AWS_SESION_TOKEN={s}",
            "s3://b/p?AWS_SECRET_ACCESS_KEY ={s}",
            "s3://b/p?AWS_ACCESS_KEY_ID=AKIA;AWS_SECRET_ACCESS_KEY={s}",
            "https://user:{s}@dav.example/x",
            "https://{s}@dav.example/x",
            "{s}",
        ];
        let statements = [
            "BACKUP INTO '{u}' FOO",
            "BACKUP INTO '{u}' WITH revision_history = '{s}'",
            "BACKUP INTO '{u}' WITH revision_history = {s}",
            "BACKUP INTO '{u}' WITH detached = '{s}'",
            "BACKUP INTO '{u}' WITH kms = '{s}' FOO",
            "BACKUP INTO '{u}' WITH encryption_passphrase = '{s}' FOO",
            "BACKUP INTO '{u}' WITH encryption_passhprase = '{s}'",
            "BACKUP INTO '{u}' WITH '{s}'",
            "BACKUP INTO '{u}' AS OF SYSTEM TIME '{s}' AS OF SYSTEM TIME '1'",
            "RESTORE FROM '{u}' WITH into_db = '{s}' FOO",
            "RESTORE FROM '{u}' WITH new_db_name = '{s}', new_db_name = 'x'",
            "RESTORE '{s}' FROM '{u}'",
            "SHOW BACKUP '{u}' WITH check_files = '{s}'",
            "CREATE SCHEDULE '{s}' FOR BACKUP INTO '{u}' RECURRING '@daily'",
            "CREATE SCHEDULE s FOR BACKUP INTO '{u}' RECURRING '{s}' FOO",
            "CREATE SCHEDULE s FOR BACKUP INTO '{u}' RECURRING '@daily' WITH SCHEDULE OPTIONS first_run = '{s}' FOO",
            "DROP SCHEDULE '{s}'",
            "BACKUP INTO {u} FOO",
            "BACKUP INTO '{u}",
            "BACKUP INTO '{u}' WITH encryption_passphrase = '{s}",
            "'{s}' BACKUP INTO '{u}'",
        ];
        let mut checked = 0;
        for statement in statements {
            for uri in uris {
                let sql = statement.replace("{u}", uri).replace("{s}", S);
                if let Err(e) = parse(&sql) {
                    let shown = e.to_string();
                    assert!(!shown.contains(S) && !shown.contains("SECRETvalue"), "{sql}\n=> {shown}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 150, "only {checked} of the statements failed to parse");
        // A URI stays recognisable; a grammar value in error is shown.
        let (_, _, statement) = err("BACKUP INTO 'nodelocal://1/x?AWS_REGION=us-east-1' FOO");
        assert_eq!(statement, "BACKUP INTO 'nodelocal://1/x?AWS_REGION=us-east-1' FOO");
        let (_, _, statement) = err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING '@daily' FOO");
        assert!(statement.ends_with("RECURRING '@daily' FOO"), "{statement}");
    }
}
