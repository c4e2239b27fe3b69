//! An agent's mounts, limits, restart policy, user and working directory
//! in libpod's create request.

use anvyl_core::resources::{Resources, Restart};
use podman_api::models::{ContainerMount, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use podman_api::opts::{ContainerCreateOptsBuilder, ContainerRestartPolicy};

/// The CFS period the CPU quota is a share of (the engines' default).
const CPU_PERIOD: u64 = 100_000;

/// `opts` with what `r` sets.
pub(crate) fn apply(
    mut opts: ContainerCreateOptsBuilder,
    r: &Resources,
) -> ContainerCreateOptsBuilder {
    if !r.mounts.is_empty() {
        opts = opts.mounts(r.mounts.iter().map(|m| ContainerMount {
            destination: Some(m.target.clone()),
            source: Some(m.source.clone()),
            _type: Some("bind".into()),
            options: Some(vec![
                "rbind".into(),
                if m.readonly { "ro" } else { "rw" }.into(),
            ]),
            uid_mappings: None,
            gid_mappings: None,
        }));
    }
    if r.memory.is_some() || r.millicpus.is_some() || r.pids_limit.is_some() {
        opts = opts.resource_limits(LinuxResources {
            memory: r.memory.map(|m| LinuxMemory {
                limit: Some(m as i64),
                ..empty_memory()
            }),
            cpu: r.millicpus.map(|c| LinuxCpu {
                period: Some(CPU_PERIOD),
                quota: Some((c * CPU_PERIOD / 1000) as i64),
                cpus: None,
                mems: None,
                realtime_period: None,
                realtime_runtime: None,
                shares: None,
            }),
            pids: r.pids_limit.map(|p| LinuxPids {
                limit: Some(p as i64),
            }),
            block_io: None,
            devices: None,
            hugepage_limits: None,
            network: None,
            rdma: None,
            unified: None,
        });
    }
    if let Restart::OnFailure(max) = r.restart {
        opts = opts.restart_policy(ContainerRestartPolicy::OnFailure);
        if let Some(max) = max {
            opts = opts.restart_tries(u64::from(max));
        }
    }
    if let Some(user) = &r.user {
        opts = opts.user(user);
    }
    if let Some(dir) = &r.workdir {
        opts = opts.work_dir(dir);
    }
    opts
}

fn empty_memory() -> LinuxMemory {
    LinuxMemory {
        disable_oom_killer: None,
        kernel: None,
        kernel_tcp: None,
        limit: None,
        reservation: None,
        swap: None,
        swappiness: None,
        use_hierarchy: None,
    }
}

/// The restart policy an inspection shows, in anvyl's words; any policy
/// anvyl does not set reads as `no`.
pub(crate) fn restart_policy(policy: Option<&podman_api::models::InspectRestartPolicy>) -> Restart {
    match policy.and_then(|p| p.name.as_deref()) {
        Some("on-failure") => {
            let max = policy.and_then(|p| p.maximum_retry_count).unwrap_or(0);
            Restart::OnFailure((max > 0).then_some(max as u32))
        }
        _ => Restart::No,
    }
}
