//! Configuration errors as a person reads them. figment says `unknown
//! field: found `paralelism` … for key "default.paralelism" in /x TOML
//! file`; this says where, as the user wrote it, shows the line with a caret
//! under the key, and names the closest valid key:
//!
//! ```text
//! error: configuration: /etc/anvyl/anvyl.toml:2:1: unknown key `paralelism`, did you mean `parallelism`?
//!   2 | paralelism = 4
//!     | ^^^^^^^^^^
//! ```
//!
//! The caret line is found with `toml_edit`'s spans; an environment variable
//! is named as the variable (`ANVYL_PARALLELISM`). A file that is not TOML
//! at all is said the same way, with the caret where parsing stopped:
//!
//! ```text
//! error: configuration: /etc/anvyl/anvyl.toml:2:13: invalid TOML: expected `.`, `=`
//!   2 | parallelism 4
//!     |             ^
//! ```
//!
//! Control characters the user wrote (in the line, a key, a value) are
//! shown as Rust escapes (`\t`, `\u{1b}`): echoed raw, an escape sequence
//! would restyle the terminal and a tab would move the caret off its column.

use std::ops::Range;
use std::path::Path;

use figment::error::Kind;
use figment::Source;

/// How close a typo must be to a valid key to be suggested.
const CLOSE_ENOUGH: f64 = 0.8;

/// Every error figment reported, one per line with its snippet below.
pub fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| one(&e))
        .collect::<Vec<_>>()
        .join("\n")
}

fn one(e: &figment::Error) -> String {
    // figment's own display puts the profile ("default") before the key;
    // the user never wrote it.
    let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
    let key = path.join(".");
    let table = path[..path.len().saturating_sub(1)]
        .iter()
        .map(|t| format!("{t}."))
        .collect::<String>();
    let environment = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment"));
    let file = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(Source::File(file)) => Some(file),
        _ => None,
    };
    // A file that does not parse: figment holds only toml's own multi-line
    // report, with no key; the file is parsed again for where and what.
    if let (Some(file), Kind::Message(_), true) = (file, &e.kind, path.is_empty()) {
        if let Some(syntax) = syntax_error(file) {
            return syntax;
        }
    }
    let what = match &e.kind {
        Kind::UnknownField(found, expected) => {
            let suggestion = closest(found, expected)
                .map(|k| format!(", did you mean `{table}{k}`?"))
                .unwrap_or_default();
            format!("unknown key `{key}`{suggestion}")
        }
        other if environment || key.is_empty() => other.to_string(),
        other => format!("`{key}`: {other}"),
    };
    let what = escaped(&what);
    match file {
        Some(file) => match locate(file, &path) {
            Some(place) => place.described(file, &what),
            None => format!("{}: {what}", escaped(&file.display().to_string())),
        },
        // The environment: name the variable the user set.
        None if environment => format!("ANVYL_{}: {what}", env_name(&path)),
        None => what,
    }
}

/// `file`'s TOML syntax error, if it has one: where parsing stopped and
/// why, in toml's words joined on one line.
fn syntax_error(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let error = toml_edit::ImDocument::parse(text.as_str()).err()?;
    let span = error.span()?;
    let why: Vec<&str> = (error.message().lines().map(str::trim))
        .filter(|l| !l.is_empty())
        .collect();
    let why = match why.join("; ") {
        // toml says nothing when the text ends where more must follow.
        why if why.is_empty() && span.start >= text.len() => "unexpected end of file".into(),
        why if why.is_empty() => "unexpected text".into(),
        why => why,
    };
    let place = place(&text, span)?;
    Some(place.described(file, &format!("invalid TOML: {}", escaped(&why))))
}

/// `text` with each control character as its Rust escape (`\t`, `\u{1b}`),
/// so that what the user wrote cannot restyle the terminal or break the
/// error's one line.
fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The variable that sets `path` (`docker.endpoint` → `DOCKER_ENDPOINT`).
fn env_name(path: &[&str]) -> String {
    path.join("_").to_ascii_uppercase()
}

/// The valid key nearest to `found`, when it is near enough to be a typo.
fn closest(found: &str, expected: &[&str]) -> Option<String> {
    expected
        .iter()
        .map(|k| (strsim::jaro_winkler(found, k), k))
        .filter(|(score, _)| *score >= CLOSE_ENOUGH)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.to_string())
}

