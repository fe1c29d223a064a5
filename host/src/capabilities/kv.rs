//! `igloo:plugin/kv`: small state per plugin and account, kept by the host
//! ([`crate::state`]), under quotas on keys and bytes (`[kv]`). The scope
//! is the operator's id for the plugin, never the name its manifest claims,
//! so a plugin cannot read another's state by calling itself the same.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Linker;

use super::ServesHostCalls;
use crate::clock::now_ms;
use crate::journal::Call;
use crate::plugin_api::kv::Host;
use crate::plugin_api::{Capability, HostError, HostResult, HostView};
use crate::state::{HostState, KvQuota, KvScope, KvSet, KvWrite};

/// Quotas on each plugin's state, per account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    /// Live keys.
    pub max_keys: u64,
    /// Bytes of keys and values together.
    pub max_bytes: u64,
    /// Bytes of one key.
    pub max_key_bytes: usize,
    /// Bytes of one value.
    pub max_value_bytes: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            max_keys: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
        }
    }
}

/// The interface, and the capability importing it needs.
pub(super) const IMPORT: super::Import = ("igloo:plugin/kv", &[Capability::Kv]);

/// Plugins' state, within the configured quotas.
pub struct Kv {
    state: Arc<dyn HostState>,
    limits: KvConfig,
}

impl Kv {
    /// State kept in `state`, within `limits`.
    pub fn new(state: Arc<dyn HostState>, limits: KvConfig) -> Self {
        Self { state, limits }
    }
}

pub(super) fn link<T: ServesHostCalls>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    super::link_every_version!(linker, kv, Kv, |services| &services.kv)
}

impl HostView<'_, Kv> {
    /// The plugin's state for the event's account; checks the grant.
    fn scope(&self) -> HostResult<KvScope> {
        if !self.run.granted(Capability::Kv) {
            return Err(HostError::Denied("state needs the kv capability".into()).into());
        }
        Ok(KvScope {
            plugin: self.run.plugin.id.clone(),
            account_id: self.run.account_id().to_owned(),
        })
    }

    /// The scope, once `key` is checked to be 1 to `max_key_bytes` long.
    fn keyed(&self, key: &str) -> HostResult<KvScope> {
        let scope = self.scope()?;
        let max = self.service.limits.max_key_bytes;
        if key.is_empty() || key.len() > max {
            return Err(HostError::Invalid(format!("keys are 1 to {max} bytes")).into());
        }
        Ok(scope)
    }

    fn quota_exceeded(&self, written: KvWrite) -> HostResult<()> {
        let limits = &self.service.limits;
        let why = match written {
            KvWrite::Stored => return Ok(()),
            KvWrite::TooManyKeys => format!("{} keys", limits.max_keys),
            KvWrite::TooManyBytes => format!("{} bytes", limits.max_bytes),
        };
        Err(
            HostError::QuotaExceeded(format!("{why} is the most a plugin keeps per account"))
                .into(),
        )
    }

    /// Store `value` at `key` within the value limit and the quota.
    async fn set_checked(
        &self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> HostResult<()> {
        let scope = self.keyed(&key)?;
        let limits = &self.service.limits;
        if value.len() > limits.max_value_bytes {
            return Err(HostError::QuotaExceeded(format!(
                "a value is {} bytes; the limit is {}",
                value.len(),
                limits.max_value_bytes
            ))
            .into());
        }
        let now = now_ms();
        let expires_at = ttl_seconds.map(|ttl| now.saturating_add(ttl.saturating_mul(1000)));
        let quota = KvQuota {
            max_keys: limits.max_keys,
            max_bytes: limits.max_bytes,
        };
        let written = self
            .service
            .state
            .kv_set(
                &scope,
                KvSet {
                    key: &key,
                    value: &value,
                    expires_at_ms: expires_at,
                    now_ms: now,
                    quota,
                },
            )
            .await?;
        self.quota_exceeded(written)
    }
}

impl Host for HostView<'_, Kv> {
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        let get = async || {
            let scope = self.keyed(&key)?;
            Ok(self.service.state.kv_get(&scope, &key, now_ms()).await?)
        };
        let call = Call::new("kv.get", &format!("{key:?}"));
        self.run.journal.read(call, get).await
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u64>,
    ) -> HostResult<()> {
        let call = Call::new(
            "kv.set",
            &format!(
                "{key:?} {} {ttl_seconds:?}",
                hex::encode(Sha256::digest(&value))
            ),
        );
        self.run
            .journal
            .repeatable(call, async || {
                self.set_checked(key, value, ttl_seconds).await
            })
            .await
    }

    async fn delete(&mut self, key: String) -> HostResult<()> {
        let call = Call::new("kv.delete", &format!("{key:?}"));
        let delete = async || {
            let scope = self.keyed(&key)?;
            Ok(self.service.state.kv_delete(&scope, &key).await?)
        };
        self.run.journal.repeatable(call, delete).await
    }

    async fn list_keys(&mut self, prefix: String) -> HostResult<Vec<String>> {
        let list = async || {
            let scope = self.scope()?;
            // A prefix is at most as long as a key.
            let max = self.service.limits.max_key_bytes;
            if prefix.len() > max {
                return Err(HostError::Invalid(format!("a prefix is at most {max} bytes")).into());
            }
            Ok(self
                .service
                .state
                .kv_list(&scope, &prefix, now_ms())
                .await?)
        };
        let call = Call::new("kv.list-keys", &format!("{prefix:?}"));
        self.run.journal.read(call, list).await
    }
}
