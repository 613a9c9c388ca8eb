//! The KEY=VALUE syntax of systemd's `EnvironmentFile=`: parsing with line numbers, and
//! rewriting one key while keeping every other byte (comments, order, blank lines).
//!
//! Accepted, as systemd does: blank lines; comments starting with `#` or `;` (after optional
//! leading white space); `KEY=VALUE` with white space around the key and before the value
//! ignored; values in double quotes (with `\"`, `\\`, `\$`, `\``, `\n` escapes) or single quotes
//! (literal); unquoted values with trailing white space trimmed; a trailing `\` continues a
//! logical line on the next physical line.

use std::fmt;

/// One `KEY=VALUE` assignment and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    /// 1-based line number of the first physical line of the assignment.
    pub line: usize,
    /// Number of physical lines the assignment spans (continuations).
    pub span: usize,
}

/// A syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Whether `key` is a valid environment variable name for systemd.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits text into logical lines: (first line number, physical line count, joined text).
fn logical_lines(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, String)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let (start, span, mut acc) = current.take().unwrap_or((lineno, 0, String::new()));
        // Comments end at the line end even inside a continuation, as in systemd.
        if acc.is_empty() {
            let t = raw.trim_start();
            if t.starts_with('#') || t.starts_with(';') {
                out.push((start, span + 1, raw.to_string()));
                continue;
            }
        }
        if let Some(stripped) = raw.strip_suffix('\\') {
            if !ends_with_escaped_backslash(raw) {
                acc.push_str(stripped);
                current = Some((start, span + 1, acc));
                continue;
            }
        }
        acc.push_str(raw);
        out.push((start, span + 1, acc));
    }
    if let Some(rest) = current {
        out.push(rest);
    }
    out
}

/// `\\` at the end is an escaped backslash, not a continuation.
fn ends_with_escaped_backslash(raw: &str) -> bool {
    raw.chars().rev().take_while(|c| *c == '\\').count() % 2 == 0
}

/// Parses a whole file. Every assignment is returned in order; the first syntax error stops.
pub fn parse(text: &str) -> Result<Vec<Assignment>, SyntaxError> {
    let mut out = Vec::new();
    for (line, span, logical) in logical_lines(text) {
        let t = logical.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((key, rest)) = t.split_once('=') else {
            return Err(SyntaxError {
                line,
                message: format!("expected KEY=VALUE, found `{}`", shorten(t)),
            });
        };
        let key = key.trim();
        if !valid_key(key) {
            return Err(SyntaxError {
                line,
                message: format!(
                    "`{}` is not a valid key (letters, digits and `_`, not starting with a digit)",
                    shorten(key)
                ),
            });
        }
        let value = unquote(rest.trim_start()).map_err(|message| SyntaxError { line, message })?;
        out.push(Assignment {
            key: key.to_string(),
            value,
            line,
            span,
        });
    }
    Ok(out)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Unquotes a value the way systemd does for environment files.
fn unquote(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    let mut any_quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                any_quoted = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated double quote".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err("unterminated double quote".into()),
                            Some('n') => out.push('\n'),
                            Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                            Some(other) => {
                                out.push('\\');
                                out.push(other);
                            }
                        },
                        Some(other) => out.push(other),
                    }
                }
            }
            '\'' => {
                any_quoted = true;
                loop {
                    match chars.next() {
                        None => return Err("unterminated single quote".into()),
                        Some('\'') => break,
                        Some(other) => out.push(other),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => out.push('\\'),
            },
            other => out.push(other),
        }
    }
    if !any_quoted {
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
    }
    Ok(out)
}

