//! The table a statement returns.

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
}

impl QueryResult {
    /// An empty result with these columns.
    pub fn new(columns: &[&str]) -> QueryResult {
        QueryResult { columns: columns.iter().map(|c| c.to_string()).collect(), rows: Vec::new() }
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

impl fmt::Display for QueryResult {
    /// An aligned table in psql's style, with a row count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns.is_empty() {
            return Ok(());
        }
        let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells.iter().map(|r| r[i].chars().count()).chain([self.columns[i].chars().count()]).max().unwrap_or(0)
            })
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
        let headers: Vec<String> = self.columns.clone();
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
}
