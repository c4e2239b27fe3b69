//! A cleanup of many hosts at once: one plan per registered host, judged
//! only by that host's listings, plus one plan of this machine's build root
//! (it belongs to no engine, so it is planned once, not once per host).
//! Hosts are connected, planned and applied concurrently, at most
//! [`HOSTS_AT_ONCE`] at a time, so a fleet takes about as long as its
//! slowest host.
//!
//! A host that cannot be reached is a reported fact, never evidence: its
//! plan is absent, so none of its agents is reconciled or reset and none of
//! its resources is touched; the other hosts are cleaned all the same.

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Cleanup, CleanupError, CleanupSettings, Part, Plan, Progress, Report, Scope};
use crate::backend::{BackendError, BackendKind, DynBackend};
use crate::build_root::BuildRoot;
use crate::connector::Connector;
use crate::no_engine::NoEngine;
use crate::state::{HostRecord, StateStore};

/// How many hosts are connected, planned or cleaned at once.
pub const HOSTS_AT_ONCE: usize = 4;

/// Why a host has no plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostError {
    /// True when the engine could not be reached at all (socket missing,
    /// connection refused, timeout); false when it answered with an error.
    pub unreachable: bool,
    /// What went wrong.
    pub message: String,
}

impl From<&BackendError> for HostError {
    fn from(e: &BackendError) -> Self {
        Self {
            unreachable: e.is_unreachable(),
            message: e.to_string(),
        }
    }
}

/// One host's part of a fleet plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The host's name in the registry.
    pub host: String,
    /// Its engine, once connected (`None` too for a test's stand-in).
    pub backend: Option<BackendKind>,
    /// The engine's own command for what anvyl leaves alone, once
    /// connected.
    pub prune_hint: Option<&'static str>,
    /// What is planned there; `None` when the host could not be planned.
    pub plan: Option<Plan>,
    /// Why it could not be planned.
    pub error: Option<HostError>,
}

/// What a fleet cleanup will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetPlan {
    /// The scope planned on every host.
    pub scope: Scope,
    /// One entry per host, in registry order.
    pub hosts: Vec<HostPlan>,
    /// This machine's build directories.
    pub machine: Plan,
}

impl FleetPlan {
    /// The plans made, the machine's last.
    pub fn plans(&self) -> impl Iterator<Item = &Plan> {
        (self.hosts.iter())
            .filter_map(|h| h.plan.as_ref())
            .chain(std::iter::once(&self.machine))
    }

    /// True when nothing is to be removed or reset anywhere.
    pub fn is_empty(&self) -> bool {
        self.plans().all(Plan::is_empty)
    }

    /// Number of resources and resets planned, over all hosts.
    pub fn len(&self) -> usize {
        self.plans().map(Plan::len).sum()
    }

    /// The hosts that could not be planned.
    pub fn failed_hosts(&self) -> impl Iterator<Item = (&str, &HostError)> {
        (self.hosts.iter()).filter_map(|h| Some((h.host.as_str(), h.error.as_ref()?)))
    }

    /// True when there were hosts and none of them could be reached.
    pub fn no_host_reached(&self) -> bool {
        !self.hosts.is_empty()
            && (self.hosts.iter()).all(|h| h.error.as_ref().is_some_and(|e| e.unreachable))
    }
}

/// One host's part of a fleet report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// The host.
    pub host: String,
    /// What happened there; `None` when it had no plan.
    pub report: Option<Report>,
}

/// What a fleet cleanup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetReport {
    /// One entry per host, in plan order.
    pub hosts: Vec<HostReport>,
    /// This machine's build directories.
    pub machine: Report,
}

impl FleetReport {
    /// The reports made, the machine's last.
    pub fn reports(&self) -> impl Iterator<Item = &Report> {
        (self.hosts.iter())
            .filter_map(|h| h.report.as_ref())
            .chain(std::iter::once(&self.machine))
    }

    /// Owned resources that remain, over all hosts.
    pub fn remaining_owned(&self) -> usize {
        self.reports().map(Report::remaining_owned).sum()
    }
}

/// A host of the fleet and its engine, if it could be connected.
#[derive(Debug)]
struct Member {
    record: HostRecord,
    engine: Result<DynBackend, BackendError>,
}

