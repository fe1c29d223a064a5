//! The Instagram accounts igloo acts for, and their access tokens: one
//! registry, read on every Graph call, written when a token is added,
//! refreshed or refused. Kept whole in memory and in `accounts.sqlite3`,
//! tokens sealed there (`sealed.rs`), each bound to its account and its
//! generation.
//!
//! Accounts come from the configuration (`[accounts.<id>]`) or from an
//! operator (`igloo accounts add`). A
//! configured token is taken over once; what igloo does with it after
//! (a refresh) outlives restarts, until the operator configures another.
//!
//! A token Meta refuses (error 190) puts its account in `token-invalid`:
//! calls for it fail at once, without reaching Meta, and its events wait in
//! the inbox until a new token arrives.

mod sealed;
mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::config::{AccountConfig, LoginKind};
pub use sealed::{BadKey, TokenKey, Unopenable};
pub use store::AccountStoreError;
use store::{AccountStore, Row};

/// How long a long-lived Instagram token lives (Meta: 60 days).
pub const LONG_LIVED_TOKEN: Duration = Duration::from_secs(60 * 24 * 3600);
/// How long a token Meta issued lives: `expires_in` seconds, kept between
/// an hour and a little over the 60 days Meta gives (a missing, zero or
/// absurd answer does not make a token look expired, or eternal).
pub fn token_lifetime(expires_in: Option<u64>) -> Duration {
    let longest = LONG_LIVED_TOKEN + Duration::from_secs(24 * 3600);
    expires_in.map_or(LONG_LIVED_TOKEN, |secs| {
        Duration::from_secs(secs).clamp(Duration::from_secs(3600), longest)
    })
}

/// Meta refreshes only tokens at least this old.
pub const MIN_REFRESH_AGE: Duration = Duration::from_secs(24 * 3600);

/// Where an account came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountSource {
    /// `[accounts.<id>]` in the configuration.
    Config,
    /// `igloo accounts add`.
    Added,
    /// Business Login for Instagram.
    Connected,
}

impl AccountSource {
    fn label(self) -> &'static str {
        match self {
            AccountSource::Config => "config",
            AccountSource::Added => "added",
            AccountSource::Connected => "connected",
        }
    }

    fn from_label(label: &str) -> Self {
        match label {
            "config" => AccountSource::Config,
            "connected" => AccountSource::Connected,
            _ => AccountSource::Added,
        }
    }
}

/// The status of an account whose token Meta refused.
const TOKEN_INVALID: &str = "token-invalid";
const ACTIVE: &str = "active";

/// An account as operators see it: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// The Instagram account id (`entry.id` of its webhooks).
    pub id: String,
    /// Its username, when known.
    pub username: Option<String>,
    /// How it was connected.
    pub login: LoginKind,
    /// Where it came from.
    pub source: AccountSource,
    /// `active` or `token-invalid`.
    pub status: String,
    /// Why, for `token-invalid`: Meta's words.
    pub status_detail: Option<String>,
    /// Since when.
    pub status_since_ms: Option<u64>,
    /// Whether igloo has a token for it.
    pub has_token: bool,
    /// Whether the token is kept (sealed) across restarts, so refreshing it
    /// is worthwhile.
    pub token_kept: bool,
    /// When the token was issued or last refreshed (as far as igloo knows).
    pub token_issued_at_ms: Option<u64>,
    /// When it expires, when known.
    pub token_expires_at_ms: Option<u64>,
    /// The last refresh's failure, until one succeeds.
    pub refresh_error: Option<String>,
}

/// What a Graph call needs of its account.
#[derive(Clone)]
pub struct Credentials {
    /// The access token. Never logged, never handed to a plugin.
    pub token: String,
    /// Which token this is: a refusal of an older one does not mark a newer
    /// one invalid.
    pub generation: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials(generation {})", self.generation)
    }
}

/// Why an account cannot call Meta now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// igloo has no token for it.
    NoToken,
    /// Meta refused its token; it waits for a new one.
    TokenInvalid(String),
}

/// A token handed to igloo: by an operator, by Business Login, by a refresh.
#[derive(Clone)]
pub struct NewToken {
    /// The token.
    pub token: String,
    /// When it was issued.
    pub issued_at_ms: u64,
    /// When it expires, when known.
    pub expires_at_ms: Option<u64>,
}

