//! Retry delays and the retry-or-fail decision.
//!
//! Delays follow Temporal's and Airflow's shape: `constant` waits `retry_delay`;
//! `exponential` waits `retry_delay · 2^(try−1)` plus up to half of that again as jitter,
//! capped by `max_retry_delay`. The jitter is a hash of the attempt's idempotency key, so
//! replaying a run gives the same times, and delays never decrease from one try to the next.

use chrono::{DateTime, TimeDelta, Utc};

use sluice_model::spec::{EffectivePolicy, RetryBackoff};

/// The wait before the try after `failed_try` (1-based).
pub fn retry_delay(policy: &EffectivePolicy, failed_try: u32, key: &str) -> TimeDelta {
    let base = policy.retry_delay.as_std().as_millis() as f64;
    let cap = (policy.max_retry_delay.as_std().as_millis() as f64).max(base);
    let millis = match policy.retry_backoff {
        RetryBackoff::Constant => base,
        RetryBackoff::Exponential => {
            let exponent = i32::try_from(failed_try.saturating_sub(1))
                .unwrap_or(i32::MAX)
                .min(1000);
            let grown = base * 2f64.powi(exponent);
            // Jitter in [0, grown/2): below the next try's base, so delays never decrease.
            let unit = (hash(key) >> 11) as f64 / (1u64 << 53) as f64;
            (grown * (1.0 + unit * 0.5)).min(cap)
        }
    };
    let delay = std::time::Duration::from_millis(millis as u64);
    TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX)
}

/// FNV-1a then a splitmix64 finaliser: stable across runs and platforms.
fn hash(text: &str) -> u64 {
    let mut h = sluice_model::hash::fnv1a(sluice_model::hash::FNV_OFFSET, text.as_bytes());
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt(DateTime<Utc>),
    /// No retry: the reason says why (fatal error, tries used up, SLA deadline).
    Fail(String),
}

/// Decides whether try `failed_try` (1-based) is followed by another.
pub fn decide(
    policy: &EffectivePolicy,
    failed_try: u32,
    retryable: bool,
    now: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    key: &str,
) -> RetryDecision {
    if !retryable {
        return RetryDecision::Fail("fatal error: retries skipped".into());
    }
    if failed_try > policy.retries {
        return RetryDecision::Fail(format!(
            "no retries left ({} of {} used)",
            policy.retries, policy.retries
        ));
    }
    let at = now
        .checked_add_signed(retry_delay(policy, failed_try, key))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    match deadline {
        Some(deadline) if at > deadline => RetryDecision::Fail(format!(
            "retry {} would start at {} after the SLA deadline {}",
            failed_try + 1,
            sluice_model::spec::instant::format_instant(at),
            sluice_model::spec::instant::format_instant(deadline)
        )),
        _ => RetryDecision::RetryAt(at),
    }
}
