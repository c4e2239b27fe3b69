//! The published figures: `--write-docs` puts each section the run
//! measured into docs/benchmarks.md, between that section's markers
//! (`<!-- bench:engines:begin -->` … `<!-- bench:engines:end -->`), with
//! a line saying how and when it was measured. Everything outside the
//! markers, the prose around the tables, stays byte for byte as written;
//! sections that did not run keep their figures. A marker that is missing
//! or doubled stops the write before the file is touched, rather than
//! guessing where a table belongs.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One part's fresh text: what the bench printed for it, and the engines
/// it ran on.
pub struct Section {
    /// The marker's name: `engines`, `fleet` or `watcher`, as `--only`
    /// names the part.
    pub name: String,
    pub markdown: String,
    pub engines: Vec<String>,
}

/// Rewrites the sections of the file at `path`: all of them, or (on any
/// marker problem) none.
pub fn write(path: &Path, sections: &[Section], command: &str) -> Result<()> {
    if sections.is_empty() {
        eprintln!("bench: no part ran; {} is unchanged", path.display());
        return Ok(());
    }
    let mut doc =
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    // date(1), as xtask runs the system's tools for the rest: a day is all
    // it needs of a calendar.
    let date = crate::process::output(Command::new("date").args(["-u", "+%Y-%m-%d"]))?;
    let date = date.trim();
    for section in sections {
        let body = format!(
            "{}\n\nMeasured with `{command}` on {date}; engines: {}.",
            section.markdown.trim_matches('\n'),
            section.engines.join(", ")
        );
        doc = replace_section(&doc, &section.name, &body)
            .with_context(|| format!("{}", path.display()))?;
    }
    std::fs::write(path, doc).with_context(|| format!("write {}", path.display()))?;
    eprintln!(
        "bench: wrote the {} section(s) of {}",
        (sections.iter().map(|s| s.name.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        path.display()
    );
    Ok(())
}

/// `doc` with the text between `section`'s markers replaced by `body`,
/// set off by blank lines (a Markdown table needs one above it); the rest
/// byte-identical.
pub fn replace_section(doc: &str, section: &str, body: &str) -> Result<String> {
    let begin = format!("<!-- bench:{section}:begin -->");
    let end = format!("<!-- bench:{section}:end -->");
    let once = |marker: &str| {
        let at: Vec<usize> = doc.match_indices(marker).map(|(at, _)| at).collect();
        match at[..] {
            [at] => Ok(at),
            [] => bail!("no {marker} marker: where does the {section} table go?"),
            _ => bail!(
                "{marker} appears {} times: which one holds the {section} table?",
                at.len()
            ),
        }
    };
    let (from, to) = (once(&begin)? + begin.len(), once(&end)?);
    if to < from {
        bail!("{end} comes before {begin}");
    }
    let body = body.trim_matches('\n');
    Ok(format!("{}\n\n{body}\n\n{}", &doc[..from], &doc[to..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\nProse.\n\n<!-- bench:engines:begin -->\n\n| old |\n|---|\n\n<!-- bench:engines:end -->\n\nMore prose, untouched.\n<!-- bench:fleet:begin -->fleet<!-- bench:fleet:end -->\n";

    #[test]
    fn replaces_between_the_markers_only() {
        let new = replace_section(DOC, "engines", "\n| new |\n|---|\n").unwrap();
        assert_eq!(
            new,
            DOC.replace("| old |", "| new |"),
            "the rest is byte-identical"
        );
        let fleet = replace_section(&new, "fleet", "ratio 1.1").unwrap();
        assert_eq!(
            fleet,
            new.replace("begin -->fleet<!--", "begin -->\n\nratio 1.1\n\n<!--")
        );
    }

    #[test]
    fn replacing_twice_gives_the_same_file() {
        let once = replace_section(DOC, "engines", "| new |").unwrap();
        assert_eq!(replace_section(&once, "engines", "| new |").unwrap(), once);
    }

    #[test]
    fn a_missing_doubled_or_swapped_marker_is_an_error() {
        let e = replace_section(DOC, "watcher", "x").unwrap_err();
        assert!(
            e.to_string().contains("no <!-- bench:watcher:begin -->"),
            "{e}"
        );
        let doubled = format!("{DOC}<!-- bench:engines:end -->\n");
        let e = replace_section(&doubled, "engines", "x").unwrap_err();
        assert!(e.to_string().contains("appears 2 times"), "{e}");
        let swapped = "<!-- bench:fleet:end --> <!-- bench:fleet:begin -->";
        let e = replace_section(swapped, "fleet", "x").unwrap_err();
        assert!(e.to_string().contains("comes before"), "{e}");
    }

    #[test]
    fn write_adds_how_it_was_measured_and_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("benchmarks.md");
        std::fs::write(&path, DOC).unwrap();
        let section = |name: &str| Section {
            name: name.into(),
            markdown: "\n### Fleet\n\nratio 1.1\n".into(),
            engines: vec![
                "docker (bookworm) 20.10.24".into(),
                "podman (bookworm) 4.3.1".into(),
            ],
        };
        let command = "cargo xtask bench --only fleet";
        // The second section has no markers: the first is not written either.
        assert!(write(&path, &[section("fleet"), section("watcher")], command).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), DOC);
        write(&path, &[section("fleet")], command).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        let (_, fleet) = written.split_once("<!-- bench:fleet:begin -->").unwrap();
        let (fleet, _) = fleet.split_once("<!-- bench:fleet:end -->").unwrap();
        let (figures, measured) = fleet.split_once("\n\nMeasured with ").unwrap();
        assert_eq!(figures, "\n\n### Fleet\n\nratio 1.1");
        let (how, engines) = measured.split_once(" on ").unwrap();
        assert_eq!(how, "`cargo xtask bench --only fleet`");
        let (date, engines) = engines.split_once("; engines: ").unwrap();
        assert!(date.len() == 10 && date.starts_with("20"), "{date}");
        assert_eq!(
            engines,
            "docker (bookworm) 20.10.24, podman (bookworm) 4.3.1.\n\n"
        );
        assert!(written.starts_with(DOC.split("<!-- bench:fleet").next().unwrap()));
    }

    #[test]
    fn the_published_file_has_each_pair_once() {
        let doc =
            std::fs::read_to_string(crate::project_root().join("docs/benchmarks.md")).unwrap();
        for part in <super::super::options::Only as clap::ValueEnum>::value_variants() {
            replace_section(&doc, &part.name(), "x").unwrap();
        }
    }
}
