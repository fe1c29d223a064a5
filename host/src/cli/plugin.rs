//! `igloo plugin pack|inspect|keygen|sign|push`: a publisher's tools,
//! offline but for `push`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::bundle::{Bundle, SecretKey};

/// A publisher's commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Pack a plugin folder (`plugin.toml`, `plugin.wasm`) into a bundle.
    Pack {
        /// The folder.
        dir: PathBuf,
        /// The bundle to write (NAME-VERSION.igloo by default).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Show what a bundle is before anything runs: name, version,
    /// publisher, the plugin API its component targets, the capabilities
    /// it asks for and the interfaces it really imports, limits and size.
    Inspect {
        /// The bundle.
        file: PathBuf,
    },
    /// Make a publisher key pair: the secret key goes to FILE (private to
    /// you), the public key is printed for operators' trust stores.
    Keygen {
        /// Where to write the secret key.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Sign a bundle with a publisher's secret key (in place).
    Sign {
        /// The bundle.
        file: PathBuf,
        /// The secret key file (`igloo plugin keygen`).
        #[arg(long, short)]
        key: PathBuf,
    },
    /// Push a bundle to an OCI registry (oci://REGISTRY/REPOSITORY:TAG), in
    /// the CNCF Wasm artifact layout.
    Push {
        /// The bundle.
        file: PathBuf,
        /// Where to.
        reference: String,
        /// Reach the registry over plain HTTP (one on your own network).
        #[arg(long)]
        insecure: bool,
    },
}

fn read_bundle(file: &PathBuf) -> anyhow::Result<Bundle> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    Bundle::from_bytes(&bytes).with_context(|| format!("{} is refused", file.display()))
}

/// Run `igloo plugin …`.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Pack { dir, out } => {
            let bundle = Bundle::pack(&dir)?;
            let manifest = bundle.manifest();
            let out = out.unwrap_or_else(|| {
                PathBuf::from(format!("{}-{}.igloo", manifest.name, manifest.version))
            });
            std::fs::write(&out, bundle.to_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{} {}", out.display(), bundle.digest());
        }
        PluginCommand::Inspect { file } => {
            let bundle = read_bundle(&file)?;
            println!("{}", serde_json::to_string_pretty(&bundle.inspect())?);
        }
        PluginCommand::Keygen { out } => {
            let key = SecretKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write as _;
            options
                .open(&out)
                .and_then(|mut file| file.write_all(key.to_file_text().as_bytes()))
                .with_context(|| format!("writing {} (it must not exist yet)", out.display()))?;
            println!("{}", key.public());
        }
        PluginCommand::Sign { file, key } => {
            let mut bundle = read_bundle(&file)?;
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let key = SecretKey::from_file_text(&text)?;
            bundle.sign(&key);
            std::fs::write(&file, bundle.to_bytes())
                .with_context(|| format!("writing {}", file.display()))?;
            println!("{} signed by {}", bundle.digest(), key.public());
        }
        PluginCommand::Push {
            file,
            reference,
            insecure,
        } => {
            let bundle = read_bundle(&file)?;
            let registry = reference
                .strip_prefix("oci://")
                .and_then(|image| image.split('/').next())
                .unwrap_or_default()
                .to_owned();
            let registries = crate::bundle::oci::Registries {
                insecure: if insecure { vec![registry] } else { Vec::new() },
            };
            let url = registries.push(&bundle, &reference).await?;
            println!("{url} {}", bundle.digest());
        }
    }
    Ok(())
}
