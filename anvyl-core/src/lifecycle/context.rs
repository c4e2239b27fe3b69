//! Build contexts: a start's build directory packed as the tar stream both
//! engines' build endpoints take, with anvyl's labels written into the
//! Dockerfile as one final `LABEL` instruction (see [`labelled_dockerfile`]
//! for why). Both backends pack here rather than through their client
//! crates: podman-api packs with the `tar` crate's defaults, which follow
//! symlinks and make sparse entries that libpod refuses.

use std::path::Path;

use crate::backend::{BackendError, Labels};

use super::dockerfile::{labelled_dockerfile, LABELLED_DOCKERFILE};

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
    pack(dir, Some(labelled_dockerfile(&dockerfile, labels)))
}

fn pack(dir: &Path, dockerfile: Option<String>) -> Result<Vec<u8>, BackendError> {
    let failed = |e: std::io::Error| BackendError::Local {
        operation: "pack build context",
        message: format!("{}: {e}", dir.display()),
    };
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    // Every file as a plain entry: the `tar` crate writes a GNU sparse
    // entry for a file its filesystem reports with no blocks, which some
    // filesystems do for a moment after a write, and Docker 20.10's
    // builder and Podman 4.3's refuse the whole context for it
    // ("unhandled tar header type 83"). Contexts are small; holes save nothing here.
    archive.sparse(false);
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

    /// A file of one hole packs as a plain file of its full length.
    #[test]
    fn a_file_without_blocks_packs_as_a_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::File::create(dir.path().join("hole"))
            .and_then(|f| f.set_len(4096))
            .unwrap();
        let packed = pack_context(dir.path()).unwrap();
        let mut archive = tar::Archive::new(packed.as_slice());
        let hole = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().ends_with("hole"))
            .expect("the hole is packed");
        assert_eq!(hole.header().entry_type(), tar::EntryType::Regular);
        assert_eq!(hole.header().size().unwrap(), 4096);
    }
}
