//! The build root: the one directory below which starts make their build
//! directories and cleanups remove them. Deleting files is the most
//! dangerous thing anvyl does on the host, so the root is confined: the
//! state directory must be absolute, and `builds` inside it must be a real
//! directory — not a symlink out of it, not a file. It is opened once per
//! operation and everything below it is made, listed and removed relative to
//! that handle, never by re-walking a path that a link could redirect.
//!
//! A build directory is named `<agent>.<start>`: the agent it was made for
//! and the start id that fences it.

use std::io;
use std::path::{Path, PathBuf};

use cap_fs_ext::DirExt;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt};

use crate::ids::StartId;
use crate::name::AgentName;

/// Name of the build root inside the state directory.
pub const BUILDS: &str = "builds";

/// Why the build root cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildRootError {
    /// The state directory is empty or relative.
    #[error("the state directory must be an absolute path, not {0:?}")]
    NotAbsolute(PathBuf),
    /// `builds` is a symlink, a file or anything but a real directory.
    #[error(
        "build root {path} is not a directory inside the state directory ({what}); move it away"
    )]
    NotADirectory {
        /// The build root.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// An I/O error on the build root or below it.
    #[error("build root {path}: {cause}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        cause: io::Error,
    },
}

/// One build directory found below the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FoundDir {
    /// Its full path (for reports and for the engine's build context).
    pub path: PathBuf,
    /// Its name below the root.
    pub name: String,
    /// The agent it was made for.
    pub agent: AgentName,
    /// The start it belongs to (the part after the dot).
    pub start: StartId,
}

/// What removing a build directory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Removed now.
    Removed,
    /// It was not there.
    Gone,
    /// Something else than a directory stands there (a link, a file): left.
    NotADirectory,
    /// A mount lies at or below it (this path): everything else was
    /// removed, the mounted files and the directories leading to them stay.
    HoldsAMount(PathBuf),
}

/// The build root of a state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRoot {
    state_dir: PathBuf,
}

