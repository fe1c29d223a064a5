//! `igloo:plugin/kv`: small state per plugin and account, kept by the host
//! ([`crate::state`]), under quotas on keys and bytes. The scope is the
//! operator's id for the plugin, never the name its manifest claims, so a
//! plugin cannot read another's state by calling itself the same.

use super::{Capability, now_ms};
use crate::config::KvConfig;

use crate::runtime::kv_api::Host;
use crate::runtime::{HostError, InstanceState};
use crate::state::{KvQuota, KvScope, KvWrite};

impl InstanceState {
    fn kv_scope(&self) -> Result<KvScope, HostError> {
        if !self.call.granted(Capability::Kv) {
            return Err(HostError::Denied("state needs the kv capability".into()));
        }
        Ok(KvScope {
            plugin: self.call.plugin.id.clone(),
            account_id: self.call.event.account_id.clone(),
        })
    }
}

/// Check the quotas and store.
async fn set_within_quota(
    services: &super::HostServices,
    scope: &KvScope,
    key: &str,
    value: &[u8],
    ttl_seconds: Option<u64>,
) -> Result<(), HostError> {
    let limits = &services.kv_limits;
    check_key(key, limits)?;
    if value.len() > limits.max_value_bytes {
        return Err(HostError::QuotaExceeded(format!(
            "a value is {} bytes; the limit is {}",
            value.len(),
            limits.max_value_bytes
        )));
    }
    let now = now_ms();
    let expires_at = ttl_seconds.map(|ttl| now.saturating_add(ttl.saturating_mul(1000)));
    let quota = KvQuota {
        max_keys: limits.max_keys,
        max_bytes: limits.max_bytes,
    };
    let written = services
        .state
        .kv_set(scope, key, value, expires_at, now, quota)
        .await
        .map_err(storage)?;
    match written {
        KvWrite::Stored => Ok(()),
        KvWrite::TooManyKeys => Err(HostError::QuotaExceeded(format!(
            "{} keys is the most a plugin keeps per account",
            limits.max_keys
        ))),
        KvWrite::TooManyBytes => Err(HostError::QuotaExceeded(format!(
            "{} bytes is the most a plugin keeps per account",
            limits.max_bytes
        ))),
    }
}

fn storage(error: crate::state::StateError) -> HostError {
    HostError::Transient(error.to_string())
}

fn check_key(key: &str, limits: &KvConfig) -> Result<(), HostError> {
    if key.is_empty() || key.len() > limits.max_key_bytes {
        return Err(HostError::Invalid(format!(
            "keys are 1 to {} bytes",
            limits.max_key_bytes
        )));
    }
    Ok(())
}

/// A prefix is at most as long as a key.
fn check_prefix(prefix: &str, limits: &KvConfig) -> Result<(), HostError> {
    if prefix.len() > limits.max_key_bytes {
        return Err(HostError::Invalid(format!(
            "a prefix is at most {} bytes",
            limits.max_key_bytes
        )));
    }
    Ok(())
}

impl Host for InstanceState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        let scope = match self.kv_scope() {
            Ok(scope) => scope,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = check_key(&key, &self.call.services.kv_limits) {
            return Ok(Err(error));
        }
        Ok(self
            .call
            .services
            .state
            .kv_get(&scope, &key, now_ms())
            .await
            .map_err(storage))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        let scope = match self.kv_scope() {
            Ok(scope) => scope,
            Err(error) => return Ok(Err(error)),
        };
        Ok(set_within_quota(&self.call.services, &scope, &key, &value, ttl_seconds).await)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), HostError>> {
        let scope = match self.kv_scope() {
            Ok(scope) => scope,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = check_key(&key, &self.call.services.kv_limits) {
            return Ok(Err(error));
        }
        Ok(self
            .call
            .services
            .state
            .kv_delete(&scope, &key)
            .await
            .map_err(storage))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        let scope = match self.kv_scope() {
            Ok(scope) => scope,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = check_prefix(&prefix, &self.call.services.kv_limits) {
            return Ok(Err(error));
        }
        Ok(self
            .call
            .services
            .state
            .kv_list(&scope, &prefix, now_ms())
            .await
            .map_err(storage))
    }
}
