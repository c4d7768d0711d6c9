//! Time helpers for templates. Instants travel as RFC 3339 strings, so filters parse
//! their input and return RFC 3339 in UTC (or the formatted text).

use std::fmt::Write;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use minijinja::{Environment, Error, ErrorKind};

use crate::spec::duration::Duration;
use crate::spec::instant::{format_instant, parse_instant};

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("strftime", strftime);
    env.add_filter("add_duration", add_duration);
    env.add_filter("sub_duration", sub_duration);
    env.add_filter("date_trunc", date_trunc);
    env.add_filter("to_epoch", to_epoch);
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

fn instant(value: &str) -> Result<DateTime<Utc>, Error> {
    parse_instant(value, chrono_tz::UTC).map_err(|e| invalid(e.to_string()))
}

fn duration(text: &str) -> Result<chrono::TimeDelta, Error> {
    text.parse::<Duration>()
        .map(Duration::as_chrono)
        .map_err(|e| invalid(format!("`{text}`: {e}; {}", e.hint())))
}

/// `{{ data_interval_start | strftime("%Y-%m-%d %H:%M:%S") }}`; optional time zone name.
fn strftime(value: String, format: String, zone: Option<String>) -> Result<String, Error> {
    let t = instant(&value)?;
    let items = chrono::format::StrftimeItems::new(&format)
        .parse()
        .map_err(|_| invalid(format!("`{format}` is not a valid strftime format")))?;
    let mut out = String::new();
    let written = match zone {
        Some(name) => {
            let tz: chrono_tz::Tz = name
                .parse()
                .map_err(|_| invalid(format!("unknown time zone `{name}`")))?;
            write!(
                out,
                "{}",
                t.with_timezone(&tz).format_with_items(items.iter())
            )
        }
        None => write!(out, "{}", t.format_with_items(items.iter())),
    };
    written.map_err(|_| invalid(format!("`{format}` cannot format {value}")))?;
    Ok(out)
}

fn add_duration(value: String, by: String) -> Result<String, Error> {
    let t = instant(&value)?;
    t.checked_add_signed(duration(&by)?)
        .map(format_instant)
        .ok_or_else(|| invalid("date out of range".into()))
}

fn sub_duration(value: String, by: String) -> Result<String, Error> {
    let t = instant(&value)?;
    t.checked_sub_signed(duration(&by)?)
        .map(format_instant)
        .ok_or_else(|| invalid("date out of range".into()))
}

/// Truncates to the start of its `minute`, `hour`, `day`, `week` (Monday), `month` or `year`, in UTC.
fn date_trunc(value: String, unit: String) -> Result<String, Error> {
    let t = instant(&value)?;
    let day = t.date_naive();
    let truncated = match unit.as_str() {
        "minute" => t.with_second(0).and_then(|t| t.with_nanosecond(0)),
        "hour" => t
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0)),
        "day" => day.and_hms_opt(0, 0, 0).map(|d| Utc.from_utc_datetime(&d)),
        "week" => day
            .checked_sub_days(chrono::Days::new(u64::from(
                day.weekday().num_days_from_monday(),
            )))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| Utc.from_utc_datetime(&d)),
        "month" => day
            .with_day(1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| Utc.from_utc_datetime(&d)),
        "year" => day
            .with_ordinal(1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| Utc.from_utc_datetime(&d)),
        other => {
            return Err(invalid(format!(
                "cannot truncate to `{other}`; use minute, hour, day, week, month or year"
            )));
        }
    };
    truncated
        .map(format_instant)
        .ok_or_else(|| invalid("date out of range".into()))
}

fn to_epoch(value: String) -> Result<i64, Error> {
    Ok(instant(&value)?.timestamp())
}
