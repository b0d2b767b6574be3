//! TEMPORARY stand-in until the parser lands.
#[path = "sql/ast.rs"]
mod ast;
pub use ast::*;
/// Parses a statement.
pub fn parse(_sql: &str) -> crate::error::Result<Statement> {
    Err(crate::error::Error::unsupported("parser"))
}
impl std::fmt::Display for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
