//! What one run may use, and the limiter that enforces it inside wasmtime.
//!
//! A plugin's manifest may ask for limits; the operator's `[runtime]`
//! values are both the defaults and the ceilings. Hitting a limit ends the
//! run with a trap naming it; the host and other runs are untouched.

use std::time::Duration;

use serde::Deserialize;
use wasmtime::ResourceLimiter;

use super::engine;
use crate::config::RuntimeConfig;

/// Limits a manifest may ask for (each capped by the operator's maximum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    /// Wall-clock budget of one run, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Instruction budget of one run (fuel).
    pub fuel: Option<u64>,
    /// Largest linear memory, in bytes.
    pub max_memory_bytes: Option<usize>,
    /// Host functions one run may call.
    pub max_host_calls: Option<u32>,
    /// Most bytes (strings and lists together) one host call may take from
    /// the plugin.
    pub max_string_bytes: Option<usize>,
    /// Runs of this plugin at once.
    pub max_concurrency: Option<u32>,
}

/// The limits a plugin's runs get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget.
    pub deadline: Duration,
    /// Fuel budget.
    pub fuel: u64,
    /// Memory cap, bytes.
    pub max_memory_bytes: usize,
    /// Table elements cap.
    pub max_table_elements: usize,
    /// Core instances one run may create.
    pub max_core_instances: usize,
    /// Tables one run may create.
    pub max_tables: usize,
    /// Linear memories one run may create.
    pub max_memories: usize,
    /// Host-call budget.
    pub max_host_calls: u32,
    /// Most bytes one host call may copy from the plugin.
    pub max_string_bytes: usize,
    /// Runs at once.
    pub max_concurrency: u32,
}

impl Limits {
    /// The operator's defaults, lowered where the manifest asks for less.
    pub fn new(operator: &RuntimeConfig, requested: RequestedLimits) -> Self {
        fn capped<T: Ord + Copy>(requested: Option<T>, maximum: T) -> T {
            requested.map_or(maximum, |value| value.min(maximum))
        }
        Self {
            deadline: Duration::from_millis(capped(requested.deadline_ms, operator.deadline_ms)),
            fuel: capped(requested.fuel, operator.fuel),
            max_memory_bytes: capped(requested.max_memory_bytes, operator.max_memory_bytes),
            max_table_elements: operator.max_table_elements,
            max_core_instances: engine::CORE_INSTANCES_PER_COMPONENT as usize,
            max_tables: engine::TABLES_PER_COMPONENT as usize,
            max_memories: engine::MEMORIES_PER_COMPONENT as usize,
            max_host_calls: capped(requested.max_host_calls, operator.max_host_calls),
            max_string_bytes: capped(requested.max_string_bytes, operator.max_string_bytes),
            max_concurrency: capped(
                requested.max_concurrency,
                operator.max_concurrency_per_plugin,
            )
            .max(1),
        }
    }
}

/// A limit a plugin broke at the host boundary. Raised as a trap: the run
/// ends, and the receipt names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// More host calls (igloo's and WASI's together) than the budget.
    #[error("host-call budget of {0} exhausted")]
    HostCalls(u32),
    /// One host call tried to copy more than the boundary allows.
    #[error("a host call tried to copy more than {0} bytes from the plugin")]
    CopiedTooMuch(usize),
}

/// Enforces memory, table and instance caps, and remembers the peak memory
/// and whether a growth was refused (so a run that dies of it is reported
/// as a memory failure, not a generic trap).
#[derive(Debug)]
pub struct SandboxLimiter {
    limits: Limits,
    /// Largest linear memory granted, in bytes.
    pub peak_memory_bytes: usize,
    /// Whether a memory growth was refused.
    pub memory_refused: bool,
}

impl SandboxLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            peak_memory_bytes: 0,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.max_memory_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.limits.max_table_elements)
    }

    fn instances(&self) -> usize {
        self.limits.max_core_instances
    }

    fn tables(&self) -> usize {
        self.limits.max_tables
    }

    fn memories(&self) -> usize {
        self.limits.max_memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_can_lower_limits_but_never_raise_them() {
        let operator = RuntimeConfig::default();
        let defaults = Limits::new(&operator, RequestedLimits::default());
        assert_eq!(defaults.fuel, operator.fuel);
        assert_eq!(
            defaults.deadline,
            Duration::from_millis(operator.deadline_ms)
        );

        let asked = RequestedLimits {
            fuel: Some(operator.fuel * 10),
            deadline_ms: Some(5),
            max_memory_bytes: Some(usize::MAX),
            max_host_calls: Some(3),
            max_string_bytes: None,
            max_concurrency: Some(0),
        };
        let limits = Limits::new(&operator, asked);
        assert_eq!(limits.fuel, operator.fuel, "capped");
        assert_eq!(limits.max_memory_bytes, operator.max_memory_bytes, "capped");
        assert_eq!(limits.deadline, Duration::from_millis(5), "lowered");
        assert_eq!(limits.max_host_calls, 3, "lowered");
        assert_eq!(limits.max_concurrency, 1, "at least one run at a time");
    }

    #[test]
    fn the_limiter_refuses_growth_past_the_cap_and_remembers_the_peak() {
        let limits = Limits::new(
            &RuntimeConfig::default(),
            RequestedLimits {
                max_memory_bytes: Some(1 << 20),
                ..Default::default()
            },
        );
        let mut limiter = SandboxLimiter::new(limits);
        assert!(limiter.memory_growing(0, 512 << 10, None).unwrap());
        assert!(!limiter.memory_growing(512 << 10, 2 << 20, None).unwrap());
        assert_eq!(
            (limiter.peak_memory_bytes, limiter.memory_refused),
            (512 << 10, true)
        );
    }
}
