//! Bases from the private registry xtask runs (TLS, a user and password):
//! a start pulls with the credentials the engine's own CLI stored —
//! `docker login` / `podman login`, or a credential helper — and runs; not
//! logged in, or a tag the registry lacks, fails with one line that says
//! what to do, exit 1 and nothing left; the password never shows in
//! anvyl's output, its state directory or the agent's image.

use std::path::Path;
use std::process::Stdio;

use anvyl_core::AgentStatus;
use anvyl_tests::proxy::{Fault, FaultProxy, Hold};
use anvyl_tests::{Run, Sandbox};

use crate::lifecycle::{assert_cleaned, create};
use crate::unique;

/// The registry `cargo xtask itest` started.
struct Registry {
    address: String,
    user: String,
    password: String,
}

impl Registry {
    fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by cargo xtask itest"))
        };
        Self {
            address: var("ANVYL_ITEST_REGISTRY"),
            user: var("ANVYL_ITEST_REGISTRY_USER"),
            password: var("ANVYL_ITEST_REGISTRY_PASSWORD"),
        }
    }

    /// The base it holds.
    fn base(&self) -> String {
        format!("{}/team/base:1", self.address)
    }
}

/// The variable that points the engine's CLI at its credentials file, and
/// that file, below `dir`.
fn login_file(s: &Sandbox, dir: &Path) -> (&'static str, std::path::PathBuf) {
    match s.itest.backend.as_str() {
        "podman" => ("REGISTRY_AUTH_FILE", dir.join("auth.json")),
        _ => ("DOCKER_CONFIG", dir.to_path_buf()),
    }
}

/// Logs in with the engine's own CLI (`docker login` asks the engine,
/// `podman login` the registry), its credentials stored below `dir`.
fn cli_login(s: &Sandbox, r: &Registry, dir: &Path) {
    cli_login_as(s, r, dir, &r.user, &r.password);
}

fn cli_login_as(s: &Sandbox, r: &Registry, dir: &Path, user: &str, password: &str) {
    let (_, file) = login_file(s, dir);
    let mut cmd = s.engine_cli();
    match s.itest.backend.as_str() {
        "podman" => cmd.args(["login", "--authfile"]).arg(&file),
        _ => cmd.arg("--config").arg(&file).arg("login"),
    };
    let mut child = cmd
        .args(["-u", user, "--password-stdin", &r.address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the engine's CLI");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "login: {out:?}");
}

/// An agent FROM the registry's base that pulls it at every start (other
/// tests on the engine may have pulled it already).
fn pulling_always(s: &Sandbox, r: &Registry, stem: &str) -> anvyl_core::AgentName {
    let args = [
        "--image",
        &r.base(),
        "--pull",
        "always",
        "--command",
        "sleep 600",
    ];
    create(s, &unique(stem), &args)
}

/// Asserts `run` and every file below the state directory keep the
/// password to themselves.
fn assert_no_password(s: &Sandbox, r: &Registry, runs: &[&Run]) {
    for run in runs {
        assert!(
            !run.stdout.contains(&r.password) && !run.stderr.contains(&r.password),
            "the password shows: {run:?}"
        );
    }
    let mut dirs = vec![s.state_dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(&r.password),
                    "{} holds the password",
                    path.display()
                );
            }
        }
    }
}

