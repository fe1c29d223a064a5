use super::*;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const DAY_MS: u64 = 24 * 3600 * 1000;

fn key() -> Option<TokenKey> {
    Some(TokenKey::from_base64(KEY).unwrap())
}

fn configured(token: &str) -> BTreeMap<String, AccountConfig> {
    BTreeMap::from([(
        "1784".to_owned(),
        AccountConfig {
            access_token: Some(token.to_owned()),
            ..AccountConfig::default()
        },
    )])
}

fn added(id: &str, token: &str, issued_at_ms: u64) -> NewAccount {
    NewAccount {
        id: id.to_owned(),
        username: Some("shop".into()),
        login: LoginKind::Instagram,
        source: AccountSource::Added,
        token: NewToken {
            token: token.to_owned(),
            issued_at_ms,
            expires_at_ms: Some(issued_at_ms + LONG_LIVED_TOKEN.as_millis() as u64),
        },
    }
}

#[tokio::test]
async fn a_refreshed_configured_token_outlives_a_restart_until_the_operator_configures_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.sqlite3");
    let accounts = Accounts::open(&path, key(), &configured("first"), 0).unwrap();
    let first = accounts.credentials("1784").unwrap();
    assert_eq!(first.token, "first");
    let refreshed = NewToken {
        token: "refreshed".into(),
        issued_at_ms: 2 * DAY_MS,
        expires_at_ms: Some(62 * DAY_MS),
    };
    assert!(
        accounts
            .token_refreshed("1784", first.generation, refreshed.clone())
            .await
            .unwrap()
    );
    assert!(
        !accounts
            .token_refreshed("1784", first.generation, refreshed)
            .await
            .unwrap(),
        "a refresh of a token already replaced is not kept"
    );
    drop(accounts);

    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes.windows(9).any(|w| w == b"refreshed"),
        "tokens are sealed on disk"
    );

    let accounts = Accounts::open(&path, key(), &configured("first"), 0).unwrap();
    assert_eq!(accounts.credentials("1784").unwrap().token, "refreshed");
    drop(accounts);
    let accounts = Accounts::open(&path, key(), &configured("pasted-anew"), 0).unwrap();
    assert_eq!(accounts.credentials("1784").unwrap().token, "pasted-anew");
    drop(accounts);
    assert!(
        matches!(
            Accounts::open(&path, None, &configured("pasted-anew"), 0),
            Err(AccountsError::NoKey(_))
        ),
        "sealed tokens need their key"
    );
    let other_key = TokenKey::from_base64("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    assert!(matches!(
        Accounts::open(&path, Some(other_key), &configured("pasted-anew"), 0),
        Err(AccountsError::Unopenable(_))
    ));
    let accounts = Accounts::open(&path, key(), &BTreeMap::new(), 0).unwrap();
    assert!(
        accounts.list().is_empty(),
        "a configured account goes with its configuration"
    );
}

#[tokio::test]
async fn a_refused_token_makes_its_account_wait_until_a_new_token_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.sqlite3");
    let accounts = Accounts::open(&path, key(), &BTreeMap::new(), 0).unwrap();
    accounts.put(added("42", "old", 0)).await.unwrap();
    let old = accounts.credentials("42").unwrap();
    assert!(accounts.usable("42") && accounts.usable("unknown"));

    assert!(
        accounts
            .token_refused("42", old.generation, "Error validating access token", 5)
            .await
            .unwrap()
    );
    assert!(!accounts.usable("42"));
    assert!(
        matches!(accounts.credentials("42"), Err(Unusable::TokenInvalid(reason)) if reason.contains("validating"))
    );
    let view = accounts.get("42").unwrap();
    assert_eq!(
        (view.status.as_str(), view.status_since_ms),
        ("token-invalid", Some(5))
    );
    drop(accounts);

    let accounts = Accounts::open(&path, key(), &BTreeMap::new(), 0).unwrap();
    assert!(!accounts.usable("42"), "the state outlives a restart");
    accounts.put(added("42", "new", 10)).await.unwrap();
    let new = accounts.credentials("42").unwrap();
    assert_eq!(new.token, "new");
    assert!(accounts.usable("42"));
    assert!(
        !accounts
            .token_refused("42", old.generation, "late refusal of the old token", 11)
            .await
            .unwrap(),
        "a refusal of the old token does not touch the new one"
    );
    assert!(accounts.usable("42"));

    // Removed and added again: the old token's late refusal is still old.
    let newer = accounts.credentials("42").unwrap();
    assert!(accounts.remove("42").await.unwrap());
    accounts.put(added("42", "again", 12)).await.unwrap();
    assert!(
        !accounts
            .token_refused("42", newer.generation, "late", 13)
            .await
            .unwrap()
    );
    assert!(accounts.usable("42"));
    let again = accounts.credentials("42").unwrap();
    assert!(
        accounts
            .token_refused("42", again.generation, "now", 14)
            .await
            .unwrap()
    );
    assert!(
        accounts.retry_token("42", 15).await.unwrap(),
        "an operator may try it again"
    );
    assert!(accounts.usable("42"));
    assert!(
        !accounts.retry_token("42", 16).await.unwrap(),
        "only a refused account"
    );
}

