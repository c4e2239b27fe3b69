//! The argument grammar (clap derive). Global flags apply to every command;
//! each subcommand's arguments live next to its name here and its behaviour
//! in `commands/`.

use std::path::PathBuf;

use anvyl_core::BackendKind;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCompleter;

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// What `anvyl --help` and `-h` say below the options: what anvyl owns,
/// and the exit statuses.
const AFTER_HELP: &str = "\
Everything anvyl creates carries the labels io.anvyl.managed-by=anvyl, io.anvyl.agent, \
io.anvyl.instance and io.anvyl.start; cleanup removes only resources with this installation's \
labels (another installation's with --instance), and with --include-unlabelled unlabelled ones \
named exactly anvyl-agent-<name> for an agent it knows.

Exit status: 0 done, 1 failed or owned resources remain, 2 bad input or configuration, \
3 engine unreachable, 4 declined at a prompt (nothing changed), 130 interrupted.";

/// Run AI agents as containers on Docker or Podman, and never leak them.
// The rest of the description is `AFTER_HELP`: a longer doc comment here
// would be a long help, which clap lays out one option per three lines.
#[derive(Debug, Parser)]
#[command(name = "anvyl", version, max_term_width = 100, after_help = AFTER_HELP)]
pub struct Cli {
    // Global options: under their own heading in every subcommand's help,
    // one line each (the values are named in the text, not listed).
    /// Container engine: docker or podman [config: backend, env: ANVYL_BACKEND]
    #[arg(long, global = true, value_parser = backend_kind(), hide_possible_values = true, help_heading = GLOBAL)]
    pub backend: Option<BackendKind>,

    /// Read this configuration file after the system and user files
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub verbose: u8,

    /// Less log output (-q warnings only, -qq errors only)
    #[arg(short, long, global = true, action = ArgAction::Count, help_heading = GLOBAL)]
    pub quiet: u8,

    /// Output format of results on stdout: table or json
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table, hide_possible_values = true, help_heading = GLOBAL)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Parses `docker` or `podman` into core's one [`BackendKind`]; the
/// possible values also feed shell completion.
fn backend_kind() -> impl clap::builder::TypedValueParser<Value = BackendKind> {
    PossibleValuesParser::new(BackendKind::ALL.map(BackendKind::as_str))
        .try_map(|s| s.parse::<BackendKind>())
}

fn pull_policy() -> impl clap::builder::TypedValueParser<Value = anvyl_core::pull::PullPolicy> {
    use anvyl_core::pull::PullPolicy;
    PossibleValuesParser::new(PullPolicy::ALL.map(PullPolicy::as_str)).map(|s| {
        (PullPolicy::ALL.into_iter())
            .find(|p| p.as_str() == s)
            .unwrap_or_default()
    })
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people
    Table,
    /// One JSON document for programs
    Json,
}