impl BuildRoot {
    /// The build root of `state_dir`, which must be absolute (an empty or
    /// relative one would mean "wherever the command runs").
    pub fn new(state_dir: &Path) -> Result<Self, BuildRootError> {
        if !state_dir.is_absolute() {
            return Err(BuildRootError::NotAbsolute(state_dir.to_path_buf()));
        }
        Ok(Self {
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// `<state_dir>/builds`.
    pub fn path(&self) -> PathBuf {
        self.state_dir.join(BUILDS)
    }

    /// The name of the build directory of `start` of `agent`.
    pub fn dir_name(agent: &AgentName, start: &StartId) -> String {
        format!("{agent}.{start}")
    }

    /// The path of the build directory of `start` of `agent`.
    pub fn dir_path(&self, agent: &AgentName, start: &StartId) -> PathBuf {
        self.path().join(Self::dir_name(agent, start))
    }

    fn io(&self, path: PathBuf) -> impl FnOnce(io::Error) -> BuildRootError {
        move |cause| BuildRootError::Io { path, cause }
    }

    /// Opens the root without following a link at `builds`; `None` when it
    /// does not exist (nothing was ever built).
    fn open(&self) -> Result<Option<Dir>, BuildRootError> {
        let state = match Dir::open_ambient_dir(&self.state_dir, ambient_authority()) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(self.state_dir.clone())(e)),
        };
        match state.symlink_metadata(BUILDS) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(self.path())(e)),
            Ok(meta) if meta.is_symlink() => return Err(self.not_a_directory("a symlink")),
            Ok(meta) if !meta.is_dir() => return Err(self.not_a_directory("not a directory")),
            Ok(_) => {}
        }
        // The check above and this open race a swap to a link: the open
        // itself refuses to follow one.
        match state.open_dir_nofollow(BUILDS) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(self.not_a_directory("a symlink")),
        }
    }

    fn not_a_directory(&self, what: &'static str) -> BuildRootError {
        BuildRootError::NotADirectory {
            path: self.path(),
            what,
        }
    }

    /// Makes the build directory of `start` and writes `files` into it.
    /// Returns its path, for the engine's build context.
    pub fn make_dir(
        &self,
        agent: &AgentName,
        start: &StartId,
        files: &[(&str, &[u8])],
    ) -> Result<PathBuf, BuildRootError> {
        std::fs::create_dir_all(&self.state_dir).map_err(self.io(self.state_dir.clone()))?;
        let state = Dir::open_ambient_dir(&self.state_dir, ambient_authority())
            .map_err(self.io(self.state_dir.clone()))?;
        match state.create_dir(BUILDS) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.io(self.path())(e)),
        }
        let root = self.open()?.ok_or_else(|| self.not_a_directory("gone"))?;
        let name = Self::dir_name(agent, start);
        let path = self.path().join(&name);
        let mut builder = DirBuilder::new();
        // Only the owner reads what a build writes (it may hold a spec).
        builder.mode(0o700);
        root.create_dir_with(&name, &builder)
            .map_err(self.io(path.clone()))?;
        let dir = root
            .open_dir_nofollow(&name)
            .map_err(self.io(path.clone()))?;
        for (file, contents) in files {
            dir.write(file, contents)
                .map_err(self.io(path.join(file)))?;
        }
        Ok(path)
    }

    /// Every `<agent>.<start>` directory directly below the root. Anything
    /// else there is not anvyl's and is ignored.
    pub fn list(&self) -> Result<Vec<FoundDir>, BuildRootError> {
        let Some(root) = self.open()? else {
            return Ok(Vec::new());
        };
        let entries = root.entries().map_err(self.io(self.path()))?;
        let mut found: Vec<FoundDir> = entries
            .filter_map(Result::ok)
            // Only real directories: a link or a file under a build
            // directory's name is not one, and a plan must not promise it.
            .filter(|entry| {
                entry
                    .file_type()
                    .is_ok_and(|t| t.is_dir() && !t.is_symlink())
            })
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (agent, start) = name.split_once('.')?;
                if start.is_empty() || start.contains(['/', '.']) {
                    return None;
                }
                Some(FoundDir {
                    path: self.path().join(&name),
                    agent: AgentName::new(agent).ok()?,
                    start: StartId::from_stored(start),
                    name,
                })
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Removes the build directory `name` (directly below the root) and
    /// everything in it, following no link.
    pub fn remove(&self, name: &str) -> Result<Removal, BuildRootError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Ok(Removal::NotADirectory);
        }
        let Some(root) = self.open()? else {
            return Ok(Removal::Gone);
        };
        let path = self.path().join(name);
        match root.symlink_metadata(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
            Err(e) => return Err(self.io(path)(e)),
            Ok(meta) if !meta.is_dir() || meta.is_symlink() => return Ok(Removal::NotADirectory),
            Ok(_) => {}
        }
        // The tree is walked relative to handles, links are removed, never
        // followed, and the walk stops at any other mount, as `rm -r
        // --one-file-system` does: a bind mount below a build directory is
        // someone's data, not the build's.
        let here = Filesystem::of(&root).map_err(self.io(self.path()))?;
        // The kernel's list of mount points too: before Linux 5.8 statx
        // gives no mount id, and a bind mount of the same filesystem has
        // the same device.
        let walk = Walk {
            fs: here,
            mounts: mount_points(),
        };
        let real = std::fs::canonicalize(self.path())
            .map(|root| root.join(name))
            .unwrap_or_else(|_| path.clone());
        match remove_tree(&root, name, &path, &real, &walk) {
            Ok(None) => Ok(Removal::Removed),
            Ok(Some(mount)) => Ok(Removal::HoldsAMount(mount)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Gone),
            Err(e) => Err(self.io(path)(e)),
        }
    }
}

/// Which mount a directory is on: its device and, where the kernel says
/// (Linux 5.8 and later), its mount id — a bind mount of a directory of the
/// same filesystem has the same device but its own mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Filesystem {
    dev: u64,
    mount: Option<u64>,
}

impl Filesystem {
    fn of(dir: &Dir) -> io::Result<Self> {
        use cap_std::fs::MetadataExt;
        let dev = dir.dir_metadata()?.dev();
        let mount = rustix::fs::statx(
            dir,
            "",
            rustix::fs::AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::MNT_ID,
        )
        .ok()
        .filter(|s| {
            rustix::fs::StatxFlags::from_bits_retain(s.stx_mask)
                .contains(rustix::fs::StatxFlags::MNT_ID)
        })
        .map(|s| s.stx_mnt_id);
        Ok(Self { dev, mount })
    }

    fn holds(&self, other: &Self) -> bool {
        self.dev == other.dev
            && (self.mount.is_none() || other.mount.is_none() || self.mount == other.mount)
    }
}

/// What a removal must not cross: the build root's filesystem, and the
/// mount points the kernel lists.
struct Walk {
    fs: Filesystem,
    mounts: std::collections::BTreeSet<PathBuf>,
}

