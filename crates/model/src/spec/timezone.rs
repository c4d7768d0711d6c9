//! IANA time zones by name, e.g. `UTC`, `Europe/Berlin`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    /// Parses a zone name; on failure, the closest known names as a hint.
    pub fn parse(name: &str) -> Result<Self, Option<String>> {
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return Ok(TimeZone(tz));
        }
        // Case-insensitive match first (`utc`, `europe/berlin`).
        if let Some(tz) = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
        {
            return Err(Some(tz.name().to_owned()));
        }
        let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        Err(crate::spec::suggest::closest(name, names).map(str::to_owned))
    }

    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        TimeZone::parse(&name)
            .map_err(|_| serde::de::Error::custom(format!("unknown time zone `{name}`")))
    }
}

impl schemars::JsonSchema for TimeZone {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "IANA time zone name, e.g. `UTC` or `Europe/Berlin`.",
            "default": "UTC",
        })
    }
}
