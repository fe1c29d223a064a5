//! Keeping accounts working while igloo runs, beside the flow of events:
//! tokens refreshed before they expire ([`refresh`]).

pub(crate) mod refresh;
