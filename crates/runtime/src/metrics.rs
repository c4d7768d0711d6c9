//! Prometheus metrics: a small registry of counters, gauges and histograms with labels,
//! rendered in the text exposition format at `/metrics`. Every family is declared once in
//! [`FAMILIES`] (name, type, help, buckets); updating an undeclared name is a bug caught by
//! a test, never a panic at run time (the update is dropped).
//!
//! The scheduling loop updates it at its hook points (transitions, attempts, finished runs,
//! gate decisions, once-a-second gauges); the API renders it on scrape. One mutex: updates
//! are a few per iteration, scrapes every few seconds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family's declaration.
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Upper bounds of a histogram's buckets (seconds), ascending.
    pub buckets: &'static [f64],
}

/// Seconds from 10 ms to 10 minutes: loop iterations, dispatch, attempts.
const FAST: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];
/// Seconds from 1 minute to 4 hours: run durations and the data's processing latency
/// (the SLA is 50–100 minutes).
const SLOW: &[f64] = &[
    60.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3000.0, 3600.0, 4500.0, 5400.0, 6000.0,
    7200.0, 10800.0, 14400.0,
];

pub const FAMILIES: &[Family] = &[
    Family {
        name: "sluice_build_info",
        kind: Kind::Gauge,
        help: "Always 1; the version label says which build runs.",
        buckets: &[],
    },
    Family {
        name: "sluice_dag_import_errors",
        kind: Kind::Gauge,
        help: "DAG files that did not load at the last read of the DAG folder (GET /api/v1/import-errors says why).",
        buckets: &[],
    },
    Family {
        name: "sluice_task_instances",
        kind: Kind::Gauge,
        help: "Task instances of unfinished runs, by state.",
        buckets: &[],
    },
    Family {
        name: "sluice_task_transitions_total",
        kind: Kind::Counter,
        help: "Task instance state changes, by DAG and new state.",
        buckets: &[],
    },
    Family {
        name: "sluice_task_attempts_total",
        kind: Kind::Counter,
        help: "Attempts started, by DAG.",
        buckets: &[],
    },
    Family {
        name: "sluice_task_retries_total",
        kind: Kind::Counter,
        help: "Attempts that failed and will be retried (up_for_retry), by DAG.",
        buckets: &[],
    },
    Family {
        name: "sluice_runs_finished_total",
        kind: Kind::Counter,
        help: "Runs that finished, by DAG and state.",
        buckets: &[],
    },
    Family {
        name: "sluice_active_runs",
        kind: Kind::Gauge,
        help: "Unfinished runs, by DAG.",
        buckets: &[],
    },
    Family {
        name: "sluice_run_duration_seconds",
        kind: Kind::Histogram,
        help: "From a run's start to its end, by DAG.",
        buckets: SLOW,
    },
    Family {
        name: "sluice_processing_latency_seconds",
        kind: Kind::Histogram,
        help: "From a scheduled run's data_interval_end to its success: the data's latency, which the SLA bounds.",
        buckets: SLOW,
    },
    Family {
        name: "sluice_ha_active",
        kind: Kind::Gauge,
        help: "1 on the active instance of an HA deployment (a standby's /metrics says 0).",
        buckets: &[],
    },
    Family {
        name: "sluice_ha_lease_revision",
        kind: Kind::Gauge,
        help: "The fencing token of this instance's lease (the leader key's creation revision); it changes with every change of leader.",
        buckets: &[],
    },
    Family {
        name: "sluice_ha_lease_remaining_seconds",
        kind: Kind::Gauge,
        help: "How long the lease is proved ours from now; near zero means renewals are failing.",
        buckets: &[],
    },
    Family {
        name: "sluice_ha_ship_lag_cuts",
        kind: Kind::Gauge,
        help: "Committed cuts of changes not yet shipped (replica lag, in loop iterations with writes).",
        buckets: &[],
    },
    Family {
        name: "sluice_ha_ship_age_seconds",
        kind: Kind::Gauge,
        help: "Seconds since the last shipped segment or snapshot (grows while idle, and while the target fails).",
        buckets: &[],
    },
    Family {
        name: "sluice_ha_shipped_bytes_total",
        kind: Kind::Counter,
        help: "Bytes of change segments shipped in this term.",
        buckets: &[],
    },
    Family {
        name: "sluice_ha_takeover_seconds",
        kind: Kind::Gauge,
        help: "How long this term's takeover took: restoring the shipped state and opening it.",
        buckets: &[],
    },
    Family {
        name: "sluice_scheduler_iteration_seconds",
        kind: Kind::Histogram,
        help: "Duration of a scheduling loop iteration that did work (inputs, evaluation, persistence, dispatch).",
        buckets: FAST,
    },
    Family {
        name: "sluice_dispatch_latency_seconds",
        kind: Kind::Histogram,
        help: "From a task becoming startable (its last upstream succeeded) to its attempt being durable and handed to the executor.",
        buckets: FAST,
    },
    Family {
        name: "sluice_executor_queue_depth",
        kind: Kind::Gauge,
        help: "Task instances ready to run but waiting for a slot (scheduled).",
        buckets: &[],
    },
    Family {
        name: "sluice_pool_slots_used",
        kind: Kind::Gauge,
        help: "Slots of a pool held by queued and running task instances.",
        buckets: &[],
    },
    Family {
        name: "sluice_pool_slots",
        kind: Kind::Gauge,
        help: "Slots a pool has.",
        buckets: &[],
    },
    Family {
        name: "sluice_emr_steps_in_flight",
        kind: Kind::Gauge,
        help: "Attempts running as EMR steps.",
        buckets: &[],
    },
    Family {
        name: "sluice_gate_consumer_lag_messages",
        kind: Kind::Gauge,
        help: "Consumer lag of a DAG's Kafka gate at its last decision.",
        buckets: &[],
    },
    Family {
        name: "sluice_gate_watermark_delay_seconds",
        kind: Kind::Gauge,
        help: "How far a DAG's gate watermark trails the time it was observed.",
        buckets: &[],
    },
    Family {
        name: "sluice_asset_materializations_total",
        kind: Kind::Counter,
        help: "Intervals of an asset written by a producing task's success, by asset.",
        buckets: &[],
    },
    Family {
        name: "sluice_asset_readiness_checks_total",
        kind: Kind::Counter,
        help: "Times a waiting run's inputs were looked at, by DAG: once when created and once per materialization it reads (no polling).",
        buckets: &[],
    },
    Family {
        name: "sluice_asset_input_wait_seconds",
        kind: Kind::Histogram,
        help: "From a run's interval end until every interval it reads was materialized, by DAG.",
        buckets: SLOW,
    },
    Family {
        name: "sluice_asset_stale_intervals",
        kind: Kind::Gauge,
        help: "Consumer intervals that read an older version of an input than the latest, by DAG.",
        buckets: &[],
    },
    Family {
        name: "sluice_asset_input_waiting_runs",
        kind: Kind::Gauge,
        help: "Runs whose tasks wait for inputs not materialized yet, by DAG.",
        buckets: &[],
    },
    Family {
        name: "sluice_gate_waiting_runs",
        kind: Kind::Gauge,
        help: "Runs deferred by a closed gate, by DAG.",
        buckets: &[],
    },
    Family {
        name: "sluice_wasm_modules_total",
        kind: Kind::Counter,
        help: "WASM plugin module look-ups, by outcome: memory (compiled module reused), disk (precompiled cache file), compiled.",
        buckets: &[],
    },
    Family {
        name: "sluice_sla_misses_total",
        kind: Kind::Counter,
        help: "SLA events raised, by DAG and kind (warn, breach).",
        buckets: &[],
    },
];

