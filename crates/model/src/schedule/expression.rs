//! Cron expressions as Unix cron writes them, parsed with the `cron` crate.
//!
//! The `cron` crate wants seconds first and numbers days of the week 1–7 from Sunday
//! (Quartz style), and ANDs day-of-month with day-of-week. Data engineers write Unix cron:
//! five fields, Sunday = 0 or 7, and Vixie cron's rule that when both day fields are
//! restricted a day matching either one fires. This module translates between the two.

use std::str::FromStr;

use cron::TimeUnitSpec;

/// The fields of a parsed expression, as sets of the values that fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFields {
    pub seconds: Vec<u32>,
    pub minutes: Vec<u32>,
    pub hours: Vec<u32>,
    /// Index 1..=31.
    pub days_of_month: [bool; 32],
    /// Index 1..=12.
    pub months: [bool; 13],
    /// Index 0..=6, Sunday = 0.
    pub days_of_week: [bool; 7],
    /// Vixie cron: a day field that does not start with `*` restricts the days.
    pub day_of_month_restricted: bool,
    pub day_of_week_restricted: bool,
    /// The hour field is `*`: the schedule follows real time through DST changes.
    pub every_hour: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, found {0}"
    )]
    FieldCount(usize),
    #[error("unknown preset `{0}`")]
    UnknownPreset(String),
    #[error("the seconds field `{0}` fires more than once a minute")]
    SubMinute(String),
    #[error("invalid {field} field `{text}`")]
    Field { field: &'static str, text: String },
    #[error("this schedule never fires (no month has the day it names)")]
    NeverFires,
}

impl CronError {
    pub fn hint(&self, source: &str) -> String {
        match self {
            CronError::FieldCount(_) => {
                "write `minute hour day-of-month month day-of-week`, e.g. `*/15 * * * *`, or a \
                 preset: @hourly, @daily, @weekly, @monthly, @yearly"
                    .into()
            }
            CronError::UnknownPreset(_) => {
                "presets are @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually)"
                    .into()
            }
            CronError::SubMinute(_) => {
                let fields: Vec<&str> = source.split_whitespace().collect();
                format!(
                    "with 6 fields the first one is seconds; a batch interval shorter than a \
                     minute is almost always a mistake. Did you mean the 5-field `{}`?",
                    fields[..fields.len().min(5)].join(" ")
                )
            }
            CronError::Field { field, .. } => field_help(field).to_string(),
            CronError::NeverFires => "check the day-of-month against the months".into(),
        }
    }
}

fn field_help(field: &str) -> &'static str {
    match field {
        "seconds" => "seconds are 0-59",
        "minute" => "minutes are 0-59; use `*`, lists `0,30`, ranges `0-29` and steps `*/15`",
        "hour" => "hours are 0-23; use `*`, lists, ranges and steps like `*/2`",
        "day-of-month" => "days of the month are 1-31",
        "month" => "months are 1-12 or JAN-DEC",
        _ => "days of the week are 0-7 (0 and 7 are Sunday) or SUN-SAT",
    }
}

const FIELD_NAMES: [&str; 6] = [
    "seconds",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];

/// Expands presets to their five-field form.
fn expand_preset(text: &str) -> Result<Option<&'static str>, CronError> {
    if !text.starts_with('@') {
        return Ok(None);
    }
    Ok(Some(match text {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => return Err(CronError::UnknownPreset(other.to_owned())),
    }))
}

