//! Instants as written in DAG files and on the command line.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantError {
    #[error("`{0}` is not a date-time")]
    Unreadable(String),
    #[error("`{0}` does not exist in {1} (the clocks skip it)")]
    Skipped(String, Tz),
}

/// Parses RFC 3339 (`2025-09-01T00:00:00Z`, also with a space for `T`), or a date
/// (`2025-09-01`) or local date-time (`2025-09-01T02:30:00`) read on the wall clock of
/// `tz`; a local time repeated by a DST change means its first occurrence.
pub fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, InstantError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| InstantError::Unreadable(text.to_owned()))?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| InstantError::Skipped(text.to_owned(), tz))
}

/// RFC 3339 in UTC with `Z`, seconds precision unless there is a fraction.
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_forms() {
        let berlin = chrono_tz::Europe::Berlin;
        let utc = |s| parse_instant(s, chrono_tz::UTC).map(format_instant);
        assert_eq!(
            utc("2025-09-01T00:00:00Z").as_deref(),
            Ok("2025-09-01T00:00:00Z")
        );
        assert_eq!(
            utc("2025-09-01T02:00:00+02:00").as_deref(),
            Ok("2025-09-01T00:00:00Z")
        );
        assert_eq!(utc("2025-09-01").as_deref(), Ok("2025-09-01T00:00:00Z"));
        assert_eq!(
            parse_instant("2025-09-01", berlin)
                .map(format_instant)
                .as_deref(),
            Ok("2025-08-31T22:00:00Z")
        );
        assert!(matches!(
            parse_instant("2025-03-30T02:30:00", berlin),
            Err(InstantError::Skipped(..))
        ));
        assert!(matches!(utc("yesterday"), Err(InstantError::Unreadable(_))));
    }
}
