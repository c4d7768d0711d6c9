//! `sluice plugins inspect`: what a module imports, exports and needs granted.

use wasmtime::{Engine, Module};

/// What a module needs and offers, for `sluice plugins inspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// sha256 of the file, hex.
    pub sha256: String,
    pub bytes: usize,
    /// `module::name` of every import.
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Capabilities the task must grant for the module to instantiate.
    pub capabilities: Vec<String>,
    /// Capabilities the module uses when granted and can run without.
    pub optional: Vec<String>,
    /// Whether it is a WASI command (exports `_start`).
    pub command: bool,
}

/// The capability that grants a `sluice` host function, if it needs one.
pub fn capability_of(host_function: &str) -> Option<&'static str> {
    match host_function {
        "clickhouse_query" => Some("clickhouse"),
        "kv_get" | "kv_put" => Some("kv"),
        _ => None,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a module's imports and exports without running it.
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo, String> {
    let engine = Engine::default();
    let module =
        Module::new(&engine, bytes).map_err(|e| format!("not a valid WebAssembly module: {e}"))?;
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    let mut capabilities: Vec<String> = module
        .imports()
        .filter(|i| i.module() == "sluice")
        .filter_map(|i| capability_of(i.name()).map(str::to_owned))
        .collect();
    capabilities.sort();
    capabilities.dedup();
    let optional = optional_capabilities(bytes);
    capabilities.retain(|c| !optional.contains(c));
    let exports: Vec<String> = module.exports().map(|e| e.name().to_owned()).collect();
    Ok(ModuleInfo {
        sha256: sha256_hex(bytes),
        bytes: bytes.len(),
        command: exports.iter().any(|e| e == "_start"),
        imports,
        exports,
        capabilities,
        optional,
    })
}

/// Name of the custom section where a module lists capabilities it can do without
/// (comma-separated): their host functions are linked, and answer "not granted" when the
/// task does not grant them, instead of failing instantiation.
pub const OPTIONAL_SECTION: &str = "sluice.optional";

/// Capabilities a module declares optional in its [`OPTIONAL_SECTION`].
pub fn optional_capabilities(wasm: &[u8]) -> Vec<String> {
    custom_sections(wasm, OPTIONAL_SECTION)
        .iter()
        .flat_map(|payload| {
            String::from_utf8_lossy(payload)
                .split(',')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Payloads of the top-level custom sections named `name`. Malformed input yields what was
/// read before the problem (compiling the module reports the problem itself).
pub fn custom_sections<'a>(wasm: &'a [u8], name: &str) -> Vec<&'a [u8]> {
    let mut found = Vec::new();
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return found;
    }
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let Some((size, next)) = leb128(wasm, at) else {
            break;
        };
        let Some(end) = next.checked_add(size).filter(|&e| e <= wasm.len()) else {
            break;
        };
        if id == 0
            && let Some((name_len, name_at)) = leb128(wasm, next)
        {
            let name_end = name_at.saturating_add(name_len);
            if name_end <= end && &wasm[name_at..name_end] == name.as_bytes() {
                found.push(&wasm[name_end..end]);
            }
        }
        at = end;
    }
    found
}

/// An unsigned LEB128 number at `at`, and where it ends.
fn leb128(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(at)?;
        at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value, at));
        }
    }
    None
}
