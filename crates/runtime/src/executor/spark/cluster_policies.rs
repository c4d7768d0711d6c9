//! The long-running EMR cluster a connection names (`cluster_id`): its managed scaling and
//! idle auto-termination, as the connection says, applied when a scheduler or backfill
//! process starts and read back to check that EMR holds them (a policy that did not take
//! is reported, not assumed). The 15-minute DAG's cluster follows the load with managed
//! scaling; one left idle (the batch layer stopped) costs nothing past its idle timeout.

use aws_sdk_emr::Client;
use aws_sdk_emr::types::{
    AutoTerminationPolicy, ComputeLimits, ComputeLimitsUnitType, ManagedScalingPolicy,
};

use super::emr::api_error;
use crate::connections::{ClusterScaling, EmrConnection, ScalingUnit};

/// The idle timeouts EMR's auto-termination takes: a minute to a week.
pub const IDLE_TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 60..=604_800;

fn unit_type(unit: ScalingUnit) -> ComputeLimitsUnitType {
    match unit {
        ScalingUnit::Instances => ComputeLimitsUnitType::Instances,
        ScalingUnit::InstanceFleetUnits => ComputeLimitsUnitType::InstanceFleetUnits,
        ScalingUnit::Vcpu => ComputeLimitsUnitType::Vcpu,
    }
}

fn units(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// EMR's limits for the connection's scaling.
pub fn compute_limits(scaling: &ClusterScaling) -> ComputeLimits {
    ComputeLimits::builder()
        .unit_type(unit_type(scaling.unit_type))
        .minimum_capacity_units(units(scaling.min_units))
        .maximum_capacity_units(units(scaling.max_units))
        .set_maximum_on_demand_capacity_units(scaling.max_on_demand_units.map(units))
        .set_maximum_core_capacity_units(scaling.max_core_units.map(units))
        .build()
}

/// Applies the connection's policies to its cluster and reads them back: what was set,
/// one line each, or why not.
pub async fn apply(client: &Client, conn: &EmrConnection) -> Result<Vec<String>, String> {
    let Some(cluster) = &conn.cluster_id else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    if let Some(scaling) = &conn.managed_scaling {
        if scaling.min_units > scaling.max_units {
            return Err(format!(
                "managed scaling of {cluster}: min_units {} is above max_units {}",
                scaling.min_units, scaling.max_units
            ));
        }
        let wanted = compute_limits(scaling);
        client
            .put_managed_scaling_policy()
            .cluster_id(cluster)
            .managed_scaling_policy(
                ManagedScalingPolicy::builder()
                    .compute_limits(wanted.clone())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("PutManagedScalingPolicy", &e).message)?;
        let held = client
            .get_managed_scaling_policy()
            .cluster_id(cluster)
            .send()
            .await
            .map_err(|e| api_error("GetManagedScalingPolicy", &e).message)?;
        // The fields set, compared one by one: EMR may answer more than was sent.
        let fields = |l: &ComputeLimits| {
            (
                l.unit_type().cloned(),
                l.minimum_capacity_units(),
                l.maximum_capacity_units(),
                l.maximum_on_demand_capacity_units(),
                l.maximum_core_capacity_units(),
            )
        };
        let held = held
            .managed_scaling_policy()
            .and_then(|p| p.compute_limits())
            .cloned();
        if held.as_ref().map(fields) != Some(fields(&wanted)) {
            return Err(format!(
                "managed scaling of {cluster}: EMR holds {held:?} after it was set to {wanted:?}"
            ));
        }
        done.push(format!(
            "managed scaling of EMR cluster {cluster}: {}–{} {}",
            scaling.min_units,
            scaling.max_units,
            unit_type(scaling.unit_type).as_str()
        ));
    }
    if let Some(idle) = conn.idle_timeout_seconds {
        if !IDLE_TIMEOUT_SECONDS.contains(&idle) {
            return Err(format!(
                "auto-termination of {cluster}: idle_timeout_seconds {idle} is outside what EMR takes (60 to 604800)"
            ));
        }
        let seconds = i64::try_from(idle).unwrap_or(i64::MAX);
        client
            .put_auto_termination_policy()
            .cluster_id(cluster)
            .auto_termination_policy(
                AutoTerminationPolicy::builder()
                    .idle_timeout(seconds)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| api_error("PutAutoTerminationPolicy", &e).message)?;
        let held = client
            .get_auto_termination_policy()
            .cluster_id(cluster)
            .send()
            .await
            .map_err(|e| api_error("GetAutoTerminationPolicy", &e).message)?;
        let held = held
            .auto_termination_policy()
            .and_then(|p| p.idle_timeout());
        if held != Some(seconds) {
            return Err(format!(
                "auto-termination of {cluster}: EMR holds an idle timeout of {held:?} s after it was set to {seconds} s"
            ));
        }
        done.push(format!(
            "EMR cluster {cluster} terminates after {idle} s without a step"
        ));
    }
    Ok(done)
}
