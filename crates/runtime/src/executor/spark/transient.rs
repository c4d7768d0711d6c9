//! Transient EMR clusters: created for a run's task from its `transient_cluster` spec,
//! found again by name by the task's retries and after a restart, terminated when the run
//! ends (succeeded or failed), and swept at start-up for runs that ended while no
//! scheduler was there to terminate them.
//!
//! A cluster's name says whose it is: `sluice:<dag>:<logical date>:<task>`.

use aws_sdk_emr::Client;
use aws_sdk_emr::types::{
    AutoTerminationPolicy, ClusterState, ComputeLimits, ComputeLimitsUnitType, InstanceFleetConfig,
    InstanceFleetType, InstanceGroupConfig, InstanceRoleType, InstanceTypeConfig,
    JobFlowInstancesConfig, ManagedScalingPolicy, MarketType, Tag,
};
use chrono::{DateTime, Utc};

use super::emr::{ApiError, api_error};
use crate::connections::EmrConnection;
use sluice_model::spec::{InstanceMarket, InstanceRole, TransientCluster};

const PREFIX: &str = "sluice:";

/// The name of a run's transient cluster for a task.
pub fn cluster_name(dag: &str, logical_date: DateTime<Utc>, task: &str) -> String {
    format!(
        "{PREFIX}{dag}:{}:{task}",
        sluice_model::spec::instant::format_instant(logical_date)
    )
}

/// The (dag, logical date) a cluster name belongs to, if Sluice made it.
pub fn owner(name: &str) -> Option<(String, DateTime<Utc>)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (dag, rest) = rest.split_once(':')?;
    // The logical date holds colons itself: it ends at the last one.
    let (date, _task) = rest.rsplit_once(':')?;
    let at = DateTime::parse_from_rfc3339(date).ok()?.with_timezone(&Utc);
    Some((dag.to_owned(), at))
}

const ACTIVE: [ClusterState; 4] = [
    ClusterState::Starting,
    ClusterState::Bootstrapping,
    ClusterState::Running,
    ClusterState::Waiting,
];

/// Active clusters whose name starts with `prefix`: (name, id).
pub(super) async fn active_clusters(
    client: &Client,
    prefix: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut found = Vec::new();
    let mut marker = None;
    loop {
        let page = client
            .list_clusters()
            .set_cluster_states(Some(ACTIVE.to_vec()))
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("ListClusters", &e))?;
        for cluster in page.clusters() {
            if let (Some(name), Some(id)) = (cluster.name(), cluster.id())
                && name.starts_with(prefix)
            {
                found.push((name.to_owned(), id.to_owned()));
            }
        }
        match page.marker() {
            Some(next) => marker = Some(next.to_owned()),
            None => return Ok(found),
        }
    }
}

/// The run's cluster for the task: the active one with its name, or a new one. Looked up
/// with `lookup` (the SDK's retry: throttling does not cost a try); created with `create`,
/// which must not retry (a lost answer would make a second cluster; the next try looks the
/// cluster up by name first).
pub(super) async fn find_or_create(
    lookup: &Client,
    create: &Client,
    conn: &EmrConnection,
    spec: &TransientCluster,
    name: &str,
) -> Result<String, ApiError> {
    if let Some((_, id)) = active_clusters(lookup, name)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
    {
        return Ok(id);
    }
    let groups = spec
        .instance_groups
        .iter()
        .map(|g| {
            InstanceGroupConfig::builder()
                .instance_role(match g.role {
                    InstanceRole::Master => InstanceRoleType::Master,
                    InstanceRole::Core => InstanceRoleType::Core,
                    InstanceRole::Task => InstanceRoleType::Task,
                })
                .instance_type(&g.instance_type)
                .instance_count(i32::try_from(g.count).unwrap_or(i32::MAX))
                .market(match g.market {
                    InstanceMarket::OnDemand => MarketType::OnDemand,
                    InstanceMarket::Spot => MarketType::Spot,
                })
                .build()
        })
        .collect::<Vec<_>>();
    let fleets = spec
        .instance_fleets
        .iter()
        .map(|f| {
            InstanceFleetConfig::builder()
                .instance_fleet_type(match f.role {
                    InstanceRole::Master => InstanceFleetType::Master,
                    InstanceRole::Core => InstanceFleetType::Core,
                    InstanceRole::Task => InstanceFleetType::Task,
                })
                .target_on_demand_capacity(
                    i32::try_from(f.target_on_demand_capacity).unwrap_or(i32::MAX),
                )
                .target_spot_capacity(i32::try_from(f.target_spot_capacity).unwrap_or(i32::MAX))
                .set_instance_type_configs(Some(
                    f.instance_types
                        .iter()
                        .map(|t| {
                            InstanceTypeConfig::builder()
                                .instance_type(&t.instance_type)
                                .set_weighted_capacity(
                                    t.weighted_capacity
                                        .map(|w| i32::try_from(w).unwrap_or(i32::MAX)),
                                )
                                .build()
                        })
                        .collect(),
                ))
                .build()
        })
        .collect::<Vec<_>>();
    let scaling = spec.managed_scaling.as_ref().map(|m| {
        ComputeLimits::builder()
            .unit_type(ComputeLimitsUnitType::Instances)
            .minimum_capacity_units(i32::try_from(m.min_units).unwrap_or(i32::MAX))
            .maximum_capacity_units(i32::try_from(m.max_units).unwrap_or(i32::MAX))
            .build()
    });
    let scaling = scaling.map(|limits| {
        ManagedScalingPolicy::builder()
            .compute_limits(limits)
            .build()
    });
    let out = create
        .run_job_flow()
        .name(name)
        .release_label(&spec.release_label)
        .instances(
            JobFlowInstancesConfig::builder()
                .set_instance_groups((!groups.is_empty()).then_some(groups))
                .set_instance_fleets((!fleets.is_empty()).then_some(fleets))
                .keep_job_flow_alive_when_no_steps(spec.keep_alive)
                .build(),
        )
        .set_managed_scaling_policy(scaling)
        .auto_termination_policy(
            AutoTerminationPolicy::builder()
                .idle_timeout(
                    i64::try_from(
                        spec.idle_timeout
                            .map_or(sluice_model::spec::DEFAULT_IDLE_TIMEOUT_SECONDS, |t| {
                                t.as_std().as_secs()
                            }),
                    )
                    .unwrap_or(i64::MAX),
                )
                .build(),
        )
        .set_log_uri(spec.log_uri.clone())
        .applications(
            aws_sdk_emr::types::Application::builder()
                .name("Spark")
                .build(),
        )
        .job_flow_role(&conn.job_flow_role)
        .service_role(&conn.service_role)
        .tags(Tag::builder().key("sluice:cluster").value(name).build())
        .send()
        .await
        .map_err(|e| api_error("RunJobFlow", &e))?;
    out.job_flow_id().map(str::to_owned).ok_or(ApiError {
        message: "RunJobFlow answered no cluster id".into(),
        transient: true,
    })
}

/// Terminates clusters (TerminateJobFlows).
pub(super) async fn terminate(client: &Client, ids: Vec<String>) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .terminate_job_flows()
        .set_job_flow_ids(Some(ids))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| api_error("TerminateJobFlows", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_name_tells_its_run() {
        let at = DateTime::parse_from_rfc3339("2025-09-01T10:15:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let name = cluster_name("events_15m", at, "aggregate");
        assert_eq!(name, "sluice:events_15m:2025-09-01T10:15:00Z:aggregate");
        assert_eq!(owner(&name), Some(("events_15m".to_owned(), at)));
        assert_eq!(owner("someone else's cluster"), None);
    }
}
