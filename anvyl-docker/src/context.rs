//! Build contexts: the build directory packed as the tar stream the Docker
//! API expects (podman-api packs its contexts itself), with anvyl's labels
//! written into the Dockerfile as one final `LABEL` instruction (see
//! [`anvyl_core::lifecycle::labelled_dockerfile`] for why).

use std::path::Path;

use anvyl_core::{BackendError, Labels};

use anvyl_core::lifecycle::labelled_dockerfile;
pub use anvyl_core::lifecycle::LABELLED_DOCKERFILE;

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