// The top-level commands (a doc comment here would become the
// program's description in `--help`, in place of `Cli`'s).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage agents
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage the hosts agents run on
    #[command(subcommand)]
    Host(HostCommand),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// `anvyl agent …`
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Record a new agent (and start it with --start)
    Create(Box<CreateArgs>),
    /// Build and start an agent; on any failure everything it created is removed
    ///
    /// Builds anvyl-agent-<name>:latest from a generated Dockerfile, creates
    /// and starts the container anvyl-agent-<name>, and registers it once it
    /// has kept running for the settle time. If any step fails, or on Ctrl-C,
    /// the container, image and build directory of this start are removed and
    /// the agent is reset to stopped.
    ///
    /// An agent that only looks running or starting — its start was killed,
    /// its container exited or was removed — is cleaned up first, as `agent
    /// cleanup NAME` would, and then started.
    ///
    /// Several agents start side by side, `parallelism` at a time, each on
    /// its own: one line per agent, a summary, and exit 0 only if every one
    /// started (else the worst status: 130, 1, 3, 2).
    Start {
        /// The agents
        #[arg(required = true, value_name = "NAME", add = ArgValueCompleter::new(crate::complete::agent_names))]
        names: Vec<String>,
    },
    /// Stop running agents and remove their containers
    ///
    /// An agent whose container already exited, or whose start was killed, is
    /// cleaned up and stopped all the same, and the command says what it found.
    /// Several agents (or --all) stop side by side, as several start.
    Stop {
        /// The agents
        #[arg(required_unless_present = "all", value_name = "NAME", add = ArgValueCompleter::new(crate::complete::agent_names))]
        names: Vec<String>,
        /// Every agent that is not stopped
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// Print agents' output (a failed agent's until it is cleaned)
    ///
    /// With several agents each line is prefixed with its agent's name.
    Logs {
        /// The agents
        #[arg(required = true, value_name = "NAME", add = ArgValueCompleter::new(crate::complete::agent_names))]
        names: Vec<String>,
        /// Keep printing new output until the agent stops
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// List agents as they are
    ///
    /// STATUS is what each agent's host says now, not only what anvyl
    /// recorded: running, starting, "restarting (3)" (its engine starts it
    /// again under --restart on-failure), stopped, failed, "exited (137) 2
    /// minutes ago", "container gone", "start crashed", or "unknown (host
    /// unreachable)" when its host does not answer within 5 s. The next
    /// `agent start`, `stop` or `remove` of a dead agent cleans it up; a
    /// listing changes nothing. With --output json each row carries `status`
    /// (as shown), `recorded` and `observed` (state, exit code, exit time).
    #[command(visible_aliases = ["ls", "ps"])]
    List {
        /// Only agents that run now
        #[arg(long)]
        running: bool,
    },
    /// Show one agent in full: spec, host, observed state, image, container
    ///
    /// The state is what its host says now, as `agent list` shows it; with
    /// --output json, one document with the spec as stored.
    Inspect {
        /// The agent
        #[arg(value_name = "NAME", add = ArgValueCompleter::new(crate::complete::agent_names))]
        name: String,
    },
    /// Change a stopped agent's spec; the next start uses it
    ///
    /// Only what is given changes (--mount replaces every mount). A running
    /// or starting agent is refused (exit 2): stop it first.
    Update(Box<UpdateArgs>),
    /// Forget agents and remove everything of them
    ///
    /// Several agents are asked about once and removed side by side.
    #[command(visible_alias = "rm")]
    Remove {
        /// The agents
        #[arg(required = true, value_name = "NAME", add = ArgValueCompleter::new(crate::complete::agent_names))]
        names: Vec<String>,
        /// Stop it first if it runs
        #[arg(long)]
        force: bool,
        /// Remove without asking (required when no terminal can answer)
        #[arg(short, long)]
        yes: bool,
    },
    /// Find and remove orphaned anvyl resources
    ///
    /// Removes, in order: containers, images (by tag; a tag you added to the
    /// same image survives), temporary build directories, then resets the
    /// agents' status to stopped. The live container and image of a running
    /// agent are never touched. Docker's own dangling images are left to
    /// `docker system prune -f`.
    Cleanup(CleanupArgs),
}

/// Arguments of `anvyl agent create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The agent's name: 1-63 lowercase letters, digits and inner dashes
    pub name: String,
    /// Base image (FROM), e.g. python:3.12-slim or
    /// registry.example.com/team/base:1; pulled as --pull says, with the
    /// credentials of your `docker login` / `podman login`
    // Required: no base suits every agent, and a default would be one
    // anvyl's own tests happen to build.
    #[arg(long, value_name = "BASE")]
    pub image: String,
    /// A build step (one RUN each; repeatable)
    #[arg(long, value_name = "CMD")]
    pub setup: Vec<String>,
    /// The agent's command, run by /bin/sh -c; it must keep running
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Container environment (repeatable)
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Network mode of the container and its build steps [config: network]
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// When each start pulls the base: missing (when the engine lacks it),
    /// always, or never [config: pull; default: missing]
    #[arg(long, value_name = "WHEN", value_parser = pull_policy())]
    pub pull: Option<anvyl_core::pull::PullPolicy>,
    /// The container's mounts, limits, restart policy, user and workdir
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Model provider, e.g. anthropic
    #[arg(long, value_name = "P")]
    pub provider: Option<String>,
    /// Model name
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// Environment variable holding the provider API key; read at each start
    /// and passed to the container, never stored
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Run on this host (default: the first available)
    #[arg(long, value_name = "H", add = ArgValueCompleter::new(crate::complete::host_names))]
    pub host: Option<String>,
    /// Start the agent right away
    #[arg(long)]
    pub start: bool,
}

