//! Compiled modules on disk, so a restarted scheduler skips compiling its plugins.
//!
//! Files are `<sha256 of the wasm>-<engine key>.cwasm` in `<state>/plugin-cache/`, written
//! to a temporary name and renamed, so a reader never sees half a file. The engine key
//! hashes wasmtime's compatibility hash (version, target, compiler settings): a sluice built
//! differently looks for other files and recompiles.
//!
//! Safety: `Module::deserialize_file` trusts its input (it maps machine code). Sluice only
//! deserializes files in its own cache directory, under names only it writes; anything it
//! cannot load is deleted and recompiled from the wasm.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{Engine, Module};

pub struct ModuleCache {
    dir: PathBuf,
    engine_key: String,
}

static TEMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl ModuleCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> ModuleCache {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ModuleCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the wasm with this hash, if there is a usable one: a
    /// regular file (not a symlink), in a folder and under a name owned by this process's
    /// user, writable by nobody else. Anything else is removed and recompiled: another local
    /// user who could write native code here would run it as the scheduler.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Module> {
        let path = self.path(sha256);
        if !owned_and_private(&self.dir) || !owned_and_private(&path) {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: the file is in Sluice's own cache directory under a name only `store`
        // writes, from `Module::serialize` of this engine configuration (see module docs).
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => Some(module),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Saves a compiled module; a failure only costs a compile later.
    pub fn store(&self, sha256: &str, module: &Module) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let bytes = module.serialize().map_err(std::io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let temp = self.dir.join(format!(
            ".{sha256}.{}.{}.tmp",
            std::process::id(),
            TEMP_SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&temp, bytes)?;
        std::fs::rename(&temp, self.path(sha256)).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }
}

/// Whether `path` itself (not a symlink's target) belongs to this process's user and no
/// one else may write it.
fn owned_and_private(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        !m.file_type().is_symlink()
            && m.uid() == nix::unistd::geteuid().as_raw()
            && m.mode() & 0o022 == 0
    })
}
