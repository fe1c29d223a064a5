//! One host call, then `memory.grow` past the memory cap 2,000 times (each
//! refused, each handled: the plugin goes on), then a computation long
//! enough to span several of the host's time slices. Neither the refusals
//! nor the slices are host calls: the run must end `ok` having made one.

use igloo_plugin_sdk::{Envelope, Handled, Message, Outcome, Plugin, PluginError, log};

struct MemoryRefused;

/// Attempts to grow memory, well past any cap the host sets.
const GROW_ATTEMPTS: u32 = 2_000;
/// Iterations of the computation: tens of milliseconds.
const SPIN: u64 = 30_000_000;

impl Plugin for MemoryRefused {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        log::write(log::Level::Info, "asking for memory");
        let mut refused = 0u32;
        for _ in 0..GROW_ATTEMPTS {
            // 16 pages (1 MiB) at a time: the cap refuses most of them.
            if core::arch::wasm32::memory_grow(0, 16) == usize::MAX {
                refused += 1;
            }
        }
        let mut sum = 0u64;
        for i in 0..SPIN {
            sum = std::hint::black_box(sum.wrapping_add(i));
        }
        if refused == 0 {
            return Err(PluginError::new("the memory cap never refused"));
        }
        std::hint::black_box(sum);
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(MemoryRefused);
