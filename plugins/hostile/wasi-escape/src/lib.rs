//! Reaches past igloo's own API through WASI, which every Rust component
//! imports through std: sockets, name lookups, the environment, the
//! filesystem, stdout and stderr, clocks and randomness. The host must grant
//! none of it (no network, no preopened directories, no environment), and
//! its budgets must stop a plugin that floods WASI.
//!
//! The text of the message picks the attack:
//!
//! - `sockets`: binds TCP listeners, then UDP sockets (up to 2000 each,
//!   stopping at the first refusal), connects to 127.0.0.1:80 and looks up
//!   `localhost`. Reports `tcp=N udp=M connect=<ok|err> lookup=<ok|err>`.
//! - `host`: counts environment variables and arguments, lists `/` and `.`,
//!   reads `/etc/passwd`, writes `/tmp/igloo-escape`, prints to stdout and
//!   stderr. Reports `env=N args=M root=<ok|err> cwd=<ok|err> read=<ok|err>
//!   write=<ok|err>` (one line).
//! - `flood`: reads the wall and monotonic clocks forever; never returns.
//! - `random`: asks `wasi:random/random` for 64 MiB in one call (the most
//!   wasmtime-wasi hands out by default, allocated in the host before it is
//!   copied into the plugin's memory), then reports `random=done`.
//! - `random-flood`: calls `wasi:random/random.get-random-u64` 10 million
//!   times, then reports `random=done`.
//!
//! Anything else reports `unknown mode`.
//!
//! std has no stable way to ask WASI for random bytes on demand (its
//! `RandomState` keys are drawn once per thread), so the random modes call
//! `wasi:random` through bindings of their own.

use std::hint::black_box;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Instant, SystemTime};

use igloo_plugin_sdk::{Envelope, Message, Outcome, Plugin, PluginError};

mod wasi {
    wit_bindgen::generate!({
        inline: "
            package wasi:random@0.2.0;

            interface random {
                get-random-bytes: func(len: u64) -> list<u8>;
                get-random-u64: func() -> u64;
            }

            world random-only {
                import random;
            }
        ",
    });
}

use wasi::wasi::random::random;

struct WasiEscape;

/// Most sockets of each kind to try for.
const MAX_SOCKETS: usize = 2000;

/// The size of the random buffer asked for.
const RANDOM_BYTES: u64 = 64 << 20;

/// Calls of `get-random-u64` in `random-flood`.
const RANDOM_CALLS: u32 = 10_000_000;

fn outcome<T, E>(result: &Result<T, E>) -> &'static str {
    if result.is_ok() { "ok" } else { "err" }
}

/// Sockets of one kind bound until the first refusal (they stay open
/// until the count is taken).
fn bind_all<T>(bind: impl Fn() -> std::io::Result<T>) -> usize {
    let bound: Vec<T> = (0..MAX_SOCKETS).map_while(|_| bind().ok()).collect();
    bound.len()
}

fn sockets() -> String {
    let tcp = bind_all(|| TcpListener::bind("127.0.0.1:0"));
    let udp = bind_all(|| UdpSocket::bind("127.0.0.1:0"));
    let connect = TcpStream::connect("127.0.0.1:80");
    let lookup = ("localhost", 80).to_socket_addrs();
    format!(
        "tcp={tcp} udp={udp} connect={} lookup={}",
        outcome(&connect),
        outcome(&lookup)
    )
}

fn host() -> String {
    let env = std::env::vars().count();
    let args = std::env::args().count();
    let root = std::fs::read_dir("/");
    let cwd = std::fs::read_dir(".");
    let read = std::fs::read("/etc/passwd");
    let write = std::fs::write("/tmp/igloo-escape", b"x");
    // `println!` would panic, and so lose the report, if the host closed the
    // streams; the same WASI writes, with errors ignored.
    let _ = writeln!(std::io::stdout(), "wasi-escape: stdout line");
    let _ = writeln!(std::io::stderr(), "wasi-escape: stderr line");
    format!(
        "env={env} args={args} root={} cwd={} read={} write={}",
        outcome(&root),
        outcome(&cwd),
        outcome(&read),
        outcome(&write)
    )
}

fn flood() -> ! {
    loop {
        black_box(SystemTime::now());
        black_box(Instant::now());
    }
}

impl Plugin for WasiEscape {
    fn on_message(_: &Envelope, message: &Message) -> Result<Outcome, PluginError> {
        let report = match message.text.as_deref().unwrap_or_default().trim() {
            "sockets" => sockets(),
            "host" => host(),
            "flood" => flood(),
            "random" => {
                black_box(random::get_random_bytes(RANDOM_BYTES));
                "random=done".to_owned()
            }
            "random-flood" => {
                for _ in 0..RANDOM_CALLS {
                    black_box(random::get_random_u64());
                }
                "random=done".to_owned()
            }
            _ => "unknown mode".to_owned(),
        };
        Err(PluginError::new(report))
    }
}

igloo_plugin_sdk::register_plugin!(WasiEscape);
