//! Image builds, requested by anvyl itself rather than through podman-api
//! (over `stream`'s connection). podman-api packs a build context with the `tar` crate's defaults: a file
//! its filesystem reports with no blocks (a hole, or what some filesystems
//! show for a moment after a write) becomes a GNU sparse entry, which libpod
//! refuses ("unhandled tar header type 83", HTTP 500 — and podman-api turns
//! that answer into an I/O error, so it read as "unreachable"), and it
//! follows symlinks. Here the context is packed as for Docker (plain
//! entries, no link followed, the labelled Dockerfile added in the archive,
//! see [`anvyl_core::lifecycle::pack_labelled_context`]) and posted to
//! libpod's build endpoint over one HTTP/1 connection of its own.

use anvyl_core::backend::{BuildOutput, BuildProgress, Result};
use anvyl_core::lifecycle::{pack_labelled_context, LABELLED_DOCKERFILE};
use anvyl_core::BackendError;
use anvyl_core::{Backend, BuildSpec};
use podman_api::opts::{ImageBuildOpts, NetworkMode};

/// The query podman-api would send, from its own options builder: one
/// naming of libpod's parameters, kept by the crate that knows them.
pub(crate) fn query(opts: &podman_api::opts::ImageBuildOpts) -> String {
    opts.serialize().unwrap_or_default()
}

impl crate::PodmanBackend {
    /// One build attempt (see [`Backend::build_image`]).
    pub(crate) async fn build_attempt(
        &self,
        spec: &BuildSpec,
        progress: BuildProgress<'_>,
    ) -> Result<BuildOutput> {
        // The labels go into the Dockerfile as one instruction: buildah, like
        // Docker's builder, makes one step per `labels` entry, and the
        // half-labelled step images became build cache shared between
        // starts ("layer not known" when one agent's removal pruned them).
        // The context is packed here, not by podman-api: see `build`.
        let context = pack_labelled_context(&spec.context_dir, &spec.labels)?;
        let mut opts = ImageBuildOpts::builder(".")
            .dockerfile(LABELLED_DOCKERFILE)
            .tag(&spec.tag)
            .remove(true)
            .force_rm(true);
        if let Some(network) = &spec.network {
            opts = opts.network_mode(match network.as_str() {
                "none" => NetworkMode::None,
                "host" => NetworkMode::Host,
                "bridge" => NetworkMode::Bridge,
                other => NetworkMode::Custom(other.to_string()),
            });
        }
        let query = query(&opts.build());
        let headers = crate::pull::registry_config(&spec.credentials);
        let answer = crate::stream::post(
            &self.endpoint,
            &format!("build?{query}"),
            &headers,
            context,
            progress,
        )
        .await?;
        match answer.failure {
            Some(message) => return Err(BackendError::BuildFailed { message }),
            None if !answer.status.is_success() => {
                return Err(BackendError::BuildFailed {
                    message: format!(
                        "the engine refused the build (HTTP {})",
                        answer.status.as_u16()
                    ),
                })
            }
            None => {}
        }
        // libpod names the image `localhost/<tag>`; the id comes from it.
        Ok(BuildOutput {
            image_id: self.inspect_image(&spec.tag).await?.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_libpods_parameters() {
        let opts = podman_api::opts::ImageBuildOpts::builder(".")
            .dockerfile(".anvyl.Dockerfile")
            .tag("anvyl-agent-web:s1")
            .remove(true)
            .force_rm(true)
            .network_mode(podman_api::opts::NetworkMode::None)
            .build();
        let query = query(&opts);
        for pair in [
            "dockerfile=.anvyl.Dockerfile",
            "t=anvyl-agent-web%3As1",
            "rm=true",
            "forcerm=true",
            "networkmode=none",
        ] {
            assert!(query.split('&').any(|p| p == pair), "{pair} not in {query}");
        }
    }
}
