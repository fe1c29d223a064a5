//! The plugin API's versions, each frozen in its own folder under `wit/`,
//! and the one place that knows there are several. Host functions are
//! written once, against the current version ([`v0_2_0`]); an older version
//! adapts its calls to them. A component's exports say which version it
//! targets, and it is instantiated and called as that version, as Zed's
//! extension host does across its frozen API versions.
//!
//! A version's shape is what its release built, not only its name: igloo's
//! first release served `igloo:plugin@0.1.0` before its `postback` gained a
//! field, so 0.1.0 is served in both shapes ([`v0_1_0_first`] and
//! [`v0_1_0`]). Which one a component was built against shows only when its
//! exports are type-checked, so the runtime tries each shape at load
//! ([`GuestPre::shapes`]) and keeps the one that instantiates.

pub mod v0_1_0;
mod v0_1_0_first;
pub mod v0_2_0;

use wasmtime::Store;
use wasmtime::component::InstancePre;

pub use v0_2_0::*;

/// The versions of `igloo:plugin` this host serves, oldest first.
pub const SERVED_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// The `igloo:plugin` version a component targets, read from the handler
/// it exports. Ordered oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    /// `igloo:plugin@0.1.0`: `handle` answers nothing on success.
    V0_1_0,
    /// `igloo:plugin@0.2.0`: the current version.
    V0_2_0,
}

impl ApiVersion {
    /// The version, as WIT writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V0_1_0 => "0.1.0",
            ApiVersion::V0_2_0 => "0.2.0",
        }
    }

    /// The version whose handler `export` is, if this host serves it.
    pub fn of_export(export: &str) -> Option<Self> {
        match export.strip_prefix("igloo:plugin/handler@")? {
            "0.1.0" => Some(ApiVersion::V0_1_0),
            "0.2.0" => Some(ApiVersion::V0_2_0),
            _ => None,
        }
    }
}

/// A component pre-linked as the API version it targets.
pub enum GuestPre<T: 'static> {
    /// A 0.1.0 plugin built with igloo's first release.
    V0_1_0First(v0_1_0_first::AutomationPre<T>),
    /// A 0.1.0 plugin.
    V0_1_0(v0_1_0::AutomationPre<T>),
    /// A plugin of the current version.
    V0_2_0(AutomationPre<T>),
}

/// Why [`GuestPre::check_shape`] failed.
#[derive(Debug)]
pub enum ShapeCheck {
    /// The component did not instantiate (a limit, a trap in its start):
    /// its types were never looked at.
    Instantiate(wasmtime::Error),
    /// It instantiated, but its exports' types are not this shape's.
    Types(wasmtime::Error),
}

/// An instance of a plugin, as the API version it targets.
pub enum GuestInstance {
    /// A 0.1.0 plugin built with igloo's first release.
    V0_1_0First(v0_1_0_first::Automation),
    /// A 0.1.0 plugin.
    V0_1_0(v0_1_0::Automation),
    /// A plugin of the current version.
    V0_2_0(Automation),
}

