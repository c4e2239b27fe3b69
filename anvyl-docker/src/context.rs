//! Build contexts: the build directory packed as the tar stream the Docker
//! API expects (podman-api packs its contexts itself), with anvyl's labels
//! written into the Dockerfile as one final `LABEL` instruction.
//!
//! Why not the API's `labels` parameter: Docker's classic builder turns it
//! into one `LABEL` step per label, in no fixed order, so the images between
//! them carry some of anvyl's labels and are shared as build cache between
//! starts (measured on 20.10: `--label a=1 --label s=one` then `s=two` reuse
//! the `a=1` step). Removing one agent's image then pruned a step image that
//! a concurrent start was building on ("No such image"), and with pruning
//! off those half-labelled images stayed behind. One instruction labels the
//! final image only.

use std::path::Path;

use anvyl_core::{BackendError, Labels};

/// The name of the Dockerfile anvyl writes into the context.
pub const LABELLED_DOCKERFILE: &str = ".anvyl.Dockerfile";

/// Packs `dir` into an uncompressed tar archive, without following symlinks.
pub fn pack_context(dir: &Path) -> Result<Vec<u8>, BackendError> {
    pack(dir, None)
}

/// Packs `dir` and adds [`LABELLED_DOCKERFILE`]: its `Dockerfile` followed by
/// one `LABEL` instruction with every label of `labels`.
pub fn pack_labelled_context(dir: &Path, labels: &Labels) -> Result<Vec<u8>, BackendError> {
    let dockerfile =
        std::fs::read_to_string(dir.join("Dockerfile")).map_err(|e| BackendError::Local {
            operation: "read Dockerfile",
            message: format!("{}: {e}", dir.display()),
        })?;
    pack(dir, Some(labelled(&dockerfile, labels)))
}

/// `dockerfile` with one final `LABEL` instruction of `labels`.
fn labelled(dockerfile: &str, labels: &Labels) -> String {
    let mut text = dockerfile.trim_end().to_string();
    if !labels.is_empty() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
            .collect();
        text.push_str("\nLABEL ");
        text.push_str(&pairs.join(" "));
    }
    text.push('\n');
    text
}

/// A double-quoted Dockerfile word: backslashes and quotes escaped, and no
/// line break can end the instruction early.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ");
    format!("\"{escaped}\"")
}

fn pack(dir: &Path, dockerfile: Option<String>) -> Result<Vec<u8>, BackendError> {
    let failed = |e: std::io::Error| BackendError::Local {
        operation: "pack build context",
        message: format!("{}: {e}", dir.display()),
    };
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    archive.append_dir_all(".", dir).map_err(failed)?;
    if let Some(text) = dockerfile {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, LABELLED_DOCKERFILE, text.as_bytes())
            .map_err(failed)?;
    }
    archive.into_inner().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_one_final_instruction() {
        let mut labels = Labels::new();
        labels.insert("io.anvyl.agent".into(), "web".into());
        labels.insert("odd".into(), "a \"b\"\nc\\".into());
        assert_eq!(
            labelled("FROM x\nCMD [\"sh\"]\n", &labels),
            "FROM x\nCMD [\"sh\"]\nLABEL \"io.anvyl.agent\"=\"web\" \"odd\"=\"a \\\"b\\\" c\\\\\"\n"
        );
        assert_eq!(labelled("FROM x", &Labels::new()), "FROM x\n");
    }
}
