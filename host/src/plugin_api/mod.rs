//! What a plugin sees, shared by both sides of the sandbox: the bindings of
//! each version of `igloo:plugin` under `wit/`, the capabilities a plugin may be granted, the errors
//! host functions return, and the context of the run a host call serves.
//!
//! The runtime (which runs plugins) and the capabilities (which answer
//! their calls) both depend on this module, and never on each other.

mod bindings;
mod capability;
mod context;
mod pseudonyms;

use std::sync::atomic::Ordering;

pub use bindings::{
    ApiVersion, GuestEvent, GuestInstance, GuestPre, HostError, Outcome, SERVED_VERSIONS,
    ShapeCheck, comments, conversations, kv, log, messaging, profiles, public_profiles, run,
    scheduler, settings, types, v0_1_0, v0_2_0,
};
pub use capability::{Capability, UnknownCapability};
pub use context::{HostView, PluginInfo, RunContext, UpstreamClock, UpstreamWait, ViewOf};
pub use pseudonyms::Pseudonyms;

/// How a host function fails: a refusal the plugin sees as its `error`
/// (denied, invalid, rate-limited, …), or a trap that ends the run. Every
/// check returns a refusal, so host functions compose checks with `?`.
#[derive(Debug)]
pub enum HostFailure {
    /// The plugin gets this error and runs on.
    Refused(HostError),
    /// The plugin gets this error and runs on, but the call's request went
    /// out and no answer came: Meta may have acted on it. The journal
    /// records the call as `unknown`, never to be repeated blindly.
    Unanswered(HostError),
    /// The run ends here.
    Trap(wasmtime::Error),
}

/// What a host function returns.
pub type HostResult<T> = Result<T, HostFailure>;

impl From<HostError> for HostFailure {
    fn from(error: HostError) -> Self {
        HostFailure::Refused(error)
    }
}

/// A plugin handed the host something that is not a valid id or URL.
impl From<crate::graph::InvalidId> for HostError {
    fn from(error: crate::graph::InvalidId) -> Self {
        HostError::Invalid(error.to_string())
    }
}

impl From<crate::graph::InvalidId> for HostFailure {
    fn from(error: crate::graph::InvalidId) -> Self {
        HostFailure::Refused(error.into())
    }
}

impl From<crate::state::StateError> for HostFailure {
    /// The host's own storage failing is transient for the plugin: it may
    /// try again; nothing about the storage leaks.
    fn from(error: crate::state::StateError) -> Self {
        tracing::warn!(%error, "host state unavailable to a plugin's call");
        HostFailure::Refused(HostError::Transient(
            "the host's storage is unavailable".into(),
        ))
    }
}

impl<S> types::Host for HostView<'_, S> {
    fn convert_error(&mut self, failure: HostFailure) -> wasmtime::Result<HostError> {
        match failure {
            HostFailure::Refused(error) | HostFailure::Unanswered(error) => {
                if matches!(error, HostError::Transient(_) | HostError::RateLimited(_)) {
                    // A run that fails after this may fail for Meta's (or
                    // the host's) bad minute, not the plugin's: retried.
                    self.run.transient_failures.fetch_add(1, Ordering::Relaxed);
                }
                let by_rule = matches!(
                    error,
                    HostError::OptedOut | HostError::Paused | HostError::WindowClosed
                );
                self.run
                    .last_error_by_rule
                    .store(by_rule, Ordering::Relaxed);
                Ok(error)
            }
            HostFailure::Trap(trap) => Err(trap),
        }
    }
}
