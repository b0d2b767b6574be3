//! Splitting a statement into tokens, and the redacted copy of the statement that errors show.
//!
//! The lexer never fails: a stray character or an unterminated literal becomes a token of its own,
//! and the parser reports it when it reaches it. That way the redacted text is always built from
//! the complete token stream, and error positions are offsets into that redacted text.

use crate::redact::{redact_uri, REDACTED};

/// One token's kind and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word (keyword or identifier), as written.
    Word(String),
    /// A double-quoted identifier, `""` unescaped.
    QuotedIdent(String),
    /// A single-quoted string literal, `''` unescaped.
    Str(String),
    /// An unsigned integer or decimal (`123`, `1700000000000000000.0000000001`), as written.
    Number(String),
    /// One of `,` `(` `)` `.` `=` `;` `*`.
    Punct(char),
    /// A literal opened by `quote` and never closed; `content` runs to the end of the input.
    Unterminated {
        /// `'` or `"`.
        quote: char,
        /// Everything after the opening quote, unescaped.
        content: String,
    },
    /// Input no token can start with, or an empty quoted identifier.
    Bad(&'static str),
    /// The end of the input (always the last token).
    Eof,
}

impl Tok {
    /// The message to report when the parser stops at a token the lexer could not read.
    pub(crate) fn lex_error(&self) -> Option<&'static str> {
        match self {
            Tok::Unterminated { quote: '\'', .. } => Some("unterminated string literal"),
            Tok::Unterminated { .. } => Some("unterminated quoted identifier"),
            Tok::Bad(message) => Some(message),
            _ => None,
        }
    }
}

/// A token and its byte range in the original statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// What it is.
    pub tok: Tok,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past its last character.
    pub end: usize,
}

/// Words that cannot be bare identifiers, because the grammar uses them right before or after a
/// name (`RESTORE TABLE FROM …` must fail at `FROM`). Quote them (`"from"`) to use them as names.
pub(crate) const RESERVED: &[&str] = &["all", "as", "for", "from", "if", "in", "into", "not", "table", "to", "with"];

/// Whether `word` (compared case-insensitively) is reserved.
pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits `sql` into tokens, ending with [`Tok::Eof`]. Never fails; see the module doc.
pub(crate) fn lex(sql: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '-' && sql[start..].starts_with("--") {
            while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            continue;
        }
        chars.next();
        let tok = match c {
            '\'' | '"' => {
                let mut content = String::new();
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    // A doubled quote stands for itself; a single one closes the literal.
                    if d == c && chars.next_if(|&(_, e)| e == c).is_none() {
                        closed = true;
                        break;
                    }
                    content.push(d);
                }
                match (closed, c) {
                    (false, quote) => Tok::Unterminated { quote, content },
                    (true, '\'') => Tok::Str(content),
                    (true, _) if content.is_empty() => Tok::Bad("zero-length quoted identifier"),
                    (true, _) => Tok::QuotedIdent(content),
                }
            }
            '0'..='9' => {
                while chars.next_if(|&(_, d)| d.is_ascii_digit()).is_some() {}
                let rest = chars.peek().map_or(sql.len(), |&(i, _)| i);
                if sql[rest..].starts_with('.') && sql[rest + 1..].starts_with(|d: char| d.is_ascii_digit()) {
                    chars.next();
                    while chars.next_if(|&(_, d)| d.is_ascii_digit()).is_some() {}
                }
                let end = chars.peek().map_or(sql.len(), |&(i, _)| i);
                Tok::Number(sql[start..end].to_string())
            }
            c if is_word_start(c) => {
                while chars.next_if(|&(_, d)| is_word_char(d)).is_some() {}
                let end = chars.peek().map_or(sql.len(), |&(i, _)| i);
                Tok::Word(sql[start..end].to_string())
            }
            ',' | '(' | ')' | '.' | '=' | ';' | '*' => Tok::Punct(c),
            _ => Tok::Bad("unexpected character"),
        };
        let end = chars.peek().map_or(sql.len(), |&(i, _)| i);
        tokens.push(Token { tok, start, end });
    }
    tokens.push(Token { tok: Tok::Eof, start: sql.len(), end: sql.len() });
    tokens
}

/// `s` as a single-quoted SQL string literal.
pub(crate) fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Option names whose `= value` is meant to be no secret: a URI literal after them is shown
/// through [`redact_uri`]. Any other value, after them or any other word (or a misspelled one,
/// `encryption_passphrse = '…'`), is hidden: secret unless known otherwise.
const PLAIN_OPTIONS: &[&str] = &[
    "kms",
    "new_kms",
    "old_kms",
    "into_db",
    "new_db_name",
    "revision_history",
    "detached",
    "check_files",
    "skip_missing_foreign_keys",
    "first_run",
    "on_execution_failure",
    "on_previous_running",
    "ignore_existing_backups",
];

