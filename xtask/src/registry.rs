//! The private registry the tests pull from: Debian's `docker-registry`
//! (distribution 2.8) on a loopback port, with TLS from certificates
//! generated for the run and `htpasswd` authentication, its storage below
//! the engines' directory. It holds one base, [`BASE_REPOSITORY`], pushed by
//! xtask itself through the registry API — a layer of this machine's static
//! busybox — so no engine and no login is needed to fill it. Each engine
//! trusts its CA through `certs.d` (`/etc/docker/certs.d/ADDR/ca.crt` of its
//! root, which Docker and Podman both read); the files go with the
//! registry, as does its process — at the end, on Ctrl-C or SIGTERM
//! (`teardown`), and after a kill -9 at the next run's start.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::process::output;

/// The repository and tag of the base the registry holds.
pub const BASE_REPOSITORY: &str = "team/base:1";

/// The file that marks a `certs.d` entry as xtask's own.
const MARK: &str = "anvyl-itest";

/// The test user.
pub const USER: &str = "anvyl-itest";

/// A second user, whose password has the characters that the standard and
/// the URL-safe base64 alphabets encode apart (`>`, `?`, `~`).
pub const TRICKY_USER: &str = "anvyl-tricky";

/// A running private registry.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The test user's password, made for this run.
    pub password: String,
    /// The CA its certificate is signed by.
    pub ca: PathBuf,
    leftovers: Arc<Leftovers>,
    /// Stops it and removes what it wrote: on drop, or from the signal
    /// handler (a `certs.d` entry of this machine must not outlive the run).
    teardown: crate::teardown::Guard,
}

/// What the registry leaves until it is torn down.
struct Leftovers {
    child: Mutex<Child>,
    /// The `certs.d/ADDR` directories written for the engines.
    trusted: Mutex<Vec<PathBuf>>,
}

impl Leftovers {
    fn remove(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        crate::process::stop(&mut child, Duration::from_secs(5));
        let mut trusted = self.trusted.lock().unwrap_or_else(PoisonError::into_inner);
        for dir in trusted.drain(..) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Registry {
    /// Starts it in `dir` (made afresh) and pushes the base.
    pub fn start(dir: &Path) -> Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        fs::create_dir_all(dir)?;
        let tls = crate::tls::generate(&dir.join("tls"))?;
        let address = format!("127.0.0.1:{}", tls.port);
        // Letters and digits only: a password the tests can look for in
        // anvyl's output, logs and state, and that every encoding leaves be.
        let password = format!("pw{:x}{:x}", std::process::id(), nanos());
        let mut htpasswd = String::new();
        for (user, password) in [(USER, password.clone()), (TRICKY_USER, tricky(&password))] {
            let line = output(Command::new("htpasswd").args(["-Bbn", user, &password]))
                .context("htpasswd (apache2-utils) makes the registry's password file")?;
            htpasswd.push_str(line.trim());
            htpasswd.push('\n');
        }
        fs::write(dir.join("htpasswd"), htpasswd)?;
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
             http:\n  addr: {address}\n  tls:\n    certificate: {cert}\n    key: {key}\n\
             auth:\n  htpasswd:\n    realm: anvyl-itest\n    path: {htpasswd}\n",
            data = dir.join("data").display(),
            cert = tls.server.join("server-cert.pem").display(),
            key = tls.server.join("server-key.pem").display(),
            htpasswd = dir.join("htpasswd").display(),
        );
        fs::write(dir.join("config.yml"), config)?;
        let log = fs::File::create(dir.join("registry.log"))?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        crate::engines::die_with_parent(&mut cmd, libc::SIGTERM);
        let child = cmd
            .spawn()
            .context("start docker-registry (Debian's docker-registry package)")?;
        let leftovers = Arc::new(Leftovers {
            child: Mutex::new(child),
            trusted: Mutex::new(Vec::new()),
        });
        let teardown = {
            let leftovers = leftovers.clone();
            crate::teardown::register(Box::new(move || leftovers.remove()))
        };
        let registry = Self {
            address,
            password,
            ca: tls.server.join("ca.pem"),
            leftovers,
            teardown,
        };
        // This machine's engines and CLIs (podman login, docker login's
        // daemon) trust it too.
        registry.trust(None)?;
        registry.wait_until_ready(dir)?;
        let began = Instant::now();
        registry.push_base(dir)?;
        eprintln!(
            "xtask: registry {} holds {BASE_REPOSITORY} (pushed in {:.1}s)",
            registry.address,
            began.elapsed().as_secs_f64()
        );
        Ok(registry)
    }

