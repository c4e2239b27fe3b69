//! Docker's containerd image store (the default from Docker 29; `--feature
//! containerd-snapshotter=true` before) shows an image half gone while one
//! of its tags is removed — even to a read of another tag. Measured on
//! Docker 28.5.2 with 15 images whose two tags were removed one after the
//! other while others listed and inspected them: the whole listing answered
//! 404 `NotFound: content digest sha256:…: not found` 2 times in 90, an
//! inspection of the *other* tag the same 404 10 times in 90; under the
//! end-to-end stress, an inspection answered 500 `consistency error: data
//! changed during operation, retry` and one came back with a `RootFS` that
//! lacks `Type` (bollard cannot read it). Each lasts well under a second.
//!
//! Image reads are therefore retried briefly on exactly those answers — one of
//! the two places where this crate reads an engine's message text (the
//! other is `BUILD_RACES`, a build broken by a concurrent removal), because
//! Docker gives no status that tells "content being removed" from "no such
//! image". The classic store never answers them, so on it nothing changes.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bollard::errors::Error;

/// Attempts in all; the pauses between them double from 50 ms (1.55 s in
/// total before the last).
const ATTEMPTS: u32 = 6;

/// Runs `read` until it answers something other than a transient answer of
/// the containerd image store, or the attempts are spent.
pub(crate) async fn settled<T, F, Fut>(read: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let pauses = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_times(ATTEMPTS as usize - 1);
    read.retry(pauses)
        .when(is_transient)
        .notify(|e, pause| tracing::debug!("image store in flux, reading again in {pause:?}: {e}"))
        .await
}

fn is_transient(e: &Error) -> bool {
    match e {
        Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => message.contains("content digest"),
        Error::DockerResponseServerError {
            status_code: 500,
            message,
        } => message.contains("consistency error"),
        Error::JsonDataError { .. } | Error::JsonSerdeError { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn answer(status_code: u16, message: &str) -> Error {
        Error::DockerResponseServerError {
            status_code,
            message: message.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_removed_image_is_read_again_and_a_missing_one_is_not() {
        let calls = AtomicU32::new(0);
        let read = || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(answer(
                    404,
                    "NotFound: content digest sha256:0515: not found",
                )),
                1 => Err(answer(
                    500,
                    "consistency error: data changed during operation, retry",
                )),
                _ => Ok("listed"),
            }
        };
        assert_eq!(settled(read).await.unwrap(), "listed");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let missing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(answer(404, "No such image: anvyl-agent-x:latest"))
        };
        assert!(settled(missing).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a real 404 is final");

        let calls = AtomicU32::new(0);
        let broken = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(answer(
                404,
                "NotFound: content digest sha256:0515: not found",
            ))
        };
        assert!(settled(broken).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS, "then it gives up");
    }
}
