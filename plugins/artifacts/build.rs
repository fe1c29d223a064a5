//! Builds every plugin under `plugins/` for `wasm32-wasip2` and generates a
//! constant per plugin (manifest text and component bytes), and a
//! `foreach_hostile!` macro naming every plugin under `plugins/hostile/`, as
//! wasmtime's `test-programs-artifacts` does for its test programs.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

/// The folders holding plugin crates, and whether they are examples (which
/// the host may embed) or test-only plugins.
const GROUPS: &[(&str, bool)] = &[("examples", true), ("hostile", false), ("testing", false)];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let plugins_dir = manifest_dir.parent().unwrap().to_path_buf();
    let wit_dir = plugins_dir.parent().unwrap().join("wit");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    for watched in [
        &wit_dir,
        &plugins_dir.join("sdk"),
        &plugins_dir.join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    for (group, _) in GROUPS {
        println!(
            "cargo:rerun-if-changed={}",
            plugins_dir.join(group).display()
        );
    }

    ensure_wasm_target();
    let target_dir = shared_target_dir(&out_dir).join("wasm-plugins");
    build_plugins(&plugins_dir, &target_dir);

    let release_dir = target_dir.join(WASM_TARGET).join("release");
    let mut generated = String::new();
    let mut examples = Vec::new();
    let mut hostile = Vec::new();
    for (group, is_example) in GROUPS {
        for crate_dir in plugin_crates(&plugins_dir.join(group)) {
            let name = crate_dir.file_name().unwrap().to_str().unwrap().to_owned();
            let wasm = release_dir.join(format!("{}.wasm", name.replace('-', "_")));
            assert!(wasm.exists(), "{} was not built", wasm.display());
            let constant = name.replace('-', "_").to_uppercase();
            writeln!(
                generated,
                "/// The `{name}` plugin from `plugins/{group}/{name}`.\n\
                 pub const {constant}: BuiltPlugin = BuiltPlugin {{\n    \
                     name: {name:?},\n    \
                     manifest: include_str!({manifest:?}),\n    \
                     component: include_bytes!({wasm:?}),\n}};",
                manifest = crate_dir.join("plugin.toml"),
            )
            .unwrap();
            if *is_example {
                examples.push(constant.clone());
            }
            if *group == "hostile" {
                hostile.push((name.replace('-', "_"), constant));
            }
        }
    }
    writeln!(
        generated,
        "/// The example plugins, which igloo runs on its embedded defaults.\n\
         pub const EXAMPLES: &[BuiltPlugin] = &[{}];",
        examples.join(", ")
    )
    .unwrap();
    generated.push_str(&foreach_macro("hostile", &hostile));
    fs::write(out_dir.join("plugins.rs"), generated).unwrap();
}

/// A `foreach_<group>!` macro: `foreach_<group>!(mac)` expands to
/// `mac!(snake_name, $crate::CONSTANT);` for each plugin of the group, so a
/// test module can insist on an item per plugin (wasmtime's `foreach_*!`).
fn foreach_macro(group: &str, plugins: &[(String, String)]) -> String {
    let mut calls = String::new();
    for (snake_name, constant) in plugins {
        writeln!(calls, "        $mac!({snake_name}, $crate::{constant});").unwrap();
    }
    format!(
        "/// Expands `$mac!(name, plugin)` for every plugin under `plugins/{group}/`:\n\
         /// `name` is its folder name in snake case (`infinite_loop`), `plugin`\n\
         /// its [`BuiltPlugin`] constant. A test that defines an item per name\n\
         /// fails to compile when a plugin is added without one.\n\
         #[macro_export]\n\
         macro_rules! foreach_{group} {{\n    \
             ($mac:ident) => {{\n{calls}    }};\n\
         }}\n"
    )
}

/// Plugin crates in `dir`, sorted so the generated file is stable.
fn plugin_crates(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut crates: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("plugin.toml").exists())
        .collect();
    crates.sort();
    crates
}

/// Fail early, with the fix, when the wasm target is missing.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    let target_lib = Path::new(sysroot.trim()).join(format!("lib/rustlib/{WASM_TARGET}/lib"));
    if !target_lib.exists() {
        panic!(
            "the {WASM_TARGET} target is not installed; `cargo xtask setup` installs it \
             (or run `rustup target add {WASM_TARGET}`)"
        );
    }
}

/// The target directory this build runs in (`OUT_DIR` is
/// `<target>/<profile>/build/<crate>-<hash>/out`), so that plugins are built
/// beside the host and cached across builds.
fn shared_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(|build| build.parent()?.parent())
        .expect("OUT_DIR inside a cargo target directory")
        .to_path_buf()
}

fn build_plugins(plugins_dir: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(plugins_dir)
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    // The outer build's flags are for the host, not for wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("run cargo to build the plugins");
    assert!(status.success(), "building the plugins failed: {status}");
}
