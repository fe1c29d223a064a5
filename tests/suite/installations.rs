//! Installations, bundles and trust: one package installed many times with
//! its own settings and state; signed bundles checked against the trust
//! store in live mode; upgrades and removals while igloo runs; bundles
//! fetched from a real OCI registry; pseudonymous installations.

use std::process::{Child, Command, Stdio};

use igloo::bundle::{Bundle, SecretKey};
use igloo::config::Config;
use igloo_tests::{
    ACCOUNT_ID, FakeGraph, OPERATOR_TOKEN, TestIgloo, eventually, live_config, webhook,
};
use reqwest::Method;
use serde_json::{Value, json};

const OTHER_ACCOUNT: &str = "17841400000000002";

fn config_with_two_accounts(graph: &FakeGraph) -> Config {
    let mut config = live_config(graph);
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    // Only what the tests install runs.
    config.plugins.clear();
    let mut other = config.accounts[ACCOUNT_ID].clone();
    other.access_token = Some("other-token".into());
    config.accounts.insert(OTHER_ACCOUNT.into(), other);
    config
}

fn bundle_of(plugin: &igloo_plugin_artifacts::BuiltPlugin) -> Bundle {
    Bundle::new(plugin.manifest.to_owned(), plugin.component.to_vec()).unwrap()
}

