//! Recurses without end: wasm's stack limit must trap it.

use igloo_plugin_sdk::{Envelope, Handled, Message, Outcome, Plugin, PluginError};

struct DeepRecursion;

#[inline(never)]
#[expect(
    unconditional_recursion,
    reason = "recursing until the stack overflows is the point"
)]
fn descend(depth: u64, trail: &mut [u64; 16]) -> u64 {
    trail[(depth % 16) as usize] = depth;
    let below = descend(std::hint::black_box(depth + 1), trail);
    below.wrapping_add(trail[0])
}

impl Plugin for DeepRecursion {
    fn on_message(_: &Envelope, _: &Message) -> Result<Outcome, PluginError> {
        let mut trail = [0u64; 16];
        std::hint::black_box(descend(0, &mut trail));
        Ok(Handled)
    }
}

igloo_plugin_sdk::register_plugin!(DeepRecursion);
