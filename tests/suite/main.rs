//! igloo's integration suite: one binary, a module per area.

mod end_to_end;
mod events;
mod ingress;
mod restart;
mod sandbox;
mod sandbox_limits;