/// Upload `bundle`; its digest.
async fn upload(igloo: &TestIgloo, bundle: &Bundle) -> String {
    let response = igloo
        .client
        .put(format!("{}/admin/bundles", igloo.url))
        .bearer_auth(OPERATOR_TOKEN)
        .body(bundle.to_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let answer: Value = response.json().await.unwrap();
    answer["digest"].as_str().unwrap().to_owned()
}

async fn trust(igloo: &TestIgloo, key: &SecretKey) {
    let body = json!({"add": {"name": "shop-tools", "key": key.public().to_string()}});
    let (status, answer) = igloo.admin(Method::POST, "/admin/trust", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
}

async fn install(igloo: &TestIgloo, spec: Value) -> (u16, Value) {
    igloo
        .admin(Method::POST, "/admin/installations", Some(spec))
        .await
}

/// Have `plugin` (a probe) run `command` on a message of mid `mid`; what
/// its run reported.
async fn run_on(igloo: &TestIgloo, plugin: &str, command: &Value, mid: &str) -> String {
    let body = webhook::delivery([webhook::message("503", &command.to_string()).mid(mid)]);
    assert_eq!(igloo.post_webhook(&body).await.status().as_u16(), 200);
    detail_of(igloo, plugin, mid).await
}

/// What `plugin`'s run on the message of mid `mid` reported, once it ran.
async fn detail_of(igloo: &TestIgloo, plugin: &str, mid: &str) -> String {
    eventually("the probe ran", async || {
        let path = format!("/admin/events?plugin={plugin}&limit=10");
        let (_, events) = igloo.admin(Method::GET, &path, None).await;
        let event = events["events"]
            .as_array()?
            .iter()
            .find(|event| event["key"].as_str().is_some_and(|key| key.ends_with(mid)))?
            .clone();
        let run = event["runs"]
            .as_array()?
            .iter()
            .find(|run| run["plugin"] == plugin)?
            .clone();
        Some(run["detail"].as_str().unwrap_or_default().to_owned())
    })
    .await
}

fn message_to(account: &str, sender: &str, text: &str, mid: &str) -> Vec<u8> {
    let body = webhook::delivery([webhook::message(sender, text).mid(mid)]);
    String::from_utf8(body)
        .unwrap()
        .replace(ACCOUNT_ID, account)
        .into_bytes()
}

#[tokio::test]
async fn one_package_serves_two_accounts_each_with_its_own_settings_and_state() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(config_with_two_accounts(&graph)).await;
    let key = SecretKey::generate();
    trust(&igloo, &key).await;
    let mut auto_reply = bundle_of(&igloo_plugin_artifacts::AUTO_REPLY);
    auto_reply.sign(&key);
    let digest = upload(&igloo, &auto_reply).await;
    let (status, answer) = install(
        &igloo,
        json!({
            "id": "shop-replies",
            "digest": digest,
            "grants": ["messages:reply"],
            "settings": {"reply": "default shop"},
            "account_settings": {OTHER_ACCOUNT: {"reply": "second shop"}},
        }),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["provenance"]["publisher"], "shop-tools");

    igloo
        .post_webhook(&message_to(ACCOUNT_ID, "501", "hi", "m1"))
        .await;
    igloo
        .post_webhook(&message_to(OTHER_ACCOUNT, "502", "hi", "m2"))
        .await;
    let sent = eventually("both answered", async || {
        let sent = graph.sent_messages();
        (sent.len() == 2).then_some(sent)
    })
    .await;
    let text_to = |person: &str| {
        sent.iter()
            .find(|message| message.recipient_id == person)
            .and_then(|message| message.text.clone())
    };
    assert_eq!(text_to("501").as_deref(), Some("default shop"));
    assert_eq!(text_to("502").as_deref(), Some("second shop"));

    // Two installations of the probe: what one stores, the other cannot see.
    // Two installations of the probe: what one stores, the other cannot see.
    let mut probe_bundle = bundle_of(&igloo_plugin_artifacts::PROBE);
    probe_bundle.sign(&key);
    let probe_digest = upload(&igloo, &probe_bundle).await;
    let install_probe = async |id: &str| {
        let (status, answer) = install(
            &igloo,
            json!({
                "id": id, "digest": probe_digest, "accounts": [ACCOUNT_ID],
                "grants": ["messages:reply", "comments:reply", "profiles:read",
                           "profiles:public-lookup", "kv", "schedule", "conversations:control"],
            }),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    };
    install_probe("probe-a").await;
    let set = json!({"op": "kv_set", "key": "k", "value": "from a", "then": "handle"});
    run_on(&igloo, "probe-a", &set, "kv-1").await;
    let timer = json!({"op": "timer_set", "key": "later", "after_ms": 3_600_000, "payload": "x"});
    run_on(&igloo, "probe-a", &timer, "t-1").await;
    // Installed after the writes: a second installation of the same package.
    install_probe("probe-b").await;
    // Its timers are not the other's: with probe-a paused, probe-b cannot
    // cancel probe-a's timer; resumed, probe-a can.
    igloo
        .admin(Method::POST, "/admin/installations/probe-a/pause", None)
        .await;
    let cancel = json!({"op": "timer_cancel", "key": "later"});
    let by_b = run_on(&igloo, "probe-b", &cancel, "t-2").await;
    assert_eq!(by_b, "Ok(false)");
    igloo
        .admin(Method::POST, "/admin/installations/probe-a/resume", None)
        .await;
    assert_eq!(detail_of(&igloo, "probe-a", "t-2").await, "Ok(true)");
    let get = json!({"op": "kv_get", "key": "k"});
    let seen_by_b = run_on(&igloo, "probe-b", &get, "kv-2").await;
    let seen_by_a = run_on(&igloo, "probe-a", &get, "kv-3").await;
    assert!(seen_by_a.contains("from a"), "{seen_by_a}");
    assert!(!seen_by_b.contains("from a"), "{seen_by_b}");
    // Removed and made again under the same id, it starts with nothing.
    let (status, _) = igloo
        .admin(Method::DELETE, "/admin/installations/probe-a", None)
        .await;
    assert_eq!(status, 200);
    install_probe("probe-a").await;
    let seen_again = run_on(&igloo, "probe-a", &get, "kv-4").await;
    assert!(!seen_again.contains("from a"), "{seen_again}");
    let (status, _) = igloo
        .admin(Method::DELETE, "/admin/installations/probe-a", None)
        .await;
    assert_eq!(status, 200);

    // What the API changed survives a restart.
    let data = igloo.stop().await;
    let igloo = TestIgloo::start_in(config_with_two_accounts(&graph), data).await;
    let (_, listed) = igloo.admin(Method::GET, "/admin/installations", None).await;
    let ids: Vec<&str> = listed["installations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|one| one["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["shop-replies", "probe-b"], "{listed}");
}

#[tokio::test]
async fn live_mode_refuses_unsigned_tampered_and_unknown_bundles_with_the_reason() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(config_with_two_accounts(&graph)).await;
    let unsigned = bundle_of(&igloo_plugin_artifacts::AUTO_REPLY);
    let digest = upload(&igloo, &unsigned).await;
    let spec =
        |digest: &str| json!({"id": "replies", "digest": digest, "grants": ["messages:reply"]});
    let (status, answer) = install(&igloo, spec(&digest)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("unsigned"),
        "{answer}"
    );

    // The CLI says the same.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), unsigned.to_bytes()).unwrap();
    let path = file.path().to_str().unwrap();
    let error = igloo
        .cli(&[
            "installations",
            "add",
            "replies",
            "--bundle",
            path,
            "--grant",
            "messages:reply",
        ])
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("unsigned"), "{error:#}");

    // Signed by a key not in the trust store.
    let stranger = SecretKey::generate();
    let mut by_stranger = unsigned.clone();
    by_stranger.sign(&stranger);
    let digest = upload(&igloo, &by_stranger).await;
    let (status, answer) = install(&igloo, spec(&digest)).await;
    assert_eq!(status, 422);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not in the trust store"),
        "{answer}"
    );

    // A bundle whose component changed after it was packed is not even stored.
    let mut bytes = unsigned.to_bytes();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    let response = igloo
        .client
        .put(format!("{}/admin/bundles", igloo.url))
        .bearer_auth(OPERATOR_TOKEN)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    // Allowed unsigned for this one installation: it runs, and says so.
    let mut allowed = spec(&upload(&igloo, &unsigned).await);
    allowed["allow_unsigned"] = json!(true);
    let (status, answer) = install(&igloo, allowed).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["provenance"]["unsigned"], true);

    // A bundle in the config file that is unsigned fails to load, and
    // /healthz says why.
    let folder = tempfile::tempdir().unwrap();
    let bundle_file = folder.path().join("auto-reply.igloo");
    std::fs::write(&bundle_file, unsigned.to_bytes()).unwrap();
    let mut config = config_with_two_accounts(&graph);
    config.plugins.push(igloo::config::PluginConfig::new(
        "from-file",
        igloo::config::PluginSource::Bundle(bundle_file),
        &["messages:reply"],
    ));
    let second = TestIgloo::start(config).await;
    let health = second.get_json("/healthz").await;
    let failed = health["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["id"] == "from-file")
        .cloned()
        .unwrap();
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("unsigned"),
        "{failed}"
    );
}

