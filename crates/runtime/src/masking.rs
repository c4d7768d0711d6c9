//! Secrets masked wherever a task's text is kept (Airflow's secret masking): attempt logs
//! (the lines Sluice writes, the rendered commands and SQL among them, and the process's
//! output) and the failure reasons the API shows. The scheduler installs its secrets once
//! at start: its API and webhook tokens, the values of its environment variables named like
//! secrets (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*PASSWD*`, `*_KEY*`, `*CREDENTIAL*`,
//! `*PRIVATE*`), among them the ones connections name for their passwords. Output is masked
//! chunk by chunk as it is copied, so a secret split across two reads of a process's output
//! can escape: the masking is a safety net, not a boundary.

use std::borrow::Cow;
use std::sync::OnceLock;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Values shorter than this are not masked: they would blank out ordinary words.
pub const MIN_SECRET_LEN: usize = 6;

static SECRETS: OnceLock<Vec<String>> = OnceLock::new();

/// Whether an environment variable's name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "_PASS",
        "_KEY",
        "APIKEY",
        "AUTH_",
        "CREDENTIAL",
        "PRIVATE",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Sets the secrets for this process, once (later calls change nothing: no command can
/// replace them).
pub fn install(secrets: impl IntoIterator<Item = String>) {
    let mut secrets: Vec<String> = secrets
        .into_iter()
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect();
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let _ = SECRETS.set(secrets);
}

/// The values of this process's environment variables named like secrets.
pub fn from_environment() -> Vec<String> {
    std::env::vars()
        .filter(|(name, _)| is_secret_name(name))
        .map(|(_, value)| value)
        .collect()
}

/// The text with every installed secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    mask_with(SECRETS.get().map_or(&[][..], Vec::as_slice), text)
}

fn mask_with<'t>(secrets: &[String], text: &'t str) -> Cow<'t, str> {
    let mut masked = Cow::Borrowed(text);
    for secret in secrets {
        if masked.contains(secret.as_str()) {
            masked = Cow::Owned(masked.replace(secret.as_str(), MASK));
        }
    }
    masked
}

/// Bytes of output with every installed secret masked, UTF-8 or not.
pub fn mask_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut masked = Cow::Borrowed(bytes);
    for secret in SECRETS.get().map_or(&[][..], Vec::as_slice) {
        let secret = secret.as_bytes();
        if masked.windows(secret.len()).any(|w| w == secret) {
            let mut out = Vec::with_capacity(masked.len());
            let mut rest: &[u8] = &masked;
            while let Some(at) = rest.windows(secret.len()).position(|w| w == secret) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(MASK.as_bytes());
                rest = &rest[at + secret.len()..];
            }
            out.extend_from_slice(rest);
            masked = Cow::Owned(out);
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_longest_first_and_short_values_are_not() {
        let secrets = vec!["hunter2-long".to_owned(), "hunter2".to_owned()];
        assert_eq!(
            mask_with(&secrets, "pw=hunter2-long and hunter2"),
            "pw=*** and ***"
        );
        assert_eq!(mask_with(&secrets, "nothing here"), "nothing here");
        assert!(is_secret_name("SLUICE_API_TOKEN"));
        assert!(is_secret_name("aws_secret_access_key"));
        assert!(is_secret_name("CLICKHOUSE_PASSWORD"));
        assert!(!is_secret_name("PATH"));
    }
}
