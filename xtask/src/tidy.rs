//! Tidy checks that `cargo test` enforces: every Rust file opens with a `//!`
//! paragraph saying what it is for, no line ends in blanks, and every
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
