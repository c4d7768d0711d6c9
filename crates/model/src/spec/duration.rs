//! Durations as data engineers write them: `90s`, `15m`, `2h`, `1h30m`, `1d`, `250ms`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time written with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("durations cannot be negative")]
    Negative,
    #[error("a duration needs a unit")]
    MissingUnit(String),
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    #[error("not a duration")]
    Garbled(String),
    #[error("duration is too long")]
    Overflow,
}

impl DurationError {
    pub fn hint(&self) -> &'static str {
        match self {
            DurationError::MissingUnit(_) => {
                "add a unit: ms, s, m, h or d (for example `60s` or `15m`)"
            }
            _ => {
                "write a number followed by a unit, parts largest first: `90s`, `15m`, `1h30m`, `1d`"
            }
        }
    }
}

pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

impl Duration {
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub const fn from_std(d: std::time::Duration) -> Self {
        Duration(d)
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The duration as a chrono delta, saturating at chrono's range.
    pub fn as_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DurationError::Empty);
        }
        if text.starts_with('-') {
            return Err(DurationError::Negative);
        }
        let mut total: u128 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(DurationError::Garbled(text.to_owned()));
            }
            let number: u128 = rest[..digits]
                .parse()
                .map_err(|_| DurationError::Overflow)?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            let millis_per_unit: u128 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" if rest.is_empty() => return Err(DurationError::MissingUnit(text.to_owned())),
                "" => return Err(DurationError::Garbled(text.to_owned())),
                other => return Err(DurationError::UnknownUnit(other.to_owned())),
            };
            total = number
                .checked_mul(millis_per_unit)
                .and_then(|ms| total.checked_add(ms))
                .ok_or(DurationError::Overflow)?;
            rest = &rest[unit_len..];
        }
        // A century bounds every sensible schedule value and keeps chrono arithmetic safe.
        const MAX_MILLIS: u128 = 100 * 365 * 86_400_000;
        if total > MAX_MILLIS {
            return Err(DurationError::Overflow);
        }
        let millis = u64::try_from(total).map_err(|_| DurationError::Overflow)?;
        Ok(Duration(std::time::Duration::from_millis(millis)))
    }
}

impl fmt::Display for Duration {
    /// Canonical form, largest unit first: `1h30m`, `90s` becomes `1m30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A duration: a number and a unit (ms, s, m, h, d), parts largest first, e.g. `90s`, `15m`, `1h30m`.",
            "examples": ["90s", "15m", "1h30m"]
        })
    }
}

/// A span of real time that may be negative: `-45m`, `2h`. Days are refused: a day of a
/// calendar is 23, 24 or 25 hours, and what moves by days is a shift along a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SignedDuration {
    pub negative: bool,
    pub magnitude: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedDurationError {
    #[error("{0}")]
    Duration(#[from] DurationError),
    #[error("days are calendar steps, not real time")]
    Days,
}

pub const SIGNED_PATTERN: &str = r"^-?([0-9]+(ms|s|m|h))+$";

impl SignedDuration {
    pub fn is_zero(&self) -> bool {
        self.magnitude.is_zero()
    }

    pub fn as_chrono(self) -> chrono::TimeDelta {
        let magnitude = self.magnitude.as_chrono();
        if self.negative { -magnitude } else { magnitude }
    }
}

impl FromStr for SignedDuration {
    type Err = SignedDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if rest.contains('d') {
            return Err(SignedDurationError::Days);
        }
        let magnitude: Duration = rest.parse()?;
        Ok(SignedDuration {
            negative: negative && !magnitude.is_zero(),
            magnitude,
        })
    }
}

impl fmt::Display for SignedDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        // Days never appear in an offset: hours are the largest unit written.
        let mut millis = self.magnitude.as_std().as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for SignedDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignedDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for SignedDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SignedDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": SIGNED_PATTERN,
            "description": "Real time, maybe negative: a number and a unit (ms, s, m, h), e.g. `-45m`, `2h`.",
            "examples": ["-45m", "2h"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(text: &str) -> u64 {
        text.parse::<Duration>()
            .map(|d| d.as_std().as_secs())
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("1d"), 86_400);
        assert_eq!(
            "250ms".parse::<Duration>(),
            Ok(Duration::from_std(std::time::Duration::from_millis(250)))
        );
    }

    #[test]
    fn refuses_bad_forms_with_a_reason() {
        assert_eq!("".parse::<Duration>(), Err(DurationError::Empty));
        assert_eq!("-5m".parse::<Duration>(), Err(DurationError::Negative));
        assert_eq!(
            "60".parse::<Duration>(),
            Err(DurationError::MissingUnit("60".into()))
        );
        assert_eq!(
            "5 minutes".parse::<Duration>(),
            Err(DurationError::Garbled("5 minutes".into()))
        );
        assert_eq!(
            "5y".parse::<Duration>(),
            Err(DurationError::UnknownUnit("y".into()))
        );
        assert_eq!(
            "m5".parse::<Duration>(),
            Err(DurationError::Garbled("m5".into()))
        );
        assert_eq!(
            "99999999999999999999999999h".parse::<Duration>(),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn signed_durations_take_a_sign_and_refuse_days() {
        let offset: Result<SignedDuration, _> = "-45m".parse();
        assert_eq!(
            offset.map(|o| o.as_chrono()),
            Ok(chrono::TimeDelta::minutes(-45))
        );
        assert_eq!(
            "-1d".parse::<SignedDuration>(),
            Err(SignedDurationError::Days)
        );
        assert_eq!(
            "-0s".parse::<SignedDuration>().map(|o| o.negative),
            Ok(false)
        );
        assert!("--5m".parse::<SignedDuration>().is_err());
    }

    proptest! {
        #[test]
        fn signed_display_round_trips(millis in 0u64..(10 * 86_400_000), negative: bool) {
            let d = SignedDuration {
                negative: negative && millis > 0,
                magnitude: Duration::from_std(std::time::Duration::from_millis(millis)),
            };
            prop_assert_eq!(d.to_string().parse::<SignedDuration>(), Ok(d));
        }

        #[test]
        fn display_round_trips(millis in 0u64..(10 * 365 * 86_400_000)) {
            let d = Duration::from_std(std::time::Duration::from_millis(millis));
            prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }
    }
}