type Labels = Vec<(&'static str, String)>;

enum Series {
    Value(f64),
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// A family's series. Few per family (DAGs × states), so a linear search that compares
/// borrowed labels beats a map that would allocate a key for every update on the hot path.
type FamilySeries = Vec<(Labels, Series)>;

/// The registry.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<&'static str, FamilySeries>>,
}

fn same(labels: &Labels, pairs: &[(&'static str, &str)]) -> bool {
    labels.len() == pairs.len()
        && labels
            .iter()
            .zip(pairs)
            .all(|((k, v), (pk, pv))| k == pk && v == pv)
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Metrics::default();
        metrics.set(
            "sluice_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        metrics
    }

    fn update(
        &self,
        name: &'static str,
        pairs: &[(&'static str, &str)],
        f: impl FnOnce(&mut Series),
    ) {
        let Some(declared) = family(name) else {
            return;
        };
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let family = series.entry(declared.name).or_default();
        let index = match family.iter().position(|(l, _)| same(l, pairs)) {
            Some(index) => index,
            None => {
                let fresh = match declared.kind {
                    Kind::Histogram => Series::Histogram {
                        counts: vec![0; declared.buckets.len()],
                        sum: 0.0,
                        count: 0,
                    },
                    Kind::Counter | Kind::Gauge => Series::Value(0.0),
                };
                family.push((labels(pairs), fresh));
                family.len() - 1
            }
        };
        f(&mut family[index].1);
    }

    /// Adds to a counter.
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], by: f64) {
        self.update(name, pairs, |s| {
            if let Series::Value(v) = s {
                *v += by;
            }
        });
    }

    pub fn inc(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        self.update(name, pairs, |s| {
            if let Series::Value(v) = s {
                *v = value;
            }
        });
    }

    /// Replaces every series of a gauge family (a recount: states that emptied go to 0
    /// rather than keep their last value).
    pub fn reset_gauge(&self, name: &'static str, values: &[(Vec<(&'static str, String)>, f64)]) {
        let Some(declared) = family(name).filter(|f| f.kind == Kind::Gauge) else {
            return;
        };
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let family = series.entry(declared.name).or_default();
        for (_, value) in family.iter_mut() {
            *value = Series::Value(0.0);
        }
        for (pairs, value) in values {
            match family.iter_mut().find(|(l, _)| l == pairs) {
                Some((_, series)) => *series = Series::Value(*value),
                None => family.push((pairs.clone(), Series::Value(*value))),
            }
        }
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        let Some(bounds) = family(name).map(|f| f.buckets) else {
            return;
        };
        self.update(name, pairs, |s| {
            if let Series::Histogram { counts, sum, count } = s {
                for (bucket, bound) in counts.iter_mut().zip(bounds) {
                    if value <= *bound {
                        *bucket += 1;
                    }
                }
                *sum += value;
                *count += 1;
            }
        });
    }

    /// The value of a counter or gauge series (tests, reports).
    pub fn value(&self, name: &str, pairs: &[(&'static str, &str)]) -> Option<f64> {
        let series = self.series.lock().ok()?;
        match series.get(name)?.iter().find(|(l, _)| same(l, pairs))? {
            (_, Series::Value(v)) => Some(*v),
            (_, Series::Histogram { .. }) => None,
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(series) = self.series.lock() else {
            return out;
        };
        for declared in FAMILIES {
            let kind = match declared.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", declared.name, declared.help);
            let _ = writeln!(out, "# TYPE {} {kind}", declared.name);
            let Some(family) = series.get(declared.name) else {
                continue;
            };
            // Sorted by labels: a stable exposition, whatever order series appeared in.
            let mut ordered: Vec<&(Labels, Series)> = family.iter().collect();
            ordered.sort_by(|a, b| a.0.cmp(&b.0));
            for (pairs, value) in ordered {
                match value {
                    Series::Value(v) => {
                        let _ = writeln!(
                            out,
                            "{}{} {}",
                            declared.name,
                            render_labels(pairs, None),
                            number(*v)
                        );
                    }
                    Series::Histogram { counts, sum, count } => {
                        for (bound, n) in declared.buckets.iter().zip(counts) {
                            let le = number(*bound);
                            let _ = writeln!(
                                out,
                                "{}_bucket{} {n}",
                                declared.name,
                                render_labels(pairs, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {count}",
                            declared.name,
                            render_labels(pairs, Some("+Inf"))
                        );
                        let _ = writeln!(
                            out,
                            "{}_sum{} {}",
                            declared.name,
                            render_labels(pairs, None),
                            number(*sum)
                        );
                        let _ = writeln!(
                            out,
                            "{}_count{} {count}",
                            declared.name,
                            render_labels(pairs, None)
                        );
                    }
                }
            }
        }
        out
    }
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn render_labels(pairs: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_prefixed_and_unique_and_histograms_have_ascending_buckets() {
        let mut names = std::collections::BTreeSet::new();
        for f in FAMILIES {
            assert!(f.name.starts_with("sluice_"), "{}", f.name);
            assert!(names.insert(f.name), "{} declared twice", f.name);
            assert_eq!(
                f.kind == Kind::Histogram,
                !f.buckets.is_empty(),
                "{}",
                f.name
            );
            assert!(f.buckets.windows(2).all(|w| w[0] < w[1]), "{}", f.name);
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn histograms_count_cumulatively_and_labels_are_escaped() {
        let m = Metrics::new();
        for v in [0.002, 0.02, 0.02, 700.0] {
            m.observe("sluice_scheduler_iteration_seconds", &[], v);
        }
        m.inc("sluice_task_attempts_total", &[("dag", "a\"b\\c\nd")]);
        m.inc("sluice_not_declared_total", &[]);
        let text = m.render();
        assert!(
            text.contains("sluice_scheduler_iteration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_scheduler_iteration_seconds_bucket{le=\"0.025\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_scheduler_iteration_seconds_bucket{le=\"600\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_scheduler_iteration_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_scheduler_iteration_seconds_count 4\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_task_attempts_total{dag="a\"b\\c\nd"} 1"#),
            "{text}"
        );
        assert!(!text.contains("not_declared"));
    }

    #[test]
    fn a_recounted_gauge_drops_states_that_emptied_to_zero() {
        let m = Metrics::new();
        let state = |s: &str| vec![("state", s.to_owned())];
        m.reset_gauge("sluice_task_instances", &[(state("running"), 3.0)]);
        m.reset_gauge("sluice_task_instances", &[(state("queued"), 1.0)]);
        assert_eq!(
            m.value("sluice_task_instances", &[("state", "running")]),
            Some(0.0)
        );
        assert_eq!(
            m.value("sluice_task_instances", &[("state", "queued")]),
            Some(1.0)
        );
    }
}
