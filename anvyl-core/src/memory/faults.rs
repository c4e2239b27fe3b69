//! The in-memory engine's faults: which operation (`Op`) fails how
//! (`Fault`), held at a `Gate` until a test opens it, and how each call
//! meets them — before it is carried out (`enter`) and after (`answer`).

use std::sync::Arc;
use std::time::Duration;

use super::MemoryBackend;
use crate::backend::{BackendError, Result};

/// The operations faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`Backend::ping`] and [`Backend::version`].
    Ping,
    /// [`Backend::list_containers`].
    ListContainers,
    /// [`Backend::inspect_container`].
    InspectContainer,
    /// [`Backend::create_container`].
    CreateContainer,
    /// [`Backend::start_container`].
    StartContainer,
    /// [`Backend::remove_container`].
    RemoveContainer,
    /// [`Backend::build_image`].
    BuildImage,
    /// [`Backend::pull_image`].
    PullImage,
    /// [`Backend::list_images`].
    ListImages,
    /// [`Backend::inspect_image`].
    InspectImage,
    /// [`Backend::remove_image`].
    RemoveImage,
    /// [`Backend::volume`] and [`Backend::create_volume`].
    Volume,
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail with an engine error carrying this message.
    Fail(String),
    /// Answer 404.
    NotFound,
    /// No answer at all: the engine is down.
    Unreachable,
    /// Answer 409.
    Conflict,
    /// Wait this long, then carry on normally.
    Stall(Duration),
    /// Carry on, but the container stops right away (a command that exits
    /// at once); meant for [`Op::StartContainer`].
    ExitsAtOnce,
    /// Stop at the call until the test opens the gate: interleavings of
    /// concurrent commands are made deterministic with this.
    Gate(Gate),
    /// Carry the removal out, then answer 500 with this message — Docker's
    /// "unrecognized image ID" for a parent after untagging, or an answer
    /// lost on the way back. Meant for the removals.
    FailAfter(String),
}

/// A point where an operation waits for the test (see [`Fault::Gate`]).
#[derive(Clone, Default)]
pub struct Gate(Arc<GateInner>);

#[derive(Default)]
struct GateInner {
    reached: tokio::sync::Notify,
    open: tokio::sync::Notify,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves once an operation has reached the gate.
    pub async fn reached(&self) {
        self.0.reached.notified().await;
    }

    /// Lets the waiting operation carry on.
    pub fn open(&self) {
        self.0.open.notify_one();
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}

#[derive(Debug)]
pub(super) struct Hook {
    pub(super) op: Op,
    pub(super) target: Option<String>,
    pub(super) fault: Fault,
    pub(super) remaining: Option<u32>,
    /// Set when the hook fired on the call in progress (for `FailAfter`).
    pub(super) fired: bool,
}

impl MemoryBackend {
    pub(super) async fn enter(&self, op: Op, target: &str) -> Result<()> {
        let fault = {
            let mut engine = self.engine();
            engine.calls.push((op, target.to_string()));
            let hook = engine.hooks.iter_mut().find(|h| {
                h.op == op
                    && h.remaining != Some(0)
                    && h.target.as_deref().is_none_or(|t| t == target)
            });
            hook.map(|h| {
                if let Some(n) = &mut h.remaining {
                    *n -= 1;
                }
                h.fired = true;
                h.fault.clone()
            })
        };
        match fault {
            None | Some(Fault::ExitsAtOnce) | Some(Fault::FailAfter(_)) => Ok(()),
            Some(Fault::Gate(gate)) => {
                gate.0.reached.notify_one();
                gate.0.open.notified().await;
                Ok(())
            }
            Some(Fault::Stall(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Some(Fault::Fail(message)) => Err(BackendError::Engine {
                operation: "injected fault",
                status: Some(500),
                message,
            }),
            Some(Fault::Unreachable) => Err(BackendError::Unreachable {
                engine: None,
                endpoint: "memory://".into(),
                message: "connection refused".into(),
            }),
            Some(Fault::NotFound) => Err(BackendError::NotFound {
                what: target.to_string(),
            }),
            Some(Fault::Conflict) => Err(BackendError::Conflict {
                what: target.to_string(),
                message: "injected conflict".into(),
            }),
        }
    }

    /// The answer of an operation that was carried out: the error of a
    /// [`Fault::FailAfter`] the last call of `op` on `target` drew, if any.
    pub(super) fn answer(&self, op: Op, target: &str) -> Result<()> {
        let mut engine = self.engine();
        // `enter` counted the hook down already; find the one that fired.
        let fired = engine.hooks.iter_mut().find(|h| {
            h.op == op
                && matches!(h.fault, Fault::FailAfter(_))
                && h.target.as_deref().is_none_or(|t| t == target)
                && h.fired
        });
        match fired {
            Some(hook) => {
                hook.fired = false;
                let Fault::FailAfter(message) = hook.fault.clone() else {
                    unreachable!("matched above")
                };
                Err(BackendError::Engine {
                    operation: "injected fault",
                    status: Some(500),
                    message,
                })
            }
            None => Ok(()),
        }
    }
}