/// Arguments of `anvyl agent update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The agent
    #[arg(value_name = "NAME", add = ArgValueCompleter::new(crate::complete::agent_names))]
    pub name: String,
    /// Base image (FROM)
    #[arg(long, value_name = "BASE")]
    pub image: Option<String>,
    /// When each start pulls the base: missing, always or never
    #[arg(long, value_name = "WHEN", value_parser = pull_policy())]
    pub pull: Option<anvyl_core::pull::PullPolicy>,
    /// The agent's command, run by /bin/sh -c
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Network mode of the container and its build steps
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// The container's mounts, limits, restart policy, user and workdir
    #[command(flatten)]
    pub resources: ResourceArgs,
}

/// What an agent's container sees and may use, as `docker run` takes it.
#[derive(Debug, Default, clap::Args)]
pub struct ResourceArgs {
    /// Bind a host path: type=bind,source=/ABS,target=/ABS[,readonly]
    /// (repeatable; the source must exist on the engine's machine)
    #[arg(long, value_name = "SPEC", value_parser = anvyl_core::resources::Mount::parse)]
    pub mount: Vec<anvyl_core::resources::Mount>,
    /// Memory limit: bytes, or a number with b, k, m or g (512m)
    #[arg(long, value_name = "SIZE", value_parser = anvyl_core::resources::parse_memory)]
    pub memory: Option<u64>,
    /// CPU limit, in CPUs (1.5)
    #[arg(long, value_name = "N", value_parser = anvyl_core::resources::parse_cpus)]
    pub cpus: Option<u64>,
    /// Most processes at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pids_limit: Option<u64>,
    /// Restart the command after a failure: no, or on-failure[:N]
    #[arg(long, value_name = "POLICY", value_parser = anvyl_core::resources::Restart::parse)]
    pub restart: Option<anvyl_core::resources::Restart>,
    /// Run the command as NAME|UID[:GROUP|GID]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The command's working directory (absolute)
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
}

impl ResourceArgs {
    /// Sets in `resources` what was given; `--mount` replaces every mount.
    pub fn apply(&self, resources: &mut anvyl_core::resources::Resources) {
        if !self.mount.is_empty() {
            resources.mounts = self.mount.clone();
        }
        resources.memory = self.memory.or(resources.memory);
        resources.millicpus = self.cpus.or(resources.millicpus);
        resources.pids_limit = self.pids_limit.or(resources.pids_limit);
        resources.restart = self.restart.unwrap_or(resources.restart);
        if let Some(user) = &self.user {
            resources.user = Some(user.clone());
        }
        if let Some(dir) = &self.workdir {
            resources.workdir = Some(dir.clone());
        }
    }
}

/// `anvyl host …`
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Register an engine endpoint as a host
    Add {
        /// The host's name
        name: String,
        /// Its engine: docker or podman (a --docker-context or --podman-connection implies it)
        #[arg(long, value_parser = backend_kind(), hide_possible_values = true, required_unless_present_any = ["docker_context", "podman_connection"])]
        backend: Option<BackendKind>,
        /// Its endpoint: unix:///PATH, tcp://HOST:PORT with --tls-dir, or
        /// ssh://[USER@]HOST[:PORT][/SOCKET] through your OpenSSH
        #[arg(long, value_name = "URI", required_unless_present_any = ["docker_context", "podman_connection"])]
        endpoint: Option<String>,
        /// For tcp://: the directory of ca.pem, cert.pem and key.pem (the
        /// DOCKER_CERT_PATH layout); the engine must verify clients
        #[arg(long, value_name = "DIR")]
        tls_dir: Option<std::path::PathBuf>,
        /// Accept a plain tcp:// endpoint without TLS. Whoever reaches that
        /// port controls the engine, which is root on its machine
        #[arg(long)]
        insecure: bool,
        /// Reach the engine of this Docker CLI context (read at each use)
        #[arg(long, value_name = "NAME", conflicts_with_all = ["endpoint", "backend", "podman_connection"])]
        docker_context: Option<String>,
        /// Reach the engine of this Podman system connection (read at each use)
        #[arg(long, value_name = "NAME", conflicts_with_all = ["endpoint", "backend"])]
        podman_connection: Option<String>,
    },
    /// List hosts
    List,
    /// Forget a host no agent is assigned to
    Remove {
        /// The host's name
        #[arg(add = ArgValueCompleter::new(crate::complete::host_names))]
        name: String,
    },
}