#[tokio::test]
async fn tokens_given_by_hand_need_a_key_and_configured_accounts_are_removed_in_the_configuration()
{
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::open(
        &dir.path().join("a.sqlite3"),
        None,
        &configured("pasted"),
        0,
    )
    .unwrap();
    assert_eq!(
        accounts.credentials("1784").unwrap().token,
        "pasted",
        "without a key a configured token still works"
    );
    assert!(!accounts.get("1784").unwrap().token_kept);
    assert!(matches!(
        accounts.put(added("42", "t", 0)).await,
        Err(AccountsError::NoKey(_))
    ));

    let path = dir.path().join("b.sqlite3");
    let accounts = Accounts::open(&path, key(), &configured("pasted"), 0).unwrap();
    let mut facebook = added("1784", "given", 0);
    facebook.login = LoginKind::Facebook;
    accounts.put(facebook).await.unwrap();
    let view = accounts.get("1784").unwrap();
    assert_eq!(
        (view.source, view.login),
        (AccountSource::Config, LoginKind::Instagram),
        "still the configured account"
    );
    drop(accounts);
    let accounts = Accounts::open(&path, key(), &configured("pasted"), 0).unwrap();
    assert_eq!(
        accounts.credentials("1784").unwrap().token,
        "given",
        "until another is configured"
    );
    assert!(matches!(
        accounts.remove("1784").await,
        Err(AccountsError::Configured(_))
    ));
    accounts.put(added("42", "t", 0)).await.unwrap();
    assert!(accounts.remove("42").await.unwrap());
    assert!(!accounts.remove("42").await.unwrap());
    assert!(matches!(accounts.credentials("42"), Err(Unusable::NoToken)));
}

#[tokio::test]
async fn only_kept_instagram_tokens_old_enough_and_unexpired_are_due_for_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let accounts =
        Accounts::open(&dir.path().join("a.sqlite3"), key(), &BTreeMap::new(), 0).unwrap();
    accounts.put(added("old", "t", 0)).await.unwrap();
    accounts.put(added("young", "t", 9 * DAY_MS)).await.unwrap();
    let mut facebook = added("page", "t", 0);
    facebook.login = LoginKind::Facebook;
    accounts.put(facebook).await.unwrap();
    let due = |now, after| {
        accounts
            .due_for_refresh(now, after)
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    let week = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(due(10 * DAY_MS, week), ["old"]);
    assert!(due(61 * DAY_MS, week).contains(&"young".to_owned()));
    assert!(
        !due(61 * DAY_MS, week).contains(&"old".to_owned()),
        "expired: too late to refresh"
    );
    assert_eq!(
        due(9 * DAY_MS + DAY_MS / 2, Duration::ZERO),
        ["old"],
        "never younger than a day"
    );

    // A configured token's age is unknown: renewed as soon as Meta allows.
    let configured = Accounts::open(
        &dir.path().join("b.sqlite3"),
        key(),
        &configured("pasted"),
        0,
    )
    .unwrap();
    assert!(configured.due_for_refresh(DAY_MS / 2, week).is_empty());
    assert_eq!(configured.due_for_refresh(DAY_MS, week).len(), 1);
}

#[test]
fn metas_word_on_a_tokens_lifetime_is_kept_within_reason() {
    let hour = Duration::from_secs(3600);
    assert_eq!(token_lifetime(None), LONG_LIVED_TOKEN);
    assert_eq!(token_lifetime(Some(5_184_000)), LONG_LIVED_TOKEN);
    assert_eq!(token_lifetime(Some(0)), hour, "not expired at once");
    assert_eq!(
        token_lifetime(Some(u64::MAX)),
        LONG_LIVED_TOKEN + 24 * hour,
        "not eternal"
    );
}

