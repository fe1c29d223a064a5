//! `igloo simulate`: sign a webhook body as Meta does and post it to a
//! running igloo, from a file or built from flags.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::config::Config;
use crate::signature;

/// What `igloo simulate` sends.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A webhook body to send as is (e.g. a fixture). Without it, one event
    /// is built from the flags below.
    pub file: Option<PathBuf>,
    /// The kind of event to build.
    #[arg(long, value_enum, default_value_t = SimulatedKind::Message)]
    pub kind: SimulatedKind,
    /// Text of the message or comment.
    #[arg(long, default_value = "hi")]
    pub text: String,
    /// Who it comes from (an IGSID).
    #[arg(long = "from", default_value = "6543210987654321")]
    pub from: String,
    /// The business account it is for.
    #[arg(long, default_value = "17841400000000001")]
    pub account: String,
    /// Payload of a postback.
    #[arg(long, default_value = "GET_STARTED")]
    pub payload: String,
    /// Where igloo listens; defaults to the config's `server.listen`.
    #[arg(long)]
    pub url: Option<String>,
    /// The app secret to sign with; defaults to the config's first one (the
    /// dry-run secret on embedded defaults).
    #[arg(long, env = "IGLOO_SIMULATE_SECRET")]
    pub secret: Option<String>,
    /// The config file to take the address and secret from.
    #[arg(long, short, env = "IGLOO_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Event kinds `igloo simulate` can build.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SimulatedKind {
    /// A text direct message.
    Message,
    /// A comment on a post.
    Comment,
    /// An ice-breaker / button tap.
    Postback,
}

/// Build the body Meta would send for one event of `kind`.
pub fn build_body(args: &SimulateArgs, now_ms: u64) -> Value {
    let id = format!("simulated-{now_ms}");
    let messaging = |event: (&str, Value)| {
        json!({"object": "instagram", "entry": [{"id": args.account, "time": now_ms, "messaging": [{
            "sender": {"id": args.from}, "recipient": {"id": args.account}, "timestamp": now_ms,
            event.0: event.1,
        }]}]})
    };
    match args.kind {
        SimulatedKind::Message => messaging(("message", json!({"mid": id, "text": args.text}))),
        SimulatedKind::Postback => messaging((
            "postback",
            json!({"mid": id, "title": args.payload, "payload": args.payload}),
        )),
        SimulatedKind::Comment => json!({"object": "instagram", "entry": [{"id": args.account,
            "time": now_ms / 1000, "changes": [{"field": "comments", "value": {
                "id": id, "from": {"id": args.from, "username": "simulated.user"}, "text": args.text,
                "media": {"id": "17950000000000001", "media_product_type": "FEED"}}}]}]}),
    }
}

/// Sign and post; print igloo's answer.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref()).context("loading the configuration")?;
    let secret = match &args.secret {
        Some(secret) => secret.clone(),
        None => config
            .effective_app_secrets()
            .into_iter()
            .next()
            .context("no app secret configured: pass --secret")?,
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}/webhooks/instagram", config.server.listen));
    let body = match &args.file {
        Some(file) => std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        None => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64;
            build_body(&args, now_ms).to_string().into_bytes()
        }
    };
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(
            signature::SIGNATURE_HEADER,
            signature::sign(secret.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("posting to {url}"))?;
    let status = response.status();
    println!(
        "{} {}",
        status.as_u16(),
        response.text().await.unwrap_or_default()
    );
    anyhow::ensure!(status.is_success(), "igloo refused the webhook");
    Ok(())
}
