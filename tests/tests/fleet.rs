//! Many hosts, one installation, against real engines at once: the
//! configured Docker (`local`), a second Docker (`far`, on a socket and on
//! TCP with TLS) and Podman (`pod`); an SSH host through a private sshd.
//! A fleet cleanup judges each agent on its own host only, cleans every
//! reachable host in one command, reports one that does not answer and
//! leaves its agents alone; remote endpoints are reached only the safe way.

#[path = "fleet/harness.rs"]
mod harness;
#[path = "fleet/sshd.rs"]
mod sshd;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anvyl_core::testing::required;

use harness::{
    engine, engines, host_row, kill, owned, planned_hosts, stranger_certificates, text, Frozen,
    Installation,
};
use sshd::{add_ssh_host, sha256_hex, tunnels_to, Sshd};

#[test]
fn a_fleet_cleanup_covers_every_host_and_judges_each_agent_on_its_own() {
    let a = Installation::new("");
    a.add_hosts();
    let pid = std::process::id();
    let live = format!("live-{pid}");
    a.started(&live, "far");
    for (agent, host) in [("a", "local"), ("b", "far"), ("c", "pod")] {
        a.leftover(&format!("{agent}-{pid}"), host);
    }
    let instance = a.instance();
    for (host, engine) in engines() {
        assert!(
            !owned(&engine, &instance).is_empty(),
            "{host} has leftovers"
        );
    }

    let (code, doc) = a.json(&["agent", "cleanup", "--yes"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(planned_hosts(&doc), ["far", "local", "pod"], "{doc}");
    let summary = doc["hosts"].as_array().unwrap();
    assert_eq!(summary.len(), 3, "{doc}");
    assert!(
        summary.iter().all(
            |h| h["reachable"] == true && h["removed"].as_u64() > Some(0) || h["host"] == "far"
        ),
        "{doc}"
    );

    // The agent running on `far` was judged there: still running, its
    // container and image the only things of this installation left.
    assert_eq!(a.status(&live), "running");
    let mut left: Vec<String> = engines()
        .iter()
        .flat_map(|(host, engine)| {
            owned(engine, &instance)
                .into_iter()
                .map(move |o| format!("{host}: {o}"))
        })
        .collect();
    left.sort();
    assert!(
        left.iter()
            .all(|o| o.starts_with("far: ") && o.contains(&live)),
        "only the live agent's resources remain: {left:?}"
    );
    assert!(left.iter().any(|o| o.contains("container")), "{left:?}");
    println!(
        "fleet: 3 hosts, 4 agents (1 running on far); after one cleanup: {} resources of the running agent, 0 leftovers",
        left.len()
    );

    a.ok(&["agent", "stop", &live]);
    a.ok(&["agent", "cleanup", "--yes"]);
    for (host, engine) in engines() {
        assert_eq!(owned(&engine, &instance), Vec::<String>::new(), "{host}");
    }
}

#[test]
fn a_host_that_stops_answering_is_reported_and_a_rerun_converges() {
    // A short request timeout: a frozen engine answers nothing at all. Not
    // too short for the engines that do answer: at 2 s, Docker 28's
    // containerd store timed out listing images on a machine busy with
    // other engines, and a live host was reported unreachable.
    let a = Installation::new("request_timeout = 5");
    a.add_hosts();
    let pid = std::process::id();
    let live = format!("held-{pid}");
    a.started(&live, "far");
    for (agent, host) in [("x", "local"), ("y", "far"), ("z", "pod")] {
        a.leftover(&format!("{agent}-{pid}"), host);
    }
    let instance = a.instance();
    let [(_, local), (_, far), (_, pod)] = engines();
    let far_before = owned(&far, &instance);

    let frozen = Frozen::far();
    let began = Instant::now();
    let (code, doc) = a.json(&["agent", "cleanup", "--yes"]);
    let took = began.elapsed();
    assert_eq!(code, Some(1), "{doc}");
    let far_line = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "far")
        .unwrap()
        .clone();
    assert_eq!(far_line["reachable"], false, "{doc}");
    assert!(
        far_line["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{doc}"
    );
    assert_eq!(owned(&local, &instance), Vec::<String>::new());
    assert_eq!(owned(&pod, &instance), Vec::<String>::new());
    // Its agent keeps its recorded status, and nothing changes by stopping
    // it; a listing shows what it can tell, and guesses nothing.
    assert_eq!(a.status(&live), "running");
    assert_eq!(a.shown(&live), "unknown (host unreachable)");
    let stop = a.anvyl(&["agent", "stop", &live]);
    assert_eq!(stop.status.code(), Some(3), "{}", text(&stop));
    assert_eq!(a.status(&live), "running");
    let (code, hosts) = a.json(&["host", "list"]);
    assert_eq!(code, Some(0));
    let mut reachable: Vec<(String, bool)> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap().into(), h["reachable"] == true))
        .collect();
    reachable.sort();
    assert_eq!(
        reachable,
        [
            ("far".into(), false),
            ("local".into(), true),
            ("pod".into(), true)
        ],
        "{hosts}"
    );
    let human = a.anvyl(&["agent", "cleanup", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("Host 'far' unreachable"),
        "{}",
        text(&human)
    );
    drop(frozen);
    println!(
        "fleet: far frozen — cleanup took {:.1}s, exit 1, far untouched ({} resources)",
        took.as_secs_f64(),
        far_before.len()
    );

    // Back: the rerun converges, and only the live agent's resources stay.
    let (code, doc) = a.json(&["agent", "cleanup", "--yes"]);
    assert_eq!(code, Some(0), "{doc}");
    let left = owned(&far, &instance);
    assert!(left.iter().all(|o| o.contains(&live)), "{left:?}");
    // The stop that timed out was still queued in the frozen engine, which
    // carried it out once it woke: the rerun then found the container gone
    // and reconciled the agent. Either way nothing of it leaks.
    if a.status(&live) == "running" {
        a.ok(&["agent", "stop", &live]);
    }
    a.ok(&["agent", "cleanup", "--yes"]);
    assert_eq!(owned(&far, &instance), Vec::<String>::new());
}

#[test]
fn a_tls_host_is_reached_with_its_certificates_and_refused_without() {
    let a = Installation::new("");
    let endpoint = required("ANVYL_ITEST_TLS_ENDPOINT");
    let certs = required("ANVYL_ITEST_TLS_DIR");

    // A relative socket would reach whatever engine the working directory
    // holds: refused like plain TCP, and nothing is registered.
    let relative = a.anvyl(&[
        "host",
        "add",
        "rel",
        "--backend",
        "docker",
        "--endpoint",
        "unix://e/docker.sock",
    ]);
    assert_eq!(relative.status.code(), Some(2), "{}", text(&relative));
    let plain = a.anvyl(&[
        "host",
        "add",
        "tls",
        "--backend",
        "docker",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(plain.status.code(), Some(2), "{}", text(&plain));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--insecure"));
    let (_, hosts) = a.json(&["host", "list"]);
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");

    // Certificates the engine's CA never signed: the engine refuses them.
    let stranger = a.path("stranger");
    stranger_certificates(&stranger);
    a.ok(&[
        "host",
        "add",
        "stranger",
        "--backend",
        "docker",
        "--endpoint",
        &endpoint,
        "--tls-dir",
        stranger.to_str().unwrap(),
    ]);
    let row = host_row(&a, "stranger");
    assert_eq!(row["reachable"], false, "{row}");

    // The right ones: reachable, and an agent runs there.
    a.ok(&[
        "host",
        "add",
        "tls",
        "--backend",
        "docker",
        "--endpoint",
        &endpoint,
        "--tls-dir",
        &certs,
    ]);
    let row = host_row(&a, "tls");
    assert_eq!(row["reachable"], true, "{row}");
    assert!(
        row["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{row}"
    );
    let name = format!("tls-{}", std::process::id());
    a.started(&name, "tls");
    assert_eq!(a.status(&name), "running");
    a.ok(&["agent", "stop", &name]);
    a.ok(&["agent", "remove", &name, "--yes"]);

    // The same engine through a Docker CLI context with those certificates.
    let context = "itest-tls";
    let hash = sha256_hex(context);
    let meta = a.path("docker-config/contexts/meta").join(&hash);
    let tls = a
        .path("docker-config/contexts/tls")
        .join(&hash)
        .join("docker");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&tls).unwrap();
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(Path::new(&certs).join(file), tls.join(file)).unwrap();
    }
    std::fs::write(
        meta.join("meta.json"),
        format!(r#"{{"Name":"{context}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{endpoint}","SkipTLSVerify":false}}}}}}"#),
    )
    .unwrap();
    a.ok(&["host", "add", "ctx", "--docker-context", context]);
    assert_eq!(host_row(&a, "ctx")["reachable"], true);
    // Removing the 'stranger' host leaves everything else.
    a.ok(&["host", "remove", "stranger"]);
}

#[test]
fn an_ssh_host_is_reached_through_openssh_and_its_tunnel_ends_with_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let a = Installation::new(&format!(
        "ssh_command = \"ssh -F {}\"",
        sshd.config.display()
    ));
    let socket = required("ANVYL_ITEST_PODMAN_HOST");
    let socket = socket.trim_start_matches("unix://");
    let uri = format!("ssh://root@127.0.0.1:{}{socket}", sshd.port);
    let row = add_ssh_host(&a, &uri);
    assert_eq!(row["reachable"], true, "{row}");

    // ssh makes the forwarded socket before it listens on it: a tunnel is
    // ready when the socket accepts a connection, not when the file exists
    // (CI once saw "Connection refused" on a first request). strace holds
    // ssh's listen() for half a second to make that window deterministic.
    let late = Installation::new(&format!(
        "ssh_command = \"strace -f -qq -o /dev/null -e inject=listen:delay_enter=500ms ssh -F {}\"",
        sshd.config.display()
    ));
    let row = add_ssh_host(&late, &uri);
    assert_eq!(row["reachable"], true, "ssh that listens late: {row}");

    let name = format!("ssh-{}", std::process::id());
    a.started(&name, "sshpod");
    assert_eq!(a.status(&name), "running");
    let logs = a.anvyl(&["agent", "logs", &name]);
    assert!(logs.status.success(), "{}", text(&logs));

    // A watcher passes every second over the running agent: one tunnel
    // serves them all, and it ends with the watcher.
    let mut watcher = a
        .command(&[
            "agent", "cleanup", "--watch", "--resync", "1s", "--host", "sshpod",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let open = tunnels_to(sshd.port);
    assert!(kill(watcher.id() as i32, "TERM"), "signal the watcher");
    let status = watcher.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the watcher's exit");
    assert_eq!(open, 1, "tunnels of a watcher after five passes");
    assert_eq!(a.status(&name), "running", "the watcher left it running");
    a.ok(&["agent", "stop", &name]);

    // Ctrl-C at the terminal reaches the whole foreground process group:
    // the tunnel must outlive it long enough for the start to clean up.
    let instance = a.instance();
    let pod = engine("ANVYL_ITEST_PODMAN_HOST", "podman");
    let interrupted = format!("ssh-int-{}", std::process::id());
    let base = required("ANVYL_ITEST_BASE_IMAGE");
    a.ok(&[
        "agent",
        "create",
        &interrupted,
        "--image",
        &base,
        "--command",
        "sleep 600",
        "--host",
        "sshpod",
    ]);
    let mut start = {
        use std::os::unix::process::CommandExt;
        a.command(&["agent", "start", &interrupted])
            .env("ANVYL_SETTLE_MS", "20000")
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let began = Instant::now();
    while !owned(&pod, &instance)
        .iter()
        .any(|o| o.starts_with("container") && o.contains(&interrupted))
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the start never made its container"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        kill(-(start.id() as i32), "INT"),
        "signal the process group"
    );
    let status = start.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let left: Vec<String> = owned(&pod, &instance)
        .into_iter()
        .filter(|o| o.contains(&interrupted))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the interrupted start cleaned up through its tunnel"
    );
    assert_eq!(a.status(&interrupted), "stopped");

    let (code, doc) = a.json(&["agent", "cleanup", "--yes", "--host", "sshpod"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(planned_hosts(&doc).iter().all(|h| h == "sshpod"), "{doc}");
    assert_eq!(
        tunnels_to(sshd.port),
        0,
        "every tunnel ended with its command"
    );

    // The same engine through a Podman system connection with its key.
    let connections = a.path("xdg/containers");
    std::fs::create_dir_all(&connections).unwrap();
    std::fs::write(
        connections.join("podman-connections.json"),
        format!(
            r#"{{"Connection":{{"Default":"itest","Connections":{{"itest":{{"URI":"{uri}","Identity":"{}"}}}}}}}}"#,
            dir.path().join("sshd/client_key").display()
        ),
    )
    .unwrap();
    a.ok(&["host", "add", "conn", "--podman-connection", "itest"]);
    assert_eq!(host_row(&a, "conn")["reachable"], true);

    // A key the server does not know: unreachable, said plainly.
    let stranger = dir.path().join("stranger");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let config = std::fs::read_to_string(&sshd.config).unwrap().replace(
        &format!("{}/sshd/client_key", dir.path().display()),
        &stranger.display().to_string(),
    );
    let stranger_config = dir.path().join("stranger_config");
    std::fs::write(&stranger_config, config).unwrap();
    let b = Installation::new(&format!(
        "ssh_command = \"ssh -F {}\"",
        stranger_config.display()
    ));
    b.ok(&[
        "host",
        "add",
        "sshpod",
        "--backend",
        "podman",
        "--endpoint",
        &uri,
    ]);
    let row = host_row(&b, "sshpod");
    assert_eq!(row["reachable"], false, "{row}");
    a.ok(&["agent", "remove", &name, "--yes"]);
}

#[test]
fn two_dockerds_of_one_machine_are_two_engines() {
    // Docker 20.10's daemon ID comes from /etc/docker/key.json, which both
    // dockerds here share: only anvyl's marker tells them apart.
    let (local, far) = (
        engine("ANVYL_ITEST_DOCKER_HOST", "docker"),
        engine("ANVYL_ITEST_DOCKER2_HOST", "docker"),
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (one, other) = (local.connect().await, far.connect().await);
        anvyl_core::conformance::check_two_engines_are_told_apart(one.as_ref(), other.as_ref())
            .await;
    });

    // An agent runs on `local`; then `local` is pointed at the other
    // dockerd, and everything judged there must leave it alone.
    let a = Installation::new("");
    let web = format!("web-{}", std::process::id());
    a.started(&web, "local");
    let config = std::fs::read_to_string(&a.config).unwrap();
    let moved = config.replace(
        &required("ANVYL_ITEST_DOCKER_HOST"),
        &required("ANVYL_ITEST_DOCKER2_HOST"),
    );
    std::fs::write(&a.config, &moved).unwrap();
    let cleanup = a.anvyl(&["agent", "cleanup", "--yes"]);
    assert!(cleanup.status.success(), "{}", text(&cleanup));
    assert!(
        !text(&cleanup).contains("Reset agent"),
        "{}",
        text(&cleanup)
    );
    assert_eq!(a.status(&web), "running");
    let stop = a.anvyl(&["agent", "stop", &web]);
    assert!(!stop.status.success(), "{}", text(&stop));
    assert_eq!(a.status(&web), "running");
    assert!(
        a.shown(&web).starts_with("unknown (agent '"),
        "the other engine cannot tell: {}",
        a.shown(&web)
    );

    // Back on its own engine: still running, and a cleanup there keeps it.
    std::fs::write(&a.config, &config).unwrap();
    a.ok(&["agent", "cleanup", "--yes"]);
    assert_eq!(a.status(&web), "running");
    assert_eq!(a.shown(&web), "running");
    let running = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let backend = local.connect().await;
        backend
            .inspect_container(&format!("anvyl-agent-{web}"))
            .await
            .map(|c| c.state)
    });
    assert_eq!(
        running.ok(),
        Some(anvyl_core::ContainerState::Running),
        "its container on the first dockerd"
    );
    a.ok(&["agent", "remove", &web, "--force", "--yes"]);
}
