//! `sluice plugins build`: builds plugin sources to `<plugins>/<name>.wasm` with whichever
//! toolchain the machine has.
//!
//! - A folder with a `Cargo.toml` is a Rust plugin (its own workspace, package name = folder
//!   name). Built with rustup's `wasm32-wasip1` target when installed, else with Debian's
//!   rustc 1.63 (`/usr/bin/cargo`, target `wasm32-wasi`, crates from Debian's packaged
//!   sources in `/usr/share/cargo/registry`, offline).
//! - A folder with `.c` files is a C plugin, built with clang and wasi-libc.
//! - A folder holding such folders (like `plugins/`) builds each of them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How Rust plugins get built on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustToolchain {
    /// rustup with the `wasm32-wasip1` standard library.
    Rustup,
    /// Debian's rustc/cargo with `libstd-rust-dev-wasm32`.
    Debian,
}

const DEBIAN_REGISTRY: &str = "/usr/share/cargo/registry";

impl RustToolchain {
    pub fn detect() -> Option<RustToolchain> {
        let rustup_has_target = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == "wasm32-wasip1")
            });
        if rustup_has_target {
            return Some(RustToolchain::Rustup);
        }
        let debian = Path::new("/usr/bin/cargo").is_file()
            && Path::new("/usr/bin/rustc").is_file()
            && Path::new("/usr/lib/rustlib/wasm32-wasi").is_dir();
        debian.then_some(RustToolchain::Debian)
    }

    fn triple(&self) -> &'static str {
        match self {
            RustToolchain::Rustup => "wasm32-wasip1",
            RustToolchain::Debian => "wasm32-wasi",
        }
    }
}

/// What to install when no toolchain is found.
pub const TOOLCHAIN_HINT: &str = "install a WASI toolchain: `rustup target add wasm32-wasip1`, or on Debian \
     `apt-get install rustc cargo libstd-rust-dev-wasm32 librust-serde-dev librust-serde-json-dev \
     librust-serde-derive-dev` (Rust plugins); `apt-get install clang-14 lld-14 wasi-libc \
     libclang-rt-14-dev-wasm32` (C plugins); scripts/install-wasm-toolchain does both";

/// One plugin source folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Rust { dir: PathBuf, name: String },
    C { dir: PathBuf, name: String },
}

impl Source {
    pub fn name(&self) -> &str {
        match self {
            Source::Rust { name, .. } | Source::C { name, .. } => name,
        }
    }
}

/// The plugin sources under `path`: the folder itself if it is one, else its subfolders.
pub fn find_sources(path: &Path) -> Result<Vec<Source>, String> {
    if let Some(source) = source_at(path)? {
        return Ok(vec![source]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut sources = Vec::new();
    for dir in dirs {
        if let Some(source) = source_at(&dir)? {
            sources.push(source);
        }
    }
    Ok(sources)
}

fn source_at(dir: &Path) -> Result<Option<Source>, String> {
    let folder_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let manifest = dir.join("Cargo.toml");
    if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        let name = package_name(&text)
            .ok_or_else(|| format!("{}: no [package] name", manifest.display()))?;
        return Ok(Some(Source::Rust {
            dir: dir.to_owned(),
            name,
        }));
    }
    let has_c = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "c"))
        })
        .unwrap_or(false);
    Ok(has_c.then(|| Source::C {
        dir: dir.to_owned(),
        name: folder_name,
    }))
}

/// The `name` of the `[package]` table, read without a TOML parser (plugin manifests are
/// small and conventional).
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(value) = line
                .strip_prefix("name")
                .map(str::trim)
                .and_then(|l| l.strip_prefix('='))
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// Builds one plugin to `<out>/<name>.wasm`, using `target_dir` for Rust intermediates.
/// Returns the module's path, or the build's error output.
pub fn build(source: &Source, out: &Path, target_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let wasm = out.join(format!("{}.wasm", source.name()));
    match source {
        Source::Rust { dir, name } => {
            let toolchain = RustToolchain::detect()
                .ok_or_else(|| format!("no Rust toolchain for WASI plugins: {TOOLCHAIN_HINT}"))?;
            let mut cargo = match toolchain {
                RustToolchain::Rustup => Command::new("cargo"),
                RustToolchain::Debian => debian_cargo(dir)?,
            };
            cargo
                .args(["build", "--release", "--target", toolchain.triple()])
                .arg("--manifest-path")
                .arg(dir.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(target_dir);
            run(&mut cargo, name)?;
            let built = target_dir
                .join(toolchain.triple())
                .join("release")
                .join(format!("{name}.wasm"));
            std::fs::copy(&built, &wasm)
                .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
        }
        Source::C { dir, name } => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "c"))
                .collect();
            files.sort();
            let clang = ["clang-14", "clang"]
                .into_iter()
                .find(|c| {
                    Command::new(c)
                        .arg("--version")
                        .output()
                        .is_ok_and(|o| o.status.success())
                })
                .ok_or_else(|| format!("no clang for C plugins: {TOOLCHAIN_HINT}"))?;
            let mut cc = Command::new(clang);
            cc.args([
                "--target=wasm32-wasi",
                "--sysroot=/usr",
                "-O2",
                "-Wall",
                "-o",
            ])
            .arg(&wasm)
            .args(&files);
            run(&mut cc, name)?;
        }
    }
    Ok(wasm)
}

/// Debian's cargo 1.63 driving Debian's rustc, offline, with crates from Debian's packages.
/// The lockfile goes first: one written against crates.io pins versions Debian does not have,
/// and the old cargo will not re-resolve it offline (plugin lockfiles are build products,
/// not committed).
fn debian_cargo(dir: &Path) -> Result<Command, String> {
    if !Path::new(DEBIAN_REGISTRY).is_dir() {
        return Err(format!(
            "Debian's Rust toolchain is installed but its packaged crates are not ({DEBIAN_REGISTRY}): {TOOLCHAIN_HINT}"
        ));
    }
    let _ = std::fs::remove_file(dir.join("Cargo.lock"));
    Ok(old_cargo())
}

fn old_cargo() -> Command {
    let mut cargo = Command::new("/usr/bin/cargo");
    // Variables set by an outer (rustup) cargo would point the old cargo at the new rustc.
    for var in [
        "RUSTC",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
    ] {
        cargo.env_remove(var);
    }
    cargo.env("RUSTC", "/usr/bin/rustc").args([
        "--offline",
        "--config",
        "source.crates-io.replace-with=\"debian\"",
        "--config",
        &format!("source.debian.directory=\"{DEBIAN_REGISTRY}\""),
    ]);
    cargo
}

fn run(command: &mut Command, name: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| {
        format!(
            "cannot run {:?} for plugin {name}: {e}",
            command.get_program()
        )
    })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        Err(format!(
            "building plugin {name} failed ({}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::package_name;

    #[test]
    fn reads_the_package_name_only_from_the_package_table() {
        let manifest = "[workspace]\n\n[package]\nname = \"dq_checks\"\nversion = \"0.1.0\"\n\n[dependencies]\nname = \"x\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("dq_checks"));
        assert_eq!(package_name("[dependencies]\nname = \"x\"\n"), None);
    }
}
