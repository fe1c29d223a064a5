//! The servers under test, each in its own process so that the load
//! generator and the server do not share a runtime, and so that each
//! process's memory can be read: igloo itself, a bare axum handler (the
//! ceiling), and the Express peer.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use igloo::config::{Config, GraphMode, PluginConfig, PluginSource};
use igloo::signature::{SIGNATURE_HEADER, SignatureHeaders, SignatureVerifier};
use tokio::net::TcpListener;

use crate::payload::{ACCOUNTS, SECRET, account};

/// A server running in a child process; killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Its webhook URL.
    pub url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// `kill -9`: no drain, no flush, nothing the server can do about it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory of the process, in bytes.
    pub(crate) fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    }
}

/// A port free now, for a server to listen on.
pub(crate) fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the server on port {port} did not start")
}

/// Start `command` (which must listen on `port`) and wait for it.
async fn start(mut command: Command, port: u16) -> anyhow::Result<ServerProcess> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = ServerProcess {
        child,
        url: format!("http://127.0.0.1:{port}/webhooks/instagram"),
    };
    wait_until_listening(port).await?;
    Ok(server)
}

/// How the igloo child should be set up.
pub(crate) struct IglooSetup<'a> {
    /// Where its database lives.
    pub data_dir: &'a Path,
    /// The fake Graph API for live mode; a dry run when `None`.
    pub graph: Option<&'a str>,
    /// Run the auto-reply example, or no plugin at all.
    pub auto_reply: bool,
    /// Runs of one plugin at once.
    pub concurrency: u32,
    /// Where it listens (the same across restarts of one run).
    pub port: u16,
}

/// Start igloo in a child process (this binary, `serve-igloo` mode).
pub(crate) async fn start_igloo(setup: IglooSetup<'_>) -> anyhow::Result<ServerProcess> {
    let port = setup.port;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["serve-igloo", "--port", &port.to_string(), "--data-dir"])
        .arg(setup.data_dir)
        .args(["--concurrency", &setup.concurrency.to_string()]);
    if let Some(graph) = setup.graph {
        command.args(["--graph", graph]);
    }
    if setup.auto_reply {
        command.arg("--auto-reply");
    }
    start(command, port).await
}

/// Start the bare axum receiver in a child process.
pub(crate) async fn start_bare() -> anyhow::Result<ServerProcess> {
    let port = free_port();
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["serve-bare", "--port", &port.to_string()]);
    start(command, port).await
}

/// Install Express (once) and start the Node receiver; `None` if Node or
/// npm is not available.
pub(crate) async fn start_express(target_dir: &Path) -> anyhow::Result<Option<ServerProcess>> {
    let node_dir = target_dir.join("bench-node");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/express-receiver.js");
    if !node_dir.join("node_modules/express").exists() {
        std::fs::create_dir_all(&node_dir)?;
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("node/package.json"),
            node_dir.join("package.json"),
        )?;
        let installed = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&node_dir)
            .status();
        if !installed.is_ok_and(|status| status.success()) {
            eprintln!("npm could not install express; skipping the Express peer");
            return Ok(None);
        }
    }
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg(script)
        .args([&port.to_string(), SECRET])
        .env("NODE_PATH", node_dir.join("node_modules"));
    Ok(Some(start(command, port).await?))
}

/// The target directory holding this binary, for caches.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(2)
        .expect("target/<profile>/igloo-bench")
        .to_path_buf()
}

/// `serve-igloo`: run igloo as the benchmarks configure it.
pub(crate) async fn serve_igloo(
    port: u16,
    data_dir: PathBuf,
    graph: Option<String>,
    auto_reply: bool,
    concurrency: u32,
) -> anyhow::Result<()> {
    let mut config = Config::default();
    config.storage.data_dir = data_dir;
    config.webhook.app_secrets = vec![SECRET.into()];
    config.webhook.verify_token = Some("bench-verify-token".into());
    config.runtime.max_concurrency_per_plugin = concurrency;
    config.runtime.max_in_flight_per_account = concurrency;
    config.runtime.max_instances = concurrency.max(256);
    config.runtime.deadline_ms = 30_000;
    if let Some(graph) = graph {
        config.graph.mode = GraphMode::Live;
        config.graph.instagram_base_url = graph;
        config.graph.timeout_ms = 30_000;
        for n in 0..ACCOUNTS {
            config.accounts.insert(
                account(n),
                igloo::config::AccountConfig {
                    access_token: Some("bench-token".into()),
                    ..Default::default()
                },
            );
        }
    }
    if auto_reply {
        config.plugins = vec![PluginConfig::new(
            "auto-reply",
            PluginSource::Builtin("auto-reply".into()),
            &["messages:reply"],
        )];
    }
    let igloo = igloo::Igloo::start(config).await?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    igloo.serve(listener, std::future::pending()).await?;
    Ok(())
}

/// `serve-bare`: the ceiling, an axum handler that only verifies the
/// signature (precomputed HMAC key) and parses the JSON.
pub(crate) async fn serve_bare(port: u16) -> anyhow::Result<()> {
    let verifier = Arc::new(SignatureVerifier::new(&[SECRET], false));
    let app = Router::new().route(
        "/webhooks/instagram",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let verifier = Arc::clone(&verifier);
            async move {
                let signature = SignatureHeaders {
                    sha256: headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()),
                    sha1: None,
                };
                if verifier.verify(signature, &body).is_err() {
                    return axum::http::StatusCode::FORBIDDEN;
                }
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(_) => axum::http::StatusCode::OK,
                    Err(_) => axum::http::StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
