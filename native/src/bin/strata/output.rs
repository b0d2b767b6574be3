//! What the CLI prints on standard output: results as a table or as JSON, rows as they stream.
//!
//! Every write returns its error instead of panicking as `println!` does, so a reader that
//! stops early (`strata scan … | head`) ends the program quietly (see [`is_broken_pipe`]).

use std::io::{self, Write};

use serde::ser::{SerializeMap, Serializer};
use strata_core::{QueryResult, Value};

use crate::Format;

/// Writes `text` and a newline to standard output.
pub(crate) fn line(text: impl std::fmt::Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Whether `e` is (caused by) a write to a pipe whose reader has gone: ripgrep's rule, such a
/// run ends quietly with success, as `head` and other readers that stop early expect.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// A row as a JSON object with its keys in column order.
struct Row<'a>(&'a [String], &'a [Value]);

impl serde::Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter().zip(self.1) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Prints a statement's result in the chosen format. A statement without a result table (DDL,
/// PAUSE SCHEDULE, …) prints `tag` in table form, as CockroachDB's shell prints `CREATE DATABASE`.
pub(crate) fn print_result(result: &QueryResult, format: Format, tag: Option<&str>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        Format::Table if result.columns.is_empty() => {
            if let Some(tag) = tag {
                writeln!(out, "{tag}")?;
            }
        }
        Format::Table => writeln!(out, "{result}")?,
        Format::Json => {
            let rows: Vec<Row<'_>> = result.rows.iter().map(|r| Row(&result.columns, r)).collect();
            serde_json::to_writer_pretty(&mut out, &rows).map_err(io::Error::from)?;
            writeln!(out)?;
        }
    }
    out.flush()
}

/// Rows printed as they arrive: `KEY<TAB>VALUE` lines in table form, or one JSON array of
/// objects (keys in column order) written object by object.
pub(crate) struct RowWriter<W: Write> {
    out: W,
    format: Format,
    columns: Vec<String>,
    written: usize,
}

impl<W: Write> RowWriter<W> {
    /// A writer of rows with these columns.
    pub(crate) fn new(out: W, format: Format, columns: &[&str]) -> Self {
        RowWriter { out, format, columns: columns.iter().map(|c| c.to_string()).collect(), written: 0 }
    }

    /// Writes one row of text cells.
    pub(crate) fn row(&mut self, cells: &[String]) -> io::Result<()> {
        match self.format {
            Format::Table => writeln!(self.out, "{}", cells.join("\t"))?,
            Format::Json => {
                self.out.write_all(if self.written == 0 { b"[\n  " } else { b",\n  " })?;
                let values: Vec<Value> = cells.iter().map(|c| Value::Text(c.clone())).collect();
                serde_json::to_writer(&mut self.out, &Row(&self.columns, &values)).map_err(io::Error::from)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Ends the output (the JSON array's bracket) and flushes it.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if let Format::Json = self.format {
            self.out.write_all(if self.written == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}
