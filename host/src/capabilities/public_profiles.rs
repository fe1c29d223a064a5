//! `igloo:plugin/public-profiles`: profile lookups through a third-party,
//! HikerAPI-compatible provider (seed 003): `GET /v2/user/by/username` and
//! `/v2/user/by/id` with the `x-access-key` header. Not Meta: its own
//! capability (`profiles:public-lookup`), its own key, and a request budget
//! per plugin.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::graph::{GraphId, Username};
use crate::plugin_api::public_profiles::{Host, PublicProfile};
use crate::plugin_api::{Capability, HostError, HostResult, HostView};

/// The interface, and the capability importing it needs.
pub(super) const IMPORT: super::Import = (
    "igloo:plugin/public-profiles",
    &[Capability::ProfilesPublicLookup],
);

/// The third-party (HikerAPI-compatible) profile provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicProfilesConfig {
    /// The provider's base URL.
    pub base_url: String,
    /// The provider's access key (`x-access-key`); lookups fail without one.
    pub access_key: Option<String>,
    /// Lookups each plugin may make per hour.
    pub requests_per_hour: u32,
    /// Timeout of one lookup, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for PublicProfilesConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.hikerapi.com".into(),
            access_key: None,
            requests_per_hour: 100,
            timeout_ms: 10_000,
        }
    }
}

/// The provider's client, with each plugin's budget.
pub struct PublicProfiles {
    client: reqwest::Client,
    base_url: String,
    access_key: Option<String>,
    budget: DefaultKeyedRateLimiter<String>,
    budget_per_hour: u32,
}

#[derive(Deserialize)]
struct UserEnvelope {
    user: User,
}

/// The provider's user object; `pk` can exceed 2^53 and is kept exact.
#[derive(Deserialize)]
struct User {
    #[serde(deserialize_with = "crate::events::meta::id_text")]
    pk: String,
    username: String,
    full_name: Option<String>,
    biography: Option<String>,
    profile_pic_url: Option<String>,
    #[serde(default)]
    is_private: bool,
    #[serde(default)]
    is_verified: bool,
    #[serde(default)]
    is_business: bool,
    follower_count: Option<u64>,
    following_count: Option<u64>,
    media_count: Option<u64>,
}

impl PublicProfiles {
    /// A client for the configured provider.
    pub fn new(config: &PublicProfilesConfig) -> Result<Self, reqwest::Error> {
        let per_hour = NonZeroU32::new(config.requests_per_hour.max(1)).expect("at least one");
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                .build()?,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            access_key: config.access_key.clone(),
            budget: DefaultKeyedRateLimiter::keyed(Quota::per_hour(per_hour)),
            budget_per_hour: per_hour.get(),
        })
    }

    /// Look up `value` by `by` (`username` or `id`, already checked
    /// against its alphabet) for the plugin with operator id `plugin`.
    async fn lookup(
        &self,
        plugin: &str,
        by: &'static str,
        value: &str,
    ) -> Result<PublicProfile, HostError> {
        let key = self.access_key.as_deref().ok_or_else(|| {
            HostError::Rejected(
                "no public-profiles provider is configured (none in a sandboxed replay)".into(),
            )
        })?;
        if self.budget.check_key(&plugin.to_owned()).is_err() {
            return Err(HostError::QuotaExceeded(format!(
                "public-profiles budget of {} requests per hour used",
                self.budget_per_hour
            )));
        }
        let response = self
            .client
            .get(format!("{}/v2/user/by/{by}", self.base_url))
            .query(&[(by, value)])
            .header("x-access-key", key)
            .send()
            .await
            .map_err(|error| HostError::Transient(format!("provider unreachable: {error}")))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|error| HostError::Transient(error.to_string()))?;
        match status {
            200 => {}
            402 => {
                return Err(HostError::QuotaExceeded(
                    "the provider's balance is exhausted".into(),
                ));
            }
            403 => return Err(HostError::PrivateAccount),
            404 => return Err(HostError::NotFound),
            429 => return Err(HostError::RateLimited(2_000)),
            401 => {
                return Err(HostError::Rejected(
                    "the provider refused the access key".into(),
                ));
            }
            500.. => return Err(HostError::Transient(format!("provider answered {status}"))),
            _ => return Err(HostError::Invalid(format!("provider answered {status}"))),
        }
        let envelope: UserEnvelope = serde_json::from_slice(&body).map_err(|error| {
            HostError::Invalid(format!("unexpected provider response: {error}"))
        })?;
        let user = envelope.user;
        Ok(PublicProfile {
            id: user.pk,
            username: user.username,
            full_name: user.full_name,
            biography: user.biography,
            profile_pic_url: user.profile_pic_url,
            is_private: user.is_private,
            is_verified: user.is_verified,
            is_business: user.is_business,
            follower_count: user.follower_count,
            following_count: user.following_count,
            media_count: user.media_count,
        })
    }
}

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, public_profiles, PublicProfiles, |services| {
        &services.public_profiles
    })
}

impl HostView<'_, PublicProfiles> {
    /// The grant comes first: a plugin without it learns nothing else.
    fn check_grant(&self) -> HostResult<()> {
        if !self.run.granted(Capability::ProfilesPublicLookup) {
            return Err(HostError::Denied(
                "third-party lookups need profiles:public-lookup".into(),
            )
            .into());
        }
        Ok(())
    }

    /// Look `value` (checked against its alphabet) up by `by`.
    async fn lookup(&self, by: &'static str, value: &str) -> HostResult<PublicProfile> {
        let lookup = self.service.lookup(&self.run.plugin.id, by, value);
        Ok(self.run.upstream(lookup).await?)
    }
}

impl Host for HostView<'_, PublicProfiles> {
    async fn by_username(&mut self, username: String) -> HostResult<PublicProfile> {
        self.check_grant()?;
        let username = Username::parse(&username)?;
        self.lookup("username", username.as_str()).await
    }

    async fn by_id(&mut self, id: String) -> HostResult<PublicProfile> {
        self.check_grant()?;
        let id = GraphId::parse("Instagram user id", &id)?;
        self.lookup("id", id.as_str()).await
    }
}
