//! Hostile state: a state directory that is not what anvyl expects — a
//! symlinked or file build root, an empty or relative state directory, a
//! user's own resources under an agent's exact name, a second installation
//! with the same agent names. anvyl removes nothing that is not its own and
//! cleans what it can around the broken part.

use anvyl_core::backend::Labels;
use anvyl_core::{AgentStatus, StartId};
use anvyl_tests::reliability::tally;
use anvyl_tests::Sandbox;

use crate::unique;

/// `<state>/builds -> elsewhere`: nothing there is touched, the other
/// steps still run, and the broken step makes the exit status 1.
#[tokio::test]
async fn a_symlinked_build_root_is_never_followed() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("link"));
    let (container, _) = s.leftovers(&web).await;
    let elsewhere = tempfile::tempdir().unwrap();
    for name in ["project.v1", "release.2024", &format!("{web}.x1")] {
        std::fs::create_dir(elsewhere.path().join(name)).unwrap();
    }
    std::os::unix::fs::symlink(elsewhere.path(), s.build_root()).unwrap();

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 3);
    assert!(!s.has_container(&container).await, "step 1 still ran");
    assert!(!s.has_image(&web.image_tag()).await, "step 2 still ran");
    assert!(run.stdout.contains("symlink"), "{run:?}");
    // A start refuses to build there too, and cleans up after itself.
    let runner = unique("linkrun");
    let base = s.itest.base_image.clone();
    let start = s.anvyl(&[
        "agent",
        "create",
        &runner,
        "--image",
        &base,
        "--command",
        "sleep 600",
        "--start",
    ]);
    assert_eq!(start.code, Some(1), "{start:?}");
    assert!(start.stderr.contains("build root"), "{start:?}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 3);
    let runner = anvyl_core::AgentName::new(runner).unwrap();
    assert_eq!(
        s.state().agent(&runner).unwrap().status,
        AgentStatus::Stopped
    );
    tally("hostile_cases", 1);
}

/// A file where the build root should be fails step 3 only: a crashed
/// start's container and image are still removed.
#[tokio::test]
async fn a_file_as_build_root_fails_only_its_step() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("file"));
    let (container, _) = s.leftovers(&web).await;
    std::fs::write(s.build_root(), "not a directory").unwrap();

    let run = s.anvyl(&["--output", "json", "agent", "cleanup", "--yes"]);

    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!s.has_container(&container).await, "{run:?}");
    assert!(!s.has_image(&web.image_tag()).await, "{run:?}");
    assert_eq!(std::fs::read(s.build_root()).unwrap(), b"not a directory");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let dirs = &doc["report"]["steps"][2]["items"][0];
    assert_eq!(dirs["outcome"], "failed", "{doc}");
    assert_eq!(doc["remaining_owned"], 1, "{doc}");
    tally("hostile_cases", 1);
}

/// An empty or relative state directory is refused before anything is
/// read, written or removed — it would mean "wherever anvyl runs".
#[tokio::test]
async fn an_empty_or_relative_state_dir_is_refused() {
    let s = Sandbox::new().await;
    let cwd = tempfile::tempdir().unwrap();
    for name in ["project.v1", "release.2024"] {
        std::fs::create_dir_all(cwd.path().join("builds").join(name)).unwrap();
    }
    for value in ["", "state", "./state"] {
        let run = s.anvyl_in(
            cwd.path(),
            &["agent", "cleanup", "--yes"],
            &[("ANVYL_STATE_DIR", value)],
        );
        assert_eq!(run.code, Some(2), "{value:?}: {run:?}");
        assert!(run.stderr.contains("absolute"), "{value:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run:?}");
    }
    let mut left: Vec<_> = std::fs::read_dir(cwd.path().join("builds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["project.v1", "release.2024"]);
    assert!(!cwd.path().join("anvyl.db").exists());
    assert!(!cwd.path().join("state").exists());
    tally("hostile_cases", 1);
}

/// A user's own unlabelled container named `anvyl-agent-<agent>` survives
/// `agent remove` and a cleanup, and the plan says why.
#[tokio::test]
async fn a_users_container_under_an_agents_name_survives() {
    let s = Sandbox::new().await;
    let api = s.agent(&unique("api"));
    let base = s.itest.base_image.clone();
    let users = s
        .container(&api.resource_name(), &base, Labels::new())
        .await;

    let dry = s.anvyl(&["agent", "cleanup", "--dry-run"]);
    assert!(dry.stdout.contains("unlabelled — not removed"), "{dry:?}");
    let remove = s.anvyl(&["agent", "remove", api.as_str(), "--yes"]);

    assert_eq!(remove.code, Some(0), "{remove:?}");
    assert!(s.has_container(&users).await, "{remove:?}");
    s.discard(&[&users], &[]).await;
    tally("hostile_cases", 1);
}

/// Two installations on one engine, with the same agent names: each
/// cleanup removes only its own.
#[tokio::test]
async fn two_installations_with_the_same_names_stay_apart() {
    let (a, b) = (Sandbox::new().await, Sandbox::new().await);
    assert_ne!(a.ownership.instance(), b.ownership.instance());
    let name = unique("twin");
    let (twin_a, twin_b) = (a.agent(&name), b.agent(&name));
    // One container name exists once per engine: `a` left a container and
    // `:latest`, `b` an image under its own start's tag.
    let (a_container, _) = a.leftovers(&twin_a).await;
    let b_start = StartId::from_stored("b0");
    let b_tag = twin_b.start_tag(&b_start);
    b.image(&b_tag, b.ownership.stamp(&Labels::new(), &twin_b, &b_start))
        .await;

    let run = b.anvyl(&["agent", "cleanup", "--yes"]);

    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!b.has_image(&b_tag).await, "b's own image remains: {run:?}");
    assert!(
        a.has_container(&a_container).await,
        "b removed a's container"
    );
    assert!(
        a.has_image(&twin_a.image_tag()).await,
        "b removed a's image"
    );
    let run = a.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!a.has_container(&a_container).await);
    assert!(!a.has_image(&twin_a.image_tag()).await);
    tally("hostile_cases", 1);
}

