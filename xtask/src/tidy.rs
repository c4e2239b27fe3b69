//! Tidy checks that `cargo test` enforces: every Rust file opens with a `//!`
//! paragraph saying what it is for, no line ends in blanks, every error says
//! its cause once (in its message, never also as its `source()`), and every
//! member's dependency is declared once, in `[workspace.dependencies]`
//! (one version of each, chosen in one place).

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && !name.to_string_lossy().starts_with('.') {
                    rust_files(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_module_says_what_it_is_for_and_no_line_ends_in_blanks() {
        let mut files = Vec::new();
        rust_files(&crate::project_root(), &mut files);
        assert!(files.len() > 20, "found only {} Rust files", files.len());
        let mut problems = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read");
            if !text.starts_with("//!") {
                problems.push(format!(
                    "{}: does not open with a //! paragraph",
                    file.display()
                ));
            }
            for (n, line) in text.lines().enumerate() {
                if line.ends_with(' ') || line.ends_with('\t') {
                    problems.push(format!("{}:{}: trailing blanks", file.display(), n + 1));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// anvyl's errors are one-line messages that are printed, logged and
    /// stored as they are: each says its cause in its own text and keeps it
    /// typed in a field. A `#[source]` (or a `#[from]` that is not
    /// transparent, or a field named `source`, which thiserror takes as
    /// one) would say the cause a second time to whatever walks the chain.
    fn error_rule_breaches(file: &str, text: &str) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let errors_here = text.contains("thiserror");
        let mut found = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            let code = line.trim();
            let transparent = n > 0 && lines[n - 1].contains("#[error(transparent)]");
            let field = code.strip_prefix("pub ").unwrap_or(code);
            // A declaration names a type; a struct literal's value is an
            // expression, which calls something.
            let source_field = errors_here
                && field.strip_prefix("source: ").is_some_and(|ty| {
                    ty.ends_with(',') && ty.starts_with(char::is_alphabetic) && !ty.contains('(')
                });
            if code.contains("#[source]")
                || (code.contains("#[from]") && !transparent)
                || source_field
            {
                found.push(format!("{file}:{}: {code}", n + 1));
            }
        }
        found
    }

    #[test]
    fn an_error_that_would_say_its_cause_twice_is_found() {
        let text =
            "#[derive(thiserror::Error)]\n#[error(transparent)]\nState(#[from] StateError),\n\
                    #[error(\"{0}\")]\nEngine(#[from] BackendError),\n\
                    Io { #[source] cause: io::Error },\n    source: BackendError,\n\
                    source: Box::new(e),\n";
        assert_eq!(
            error_rule_breaches("e.rs", text),
            [
                "e.rs:5: Engine(#[from] BackendError),",
                "e.rs:6: Io { #[source] cause: io::Error },",
                "e.rs:7: source: BackendError,",
            ]
        );
    }

    #[test]
    fn every_error_says_its_cause_once() {
        let mut files = Vec::new();
        rust_files(&crate::project_root(), &mut files);
        let own = file!().rsplit('/').next().expect("a file name");
        let mut problems = Vec::new();
        for file in files.iter().filter(|f| !f.ends_with(own)) {
            let text = std::fs::read_to_string(file).expect("read");
            problems.extend(error_rule_breaches(&file.display().to_string(), &text));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The dependency lines of a manifest that do not come from the
    /// workspace: `name = "1"` or `name = { version = … }` in any
    /// `[*dependencies]` table (a `name.workspace = true` line, or a table
    /// with `workspace = true`, is the workspace's).
    fn own_dependencies(manifest: &str) -> Vec<String> {
        let mut in_dependencies = false;
        let mut own = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_dependencies = line.trim_matches(['[', ']']).ends_with("dependencies");
            } else if in_dependencies && !line.starts_with('#') && line.contains('=') {
                let (key, value) = line.split_once('=').expect("contains =");
                let workspace = key.trim().ends_with(".workspace")
                    || value.replace(' ', "").contains("workspace=true");
                if !workspace {
                    own.push(line.to_string());
                }
            }
        }
        own
    }

    #[test]
    fn a_manifest_line_outside_the_workspace_is_found() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\n\
                        tokio = { workspace = true, features = [\"net\"] }\n\
                        log = \"0.4\"\n[dev-dependencies]\nregex = { version = \"1\" }\n\
                        [[test]]\nname = \"e2e\"\n";
        assert_eq!(
            own_dependencies(manifest),
            ["log = \"0.4\"", "regex = { version = \"1\" }"]
        );
    }

    #[test]
    fn every_dependency_comes_from_the_workspace() {
        let root = crate::project_root();
        let mut problems = Vec::new();
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("read");
        let members = (workspace.lines())
            .find_map(|l| l.trim().strip_prefix("members"))
            .expect("a members line");
        let members: Vec<&str> = members.split('"').skip(1).step_by(2).collect();
        assert!(members.len() >= 6, "members: {members:?}");
        for member in members {
            let path = root.join(member).join("Cargo.toml");
            let manifest = std::fs::read_to_string(&path).expect("read a manifest");
            for line in own_dependencies(&manifest) {
                problems.push(format!(
                    "{}: `{line}`: declare it in [workspace.dependencies]",
                    path.display()
                ));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