#[tokio::test]
async fn an_upgrade_asking_for_more_waits_for_the_grant_and_one_under_load_loses_nothing() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(config_with_two_accounts(&graph)).await;
    let key = SecretKey::generate();
    trust(&igloo, &key).await;
    let sign = |mut bundle: Bundle| {
        bundle.sign(&key);
        bundle
    };
    let manifest = igloo_plugin_artifacts::AUTO_REPLY.manifest;
    let component = igloo_plugin_artifacts::AUTO_REPLY.component.to_vec();
    let v1 = sign(Bundle::new(manifest.replace("0.1.0", "1.0.0"), component.clone()).unwrap());
    let v2 = sign(Bundle::new(manifest.replace("0.1.0", "2.0.0"), component.clone()).unwrap());
    // v3 asks for a capability the installation was not granted.
    let v3_manifest = manifest.replace("0.1.0", "3.0.0").replace(
        "capabilities = [\"messages:reply\"]",
        "capabilities = [\"messages:reply\", \"kv\"]",
    );
    assert_ne!(v3_manifest, manifest.replace("0.1.0", "3.0.0"));
    let v3 = sign(Bundle::new(v3_manifest, component).unwrap());
    let (d1, d2, d3) = (
        upload(&igloo, &v1).await,
        upload(&igloo, &v2).await,
        upload(&igloo, &v3).await,
    );
    let (status, answer) = install(
        &igloo,
        json!({"id": "replies", "digest": d1, "grants": ["messages:reply"],
               "settings": {"reply": "ok {text}"}}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");

    // Hundreds of events in flight; the upgrade lands among them.
    const EVENTS: usize = 300;
    let posting = async {
        for n in 0..EVENTS {
            let body = message_to(
                ACCOUNT_ID,
                &format!("7{n:03}"),
                &format!("n{n}"),
                &format!("m{n}"),
            );
            assert_eq!(igloo.post_webhook(&body).await.status().as_u16(), 200);
        }
    };
    let upgrading = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        igloo
            .admin(
                Method::POST,
                "/admin/installations/replies/upgrade",
                Some(json!({"digest": d2})),
            )
            .await
    };
    let ((), (status, upgraded)) = tokio::join!(posting, upgrading);
    assert_eq!(status, 200, "{upgraded}");
    assert_eq!(upgraded["result"], "upgraded");
    igloo.wait_until_idle().await;
    let sent = graph.sent_messages();
    let mut texts: Vec<String> = sent.iter().filter_map(|m| m.text.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(sent.len(), EVENTS, "each event answered exactly once");
    assert_eq!(texts.len(), EVENTS);
    let health = igloo.get_json("/healthz").await;
    assert_eq!(health["plugins"][0]["version"], "2.0.0", "{health}");

    // v3 waits for `kv`; v2 answers meanwhile.
    let (status, waiting) = igloo
        .admin(
            Method::POST,
            "/admin/installations/replies/upgrade",
            Some(json!({"digest": d3})),
        )
        .await;
    assert_eq!(status, 200, "{waiting}");
    assert_eq!(waiting["result"], "waiting-for-grant");
    assert_eq!(waiting["missing"], json!(["kv"]));
    let (_, shown) = igloo
        .admin(Method::GET, "/admin/installations/replies", None)
        .await;
    assert_eq!(shown["diff"]["added"], json!(["kv"]), "{shown}");
    assert_eq!(shown["version"], "2.0.0");
    // The dashboard shows the difference too.
    let (cookie, client) = igloo.dashboard_session().await;
    let page = client
        .get(format!("{}/ui", igloo.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("upgrade waiting"), "{page}");
    assert!(page.contains("asks for kv"), "{page}");
    igloo
        .post_webhook(&message_to(ACCOUNT_ID, "8000", "still", "m-still"))
        .await;
    eventually("v2 answers meanwhile", async || {
        graph
            .sent_messages()
            .iter()
            .any(|m| m.recipient_id == "8000")
            .then_some(())
    })
    .await;

    // Granted from the dashboard: v3 runs.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let granted = client
        .post(format!("{}/ui/installations/replies/grant", igloo.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let location = granted.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/ui?done=granted");
    let (_, answer) = igloo
        .admin(Method::GET, "/admin/installations/replies", None)
        .await;
    assert_eq!(answer["version"], "3.0.0", "{answer}");
    assert_eq!(
        answer["spec"]["grants"],
        json!(["messages:reply", "kv"]),
        "{answer}"
    );
    assert_eq!(answer["pending_upgrade"], Value::Null);

    // Paused: its events wait; resumed, they run. Removed: what it had not
    // run on is a dead letter.
    igloo
        .admin(Method::POST, "/admin/installations/replies/pause", None)
        .await;
    igloo
        .post_webhook(&message_to(ACCOUNT_ID, "8001", "waits", "m-waits"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !graph
            .sent_messages()
            .iter()
            .any(|m| m.recipient_id == "8001")
    );
    let (status, removed) = igloo
        .admin(Method::DELETE, "/admin/installations/replies", None)
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["dead_letters"], 1, "{removed}");
    let (_, dead) = igloo
        .admin(Method::GET, "/admin/events?dead=true", None)
        .await;
    assert_eq!(dead["events"].as_array().unwrap().len(), 1, "{dead}");
}

#[tokio::test]
async fn a_revoked_bundle_stops_taking_events_which_wait() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(config_with_two_accounts(&graph)).await;
    let key = SecretKey::generate();
    trust(&igloo, &key).await;
    let mut bundle = bundle_of(&igloo_plugin_artifacts::AUTO_REPLY);
    bundle.sign(&key);
    let digest = upload(&igloo, &bundle).await;
    install(
        &igloo,
        json!({"id": "replies", "digest": digest, "grants": ["messages:reply"]}),
    )
    .await;
    let (status, _) = igloo
        .admin(
            Method::POST,
            "/admin/trust",
            Some(json!({"revoke": {"what": digest}})),
        )
        .await;
    assert_eq!(status, 200);
    igloo
        .post_webhook(&message_to(ACCOUNT_ID, "901", "hi", "m-revoked"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(graph.sent_messages().is_empty());
    assert_eq!(igloo.stats().await.pending, 1, "the event waits");
    let (_, listed) = igloo.admin(Method::GET, "/admin/installations", None).await;
    let replies = &listed["installations"][0];
    assert_eq!(replies["state"], "held", "{listed}");
    assert!(
        replies["held"].as_str().unwrap().contains("revoked"),
        "{listed}"
    );
}

#[tokio::test]
async fn a_pseudonymous_installation_answers_a_person_without_seeing_their_igsid() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(config_with_two_accounts(&graph)).await;
    // The probe asks for profiles, which would tell who people are:
    // refused for a pseudonymous installation.
    let probe = upload(&igloo, &bundle_of(&igloo_plugin_artifacts::PROBE)).await;
    let (status, answer) = install(
        &igloo,
        json!({"id": "blind", "digest": probe, "allow_unsigned": true, "pseudonymous": true,
               "grants": ["messages:reply", "comments:reply", "profiles:read",
                          "profiles:public-lookup", "kv", "schedule", "conversations:control"]}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("profiles"),
        "{answer}"
    );
    let digest = upload(&igloo, &bundle_of(&igloo_plugin_artifacts::WITNESS)).await;
    let (status, answer) = install(
        &igloo,
        json!({"id": "blind", "digest": digest, "grants": ["messages:reply"],
               "allow_unsigned": true, "pseudonymous": true}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");

    const IGSID: &str = "6543210987654321";
    let body = webhook::message(IGSID, "hello").body();
    let seen = igloo.run_and_report(&body, "blind").await;
    assert!(seen.starts_with("saw "), "{seen}");
    assert!(!seen.contains(IGSID), "the plugin saw the IGSID: {seen}");
    assert!(seen.contains("sent Ok"), "{seen}");
    let sent = graph.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].recipient_id, IGSID,
        "igloo mapped the pseudonym back"
    );
    // Pseudonyms are chosen when an installation is made, never later.
    let (status, _) = igloo
        .admin(
            Method::PATCH,
            "/admin/installations/blind",
            Some(json!({"pseudonymous": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = igloo
        .admin(
            Method::PATCH,
            "/admin/installations/blind",
            Some(json!({"pseudonymous": true})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    // The inbox keeps the real id, for dead letters and replays.
    let (_, events) = igloo
        .admin(Method::GET, &format!("/admin/events?person={IGSID}"), None)
        .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
}

/// Debian's `docker-registry`, started on a free port with its storage in
/// a temporary folder; stopped when dropped.
struct Registry {
    child: Child,
    address: String,
    storage: tempfile::TempDir,
}

impl Registry {
    async fn start() -> Self {
        let storage = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's package; `cargo xtask test` installs it)");
        let registry = Self {
            child,
            address,
            storage,
        };
        let url = format!("http://{}/v2/", registry.address);
        eventually("the registry answers", async || {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await;
        registry
    }

    /// Overwrite the blob `digest` (`sha256:…`) in the registry's storage.
    fn tamper_with(&self, digest: &str) {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let data = self
            .storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        let mut bytes = std::fs::read(&data).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0xff;
        std::fs::write(&data, bytes).unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_bundle_pushed_to_an_oci_registry_is_installed_by_reference_and_a_tampered_one_refused() {
    let registry = Registry::start().await;
    let graph = FakeGraph::start().await;
    let mut config = config_with_two_accounts(&graph);
    config.bundles.insecure_registries = vec![registry.address.clone()];
    let igloo = TestIgloo::start(config).await;
    let key = SecretKey::generate();
    // Through the CLI, as an operator would.
    let public = key.public().to_string();
    igloo
        .cli(&["trust", "add", "shop-tools", &public])
        .await
        .unwrap();
    let (_, trusted) = igloo.admin(Method::GET, "/admin/trust", None).await;
    assert_eq!(
        trusted["publishers"][0]["key"],
        public.as_str(),
        "{trusted}"
    );
    let mut bundle = bundle_of(&igloo_plugin_artifacts::AUTO_REPLY);
    bundle.sign(&key);
    let registries = igloo::bundle::oci::Registries {
        insecure: vec![registry.address.clone()],
    };
    let reference = format!("oci://{}/igloo/auto-reply:1.0", registry.address);
    registries.push(&bundle, &reference).await.unwrap();

    igloo
        .cli(&[
            "installations",
            "add",
            "replies",
            "--from",
            &reference,
            "--grant",
            "messages:reply",
            "--setting",
            "reply=from the registry",
        ])
        .await
        .unwrap();
    let (_, shown) = igloo
        .admin(Method::GET, "/admin/installations/replies", None)
        .await;
    assert_eq!(
        shown["provenance"]["digest"],
        bundle.digest().to_string(),
        "{shown}"
    );
    igloo
        .post_webhook(&message_to(ACCOUNT_ID, "601", "hi", "m-oci"))
        .await;
    let sent = eventually("answered", async || {
        let sent = graph.sent_messages();
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(sent[0].text.as_deref(), Some("from the registry"));

    // The same artifact with its layer changed in the registry's storage.
    let tampered = format!("oci://{}/igloo/tampered:1.0", registry.address);
    registries.push(&bundle, &tampered).await.unwrap();
    let layer = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bundle.component()))
    );
    registry.tamper_with(&layer);
    let (status, answer) = igloo
        .admin(
            Method::POST,
            "/admin/bundles/fetch",
            Some(json!({"reference": tampered})),
        )
        .await;
    assert_ne!(status, 201, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("digest"),
        "{answer}"
    );
}

#[tokio::test]
async fn installations_take_their_place_in_an_exclusive_group_and_a_dry_run_loads_unsigned_code() {
    let graph = FakeGraph::start().await;
    let igloo = TestIgloo::start(config_with_two_accounts(&graph)).await;
    let bundle = bundle_of(&igloo_plugin_artifacts::AUTO_REPLY);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bundle.to_bytes()).unwrap();
    let path = file.path().to_str().unwrap();
    for (id, position) in [("second", "1"), ("first", "0")] {
        let reply = format!("reply=from {id}");
        igloo
            .cli(&[
                "installations",
                "add",
                id,
                "--bundle",
                path,
                "--grant",
                "messages:reply",
                "--setting",
                &reply,
                "--allow-unsigned",
                "--exclusive-group",
                "answer-once",
                "--position",
                position,
            ])
            .await
            .unwrap();
    }
    igloo
        .post_webhook(&message_to(ACCOUNT_ID, "701", "hi", "m-group"))
        .await;
    igloo.wait_until_idle().await;
    let sent = graph.sent_messages();
    assert_eq!(sent.len(), 1, "one answer between them: {sent:?}");
    assert_eq!(sent[0].text.as_deref(), Some("from first"));

    // A dry run loads an unsigned bundle, and says so.
    let mut config = Config::embedded_defaults();
    config.server.admin_token = Some(OPERATOR_TOKEN.into());
    let dry = TestIgloo::start(config).await;
    let digest = upload(&dry, &bundle).await;
    let (status, answer) = install(
        &dry,
        json!({"id": "tried", "digest": digest, "grants": ["messages:reply"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let health = dry.get_json("/healthz").await;
    let tried = health["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["id"] == "tried")
        .cloned()
        .unwrap();
    assert_eq!(tried["provenance"]["unsigned"], true, "{health}");
}
