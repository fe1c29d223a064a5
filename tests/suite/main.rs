//! igloo's integration suite: one binary, a module per area.

mod accounts;
mod api_versions;
mod capabilities;
mod conversations;
mod dashboard;
mod dry_run;
mod end_to_end;
mod escapes;
mod events;
mod examples;
mod exclusive_groups;
mod ingress;
mod installations;
mod journal;
mod operator_surfaces;
mod opt_out;
mod restart;
mod sandbox_limits;
mod stops;
mod timers;
