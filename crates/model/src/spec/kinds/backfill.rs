//! `type: backfill`: starts a backfill of another DAG of the same scheduler.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Kind;
use crate::spec::fields::{Decoder, Fields};
use crate::spec::model::defaults;

/// `type: backfill` — starts (or resumes) a backfill of another DAG of the same scheduler,
/// like Airflow's `TriggerDagRunOperator` for a range: a validation that found bad
/// intervals can have them reprocessed. It succeeds once the backfill is started (the
/// target DAG's runs and validations report on it); a target with another backfill open
/// is a retryable failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no `deny_unknown_fields` (see `CommandTask`).
pub struct BackfillTask {
    /// The DAG to backfill. Templated.
    pub target: String,
    /// First instant of the range, RFC 3339. Templated; default `{{ data_interval_start }}`.
    #[serde(default = "defaults::backfill_from")]
    pub from: String,
    /// End of the range; only whole intervals inside it run. Templated; default
    /// `{{ data_interval_end }}`.
    #[serde(default = "defaults::backfill_to")]
    pub to: String,
    /// Which intervals that already have a run to run again: `none`, `failed` or
    /// `completed` (default: `completed`, a reprocessing).
    #[serde(default = "defaults::backfill_reprocess")]
    pub reprocess: String,
    /// Runs of the backfill at once (default: the target DAG's `max_active_runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    /// Rendered to `true` or `false`; `false` succeeds without starting anything (an
    /// opt-in switch such as `{{ params.reprocess_mismatches }}`). Templated; default `true`.
    #[serde(default = "defaults::backfill_enabled")]
    pub enabled: String,
}

impl Kind for BackfillTask {
    const TYPE: &'static str = "backfill";
    const DESCRIPTION: &'static str = "Starts a backfill of another DAG on this scheduler.";

    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self> {
        use crate::spec::model::defaults;
        const REPROCESS: [(&str, &str); 3] = [
            ("none", "none"),
            ("failed", "failed"),
            ("completed", "completed"),
        ];
        let target = f.read_required(d, "target", Decoder::string);
        let from = f.read(d, "from", Decoder::string);
        let to = f.read(d, "to", Decoder::string);
        let reprocess = f.read(d, "reprocess", |d, n, p| d.choice(n, p, &REPROCESS));
        let max_active_runs = f.read(d, "max_active_runs", Decoder::unsigned);
        // `enabled: false` written plainly, or a template that renders to true or false.
        let enabled = f.read(d, "enabled", Decoder::string);
        Some(BackfillTask {
            target: target?,
            from: from.unwrap_or_else(defaults::backfill_from),
            to: to.unwrap_or_else(defaults::backfill_to),
            reprocess: reprocess.map_or_else(defaults::backfill_reprocess, str::to_owned),
            max_active_runs: max_active_runs.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            enabled: enabled.unwrap_or_else(defaults::backfill_enabled),
        })
    }

    fn visit_templates(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        visit("target", &mut self.target);
        visit("from", &mut self.from);
        visit("to", &mut self.to);
        visit("enabled", &mut self.enabled);
    }

    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        Some(BackfillTask::json_schema(generator))
    }
}
