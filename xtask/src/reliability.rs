//! The reliability summary: the end-to-end tests tally what they tried —
//! races, faults injected and survived, crash points, concurrent operations,
//! hostile cases — and what must stay zero, one `key n` line at a time into
//! a file; this sums them into one line per engine and fails the run when a
//! must-be-zero figure is not zero, a fault was not survived, or — on a
//! full run — the suite tried nothing of a kind.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The figures, in the order they are printed, and whether each must be 0.
const FIGURES: &[(&str, &str, bool)] = &[
    ("races", "races tried", false),
    ("faults_injected", "faults injected", false),
    ("faults_survived", "survived", false),
    ("crash_points", "crash points", false),
    ("concurrent_ops", "concurrent operations", false),
    ("hostile_cases", "hostile cases", false),
    ("watcher_actions", "watcher actions", false),
    ("live_removed", "live resources removed", true),
    ("foreign_removed", "non-owned resources removed", true),
    ("owned_leftovers", "owned leftovers after convergence", true),
];

/// Sums the tallies in `file` into the summary line of `engine`.
pub fn summary_line(engine: &str, file: &Path) -> Result<String> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
    };
    let mut sums: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        let (key, n) = line
            .split_once(' ')
            .with_context(|| format!("bad tally line {line:?}"))?;
        let known = FIGURES
            .iter()
            .find(|(k, _, _)| *k == key)
            .with_context(|| format!("unknown tally {key:?}"))?;
        *sums.entry(known.0).or_default() += n.parse::<usize>()?;
    }
    let parts: Vec<String> = FIGURES
        .iter()
        .map(|(key, title, _)| format!("{title} {}", sums.get(key).copied().unwrap_or(0)))
        .collect();
    Ok(format!("xtask: reliability {engine}: {}", parts.join(", ")))
}

/// The figure titled `title` in a summary line.
fn figure(line: &str, title: &str) -> Option<usize> {
    line.rsplit(": ")
        .next()?
        .split(", ")
        .find_map(|part| part.strip_prefix(title)?.trim().parse().ok())
}

/// Fails when a figure that must be zero is not, when fewer faults were
/// survived than injected, or — `full`, no test filter — when a kind of
/// trial did not happen at all.
pub fn check(line: &str, full: bool) -> Result<()> {
    for (_, title, must_be_zero) in FIGURES {
        let value = figure(line, title);
        if *must_be_zero && value != Some(0) {
            bail!("reliability: {title} is {value:?} (must be 0)");
        }
        if full && !must_be_zero && value.unwrap_or(0) == 0 {
            bail!("reliability: no {title}: the suite did not run them");
        }
    }
    if figure(line, "faults injected") != figure(line, "survived") {
        bail!("reliability: not every injected fault was survived: {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_sum_into_one_line_and_nonzero_harm_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.txt");
        std::fs::write(
            &file,
            "faults_injected 3\nfaults_injected 2\nlive_removed 0\n",
        )
        .unwrap();
        let line = summary_line("docker", &file).unwrap();
        assert!(line.contains("faults injected 5"), "{line}");
        assert!(
            check(&line, false).is_err(),
            "5 injected, 0 survived: {line}"
        );
        std::fs::write(&file, "faults_injected 5\nfaults_survived 5\n").unwrap();
        let line = summary_line("docker", &file).unwrap();
        assert!(check(&line, false).is_ok(), "{line}");
        assert!(
            check(&line, true).is_err(),
            "no races on a full run: {line}"
        );
        std::fs::write(&file, "live_removed 1\n").unwrap();
        let line = summary_line("docker", &file).unwrap();
        assert!(check(&line, false).is_err(), "{line}");
        std::fs::write(&file, "nonsense 1\n").unwrap();
        assert!(summary_line("docker", &file).is_err());
    }
}
