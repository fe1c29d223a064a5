//! `igloo:plugin/profiles`: Instagram's User Profile API, consent-gated by
//! Meta (error 230 is `consent-required`), cached for
//! `profiles.cache_ttl_secs` so that flows do not wait on it twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::graph::{GraphClient, GraphError, GraphId, UserProfile};
use crate::plugin_api::profiles::{Host, Profile};
use crate::plugin_api::{Capability, HostError, HostFailure, HostResult, HostView};

/// The interface, and the capability importing it needs.
pub(super) const IMPORT: super::Import = ("igloo:plugin/profiles", &[Capability::ProfilesRead]);

/// The User Profile API's cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilesConfig {
    /// How long a fetched profile is reused, in seconds.
    pub cache_ttl_secs: u64,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        Self {
            cache_ttl_secs: 3600,
        }
    }
}

/// Most profiles kept; past it, expired ones are dropped first.
const MAX_CACHED: usize = 10_000;

/// Profile lookups through the Graph API, with a cache.
pub struct Profiles {
    graph: Arc<GraphClient>,
    cache: ProfileCache,
}

impl Profiles {
    /// Profiles read through `graph`, cached as `config` says.
    pub fn new(graph: Arc<GraphClient>, config: &ProfilesConfig) -> Self {
        Self {
            graph,
            cache: ProfileCache::new(Duration::from_secs(config.cache_ttl_secs)),
        }
    }
}

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, profiles, Profiles, |services| &services.profiles)
}

/// Recently fetched profiles, per (account, IGSID).
struct ProfileCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Instant, Profile)>>,
}

impl ProfileCache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instant, Profile)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn get(&self, key: &(String, String)) -> Option<Profile> {
        self.entries()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, profile)| profile.clone())
    }

    fn put(&self, key: (String, String), profile: Profile) {
        let mut entries = self.entries();
        if entries.len() >= MAX_CACHED {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), profile));
    }
}

/// What the plugin learns of a failed lookup.
fn refusal(error: GraphError) -> HostFailure {
    match error {
        GraphError::ConsentRequired(_) => HostError::ConsentRequired.into(),
        // Meta answers a blocked business as it does an unreachable person.
        GraphError::RecipientUnavailable(_) => HostError::Blocked.into(),
        other => other.into(),
    }
}

/// Meta's profile in the WIT's terms; `igsid` stands in for a missing id.
fn guest_profile(igsid: &str, profile: UserProfile) -> Profile {
    Profile {
        id: if profile.id.is_empty() {
            igsid.to_owned()
        } else {
            profile.id
        },
        name: profile.name,
        username: profile.username,
        profile_pic: profile.profile_pic,
        follower_count: profile.follower_count,
        is_user_follow_business: profile.is_user_follow_business,
        is_business_follow_user: profile.is_business_follow_user,
        is_verified_user: profile.is_verified_user,
    }
}

impl Host for HostView<'_, Profiles> {
    async fn get(&mut self, igsid: String) -> HostResult<Profile> {
        if !self.run.granted(Capability::ProfilesRead) {
            return Err(HostError::Denied("profile lookups need profiles:read".into()).into());
        }
        let person = GraphId::parse("IGSID", &igsid)?;
        let account_id = self.run.account_id();
        let key = (account_id.to_owned(), igsid.clone());
        let cache = &self.service.cache;
        if let Some(profile) = cache.get(&key) {
            return Ok(profile);
        }
        let lookup = self.service.graph.profile(account_id, &person);
        let profile = guest_profile(&igsid, self.run.upstream(lookup).await.map_err(refusal)?);
        cache.put(key, profile.clone());
        Ok(profile)
    }
}