/// The grammar's keywords: shown even inside a secret context, where other words are hidden.
const KEYWORDS: &str = "add alter always as backup backups cancel cascade create database databases drop exists \
    false for from full if in incremental into job jobs latest never not of options pause recurring restore \
    restrict resume schedule schedules show system table tables time to true with";

pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.split_whitespace().chain(PLAIN_OPTIONS.iter().copied()).any(|k| k.eq_ignore_ascii_case(word))
}

/// Whether a word or literal names a passphrase: the value after it is never shown.
fn names_secret(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    w.contains("passphrase") || w.contains("password")
}

/// The statement with every secret replaced by `redacted`, and the byte offset of each token in
/// that text (the end-of-input token sits just after the last real token).
///
/// Secrets are:
/// - after a word naming a passphrase (`encryption_passphrase`, `NEW_PASSPHRASE`, …), or after an
///   `=` that does not follow one of [`PLAIN_OPTIONS`], up to the next `,` `)` or `;`: every
///   literal and every word but the grammar's keywords;
/// - the secret query parameters and password of every string literal, through [`redact_uri`];
/// - the same in unquoted text (a run of tokens with no space between them, such as a URI whose
///   quote went missing);
/// - a literal that mentions a passphrase, a quoted identifier holding a `'`, or an unterminated
///   literal that may have swallowed a secret: a misplaced quote turns the statement inside out, so all of it goes,
///   and it opens a secret context as above.
///
/// Comments that may hold a secret become `-- redacted`.
pub(crate) fn redact(sql: &str, tokens: &[Token]) -> (String, Vec<usize>) {
    let mut r = Redactor::default();
    let mut out = String::with_capacity(sql.len());
    let mut positions = Vec::with_capacity(tokens.len());
    let mut last = 0;
    let mut i = 0;
    while let Some(first) = tokens.get(i) {
        if first.tok == Tok::Eof {
            positions.push(out.len());
            break;
        }
        push_gap(&mut out, &sql[last..first.start], r.in_secret);
        // A run: tokens with nothing between them, outside string literals.
        let mut j = i + 1;
        if in_run(&first.tok) {
            while tokens.get(j).is_some_and(|t| in_run(&t.tok) && t.start == tokens[j - 1].end) {
                j += 1;
            }
        }
        let run_start = out.len();
        let mut run = String::new();
        for token in &tokens[i..j] {
            positions.push(run_start + run.len());
            run.push_str(&r.render(&sql[token.start..token.end], &token.tok));
        }
        let scrubbed = if in_run(&first.tok) { scrub_unquoted(&run) } else { run.clone() };
        if scrubbed != run {
            // Offsets inside a scrubbed run no longer hold; point at its start.
            positions[i..j].fill(run_start);
        }
        out.push_str(&scrubbed);
        last = tokens[j - 1].end;
        i = j;
    }
    push_gap(&mut out, &sql[last.min(sql.len())..], r.in_secret);
    (out, positions)
}

fn in_run(tok: &Tok) -> bool {
    !matches!(tok, Tok::Str(_) | Tok::Unterminated { .. } | Tok::Eof)
}

/// Query values and `user:password@` in unquoted text (a URI whose quotes went missing), as
/// [`redact_uri`] hides them.
fn scrub_unquoted(text: &str) -> String {
    if text.contains(['?', '@']) {
        redact_uri(text)
    } else {
        text.to_string()
    }
}

