//! An agent's mounts, limits and restart policy in Docker's `HostConfig`
//! (the user and working directory go in the container's own config).

use anvyl_core::resources::{Resources, Restart};
use bollard::models::{HostConfig, Mount, MountType, RestartPolicy, RestartPolicyNameEnum};

/// The `HostConfig` fields `r` sets; the rest default.
pub(crate) fn host_config(r: &Resources) -> HostConfig {
    let mounts = (!r.mounts.is_empty()).then(|| {
        (r.mounts.iter())
            .map(|m| Mount {
                typ: Some(MountType::BIND),
                source: Some(m.source.clone()),
                target: Some(m.target.clone()),
                read_only: Some(m.readonly),
                ..Mount::default()
            })
            .collect()
    });
    let restart_policy = match r.restart {
        Restart::No => None,
        Restart::OnFailure(max) => Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: max.map(i64::from),
        }),
    };
    HostConfig {
        mounts,
        memory: r.memory.map(|m| m as i64),
        nano_cpus: r.millicpus.map(|c| c as i64 * 1_000_000),
        pids_limit: r.pids_limit.map(|p| p as i64),
        restart_policy,
        ..HostConfig::default()
    }
}

/// The restart policy an inspection shows, in anvyl's words; any policy
/// anvyl does not set (`always`, `unless-stopped`) reads as `no`.
pub(crate) fn restart_policy(host: Option<&HostConfig>) -> Restart {
    let policy = host.and_then(|h| h.restart_policy.as_ref());
    match policy.and_then(|p| p.name) {
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            let max = policy.and_then(|p| p.maximum_retry_count).unwrap_or(0);
            Restart::OnFailure((max > 0).then_some(max as u32))
        }
        _ => Restart::No,
    }
}
