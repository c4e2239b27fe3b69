//! Builds broken by another client removing images meanwhile: the engine's
//! failure, not the Dockerfile's, so the build is tried again.

use super::{Backend, BackendError, BuildOutput, Result};

/// Runs `build` up to three times while it fails with a message containing
/// one of `races`: the engine's own failures when another client removes
/// images during a build (Podman's "layer not known", Docker's "No such
/// image"), not the Dockerfile's fault. Each backend names its engine's.
///
/// Before each retry the attempt's tag is removed from `backend`: an
/// attempt the race broke may have committed and tagged its image all the
/// same, and the retry, tagging its own image, would leave that one
/// untagged — labelled by a start that then succeeds, which no cleanup
/// takes for its own (a user's commit of an agent looks just the same).
/// The tag is this start's alone (`anvyl-agent-<name>:<start>`).
pub async fn retry_build_races<B, F, Fut>(
    backend: &B,
    tag: &str,
    races: &[&str],
    mut build: F,
) -> Result<BuildOutput>
where
    B: Backend + ?Sized,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<BuildOutput>>,
{
    let raced = |e: &BackendError| matches!(e, BackendError::BuildFailed { message } if races.iter().any(|m| message.contains(m)));
    let mut retries = 0;
    loop {
        match build().await {
            // At once: the other client's removal is over by the time it
            // failed us.
            Err(e) if retries < 2 && raced(&e) => {
                retries += 1;
                tracing::warn!("build of {tag} met the engine's race ({e}); trying again");
                match backend.remove_image(tag).await {
                    Ok(()) => tracing::debug!("removed {tag}, left by the broken attempt"),
                    Err(e) if e.is_not_found() => {}
                    // The retry moves the tag: what stays untagged is then
                    // only what this removal could not take.
                    Err(e) => tracing::warn!("cannot remove {tag} of the broken attempt: {e}"),
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Labels;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing(message: &str) -> Result<BuildOutput> {
        Err(BackendError::BuildFailed {
            message: message.into(),
        })
    }

    #[tokio::test]
    async fn a_build_is_tried_three_times_on_the_engines_race_only() {
        let engine = crate::memory::MemoryBackend::new();
        let tries = AtomicU32::new(0);
        let raced = retry_build_races(&engine, "x:latest", &["layer not known"], || async {
            tries.fetch_add(1, Ordering::SeqCst);
            failing("layer not known")
        })
        .await;
        assert!(raced.is_err());
        assert_eq!(tries.swap(0, Ordering::SeqCst), 3);

        let own = retry_build_races(&engine, "x:latest", &["layer not known"], || async {
            tries.fetch_add(1, Ordering::SeqCst);
            failing("RUN false: exit code 1")
        })
        .await;
        assert!(own.is_err());
        assert_eq!(
            tries.swap(0, Ordering::SeqCst),
            1,
            "the Dockerfile's own failure"
        );

        let second = retry_build_races(&engine, "x:latest", &["layer not known"], || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 => failing("layer not known"),
                _ => Ok(BuildOutput {
                    image_id: "sha256:1".into(),
                }),
            }
        })
        .await;
        assert_eq!(second.unwrap().image_id, "sha256:1");
    }

    /// An attempt the race broke after it tagged its image: the retry's
    /// image takes the tag, and the broken attempt's image is gone, not
    /// left untagged with the start's labels.
    #[tokio::test]
    async fn a_broken_attempts_image_is_removed_before_the_retry() {
        let engine = crate::memory::MemoryBackend::new();
        let labels = Labels::from([("io.anvyl.start".to_string(), "s1".to_string())]);
        let first = std::sync::Mutex::new(None);
        let built = retry_build_races(&engine, "x:s1", &["layer not known"], || async {
            let id = engine.seed_image(&["x:s1"], labels.clone());
            let mut first = first.lock().unwrap();
            if first.is_none() {
                *first = Some(id);
                return failing("layer not known");
            }
            Ok(BuildOutput { image_id: id })
        })
        .await
        .unwrap();
        let first = first.lock().unwrap().clone().unwrap();
        assert_ne!(first, built.image_id);
        assert!(engine.inspect_image(&first).await.is_err(), "left behind");
        assert_eq!(
            engine.inspect_image("x:s1").await.unwrap().id,
            built.image_id
        );
    }
}