/// Quotes a value so that [`parse`] (and systemd) read it back unchanged.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+,%".contains(c));
    if plain {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' | '\\' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Returns `text` with `key` set to `value`: the last assignment of `key` is replaced in place
/// (all its physical lines), earlier duplicates are left alone, and a missing key is appended.
/// Everything else is kept byte for byte.
pub fn set_key(text: &str, key: &str, value: &str) -> Result<String, SyntaxError> {
    let assignments = parse(text)?;
    let new_line = format!("{key}={}", quote(value));
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match assignments.iter().rev().find(|a| a.key == key) {
        Some(a) => {
            let mut out = String::with_capacity(text.len() + new_line.len());
            for l in &lines[..a.line - 1] {
                out.push_str(l);
            }
            out.push_str(&new_line);
            let last = a.line - 1 + a.span - 1;
            // Keep the original line ending of the replaced line.
            if lines[last].ends_with('\n') {
                out.push('\n');
            }
            for l in &lines[last + 1..] {
                out.push_str(l);
            }
            Ok(out)
        }
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&new_line);
            out.push('\n');
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &[(&str, &str, usize)]) {
        let got = parse(input).unwrap();
        let got: Vec<(&str, &str, usize)> = got
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_str(), a.line))
            .collect();
        assert_eq!(got, expect, "input: {input:?}");
    }

    #[test]
    fn parses_systemd_syntax() {
        check("A=1\n", &[("A", "1", 1)]);
        check("  A = 1  \n", &[("A", "1", 1)]);
        check("# c\n; c\n\nB=two words  \n", &[("B", "two words", 4)]);
        check("C=\"q \\\"x\\\" \\$y\"\n", &[("C", "q \"x\" $y", 1)]);
        check("D='lit \\n'\n", &[("D", "lit \\n", 1)]);
        check("E=a\\\nb\nF=2\n", &[("E", "ab", 1), ("F", "2", 3)]);
        check("G=\n", &[("G", "", 1)]);
        check("H=x#notacomment\n", &[("H", "x#notacomment", 1)]);
        check("I=\"  kept  \"\n", &[("I", "  kept  ", 1)]);
        check("J=ends\\\\\nK=1", &[("J", "ends\\", 1), ("K", "1", 2)]);
    }

    #[test]
    fn reports_syntax_errors_with_line() {
        let e = parse("A=1\nnot an assignment\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: expected KEY=VALUE, found `not an assignment`"
        );
        let e = parse("\n\n1A=3\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("not a valid key"), "{e}");
        let e = parse("A=\"open\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: unterminated double quote");
        let e = parse("A='open\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: unterminated single quote");
    }

    #[test]
    fn set_key_replaces_in_place_and_keeps_comments() {
        let text = "# header\nSEG_SECONDS=60 # not a comment in systemd\n\n; tail\nX=1\n";
        let out = set_key(text, "SEG_SECONDS", "180").unwrap();
        assert_eq!(out, "# header\nSEG_SECONDS=180\n\n; tail\nX=1\n");
    }

    #[test]
    fn set_key_appends_when_missing_and_handles_no_final_newline() {
        assert_eq!(set_key("A=1", "B", "2").unwrap(), "A=1\nB=2\n");
        assert_eq!(set_key("", "B", "2").unwrap(), "B=2\n");
    }

    #[test]
    fn set_key_replaces_continued_lines_and_last_duplicate() {
        let text = "A=1\nB=x\\\ny\nC=3\nB=z\n";
        assert_eq!(
            set_key(text, "B", "new value").unwrap(),
            "A=1\nB=x\\\ny\nC=3\nB=\"new value\"\n"
        );
        let text = "A=1\nB=x\\\ny\nC=3\n";
        assert_eq!(set_key(text, "B", "q").unwrap(), "A=1\nB=q\nC=3\n");
    }

    #[test]
    fn quote_round_trips() {
        for v in [
            "plain",
            "with space",
            "q\"uote",
            "$dollar",
            "back\\slash",
            "",
            "a\nb",
        ] {
            let text = format!("K={}\n", quote(v));
            let parsed = parse(&text).unwrap();
            assert_eq!(parsed[0].value, v, "{text:?}");
        }
    }
}