/// A cleanup over several hosts of one installation.
#[derive(Debug)]
pub struct Fleet<'a> {
    state: &'a StateStore,
    build_root: BuildRoot,
    settings: CleanupSettings,
    members: Vec<Member>,
}

impl<'a> Fleet<'a> {
    /// Connects every host of `hosts` through `connector`, concurrently. A
    /// host that fails to connect stays in the fleet, reported.
    pub async fn connect(
        state: &'a StateStore,
        build_root: BuildRoot,
        settings: CleanupSettings,
        hosts: Vec<HostRecord>,
        connector: &dyn Connector,
    ) -> Fleet<'a> {
        let members = stream::iter(hosts)
            .map(|record| async move {
                let engine = connector.connect(&record).await;
                Member { record, engine }
            })
            .buffered(HOSTS_AT_ONCE)
            .collect()
            .await;
        Self {
            state,
            build_root,
            settings,
            members,
        }
    }

    fn cleanup<'c>(&'c self, backend: &'c dyn crate::backend::Backend, part: Part) -> Cleanup<'c> {
        Cleanup::new(
            backend,
            self.state,
            self.build_root.clone(),
            self.settings.clone(),
        )
        .covering(part)
    }

    /// Plans `scope` on every host and on this machine's build root,
    /// removing and resetting nothing (as [`Cleanup::plan`]). Fails only when
    /// the state store cannot be read.
    pub async fn plan(&self, scope: Scope) -> Result<FleetPlan, CleanupError> {
        let hosts = stream::iter(&self.members)
            .map(|member| {
                let scope = scope.clone();
                async move {
                    let host = member.record.name.clone();
                    let engine = match &member.engine {
                        Ok(engine) => engine,
                        Err(e) => {
                            return Ok(HostPlan {
                                host,
                                backend: None,
                                prune_hint: None,
                                plan: None,
                                error: Some(e.into()),
                            })
                        }
                    };
                    let planned = self
                        .cleanup(engine.as_ref(), Part::Engine)
                        .on_host(&host)
                        .plan(scope)
                        .await;
                    let (plan, error) = match planned {
                        Ok(plan) => (Some(plan), None),
                        Err(CleanupError::Backend(e)) => (None, Some(HostError::from(&e))),
                        Err(e) => return Err(e),
                    };
                    Ok(HostPlan {
                        host,
                        backend: engine.kind(),
                        prune_hint: engine.prune_hint(),
                        plan,
                        error,
                    })
                }
            })
            .buffered(HOSTS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, CleanupError>>()?;
        // The build root last: whatever a host's listing saw of a start is
        // then recorded for it too.
        let machine = self
            .cleanup(&NoEngine, Part::BuildRoot)
            .plan(scope.clone())
            .await?;
        Ok(FleetPlan {
            scope,
            hosts,
            machine,
        })
    }

    /// Applies `plan`: every host's part concurrently, then the build root.
    /// Hosts without a plan are left exactly as they are.
    pub async fn apply(&self, plan: &FleetPlan) -> FleetReport {
        self.apply_reporting(plan, Progress::none()).await
    }

    /// [`Fleet::apply`], telling `progress` of every item as it finishes.
    pub async fn apply_reporting(&self, plan: &FleetPlan, progress: Progress<'_>) -> FleetReport {
        let hosts = stream::iter(&plan.hosts)
            .map(|planned| async move {
                let engine = (self.members.iter())
                    .find(|m| m.record.name == planned.host)
                    .and_then(|m| m.engine.as_ref().ok());
                let report = match (engine, &planned.plan) {
                    (Some(engine), Some(plan)) => Some(
                        self.cleanup(engine.as_ref(), Part::Engine)
                            .on_host(&planned.host)
                            .reporting_to(progress)
                            .apply(plan)
                            .await,
                    ),
                    _ => None,
                };
                HostReport {
                    host: planned.host.clone(),
                    report,
                }
            })
            .buffered(HOSTS_AT_ONCE)
            .collect()
            .await;
        let machine = self
            .cleanup(&NoEngine, Part::BuildRoot)
            .reporting_to(progress)
            .apply(&plan.machine)
            .await;
        FleetReport { hosts, machine }
    }
}