/// A spec that cannot make a working Dockerfile is refused at create: a
/// trailing backslash joins the next line to a step, and a heredoc — which
/// Podman 5's builder reads — takes the following lines, anvyl's final
/// LABEL among them, so the image would carry no ownership labels.
#[tokio::test]
async fn a_setup_step_that_would_swallow_the_next_lines_is_refused() {
    let s = Sandbox::new().await;
    let name = unique("slash");
    let base = s.itest.base_image.clone();
    for (step, why) in [("echo a \\", "backslash"), ("cat > /motd <<EOF", "heredoc")] {
        let run = s.anvyl(&[
            "agent",
            "create",
            &name,
            "--image",
            &base,
            "--setup",
            step,
            "--command",
            "sleep 600",
        ]);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stderr.contains(why), "{run:?}");
        assert!(s.state().agents().unwrap().is_empty());
        tally("hostile_cases", 1);
    }
}

/// A lost state store makes a new installation id; the old one's leftovers
/// are shown, kept, and removed only with `--instance ID`.
#[tokio::test]
async fn a_lost_state_store_adopts_its_leftovers_only_when_asked() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("lost"));
    let (container, _) = s.leftovers(&web).await;
    // The lost installation's agent ran and exited (its command is `true`).
    s.engine.start_container(&container).await.expect("start");
    for _ in 0..50 {
        let state = s
            .engine
            .inspect_container(&container)
            .await
            .expect("inspect")
            .state;
        if state == anvyl_core::ContainerState::Exited {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // And one of its agents still runs: adopting must not take it.
    let live = s.agent(&unique("alive"));
    let live_labels = s.labels(&live);
    let live_image = s.image(&live.image_tag(), live_labels.clone()).await;
    let running = s
        .running_container(&live.resource_name(), &live_image, live_labels)
        .await;
    let old = s.ownership.instance().to_string();
    for file in ["anvyl.db", "anvyl.db-wal", "anvyl.db-shm"] {
        let _ = std::fs::remove_file(s.state_dir.path().join(file));
    }

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(s.has_container(&container).await, "{run:?}");
    assert!(
        run.stdout.contains(&format!("--instance {old}")),
        "the plan names the old installation: {run:?}"
    );
    let bad = s.anvyl(&["agent", "cleanup", "--yes", "--instance", "nothex"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");

    let run = s.anvyl(&["agent", "cleanup", "--yes", "--instance", &old]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!s.has_container(&container).await, "{run:?}");
    assert!(!s.has_image(&web.image_tag()).await, "{run:?}");
    assert!(
        s.has_container(&running).await,
        "a running agent was adopted: {run:?}"
    );
    assert!(s.has_image(&live.image_tag()).await, "{run:?}");
    s.discard(&[&running], &[&live.image_tag()]).await;
    tally("hostile_cases", 1);
}

/// Engines copy labels into images built FROM anvyl's: a user's image made
/// from a running agent's, rebuilt so that the first one is untagged,
/// still survives the agent's cleanup.
#[tokio::test]
async fn a_users_image_built_from_anvyls_survives_even_untagged() {
    let s = Sandbox::new().await;
    let agent = s.create(&unique("derive"));
    let run = s.anvyl(&["agent", "start", agent.as_str()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let mine = format!("mine-{agent}:1");
    let mut ids = Vec::new();
    for n in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {}\nRUN echo {n} > /mine\n", agent.image_tag()),
        )
        .unwrap();
        let spec = anvyl_core::backend::BuildSpec {
            context_dir: dir.path().to_path_buf(),
            tag: mine.clone(),
            labels: Labels::new(),
            network: Some("none".into()),
            credentials: Default::default(),
        };
        ids.push(
            s.engine
                .build_image(&spec, &|_| {})
                .await
                .expect("build")
                .image_id,
        );
    }
    let run = s.anvyl(&["agent", "stop", agent.as_str()]);
    assert_eq!(run.code, Some(0), "{run:?}");

    let run = s.anvyl(&["agent", "cleanup", "--yes"]);

    for id in &ids {
        assert!(
            s.engine.inspect_image(id).await.is_ok(),
            "the user's image {id} was removed: {run:?}"
        );
    }
    s.discard(&[], &[&mine, &ids[0]]).await;
    tally("hostile_cases", 1);
}

/// Unmounts when dropped, so a failing assertion leaves no mount behind.
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(source: &std::path::Path, target: &std::path::Path) -> Self {
        let status = std::process::Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount --bind needs root: run this through `cargo xtask itest`"
        );
        Self(target.to_path_buf())
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A bind mount below a crashed start's build directory (a user's project
/// mounted into the build context): the build's own files go, the mounted
/// files stay, and the report names the mount as why the directory stays.
/// Also with statx taken away (strace), as on a kernel before 5.8 that has
/// no mount id for it: a bind mount of the same filesystem has the same
/// device, and only the kernel's mount table still tells it.
#[tokio::test]
async fn a_mount_below_a_build_directory_is_never_crossed() {
    let s = Sandbox::new().await;
    let web = s.agent(&unique("mount"));
    for (n, wrapper) in [
        vec![],
        vec![
            "strace",
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "inject=statx:error=ENOSYS",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let dir = s.build_dir(&web, &format!("0123456789a{n}"));
        // On the state directory's own filesystem.
        let project = tempfile::tempdir_in(s.state_dir.path()).unwrap();
        std::fs::create_dir(project.path().join("src")).unwrap();
        std::fs::write(project.path().join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(project.path().join("README"), "mine").unwrap();
        std::fs::create_dir(dir.join("ctx")).unwrap();
        let mount = BindMount::new(project.path(), &dir.join("ctx"));

        let run = s.anvyl_under(&wrapper, &["--output", "json", "agent", "cleanup", "--yes"]);
        drop(mount);

        assert_eq!(
            run.code,
            Some(1),
            "the directory stays: {wrapper:?} {run:?}"
        );
        assert!(
            project.path().join("src/main.rs").exists(),
            "{wrapper:?} {run:?}"
        );
        assert!(
            project.path().join("README").exists(),
            "{wrapper:?} {run:?}"
        );
        assert!(
            !dir.join("Dockerfile").exists(),
            "the build's own file goes"
        );
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        let item = &doc["report"]["steps"][2]["items"][0];
        assert_eq!(item["outcome"], "skipped", "{doc}");
        assert_eq!(item["reason"], "holds-a-mount", "{doc}");
        // Unmounted, the next cleanup finishes the job.
        let again = s.anvyl(&["agent", "cleanup", "--yes"]);
        assert_eq!(again.code, Some(0), "{again:?}");
        assert!(!dir.exists());
        assert!(project.path().join("src/main.rs").exists());
        tally("hostile_cases", 1);
    }
}

/// Rows SQLite accepts but anvyl never writes — a NULL name or start id in
/// a TEXT PRIMARY KEY, `enabled = 'yes'` — as a hand edit leaves them:
/// every command still works for everything else, and names what it skips.
#[tokio::test]
async fn a_hand_edited_row_spoils_only_itself() {
    let s = Sandbox::new().await;
    let good = s.create(&unique("good"));
    let database = s.state_dir.path().join(anvyl_core::state::DATABASE_FILE);
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute_batch(
            "INSERT INTO agents (name, spec, status, created) VALUES (NULL, '{}', 'stopped', 0);
             INSERT INTO starts (id, agent, pid, started) VALUES (NULL, 'ghost', 1, 0);
             INSERT INTO hosts (name, backend, endpoint, enabled, created)
                 VALUES ('edited', 'docker', 'unix:///nowhere.sock', 'yes', 0);",
        )
        .unwrap();

    for args in [
        vec!["agent", "list"],
        vec!["host", "list"],
        vec!["agent", "start", good.as_str()],
        vec!["agent", "stop", good.as_str()],
        vec!["agent", "remove", good.as_str(), "--yes"],
    ] {
        let run = s.anvyl(&args);
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
    }
    let listed = s.anvyl(&["host", "list"]);
    assert!(listed.stdout.contains("edited"), "{listed:?}");
    // The unusable host is reported by a fleet cleanup, which says so.
    let run = s.anvyl(&["agent", "cleanup", "--yes"]);
    assert!(
        run.stderr.contains("NULL") || run.stdout.contains("edited"),
        "{run:?}"
    );
    assert_eq!(s.owned_leftovers().await, Vec::<String>::new());
    tally("hostile_cases", 1);
}