/// `token` sealed as igloo did before tokens were bound to their
/// generation: bound to `account_id` only.
fn sealed_unbound(account_id: &str, token: &str) -> Vec<u8> {
    use base64::Engine as _;
    use chacha20poly1305::XChaCha20Poly1305;
    use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
    let key = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .unwrap();
    let cipher = XChaCha20Poly1305::new_from_slice(&key).unwrap();
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let payload = Payload {
        msg: token.as_bytes(),
        aad: account_id.as_bytes(),
    };
    let mut sealed = nonce.to_vec();
    sealed.extend(cipher.encrypt(&nonce, payload).unwrap());
    sealed
}

fn stored_seal(path: &Path, account_id: &str) -> (Vec<u8>, i64) {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT token_sealed, token_binding FROM accounts WHERE id = ?1",
            [account_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

fn put_back(path: &Path, account_id: &str, sealed: &[u8]) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute(
            "UPDATE accounts SET token_sealed = ?1 WHERE id = ?2",
            rusqlite::params![sealed, account_id],
        )
        .unwrap();
}

#[tokio::test]
async fn an_older_token_put_back_in_its_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.sqlite3");
    let accounts = Accounts::open(&path, key(), &BTreeMap::new(), 0).unwrap();
    accounts.put(added("42", "first", 0)).await.unwrap();
    let (first, binding) = stored_seal(&path, "42");
    assert_eq!(binding, 1, "bound to its generation");
    accounts.put(added("42", "second", 10)).await.unwrap();
    drop(accounts);

    put_back(&path, "42", &first);
    assert!(
        matches!(
            Accounts::open(&path, key(), &BTreeMap::new(), 0),
            Err(AccountsError::Unopenable(_))
        ),
        "the first token, put back in the row of the second, is noticed"
    );
}

#[tokio::test]
async fn tokens_sealed_before_generations_were_bound_open_once_and_are_sealed_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.sqlite3");
    // The store as version 1 left it: one token, bound to its account only.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE accounts (
                id TEXT PRIMARY KEY,
                username TEXT,
                login TEXT NOT NULL,
                source TEXT NOT NULL,
                token_sealed BLOB,
                config_token_sha256 BLOB,
                token_generation INTEGER NOT NULL DEFAULT 0,
                token_issued_at_ms INTEGER,
                token_expires_at_ms INTEGER,
                status TEXT NOT NULL DEFAULT 'active',
                status_detail TEXT,
                status_since_ms INTEGER,
                refresh_error TEXT
            ) STRICT;
            PRAGMA user_version = 1;",
        )
        .unwrap();
    let unbound = sealed_unbound("42", "sealed-by-an-older-igloo");
    connection
        .execute(
            "INSERT INTO accounts (id, login, source, token_sealed, token_generation)
             VALUES ('42', 'instagram', 'added', ?1, 7)",
            [&unbound],
        )
        .unwrap();
    drop(connection);

    // A first start after the upgrade without the key stops; the next, with
    // it, still opens the old seal.
    assert!(matches!(
        Accounts::open(&path, None, &BTreeMap::new(), 0),
        Err(AccountsError::NoKey(_))
    ));
    let accounts = Accounts::open(&path, key(), &BTreeMap::new(), 0).unwrap();
    let credentials = accounts.credentials("42").unwrap();
    assert_eq!(
        (credentials.token.as_str(), credentials.generation),
        ("sealed-by-an-older-igloo", 7)
    );
    drop(accounts);
    let (resealed, binding) = stored_seal(&path, "42");
    assert_eq!(binding, 1, "sealed again, bound to its generation");
    assert_ne!(resealed, unbound);

    // The unbound seal was good once: put back, it no longer opens, even
    // marked as sealed the old way.
    put_back(&path, "42", &unbound);
    assert!(matches!(
        Accounts::open(&path, key(), &BTreeMap::new(), 0),
        Err(AccountsError::Unopenable(_))
    ));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE accounts SET token_binding = 0 WHERE id = '42'", [])
        .unwrap();
    assert!(matches!(
        Accounts::open(&path, key(), &BTreeMap::new(), 0),
        Err(AccountsError::Unopenable(_))
    ));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE accounts SET token_binding = 1 WHERE id = '42'", [])
        .unwrap();
    put_back(&path, "42", &resealed);
    let accounts = Accounts::open(&path, key(), &BTreeMap::new(), 0).unwrap();
    assert_eq!(
        accounts.credentials("42").unwrap().token,
        "sealed-by-an-older-igloo"
    );
}
