//! [`NoEngine`]: an engine that holds nothing — the stand-in for a start
//! that failed before it had a connected engine (no host, a host that did
//! not answer), and for the build-root part of a fleet cleanup, which asks
//! no engine. Its cleanup lists nothing, removes nothing, and still resets
//! the agent's status.

use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{
    Backend, BackendError, BackendKind, BuildOutput, BuildProgress, BuildSpec, ContainerSpec,
    ContainerSummary, EngineInfo, ImageSummary, Labels, LogSink, Query, Result,
};

/// An engine that holds nothing and accepts nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEngine;

fn refused(operation: &'static str) -> BackendError {
    BackendError::Local {
        operation,
        message: "no host was resolved for this start".into(),
    }
}

fn missing(what: &str) -> BackendError {
    BackendError::NotFound {
        what: what.to_string(),
    }
}

#[async_trait]
impl Backend for NoEngine {
    fn kind(&self) -> Option<BackendKind> {
        None
    }

    async fn version(&self) -> Result<EngineInfo> {
        Err(refused("version"))
    }

    async fn volume(&self, name: &str) -> Result<crate::backend::Volume> {
        Err(missing(name))
    }

    async fn create_volume(&self, _: &str, _: &Labels) -> Result<()> {
        Err(refused("create volume"))
    }

    async fn list_containers(&self, _: &Query) -> Result<Vec<ContainerSummary>> {
        Ok(Vec::new())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerSummary> {
        Err(missing(id))
    }

    async fn pull_image(
        &self,
        _: &str,
        _: Option<&crate::pull::RegistryCredential>,
        _: crate::pull::PullProgressSink<'_>,
    ) -> Result<()> {
        Err(refused("pull image"))
    }

    async fn create_container(&self, _: &ContainerSpec) -> Result<String> {
        Err(refused("create container"))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        Err(missing(id))
    }

    async fn stop_container(&self, id: &str, _: Duration) -> Result<()> {
        Err(missing(id))
    }

    async fn remove_container(&self, id: &str, _: Duration) -> Result<()> {
        Err(missing(id))
    }

    async fn build_once(&self, _: &BuildSpec, _: BuildProgress<'_>) -> Result<BuildOutput> {
        Err(refused("build image"))
    }

    async fn tag_image(&self, source: &str, _: &str) -> Result<()> {
        Err(missing(source))
    }

    async fn list_images(&self, _: &Query) -> Result<Vec<ImageSummary>> {
        Ok(Vec::new())
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageSummary> {
        Err(missing(reference))
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        Err(missing(reference))
    }

    async fn count_dangling_images(&self) -> Result<usize> {
        Ok(0)
    }

    async fn logs(&self, id: &str, _: bool, _: Option<usize>, _: LogSink<'_>) -> Result<()> {
        Err(missing(id))
    }
}
