//! The one error type of strata-core.

use std::fmt;

/// Result with strata's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether retrying the failed operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The same call will fail the same way: fix the input first.
    Permanent,
    /// A passing condition (network, contention): retrying may succeed.
    Temporary,
}

/// Everything that can go wrong in strata. Each variant says what failed and where; secrets are
/// redacted before an error is built, so any error may be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement could not be parsed. `position` is the byte offset of the offending token.
    #[error("{}", render_parse_error(.message, .statement, *.position))]
    Parse {
        /// What is wrong, e.g. `expected TO or INTO`.
        message: String,
        /// The statement, with secrets redacted.
        statement: String,
        /// Byte offset of the offending token in `statement`.
        position: usize,
    },
    /// A value (timestamp, URI, option) is malformed.
    #[error("invalid {what}: {message}")]
    InvalidArgument {
        /// What was being read, e.g. `AS OF SYSTEM TIME`.
        what: String,
        /// Why it is wrong.
        message: String,
    },
    /// A statement or option is valid but its execution is not available in this build.
    #[error("{feature} is not supported yet")]
    NotSupported {
        /// The missing feature, e.g. `incremental backups`.
        feature: String,
    },
    /// A named object (file, backup, database, table) does not exist.
    #[error("{what} not found: {name}")]
    NotFound {
        /// The kind of object: `file`, `backup`, `database`, `table`.
        what: String,
        /// Its name or path.
        name: String,
    },
    /// A named object already exists where a new one was to be created.
    #[error("{what} already exists: {name}")]
    AlreadyExists {
        /// The kind of object.
        what: String,
        /// Its name or path.
        name: String,
    },
    /// A precondition of the operation does not hold (for example a non-empty restore target).
    #[error("{0}")]
    Precondition(String),
    /// Stored bytes are damaged or not what they claim to be.
    #[error("corrupt {path}: {message}")]
    Corrupt {
        /// The file (or object) that is damaged.
        path: String,
        /// What check failed.
        message: String,
    },
    /// A passphrase or KMS key does not open an encrypted backup (the message says which).
    #[error("{0}")]
    WrongKey(String),
    /// A timestamp is outside what can be read (below the GC threshold, outside a backup's window).
    #[error("{0}")]
    InvalidTime(String),
    /// Storage failed (permission, network, server error).
    #[error("storage error at {path}: {message}")]
    Storage {
        /// The object path or URI (redacted).
        path: String,
        /// The underlying error's message.
        message: String,
        /// Whether retrying can help.
        status: Status,
    },
    /// The key-value engine failed.
    #[error("kv error: {message}")]
    Kv {
        /// The underlying error's message.
        message: String,
        /// Whether retrying can help.
        status: Status,
    },
    /// The operation was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl Error {
    /// Whether retrying can help.
    pub fn status(&self) -> Status {
        match self {
            Error::Storage { status, .. } | Error::Kv { status, .. } => *status,
            _ => Status::Permanent,
        }
    }

    /// A short stable code for this error kind, used by the CLI's JSON output and the wasm package.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Parse { .. } => "INVALID_STATEMENT",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::NotSupported { .. } => "NOT_SUPPORTED",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::Precondition(_) => "PRECONDITION",
            Error::Corrupt { .. } => "CORRUPT",
            Error::WrongKey(_) => "WRONG_KEY",
            Error::InvalidTime(_) => "INVALID_TIME",
            Error::Storage { .. } => "STORAGE",
            Error::Kv { .. } => "KV",
            Error::Cancelled(_) => "CANCELLED",
        }
    }

    /// An error of a key-value engine, for plugin authors: what failed and where (the key, the
    /// table, the file of the engine, never a secret), and whether retrying can help
    /// ([`Status::Temporary`] for a lost connection or a conflict, [`Status::Permanent`] for
    /// damage or a bug).
    pub fn kv(message: impl fmt::Display, status: Status) -> Self {
        Error::Kv { message: message.to_string(), status }
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::InvalidArgument { what: what.into(), message: message.to_string() }
    }

    pub(crate) fn not_found(what: impl Into<String>, name: impl Into<String>) -> Self {
        Error::NotFound { what: what.into(), name: name.into() }
    }

    pub(crate) fn exists(what: impl Into<String>, name: impl Into<String>) -> Self {
        Error::AlreadyExists { what: what.into(), name: name.into() }
    }

    pub(crate) fn corrupt(path: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Corrupt { path: path.into(), message: message.to_string() }
    }

    pub(crate) fn unsupported(feature: impl Into<String>) -> Self {
        Error::NotSupported { feature: feature.into() }
    }
}

/// Renders a parse error the way psql users know it: the message, the statement, a caret.
fn render_parse_error(message: &str, statement: &str, position: usize) -> String {
    let position = position.min(statement.len());
    // Show the line holding the offending token and a caret under it.
    let line_start = statement[..position].rfind('\n').map_or(0, |i| i + 1);
    let line_end = statement[position..].find('\n').map_or(statement.len(), |i| position + i);
    let line = &statement[line_start..line_end];
    let column = statement[line_start..position].chars().count();
    let near: String = statement[position..line_end].split_whitespace().next().unwrap_or("").chars().take(40).collect();
    let at = if near.is_empty() { "at end of input".to_string() } else { format!("at or near \"{near}\"") };
    format!("{at}: syntax error: {message}\n{line}\n{}^", " ".repeat(column))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn parse_error_points_at_token() {
        let e = Error::Parse {
            message: "expected TO or INTO".into(),
            statement: "BACKUP DATABASE bank FOO 'x'".into(),
            position: 21,
        };
        assert_eq!(
            e.to_string(),
            "at or near \"FOO\": syntax error: expected TO or INTO\nBACKUP DATABASE bank FOO 'x'\n                     ^"
        );
    }

    #[test]
    fn parse_error_at_end() {
        let e = Error::Parse { message: "expected a URI".into(), statement: "BACKUP TO".into(), position: 9 };
        assert_eq!(e.to_string(), "at end of input: syntax error: expected a URI\nBACKUP TO\n         ^");
    }
}
