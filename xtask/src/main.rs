//! igloo's developer commands, run as `cargo xtask <command>`:
//!
//! - `serve [ARGS…]`: install what is missing, build igloo and its plugins,
//!   and run `igloo serve ARGS…` (embedded defaults unless ARGS say otherwise).
//! - `test`: install what is missing (the wasm target; Debian's chromium
//!   and chromium-driver for the dashboard's browser test, docker-registry
//!   for the OCI registry bundles are fetched from), then check
//!   formatting and run clippy on both workspaces (the host's, and the
//!   plugins' for wasm32-wasip2), run the whole test suite and a smoke run
//!   of the benchmarks.
//! - `bench`: the full benchmark comparison, in release (see BENCHMARKS.md).
//!
//! Only rustup and cargo are assumed; everything else is installed here.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-wasip2";
/// The plugins' own workspace, built for [`WASM_TARGET`].
const PLUGINS_MANIFEST: &str = "plugins/Cargo.toml";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "serve" => ensure_wasm_target().and_then(|()| serve(&rest)),
        "test" => ensure_wasm_target()
            .and_then(|()| ensure_browser())
            .and_then(|()| test()),
        "bench" => ensure_wasm_target().and_then(|()| run_benchmarks(&rest)),
        _ => Err(
            "usage: cargo xtask serve [igloo serve args…] | cargo xtask test | cargo xtask bench [--only <part>…]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

fn run(what: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = command
        .status()
        .map_err(|error| format!("{what}: could not start: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: failed ({status})"))
    }
}

/// Plugins are built for wasm32-wasip2; install the target if it is missing.
fn ensure_wasm_target() -> Result<(), String> {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|error| format!("running rustc: {error}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .join("lib")
        .exists()
    {
        return Ok(());
    }
    run(
        &format!("installing the {WASM_TARGET} target"),
        Command::new("rustup").args(["target", "add", WASM_TARGET]),
    )
}

/// The dashboard is tested in a real headless Chromium driven over
/// WebDriver, and bundles are fetched from a real OCI registry: install
/// Debian's packages if they are missing.
fn ensure_browser() -> Result<(), String> {
    let found = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    // Bundles are fetched from a real OCI registry in the tests.
    let registry = std::path::Path::new("/usr/bin/docker-registry").exists();
    if found("chromium") && found("chromedriver") && registry {
        return Ok(());
    }
    if !found("apt-get") {
        return Err(
            "the dashboard's browser test needs Chromium and its WebDriver: install \
             Debian's (or your system's) chromium and chromium-driver packages"
                .into(),
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run("updating the package lists", &mut apt(&["update", "-qq"]))?;
    run(
        "installing chromium and chromium-driver (the dashboard's browser test) and \
         docker-registry (the OCI registry bundles are fetched from)",
        &mut apt(&[
            "install",
            "-y",
            "-qq",
            "chromium",
            "chromium-driver",
            "docker-registry",
        ]),
    )
}

fn serve(args: &[String]) -> Result<(), String> {
    let mut command = cargo();
    command
        .args(["run", "--package", "igloo", "--bin", "igloo", "--", "serve"])
        .args(args);
    run(
        "building and starting igloo (plugins are built by the build)",
        &mut command,
    )
}

fn test() -> Result<(), String> {
    run(
        "checking formatting",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "checking the plugins' formatting",
        cargo().args([
            "fmt",
            "--manifest-path",
            PLUGINS_MANIFEST,
            "--all",
            "--check",
        ]),
    )?;
    run(
        "running clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "running clippy on the plugins",
        cargo()
            .args([
                "clippy",
                "--manifest-path",
                PLUGINS_MANIFEST,
                "--workspace",
                "--all-targets",
                "--target",
                WASM_TARGET,
                "--target-dir",
            ])
            .arg(plugins_target_dir()?)
            .args(["--", "-D", "warnings"]),
    )?;
    run(
        "running the test suite",
        cargo().args(["test", "--workspace"]),
    )?;
    run(
        "smoke-running the benchmarks",
        cargo().args([
            "run",
            "--quiet",
            "--package",
            "igloo-bench",
            "--",
            "run",
            "--smoke",
        ]),
    )
}

/// Where `plugins/artifacts/build.rs` builds the plugins: `wasm-plugins`
/// under the workspace's target directory, so clippy shares that cache.
fn plugins_target_dir() -> Result<PathBuf, String> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|error| format!("running cargo metadata: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("reading cargo metadata: {error}"))?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .ok_or("cargo metadata names no target directory")?;
    Ok(Path::new(target_dir).join("wasm-plugins"))
}

fn run_benchmarks(rest: &[String]) -> Result<(), String> {
    run(
        "running the benchmarks (release build)",
        cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "igloo-bench",
                "--",
                "run",
            ])
            .args(rest),
    )
}