/// An account to add, or whose token to replace.
pub struct NewAccount {
    /// Its id.
    pub id: String,
    /// Its username, when known.
    pub username: Option<String>,
    /// How it was connected.
    pub login: LoginKind,
    /// Who added it.
    pub source: AccountSource,
    /// Its token.
    pub token: NewToken,
}

/// Why a plugin run stopped in the middle: Meta refused its account's token.
/// Not the plugin's doing, and not its answer: the run is not recorded, and
/// the event waits in the inbox until the account has a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Meta refused the account's access token: the event waits for a new token")]
pub struct WaitForToken;

/// The registry could not be opened, or a change not made.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] AccountStoreError),
    /// A stored token does not open with the key given.
    #[error(transparent)]
    Unopenable(#[from] Unopenable),
    /// Tokens are stored, or would be, and no key was given.
    #[error(
        "{0}: tokens are kept encrypted, and tokens.key (IGLOO_TOKENS__KEY) is not set. \
         Generate one with `openssl rand -base64 32` and keep it safe"
    )]
    NoKey(String),
    /// The account comes from the configuration: remove it there.
    #[error("account {0} is configured in [accounts]: remove it there")]
    Configured(String),
    /// A storage task failed.
    #[error("the accounts store's task failed: {0}")]
    Task(String),
}

/// One account in memory: its row (token sealed) and its token in clear.
#[derive(Clone)]
struct Entry {
    row: Row,
    token: Option<String>,
}

impl Entry {
    fn view(&self) -> AccountView {
        let row = &self.row;
        AccountView {
            id: row.id.clone(),
            username: row.username.clone(),
            login: login_from_label(&row.login),
            source: AccountSource::from_label(&row.source),
            status: row.status.clone(),
            status_detail: row.status_detail.clone(),
            status_since_ms: row.status_since_ms,
            has_token: self.token.is_some(),
            token_kept: row.token_sealed.is_some(),
            token_issued_at_ms: row.token_issued_at_ms,
            token_expires_at_ms: row.token_expires_at_ms,
            refresh_error: row.refresh_error.clone(),
        }
    }

    fn invalid(&self) -> bool {
        self.row.status == TOKEN_INVALID
    }
}

