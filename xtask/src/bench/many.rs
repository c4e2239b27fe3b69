//! Starting many agents: `anvyl agent start a1 … a20` (settle 0, the
//! configured parallelism) against the same twenty built and run with the
//! engine's CLI — one after another, and all at once as a script would
//! with `&` and `wait`. Each of the twenty is its own image (the CLI's by a
//! `--label`, anvyl's by its own labels), from one cached setup step.

use std::process::Stdio;

use anyhow::Result;

use super::measure::measure;
use super::Bench;
use crate::engines::BASE_IMAGE;
use crate::process::run as run_cmd;

/// Agents started at once.
pub(super) const MANY: usize = 20;

const SETUP: &str = "echo setup > /setup.txt";

impl Bench<'_> {
    /// The `start-many` case.
    pub(super) fn start_many(&mut self, runs: usize) -> Result<()> {
        let names: Vec<String> = (1..=MANY).map(|i| format!("bench-many-{i}")).collect();
        for name in &names {
            run_cmd(&mut self.anvyl(&[
                "-q",
                "agent",
                "create",
                name,
                "--image",
                BASE_IMAGE,
                "--setup",
                SETUP,
                "--command",
                "sleep 600",
            ]))?;
        }
        let dir = self.state_dir.join("many-context");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM {BASE_IMAGE}\nRUN {SETUP}\nCMD [\"/bin/sh\",\"-c\",\"sleep 600\"]\n"),
        )?;
        let one = format!(
            "$E build -q --network none --label agent=$i -t benchmany$i:latest {} >/dev/null && \
             $E run -d --network none --name benchmany$i benchmany$i:latest >/dev/null",
            dir.display()
        );
        let serial = format!("for i in $(seq 1 {MANY}); do {one} || exit 1; done");
        let parallel = format!(
            "pids=; for i in $(seq 1 {MANY}); do ( {one} ) & pids=\"$pids $!\"; done; \
             for p in $pids; do wait $p || exit 1; done"
        );
        let force = match self.engine.kind {
            anvyl_core::BackendKind::Podman => "-f -t 0",
            anvyl_core::BackendKind::Docker => "-f",
        };
        let clear = format!(
            "for i in $(seq 1 {MANY}); do $E rm {force} benchmany$i >/dev/null; \
             $E rmi benchmany$i:latest >/dev/null; done"
        );
        let mut args = vec!["-q", "agent", "start"];
        args.extend(names.iter().map(String::as_str));
        for _ in 0..runs {
            let sample = measure(self.anvyl(&args).env("ANVYL_SETTLE_MS", "0"))?;
            self.record("start-many", "anvyl-settle-0", MANY, self.crowd, sample);
            // Its lines (results, on stdout) are not the report's.
            run_cmd(
                self.anvyl(&["-q", "agent", "stop", "--all"])
                    .stdout(Stdio::null()),
            )?;
            for (method, script) in [("cli-serial", &serial), ("cli-parallel", &parallel)] {
                let sample = measure(&mut self.shell(script))?;
                self.record("start-many", method, MANY, self.crowd, sample);
                run_cmd(&mut self.shell(&clear))?;
            }
        }
        let mut remove = vec!["-q", "agent", "remove", "--yes"];
        remove.extend(names.iter().map(String::as_str));
        run_cmd(self.anvyl(&remove).stdout(Stdio::null()))?;
        Ok(())
    }
}
