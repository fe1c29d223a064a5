//! `igloo:plugin/profiles`: Instagram's User Profile API, consent-gated by
//! Meta (error 230 is `consent-required`), cached for
//! `profiles.cache_ttl_secs` so that flows do not wait on it twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Capability;
use crate::graph::{GraphError, GraphId};
use crate::runtime::profiles_api::{Host, Profile};
use crate::runtime::{HostError, InstanceState};

/// Most profiles kept; past it, expired ones are dropped first.
const MAX_CACHED: usize = 10_000;

/// Recently fetched profiles, per (account, IGSID).
pub struct ProfileCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Instant, Profile)>>,
}

impl ProfileCache {
    /// A cache keeping profiles for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &(String, String)) -> Option<Profile> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, profile)| profile.clone())
    }

    fn put(&self, key: (String, String), profile: Profile) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
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

/// The User Profile API's answer.
#[derive(Deserialize)]
struct ProfileResponse {
    #[serde(default, deserialize_with = "crate::events::meta::id_text")]
    id: String,
    name: Option<String>,
    username: Option<String>,
    profile_pic: Option<String>,
    follower_count: Option<u64>,
    is_user_follow_business: Option<bool>,
    is_business_follow_user: Option<bool>,
    is_verified_user: Option<bool>,
}

fn profile_error(error: GraphError) -> HostError {
    match error {
        GraphError::ConsentRequired(_) => HostError::ConsentRequired,
        // Meta answers a blocked business as it does an unreachable person.
        GraphError::RecipientUnavailable(_) => HostError::Blocked,
        other => super::guest_error(other),
    }
}

impl Host for InstanceState {
    async fn get(&mut self, igsid: String) -> wasmtime::Result<Result<Profile, HostError>> {
        if !self.call.granted(Capability::ProfilesRead) {
            return Ok(Err(HostError::Denied(
                "profile lookups need profiles:read".into(),
            )));
        }
        let person = match GraphId::parse("IGSID", &igsid) {
            Ok(person) => person,
            Err(error) => return Ok(Err(error.into())),
        };
        let account_id = self.call.event.account_id.clone();
        let key = (account_id.clone(), igsid.clone());
        let services = &self.call.services;
        if let Some(profile) = services.profiles.get(&key) {
            return Ok(Ok(profile));
        }
        let result = self
            .call
            .upstream(services.graph.profile(&account_id, &person))
            .await
            .map_err(profile_error)
            .and_then(|value| {
                let response: ProfileResponse = serde_json::from_value(value).map_err(|error| {
                    HostError::Invalid(format!("unexpected User Profile API response: {error}"))
                })?;
                Ok(Profile {
                    id: if response.id.is_empty() {
                        igsid.clone()
                    } else {
                        response.id
                    },
                    name: response.name,
                    username: response.username,
                    profile_pic: response.profile_pic,
                    follower_count: response.follower_count,
                    is_user_follow_business: response.is_user_follow_business,
                    is_business_follow_user: response.is_business_follow_user,
                    is_verified_user: response.is_verified_user,
                })
            });
        if let Ok(profile) = &result {
            services.profiles.put(key, profile.clone());
        }
        Ok(result)
    }
}
