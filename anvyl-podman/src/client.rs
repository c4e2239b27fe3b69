//! The plumbing of every libpod request: one podman-api client, each
//! request bounded by the request timeout (podman-api has none), its error
//! mapped to anvyl's, and reads retried while Podman 4.3 answers 500.

use std::future::Future;
use std::time::Duration;

use anvyl_core::backend::Result;
use anvyl_core::BackendError;
use backon::{ExponentialBuilder, Retryable};
use podman_api::Podman;

use crate::errors::{map, status};
use crate::{Limits, PodmanBackend};

impl PodmanBackend {
    /// A client of `endpoint` (`unix://…` or a socket path). No request is
    /// made: an unreachable service shows on the first call.
    pub async fn connect(
        endpoint: &str,
        request_timeout: Duration,
        limits: Limits,
    ) -> Result<Self> {
        let endpoint = if endpoint.starts_with('/') {
            format!("unix://{endpoint}")
        } else {
            endpoint.to_string()
        };
        // No `adjust_api_version`: libpod's /version reports the compat API
        // (1.41) and would switch requests to the wrong paths.
        let client = Podman::new(&endpoint).map_err(|e| BackendError::Unreachable {
            engine: Some(anvyl_core::BackendKind::Podman),
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client,
            endpoint,
            timeout: request_timeout,
            limits,
        })
    }

    /// Runs one request under the timeout, mapping its error.
    pub(crate) async fn call<T>(
        &self,
        operation: &'static str,
        what: &str,
        request: impl Future<Output = podman_api::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result.map_err(|e| map(operation, what, &self.endpoint, e)),
            Err(_) => Err(BackendError::Engine {
                operation,
                status: None,
                message: format!("no answer within {}s", self.timeout.as_secs()),
            }),
        }
    }

    /// A read-only request, retried on a 500 (see [`retry_reads`]).
    pub(crate) async fn read<T, F, Fut>(
        &self,
        operation: &'static str,
        what: &str,
        request: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = podman_api::Result<T>>,
    {
        retry_reads(|| self.call(operation, what, request())).await
    }

    /// Like [`Self::call`], but a 304 (already in that state) is success.
    pub(crate) async fn idempotent(
        &self,
        operation: &'static str,
        what: &str,
        request: impl Future<Output = podman_api::Result<()>>,
    ) -> Result<()> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Err(e)) if status(&e) == Some(304) => Ok(()),
            Ok(result) => result.map_err(|e| map(operation, what, &self.endpoint, e)),
            Err(_) => Err(BackendError::Engine {
                operation,
                status: None,
                message: format!("no answer within {}s", self.timeout.as_secs()),
            }),
        }
    }
}

/// Runs a read-only request again on a 500, five times, 50 ms to 800 ms
/// apart (1.55 s in all). Podman 4.3's service can panic (nil pointer,
/// HTTP 500) when an image is inspected while another is being removed, and
/// an image listing fails ("image not known") while an image it is
/// summarising goes away. Three retries in 350 ms were not enough: the
/// 8-process stress test's cleanup once met the listing's failure for
/// longer in CI. Reads are safe to repeat.
async fn retry_reads<T, F, Fut>(request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let pauses = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_times(5);
    request
        .retry(pauses)
        .when(|e| {
            matches!(
                e,
                BackendError::Engine {
                    status: Some(500),
                    ..
                }
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use anvyl_core::BackendError;

    /// A listing that fails while images go away is asked again for 1.55 s;
    /// a refusal other than a 500 is not repeated.
    #[tokio::test(start_paused = true)]
    async fn a_read_outlasts_five_500s_and_no_other_refusal() {
        let refused = |status| BackendError::Engine {
            operation: "list images",
            status: Some(status),
            message: "image not known".into(),
        };
        let calls = AtomicUsize::new(0);
        let began = tokio::time::Instant::now();
        let listed = super::retry_reads(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..5 => Err(refused(500)),
                _ => Ok("images"),
            }
        })
        .await;
        assert_eq!(listed.unwrap(), "images");
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        // Paused time moves a millisecond per wake-up besides the pauses.
        let waited = began.elapsed().as_millis();
        assert!((1550..1600).contains(&waited), "waited {waited} ms");

        let calls = AtomicUsize::new(0);
        let gone = super::retry_reads(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(refused(404))
        })
        .await;
        assert!(
            matches!(
                gone,
                Err(BackendError::Engine {
                    status: Some(404),
                    ..
                })
            ),
            "{gone:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
