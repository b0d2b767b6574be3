//! CREATE | DROP DATABASE, CREATE | DROP TABLE and SHOW TABLES: the little DDL a key-value
//! catalog needs.

use super::super::ast::*;
use super::super::lexer::Tok;
use super::Parser;
use crate::error::Result;

impl Parser {
    /// After `CREATE DATABASE`.
    pub(super) fn create_database(&mut self) -> Result<Statement> {
        let if_not_exists = self.if_not_exists()?;
        Ok(Statement::CreateDatabase { name: self.ident("expected a database name")?, if_not_exists })
    }

    /// After `CREATE TABLE`.
    pub(super) fn create_table(&mut self) -> Result<Statement> {
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

    /// After `DROP DATABASE`.
    pub(super) fn drop_database(&mut self) -> Result<Statement> {
        let if_exists = self.if_exists()?;
        let name = self.ident("expected a database name")?;
        let cascade = self.eat_kw("CASCADE");
        if !cascade {
            self.eat_kw("RESTRICT");
        }
        Ok(Statement::DropDatabase { name, if_exists, cascade })
    }

    /// After `DROP TABLE`.
    pub(super) fn drop_table(&mut self) -> Result<Statement> {
        let if_exists = self.if_exists()?;
        Ok(Statement::DropTable { name: self.table_name(false)?, if_exists })
    }

    /// After `SHOW TABLES`.
    pub(super) fn show_tables(&mut self) -> Result<Statement> {
        let database = if self.eat_kw("FROM") { Some(self.ident("expected a database name")?) } else { None };
        Ok(Statement::ShowTables { database })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ok, s, t};
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
}