/// Arguments of `anvyl agent cleanup`.
#[derive(Debug, Clone, clap::Args)]
pub struct CleanupArgs {
    /// Only this agent's orphans, on its own host (default: every agent's,
    /// on every enabled host)
    #[arg(add = ArgValueCompleter::new(crate::complete::agent_names))]
    pub name: Option<String>,

    /// Only this registered host (default: every enabled host)
    #[arg(long, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::host_names))]
    pub host: Option<String>,

    /// Remove without asking (required when no terminal can answer)
    #[arg(short, long)]
    pub yes: bool,

    /// Show the plan and remove nothing (wins over --yes)
    #[arg(long)]
    pub dry_run: bool,

    /// Also remove unlabelled containers and images named exactly
    /// anvyl-agent-<name> (:latest) for an agent anvyl knows — left by older
    /// tooling; by default they are shown and kept, as they may be yours
    #[arg(long)]
    pub include_unlabelled: bool,

    /// Also remove the step images anvyl's own builds made, as each start
    /// recorded them, with the image they led to — never one another image
    /// is built on, nor while a start is in progress. Without it (and
    /// without `build_cache = "remove"`) they are the engine's build cache
    #[arg(long)]
    pub build_cache: bool,

    /// Keep the agents' images (and build steps) for fast restarts: only
    /// containers, build directories and statuses go
    #[arg(long)]
    pub keep_images: bool,

    /// Only agents not started (or, never started, created) within this
    /// time: `7d`, `12h`. Newer ones' leftovers are kept and listed
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub older_than: Option<std::time::Duration>,

    /// Remove the labelled leftovers of another anvyl installation (its id
    /// from a plan's "Not this installation's" line) instead of this one's —
    /// after its state store was lost. Its agents are unknown here, so all
    /// its resources on this engine are taken as orphans
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,

    /// Clean up once, then keep watching every enabled host until Ctrl-C or
    /// SIGTERM: an agent whose container dies becomes failed (within about
    /// two seconds of its engine's event) and its leftovers go after
    /// --grace; a crashed start is cleaned up at once. Implies --yes; one
    /// line (or JSON object) per action
    #[arg(long, conflicts_with_all = ["name", "dry_run", "instance", "include_unlabelled", "keep_images", "older_than"])]
    pub watch: bool,

    /// With --watch: how long a failed agent's container stays (for `agent
    /// logs`) before it is removed; 0 removes it at once
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration, requires = "watch")]
    pub grace: std::time::Duration,

    /// With --watch: how often every agent is looked at again, events or
    /// not (lost events, an engine that restarted, a host that came back)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration, requires = "watch")]
    pub resync: std::time::Duration,

    /// Set for the cleanup a watcher opens with: its JSON document is one
    /// line of the watcher's stream (`"action": "cleanup"`).
    #[arg(skip)]
    pub opening: bool,
}

/// A duration as `humantime` writes it: `0`, `30s`, `5m`, `1h 30m`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (for example 30s, 5m, 1h)"))
}

/// A duration above zero.
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be above zero (for example 10s)".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The watcher's options: durations as people write them, refused
    /// where they mean nothing.
    #[test]
    fn watch_options_parse_or_are_refused() {
        use clap::Parser;
        let parse = |args: &str| {
            let argv = ["anvyl", "agent", "cleanup"]
                .into_iter()
                .chain(args.split_whitespace());
            Cli::try_parse_from(argv)
        };
        let cleanup = |cli: Cli| match cli.command {
            Command::Agent(AgentCommand::Cleanup(args)) => args,
            _ => unreachable!("parsed as agent cleanup"),
        };
        let args = cleanup(parse("--watch").unwrap());
        assert_eq!((args.grace.as_secs(), args.resync.as_secs()), (300, 60));
        let args = cleanup(parse("--watch --grace 0 --resync 1m30s").unwrap());
        assert_eq!((args.grace.as_secs(), args.resync.as_secs()), (0, 90));
        for refused in [
            "--grace 5m",
            "--watch --dry-run",
            "--watch web",
            "--watch --resync 0",
            "--watch --grace soon",
        ] {
            assert!(parse(refused).is_err(), "{refused} was accepted");
        }
    }
}
