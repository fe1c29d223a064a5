//! The real igloo, started on port 0 with its data in a temporary folder.

use std::sync::Arc;

use igloo::config::{AccountConfig, Config, GraphMode};
use igloo::inbox::{Inbox, InboxStats};
use igloo::{Igloo, signature};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::FakeGraph;

/// The business account of the fixtures.
pub const ACCOUNT_ID: &str = "17841400000000001";
/// The app secret tests sign with (the fixtures' signing tool's default).
pub const APP_SECRET: &str = "fixture-app-secret";
/// The account's access token in tests.
pub const ACCESS_TOKEN: &str = "test-access-token";
/// The operator's admin token in tests.
pub const OPERATOR_TOKEN: &str = "operator-token-of-at-least-32-characters";
/// The key tokens are sealed with in tests (32 bytes, base64).
pub const TOKEN_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The handshake token in tests.
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// A live-mode config pointing at `graph`, with the fixtures' account.
pub fn live_config(graph: &FakeGraph) -> Config {
    let mut config = Config::embedded_defaults();
    config.graph.mode = GraphMode::Live;
    config.graph.instagram_base_url = graph.base_url().to_owned();
    config.graph.facebook_base_url = graph.base_url().to_owned();
    config.webhook.app_secrets = vec![APP_SECRET.to_owned()];
    config.webhook.verify_token = Some(VERIFY_TOKEN.to_owned());
    config.accounts.insert(
        ACCOUNT_ID.to_owned(),
        AccountConfig {
            access_token: Some(ACCESS_TOKEN.to_owned()),
            ..AccountConfig::default()
        },
    );
    config
}

/// A running igloo. Shuts down when dropped.
pub struct TestIgloo {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its inbox, for checking what was stored.
    pub inbox: Arc<dyn Inbox>,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// Where its data lives.
    pub data_dir: Arc<TempDir>,
    shutdown: oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestIgloo {
    /// Start igloo with `config`, its data in a new temporary folder.
    pub async fn start(config: Config) -> Self {
        Self::start_in(config, Arc::new(tempfile::tempdir().unwrap())).await
    }

    /// Start igloo with `config` on the data in `data_dir` (to restart).
    pub async fn start_in(mut config: Config, data_dir: Arc<TempDir>) -> Self {
        config.storage.data_dir = data_dir.path().to_owned();
        let igloo = Igloo::start(config).await.expect("igloo starts");
        let inbox = igloo.inbox();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let serving = tokio::spawn(igloo.serve(listener, async {
            let _ = stop.await;
        }));
        Self {
            url,
            inbox,
            client: reqwest::Client::new(),
            data_dir,
            shutdown,
            serving,
        }
    }

    /// Shut down as on SIGTERM (stop accepting, let runs under way finish
    /// up to the drain timeout) and wait until it has; the data stays.
    pub async fn stop(self) -> Arc<TempDir> {
        let _ = self.shutdown.send(());
        self.serving
            .await
            .expect("serving did not panic")
            .expect("serving ended cleanly");
        self.data_dir
    }

    /// POST `body` to the webhook with `signature` as `X-Hub-Signature-256`.
    pub async fn post_webhook_with(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/instagram", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.unwrap()
    }

    /// POST `body` signed with the test app secret, as Meta would.
    pub async fn post_webhook(&self, body: &[u8]) -> reqwest::Response {
        let signature = signature::sign(APP_SECRET.as_bytes(), body);
        self.post_webhook_with(body, Some(&signature)).await
    }

    /// GET `path` and return the answer's text.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// GET `path` and parse the JSON answer.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// Run the operator's command line against this igloo as the operator
    /// (`OPERATOR_TOKEN`, which the config must set): `args` from the
    /// subcommand on, as in `["timers", "list"]`.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<()> {
        use clap::Parser as _;
        let (command, rest) = args.split_first().expect("a subcommand");
        let argv = [
            "igloo",
            command,
            "--url",
            &self.url,
            "--admin-token",
            OPERATOR_TOKEN,
        ]
        .into_iter()
        .chain(rest.iter().copied());
        igloo::cli::run(igloo::cli::Cli::try_parse_from(argv)?.command).await
    }

    /// Call an admin route as the operator (`OPERATOR_TOKEN`, which the
    /// config must set); the status and the JSON answer.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(OPERATOR_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Sign in to the dashboard as the operator (`OPERATOR_TOKEN`): the
    /// session cookie (`name=value`), and a client that shows redirects
    /// rather than following them.
    pub async fn dashboard_session(&self) -> (String, reqwest::Client) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = client
            .post(format!("{}/ui/login", self.url))
            .form(&[("token", OPERATOR_TOKEN)])
            .send()
            .await
            .unwrap();
        let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
        (cookie.split(';').next().unwrap().to_owned(), client)
    }

    /// Start Business Login from the dashboard (signed in as `cookie` with
    /// `client`): the `state` igloo sends the owner to Instagram with.
    pub async fn business_login_state(&self, client: &reqwest::Client, cookie: &str) -> String {
        let start = client
            .get(format!("{}/ui/accounts/connect", self.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let authorize = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
        authorize
            .query_pairs()
            .find(|(name, _)| name == "state")
            .unwrap()
            .1
            .into_owned()
    }

    /// The inbox's counts.
    pub async fn stats(&self) -> InboxStats {
        self.inbox.stats().await.unwrap()
    }

    /// Wait until every accepted body is split into events and every event
    /// has been dispatched.
    pub async fn wait_until_idle(&self) -> InboxStats {
        crate::eventually("the inbox to drain", || async {
            let stats = self.stats().await;
            (stats.unsplit == 0 && stats.pending == 0).then_some(stats)
        })
        .await
    }
}