/// Whether a literal is a URI (`scheme://…`): shown through [`redact_uri`]; any other literal
/// outside a keyword's known value may be a secret typed in the wrong place, and is hidden.
fn is_uri(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// The state of the secret context while tokens are rendered left to right.
#[derive(Default)]
struct Redactor {
    /// Inside a secret value: after a word naming a passphrase, until `,` `)` or `;`.
    in_secret: bool,
    /// A token other than `=` followed the opener: only then does `,` or `)` close the context
    /// (`encryption_passphrase = , 'pw'` still hides `'pw'`).
    has_value: bool,
    /// The previous token was one of [`PLAIN_OPTIONS`].
    after_plain: bool,
    /// The secret context is the value of one of [`PLAIN_OPTIONS`]: a URI literal in it is shown
    /// (through [`redact_uri`]); anything else in it is hidden all the same, since a passphrase
    /// typed into the wrong option (`revision_history = 'pw'`) is still a passphrase.
    plain_value: bool,
}

impl Redactor {
    fn open(&mut self) {
        self.in_secret = true;
        self.has_value = false;
        self.plain_value = false;
    }

    /// How one token reads in the redacted statement.
    fn render(&mut self, original: &str, tok: &Tok) -> String {
        // `=` and the word naming a secret open the context; the tokens after them are its value.
        let mut opener = *tok == Tok::Punct('=');
        if opener {
            self.open();
            self.plain_value = self.after_plain;
        }
        let rendered = match tok {
            Tok::Word(w) if names_secret(w) => {
                self.open();
                opener = true;
                original.to_string()
            }
            Tok::Str(s) if names_secret(s) => {
                self.open();
                opener = true;
                quote_string(REDACTED)
            }
            // A quoted identifier holding a `'` swallowed string literals.
            Tok::QuotedIdent(s) if names_secret(s) || s.contains('\'') => {
                self.open();
                opener = true;
                format!("\"{REDACTED}\"")
            }
            Tok::Unterminated { quote, content } => {
                let risky = self.in_secret || content.contains(['\'', '"']) || names_secret(content);
                if risky {
                    self.open();
                    format!("{quote}{REDACTED}")
                } else if *quote == '"' {
                    format!("{quote}{content}")
                } else if is_uri(content) {
                    format!("{quote}{}", redact_uri(content))
                } else {
                    format!("{quote}{REDACTED}")
                }
            }
            Tok::Punct(',' | ')' | ';') if !self.in_secret || self.has_value => {
                self.in_secret = false;
                original.to_string()
            }
            Tok::Word(w) if self.in_secret && !is_keyword(w) => REDACTED.to_string(),
            Tok::Str(s) if self.in_secret && !(self.plain_value && is_uri(s)) => quote_string(REDACTED),
            Tok::Str(s) if is_uri(s) => {
                let r = redact_uri(s);
                if &r == s {
                    original.to_string()
                } else {
                    quote_string(&r)
                }
            }
            Tok::Str(s) if shown_literal(s) => original.to_string(),
            Tok::Str(_) => quote_string(REDACTED),
            Tok::Number(_) if self.in_secret => REDACTED.to_string(),
            Tok::QuotedIdent(_) if self.in_secret => format!("\"{REDACTED}\""),
            _ => original.to_string(),
        };
        self.has_value |= self.in_secret && !opener;
        self.after_plain = matches!(tok, Tok::Word(w) if PLAIN_OPTIONS.iter().any(|o| o.eq_ignore_ascii_case(w)));
        rendered
    }
}

/// Literals shown in errors although they are not URIs: the values of the grammar's own
/// options and clauses, which are never a secret (`'@daily'`, `'true'`, `'retry'`, a `LATEST`
/// subdirectory path such as `'/2026/11/23-101500.00'`, an `AS OF SYSTEM TIME` such as `'-10s'`).
fn shown_literal(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "true",
        "false",
        "retry",
        "reschedule",
        "pause",
        "start",
        "skip",
        "wait",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
        // `/2026/11/23-101500.00`: a backup's subdirectory as SHOW BACKUPS prints it.
        || (s.starts_with('/') && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_digit() || b"/-.".contains(&b)))
}

