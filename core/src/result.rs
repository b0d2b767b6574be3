//! The table a statement returns.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v.min(i64::MAX as u64) as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Columns and rows, as a statement returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Value>>,
    /// Warnings that do not fail the statement but change what it did, e.g. an incremental layer
    /// left out of a chain because its `BACKUP_MANIFEST` is missing. The CLI prints each on
    /// standard error as `warning: …`; wasm's `execute` returns them as `notices`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

impl QueryResult {
    /// An empty result with these columns.
    pub fn new(columns: &[&str]) -> QueryResult {
        QueryResult { columns: columns.iter().map(|c| c.to_string()).collect(), rows: Vec::new(), notices: Vec::new() }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The value in `column` of row `row`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        let c = self.columns.iter().position(|n| n == column)?;
        self.rows.get(row)?.get(c)
    }

    /// The rows as objects keyed by column name (the CLI's `--format json`).
    pub fn to_objects(&self) -> Vec<Vec<(String, Value)>> {
        self.rows.iter().map(|r| self.columns.iter().cloned().zip(r.iter().cloned()).collect()).collect()
    }
}

/// Whether `c` must not reach a terminal as it is: C0 and C1 control characters (ESC starts
/// terminal escape sequences, BEL rings, CR and newline rewrite or break lines), DEL, and the
/// Unicode direction overrides and isolates, which reorder what is shown.
fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` safe to print on a terminal: every control character (see above) written as an
/// escape, `\n`, `\r`, `\t`, `\x1b` (below U+0080) or `\u{9b}`; anything else, backslashes
/// included, as it is. What the table form of a [`QueryResult`] shows of names and values read
/// from backups, and what the CLI does to messages.
///
/// ```
/// assert_eq!(strata_core::escape_control("a\x1b[2Jb\u{7}\r\n\u{9b}"), "a\\x1b[2Jb\\x07\\r\\n\\u{9b}");
/// assert!(matches!(strata_core::escape_control("plain ü"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

impl fmt::Display for QueryResult {
    /// An aligned table in psql's style, with a row count. Control characters in column names
    /// and text are escaped (see [`escape_control`]): a name read from a backup cannot move the
    /// cursor, clear the screen or fake a row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns.is_empty() {
            return Ok(());
        }
        let cells: Vec<Vec<String>> =
            self.rows.iter().map(|r| r.iter().map(|v| escape_control(&v.to_string()).into_owned()).collect()).collect();
        let headers: Vec<String> = self.columns.iter().map(|c| escape_control(c).into_owned()).collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| cells.iter().map(|r| r[i].chars().count()).chain([headers[i].chars().count()]).max().unwrap_or(0))
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, vals: &[String], numeric: &[bool]| -> fmt::Result {
            let parts: Vec<String> = vals
                .iter()
                .zip(&widths)
                .zip(numeric)
                .map(|((v, w), num)| if *num { format!("{v:>w$}") } else { format!("{v:<w$}") })
                .collect();
            writeln!(f, " {}", parts.join(" | ").trim_end())
        };
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|i| self.rows.iter().all(|r| matches!(r[i], Value::Int(_) | Value::Null)))
            .collect();
        line(f, &headers, &vec![false; headers.len()])?;
        writeln!(f, "{}", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"))?;
        for r in &cells {
            line(f, r, &numeric)?;
        }
        write!(f, "({} row{})", self.rows.len(), if self.rows.len() == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn renders_aligned() {
        let mut r = QueryResult::new(&["name", "rows"]);
        r.push(vec!["bank".into(), Value::Int(10)]);
        r.push(vec!["b".into(), Value::Int(1234)]);
        assert_eq!(r.to_string(), " name | rows\n------+------\n bank |   10\n b    | 1234\n(2 rows)");
        assert_eq!(r.get(1, "rows"), Some(&Value::Int(1234)));
    }

    #[test]
    fn control_characters_are_escaped_in_tables_only() {
        let hostile = "db\x1b]0;owned\x07\x1b[2J\r\nfake | row\u{9b}31m\u{202e}";
        let mut r = QueryResult::new(&["name\x1b[1m", "n"]);
        r.push(vec![hostile.into(), Value::Int(1)]);
        let shown = r.to_string();
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202e}'), "{shown:?}");
        assert_eq!(shown.lines().count(), 4, "one line per row: {shown}");
        assert!(shown.contains("db\\x1b]0;owned\\x07\\x1b[2J\\r\\nfake | row\\u{9b}31m\\u{202e}"), "{shown}");
        assert!(shown.starts_with(" name\\x1b[1m"), "{shown}");
        // The values themselves are untouched.
        assert_eq!(r.get(0, "name\x1b[1m"), Some(&Value::Text(hostile.into())));
        assert_eq!(escape_control("tab\there \\x1b"), "tab\\there \\x1b");
    }
}
