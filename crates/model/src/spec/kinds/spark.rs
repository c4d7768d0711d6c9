//! `type: spark`: one Spark application, on EMR or a local Spark.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FieldProblem, Kind};
use crate::spec::fields::join;
use crate::spec::fields::{Decoder, Fields};
use crate::spec::yaml::Node;

/// `type: spark` — one Spark application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// No `deny_unknown_fields`: flattened into `Task`, it would refuse the task's other
// fields when a stored DAG version is read back (YAML is checked by the decoder, not serde).
pub struct SparkTask {
    /// `emr` (a step on an EMR cluster), `emr_serverless` (a job run of an EMR Serverless
    /// application) or `local` (`spark-submit --master local[*]`). Default `local`; the
    /// configuration may override it per environment.
    #[serde(default)]
    pub backend: SparkBackend,
    /// The application: a `.py` file or a jar (S3 paths on EMR). Templated.
    pub application: String,
    /// Main class, for a jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_class: Option<String>,
    /// Application arguments. Templated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Spark configuration (`--conf key=value`). Values are templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conf: BTreeMap<String, String>,
    /// Maven coordinates (`--packages`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Python dependencies (`--py-files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub py_files: Vec<String>,
    /// Extra jars (`--jars`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jars: Vec<String>,
    /// EMR connection (cluster id, region, endpoint, role) from the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Create a cluster for the run and terminate it when the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient_cluster: Option<TransientCluster>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SparkBackend {
    Emr,
    EmrServerless,
    #[default]
    Local,
}

impl SparkBackend {
    /// Whether attempts run outside the scheduler's process (and survive it).
    pub fn is_remote(self) -> bool {
        self != SparkBackend::Local
    }
}

/// An EMR cluster created for a run (RunJobFlow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransientCluster {
    /// EMR release, e.g. `emr-7.5.0`.
    pub release_label: String,
    /// Instance groups; give these or `instance_fleets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_groups: Vec<InstanceGroup>,
    /// Instance fleets (several instance types per role, on-demand and spot targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_fleets: Vec<InstanceFleet>,
    /// Managed scaling limits, in instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_scaling: Option<ManagedScaling>,
    /// Keep the cluster when it has no steps (KeepJobFlowAliveWhenNoSteps). Default false.
    #[serde(default)]
    pub keep_alive: bool,
    /// S3 prefix for cluster logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_uri: Option<String>,
    /// EMR terminates the cluster after this long without a step (auto-termination): the
    /// safety net for a cluster whose run's end no scheduler saw. Default 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<crate::spec::duration::Duration>,
}

/// A transient cluster's idle timeout when the DAG gives none.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    pub role: InstanceRole,
    pub instance_type: String,
    pub count: u32,
    /// Default `on_demand`.
    #[serde(default)]
    pub market: InstanceMarket,
}