/// Every account igloo knows, with its token.
pub struct Accounts {
    store: AccountStore,
    key: Option<TokenKey>,
    entries: RwLock<BTreeMap<String, Entry>>,
    /// One change at a time, so each is computed from the last one stored.
    writes: tokio::sync::Mutex<()>,
    /// The next token's generation: never reused while igloo runs, not
    /// even for an account removed and added again, so a late refusal or
    /// refresh of a token cannot touch its successor.
    next_generation: AtomicU64,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("accounts", &self.list().len())
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Open the registry at `path` and take over the `configured` accounts:
    /// a configured token replaces the stored one only when it is another
    /// token than the one taken over before (the operator pasted a new one).
    pub fn open(
        path: &Path,
        key: Option<TokenKey>,
        configured: &BTreeMap<String, AccountConfig>,
        now_ms: u64,
    ) -> Result<Self, AccountsError> {
        let store = AccountStore::open(path)?;
        let rows = store.all()?;
        let mut next_generation = rows
            .iter()
            .map(|row| row.token_generation)
            .max()
            .unwrap_or(0)
            + 1;
        let mut entries = BTreeMap::new();
        let mut resealed = 0;
        for mut row in rows {
            let token = match (&row.token_sealed, &key) {
                (Some(_), Some(_))
                    if row.token_binding == store::UNBOUND && !store.binds_old_tokens =>
                {
                    // Every token was sealed again bound once: an old-style
                    // one now was put back from an older copy.
                    return Err(Unopenable(row.id.clone()).into());
                }
                (Some(sealed), Some(key)) if row.token_binding == store::UNBOUND => {
                    // Sealed before tokens were bound to their generation:
                    // opened so until every such token is sealed again
                    // bound (a start cut short before that tries again).
                    let token = key.open_unbound(&row.id, sealed)?;
                    row.token_sealed = Some(key.seal(&row.id, row.token_generation, &token));
                    row.token_binding = store::BOUND;
                    store.put(&row)?;
                    resealed += 1;
                    Some(token)
                }
                (Some(sealed), Some(key)) => {
                    Some(key.open(&row.id, row.token_generation, sealed)?)
                }
                (Some(_), None) => {
                    return Err(AccountsError::NoKey(format!(
                        "account {} has a stored token",
                        row.id
                    )));
                }
                (None, _) => None,
            };
            entries.insert(row.id.clone(), Entry { row, token });
        }
        if store.binds_old_tokens {
            // Every stored token opened and is bound now.
            store.all_tokens_bound()?;
        }
        if resealed > 0 {
            tracing::info!(
                resealed,
                "stored tokens sealed again, bound to their generation"
            );
        }
        // Configured accounts no longer configured go with their config.
        let gone: Vec<String> = entries
            .values()
            .filter(|entry| {
                entry.row.source == AccountSource::Config.label()
                    && !configured.contains_key(&entry.row.id)
            })
            .map(|entry| entry.row.id.clone())
            .collect();
        for id in gone {
            store.remove(&id)?;
            entries.remove(&id);
        }
        for (id, config) in configured {
            let fingerprint = config.access_token.as_deref().map(fingerprint);
            let entry = entries.entry(id.clone()).or_insert_with(|| Entry {
                row: new_row(id, config.login, AccountSource::Config),
                token: None,
            });
            entry.row.login = login_label(config.login).to_owned();
            entry.row.source = AccountSource::Config.label().to_owned();
            if fingerprint.is_some() && entry.row.config_token_sha256 != fingerprint {
                let token = config.access_token.clone().expect("fingerprinted");
                entry.row.config_token_sha256 = fingerprint;
                replace_token(
                    entry,
                    key.as_ref(),
                    NewToken {
                        token,
                        // Its age is unknown: at least from now on.
                        issued_at_ms: now_ms,
                        expires_at_ms: None,
                    },
                    next_generation,
                );
                next_generation += 1;
            } else if entry.token.is_none()
                && let Some(token) = &config.access_token
            {
                // Kept in memory only while there was no key: taken from
                // the config again, and sealed now if there is one.
                let generation = entry.row.token_generation;
                entry.row.token_sealed = key.as_ref().map(|key| key.seal(id, generation, token));
                entry.row.token_binding = store::BOUND;
                entry.token = Some(token.clone());
            }
            store.put(&entry.row)?;
        }
        Ok(Self {
            store,
            key,
            entries: RwLock::new(entries),
            writes: tokio::sync::Mutex::new(()),
            next_generation: AtomicU64::new(next_generation),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The token to call Meta with for `account_id`.
    pub fn credentials(&self, account_id: &str) -> Result<Credentials, Unusable> {
        let entries = self.read();
        let entry = entries.get(account_id).ok_or(Unusable::NoToken)?;
        if entry.invalid() {
            return Err(Unusable::TokenInvalid(
                entry.row.status_detail.clone().unwrap_or_default(),
            ));
        }
        let token = entry.token.clone().ok_or(Unusable::NoToken)?;
        Ok(Credentials {
            token,
            generation: entry.row.token_generation,
        })
    }

    /// How `account_id` was connected (Instagram Login when unknown).
    pub fn login(&self, account_id: &str) -> LoginKind {
        self.read()
            .get(account_id)
            .map_or(LoginKind::Instagram, |entry| {
                login_from_label(&entry.row.login)
            })
    }

    /// Whether `account_id`'s events may be handled now: not while its token
    /// is refused. An account igloo does not know is not held back.
    pub fn usable(&self, account_id: &str) -> bool {
        self.read()
            .get(account_id)
            .is_none_or(|entry| !entry.invalid())
    }

    /// The accounts whose events are held: those whose token is refused.
    pub fn held(&self) -> Vec<String> {
        self.read()
            .iter()
            .filter(|(_, entry)| entry.invalid())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every account, by id.
    pub fn list(&self) -> Vec<AccountView> {
        self.read().values().map(Entry::view).collect()
    }

    /// How many accounts there are, and how many are `token-invalid`, without
    /// copying any (for `/healthz`, which anyone may ask often).
    pub fn counts(&self) -> (usize, usize) {
        let entries = self.read();
        let invalid = entries.values().filter(|entry| entry.invalid()).count();
        (entries.len(), invalid)
    }

    /// One account.
    pub fn get(&self, account_id: &str) -> Option<AccountView> {
        self.read().get(account_id).map(Entry::view)
    }

    /// Meta refused token `generation` of `account_id` (error 190): the
    /// account is `token-invalid` until a new token arrives. A refusal of a
    /// token already replaced changes nothing. Whether it changed.
    pub async fn token_refused(
        &self,
        account_id: &str,
        generation: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool, AccountsError> {
        let reason = crate::untrusted::sanitize(reason, 200);
        // Held in memory even if storing it fails, so the refused token is
        // not sent again meanwhile (a restart tries it once more).
        let _one_at_a_time = self.writes.lock().await;
        let entry = {
            let mut entries = self
                .entries
                .write()
                .unwrap_or_else(|poison| poison.into_inner());
            let Some(entry) = entries.get_mut(account_id) else {
                return Ok(false);
            };
            if entry.row.token_generation != generation || entry.invalid() {
                return Ok(false);
            }
            entry.row.status = TOKEN_INVALID.to_owned();
            entry.row.status_detail = Some(reason.clone());
            entry.row.status_since_ms = Some(now_ms);
            entry.clone()
        };
        tracing::warn!(account = %account_id, %reason, "Meta refused the account's access token: its events wait until it gets a new one (`igloo accounts add`, or `igloo accounts retry`)");
        self.store_entry(entry).await?;
        Ok(true)
    }

    /// Take an account out of `token-invalid` with the token it has (Meta
    /// may accept it again once its owner acted, and a configured token
    /// cannot be replaced by hand without a key): its events run, and a
    /// refusal puts it back. Whether it was `token-invalid`.
    pub async fn retry_token(&self, account_id: &str, now_ms: u64) -> Result<bool, AccountsError> {
        self.change(account_id, |entry| {
            if !entry.invalid() {
                return false;
            }
            entry.row.status = ACTIVE.to_owned();
            entry.row.status_detail = None;
            entry.row.status_since_ms = Some(now_ms);
            true
        })
        .await
    }

    /// A refresh of token `generation` gave `token`. Whether it was kept
    /// (the token it refreshed may have been replaced meanwhile).
    pub async fn token_refreshed(
        &self,
        account_id: &str,
        generation: u64,
        token: NewToken,
    ) -> Result<bool, AccountsError> {
        let key = self.key.clone();
        let next = self.next_generation.fetch_add(1, Ordering::Relaxed);
        self.change(account_id, |entry| {
            if entry.row.token_generation != generation || entry.invalid() {
                return false;
            }
            replace_token(entry, key.as_ref(), token.clone(), next);
            true
        })
        .await
    }

    /// A refresh failed for a passing reason: shown until one succeeds.
    pub async fn refresh_failed(
        &self,
        account_id: &str,
        reason: &str,
    ) -> Result<(), AccountsError> {
        let reason = crate::untrusted::sanitize(reason, 200);
        self.change(account_id, |entry| {
            entry.row.refresh_error = Some(reason.clone());
            true
        })
        .await
        .map(drop)
    }

    /// Add an account, or give one a new token (which makes a
    /// `token-invalid` account active again; a configured account's serves
    /// until another is configured). Needs `tokens.key`: a token given here
    /// is kept sealed.
    pub async fn put(&self, account: NewAccount) -> Result<AccountView, AccountsError> {
        let Some(key) = self.key.clone() else {
            return Err(AccountsError::NoKey(format!(
                "cannot keep the token of account {}",
                account.id
            )));
        };
        let _one_at_a_time = self.writes.lock().await;
        let mut entry = self
            .read()
            .get(&account.id)
            .cloned()
            .unwrap_or_else(|| Entry {
                row: new_row(&account.id, account.login, account.source),
                token: None,
            });
        // A configured account keeps its configured login, and stays
        // configured: this token serves until the operator configures
        // another.
        if entry.row.source != AccountSource::Config.label() {
            entry.row.login = login_label(account.login).to_owned();
            entry.row.source = account.source.label().to_owned();
        }
        if account.username.is_some() {
            entry.row.username = account.username;
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        replace_token(&mut entry, Some(&key), account.token, generation);
        self.store_entry(entry.clone()).await?;
        let view = entry.view();
        self.entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(account.id, entry);
        Ok(view)
    }

    /// Forget an account added by hand or connected; whether it existed.
    pub async fn remove(&self, account_id: &str) -> Result<bool, AccountsError> {
        let _one_at_a_time = self.writes.lock().await;
        match self.read().get(account_id) {
            None => return Ok(false),
            Some(entry) if entry.row.source == AccountSource::Config.label() => {
                return Err(AccountsError::Configured(account_id.to_owned()));
            }
            Some(_) => {}
        }
        let store = self.store.clone();
        let id = account_id.to_owned();
        let removed = blocking(move || store.remove(&id)).await?;
        self.entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(account_id);
        Ok(removed)
    }

    /// Accounts whose token a refresh should renew now: Instagram Login,
    /// active, kept across restarts, at least `refresh_after` old (and never
    /// younger than Meta allows), not yet expired. A token of unknown age
    /// (no expiry known: configured, or given without one) is renewed as
    /// soon as Meta allows, so that its expiry is known from then on.
    pub fn due_for_refresh(
        &self,
        now_ms: u64,
        refresh_after: Duration,
    ) -> Vec<(String, Credentials)> {
        let known_age = refresh_after.max(MIN_REFRESH_AGE).as_millis() as u64;
        let unknown_age = MIN_REFRESH_AGE.as_millis() as u64;
        self.read()
            .values()
            .filter(|entry| {
                let row = &entry.row;
                login_from_label(&row.login) == LoginKind::Instagram
                    && !entry.invalid()
                    && row.token_sealed.is_some()
                    && row.token_issued_at_ms.is_some_and(|issued| {
                        let age = if row.token_expires_at_ms.is_some() {
                            known_age
                        } else {
                            unknown_age
                        };
                        now_ms.saturating_sub(issued) >= age
                    })
                    && row
                        .token_expires_at_ms
                        .is_none_or(|expires| expires > now_ms)
            })
            .filter_map(|entry| {
                Some((
                    entry.row.id.clone(),
                    Credentials {
                        token: entry.token.clone()?,
                        generation: entry.row.token_generation,
                    },
                ))
            })
            .collect()
    }

    /// Change `account_id` with `change` (which says whether it changed
    /// anything) and store it before anyone reads the change.
    async fn change(
        &self,
        account_id: &str,
        change: impl FnOnce(&mut Entry) -> bool,
    ) -> Result<bool, AccountsError> {
        let _one_at_a_time = self.writes.lock().await;
        let Some(mut entry) = self.read().get(account_id).cloned() else {
            return Ok(false);
        };
        if !change(&mut entry) {
            return Ok(false);
        }
        self.store_entry(entry.clone()).await?;
        self.entries
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(account_id.to_owned(), entry);
        Ok(true)
    }

    async fn store_entry(&self, entry: Entry) -> Result<(), AccountsError> {
        let store = self.store.clone();
        blocking(move || store.put(&entry.row)).await
    }
}

/// Run a store call off the async threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, AccountStoreError> + Send + 'static,
) -> Result<T, AccountsError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|error| AccountsError::Task(error.to_string()))?
        .map_err(AccountsError::from)
}

/// Put `token` in `entry` as `generation`, the account active again,
/// sealed when there is a key (kept in memory only otherwise).
fn replace_token(entry: &mut Entry, key: Option<&TokenKey>, token: NewToken, generation: u64) {
    let row = &mut entry.row;
    row.token_sealed = key.map(|key| key.seal(&row.id, generation, &token.token));
    row.token_binding = store::BOUND;
    row.token_generation = generation;
    row.token_issued_at_ms = Some(token.issued_at_ms);
    row.token_expires_at_ms = token.expires_at_ms;
    row.status = ACTIVE.to_owned();
    row.status_detail = None;
    row.status_since_ms = Some(token.issued_at_ms);
    row.refresh_error = None;
    entry.token = Some(token.token);
}

fn new_row(id: &str, login: LoginKind, source: AccountSource) -> Row {
    Row {
        id: id.to_owned(),
        username: None,
        login: login_label(login).to_owned(),
        source: source.label().to_owned(),
        token_sealed: None,
        config_token_sha256: None,
        token_generation: 0,
        token_issued_at_ms: None,
        token_expires_at_ms: None,
        status: ACTIVE.to_owned(),
        status_detail: None,
        status_since_ms: None,
        refresh_error: None,
        token_binding: store::BOUND,
    }
}

fn fingerprint(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn login_label(login: LoginKind) -> &'static str {
    match login {
        LoginKind::Instagram => "instagram",
        LoginKind::Facebook => "facebook",
    }
}

fn login_from_label(label: &str) -> LoginKind {
    if label == "facebook" {
        LoginKind::Facebook
    } else {
        LoginKind::Instagram
    }
}

#[cfg(test)]
mod tests;