/// A place in a TOML file: a key, or where parsing stopped.
struct Place {
    line: usize,
    /// In characters, from 1; may be just past the end of `text` (a file
    /// that ends too early).
    column: usize,
    text: String,
    width: usize,
}

impl Place {
    /// `file:line:column: what`, and the snippet below it.
    fn described(&self, file: &Path, what: &str) -> String {
        format!(
            "{}:{}:{}: {what}\n{}",
            escaped(&file.display().to_string()),
            self.line,
            self.column,
            self.snippet()
        )
    }

    /// The line, and a caret under the key on a line of its own; the caret
    /// counts the columns of the line as shown, escapes included.
    fn snippet(&self) -> String {
        let number = self.line.to_string();
        let before: String = self.text.chars().take(self.column - 1).collect();
        let past_the_end = (self.column - 1).saturating_sub(before.chars().count());
        let under: String = self
            .text
            .chars()
            .skip(self.column - 1)
            .take(self.width)
            .collect();
        format!(
            "  {number} | {}\n  {} | {}{}",
            escaped(&self.text),
            " ".repeat(number.len()),
            " ".repeat(escaped(&before).chars().count() + past_the_end),
            "^".repeat(escaped(&under).chars().count().max(1))
        )
    }
}

/// Finds the key at `path` in `file` (its last part, inside the tables the
/// rest names).
fn locate(file: &Path, path: &[&str]) -> Option<Place> {
    let text = std::fs::read_to_string(file).ok()?;
    let document = toml_edit::ImDocument::parse(text.as_str()).ok()?;
    let (last, tables) = path.split_last()?;
    let mut table = document.as_table();
    for name in tables {
        table = table.get(name)?.as_table()?;
    }
    place(&text, table.key(last)?.span()?)
}

fn place(text: &str, span: Range<usize>) -> Option<Place> {
    let before = text.get(..span.start)?;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[span.start..]
        .find('\n')
        .map(|i| span.start + i)
        .unwrap_or(text.len());
    Some(Place {
        line: before.matches('\n').count() + 1,
        column: text[line_start..span.start].chars().count() + 1,
        text: text[line_start..line_end].trim_end().to_string(),
        width: text
            .get(span.start..span.end.min(line_end))
            .map_or(1, |t| t.chars().count()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_suggested_and_a_stranger_is_not() {
        let keys = &["backend", "parallelism", "stop_timeout"];
        assert_eq!(closest("paralelism", keys).as_deref(), Some("parallelism"));
        assert_eq!(
            closest("stop_timout", keys).as_deref(),
            Some("stop_timeout")
        );
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(
            escaped("a\tb\x1b[0m\r\x7f é"),
            "a\\tb\\u{1b}[0m\\r\\u{7f} é"
        );
    }

    #[test]
    fn the_caret_counts_the_columns_of_the_line_as_shown() {
        // A tab and an ESC before the error: each widens the line as shown.
        let text = "\tkey = \"a\x1bb\"\n";
        let start = text.find('\x1b').unwrap();
        let shown = place(text, start..start + 1).unwrap();
        assert_eq!((shown.line, shown.column), (1, 10));
        assert_eq!(
            shown.snippet(),
            "  1 | \\tkey = \"a\\u{1b}b\"\n    |           ^^^^^^"
        );
        // A file that ends where a value must follow: the caret one past
        // the (trimmed) end of the line.
        let text = "a = 1\nb = ";
        let end = place(text, text.len()..text.len()).unwrap();
        assert_eq!((end.line, end.column), (2, 5));
        assert_eq!(end.snippet(), "  2 | b =\n    |     ^");
    }

    #[test]
    fn the_caret_sits_under_the_key_on_its_own_line() {
        let text = "backend = \"docker\"\n\n[docker]\n  endpiont = \"unix:///x\"\n";
        let start = text.find("endpiont").unwrap();
        let place = place(text, start..start + 8).unwrap();
        assert_eq!((place.line, place.column), (4, 3));
        assert_eq!(
            place.snippet(),
            "  4 |   endpiont = \"unix:///x\"\n    |   ^^^^^^^^"
        );
    }
}
