//! A real headless Chromium, driven over WebDriver: Debian's `chromium`
//! and `chromium-driver` (`cargo xtask test` installs them).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// A headless Chromium and the chromedriver that drives it; both end when
/// this is dropped.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Start chromedriver on a free port and open a headless window.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver not found: the dashboard's browser test needs Debian's chromium and \
                 chromium-driver (`cargo xtask test` installs them; or apt-get install chromium chromium-driver)",
            );
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut waited = Duration::ZERO;
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if waited < crate::PATIENCE => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    waited += Duration::from_millis(200);
                }
                Err(error) => panic!("chromedriver did not open a browser: {error}"),
            }
        };
        Self { client, driver }
    }
}

impl Browser {
    /// End the session (the browser closes), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