/// Every mount point of this process's mount namespace, from
/// `/proc/self/mountinfo` (its fifth field, with `\040`-style escapes);
/// none where there is no such file.
fn mount_points() -> std::collections::BTreeSet<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Default::default();
    };
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_point(field)))
        .collect()
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash.
fn unescape_mount_point(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the directory `name` below `parent` and everything in it that
/// is on the build root's filesystem. `path` names it for reports, `real`
/// is its path without links (as the mount table names mounts). Returns the
/// first mount found (at `path` or below), which stays together with the
/// directories leading to it.
fn remove_tree(
    parent: &Dir,
    name: &str,
    path: &Path,
    real: &Path,
    walk: &Walk,
) -> io::Result<Option<PathBuf>> {
    let dir = parent.open_dir_nofollow(name)?;
    if walk.mounts.contains(real) || !walk.fs.holds(&Filesystem::of(&dir)?) {
        return Ok(Some(path.to_path_buf()));
    }
    let mut mount = None;
    for entry in dir.entries()? {
        let entry = entry?;
        let child = entry.file_name();
        let child_path = path.join(&child);
        let is_dir = entry
            .file_type()
            .is_ok_and(|t| t.is_dir() && !t.is_symlink());
        let found = if is_dir {
            let real = real.join(&child);
            remove_tree(&dir, &child.to_string_lossy(), &child_path, &real, walk)?
        } else if walk.mounts.contains(&real.join(&child)) {
            // A file bind-mounted over one of the build's.
            Some(child_path)
        } else {
            match dir.remove_file(&child) {
                Ok(()) => None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                // A file bind-mounted over one of the build's.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                    Some(child_path)
                }
                Err(e) => return Err(e),
            }
        };
        mount = mount.or(found);
    }
    if mount.is_none() {
        drop(dir);
        parent.remove_dir(name)?;
    }
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> AgentName {
        AgentName::new("web").unwrap()
    }

    #[test]
    fn mount_points_are_read_as_the_kernel_escapes_them() {
        assert_eq!(unescape_mount_point("/a\\040b/c\\011d"), "/a b/c\td");
        assert_eq!(unescape_mount_point("/x\\134y"), "/x\\y");
        assert_eq!(unescape_mount_point("/plain\\z"), "/plain\\z");
        // This process's root is always mounted.
        assert!(mount_points().contains(Path::new("/")));
    }

    #[test]
    fn an_empty_or_relative_state_dir_is_refused() {
        for dir in ["", ".", "state", "./state"] {
            assert!(
                matches!(
                    BuildRoot::new(Path::new(dir)),
                    Err(BuildRootError::NotAbsolute(_))
                ),
                "{dir:?}"
            );
        }
    }

    #[test]
    fn dirs_are_made_listed_and_removed_below_the_root() {
        let state = tempfile::tempdir().unwrap();
        let root = BuildRoot::new(state.path()).unwrap();
        let start = StartId::random();
        let path = root
            .make_dir(&web(), &start, &[("Dockerfile", b"FROM x\n")])
            .unwrap();
        assert_eq!(std::fs::read(path.join("Dockerfile")).unwrap(), b"FROM x\n");
        std::fs::create_dir(root.path().join("notes")).unwrap();
        let found = root.list().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((&found[0].agent, &found[0].start), (&web(), &start));
        assert_eq!(root.remove(&found[0].name).unwrap(), Removal::Removed);
        assert_eq!(root.remove(&found[0].name).unwrap(), Removal::Gone);
        assert!(root.path().join("notes").exists());
    }

    #[test]
    fn a_symlinked_build_root_is_never_followed() {
        let state = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir(elsewhere.path().join("project.v1")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), state.path().join(BUILDS)).unwrap();
        let root = BuildRoot::new(state.path()).unwrap();
        assert!(matches!(
            root.list(),
            Err(BuildRootError::NotADirectory { .. })
        ));
        assert!(matches!(
            root.remove("project.v1"),
            Err(BuildRootError::NotADirectory { .. })
        ));
        assert!(root.make_dir(&web(), &StartId::random(), &[]).is_err());
        assert!(elsewhere.path().join("project.v1").exists());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_as_build_root_is_reported() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join(BUILDS), "x").unwrap();
        let root = BuildRoot::new(state.path()).unwrap();
        let err = root.list().unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn links_inside_a_build_dir_are_removed_not_followed() {
        let state = tempfile::tempdir().unwrap();
        let precious = tempfile::tempdir().unwrap();
        std::fs::write(precious.path().join("keep"), "x").unwrap();
        let root = BuildRoot::new(state.path()).unwrap();
        let start = StartId::random();
        let dir = root.make_dir(&web(), &start, &[]).unwrap();
        std::os::unix::fs::symlink(precious.path(), dir.join("link")).unwrap();
        // A link planted in the root under a build dir's name stays too.
        std::os::unix::fs::symlink(precious.path(), root.path().join("web.planted")).unwrap();
        assert_eq!(
            root.remove(&BuildRoot::dir_name(&web(), &start)).unwrap(),
            Removal::Removed
        );
        assert_eq!(root.remove("web.planted").unwrap(), Removal::NotADirectory);
        std::fs::write(root.path().join("web.file"), "x").unwrap();
        assert!(
            root.list().unwrap().is_empty(),
            "links and files are not build dirs"
        );
        assert!(precious.path().join("keep").exists());
    }
}