pub fn parse(source: &str) -> Result<CronFields, CronError> {
    let source = source.trim();
    let expanded = expand_preset(source)?.unwrap_or(source);
    let mut fields: Vec<&str> = expanded.split_whitespace().collect();
    match fields.len() {
        5 => fields.insert(0, "0"),
        6 => {
            if fields[0].parse::<u32>().is_err() {
                return Err(CronError::SubMinute(fields[0].to_owned()));
            }
        }
        n => return Err(CronError::FieldCount(n)),
    }
    let days_of_week = parse_day_of_week(fields[5])?;
    let quartz_dow = if days_of_week.iter().all(|&d| d) {
        "*".to_owned()
    } else {
        (0..7)
            .filter(|&d| days_of_week[d])
            .map(|d| (d + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let quartz = |overrides: Option<usize>| -> String {
        (0..5)
            .map(|i| match overrides {
                Some(only) if only != i => {
                    if i == 0 {
                        "0"
                    } else {
                        "*"
                    }
                }
                _ => fields[i],
            })
            .chain(std::iter::once(if overrides.is_some() {
                "*"
            } else {
                quartz_dow.as_str()
            }))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let schedule = cron::Schedule::from_str(&quartz(None)).map_err(|_| {
        // Find the field the crate refused, so the message can name it.
        let field = (0..5)
            .find(|&i| cron::Schedule::from_str(&quartz(Some(i))).is_err())
            .unwrap_or(5);
        CronError::Field {
            field: FIELD_NAMES[field],
            text: fields[field].to_owned(),
        }
    })?;
    let mut out = CronFields {
        seconds: schedule.seconds().iter().collect(),
        minutes: schedule.minutes().iter().collect(),
        hours: schedule.hours().iter().collect(),
        days_of_month: [false; 32],
        months: [false; 13],
        days_of_week,
        day_of_month_restricted: !fields[3].starts_with('*') && fields[3] != "?",
        day_of_week_restricted: !fields[5].starts_with('*') && fields[5] != "?",
        every_hour: fields[2] == "*",
    };
    if out.seconds.len() > 1 {
        return Err(CronError::SubMinute(fields[0].to_owned()));
    }
    for d in schedule.days_of_month().iter() {
        out.days_of_month[d as usize] = true;
    }
    for m in schedule.months().iter() {
        out.months[m as usize] = true;
    }
    if !out.can_fire() {
        return Err(CronError::NeverFires);
    }
    Ok(out)
}

impl CronFields {
    /// Whether some calendar day matches; weekdays recur, so only day-of-month can miss.
    fn can_fire(&self) -> bool {
        if self.day_of_week_restricted && !self.day_of_month_restricted {
            return self.days_of_week.iter().any(|&d| d);
        }
        if self.day_of_week_restricted && self.days_of_week.iter().any(|&d| d) {
            return true;
        }
        const LONGEST: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12).any(|m| self.months[m] && (1..=LONGEST[m]).any(|d| self.days_of_month[d as usize]))
    }

    /// Whether the schedule fires on a calendar day (Vixie cron's day rule).
    pub fn matches_day(&self, month: u32, day: u32, weekday_from_sunday: u32) -> bool {
        if !self.months[month as usize] {
            return false;
        }
        let dom = self.days_of_month[day as usize];
        let dow = self.days_of_week[weekday_from_sunday as usize];
        if self.day_of_month_restricted && self.day_of_week_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }
}

/// Unix day-of-week field: `*`, lists, ranges and steps over 0–7 (0 and 7 are Sunday) or names.
fn parse_day_of_week(text: &str) -> Result<[bool; 7], CronError> {
    let bad = || CronError::Field {
        field: "day-of-week",
        text: text.to_owned(),
    };
    let value = |v: &str| -> Result<u32, CronError> {
        const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let lower = v.to_ascii_lowercase();
        let is_name = lower.len() == 3 || is_full_day_name(&lower);
        if let Some(i) = NAMES.iter().position(|n| is_name && lower.starts_with(n)) {
            return Ok(i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(bad()),
        }
    };
    let mut days = [false; 7];
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|&s| s > 0).ok_or_else(bad)?),
            None => (item, 1),
        };
        let (low, high) = match range {
            "*" | "?" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if item.contains('/') => (value(r)?, 7),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(bad());
        }
        for d in (low..=high).step_by(step as usize) {
            days[(d % 7) as usize] = true;
        }
    }
    Ok(days)
}

fn is_full_day_name(text: &str) -> bool {
    matches!(
        text,
        "sunday" | "monday" | "tuesday" | "wednesday" | "thursday" | "friday" | "saturday"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dow(text: &str) -> Vec<usize> {
        parse(&format!("0 0 * * {text}"))
            .map(|f| (0..7).filter(|&d| f.days_of_week[d]).collect())
            .unwrap_or_default()
    }

    #[test]
    fn days_of_week_use_unix_numbering() {
        assert_eq!(dow("1-5"), vec![1, 2, 3, 4, 5]);
        assert_eq!(dow("0"), vec![0]);
        assert_eq!(dow("7"), vec![0]);
        assert_eq!(dow("5-7"), vec![0, 5, 6]);
        assert_eq!(dow("MON,wed,Friday"), vec![1, 3, 5]);
        assert_eq!(dow("*/2"), vec![0, 2, 4, 6]);
        assert!(parse("0 0 * * 8").is_err());
    }

    #[test]
    fn presets_expand() {
        let hourly = parse("@hourly").map(|f| (f.minutes, f.hours.len()));
        assert_eq!(hourly, Ok((vec![0], 24)));
        assert!(matches!(
            parse("@fortnightly"),
            Err(CronError::UnknownPreset(_))
        ));
    }

    #[test]
    fn six_fields_take_seconds_first_and_refuse_sub_minute() {
        assert_eq!(parse("30 */15 * * * *").map(|f| f.seconds), Ok(vec![30]));
        assert!(matches!(
            parse("*/15 * * * * *"),
            Err(CronError::SubMinute(_))
        ));
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(
            parse("61 * * * *"),
            Err(CronError::Field {
                field: "minute",
                text: "61".into()
            })
        );
        assert_eq!(
            parse("0 25 * * *"),
            Err(CronError::Field {
                field: "hour",
                text: "25".into()
            })
        );
        assert!(matches!(parse("* * *"), Err(CronError::FieldCount(3))));
        assert_eq!(parse("0 0 30 2 *"), Err(CronError::NeverFires));
    }

    #[test]
    fn both_day_fields_restricted_fire_on_either() {
        let fields = parse("0 0 1 * 1").ok();
        // 2025-09-01 is a Monday and the 1st; 2025-09-08 a Monday; 2025-10-01 a Wednesday.
        let matches = fields.map(|f| {
            (
                f.matches_day(9, 8, 1),
                f.matches_day(10, 1, 3),
                f.matches_day(9, 9, 2),
            )
        });
        assert_eq!(matches, Some((true, true, false)));
    }
}