    /// Makes the engines of `root` (this machine's, when `None`) trust
    /// the registry's certificate.
    pub fn trust(&self, root: Option<&Path>) -> Result<()> {
        let certs = root.unwrap_or(Path::new("/")).join("etc/docker/certs.d");
        // What a run killed with -9 left: marked as xtask's, and its
        // registry gone (another checkout's run may be live beside this one).
        for entry in fs::read_dir(&certs).into_iter().flatten().flatten() {
            let answers = (entry.file_name().to_str())
                .and_then(|address| address.parse::<std::net::SocketAddr>().ok())
                .is_some_and(|address| {
                    std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
                });
            if entry.path().join(MARK).exists() && !answers {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let dir = certs.join(&self.address);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        fs::copy(&self.ca, dir.join("ca.crt"))?;
        fs::write(
            dir.join(MARK),
            "written by cargo xtask itest for its private registry\n",
        )?;
        (self.leftovers.trusted.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .push(dir);
        Ok(())
    }

    fn curl(&self) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&self.ca)
            .args(["-u", &format!("{USER}:{}", self.password)]);
        cmd
    }

    fn wait_until_ready(&self, dir: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answered = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(&self.ca)
                .arg(format!("https://{}/v2/", self.address))
                .output()?;
            if String::from_utf8_lossy(&answered.stdout) == "401" {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
                bail!(
                    "the registry at {} did not answer in 30 s:\n{log}",
                    self.address
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Pushes [`BASE_REPOSITORY`]: one gzipped layer with busybox and its
    /// applets' links, its image config, and a schema 2 manifest.
    fn push_base(&self, dir: &Path) -> Result<()> {
        let (layer, diff_id) = busybox_layer()?;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["sh"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        })
        .to_string()
        .into_bytes();
        let (repository, tag) = BASE_REPOSITORY.split_once(':').expect("a tag");
        let layer_digest = self.upload(dir, repository, &layer)?;
        let config_digest = self.upload(dir, repository, &config)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": layer.len(),
                "digest": layer_digest,
            }],
        })
        .to_string();
        let file = dir.join("manifest.json");
        fs::write(&file, manifest)?;
        output(
            self.curl()
                .args(["-X", "PUT", "-H"])
                .arg("Content-Type: application/vnd.docker.distribution.manifest.v2+json")
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg(format!(
                    "https://{}/v2/{repository}/manifests/{tag}",
                    self.address
                )),
        )
        .context("push the base's manifest")?;
        Ok(())
    }

    /// Uploads `blob` to `repository` (start an upload, then put it whole);
    /// returns its digest.
    fn upload(&self, dir: &Path, repository: &str, blob: &[u8]) -> Result<String> {
        let digest = format!("sha256:{:x}", Sha256::digest(blob));
        let headers = output(
            self.curl()
                .args(["-X", "POST", "-o", "/dev/null", "-D", "-"])
                .arg(format!(
                    "https://{}/v2/{repository}/blobs/uploads/",
                    self.address
                )),
        )
        .context("start a blob upload")?;
        let location = (headers.lines())
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("location")
                    .then(|| value.trim().to_string())
            })
            .context("the registry gave no upload location")?;
        let location = match location.starts_with('/') {
            true => format!("https://{}{location}", self.address),
            false => location,
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let file = dir.join("blob");
        fs::write(&file, blob)?;
        output(
            self.curl()
                .args(["-X", "PUT", "-H", "Content-Type: application/octet-stream"])
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg(format!("{location}{separator}digest={digest}")),
        )
        .context("upload a blob")?;
        Ok(digest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.teardown.undo();
    }
}

/// [`TRICKY_USER`]'s password: three of each, so one falls where its
/// base64 differs whatever the alignment.
pub fn tricky(password: &str) -> String {
    format!("{password}>>>???~~~")
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// `bin/busybox` and a link per applet, gzipped; with the digest of the
/// uncompressed tar (the image's diff id).
fn busybox_layer() -> Result<(Vec<u8>, String)> {
    let applets = output(Command::new(crate::engines::BUSYBOX).arg("--list"))?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "bin/", std::io::empty())?;
    let busybox = fs::read(crate::engines::BUSYBOX)?;
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(busybox.len() as u64);
    tar.append_data(&mut file, "bin/busybox", busybox.as_slice())?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "busybox" {
            continue;
        }
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        tar.append_link(&mut link, format!("bin/{applet}"), "busybox")?;
    }
    let raw = tar.into_inner()?;
    let diff_id = format!("sha256:{:x}", Sha256::digest(&raw));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw)?;
    Ok((gz.finish()?, diff_id))
}
