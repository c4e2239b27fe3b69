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
//! is named as the variable (`ANVYL_PARALLELISM`).

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
    let what = match &e.kind {
        Kind::UnknownField(found, expected) => {
            let suggestion = closest(found, expected)
                .map(|k| format!(", did you mean `{table}{k}`?"))
                .unwrap_or_default();
            format!("unknown key `{key}`{suggestion}")
        }
        other if environment => other.to_string(),
        other => format!("`{key}`: {other}"),
    };
    match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        Some(Source::File(file)) => match locate(file, &path) {
            Some(place) => format!(
                "{}:{}:{}: {what}\n{}",
                file.display(),
                place.line,
                place.column,
                place.snippet()
            ),
            None => format!("{}: {what}", file.display()),
        },
        // The environment: name the variable the user set.
        Some(Source::Custom(_)) | None if environment => {
            format!("ANVYL_{}: {what}", env_name(&path))
        }
        _ => what,
    }
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

/// Where a key sits in a TOML file.
struct Place {
    line: usize,
    column: usize,
    text: String,
    width: usize,
}

impl Place {
    /// The line, and a caret under the key on a line of its own.
    fn snippet(&self) -> String {
        let number = self.line.to_string();
        format!(
            "  {number} | {}\n  {} | {}{}",
            self.text,
            " ".repeat(number.len()),
            " ".repeat(self.column - 1),
            "^".repeat(self.width.max(1))
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
        width: text[span.start..span.end.min(line_end)].chars().count(),
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