/// A fleet: EMR picks instances among `instance_types` to reach the capacity targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceFleet {
    pub role: InstanceRole,
    /// Default 0.
    #[serde(default)]
    pub target_on_demand_capacity: u32,
    /// Default 0.
    #[serde(default)]
    pub target_spot_capacity: u32,
    pub instance_types: Vec<FleetInstanceType>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetInstanceType {
    pub instance_type: String,
    /// Capacity units one instance counts for. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_capacity: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceRole {
    Master,
    Core,
    Task,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceMarket {
    #[default]
    OnDemand,
    Spot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedScaling {
    pub min_units: u32,
    pub max_units: u32,
}

impl Kind for SparkTask {
    const TYPE: &'static str = "spark";
    const DESCRIPTION: &'static str = "A Spark application on EMR or a local Spark.";

    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self> {
        const BACKENDS: [(&str, SparkBackend); 3] = [
            ("emr", SparkBackend::Emr),
            ("emr_serverless", SparkBackend::EmrServerless),
            ("local", SparkBackend::Local),
        ];
        let backend = f.read(d, "backend", |d, n, p| d.choice(n, p, &BACKENDS));
        let application = f.read_required(d, "application", Decoder::string);
        let task = SparkTask {
            backend: backend.unwrap_or_default(),
            main_class: f.read(d, "main_class", Decoder::string),
            args: f.read(d, "args", Decoder::string_list).unwrap_or_default(),
            conf: f.read(d, "conf", Decoder::string_map).unwrap_or_default(),
            packages: f
                .read(d, "packages", Decoder::string_list)
                .unwrap_or_default(),
            py_files: f
                .read(d, "py_files", Decoder::string_list)
                .unwrap_or_default(),
            jars: f.read(d, "jars", Decoder::string_list).unwrap_or_default(),
            connection: f.read(d, "connection", Decoder::string),
            transient_cluster: f.read(d, "transient_cluster", read_transient_cluster),
            application: application?,
        };
        Some(task)
    }

    fn visit_templates(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        visit("application", &mut self.application);
        super::visit_list("args", &mut self.args, visit);
        // Keys are Spark property names; only values are templated.
        for (key, value) in self.conf.iter_mut() {
            visit(&join("conf", key), value);
        }
    }

    fn check(&self, task: &str, problems: &mut Vec<FieldProblem>) {
        if self.transient_cluster.is_some() && self.backend == SparkBackend::Local {
            problems.push(
                FieldProblem::new(
                    "spec::transient-cluster-local",
                    format!(
                        "task `{task}` asks for a transient EMR cluster but runs on the local backend"
                    ),
                    "transient_cluster",
                    "EMR only",
                )
                .help("set `backend: emr`, or remove `transient_cluster`"),
            );
        }
        if self.transient_cluster.is_some() && self.backend == SparkBackend::EmrServerless {
            problems.push(
                FieldProblem::new(
                    "spec::transient-cluster-serverless",
                    format!(
                        "task `{task}` asks for a transient EMR cluster but runs on EMR Serverless, which has no clusters"
                    ),
                    "transient_cluster",
                    "EMR only",
                )
                .help("remove `transient_cluster` (the application's capacity settings size EMR Serverless), or set `backend: emr`"),
            );
        }
        if let Some(cluster) = &self.transient_cluster
            && cluster.instance_groups.is_empty() == cluster.instance_fleets.is_empty()
        {
            problems.push(
                FieldProblem::new(
                    "spec::cluster-instances",
                    format!(
                        "task `{task}`: a transient cluster has either `instance_groups` or `instance_fleets`"
                    ),
                    "transient_cluster",
                    "groups or fleets",
                )
                .help("give one list of instance groups (role, instance_type, count) or of instance fleets (role, capacity targets, instance_types), not both, not neither"),
            );
        }
        if let Some(idle) = self.transient_cluster.as_ref().and_then(|c| c.idle_timeout)
            && !(60..=604_800).contains(&idle.as_std().as_secs())
        {
            problems.push(
                FieldProblem::new(
                    "spec::out-of-range",
                    format!("task `{task}`: `idle_timeout` {idle} is outside what EMR takes"),
                    "transient_cluster.idle_timeout",
                    "a minute to 7 days",
                )
                .help("EMR's auto-termination takes 1m to 7d; 1h is usual"),
            );
        }
        if let Some(scaling) = self
            .transient_cluster
            .as_ref()
            .and_then(|c| c.managed_scaling.as_ref())
            && scaling.min_units > scaling.max_units
        {
            problems.push(FieldProblem::new(
                "spec::out-of-range",
                "`min_units` is above `max_units`",
                "transient_cluster.managed_scaling",
                "min > max",
            ));
        }
    }
    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        Some(SparkTask::json_schema(generator))
    }
}

fn read_transient_cluster(d: &mut Decoder, node: &Node, path: &str) -> Option<TransientCluster> {
    const ROLES: [(&str, InstanceRole); 3] = [
        ("master", InstanceRole::Master),
        ("core", InstanceRole::Core),
        ("task", InstanceRole::Task),
    ];
    const MARKETS: [(&str, InstanceMarket); 2] = [
        ("on_demand", InstanceMarket::OnDemand),
        ("spot", InstanceMarket::Spot),
    ];
    let mut f = d.fields(node, path, "`transient_cluster`")?;
    let release_label = f.read_required(d, "release_label", Decoder::string);
    let instance_groups = f.read(d, "instance_groups", |d, n, p| {
        d.list(n, p, |d, item, p| {
            let mut g = d.fields(item, p, "an instance group")?;
            let role = g.read_required(d, "role", |d, n, p| d.choice(n, p, &ROLES));
            let instance_type = g.read_required(d, "instance_type", Decoder::string);
            let count = g.read_required(d, "count", Decoder::u32);
            let market = g.read(d, "market", |d, n, p| d.choice(n, p, &MARKETS));
            g.finish(d);
            Some(InstanceGroup {
                role: role?,
                instance_type: instance_type?,
                count: count?,
                market: market.unwrap_or_default(),
            })
        })
    });
    let instance_fleets = f.read(d, "instance_fleets", |d, n, p| {
        d.list(n, p, |d, item, p| {
            let mut g = d.fields(item, p, "an instance fleet")?;
            let role = g.read_required(d, "role", |d, n, p| d.choice(n, p, &ROLES));
            let on_demand = g.read(d, "target_on_demand_capacity", Decoder::u32);
            let spot = g.read(d, "target_spot_capacity", Decoder::u32);
            let instance_types = g.read_required(d, "instance_types", |d, n, p| {
                d.list(n, p, |d, item, p| {
                    let mut t = d.fields(item, p, "an instance type")?;
                    let instance_type = t.read_required(d, "instance_type", Decoder::string);
                    let weighted_capacity = t.read(d, "weighted_capacity", Decoder::u32);
                    t.finish(d);
                    Some(FleetInstanceType {
                        instance_type: instance_type?,
                        weighted_capacity,
                    })
                })
            });
            g.finish(d);
            Some(InstanceFleet {
                role: role?,
                target_on_demand_capacity: on_demand.unwrap_or(0),
                target_spot_capacity: spot.unwrap_or(0),
                instance_types: instance_types?,
            })
        })
    });
    let managed_scaling = f.read(d, "managed_scaling", |d, n, p| {
        let mut m = d.fields(n, p, "`managed_scaling`")?;
        let min_units = m.read_required(d, "min_units", Decoder::u32);
        let max_units = m.read_required(d, "max_units", Decoder::u32);
        m.finish(d);
        Some(ManagedScaling {
            min_units: min_units?,
            max_units: max_units?,
        })
    });
    let keep_alive = f.read(d, "keep_alive", Decoder::boolean);
    let log_uri = f.read(d, "log_uri", Decoder::string);
    let idle_timeout = f.read(d, "idle_timeout", Decoder::duration);
    f.finish(d);
    Some(TransientCluster {
        release_label: release_label?,
        instance_groups: instance_groups.unwrap_or_default(),
        instance_fleets: instance_fleets.unwrap_or_default(),
        managed_scaling,
        keep_alive: keep_alive.unwrap_or(false),
        log_uri,
        idle_timeout,
    })
}
