//! Build contexts: the build directory packed as the tar stream the Docker
//! API expects. (podman-api packs its contexts itself.)

use std::path::Path;

use anvyl_core::BackendError;

/// Packs `dir` into an uncompressed tar archive, without following symlinks.
pub fn pack_context(dir: &Path) -> Result<Vec<u8>, BackendError> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    archive
        .append_dir_all(".", dir)
        .and_then(|()| archive.into_inner())
        .map_err(|e| BackendError::Local {
            operation: "pack build context",
            message: format!("{}: {e}", dir.display()),
        })
}