/// The engine CLI's `history` of `image`, every step in full.
fn history(s: &Sandbox, image: &str) -> String {
    let out = s
        .engine_cli()
        .args(["history", "--no-trunc", image])
        .output()
        .expect("run the engine's CLI");
    assert!(out.status.success(), "history: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_private_base_is_pulled_with_the_engine_clis_login() {
    let s = Sandbox::new().await;
    let r = Registry::from_env();
    let logins = s.shared_dir();
    cli_login(&s, &r, logins.path());
    let (var, file) = login_file(&s, logins.path());
    let agent = pulling_always(&s, &r, "private");
    // Every log line there is, the engine clients' included: none may
    // carry the password (checked below).
    let run = s.anvyl_with(
        &["-vv", "agent", "start", agent.as_str()],
        &[(var, file.to_str().unwrap()), ("RUST_LOG", "trace")],
    );
    assert!(
        run.stderr.lines().count() > 5,
        "no trace log to search: {run:?}"
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        s.state().agent(&agent).unwrap().status,
        AgentStatus::Running
    );
    assert!(
        !history(&s, &agent.image_tag()).contains(&r.password),
        "the agent's image history holds the password"
    );
    let stop = s.anvyl(&["agent", "remove", agent.as_str(), "--force", "--yes"]);
    assert_eq!(stop.code, Some(0), "{stop:?}");
    assert_no_password(&s, &r, &[&run, &stop]);
}

/// A password whose base64 differs between the standard and the URL-safe
/// alphabets reaches the engine as it decodes it.
#[tokio::test]
async fn a_password_with_any_characters_is_sent_as_the_engine_reads_it() {
    let s = Sandbox::new().await;
    let r = Registry::from_env();
    let var = |name: &str| std::env::var(name).expect("set by cargo xtask itest");
    let (user, password) = (
        var("ANVYL_ITEST_REGISTRY_TRICKY_USER"),
        var("ANVYL_ITEST_REGISTRY_TRICKY_PASSWORD"),
    );
    let logins = s.shared_dir();
    cli_login_as(&s, &r, logins.path(), &user, &password);
    let (var, file) = login_file(&s, logins.path());
    let agent = pulling_always(&s, &r, "tricky");
    let run = s.anvyl_with(
        &["agent", "start", agent.as_str()],
        &[(var, file.to_str().unwrap())],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let gone = s.anvyl(&["agent", "remove", agent.as_str(), "--force", "--yes"]);
    assert_eq!(gone.code, Some(0), "{gone:?}");
}

#[tokio::test]
async fn a_credential_helper_is_asked_as_the_cli_asks_it() {
    let s = Sandbox::new().await;
    let r = Registry::from_env();
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-anvyltest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             [ \"$server\" = {addr} ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{pw}\"}}' \"$server\"\n",
            addr = r.address,
            user = r.user,
            pw = r.password
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (var, file) = login_file(&s, dir.path());
    let config = match var {
        "DOCKER_CONFIG" => file.join("config.json"),
        _ => file.clone(),
    };
    std::fs::write(
        &config,
        format!("{{\"credHelpers\":{{\"{}\":\"anvyltest\"}}}}", r.address),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let agent = pulling_always(&s, &r, "helper");
    let run = s.anvyl_with(
        &["agent", "start", agent.as_str()],
        &[(var, file.to_str().unwrap()), ("PATH", &path)],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let gone = s.anvyl(&["agent", "remove", agent.as_str(), "--force", "--yes"]);
    assert_eq!(gone.code, Some(0), "{gone:?}");
    assert_no_password(&s, &r, &[&run, &gone]);
}

#[tokio::test]
async fn not_logged_in_or_a_missing_tag_fails_with_what_to_do_and_leaves_nothing() {
    let s = Sandbox::new().await;
    let r = Registry::from_env();
    let before = s.owned_counts().await;

    let agent = pulling_always(&s, &r, "nologin");
    let run = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_cleaned(&s, &agent, &run, 1).await;
    // Printed for the record: what each engine's user reads.
    eprintln!(
        "{} not logged in: {}",
        s.itest.backend,
        run.stderr.lines().last().unwrap_or("")
    );
    let said = format!(
        "registry {} refused anvyl's credentials for team/base (401)",
        r.address
    );
    assert!(run.stderr.contains(&said), "{run:?}");
    let login = format!("login {}`", r.address);
    assert!(run.stderr.contains(&login), "{run:?}");

    let missing = format!("{}/team/nothere:9", r.address);
    let logins = s.shared_dir();
    cli_login(&s, &r, logins.path());
    let (var, file) = login_file(&s, logins.path());
    let agent = create(
        &s,
        &unique("notag"),
        &["--image", &missing, "--command", "sleep 600"],
    );
    let run = s.anvyl_with(
        &["agent", "start", agent.as_str()],
        &[(var, file.to_str().unwrap())],
    );
    assert_cleaned(&s, &agent, &run, 1).await;
    eprintln!(
        "{} missing tag: {}",
        s.itest.backend,
        run.stderr.lines().last().unwrap_or("")
    );
    let said = format!("image team/nothere:9 not found in {}", r.address);
    assert!(run.stderr.contains(&said), "{run:?}");
    assert_eq!(s.owned_counts().await, before);
    assert_no_password(&s, &r, &[&run]);
}

/// The base is on the engine when the start looks, so it pulls nothing;
/// the proxy holds the build while the base's tag is taken away, and the
/// build pulls it itself — with the credentials anvyl gave it
/// (`X-Registry-Config`), or it would fail as not logged in.
#[tokio::test]
async fn a_base_gone_before_the_build_is_pulled_by_the_build_with_the_credentials() {
    let s = Sandbox::new().await;
    let r = Registry::from_env();
    let logins = s.shared_dir();
    cli_login(&s, &r, logins.path());
    let (var, file) = login_file(&s, logins.path());
    let file = file.to_str().unwrap();
    let agent = create(
        &s,
        &unique("rebase"),
        &["--image", &r.base(), "--command", "sleep 600"],
    );
    // Pulled here, so that the start finds it.
    let warm = pulling_always(&s, &r, "warm");
    let run = s.anvyl_with(&["agent", "start", warm.as_str()], &[(var, file)]);
    assert_eq!(run.code, Some(0), "{run:?}");

    let proxy = FaultProxy::start(&s.itest.endpoint);
    let hold = Hold::new();
    proxy.inject_matching("POST", "/build", 1, Fault::Pause(hold.clone()));
    let child = s.spawn_anvyl_via_with(&proxy, &["agent", "start", agent.as_str()], &[(var, file)]);
    tokio::time::timeout(std::time::Duration::from_secs(60), hold.held())
        .await
        .unwrap_or_else(|_| panic!("the start never built: {:?}", proxy.calls()));
    let untag = match s.itest.backend.as_str() {
        "podman" => s
            .engine_cli()
            .args(["untag", &r.base(), &r.base()])
            .output(),
        _ => s.engine_cli().args(["rmi", &r.base()]).output(),
    }
    .expect("run the engine's CLI");
    assert!(untag.status.success(), "untag: {untag:?}");
    assert!(!s.has_image(&r.base()).await);
    hold.release();
    let run: Run = child.wait_with_output().expect("wait").into();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        !proxy
            .calls()
            .iter()
            .any(|c| c.contains("pull") || c.contains("images/create")),
        "the start itself pulled: {:?}",
        proxy.calls()
    );
    assert!(s.has_image(&r.base()).await, "the build pulled the base");
    for agent in [&agent, &warm] {
        let gone = s.anvyl(&["agent", "remove", agent.as_str(), "--force", "--yes"]);
        assert_eq!(gone.code, Some(0), "{gone:?}");
    }
    assert_no_password(&s, &r, &[&run]);
}
