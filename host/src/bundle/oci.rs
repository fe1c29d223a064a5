//! Bundles in an OCI registry, in the CNCF Wasm OCI artifact layout that
//! `wkg` and `oras` use: a config of `application/vnd.wasm.config.v0+json`
//! and one `application/wasm` layer, the component. What makes it an igloo
//! bundle rides in the manifest's annotations: the plugin manifest, the
//! bundle digest and the publisher's signature. A pulled artifact is
//! checked as a bundle file is: the layer against the digest its manifest
//! gives, and the bundle digest against the bytes, before it is stored.
//!
//! References: `oci://REGISTRY/REPOSITORY:TAG` or `…@sha256:…`; a bundle
//! file is also fetched by `https://` URL (or `http://` from a registry
//! the operator lists as insecure).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::{Bundle, BundleError, MAX_BUNDLE_BYTES, Signature};

/// The CNCF Wasm artifact's config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm artifact's layer media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The plugin manifest (`plugin.toml`), base64.
const ANNOTATION_MANIFEST: &str = "dev.igloo.plugin.manifest";
const ANNOTATION_DIGEST: &str = "dev.igloo.bundle.digest";
const ANNOTATION_SIGNATURE: &str = "dev.igloo.bundle.signature";

/// Why fetching or pushing a bundle failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The reference is not one igloo fetches.
    #[error("`{0}` is not a bundle reference (oci://REGISTRY/REPOSITORY:TAG, or an https:// URL)")]
    Reference(String),
    /// The registry or server refused, or could not be reached.
    #[error("fetching {reference}: {error}")]
    Transport {
        /// What was asked for.
        reference: String,
        /// What went wrong.
        error: String,
    },
    /// What came back is not a bundle igloo accepts.
    #[error("{reference}: {error}")]
    Bundle {
        /// What was asked for.
        reference: String,
        /// Why it is refused.
        error: BundleError,
    },
}

/// The longest a whole fetch may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest a registry may go without sending.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The largest annotation igloo reads (the manifest's `plugin.toml`).
const MAX_ANNOTATION_BYTES: usize = 64 * 1024;

/// Where registries are reached over plain HTTP (a registry on the
/// operator's own network); every other is HTTPS.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// `host:port` of registries reached over plain HTTP.
    pub insecure: Vec<String>,
}

