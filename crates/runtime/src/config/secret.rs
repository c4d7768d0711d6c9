//! Secrets in the configuration: written inline, or (better) named by an environment
//! variable or a file, and never shown: `Debug` and `Display` print `***`, and the API and
//! pages only ever say whether one is set.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Where a secret comes from, as written in `sluice.toml`:
/// `token = "…"`, `token = { env = "OPS_TOKEN" }` or `token = { file = "/run/secrets/token" }`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(***)"),
            SecretSource::Env { env } => write!(f, "Env({env})"),
            SecretSource::File { file } => write!(f, "File({})", file.display()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("the secret is empty")]
    Empty,
}

impl SecretSource {
    /// Reads the secret now (a file relative to the configuration's folder, `base`).
    pub fn resolve(&self, base: &std::path::Path) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Inline(text) => text.clone(),
            SecretSource::Env { env } => {
                std::env::var(env).map_err(|_| SecretError::MissingEnv(env.clone()))?
            }
            SecretSource::File { file } => {
                let path = base.join(file);
                read_bounded(&path)
                    .map_err(|reason| SecretError::File {
                        path: path.clone(),
                        reason,
                    })?
                    // Files written by `echo` end with a newline that is not part of it.
                    .trim_end_matches(['\n', '\r'])
                    .to_owned()
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value))
    }
}

/// The most a secret file may hold: a token or password, not a device like `/dev/zero`.
const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

fn read_bounded(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "it is over {} KiB; a secret file holds one token or password",
            MAX_SECRET_FILE_BYTES >> 10
        ));
    }
    Ok(text)
}

/// A resolved secret. Compare with [`Secret::matches`]; print it never.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }

    /// The value, for the one place that must send it (an outgoing header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        let source = SecretSource::Inline("hunter2".into());
        assert!(!format!("{source:?}").contains("hunter2"));
    }

    #[test]
    fn matching_needs_the_whole_value() {
        let secret = Secret::new("abc");
        assert!(secret.matches("abc"));
        assert!(!secret.matches("ab"));
        assert!(!secret.matches("abcd"));
        assert!(!secret.matches(""));
    }

    #[test]
    fn a_file_secret_loses_its_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("sluice-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        let source = SecretSource::File {
            file: "token".into(),
        };
        assert!(source.resolve(&dir).unwrap().matches("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
