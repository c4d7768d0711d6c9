//! `type: noop`: does nothing and succeeds; for structure, tests and benchmarks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Kind;
use crate::spec::fields::{Decoder, Fields};

/// `type: noop` has no fields of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoopTask {}

impl Kind for NoopTask {
    const TYPE: &'static str = "noop";
    const DESCRIPTION: &'static str = "Does nothing and succeeds.";

    fn decode(_d: &mut Decoder, _f: &mut Fields<'_>) -> Option<Self> {
        Some(NoopTask {})
    }

    fn schema(_generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        None
    }
}