impl<T: Send + 'static> GuestPre<T> {
    /// Every shape `pre` may be served as, for the API version its handler
    /// export names, newest first. Each is pre-linked, but its exports are
    /// type-checked only when instantiated: the one to keep is the first
    /// that instantiates.
    pub fn shapes(pre: InstancePre<T>) -> wasmtime::Result<Vec<Self>> {
        let component = pre.component();
        let handlers: Vec<String> = component
            .component_type()
            .exports(component.engine())
            .map(|(name, _)| name.to_owned())
            .filter(|name| name.starts_with("igloo:plugin/handler"))
            .collect();
        // A component exporting several versions is run as the newest.
        let version = handlers
            .iter()
            .filter_map(|name| ApiVersion::of_export(name))
            .max();
        match version {
            Some(ApiVersion::V0_1_0) => Ok(vec![
                Self::V0_1_0(v0_1_0::AutomationPre::new(pre.clone())?),
                Self::V0_1_0First(v0_1_0_first::AutomationPre::new(pre)?),
            ]),
            Some(ApiVersion::V0_2_0) => Ok(vec![Self::V0_2_0(AutomationPre::new(pre)?)]),
            None => Err(wasmtime::format_err!(
                "the component exports {}; this igloo serves igloo:plugin/handler at versions {}",
                if handlers.is_empty() {
                    "no igloo:plugin/handler".to_owned()
                } else {
                    handlers.join(", ")
                },
                SERVED_VERSIONS.join(", ")
            )),
        }
    }

    /// Which release's shape of its version it is served as, for the
    /// operator.
    pub fn shape(&self) -> &'static str {
        match self {
            GuestPre::V0_1_0First(_) => "0.1.0 as first released",
            GuestPre::V0_1_0(_) => "0.1.0",
            GuestPre::V0_2_0(_) => "0.2.0",
        }
    }

    /// The API version the plugin targets.
    pub fn version(&self) -> ApiVersion {
        match self {
            GuestPre::V0_1_0First(_) | GuestPre::V0_1_0(_) => ApiVersion::V0_1_0,
            GuestPre::V0_2_0(_) => ApiVersion::V0_2_0,
        }
    }

    /// Instantiate in `store`, then check the instance's exports against
    /// this shape: [`ShapeCheck`] says which of the two failed, if either.
    pub async fn check_shape(&self, store: &mut Store<T>) -> Result<(), ShapeCheck> {
        macro_rules! check {
            ($pre:expr, $bindings:ty) => {{
                let instance = $pre
                    .instance_pre()
                    .instantiate_async(&mut *store)
                    .await
                    .map_err(ShapeCheck::Instantiate)?;
                <$bindings>::new(&mut *store, &instance)
                    .map(drop)
                    .map_err(ShapeCheck::Types)
            }};
        }
        match self {
            GuestPre::V0_1_0First(pre) => check!(pre, v0_1_0_first::Automation),
            GuestPre::V0_1_0(pre) => check!(pre, v0_1_0::Automation),
            GuestPre::V0_2_0(pre) => check!(pre, Automation),
        }
    }

    /// A fresh instance in `store`.
    pub async fn instantiate_async(&self, store: &mut Store<T>) -> wasmtime::Result<GuestInstance> {
        Ok(match self {
            GuestPre::V0_1_0First(pre) => {
                GuestInstance::V0_1_0First(pre.instantiate_async(store).await?)
            }
            GuestPre::V0_1_0(pre) => GuestInstance::V0_1_0(pre.instantiate_async(store).await?),
            GuestPre::V0_2_0(pre) => GuestInstance::V0_2_0(pre.instantiate_async(store).await?),
        })
    }
}

impl GuestInstance {
    /// Call the plugin's `handle` on `event`. A 0.1.0 plugin that returns
    /// without error handled the event (it cannot pass); one it cannot be
    /// given (a timer) is passed without calling it.
    pub async fn handle<T: Send + 'static>(
        &self,
        store: &mut Store<T>,
        event: &GuestEvent,
    ) -> wasmtime::Result<Result<Outcome, PluginError>> {
        // Both shapes of 0.1.0 answer alike; only their event's type differs.
        macro_rules! handle_0_1_0 {
            ($instance:expr, $shape:ident) => {{
                let Some(event) = $shape::guest_event(event)? else {
                    return Ok(Ok(Outcome::Passed));
                };
                let answer = $instance
                    .igloo_plugin_handler()
                    .call_handle(store, &event)
                    .await?;
                Ok(answer_of_0_1_0(answer.map_err(|error| error.message)))
            }};
        }
        match self {
            GuestInstance::V0_2_0(instance) => Ok(instance
                .igloo_plugin_handler()
                .call_handle(store, event)
                .await?),
            GuestInstance::V0_1_0(instance) => handle_0_1_0!(instance, v0_1_0),
            GuestInstance::V0_1_0First(instance) => handle_0_1_0!(instance, v0_1_0_first),
        }
    }
}

/// What a 0.1.0 `handle` answered, as the current version's answer: no
/// error is handled (0.1.0 cannot pass), and an error asks for no retry
/// (0.1.0 asks through `run.retry-on-failure` only).
fn answer_of_0_1_0(answer: Result<(), String>) -> Result<Outcome, PluginError> {
    answer
        .map(|()| Outcome::Handled)
        .map_err(|message| PluginError {
            message,
            retry: false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_export_names_its_version() {
        assert_eq!(
            ApiVersion::of_export("igloo:plugin/handler@0.1.0"),
            Some(ApiVersion::V0_1_0)
        );
        assert_eq!(
            ApiVersion::of_export("igloo:plugin/handler@0.2.0"),
            Some(ApiVersion::V0_2_0)
        );
        assert_eq!(ApiVersion::of_export("igloo:plugin/handler@0.3.0"), None);
        assert_eq!(ApiVersion::of_export("other:plugin/handler@0.2.0"), None);
        for version in SERVED_VERSIONS {
            let export = format!("igloo:plugin/handler@{version}");
            assert_eq!(
                ApiVersion::of_export(&export).map(ApiVersion::as_str),
                Some(*version)
            );
        }
    }
}