impl Registries {
    fn client(&self) -> Client {
        Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.insecure.clone()),
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        })
    }

    /// Fetch the bundle `reference` names, checked as a bundle file is,
    /// within [`FETCH_TIMEOUT`]: a registry that trickles is not waited on.
    pub async fn fetch(&self, reference: &str) -> Result<Bundle, FetchError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_now(reference))
            .await
            .unwrap_or_else(|_| Err(transport(reference, "took longer than it may")))
    }

    async fn fetch_now(&self, reference: &str) -> Result<Bundle, FetchError> {
        if let Some(image) = reference.strip_prefix("oci://") {
            return self.pull(reference, image).await;
        }
        let url = reqwest::Url::parse(reference).map_err(|_| {
            FetchError::Reference(crate::untrusted::log_text(reference).to_string())
        })?;
        let plain_allowed = url.host_str().is_some_and(|host| {
            self.insecure.iter().any(|insecure| {
                insecure == host || insecure == &format!("{host}:{}", url.port().unwrap_or(80))
            })
        });
        if url.scheme() != "https" && !(url.scheme() == "http" && plain_allowed) {
            return Err(FetchError::Reference(
                crate::untrusted::log_text(reference).to_string(),
            ));
        }
        let bytes = download(&url)
            .await
            .map_err(|error| transport(reference, error))?;
        Bundle::from_bytes(&bytes).map_err(|error| FetchError::Bundle {
            reference: reference.to_owned(),
            error,
        })
    }

    async fn pull(&self, reference: &str, image: &str) -> Result<Bundle, FetchError> {
        let parsed: Reference = image.parse().map_err(|_| {
            FetchError::Reference(crate::untrusted::log_text(reference).to_string())
        })?;
        let client = self.client();
        let auth = RegistryAuth::Anonymous;
        let (manifest, _) = client
            .pull_image_manifest(&parsed, &auth)
            .await
            .map_err(|error| transport(reference, error))?;
        let refuse = |why: String| FetchError::Bundle {
            reference: reference.to_owned(),
            error: BundleError::Format(why),
        };
        if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
            return Err(refuse(format!(
                "its config is not {WASM_CONFIG_MEDIA_TYPE}"
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(refuse("a Wasm artifact has exactly one layer".into()));
        };
        if layer.media_type != WASM_LAYER_MEDIA_TYPE {
            return Err(refuse(format!("its layer is not {WASM_LAYER_MEDIA_TYPE}")));
        }
        if !(0..=MAX_BUNDLE_BYTES as i64).contains(&layer.size) {
            return Err(FetchError::Bundle {
                reference: reference.to_owned(),
                error: BundleError::TooLarge {
                    what: "layer",
                    limit: MAX_BUNDLE_BYTES,
                },
            });
        }
        let annotations = manifest.annotations.clone().unwrap_or_default();
        let annotation = |key: &str| {
            let value = annotations
                .get(key)
                .ok_or_else(|| refuse(format!("no `{key}` annotation: not an igloo bundle")))?;
            if value.len() > MAX_ANNOTATION_BYTES {
                return Err(refuse(format!("its `{key}` annotation is too large")));
            }
            Ok(value.clone())
        };
        let manifest_text = BASE64
            .decode(annotation(ANNOTATION_MANIFEST)?)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| refuse(format!("`{ANNOTATION_MANIFEST}` is not base64 of UTF-8")))?;
        let claimed = annotation(ANNOTATION_DIGEST)?;
        let mut component = BoundedSink::new(layer.size as usize);
        client
            .pull_blob(&parsed, layer, &mut component)
            .await
            .map_err(|error| transport(reference, error))?;
        let component = component.bytes;
        let layer_digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&component))
        );
        if layer_digest != layer.digest {
            return Err(refuse(
                format!(
                    "its layer's bytes are not the digest its manifest gives ({})",
                    crate::untrusted::log_text(&layer.digest)
                )
                .to_string(),
            ));
        }
        let bundle = Bundle::new(manifest_text, component).map_err(|error| FetchError::Bundle {
            reference: reference.to_owned(),
            error,
        })?;
        if claimed != bundle.digest().as_str() {
            return Err(FetchError::Bundle {
                reference: reference.to_owned(),
                error: BundleError::Tampered {
                    claimed: crate::untrusted::log_text(&claimed).to_string(),
                    actual: bundle.digest().clone(),
                },
            });
        }
        let signature = match annotations.get(ANNOTATION_SIGNATURE) {
            Some(text) => Some(Signature::parse(text).map_err(|error| FetchError::Bundle {
                reference: reference.to_owned(),
                error: error.into(),
            })?),
            None => None,
        };
        Ok(bundle.with_signature(signature))
    }

    /// Push `bundle` to the registry as `reference` (`oci://…`).
    pub async fn push(&self, bundle: &Bundle, reference: &str) -> Result<String, FetchError> {
        let image = reference.strip_prefix("oci://").ok_or_else(|| {
            FetchError::Reference(crate::untrusted::log_text(reference).to_string())
        })?;
        let parsed: Reference = image.parse().map_err(|_| {
            FetchError::Reference(crate::untrusted::log_text(reference).to_string())
        })?;
        let layer = ImageLayer::new(
            bundle.component().to_vec(),
            WASM_LAYER_MEDIA_TYPE.into(),
            None,
        );
        let description =
            super::describe(bundle.component()).unwrap_or_else(|_| super::ComponentDescription {
                imports: Vec::new(),
                exports: Vec::new(),
                api_version: None,
            });
        let config = serde_json::json!({
            "created": chrono::Utc::now().to_rfc3339(),
            "author": bundle.signature().map(|signature| signature.key().to_string()),
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer.sha256_digest()],
            "component": {
                "exports": description.exports,
                "imports": description.imports,
            },
        });
        let config = Config::new(
            serde_json::to_vec(&config).expect("JSON of a value"),
            WASM_CONFIG_MEDIA_TYPE.into(),
            None,
        );
        let mut annotations = BTreeMap::from([
            // Base64: the manifest's JSON is written canonically (OLPC),
            // which leaves newlines unescaped, and registries refuse that.
            (
                ANNOTATION_MANIFEST.to_owned(),
                BASE64.encode(bundle.manifest_text()),
            ),
            (ANNOTATION_DIGEST.to_owned(), bundle.digest().to_string()),
            (
                "org.opencontainers.image.version".to_owned(),
                bundle.manifest().version.clone(),
            ),
        ]);
        if let Some(signature) = bundle.signature() {
            annotations.insert(ANNOTATION_SIGNATURE.to_owned(), signature.to_string());
        }
        let layers = [layer];
        let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
        let pushed = self
            .client()
            .push(
                &parsed,
                &layers,
                config,
                &RegistryAuth::Anonymous,
                Some(manifest),
            )
            .await
            .map_err(|error| transport(reference, error))?;
        Ok(pushed.manifest_url)
    }
}

fn transport(reference: &str, error: impl std::fmt::Display) -> FetchError {
    FetchError::Transport {
        reference: reference.to_owned(),
        error: crate::untrusted::log_text(&error.to_string()).to_string(),
    }
}

/// Download a bundle file, at most [`MAX_BUNDLE_BYTES`].
async fn download(url: &reqwest::Url) -> Result<Vec<u8>, String> {
    // No redirects: the scheme and host checked are the ones fetched.
    let mut response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())?
        .get(url.clone())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| error.to_string())? {
        if (bytes.len() + chunk.len()) as u64 > MAX_BUNDLE_BYTES {
            return Err(format!("larger than {MAX_BUNDLE_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A sink that refuses more than the size a manifest declared: a registry
/// that sends more is not believed.
struct BoundedSink {
    bytes: Vec<u8>,
    limit: usize,
}

impl BoundedSink {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(limit.min(1 << 20)),
            limit,
        }
    }
}

impl tokio::io::AsyncWrite for BoundedSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.limit {
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "the registry sent more than the layer's declared size",
            )));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
