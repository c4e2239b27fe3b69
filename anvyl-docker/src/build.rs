//! One image build attempt: the context packed with anvyl's labels in its
//! Dockerfile, the build's output streamed to the progress line, and its
//! failures told apart from a refused request.

use anvyl_core::backend::{normalise_image_id, BuildOutput, BuildProgress, Result};
use anvyl_core::{Backend, BackendError, BuildSpec};
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;

use crate::errors::map;
use anvyl_core::lifecycle::{pack_labelled_context, LABELLED_DOCKERFILE};

use crate::DockerBackend;

impl DockerBackend {
    /// One build attempt (see [`Backend::build_image`]).
    pub(crate) async fn build_attempt(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput> {
        // The labels go into the Dockerfile as one instruction: see `context`.
        let context = pack_labelled_context(&spec.context_dir, &spec.labels)?;
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(LABELLED_DOCKERFILE)
            .t(&spec.tag)
            .rm(true)
            .forcerm(true);
        if let Some(network) = &spec.network {
            options = options.networkmode(network);
        }
        // Credentials for the base's registry, should the engine pull it
        // during the build (the base was removed since the start's pull).
        let credentials: Option<std::collections::HashMap<_, _>> = (!spec.credentials.is_empty())
            .then(|| {
                (spec.credentials.iter())
                    .map(|(registry, c)| {
                        (
                            crate::pull::server_address(registry),
                            crate::pull::docker_credentials(registry, c),
                        )
                    })
                    .collect()
            });

        let long = self.long_running();
        let mut stream = long.build_image(
            options.build(),
            credentials,
            Some(bollard::body_full(bytes::Bytes::from(context))),
        );
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream.as_deref() {
                        let line = line.trim_end();
                        if !line.is_empty() {
                            progress(line);
                        }
                    }
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        image_id = Some(normalise_image_id(&id));
                    }
                }
                // An error in the stream is the build itself failing (a
                // step exited non-zero, a base image is missing).
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(BackendError::BuildFailed { message: error })
                }
                // The request itself refused: a bad Dockerfile or context.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code,
                    message,
                }) => {
                    return Err(BackendError::BuildFailed {
                        message: format!("{message} (HTTP {status_code})"),
                    })
                }
                Err(e) => return Err(map("build image", &spec.tag, &self.endpoint, e)),
            }
        }
        match image_id {
            Some(image_id) => Ok(BuildOutput { image_id }),
            None => Ok(BuildOutput {
                image_id: self.inspect_image(&spec.tag).await?.id,
            }),
        }
    }
}