/// Copies the whitespace and comments between two tokens, replacing a comment that may hold a
/// secret (one in a secret context, naming a passphrase, or holding a quote) by `-- redacted`.
fn push_gap(out: &mut String, gap: &str, in_secret: bool) {
    let mut rest = gap;
    while let Some(start) = rest.find("--") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('\n').map_or(rest.len(), |i| start + i);
        let comment = &rest[start..end];
        if in_secret || names_secret(comment) || comment.contains(['\'', '"']) {
            out.push_str("-- ");
            out.push_str(REDACTED);
        } else {
            out.push_str(&scrub_unquoted(comment));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::error::Error;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn kinds(sql: &str) -> Vec<Tok> {
        lex(sql).into_iter().map(|t| t.tok).collect()
    }

    fn word(w: &str) -> Tok {
        Tok::Word(w.to_string())
    }

    #[test]
    fn lexes_every_token_kind() {
        assert_eq!(
            kinds("BACKUP \"My \"\"T\"\"\", 'it''s' 1700000000000000000.0000000001 db.* (x=1); -- c\n7."),
            vec![
                word("BACKUP"),
                Tok::QuotedIdent("My \"T\"".into()),
                Tok::Punct(','),
                Tok::Str("it's".into()),
                Tok::Number("1700000000000000000.0000000001".into()),
                word("db"),
                Tok::Punct('.'),
                Tok::Punct('*'),
                Tok::Punct('('),
                word("x"),
                Tok::Punct('='),
                Tok::Number("1".into()),
                Tok::Punct(')'),
                Tok::Punct(';'),
                Tok::Number("7".into()),
                Tok::Punct('.'),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn token_spans_are_byte_offsets() {
        let spans: Vec<(usize, usize)> = lex("é_1 'ü' x").into_iter().map(|t| (t.start, t.end)).collect();
        assert_eq!(spans, vec![(0, 4), (5, 9), (10, 11), (11, 11)]);
    }

    #[test]
    fn lex_errors_become_tokens() {
        assert_eq!(kinds("a @ b"), vec![word("a"), Tok::Bad("unexpected character"), word("b"), Tok::Eof]);
        assert_eq!(kinds("'abc"), vec![Tok::Unterminated { quote: '\'', content: "abc".into() }, Tok::Eof]);
        assert_eq!(kinds("\"\""), vec![Tok::Bad("zero-length quoted identifier"), Tok::Eof]);
        assert_eq!(
            Tok::Unterminated { quote: '"', content: String::new() }.lex_error(),
            Some("unterminated quoted identifier")
        );
    }

    fn redacted(sql: &str) -> (String, Vec<usize>) {
        redact(sql, &lex(sql))
    }

    #[test]
    fn redacts_passphrases_and_uri_secrets_and_tracks_offsets() {
        let sql = "BACKUP INTO 's3://b?AWS_SECRET_ACCESS_KEY=k' WITH encryption_passphrase = 'pw', detached";
        let (text, positions) = redacted(sql);
        assert_eq!(
            text,
            "BACKUP INTO 's3://b?AWS_SECRET_ACCESS_KEY=redacted' WITH encryption_passphrase = 'redacted', detached"
        );
        // BACKUP INTO '…' WITH encryption_passphrase = '…' , detached <eof>
        assert_eq!(positions, vec![0, 7, 12, 52, 57, 79, 81, 91, 93, 101]);
    }

    #[test]
    fn redacts_anything_that_may_be_a_passphrase() {
        assert_eq!(
            redacted("x encryption_passphrase = hunter2 'pw' 12 \"q\", 'ok'").0,
            "x encryption_passphrase = redacted 'redacted' redacted \"redacted\", 'redacted'"
        );
        assert_eq!(
            redacted("ADD NEW_PASSPHRASE = 'a' WITH OLD_PASSPHRASE = 'b'").0,
            "ADD NEW_PASSPHRASE = 'redacted' WITH OLD_PASSPHRASE = 'redacted'"
        );
        assert_eq!(redacted("WITH encryption_passphrase = 'pw").0, "WITH encryption_passphrase = 'redacted");
        assert_eq!(redacted("INTO 'x, \"y\"").0, "INTO 'redacted");
        assert_eq!(redacted("INTO \"x").0, "INTO \"x");
        assert_eq!(redacted("encryption_passphrase hunter2 x").0, "encryption_passphrase redacted redacted");
        assert_eq!(redacted("'x WITH encryption_passphrase = 'hunter2'").0, "'redacted'redacted'redacted");
        assert_eq!(redacted("\"a passphrase\" hunter2").0, "\"redacted\" redacted");
        assert_eq!(redacted("").0, "");
        assert_eq!(redacted("a -- c").1, vec![0, 1]);
        assert_eq!(
            redacted("encryption_passphrase = , 'pw', 'ok'").0,
            "encryption_passphrase = , 'redacted', 'redacted'"
        );
        assert_eq!(
            redacted("a -- it's\nencryption_passphrase = -- pw\n'x' -- c").0,
            "a -- redacted\nencryption_passphrase = -- redacted\n'redacted' -- redacted"
        );
        assert_eq!(redacted("a -- c\n, b -- d").0, "a -- c\n, b -- d");
    }

    #[test]
    fn errors_never_show_secrets() {
        let sql =
            "BACKUP INTO 's3://b?AWS_SECRET_ACCESS_KEY=topsecret' WITH encryption_passphrase = 'hunter2', detached FOO";
        let Err(Error::Parse { message, statement, position }) = parse(sql) else { panic!("{sql}") };
        assert_eq!(message, "unexpected input after end of statement");
        assert_eq!(
            statement,
            "BACKUP INTO 's3://b?AWS_SECRET_ACCESS_KEY=redacted' WITH encryption_passphrase = 'redacted', detached FOO"
        );
        assert_eq!(&statement[position..], "FOO");
        let shown = parse(sql).map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(shown.starts_with("at or near \"FOO\""), "{shown}");
        for sql in [
            "BACKUP INTO 'x' WITH encryption_passphrase = 'hunter2",
            "BACKUP INTO 'x' WITH encryption_passphrase 'hunter2'",
            "BACKUP INTO 'x' WITH encryption_passphrase = hunter2",
            "BACKUP INTO 'x' WITH encryption_passphrase = x 'hunter2'",
            "ALTER BACKUP 'x' ADD NEW_PASSPHRASE = 'hunter2' WITH OLD_PASSPHRASE 'hunter2'",
            "RESTORE FROM 'x' WITH encryption_passphrase = 'hunter2', foo",
            "SHOW BACKUP 'x WITH encryption_passphrase = 'hunter2'",
            "BACKUP INTO 'https://u:hunter2@h/p' FOO",
        ] {
            let e = parse(sql).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("syntax error") && !e.contains("hunter2"), "{sql}: {e}");
        }
    }
}
